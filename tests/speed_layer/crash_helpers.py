"""What the crash tests share: a steady producer of generated traffic (duplicates, late and malformed records
included), the speed driver as a subprocess, and the exact reconciliation of everything the speed layer wrote
against what was produced."""

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

import pandas as pd
from deltalake import DeltaTable
from kafka import KafkaConsumer

from contracts.settings import PROJECT_ROOT
from contracts.tables import Lake
from event_generator.generator import GeneratedRecord, GeneratorConfig, generate, produce

T0 = datetime(2026, 3, 3, 9, 0, tzinfo=UTC)


class Producer(threading.Thread):
    """Produces generated events at a steady rate until told to stop (acks=all, idempotent, retried: the
    project's producer); keeps what it sent, how many were acknowledged and the error it stopped on, if any."""

    def __init__(self, settings, rate: float) -> None:
        super().__init__(daemon=True)
        self.settings, self.rate = settings, rate
        self.stop_event = threading.Event()
        self.sent: list[GeneratedRecord] = []
        self.acknowledged = 0
        self.error: BaseException | None = None

    def _records(self):
        config = GeneratorConfig(
            seed=5,
            count=100_000,
            rate=self.rate,
            start=T0,
            products=8,
            # within the 5-minute watermark, so every valid event counts once in the speed views
            late_ratio=0.02,
            late_minutes=1,
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


def group_gone(pgid: int, timeout_s: float = 30.0) -> bool:
    """True once no process of the group is left (killed children are reaped by init a moment later)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            os.killpg(pgid, 0)
        except ProcessLookupError:
            return True
        time.sleep(0.2)
    return False


def isolated_settings(settings, root: Path, topic: str):  # type: ignore[no-untyped-def]
    """``settings`` with the test's own topics (``topic``, ``topic``.alerts/.sales/.inventory) and lake under root."""
    return settings.model_copy(
        update={
            "events_topic": topic,
            "alerts_topic": f"{topic}.alerts",
            "speed_sales_topic": f"{topic}.sales",
            "speed_inventory_topic": f"{topic}.inventory",
            "lake_root": str(root / "lake"),
            "checkpoint_root": str(root / "ck"),
        }
    )


def driver_env(run_settings, **extra: str) -> dict[str, str]:
    """The environment of a ``retail speed`` subprocess on ``run_settings``' broker, topics, lake and jars."""
    return {
        **os.environ,
        "RETAIL_KAFKA_BOOTSTRAP_SERVERS": run_settings.kafka_bootstrap_servers,
        "RETAIL_EVENTS_TOPIC": run_settings.events_topic,
        "RETAIL_ALERTS_TOPIC": run_settings.alerts_topic,
        "RETAIL_SPEED_SALES_TOPIC": run_settings.speed_sales_topic,
        "RETAIL_SPEED_INVENTORY_TOPIC": run_settings.speed_inventory_topic,
        "RETAIL_LAKE_ROOT": run_settings.lake_root,
        "RETAIL_CHECKPOINT_ROOT": run_settings.checkpoint_root,
        "RETAIL_JAR_CACHE": str(run_settings.jar_cache),
        **extra,
    }


def start_driver(env: dict[str, str], log: Path, *extra: str) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "retail_cli.main", "speed", *extra],
        cwd=PROJECT_ROOT,
        env=env,
        stdout=log.open("ab"),
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )


def wait_for_bronze_growth(path: str, at_least: int, process: subprocess.Popen, timeout_s: float = 300) -> None:
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


def kill_group(process: subprocess.Popen) -> None:
    os.killpg(process.pid, signal.SIGKILL)
    process.wait(timeout=60)


def expected_alerts_of(bronze, threshold: int) -> dict[str, tuple]:
    """Alerts from bronze replayed per product in Kafka order, re-sent ids once (the speed layer's rule)."""
    alerts: dict[str, tuple] = {}
    stock: dict[str, int] = defaultdict(int)
    open_alert: dict[str, str] = {}
    seen: set[str] = set()
    moves = bronze[bronze.event_type.isin(["restock", "purchase"])].sort_values(["kafka_partition", "kafka_offset"])
    for row in moves.itertuples():
        if row.event_id in seen:
            continue
        seen.add(row.event_id)
        product = row.product_id
        stock[product] += row.quantity if row.event_type == "restock" else -row.quantity
        if stock[product] < threshold and product not in open_alert:
            alert_id = f"low_stock:{product}:{row.kafka_partition}:{row.kafka_offset}"
            open_alert[product] = alert_id
            alerts[alert_id] = (product, stock[product], row.kafka_timestamp, None)
        elif stock[product] >= threshold and product in open_alert:
            alert_id = open_alert.pop(product)
            alerts[alert_id] = (*alerts[alert_id][:3], row.kafka_timestamp)
    return alerts


