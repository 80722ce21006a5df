"""Crash test: SIGKILL the streaming driver and its JVM three times while events are produced; after every
restart from the checkpoint, bronze holds each produced event exactly once and the views equal the answers.

Two kills land in the window that matters (after the Delta writes of a micro-batch, before Spark commits it to
the checkpoint) through the job's test-only hook; one is an external SIGKILL at an arbitrary moment.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections import defaultdict
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import pytest
from deltalake import DeltaTable

from contracts.settings import PROJECT_ROOT
from contracts.tables import Lake
from event_generator.generator import GeneratorConfig, generate, produce
from speed_layer.sinks import CRASH_ENV

pytestmark = pytest.mark.integration

T0 = datetime(2026, 3, 3, 9, 0, tzinfo=UTC)


class Producer(threading.Thread):
    """Produces generated events at a steady rate until told to stop; keeps what it sent."""

    def __init__(self, settings, rate: float) -> None:
        super().__init__(daemon=True)
        self.settings, self.rate = settings, rate
        self.stop_event = threading.Event()
        self.sent: list[dict] = []

    def _records(self):
        for record in generate(GeneratorConfig(seed=5, count=100_000, rate=self.rate, start=T0, products=8)):
            if self.stop_event.is_set():
                return
            self.sent.append(record.event)
            yield record

    def run(self) -> None:
        produce(self._records(), self.settings, rate=self.rate, progress_every_s=3600)


def _group_gone(pgid: int, timeout_s: float = 30.0) -> bool:
    """True once no process of the group is left (killed children are reaped by init a moment later)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            os.killpg(pgid, 0)
        except ProcessLookupError:
            return True
        time.sleep(0.2)
    return False


def _start_driver(env: dict[str, str], log: Path, *extra: str) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "retail_cli.main", "speed", *extra],
        cwd=PROJECT_ROOT,
        env=env,
        stdout=log.open("ab"),
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )


def _wait_for_bronze_growth(path: str, at_least: int, process: subprocess.Popen, timeout_s: float = 300) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        assert process.poll() is None, "speed driver died unexpectedly"
        try:
            if DeltaTable(path).to_pyarrow_table(columns=["event_id"]).num_rows >= at_least:
                return
        except Exception:  # noqa: BLE001 - table not created yet
            pass
        time.sleep(1)
    raise AssertionError(f"bronze did not reach {at_least} rows in {timeout_s}s")


def _kill_group(process: subprocess.Popen) -> None:
    os.killpg(process.pid, signal.SIGKILL)
    process.wait(timeout=60)


def test_three_sigkills_neither_drop_nor_duplicate(kafka, settings, test_root) -> None:
    root = test_root / "crash"
    run_settings = settings.model_copy(
        update={
            "events_topic": "speed.crash",
            "alerts_topic": "speed.crash.alerts",
            "lake_root": str(root / "lake"),
            "checkpoint_root": str(root / "ck"),
        }
    )
    kafka.ensure_topics({run_settings.events_topic: 3, run_settings.alerts_topic: 1})
    lake = Lake(run_settings.lake_root, run_settings.checkpoint_root)
    env = {
        **os.environ,
        "RETAIL_KAFKA_BOOTSTRAP_SERVERS": run_settings.kafka_bootstrap_servers,
        "RETAIL_EVENTS_TOPIC": run_settings.events_topic,
        "RETAIL_ALERTS_TOPIC": run_settings.alerts_topic,
        "RETAIL_LAKE_ROOT": run_settings.lake_root,
        "RETAIL_CHECKPOINT_ROOT": run_settings.checkpoint_root,
        "RETAIL_JAR_CACHE": str(run_settings.jar_cache),
        "RETAIL_SPEED_TRIGGER": "1 second",
    }
    log = test_root / "crash-driver.log"
    producer = Producer(run_settings, rate=40)
    producer.start()
    kills = 0
    try:
        # 1 and 2: the hook kills driver + JVM right after a batch's Delta writes, before its checkpoint commit
        for crash_at in ("bronze:2", "rollups:2"):
            process = _start_driver({**env, CRASH_ENV: crash_at}, log)
            assert process.wait(timeout=400) == -signal.SIGKILL, log.read_text()[-3000:]
            assert _group_gone(process.pid), "a JVM of the killed driver is still running"
            kills += 1
        # 3: an external SIGKILL of the whole process group at an arbitrary moment while data flows
        process = _start_driver(env, log)
        rows_now = len(producer.sent)
        _wait_for_bronze_growth(lake.bronze_events, rows_now, process)
        _kill_group(process)
        assert _group_gone(process.pid)
        kills += 1
    finally:
        producer.stop_event.set()
        producer.join(timeout=60)
    assert kills == 3

    # drain everything produced, then compare with what was sent
    final = _start_driver(env, log, "--available-now")
    assert final.wait(timeout=400) == 0, log.read_text()[-3000:]

    sent = producer.sent
    bronze = DeltaTable(lake.bronze_events).to_pandas()
    assert len(bronze) == len(sent), "bronze must hold every produced event exactly once"
    assert bronze[["kafka_partition", "kafka_offset"]].drop_duplicates().shape[0] == len(sent)
    assert sorted(bronze.event_id) == sorted(e["event_id"] for e in sent)

    expected_revenue: dict[datetime, Decimal] = defaultdict(lambda: Decimal("0.00"))
    expected_stock: dict[str, int] = defaultdict(int)
    for event in sent:
        minute = datetime.fromisoformat(event["event_time"].replace("Z", "+00:00")).replace(second=0, microsecond=0)
        if event["event_type"] == "purchase":
            expected_revenue[minute] += event["quantity"] * Decimal(event["unit_price"])
            expected_stock[event["product_id"]] -= event["quantity"]
        elif event["event_type"] == "restock":
            expected_stock[event["product_id"]] += event["quantity"]
        else:
            expected_revenue[minute] += Decimal("0.00")
    views = DeltaTable(lake.table("speed/sales_minute")).to_pandas()
    total = views[views.dimension == "total"]
    got = {row.bucket_start.to_pydatetime(): Decimal(str(row.revenue)) for row in total.itertuples()}
    assert got == dict(expected_revenue)
    inventory = DeltaTable(lake.table("speed/inventory")).to_pandas()
    assert {row.product_id: int(row.stock) for row in inventory.itertuples()} == dict(expected_stock)
    print(f"\n[crash test] {kills} kills, {len(sent)} events, {len(got)} minute buckets, exact after restart")
    assert json.dumps(sorted(got.items(), key=lambda kv: kv[0]), default=str)
