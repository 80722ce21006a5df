"""`retail rebuild-speed` after the speed layer's checkpoints are lost: the speed tables, the live topics and the
inventory are recomputed exactly from bronze, and the restarted speed layer continues from there: later events
(in a minute the rebuild already holds, re-sends, more stock moves) are counted once, nothing is ingested twice."""

from __future__ import annotations

import json
import shutil
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from deltalake import DeltaTable
from kafka import KafkaConsumer

from contracts.tables import Lake
from event_generator.generator import produce
from speed_layer.job import SpeedLayer
from tests.speed_layer.replay_helpers import event, expected_minutes, expected_stock, records, retail, run_settings

pytestmark = pytest.mark.integration

T0 = datetime(2026, 4, 7, 9, 0, tzinfo=UTC)


def at(minutes: float) -> datetime:
    return T0 + timedelta(minutes=minutes)


ROUND_1 = [
    event("r1", "restock", at(0), "p1", quantity=30),
    event("r2", "restock", at(0), "p2", quantity=5),
    event("a1", "purchase", at(0.5), "p1", "u1", 2, "19.99"),
    event("a2", "page_view", at(1), "p2", "u2"),
    event("a3", "purchase", at(2.2), "p2", "u3", 3, "5.05"),  # p2 stock 2: alert opens
    event("a4", "purchase", at(6), "p1", "u4", 1, "1000000.00"),
    event("a5", "add_to_cart", at(8), "p3", "u5", 1),
    event("a6", "purchase", at(8.5), "p3", "u5", 4, "0.01"),
]
ROUND_1 = [*ROUND_1, ROUND_1[2]]  # a re-send of a1
ROUND_2 = [
    event("b1", "purchase", at(8.7), "p1", "u6", 1, "10.10"),  # the minute 09:08 the rebuild already holds
    event("b2", "purchase", at(9.5), "p2", "u7", 1, "2.00"),  # p2 stock 1
    event("b3", "restock", at(9.6), "p2", quantity=20),  # p2 stock 21: the alert resolves
    event("b4", "purchase", at(4), "p3", "u8", 1, "3.33"),  # late, within the 5-minute watermark
    ROUND_1[5],  # a re-send of a4 (09:06, within the watermark)
    ROUND_1[7],  # a re-send of a6 (09:08)
]


def _totals(lake: Lake) -> dict[datetime, tuple[Decimal, int, int]]:
    views = DeltaTable(lake.table("speed/sales_minute")).to_pandas()
    total = views[views.dimension == "total"]
    return {
        row.bucket_start.to_pydatetime(): (Decimal(str(row.revenue)), int(row.orders), int(row.units))
        for row in total.itertuples()
    }


def _stock(lake: Lake) -> dict[str, int]:
    inventory = DeltaTable(lake.table("speed/inventory")).to_pandas()
    return {row.product_id: int(row.stock) for row in inventory.itertuples()}


def _newest_on_topic(settings, topic: str) -> dict[str, dict | None]:
    consumer = KafkaConsumer(
        topic,
        bootstrap_servers=settings.kafka_bootstrap_servers,
        auto_offset_reset="earliest",
        consumer_timeout_ms=5000,
    )
    newest = {m.key.decode(): (None if m.value is None else json.loads(m.value)) for m in consumer}
    consumer.close()
    return {key: value for key, value in newest.items() if value is not None}


def _served_totals(settings) -> dict[datetime, Decimal]:
    return {
        datetime.fromisoformat(v["bucket_start"].replace("Z", "+00:00")): Decimal(v["revenue"])
        for v in _newest_on_topic(settings, settings.speed_sales_topic).values()
        if v["dimension"] == "total"
    }


def test_rebuild_from_bronze_is_exact_and_the_restart_counts_nothing_twice(
    kafka, spark, settings, test_root, monkeypatch
) -> None:
    run = run_settings(settings, test_root, "rebuild").model_copy(update={"low_stock_threshold": 3})
    kafka.ensure_topics({run.events_topic: 3, run.alerts_topic: 1})
    lake = Lake(run.lake_root, run.checkpoint_root)

    produce(records(ROUND_1), run)
    SpeedLayer(spark, run, available_now=True).drain()
    assert _totals(lake) == expected_minutes(ROUND_1)

    # the checkpoints are lost; the Delta speed tables are stale garbage from the operator's point of view
    shutil.rmtree(run.checkpoint_root)
    started = datetime.now(UTC)
    assert retail(monkeypatch, run, "rebuild-speed") == 0
    print(f"\n[rebuild] took {(datetime.now(UTC) - started).total_seconds():.1f}s")
    assert _totals(lake) == expected_minutes(ROUND_1)
    assert _stock(lake) == expected_stock(ROUND_1) == {"p1": 27, "p2": 2, "p3": -4}
    alerts = DeltaTable(lake.table("speed/alerts")).to_pandas().set_index("product_id")
    assert sorted(alerts.index) == ["p2", "p3"] and alerts.loc["p2", "stock_at_open"] == 2
    assert {k: v[0] for k, v in expected_minutes(ROUND_1).items()} == _served_totals(run)

    # running it again gives the same answer (it only reads bronze)
    assert retail(monkeypatch, run, "rebuild-speed") == 0
    assert _totals(lake) == expected_minutes(ROUND_1)

    # the restarted speed layer continues from the plan: nothing re-ingested, nothing counted twice
    produce(records(ROUND_2), run)
    SpeedLayer(spark, run, available_now=True).drain()
    bronze = DeltaTable(lake.bronze_events).to_pandas()
    assert len(bronze) == len(ROUND_1) + len(ROUND_2)
    assert bronze[["kafka_partition", "kafka_offset"]].drop_duplicates().shape[0] == len(bronze)
    everything = ROUND_1 + ROUND_2
    assert _totals(lake) == expected_minutes(everything)
    assert _totals(lake)[at(8)] == (Decimal("0.04") + Decimal("10.10"), 2, 5)
    assert sum(v[0] for v in _totals(lake).values()) == Decimal("1000070.60")
    assert _stock(lake) == expected_stock(everything) == {"p1": 26, "p2": 21, "p3": -5}
    alerts = DeltaTable(lake.table("speed/alerts")).to_pandas().set_index("product_id")
    assert str(alerts.loc["p2", "resolved_at"]) != "NaT"  # the seeded open alert resolved after the restart
    assert {k: v[0] for k, v in expected_minutes(everything).items()} == _served_totals(run)
    stock_on_topic = _newest_on_topic(run, run.speed_inventory_topic)
    assert {v["product_id"]: v["stock"] for v in stock_on_topic.values()} == expected_stock(everything)
