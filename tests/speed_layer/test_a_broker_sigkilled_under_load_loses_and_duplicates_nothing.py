"""Crash matrix, the broker: SIGKILL the single Kafka broker (KRaft) while the producer sends (acks=all,
idempotent, unlimited retries) and the speed layer reads, restart it on the same data folder, and reconcile.

The broker of this test is its own (free ports, own folder), so killing it disturbs no other test. The speed
layer keeps running through the outage (Spark's Kafka source and the producer both retry), the producer's
retried batches are de-duplicated by the broker (producer id + sequence numbers), and after a final drain
bronze, quarantine, the views, the live topics and the alerts equal what was produced, exactly.
"""

from __future__ import annotations

import os
import signal
import time

import pytest

from contracts.tables import Lake
from infra.kafka_broker import LocalKafka
from tests.conftest import free_port
from tests.speed_layer.crash_helpers import (
    Producer,
    assert_exact_after_restart,
    driver_env,
    group_gone,
    kill_group,
    start_driver,
    wait_for_bronze_growth,
)

pytestmark = pytest.mark.integration

OUTAGE_S = 8.0


def test_a_broker_sigkilled_under_load_loses_and_duplicates_nothing(settings, test_root) -> None:  # type: ignore[no-untyped-def]
    root = test_root / "broker-kill"
    broker = LocalKafka(
        host="127.0.0.1",
        port=free_port(),
        controller_port=free_port(),
        data_dir=root / "kafka",
        jar_cache=settings.jar_cache,
        heap=settings.kafka_heap,
    )
    broker.start()
    run_settings = settings.model_copy(
        update={
            "kafka_bootstrap_servers": broker.address,
            "events_topic": "broker.kill",
            "alerts_topic": "broker.kill.alerts",
            "speed_sales_topic": "broker.kill.sales",
            "speed_inventory_topic": "broker.kill.inventory",
            "lake_root": str(root / "lake"),
            "checkpoint_root": str(root / "ck"),
        }
    )
    lake = Lake(run_settings.lake_root, run_settings.checkpoint_root)
    env = driver_env(
        run_settings,
        RETAIL_SPEED_TRIGGER="1 second",
        RETAIL_SPEED_BRONZE_TRIGGER="2 seconds",
        RETAIL_SPEED_DURABLE_TRIGGER="2 seconds",
    )
    log = test_root / "broker-kill-driver.log"
    producer = Producer(run_settings, rate=40)
    driver = None
    try:
        broker.ensure_topics({run_settings.events_topic: 3, run_settings.alerts_topic: 1})
        driver = start_driver(env, log)
        producer.start()
        wait_for_bronze_growth(lake.bronze_events, 100, driver)
        before = len(producer.sent)

        pid = broker.pid()
        assert pid is not None
        os.killpg(pid, signal.SIGKILL)  # the broker JVM, mid-write, no clean shutdown
        os.waitpid(pid, 0)  # our child (LocalKafka.launch): reap it, or it lingers as a zombie
        assert group_gone(pid), "the killed broker's JVM is still running"
        time.sleep(OUTAGE_S)
        restart_s = broker.start()
        print(f"\n[broker kill] killed at {before} records sent; down {OUTAGE_S:.0f} s; restarted in {restart_s:.1f} s")

        # traffic and the speed layer go on over the restarted broker
        wait_for_bronze_growth(lake.bronze_events, before + 200, driver, timeout_s=400)
        assert driver.poll() is None, "the speed layer stopped during the outage:\n" + log.read_text()[-3000:]
    finally:
        producer.stop_event.set()
        producer.join(timeout=180)
        if driver is not None and driver.poll() is None:
            kill_group(driver)
    assert not producer.is_alive(), "the producer did not finish its retries"
    try:
        final = start_driver(env, log, "--available-now")
        assert final.wait(timeout=600) == 0, log.read_text()[-3000:]
        facts = assert_exact_after_restart(run_settings, lake, producer.sent)
    finally:
        broker.stop()
    print(f"[broker kill] exact after the broker's restart: {facts}")
