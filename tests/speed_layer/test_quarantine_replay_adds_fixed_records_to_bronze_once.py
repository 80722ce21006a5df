"""`retail replay-quarantine`: records the contract rejected are re-parsed with the current contract (here a wider
clock-skew limit) and the ones that now pass land in bronze exactly once, however often the replay runs."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from deltalake import DeltaTable

from contracts.tables import Lake
from event_generator.generator import GeneratedRecord, produce
from speed_layer.job import SpeedLayer
from tests.speed_layer.replay_helpers import event, records, retail, run_settings

pytestmark = pytest.mark.integration


def test_replay_after_a_contract_fix_adds_each_event_once_to_the_cent(
    kafka, spark, settings, test_root, monkeypatch
) -> None:
    run = run_settings(settings, test_root, "replay")
    kafka.ensure_topics({run.events_topic: 3, run.alerts_topic: 1})
    lake = Lake(run.lake_root, run.checkpoint_root)
    now = datetime.now(UTC).replace(microsecond=0)
    ahead = now + timedelta(hours=2)  # beyond the default skew of 300 s: event_time_in_future
    valid = [
        event("v1", "purchase", now - timedelta(hours=1), "p1", "u1", 2, "19.99"),
        event("v2", "page_view", now - timedelta(hours=1), "p2", "u2"),
    ]
    future = [
        event("f1", "purchase", ahead, "p1", "u3", 3, "1234.56"),
        event("f2", "purchase", ahead + timedelta(minutes=1), "p2", "u4", 1, "0.01"),
        event("f3", "restock", ahead, "p2", quantity=40),
    ]
    resent = records([future[0]])  # the same event sent twice: two quarantine rows, one event
    not_json = [GeneratedRecord(key=b"p1", value=b'{"event_id": "x", ', kind="not_json")]
    produce(records(valid) + records(future) + resent + not_json, run)
    SpeedLayer(spark, run, available_now=True).drain()

    quarantine = DeltaTable(lake.bronze_quarantine).to_pandas()
    assert sorted(quarantine.reject_reason) == ["event_time_in_future"] * 4 + ["not_json"]
    assert sorted(DeltaTable(lake.bronze_events).to_pandas().event_id) == ["v1", "v2"]

    # the contract unchanged: nothing passes, nothing is added
    assert retail(monkeypatch, run, "replay-quarantine", "--reason", "event_time_in_future") == 0
    assert len(DeltaTable(lake.bronze_events).to_pandas()) == 2

    # the fix (a wider skew), replayed twice: each event once, with its original coordinates and ingest time
    fixed = {"RETAIL_MAX_EVENT_TIME_SKEW_SECONDS": str(4 * 3600)}
    for _ in range(2):
        assert retail(monkeypatch, run, "replay-quarantine", **fixed) == 0
        bronze = DeltaTable(lake.bronze_events).to_pandas()
        assert sorted(bronze.event_id) == ["f1", "f2", "f3", "v1", "v2"]
    replayed = bronze[bronze.event_id.isin(["f1", "f2", "f3"])].set_index("event_id")
    revenue = sum(
        (
            Decimal(str(row.unit_price)) * int(row.quantity)
            for row in replayed.itertuples()
            if row.event_type == "purchase"
        ),
        Decimal("0.00"),
    )
    assert revenue == Decimal("3703.68") + Decimal("0.01")
    assert Decimal(str(replayed.loc["f1", "unit_price"])) == Decimal("1234.56")
    assert int(replayed.loc["f3", "quantity"]) == 40
    first_f1 = (
        quarantine[
            quarantine.raw_value.map(
                lambda raw: (
                    json.loads(bytes(raw)).get("event_id") == "f1" if raw[:1] == b"{" and raw.endswith(b"}") else False
                )
            )
        ]
        .sort_values(["ingest_time", "kafka_partition", "kafka_offset"])
        .iloc[0]
    )
    assert (replayed.loc["f1", "kafka_partition"], replayed.loc["f1", "kafka_offset"]) == (
        first_f1.kafka_partition,
        first_f1.kafka_offset,
    )
    assert replayed.loc["f1", "ingest_time"] == first_f1.ingest_time
    assert str(replayed.loc["f1", "event_date"]) == ahead.date().isoformat()
    # quarantine is the record of what was rejected at ingest: untouched
    assert len(DeltaTable(lake.bronze_quarantine).to_pandas()) == 5