def newest_per_key(settings, topic: str) -> dict[bytes, dict]:
    consumer = KafkaConsumer(
        topic,
        bootstrap_servers=settings.kafka_bootstrap_servers,
        auto_offset_reset="earliest",
        consumer_timeout_ms=5000,
    )
    newest = {message.key: json.loads(message.value) for message in consumer}
    consumer.close()
    return newest


def assert_exact_after_restart(run_settings, lake: Lake, sent: list[GeneratedRecord]) -> dict[str, int]:
    """Bronze, quarantine, the Delta copy of the views, the live topics and the alerts against what was sent.

    Every valid record is in bronze exactly once, every malformed one in quarantine; minute revenue (to the
    cent), stock per product and one alert per threshold crossing equal a plain-Python replay of the events.
    Returns counts for the test's summary line.
    """
    valid = [record.event for record in sent if record.event is not None]
    malformed = [record for record in sent if record.event is None]
    assert malformed and len(valid) > len({e["event_id"] for e in valid}), "traffic must hold bad and re-sent events"
    bronze = DeltaTable(lake.bronze_events).to_pandas()
    assert len(bronze) == len(valid), "bronze must hold every valid record exactly once"
    assert bronze[["kafka_partition", "kafka_offset"]].drop_duplicates().shape[0] == len(valid)
    assert sorted(bronze.event_id) == sorted(e["event_id"] for e in valid)
    quarantine = DeltaTable(lake.bronze_quarantine).to_pandas()
    assert sorted(quarantine.reject_reason.notna()) == [True] * len(malformed)
    assert len(quarantine) == len(malformed)

    unique = {event["event_id"]: event for event in valid}.values()
    expected_revenue: dict[datetime, Decimal] = defaultdict(lambda: Decimal("0.00"))
    expected_stock: dict[str, int] = defaultdict(int)
    for event in unique:
        minute = datetime.fromisoformat(event["event_time"].replace("Z", "+00:00")).replace(second=0, microsecond=0)
        if event["event_type"] == "purchase":
            expected_revenue[minute] += event["quantity"] * Decimal(event["unit_price"])
            expected_stock[event["product_id"]] -= event["quantity"]
        elif event["event_type"] == "restock":
            expected_stock[event["product_id"]] += event["quantity"]
        else:
            expected_revenue[minute] += Decimal("0.00")
    # the Delta copy
    views = DeltaTable(lake.table("speed/sales_minute")).to_pandas()
    total = views[views.dimension == "total"]
    got = {row.bucket_start.to_pydatetime(): Decimal(str(row.revenue)) for row in total.itertuples()}
    assert got == dict(expected_revenue)
    inventory = DeltaTable(lake.table("speed/inventory")).to_pandas()
    assert {row.product_id: int(row.stock) for row in inventory.itertuples()} == dict(expected_stock)
    # what the serving layer materialises: the newest value per key on the live topics
    served = newest_per_key(run_settings, run_settings.speed_sales_topic)
    served_total = {
        datetime.fromisoformat(v["bucket_start"].replace("Z", "+00:00")): Decimal(v["revenue"])
        for v in served.values()
        if v["dimension"] == "total"
    }
    assert served_total == dict(expected_revenue)
    served_stock = newest_per_key(run_settings, run_settings.speed_inventory_topic)
    assert {v["product_id"]: v["stock"] for v in served_stock.values()} == dict(expected_stock)
    # alerts: one per crossing, at the crossing event's Kafka timestamp, in Delta and on the topic
    expected_alerts = expected_alerts_of(bronze, run_settings.low_stock_threshold)
    assert expected_alerts, "the traffic must cross the low-stock threshold"
    alerts = DeltaTable(lake.table("speed/alerts")).to_pandas()
    got_alerts = {
        row.alert_id: (
            row.product_id,
            row.stock_at_open,
            row.opened_at,
            None if pd.isna(row.resolved_at) else row.resolved_at,
        )
        for row in alerts.itertuples()
    }
    assert got_alerts == expected_alerts
    on_topic = newest_per_key(run_settings, run_settings.alerts_topic)
    assert {key.decode() for key in on_topic} == set(expected_alerts)
    return {"records": len(sent), "malformed": len(malformed), "buckets": len(got), "alerts": len(expected_alerts)}
