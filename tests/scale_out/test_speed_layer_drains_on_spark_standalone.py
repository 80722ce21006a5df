"""The speed layer runs unchanged on Spark's standalone cluster: `retail speed --available-now` with only
RETAIL_SPARK_MASTER=spark://... (and a smaller driver) drains generated traffic into bronze and the speed views,
which reconcile exactly with what was produced. The master lists the application, so it really ran there.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime

import pytest

from contracts.tables import Lake
from event_generator.generator import GeneratorConfig, generate, produce
from tests.scale_out.conftest import ListenerSampler, assert_speed_tables_reconcile, pipeline_env, start_retail

# slow on a busy 2-core box (several JVMs per test): past the suite's 900 s default
pytestmark = [pytest.mark.integration, pytest.mark.cluster, pytest.mark.timeout(2400)]

T0 = datetime(2026, 4, 7, 12, 0, tzinfo=UTC)


def test_speed_layer_drains_exactly_on_the_standalone_cluster(kafka, settings, test_root, spark_cluster) -> None:
    root = test_root / "speed-on-cluster"
    run_settings = settings.model_copy(
        update={
            "events_topic": "cluster.speed.events",
            "alerts_topic": "cluster.speed.alerts",
            "speed_sales_topic": "cluster.speed.sales",
            "speed_inventory_topic": "cluster.speed.inventory",
            "lake_root": str(root / "lake"),
            "checkpoint_root": str(root / "ck"),
        }
    )
    kafka.ensure_topics({run_settings.events_topic: 3, run_settings.alerts_topic: 1})
    config = GeneratorConfig(
        seed=11,
        count=1500,
        rate=20,
        start=T0,
        products=8,
        late_ratio=0.02,
        late_minutes=1,  # inside the 5-minute watermark: every valid event counts once in the views
        duplicate_ratio=0.02,
        malformed_ratio=0.01,
    )
    produced = list(generate(config))
    counts = produce(produced, run_settings)
    assert sum(counts.values()) == len(produced)

    env = pipeline_env(run_settings, RETAIL_SPARK_MASTER=spark_cluster.master_url)
    log = root / "speed.log"
    root.mkdir(parents=True, exist_ok=True)
    began = time.monotonic()
    driver = start_retail(["speed", "--available-now"], env, log)
    # every listener of the driver, the master, the workers and the executors they fork is on loopback
    sampler = ListenerSampler(lambda: [driver.pid, *spark_cluster.pids().values()])
    sampler.start()
    try:
        code = driver.wait(timeout=1200)
    finally:
        seen = sampler.stop()
    seconds = time.monotonic() - began
    assert code == 0, log.read_text()[-3000:]
    assert not sampler.exposed(), f"listeners beyond loopback: {sampler.exposed()}"
    workers = {pid for name, pid in spark_cluster.pids().items() if name.startswith("worker")}
    executors = {pid for _address, _port, pid, root in seen if root in workers and pid != root}
    assert executors, f"expected listeners of executors forked by the workers among {sorted(seen)}"
    assert any(root == driver.pid and pid != root for _address, _port, pid, root in seen), "the driver's JVM"

    facts = assert_speed_tables_reconcile(Lake(run_settings.lake_root, run_settings.checkpoint_root), produced)
    state = spark_cluster.master_state()
    assert state is not None and "retail-speed-layer" in state["completed_apps"], state
    print(
        f"\n[speed on spark standalone] drained {len(produced)} records in {seconds:.1f}s: {facts}; "
        f"{len(seen)} listeners seen, all on loopback"
    )
