"""Helpers of the replay and rebuild tests: scripted events, the CLI run in-process with a test's settings."""

from __future__ import annotations

import json
from collections import defaultdict
from datetime import datetime, timedelta
from decimal import Decimal

import pytest

from contracts.settings import Settings
from event_generator.generator import GeneratedRecord
from retail_cli.main import main


def event(
    event_id: str,
    event_type: str,
    at: datetime,
    product: str = "p1",
    user: str | None = "u1",
    quantity: int | None = None,
    price: str | None = None,
) -> dict:
    return {
        "schema_version": 1,
        "event_id": event_id,
        "event_type": event_type,
        "event_time": at.isoformat().replace("+00:00", "Z"),
        "user_id": None if event_type == "restock" else user,
        "product_id": product,
        "category": "books" if product in ("p1", "p3") else "toys",
        "quantity": quantity,
        "unit_price": price,
        "currency": "EUR" if price else None,
        "order_id": f"o-{event_id}" if event_type == "purchase" else None,
    }


def records(events: list[dict]) -> list[GeneratedRecord]:
    return [GeneratedRecord(key=e["product_id"].encode(), value=json.dumps(e).encode(), kind="valid") for e in events]


def minute_of(e: dict) -> datetime:
    return datetime.fromisoformat(e["event_time"].replace("Z", "+00:00")).replace(second=0, microsecond=0)


def expected_minutes(events: list[dict]) -> dict[datetime, tuple[Decimal, int, int]]:
    """Revenue, orders and units per minute over the unique events (first copy per event_id), in plain Python."""
    unique = {}
    for e in events:
        unique.setdefault(e["event_id"], e)
    buckets: dict[datetime, list] = defaultdict(lambda: [Decimal("0.00"), 0, 0])
    for e in unique.values():
        if e["event_type"] == "restock":
            continue
        bucket = buckets[minute_of(e)]
        if e["event_type"] == "purchase":
            bucket[0] += e["quantity"] * Decimal(e["unit_price"])
            bucket[1] += 1
            bucket[2] += e["quantity"]
    return {k: tuple(v) for k, v in buckets.items()}


def expected_stock(events: list[dict]) -> dict[str, int]:
    unique = {}
    for e in events:
        unique.setdefault(e["event_id"], e)
    stock: dict[str, int] = defaultdict(int)
    for e in unique.values():
        if e["event_type"] == "restock":
            stock[e["product_id"]] += e["quantity"]
        elif e["event_type"] == "purchase":
            stock[e["product_id"]] -= e["quantity"]
    return dict(stock)


def run_settings(settings: Settings, root, name: str) -> Settings:
    return settings.model_copy(
        update={
            "events_topic": f"{name}.events",
            "alerts_topic": f"{name}.alerts",
            "speed_sales_topic": f"{name}.sales",
            "speed_inventory_topic": f"{name}.inventory",
            "lake_root": str(root / name / "lake"),
            "checkpoint_root": str(root / name / "ck"),
            "run_dir": root / name / "run",
            "speed_watermark": "5 minutes",
        }
    )


def retail(monkeypatch: pytest.MonkeyPatch, settings: Settings, *argv: str, **env: str) -> int:
    """`retail ARGV` in this process (it reuses the test's Spark session) with the settings as RETAIL_* variables."""
    values = {
        "RETAIL_KAFKA_BOOTSTRAP_SERVERS": settings.kafka_bootstrap_servers,
        "RETAIL_EVENTS_TOPIC": settings.events_topic,
        "RETAIL_ALERTS_TOPIC": settings.alerts_topic,
        "RETAIL_SPEED_SALES_TOPIC": settings.speed_sales_topic,
        "RETAIL_SPEED_INVENTORY_TOPIC": settings.speed_inventory_topic,
        "RETAIL_LAKE_ROOT": settings.lake_root,
        "RETAIL_CHECKPOINT_ROOT": settings.checkpoint_root,
        "RETAIL_RUN_DIR": str(settings.run_dir),
        "RETAIL_JAR_CACHE": str(settings.jar_cache),
        "RETAIL_SPEED_WATERMARK": settings.speed_watermark,
        "RETAIL_LOW_STOCK_THRESHOLD": str(settings.low_stock_threshold),
        **env,
    }
    with monkeypatch.context() as patch:
        for key, value in values.items():
            patch.setenv(key, value)
        return main(list(argv))


def since(start: datetime, minutes: float) -> datetime:
    return start + timedelta(minutes=minutes)
