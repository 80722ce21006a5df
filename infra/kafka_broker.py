"""Run Apache Kafka (KRaft) from the Maven jars in the local cache: one node, or a cluster of several.

There are no Kafka start scripts here, so this module does what ``kafka-server-start.sh`` would: render the
config, format the storage once, start the JVM with a small heap in its own process group, wait until an admin
metadata request succeeds, and create the topics with explicit partition counts. ``make up`` / ``make down`` /
``make status`` and the test fixtures go through :class:`LocalKafka` (one broker+controller node, replication 1).

:class:`KafkaCluster` runs N such nodes on one machine (``make kafka-cluster``, three by default): every node is
broker and controller, the controllers form a static voter set of all N (a quorum survives one lost node out of
three), and topics get replication factor 3 with ``min.insync.replicas=2``, so an acks=all record survives the
loss of any one node. It is Kafka's own clustering, only with every node on 127.0.0.1 (docs/scale-out.md).

Example::

    broker = LocalKafka.from_settings(Settings())
    broker.start()          # idempotent: returns at once when it is already up
    broker.ensure_topics({"retail.events": 3, "retail.alerts": 1})
    broker.stop()           # stops the whole process group; no JVM is left behind

    cluster = KafkaCluster.from_settings(Settings())
    cluster.start()         # three JVMs, each in its own process group
    cluster.bootstrap_servers   # "127.0.0.1:9192,127.0.0.1:9193,127.0.0.1:9194"
    cluster.stop()
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from contracts.jars import jar_files
from contracts.jvm import java_binary, kafka_archive, share_options
from contracts.settings import PROJECT_ROOT, Settings
from contracts.topics import TopicSpec, ensure_topics
from infra.errors import BrokerError
from infra.processes import read_pid_file, signal_group, stop_group, write_pid_file

__all__ = ["LocalKafka", "BrokerStatus", "KafkaCluster"]

_INFRA = PROJECT_ROOT / "infra" / "kafka"


@dataclass(frozen=True)
class BrokerStatus:
    pid: int | None
    running: bool
    ready: bool
    topics: dict[str, int]
    address: str

    def describe(self) -> str:
        if not self.running:
            return f"kafka: stopped (would listen on {self.address})"
        state = "ready" if self.ready else "starting (metadata not answering yet)"
        topics = ", ".join(f"{name}[{parts}]" for name, parts in sorted(self.topics.items())) or "none"
        return f"kafka: {state}, pid {self.pid}, {self.address}, topics: {topics}"


@dataclass(frozen=True)
class LocalKafka:
    """One broker+controller JVM whose files all live under ``data_dir``.

    Alone by default (a controller quorum of one, replication 1). As a node of a :class:`KafkaCluster` it gets
    its ``node_id``, the cluster's ``voters`` (node id, host, controller port of every controller), the file
    holding the shared KRaft cluster id and the cluster's replication defaults.
    """

    host: str
    port: int
    controller_port: int
    data_dir: Path
    jar_cache: Path
    heap: str = "512m"
    node_id: int = 1
    voters: tuple[tuple[int, str, int], ...] = ()
    cluster_id_file: Path | None = None
    replication_factor: int = 1
    min_insync_replicas: int = 1
    # the broker JVM's own options in place of the class-data archive's (infra/jvm_archive.py builds it so)
    jvm_options: tuple[str, ...] | None = None

    @classmethod
    def from_settings(cls, settings: Settings) -> LocalKafka:
        return cls(
            host=settings.kafka_host,
            port=settings.kafka_port,
            controller_port=settings.kafka_controller_port,
            data_dir=settings.kafka_data_dir,
            jar_cache=settings.jar_cache,
            heap=settings.kafka_heap,
        )

    # --- files ----------------------------------------------------------------------------------
    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"

    @property
    def pid_file(self) -> Path:
        return self.data_dir / "broker.pid"

    @property
    def log_file(self) -> Path:
        return self.data_dir / "logs" / "server.log"

    def _java(self) -> str:
        java = java_binary()
        if java is None:
            raise BrokerError("java not found: install OpenJDK 17+ (make setup checks for it)")
        return str(java)

    def _classpath(self) -> str:
        return os.pathsep.join(str(jar) for jar in jar_files(self.jar_cache, "kafka"))

    def _quorum(self) -> str:
        if not self.voters:
            # one node: a dynamic quorum bootstrapped from this controller alone (format --standalone)
            return f"controller.quorum.bootstrap.servers={self.host}:{self.controller_port}"
        return "controller.quorum.voters=" + ",".join(f"{node}@{host}:{port}" for node, host, port in self.voters)

    def _render_config(self) -> Path:
        (self.data_dir / "logs").mkdir(parents=True, exist_ok=True)
        template = (_INFRA / "server.properties.template").read_text()
        config = self.data_dir / "server.properties"
        config.write_text(
            template.format(
                host=self.host,
                port=self.port,
                controller_port=self.controller_port,
                node_id=self.node_id,
                quorum=self._quorum(),
                log_dir=self.data_dir / "log-segments",
                replication_factor=self.replication_factor,
                min_insync_replicas=self.min_insync_replicas,
            )
        )
        return config

    def _jvm(self, main_class: str, *args: str, heap: str = "256m") -> list[str]:
        training = main_class == "kafka.Kafka" and self.jvm_options is not None
        options = self.jvm_options if training else share_options(kafka_archive(self.jar_cache))
        return [
            self._java(),
            *options,
            "-Xms128m",
            f"-Xmx{heap}",
            "-XX:+UseG1GC",
            "-XX:MaxGCPauseMillis=20",
            "-Djava.awt.headless=true",
            f"-Dkafka.logs.dir={self.data_dir / 'logs'}",
            f"-Dlog4j2.configurationFile={_INFRA / 'log4j2.yaml'}",
            "-cp",
            self._classpath(),
            main_class,
            *args,
        ]

    def _format_storage(self, config: Path) -> None:
        if (self.data_dir / "log-segments" / "meta.properties").exists():
            return
        cluster_id = _cluster_id(self.cluster_id_file) if self.cluster_id_file else _kraft_cluster_id()
        # a static voter set (controller.quorum.voters) is formatted without a quorum flag; one node alone
        # bootstraps its dynamic quorum with --standalone
        quorum_flags = [] if self.voters else ["--standalone"]
        result = subprocess.run(
            self._jvm(
                "kafka.tools.StorageTool",
                "format",
                "--cluster-id",
                cluster_id,
                "--config",
                str(config),
                *quorum_flags,
                "--ignore-formatted",
            ),
            capture_output=True,
            text=True,
            check=False,
        )
        if result.returncode != 0:
            raise BrokerError(f"formatting Kafka storage failed: {result.stderr.strip() or result.stdout}")

    # --- process --------------------------------------------------------------------------------
    def pid(self) -> int | None:
        """PID of the broker this folder started, if that process is still alive."""
        return read_pid_file(self.pid_file)

    def start(self, timeout_s: float = 90.0) -> float:
        """Start the broker unless it runs already; wait until it answers metadata requests.

        Returns the seconds it took until ready (0.0 when it was already running).
        """
        if self.pid() is not None:
            self.wait_ready(timeout_s)
            return 0.0
        started = time.monotonic()
        process = self.launch()
        try:
            self.wait_ready(timeout_s, process=process)
        except BrokerError:
            self.stop()
            raise
        return time.monotonic() - started

    def launch(self) -> subprocess.Popen[bytes]:
        """Render the config, format the storage once and start the JVM without waiting for it to be ready.

        A cluster launches every node first: a node answers metadata requests only once a quorum of controllers
        runs.
        """
        config = self._render_config()
        self._format_storage(config)
        # a log handle of our own: the child keeps its copy, ours is closed when this method returns
        with (self.data_dir / "logs" / "stdout.log").open("ab") as stdout:
            # own session = own process group, so `stop` can take down the JVM and anything it forked
            process = subprocess.Popen(
                self._jvm("kafka.Kafka", str(config), heap=self.heap),
                stdout=stdout,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
            )
        write_pid_file(self.pid_file, process.pid)
        return process

    def wait_ready(self, timeout_s: float, process: subprocess.Popen[bytes] | None = None) -> None:
        """Block until an admin metadata request succeeds (an open port is not enough)."""
        deadline = time.monotonic() + timeout_s
        last_error: Exception | None = None
        while time.monotonic() < deadline:
            if process is not None and process.poll() is not None:
                raise BrokerError(
                    f"Kafka broker exited with code {process.returncode}; see {self.log_file}:\n"
                    + _tail(self.data_dir / "logs" / "stdout.log")
                )
            try:
                self.list_topics()
                return
            except Exception as error:  # noqa: BLE001 - any client error means "not ready yet"
                last_error = error
                time.sleep(0.5)
        raise BrokerError(f"Kafka broker at {self.address} not ready after {timeout_s:.0f}s: {last_error}")

    def stop(self, timeout_s: float = 30.0) -> bool:
        """Stop the broker's process group (SIGTERM, then SIGKILL). Returns False if it was not running."""
        pid = self.pid()
        if pid is None:
            self.pid_file.unlink(missing_ok=True)
            return False
        stop_group(pid, timeout_s)
        self.pid_file.unlink(missing_ok=True)
        return True

    # --- admin ----------------------------------------------------------------------------------
    def _admin(self):  # type: ignore[no-untyped-def]
        from kafka.admin import KafkaAdminClient

        return KafkaAdminClient(bootstrap_servers=self.address, request_timeout_ms=5000, client_id="retail-local-admin")

    def list_topics(self) -> dict[str, int]:
        """Topic name → partition count (internal topics left out)."""
        admin = self._admin()
        try:
            described = admin.describe_topics()
        finally:
            admin.close()
        return {
            topic["name"]: len(topic["partitions"])
            for topic in described
            if not topic.get("is_internal") and not topic["name"].startswith("__")
        }

    def ensure_topics(self, topics: dict[str, int] | Iterable[TopicSpec]) -> dict[str, int]:
        """Create missing topics (name → partitions, or TopicSpecs with configs); existing ones are left as they are."""
        specs = [TopicSpec(name, count) for name, count in topics.items()] if isinstance(topics, dict) else topics
        return ensure_topics(specs, {"bootstrap_servers": [self.address]})

    def status(self) -> BrokerStatus:
        pid = self.pid()
        topics: dict[str, int] = {}
        ready = False
        if pid is not None:
            try:
                topics = self.list_topics()
                ready = True
            except Exception:  # noqa: BLE001 - status reports, it does not fail
                ready = False
        return BrokerStatus(pid=pid, running=pid is not None, ready=ready, topics=topics, address=self.address)


