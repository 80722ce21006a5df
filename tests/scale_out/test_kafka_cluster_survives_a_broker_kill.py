"""Kafka's own clustering: three KRaft nodes (broker + controller each) on 127.0.0.1, topics with replication
factor 3 and min.insync.replicas 2. While the project's generator produces (acks=all, idempotent) and the speed
layer streams, the broker leading partition 0 of the event topic is SIGKILLed with its whole process group.
The producer and the speed layer carry on with the two survivors; after the producer finishes and the speed layer
drains, bronze/events and speed/sales_minute reconcile exactly with what was produced: nothing lost, nothing
counted twice. The killed node then restarts and rejoins every in-sync replica set.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime

import pytest
from deltalake import DeltaTable

from contracts.settings import PROJECT_ROOT, Settings
from contracts.tables import Lake
from contracts.topics import ensure_topics, pipeline_topics
from event_generator.generator import GeneratedRecord, GeneratorConfig, generate, produce
from infra.kafka_broker import KafkaCluster
from infra.processes import group_alive, stop_group
from tests.conftest import free_port
from tests.scale_out.conftest import assert_speed_tables_reconcile, pipeline_env, run_retail

# slow on a busy 2-core box (several JVMs per test): past the suite's 900 s default
pytestmark = [pytest.mark.integration, pytest.mark.cluster, pytest.mark.timeout(2400)]

T0 = datetime(2026, 5, 4, 8, 0, tzinfo=UTC)


@pytest.fixture(scope="module")
def kafka_cluster(settings: Settings, test_root) -> Iterator[KafkaCluster]:  # type: ignore[no-untyped-def]
    cluster = KafkaCluster.create(
        host="127.0.0.1",
        ports=[free_port() for _ in range(3)],
        controller_ports=[free_port() for _ in range(3)],
        data_dir=test_root / "kafka-cluster",
        jar_cache=settings.jar_cache,
        heap="256m",
    )
    seconds = cluster.start()
    print(f"\n[kafka cluster fixture] 3 nodes on {cluster.bootstrap_servers} ready in {seconds:.1f}s")
    yield cluster
    cluster.stop()
    assert all(node.pid() is None for node in cluster.nodes)


class Producer(threading.Thread):
    """The project's producer (event_generator.produce) on generated events until told to stop."""

    def __init__(self, settings: Settings, rate: float) -> None:
        super().__init__(daemon=True)
        self.settings, self.rate = settings, rate
        self.stop_event = threading.Event()
        self.sent: list[GeneratedRecord] = []
        self.acknowledged = 0
        self.error: BaseException | None = None

    def _records(self) -> Iterator[GeneratedRecord]:
        config = GeneratorConfig(
            seed=9,
            count=100_000,
            rate=self.rate,
            start=T0,
            products=8,
            late_ratio=0.02,
            late_minutes=1,  # inside the watermark: every valid event counts once in the views
            duplicate_ratio=0.02,
            malformed_ratio=0.01,
        )
        for record in generate(config):
            if self.stop_event.is_set():
                return
            self.sent.append(record)
            yield record

    def run(self) -> None:
        try:
            counts = produce(self._records(), self.settings, rate=self.rate, progress_every_s=3600)
            self.acknowledged = sum(counts.values())
        except BaseException as error:  # noqa: BLE001 - reported by the test
            self.error = error


def _bronze_rows(path: str) -> int:
    try:
        return DeltaTable(path).to_pyarrow_table(columns=["event_id"]).num_rows
    except Exception:  # noqa: BLE001 - not created yet
        return 0


def _wait_for_bronze(path: str, at_least: int, process: subprocess.Popen, log, timeout_s: float = 600) -> int:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        assert process.poll() is None, "speed layer died:\n" + log.read_text()[-3000:]
        rows = _bronze_rows(path)
        if rows >= at_least:
            return rows
        time.sleep(1)
    raise AssertionError(f"bronze did not reach {at_least} rows in {timeout_s}s (has {_bronze_rows(path)})")


def _broker_config(cluster: KafkaCluster, node_id: int, name: str) -> str | None:
    from kafka.admin import ConfigResource, ConfigResourceType

    admin = cluster._admin()
    try:
        resource = ConfigResource(ConfigResourceType.BROKER, str(node_id))
        described = admin.describe_configs([resource], config_filter="all")
    finally:
        admin.close()
    entry = described.get("broker", {}).get(str(node_id), {}).get(name)
    return entry.get("value") if isinstance(entry, dict) else entry


