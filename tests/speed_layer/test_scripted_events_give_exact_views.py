"""A scripted event set with known answers, through the real broker and the real speed layer queries.

Round 1 moves event time to 10:10 (watermark 5 minutes → 10:05). Round 2 then brings a late event within the
watermark (10:06, counted), one beyond it (10:01, left out of the speed views but kept in bronze), re-sends
(counted once), and one record of each malformed kind (quarantined with its reason).
"""

from __future__ import annotations

import json
import time
from collections import defaultdict
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from deltalake import DeltaTable
from kafka import KafkaConsumer

from contracts.tables import Lake
from event_generator.generator import GeneratedRecord, produce
from serving_layer.service import ServingLayer
from speed_layer.job import SpeedLayer
from speed_layer.progress import ProgressRecorder

pytestmark = pytest.mark.integration

T0 = datetime(2026, 2, 2, 10, 0, tzinfo=UTC)
THRESHOLD = 10


def _event(
    event_id: str,
    event_type: str,
    minute: float,
    product: str = "p1",
    user: str | None = "u1",
    quantity: int | None = None,
    price: str | None = None,
) -> dict:
    return {
        "schema_version": 1,
        "event_id": event_id,
        "event_type": event_type,
        "event_time": (T0 + timedelta(minutes=minute)).isoformat().replace("+00:00", "Z"),
        "user_id": None if event_type == "restock" else user,
        "product_id": product,
        "category": {"p1": "books", "p2": "toys"}[product],
        "quantity": quantity,
        "unit_price": price,
        "currency": "EUR" if price else None,
        "order_id": f"o-{event_id}" if event_type == "purchase" else None,
    }


ROUND_1 = [
    _event("r1", "restock", 0.0, "p1", quantity=12),
    _event("a1", "purchase", 0.5, "p1", "u1", 2, "19.99"),  # p1 stock 10
    _event("a2", "page_view", 0.7, "p2", "u2"),
    _event("a3", "purchase", 1.2, "p1", "u2", 1, "19.99"),  # p1 stock 9 → alert opens
    _event("a4", "purchase", 3.0, "p2", "u3", 3, "5.05"),  # p2 stock -3 → alert opens
    _event("r2", "restock", 4.0, "p1", quantity=5),  # p1 stock 14 → alert resolves
    _event("a5", "purchase", 9.0, "p1", "u1", 1, "0.01"),  # p1 stock 13
    _event("a6", "page_view", 10.0, "p2", "u4"),  # moves max event time to 10:10
]
ROUND_2 = [
    _event("b1", "purchase", 6.5, "p2", "u5", 2, "100.00"),  # late but within the watermark: counted
    _event("b2", "purchase", 1.5, "p2", "u6", 1, "7.00"),  # beyond the watermark: bronze only
    ROUND_1[6],  # re-send of a5 within the watermark
    ROUND_1[3],  # re-send of a3, beyond the watermark
]
MALFORMED = {
    "not_json": b'{"event_id": "m1", ',
    "unknown_event_type": {**_event("m2", "page_view", 10.0), "event_type": "teleport"},
    "bad_event_time": {**_event("m3", "page_view", 10.0), "event_time": "2026-02-02 10:00"},
    "missing_product_id": {**_event("m4", "page_view", 10.0), "product_id": ""},
    "missing_event_id": {**_event("m5", "page_view", 10.0), "event_id": None},
    "bad_quantity": _event("m6", "purchase", 10.0, quantity=0, price="1.00"),
    "sub_cent_unit_price": _event("m7", "purchase", 10.0, quantity=1, price="1.005"),
    "negative_unit_price": _event("m8", "purchase", 10.0, quantity=1, price="-1.00"),
    "missing_user_id": _event("m9", "purchase", 10.0, user=None, quantity=1, price="1.00"),
    "unsupported_schema_version": {**_event("m10", "page_view", 10.0), "schema_version": 2},
    # a purchase in yen in a EUR deployment: quarantined, so it changes no revenue, order, unit or stock
    "foreign_currency": {**_event("m11", "purchase", 9.5, "p1", "u7", 1, "5000"), "currency": "JPY"},
}


def _records(events: list[dict]) -> list[GeneratedRecord]:
    return [GeneratedRecord(key=e["product_id"].encode(), value=json.dumps(e).encode(), kind="valid") for e in events]


def _malformed_records() -> list[GeneratedRecord]:
    return [
        GeneratedRecord(key=b"p1", value=body if isinstance(body, bytes) else json.dumps(body).encode(), kind=kind)
        for kind, body in MALFORMED.items()
    ]


def _expected_minutes(events: list[dict]) -> dict[datetime, tuple[Decimal, int, int, int]]:
    buckets: dict[datetime, list] = defaultdict(lambda: [Decimal("0.00"), 0, 0, set()])
    for e in events:
        if e["event_type"] == "restock":
            continue
        moment = datetime.fromisoformat(e["event_time"].replace("Z", "+00:00")).replace(second=0, microsecond=0)
        bucket = buckets[moment]
        if e["event_type"] == "purchase":
            bucket[0] += e["quantity"] * Decimal(e["unit_price"])
            bucket[1] += 1
            bucket[2] += e["quantity"]
        bucket[3].add(e["user_id"])
    return {k: (v[0], v[1], v[2], len(v[3])) for k, v in buckets.items()}


def _run_available_now(spark, settings) -> None:
    SpeedLayer(spark, settings, available_now=True).drain()


