"""The suite's one test of Kafka failing under load, on Kafka's own clustering: three KRaft nodes (broker +
controller each) on 127.0.0.1, topics with replication factor 3 and min.insync.replicas 2. While the project's
generator produces (acks=all, idempotent, unlimited retries) and the speed layer streams:

1. the broker leading partition 0 of the event topic is SIGKILLed with its whole process group; the producer
   and the speed layer carry on with the two survivors (failover); the node restarts and rejoins every ISR;
2. then every node is SIGKILLed at once, mid-write: no broker at all for a while (what a single broker's crash
   is), and the nodes restart on their own data folders. The speed layer keeps running through the outage (Spark's
   Kafka source and the producer both retry); the broker de-duplicates the producer's retried batches (producer
   id + sequence numbers).

After the producer finishes and the speed layer drains, bronze, quarantine, the Delta copy of the views, the live
topics and the alerts equal what was produced, exactly (tests/speed_layer/crash_helpers.py): nothing lost,
nothing counted twice. (This test replaces a single-broker SIGKILL test, which proved the same of one node.)
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from contracts.settings import PROJECT_ROOT, Settings
from contracts.tables import Lake
from contracts.topics import ensure_topics, pipeline_topics
from infra.kafka_broker import KafkaCluster
from infra.processes import group_alive, stop_group
from tests.conftest import free_port
from tests.scale_out.conftest import pipeline_env, run_retail
from tests.speed_layer.crash_helpers import Producer, assert_exact_after_restart, group_gone, wait_for_bronze_growth

# slow on a busy 2-core box (several JVMs per test): past the suite's 900 s default
pytestmark = [pytest.mark.integration, pytest.mark.cluster, pytest.mark.timeout(2400)]

OUTAGE_S = 8.0


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


def test_a_broker_kill_and_a_cluster_outage_lose_and_duplicate_nothing(
    kafka_cluster: KafkaCluster, settings: Settings, test_root: Path
) -> None:
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
        wait_for_bronze_growth(lake.bronze_events, 200, speed)
        # 1. one node: the leader of partition 0, SIGKILLed with its process group
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
        # keep producing through the failover, then the killed node comes back and catches up
        time.sleep(max(0.0, 15 - (time.monotonic() - killed_at)))
        assert len(producer.sent) > sent_at_kill + 200, "too little traffic after the kill"
        cluster.node(victim).start()
        _wait_for_whole_isr(cluster, run_settings.events_topic)

        # 2. the whole cluster: every node SIGKILLed at once, mid-write; nothing answers for OUTAGE_S
        sent_at_outage = len(producer.sent)
        pids = [node.pid() for node in cluster.nodes]
        for pid in pids:
            os.killpg(pid, signal.SIGKILL)  # type: ignore[arg-type]
        for pid in pids:
            with contextlib.suppress(ChildProcessError):  # our children (LocalKafka.launch): reap the zombies
                os.waitpid(pid, 0)  # type: ignore[arg-type]
            assert group_gone(pid), "a killed node's JVM is still running"  # type: ignore[arg-type]
        time.sleep(OUTAGE_S)
        restart_s = cluster.start()
        # traffic and the speed layer go on over the restarted nodes
        wait_for_bronze_growth(lake.bronze_events, sent_at_outage + 100, speed, timeout_s=400)
        producer.stop_event.set()
        producer.join(timeout=180)
        assert not producer.is_alive(), "the producer did not finish its retries"
        assert producer.error is None, f"the producer failed: {producer.error!r}"
        assert producer.acknowledged == len(producer.sent), "every record sent must be acknowledged"
        # the running speed layer reads everything into bronze
        valid = sum(1 for record in producer.sent if record.event is not None)
        wait_for_bronze_growth(lake.bronze_events, valid, speed, timeout_s=600)
        assert speed.poll() is None, "the speed layer stopped during the outages:\n" + log.read_text()[-3000:]
    finally:
        producer.stop_event.set()
        if speed.poll() is None:
            os.kill(speed.pid, signal.SIGINT)  # Ctrl-C: the queries stop, the driver exits
            with contextlib.suppress(subprocess.TimeoutExpired):
                speed.wait(timeout=120)
        if group_alive(speed.pid):
            stop_group(speed.pid, 10)

    # drain what is left (the Delta copy of the views), then everything against what was produced
    assert run_retail(["speed", "--available-now"], env, log) == 0, log.read_text()[-3000:]
    facts = assert_exact_after_restart(run_settings, lake, producer.sent)
    print(
        f"\n[kafka cluster] killed node {victim} after {sent_at_kill} records, failover seen in {failover_s:.1f}s; "
        f"all nodes killed after {sent_at_outage} records, down {OUTAGE_S:.0f} s, restarted in {restart_s:.1f} s; "
        f"{len(producer.sent)} records produced, all acknowledged; reconciled exactly: {facts}"
    )


def _wait_for_whole_isr(cluster: KafkaCluster, topic: str, timeout_s: float = 120) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        with contextlib.suppress(Exception):  # metadata may fail while a node comes back
            if all(p["isr"] == [1, 2, 3] for p in cluster.partitions(topic).values()):
                return
        time.sleep(1)
    raise AssertionError(f"the ISR of {topic} is not whole again: {cluster.partitions(topic)}")


def _gone(cluster: KafkaCluster, node_id: int, timeout_s: float = 30) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if cluster.node(node_id).pid() is None:
            return True
        time.sleep(0.2)
    return False
