from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest

from contracts.events import EVENT_FIELDS, EventType
from event_generator.generator import MALFORMED_KINDS, GeneratorConfig, generate

START = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


def test_same_seed_same_records() -> None:
    config = GeneratorConfig(seed=3, count=500, start=START, duplicate_ratio=0.1, late_ratio=0.1, malformed_ratio=0.05)
    assert list(generate(config)) == list(generate(config))
    assert list(generate(config)) != list(generate(GeneratorConfig(seed=4, count=500, start=START)))


def test_valid_events_follow_the_contract() -> None:
    records = list(generate(GeneratorConfig(seed=1, count=2000, start=START, rate=100)))
    assert len(records) == 2000
    types = set()
    for record in records:
        event = json.loads(record.value)
        assert tuple(event) == EVENT_FIELDS
        assert record.key == event["product_id"].encode()
        assert event["schema_version"] == 1
        types.add(event["event_type"])
        moment = datetime.fromisoformat(event["event_time"].replace("Z", "+00:00"))
        assert START <= moment < START + timedelta(seconds=20)
        if event["event_type"] == EventType.RESTOCK:
            assert event["user_id"] is None and event["quantity"] > 0
        else:
            assert event["user_id"]
        if event["event_type"] == EventType.PURCHASE:
            price = Decimal(event["unit_price"])
            assert price == price.quantize(Decimal("0.01")) and price >= 0
            assert event["quantity"] > 0 and event["order_id"] and event["currency"] == "EUR"
        else:
            assert event["unit_price"] is None and event["order_id"] is None
    assert types == {t.value for t in EventType}


def test_faults_are_injected_as_asked() -> None:
    config = GeneratorConfig(
        seed=9,
        count=4000,
        start=START,
        rate=1000,
        late_ratio=0.05,
        late_minutes=15,
        duplicate_ratio=0.05,
        malformed_ratio=0.05,
    )
    records = list(generate(config))
    kinds = {record.kind for record in records}
    assert set(MALFORMED_KINDS) <= kinds
    duplicates = [r for r in records if r.kind == "duplicate"]
    assert duplicates
    values = [r.value for r in records]
    assert all(values.count(d.value) == 2 for d in duplicates[:20])
    for late in (r for r in records if r.kind == "late"):
        moment = datetime.fromisoformat(json.loads(late.value)["event_time"].replace("Z", "+00:00"))
        assert moment < START  # 15 minutes before a 4-second run


@pytest.mark.parametrize("field,value", [("count", -1), ("rate", 0), ("late_ratio", 1.5), ("products", 0)])
def test_bad_config_names_the_argument(field: str, value: float) -> None:
    with pytest.raises(ValueError, match=field):
        GeneratorConfig(**{field: value})