@dataclass(frozen=True)
class KafkaCluster:
    """N combined broker+controller nodes on one machine (``make kafka-cluster``), each a :class:`LocalKafka`.

    Node ``i`` (1-based) lives in ``data_dir/node-i``; all share one KRaft cluster id (``data_dir/cluster.id``).
    """

    nodes: tuple[LocalKafka, ...]
    data_dir: Path

    @classmethod
    def create(
        cls,
        host: str,
        ports: list[int],
        controller_ports: list[int],
        data_dir: Path,
        jar_cache: Path,
        heap: str = "512m",
    ) -> KafkaCluster:
        if len(ports) != len(controller_ports) or not ports:
            raise ValueError("need one client port and one controller port per node")
        count = len(ports)
        replication = min(count, 3)
        voters = tuple((node, host, controller_ports[node - 1]) for node in range(1, count + 1))
        nodes = tuple(
            LocalKafka(
                host=host,
                port=ports[node - 1],
                controller_port=controller_ports[node - 1],
                data_dir=data_dir / f"node-{node}",
                jar_cache=jar_cache,
                heap=heap,
                node_id=node,
                voters=voters,
                cluster_id_file=data_dir / "cluster.id",
                replication_factor=replication,
                min_insync_replicas=max(1, replication - 1),
            )
            for node in range(1, count + 1)
        )
        return cls(nodes=nodes, data_dir=data_dir)

    @classmethod
    def from_settings(cls, settings: Settings) -> KafkaCluster:
        count = settings.kafka_cluster_nodes
        return cls.create(
            host=settings.kafka_host,
            ports=[settings.kafka_cluster_port + i for i in range(count)],
            controller_ports=[settings.kafka_cluster_controller_port + i for i in range(count)],
            data_dir=settings.kafka_cluster_data_dir,
            jar_cache=settings.jar_cache,
            heap=settings.kafka_heap,
        )

    @property
    def bootstrap_servers(self) -> str:
        """Every node's client address, comma-separated (RETAIL_KAFKA_BOOTSTRAP_SERVERS for the pipeline)."""
        return ",".join(node.address for node in self.nodes)

    def node(self, node_id: int) -> LocalKafka:
        return self.nodes[node_id - 1]

    def start(self, timeout_s: float = 120.0) -> float:
        """Start every node that is not running, then wait until each answers; 0.0 if all ran already."""
        started = time.monotonic()
        launched = {node.node_id: node.launch() for node in self.nodes if node.pid() is None}
        try:
            for node in self.nodes:
                node.wait_ready(max(1.0, timeout_s - (time.monotonic() - started)), launched.get(node.node_id))
        except BrokerError:
            self.stop()
            raise
        return time.monotonic() - started if launched else 0.0

    def stop(self, timeout_s: float = 30.0) -> list[int]:
        """Stop every node (SIGTERM to each process group, SIGKILL after ``timeout_s``); the ids that ran."""
        running = [node for node in self.nodes if node.pid() is not None]
        # SIGTERM all first: a node shuts down faster while the others still answer its controlled shutdown
        for node in running:
            signal_group(node.pid() or 0, signal.SIGTERM)
        for node in running:
            node.stop(timeout_s)
        return [node.node_id for node in running]

    def _admin(self):  # type: ignore[no-untyped-def]
        from kafka.admin import KafkaAdminClient

        return KafkaAdminClient(
            bootstrap_servers=self.bootstrap_servers.split(","),
            request_timeout_ms=10_000,
            client_id="retail-cluster-admin",
        )

    def ensure_topics(self, topics: dict[str, int] | Iterable[TopicSpec]) -> dict[str, int]:
        """Create missing topics with the cluster's default replication (3, min.insync.replicas 2)."""
        specs = [TopicSpec(name, count) for name, count in topics.items()] if isinstance(topics, dict) else topics
        return ensure_topics(specs, {"bootstrap_servers": self.bootstrap_servers.split(",")})

    def partitions(self, topic: str) -> dict[int, dict[str, object]]:
        """partition → {"leader": node id, "replicas": [...], "isr": [...]} as the cluster reports it now."""
        admin = self._admin()
        try:
            described = admin.describe_topics([topic])
        finally:
            admin.close()
        return {
            part["partition_index"]: {
                "leader": part["leader_id"],
                "replicas": sorted(part["replica_nodes"]),
                "isr": sorted(part["isr_nodes"]),
            }
            for topic_info in described
            for part in topic_info["partitions"]
        }

    def topic_config(self, topic: str, name: str) -> str | None:
        """One effective config value of a topic (its own, or the broker default it inherits)."""
        from kafka.admin import ConfigResource, ConfigResourceType

        admin = self._admin()
        try:
            described = admin.describe_configs([ConfigResource(ConfigResourceType.TOPIC, topic)], config_filter="all")
        finally:
            admin.close()
        entry = described.get("topic", {}).get(topic, {}).get(name)
        if isinstance(entry, dict):
            return entry.get("value", entry.get("config_value"))
        return entry

    def status(self) -> list[BrokerStatus]:
        return [node.status() for node in self.nodes]

    def describe(self) -> str:
        lines = [f"kafka cluster ({len(self.nodes)} nodes, bootstrap {self.bootstrap_servers}):"]
        lines += [f"  node {node.node_id}: " + node.status().describe().removeprefix("kafka: ") for node in self.nodes]
        return "\n".join(lines)


def _cluster_id(path: Path) -> str:
    """A cluster's KRaft id: generated once into ``path``, so every node formats its storage with the same id."""
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(_kraft_cluster_id() + "\n")
    return path.read_text().strip()


def _kraft_cluster_id() -> str:
    # KRaft cluster ids are 16 random bytes in URL-safe base64 without padding (what StorageTool random-uuid prints)
    import base64

    while True:
        cluster_id = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
        # one id in 64 starts with "-", which StorageTool's argument parser reads as an option
        if not cluster_id.startswith("-"):
            return cluster_id


def _tail(path: Path, lines: int = 20) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except FileNotFoundError:
        return "(no output)"
