"""A planted bad row fails the data-quality gate: the run fails, nothing is published, W stays.

Also: with speed/progress present, W stops at the speed layer's watermark read at the run's start.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pyarrow as pa
import pytest
from deltalake import write_deltalake

from batch_layer.errors import ValidationFailed
from batch_layer.quality import validate_reconciliation, validate_views
from batch_layer.store import BatchStore
from batch_layer.transforms import view_checks
from contracts.tables import Lake
from tests.batch_layer.conftest import DAY, generated_events, lake_settings, run_batch, write_bronze

NEXT = DAY + timedelta(days=1)
SPEED_WATERMARK = DAY + timedelta(hours=20)


def _write_progress(path: str, watermark: datetime) -> None:
    ts = pa.timestamp("us", tz="UTC")
    table = pa.table(
        {
            "query": ["rollup", "rollup", "bronze"],
            "batch_id": pa.array([1, 2, 7], pa.int64()),
            "run_id": ["r", "r", "r"],
            "timestamp": pa.array([watermark, watermark + timedelta(minutes=1), watermark], ts),
            "input_rows": pa.array([10, 10, 10], pa.int64()),
            "input_rows_per_s": [1.0, 1.0, 1.0],
            "processed_rows_per_s": [1.0, 1.0, 1.0],
            "batch_duration_ms": pa.array([5, 5, 5], pa.int64()),
            # the latest watermark of the rollup query counts; the stateless query has none
            "watermark": pa.array([watermark - timedelta(hours=1), watermark, None], ts),
            "offsets_behind": pa.array([0, 0, 0], pa.int64()),
            "late_rows": pa.array([0, 0, 0], pa.int64()),
        }
    )
    write_deltalake(path, table, mode="append")


@pytest.fixture(scope="module")
def gated_lake(spark, settings, test_root, batch_env):  # type: ignore[no-untyped-def]
    batch_settings = lake_settings(settings, test_root, "batch_gates")
    lake = Lake(batch_settings.lake_root, batch_settings.checkpoint_root)
    rows = generated_events(seed=21, count=120, start=DAY + timedelta(hours=1), rate=0.01)
    write_bronze(spark, lake.bronze_events, rows)
    _write_progress(lake.table("speed/progress"), SPEED_WATERMARK)
    run_batch(spark, batch_settings, DAY, run_id="good-day", lookback_days=0)
    return batch_settings, lake


def test_w_stops_at_the_speed_watermark_read_at_the_run_start(spark, gated_lake) -> None:  # type: ignore[no-untyped-def]
    _settings, lake = gated_lake
    store = BatchStore(spark, lake)
    assert store.current_high_water_mark() == SPEED_WATERMARK


def test_a_planted_bad_row_fails_the_run_and_keeps_the_previous_w(spark, gated_lake) -> None:  # type: ignore[no-untyped-def]
    batch_settings, lake = gated_lake
    store = BatchStore(spark, lake)
    w_before = store.current_high_water_mark()
    views_before = {grain: store.latest_version(lake.table(f"batch/sales_{grain}")) for grain in ("minute", "hour")}
    good = generated_events(seed=22, count=50, start=NEXT + timedelta(hours=2), rate=0.01)
    bad = dict(next(row for row in good if row["event_type"] == "purchase"))
    bad.update(event_id="planted-bad", unit_price=Decimal("-3.00"), kafka_offset=10_000)
    future = dict(good[0])
    future.update(event_id="planted-future", event_time=datetime(2099, 1, 1, tzinfo=UTC), kafka_offset=10_001)
    future["event_date"] = NEXT.date()  # a future time filed under NEXT: also breaks the partition rule
    write_bronze(spark, lake.bronze_events, [*good, bad, future])
    _write_progress(lake.table("speed/progress"), NEXT + timedelta(days=1))

    with pytest.raises(ValidationFailed) as failure:
        run_batch(spark, batch_settings, NEXT, run_id="bad-day", lookback_days=0)
    message = str(failure.value)
    assert "unit_price" in message and "not_in_future" in message and "event_date_ok" in message

    assert store.current_high_water_mark() == w_before
    for grain, version in views_before.items():
        assert store.latest_version(lake.table(f"batch/sales_{grain}")) == version  # nothing published
    failed = store.runs().where("run_id = 'bad-day'").first()
    assert failed.status == "failed"
    assert failed.high_water_mark is None
    assert "expect_column_values_to_be_between" in failed.validation_report
    report = store.read_json("bad-day", "validate_input.json")
    assert report is not None and report["summary"]["success"] is False


def test_negative_revenue_and_unreconciled_totals_fail_the_view_suites(spark) -> None:  # type: ignore[no-untyped-def]
    schema = (
        "bucket_start timestamp, bucket_end timestamp, dimension string, key string, revenue decimal(18,2), "
        "orders bigint, units bigint, distinct_users bigint, run_id string, computed_at timestamp"
    )
    start, end = DAY, DAY + timedelta(days=1)
    row = (start, end, "total", "all", Decimal("-1.00"), 1, 1, 1, "r", start)
    view = spark.createDataFrame([row], schema)
    report = validate_views(view_checks({"day": view}))
    assert not report.success
    assert any(item["column"] == "revenue" for item in report.failed)
    diff = spark.createDataFrame(
        [("day", "total", start.date(), Decimal("0.01"), 0, 0, 0)],
        "grain string, dimension string, day date, revenue_diff decimal(18,2), orders_diff bigint, "
        "units_diff bigint, users_diff bigint",
    )
    reconciliation = validate_reconciliation(diff)
    assert not reconciliation.success
    assert [item["column"] for item in reconciliation.failed] == ["revenue_diff"]