def test_a_killed_broker_loses_and_duplicates_nothing(kafka_cluster: KafkaCluster, settings, test_root) -> None:  # type: ignore[no-untyped-def]
    cluster = kafka_cluster
    root = test_root / "kafka-kill"
    root.mkdir(parents=True, exist_ok=True)
    run_settings = settings.model_copy(
        update={
            "kafka_bootstrap_servers": cluster.bootstrap_servers,
            "events_topic": "kill.events",
            "alerts_topic": "kill.alerts",
            "speed_sales_topic": "kill.speed.sales",
            "speed_inventory_topic": "kill.speed.inventory",
            "lake_root": str(root / "lake"),
            "checkpoint_root": str(root / "ck"),
        }
    )
    # the pipeline's own topic creation (replication factor -1: the cluster's default)
    ensure_topics(pipeline_topics(run_settings), run_settings.kafka_python_options())
    for spec in pipeline_topics(run_settings):
        partitions = cluster.partitions(spec.name)
        assert all(p["replicas"] == [1, 2, 3] for p in partitions.values()), (spec.name, partitions)
        assert cluster.topic_config(spec.name, "min.insync.replicas") == "2"
    for name in ("offsets.topic.replication.factor", "transaction.state.log.replication.factor"):
        assert _broker_config(cluster, 1, name) == "3", name
    assert _broker_config(cluster, 1, "transaction.state.log.min.isr") == "2"

    lake = Lake(run_settings.lake_root, run_settings.checkpoint_root)
    env = pipeline_env(
        run_settings,
        RETAIL_SPEED_TRIGGER="1 second",
        RETAIL_SPEED_BRONZE_TRIGGER="2 seconds",
        RETAIL_SPEED_DURABLE_TRIGGER="2 seconds",
    )
    log = root / "speed.log"
    with log.open("ab") as out:
        speed = subprocess.Popen(
            [sys.executable, "-m", "retail_cli.main", "speed"],
            cwd=PROJECT_ROOT,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    producer = Producer(run_settings, rate=40)
    producer.start()
    victim = cluster.partitions(run_settings.events_topic)[0]["leader"]
    try:
        _wait_for_bronze(lake.bronze_events, 200, speed, log)
        sent_at_kill = len(producer.sent)
        killed_at = time.monotonic()
        os.killpg(cluster.node(victim).pid(), signal.SIGKILL)  # type: ignore[arg-type]
        assert _gone(cluster, victim)
        # while the metadata still lists the dead node, every start of the speed layer (either driver) must still
        # get its topics: kafka-python sends each admin request to a random listed node (a copy driver that
        # started in this window once exited with KafkaConnectionError ECONNREFUSED and took the first down)
        for _ in range(20):
            ensure_topics(pipeline_topics(run_settings), run_settings.kafka_python_options())
        # the cluster fails over: partition 0 gets a new leader among the survivors, the ISR shrinks to two
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                partition0 = cluster.partitions(run_settings.events_topic)[0]
                if partition0["leader"] not in (victim, -1) and victim not in partition0["isr"]:
                    break
            except Exception:  # noqa: BLE001 - metadata from the dead node's address fails until clients move on
                pass
            time.sleep(1)
        failover_s = time.monotonic() - killed_at
        # keep producing through the failover, then stop
        time.sleep(max(0.0, 25 - (time.monotonic() - killed_at)))
        producer.stop_event.set()
        producer.join(timeout=180)
        assert not producer.is_alive(), "the producer did not finish"
        assert producer.error is None, f"the producer failed: {producer.error!r}"
        assert producer.acknowledged == len(producer.sent), "every record sent must be acknowledged"
        assert len(producer.sent) > sent_at_kill + 200, "too little traffic after the kill"
        # the running speed layer reads everything on the surviving brokers into bronze
        valid = sum(1 for record in producer.sent if record.event is not None)
        _wait_for_bronze(lake.bronze_events, valid, speed, log)
    finally:
        producer.stop_event.set()
        if speed.poll() is None:
            os.kill(speed.pid, signal.SIGINT)  # Ctrl-C: the queries stop, the driver exits
            with contextlib.suppress(subprocess.TimeoutExpired):
                speed.wait(timeout=120)
        if group_alive(speed.pid):
            stop_group(speed.pid, 10)

    # drain what is left (the Delta copy of the views) with the killed broker still down
    assert run_retail(["speed", "--available-now"], env, log) == 0, log.read_text()[-3000:]
    facts = assert_speed_tables_reconcile(lake, producer.sent)

    # the killed node comes back and catches up: every replica set is whole again
    cluster.node(victim).start()
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if all(p["isr"] == [1, 2, 3] for p in cluster.partitions(run_settings.events_topic).values()):
            break
        time.sleep(1)
    assert all(p["isr"] == [1, 2, 3] for p in cluster.partitions(run_settings.events_topic).values())
    print(
        f"\n[kafka cluster] killed node {victim} after {sent_at_kill} records; failover seen in {failover_s:.1f}s; "
        f"{len(producer.sent)} records produced, all acknowledged; reconciled exactly: {facts}"
    )


def _gone(cluster: KafkaCluster, node_id: int, timeout_s: float = 30) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if cluster.node(node_id).pid() is None:
            return True
        time.sleep(0.2)
    return False
