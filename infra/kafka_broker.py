"""Run a single-node Apache Kafka broker (KRaft) from the Maven jars in the local cache.

There are no Kafka start scripts here, so this module does what ``kafka-server-start.sh`` would: render the
config, format the storage once, start the JVM with a small heap in its own process group, wait until an admin
metadata request succeeds, and create the topics with explicit partition counts. ``make up`` / ``make down`` /
``make status`` and the test fixtures all go through :class:`LocalKafka`.

Example::

    broker = LocalKafka.from_settings(Settings())
    broker.start()          # idempotent: returns at once when it is already up
    broker.ensure_topics({"retail.events": 3, "retail.alerts": 1})
    broker.stop()           # stops the whole process group; no JVM is left behind
"""

from __future__ import annotations

import os
import shutil
import subprocess
import time
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from contracts.jars import jar_files
from contracts.settings import PROJECT_ROOT, Settings
from contracts.topics import TopicSpec, ensure_topics
from infra.errors import BrokerError
from infra.processes import read_pid_file, stop_group, write_pid_file

__all__ = ["LocalKafka", "BrokerStatus"]

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
    """One broker+controller JVM whose files all live under ``data_dir``."""

    host: str
    port: int
    controller_port: int
    data_dir: Path
    jar_cache: Path
    heap: str = "512m"

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
        java_home = os.environ.get("JAVA_HOME")
        java = str(Path(java_home) / "bin" / "java") if java_home else shutil.which("java")
        if not java or not Path(java).exists():
            raise BrokerError("java not found: install OpenJDK 17+ (make setup checks for it)")
        return java

    def _classpath(self) -> str:
        return os.pathsep.join(str(jar) for jar in jar_files(self.jar_cache, "kafka"))

    def _render_config(self) -> Path:
        (self.data_dir / "logs").mkdir(parents=True, exist_ok=True)
        template = (_INFRA / "server.properties.template").read_text()
        config = self.data_dir / "server.properties"
        config.write_text(
            template.format(
                host=self.host,
                port=self.port,
                controller_port=self.controller_port,
                log_dir=self.data_dir / "log-segments",
            )
        )
        return config

    def _jvm(self, main_class: str, *args: str, heap: str = "256m") -> list[str]:
        return [
            self._java(),
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
        cluster_id = _kraft_cluster_id()
        result = subprocess.run(
            self._jvm(
                "kafka.tools.StorageTool",
                "format",
                "--cluster-id",
                cluster_id,
                "--config",
                str(config),
                "--standalone",
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
        config = self._render_config()
        self._format_storage(config)
        stdout = (self.data_dir / "logs" / "stdout.log").open("ab")
        # own session = own process group, so `stop` can take down the JVM and anything it forked
        process = subprocess.Popen(
            self._jvm("kafka.Kafka", str(config), heap=self.heap),
            stdout=stdout,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
        write_pid_file(self.pid_file, process.pid)
        try:
            self.wait_ready(timeout_s, process=process)
        except BrokerError:
            self.stop()
            raise
        return time.monotonic() - started

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


def _kraft_cluster_id() -> str:
    # KRaft cluster ids are 16 random bytes in URL-safe base64 without padding (what StorageTool random-uuid prints)
    import base64

    return base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")


def _tail(path: Path, lines: int = 20) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except FileNotFoundError:
        return "(no output)"