def test_scripted_events_give_exact_bronze_views_quarantine_and_alerts(kafka, spark, settings, test_root) -> None:
    run_settings = settings.model_copy(
        update={
            "events_topic": "speed.scripted",
            "alerts_topic": "speed.scripted.alerts",
            "speed_sales_topic": "speed.scripted.sales",
            "speed_inventory_topic": "speed.scripted.inventory",
            "lake_root": str(test_root / "scripted" / "lake"),
            "checkpoint_root": str(test_root / "scripted" / "ck"),
            "speed_watermark": "5 minutes",
            "low_stock_threshold": THRESHOLD,
        }
    )
    kafka.ensure_topics({run_settings.events_topic: 3, run_settings.alerts_topic: 1})
    lake = Lake(run_settings.lake_root, run_settings.checkpoint_root)

    recorder = ProgressRecorder(lake.table("speed/progress"), flush_every_s=3600)
    recorder.attach(spark)
    try:
        produce(_records(ROUND_1), run_settings)
        _run_available_now(spark, run_settings)
        produce(_records(ROUND_2) + _malformed_records(), run_settings)
        _run_available_now(spark, run_settings)
        time.sleep(3)  # the listener bus delivers the last progress events asynchronously
    finally:
        recorder.close()

    # bronze: every valid record once per Kafka record, duplicates and late ones included
    bronze = DeltaTable(lake.bronze_events).to_pandas()
    assert len(bronze) == len(ROUND_1) + len(ROUND_2)
    assert bronze[["kafka_partition", "kafka_offset"]].drop_duplicates().shape[0] == len(bronze)
    assert sorted(bronze.event_id) == sorted(e["event_id"] for e in ROUND_1 + ROUND_2)
    assert "b2" in set(bronze.event_id)  # beyond the watermark, still in the master dataset
    assert Decimal(str(bronze.loc[bronze.event_id == "b1", "unit_price"].iloc[0])) == Decimal("100.00")

    # quarantine: one row per malformed record, with its reason and raw bytes
    quarantine = DeltaTable(lake.bronze_quarantine).to_pandas()
    assert sorted(quarantine.reject_reason) == sorted(MALFORMED)
    raw = {row.reject_reason: bytes(row.raw_value) for row in quarantine.itertuples()}
    assert raw["not_json"] == MALFORMED["not_json"]

    # speed views: dedup within the watermark, late-beyond-watermark left out, money to the cent
    counted = [*ROUND_1, ROUND_2[0]]
    expected = _expected_minutes(counted)
    views = DeltaTable(lake.table("speed/sales_minute")).to_pandas()
    total = views[views.dimension == "total"]
    got = {
        row.bucket_start.to_pydatetime(): (Decimal(str(row.revenue)), row.orders, row.units, row.users_estimate)
        for row in total.itertuples()
    }
    assert got == expected
    assert sum(v[0] for v in got.values()) == Decimal("39.98") + Decimal("19.99") + Decimal("15.15") + Decimal(
        "0.01"
    ) + Decimal("200.00")
    per_product = views[(views.dimension == "product") & (views.key == "p2")]
    assert sum(Decimal(str(r)) for r in per_product.revenue) == Decimal("215.15")

    # late events are counted per batch: b2 and the re-send of a3 are beyond the watermark in both queries
    progress = DeltaTable(lake.table("speed/progress")).to_pandas()
    late = progress.groupby("query").late_rows.sum()
    assert late["rollups"] == 2 and late["inventory"] == 2
    assert set(progress["query"]) == {"bronze", "rollups", "inventory", "durable"}

    # inventory and alerts: Kafka order per product, one alert per crossing, re-sends ignored
    inventory = DeltaTable(lake.table("speed/inventory")).to_pandas().set_index("product_id")
    assert inventory.loc["p1", "stock"] == 12 - 2 - 1 + 5 - 1
    assert inventory.loc["p2", "stock"] == -3 - 2  # b2 is beyond the watermark: left out, like in the rollups
    assert bool(inventory.loc["p2", "below_threshold"]) and not bool(inventory.loc["p1", "below_threshold"])
    alerts = DeltaTable(lake.table("speed/alerts")).to_pandas().set_index("product_id")
    assert sorted(alerts.index) == ["p1", "p2"]
    arrived = {row.event_id: row.kafka_timestamp for row in bronze.itertuples()}
    assert alerts.loc["p1", "opened_at"] == arrived["a3"]  # alerts carry the crossing event's Kafka timestamp
    assert alerts.loc["p1", "resolved_at"] == arrived["r2"]
    assert alerts.loc["p1", "stock_at_open"] == 9
    assert str(alerts.loc["p2", "resolved_at"]) == "NaT"

    consumer = KafkaConsumer(
        run_settings.alerts_topic,
        bootstrap_servers=run_settings.kafka_bootstrap_servers,
        auto_offset_reset="earliest",
        consumer_timeout_ms=5000,
    )
    messages = [json.loads(m.value) for m in consumer]
    consumer.close()
    states = sorted((m["product_id"], m["state"]) for m in {(m["alert_id"], m["state"]): m for m in messages}.values())
    assert states == [("p1", "opened"), ("p1", "resolved"), ("p2", "opened")]

    # the live path end to end: what Spark's Kafka sink wrote, materialised by the serving layer's topic views
    live_settings = run_settings.model_copy(update={"serving_speed_source": "kafka"})
    with ServingLayer.from_settings(live_settings) as serving:
        assert serving.speed_source.wait_caught_up(60), serving.health()["speed_source"]
        served = serving.sales(T0, T0 + timedelta(minutes=15), "minute")
        health = serving.health()
    assert {row["source"] for row in served.rows.to_pylist()} == {"speed"}
    assert health["speed_source"]["serving_from"]["sales"] == "kafka"
    got_live = {
        row["bucket_start"]: (Decimal(str(row["revenue"])), row["orders"], row["units"], row["distinct_users"])
        for row in served.rows.to_pylist()
    }
    assert got_live == expected, "served from the live topics: the same exact answers as the Delta copy"
