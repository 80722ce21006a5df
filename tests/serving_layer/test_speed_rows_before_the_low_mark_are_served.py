"""Issue 11 ("Older speed data vanishes") on real Delta tables: speed rows before L are served as speed rows.

The lake (Spark + Delta, the way the layers write it): the speed layer has purchases from 2026-01-04 10:00 (before
the batch history and before the day of speed rows every query shares), 2026-01-05 06:00 (before L), 13:00
(inside [L, W)) and 2026-01-06 00:01 (after W). The batch run published L = 2026-01-05 12:00 and
W = 2026-01-06 00:00; its views also hold rows before L (with late purchases the speed layer missed), which must
not be served, while its 13:00 row (also with a late purchase) must.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from deltalake import DeltaTable
from fastapi.testclient import TestClient

from serving_layer.api import create_app
from serving_layer.service import ServingLayer, low_water_mark_of
from tests.serving_layer.lake_builder import LakeBuilder, purchase

D = datetime(2026, 1, 5, tzinfo=UTC)
W = D + timedelta(days=1)
L = D + timedelta(hours=12)
BEFORE_HISTORY = D - timedelta(days=1) + timedelta(hours=10)  # 2026-01-04 10:00
BEFORE_L = D + timedelta(hours=6)
INSIDE = D + timedelta(hours=13)
AFTER_W = W + timedelta(minutes=1)


def at(moment: datetime, seconds: int) -> datetime:
    return moment + timedelta(seconds=seconds)


SPEED_EVENTS = [
    purchase(1, at(BEFORE_HISTORY, 30), "u1", "p-1", "toys", 1, "10.00"),
    purchase(2, at(BEFORE_L, 30), "u2", "p-2", "books", 1, "6.00"),
    purchase(3, at(INSIDE, 30), "u3", "p-1", "toys", 1, "13.00"),
    purchase(4, at(AFTER_W, 30), "u4", "p-2", "books", 1, "2.00"),
]
LATE = [  # the batch has these, the speed layer dropped them behind its watermark
    purchase(11, at(BEFORE_HISTORY, 40), "u9", "p-1", "toys", 1, "99.00"),
    purchase(12, at(BEFORE_L, 45), "u9", "p-2", "books", 1, "60.00"),
    purchase(13, at(INSIDE, 45), "u9", "p-1", "toys", 1, "130.00"),
]


@pytest.fixture(scope="module")
def lake(spark, test_root) -> LakeBuilder:  # type: ignore[no-untyped-def]
    builder = LakeBuilder(spark, str(test_root / "serving_low_mark_lake"))
    builder.merge_speed_minutes(SPEED_EVENTS)
    batch_events = [e for e in [*SPEED_EVENTS, *LATE] if e.event_time < W]
    builder.write_batch(batch_events, "run-2026-01-05", (L, W), W, low_water_mark=L)
    return builder


def served(serving: ServingLayer, grain: str, **query: object) -> list[tuple[datetime, str, str]]:
    result = serving.sales(BEFORE_HISTORY - timedelta(days=1), W + timedelta(days=1), grain, **query)  # type: ignore[arg-type]
    return [(r["bucket_start"], str(r["revenue"]), r["source"]) for r in result.rows.to_pylist()]


def test_minutes_before_l_come_from_speed_inside_the_marks_from_batch_after_w_from_speed(lake: LakeBuilder) -> None:
    serving = ServingLayer(lake.lake.root)
    result = serving.sales(BEFORE_HISTORY, W + timedelta(hours=1), "minute")
    assert (result.low_water_mark, result.high_water_mark) == (L, W)
    assert [(r["bucket_start"], str(r["revenue"]), r["source"]) for r in result.rows.to_pylist()] == [
        (BEFORE_HISTORY, "10.00", "speed"),  # older than the rows every query shares: read from Delta on demand
        (BEFORE_L, "6.00", "speed"),  # the batch row (66.00) lies before L: not served
        (INSIDE, "143.00", "batch"),  # exact, with the late purchase
        (AFTER_W, "2.00", "speed"),
    ]
    assert result.versions["speed_before_low"] == result.versions["speed"] == 0


def test_hours_and_days_follow_the_marks(lake: LakeBuilder) -> None:
    serving = ServingLayer(lake.lake.root)
    assert served(serving, "hour") == [
        (BEFORE_HISTORY, "10.00", "speed"),
        (BEFORE_L, "6.00", "speed"),
        (INSIDE, "143.00", "batch"),
        (W, "2.00", "speed"),
    ]
    # no whole day lies in [12:00, midnight): every day comes from the speed layer, which holds whole days
    assert served(serving, "day") == [
        (D - timedelta(days=1), "10.00", "speed"),
        (D, "19.00", "speed"),
        (W, "2.00", "speed"),
    ]
    products = serving.sales(BEFORE_HISTORY, W + timedelta(hours=1), "hour", dimension="product", key=None).rows
    assert [(r["bucket_start"], r["key"], str(r["revenue"]), r["source"]) for r in products.to_pylist()] == [
        (BEFORE_HISTORY, "p-1", "10.00", "speed"),
        (BEFORE_L, "p-2", "6.00", "speed"),
        (INSIDE, "p-1", "143.00", "batch"),
        (W, "p-2", "2.00", "speed"),
    ]


def test_queries_at_or_after_l_read_only_the_shared_speed_rows(lake: LakeBuilder) -> None:
    files = len(DeltaTable(lake.lake.table("speed/sales_minute")).file_uris())
    serving = ServingLayer(lake.lake.root)
    common = serving.sales(L, W + timedelta(hours=1), "minute")
    assert "speed_before_low" not in common.versions
    assert serving.speed_files_read == files  # each file once, with the shared filter, as before L existed
    older = serving.sales(BEFORE_HISTORY, L, "minute")
    assert [r["source"] for r in older.rows.to_pylist()] == ["speed", "speed"]
    assert serving.speed_files_read == 2 * files  # the rows before L: one more pass, on demand
    serving.sales(BEFORE_HISTORY, L, "minute")
    assert serving.speed_files_read == 2 * files  # and cached per version


def test_reconciliation_compares_only_buckets_inside_the_marks(lake: LakeBuilder) -> None:
    report = ServingLayer(lake.lake.root).reconciliation(D, W, "hour").to_pylist()
    # 06:00 is held by both layers and lies in the shared speed rows, but before L: not compared
    assert [(r["bucket_start"], str(r["revenue_diff"])) for r in report] == [(INSIDE, "-130.00")]


def test_the_api_reports_both_marks(lake: LakeBuilder) -> None:
    client = TestClient(base_url="http://127.0.0.1", app=create_app(ServingLayer(lake.lake.root)))
    answer = client.get("/api/revenue", params={"start": "2026-01-05T06:00:00Z", "end": "2026-01-06T01:00:00Z"})
    assert answer.status_code == 200
    body = answer.json()
    assert (body["low_water_mark"], body["high_water_mark"]) == ("2026-01-05T12:00:00Z", "2026-01-06T00:00:00Z")
    assert [(r["bucket_start"], r["revenue"], r["source"]) for r in body["rows"]] == [
        ("2026-01-05T06:00:00Z", "6.00", "speed"),
        ("2026-01-05T13:00:00Z", "143.00", "batch"),
        ("2026-01-06T00:01:00Z", "2.00", "speed"),
    ]
    assert client.get("/api/health").json()["low_water_mark"] == "2026-01-05T12:00:00Z"


@pytest.mark.parametrize(
    ("report", "expected"),
    [
        (None, None),
        ("", None),
        ("not json", None),
        ("[1, 2]", None),
        ('{"input": {}}', None),  # a row written before L was recorded
        ('{"high_water_mark": {"new": "2026-01-06T00:00:00+00:00"}}', None),
        ('{"high_water_mark": {"low": null}}', None),
        ('{"high_water_mark": {"low": 17}}', None),
        ('{"high_water_mark": {"low": "yesterday"}}', None),
        ('{"high_water_mark": {"low": "2026-01-05T12:00:00+00:00"}}', L),
        ('{"high_water_mark": {"low": "2026-01-05T12:00:00Z"}}', L),
        ('{"high_water_mark": {"low": "2026-01-05T13:00:00+01:00"}}', L),
        ('{"high_water_mark": {"low": "2026-01-05T12:00:00"}}', L),  # no zone: UTC
        ('{"high_water_mark": {"low": "0001-01-01T00:00:00+05:00"}}', None),  # before year 1 in UTC
    ],
)
def test_low_water_mark_of_a_validation_report(report: str | None, expected: datetime | None) -> None:
    assert low_water_mark_of(report) == expected
