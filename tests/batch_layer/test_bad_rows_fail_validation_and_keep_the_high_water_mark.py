"""A planted bad row fails the data-quality gate: the run fails, nothing is published, W stays.

Also: with speed/progress present, W stops at the speed layer's watermark read at the run's start, and never
passes what bronze itself has committed (its newest caught-up micro-batch, less the lateness); a failed rerun of a
run that had succeeded keeps that run's row, W and the served versions; a staged view changed between recompute
and validate-views fails the reconciliation (an independent computation from bronze) and publishes nothing.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pyarrow as pa
import pytest
from deltalake import write_deltalake

from batch_layer.errors import BatchError, ValidationFailed
from batch_layer.quality import validate_reconciliation, validate_views
from batch_layer.store import BatchStore
from batch_layer.transforms import view_checks
from contracts.tables import Lake
from tests.batch_layer.conftest import DAY, batch_run, generated_events, lake_settings, run_batch, write_bronze

NEXT = DAY + timedelta(days=1)
SPEED_WATERMARK = DAY + timedelta(hours=20)


def _write_progress(path: str, watermark: datetime, bronze_caught_up: datetime | None = None) -> None:
    """speed/progress as the speed layer writes it: micro-batch rows of the stateful rollups query and of the
    stateless bronze query, and heartbeat / error rows (batch_id -1) that count for no watermark."""
    ts = pa.timestamp("us", tz="UTC")
    caught_up = bronze_caught_up if bronze_caught_up is not None else watermark + timedelta(hours=1)
    rows = [
        # the latest watermark of the rollups query counts
        {"query": "rollup", "batch_id": 1, "timestamp": watermark, "watermark": watermark - timedelta(hours=1)},
        {"query": "rollup", "batch_id": 2, "timestamp": watermark + timedelta(minutes=1), "watermark": watermark},
        # bronze: caught up (nothing behind latest) at ``caught_up``, then a batch still behind a backlog
        {"query": "bronze", "batch_id": 7, "timestamp": caught_up - timedelta(hours=2), "offsets_behind": 0},
        {"query": "bronze", "batch_id": 8, "timestamp": caught_up, "offsets_behind": 0},
        {"query": "bronze", "batch_id": 9, "timestamp": caught_up + timedelta(hours=3), "offsets_behind": 5000},
        # heartbeats and an error row, the newest rows: never a watermark or a bronze commit (within the 48 h that
        # speed/progress keeps, contracts/progress.py)
        {"query": "driver", "batch_id": -1, "timestamp": caught_up + timedelta(hours=6)},
        {"query": "bronze", "batch_id": -1, "timestamp": caught_up + timedelta(hours=6), "offsets_behind": 0},
        {"query": "rollup", "batch_id": -1, "timestamp": caught_up + timedelta(hours=6), "error": "boom"},
    ]
    schema = pa.schema(
        [
            ("query", pa.string()),
            ("batch_id", pa.int64()),
            ("run_id", pa.string()),
            ("timestamp", ts),
            ("input_rows", pa.int64()),
            ("watermark", ts),
            ("offsets_behind", pa.int64()),
            ("error", pa.string()),
        ]
    )
    write_deltalake(path, pa.Table.from_pylist(rows, schema=schema), mode="append", schema_mode="merge")


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


def test_w_never_passes_what_bronze_itself_has_committed(spark, gated_lake) -> None:  # type: ignore[no-untyped-def]
    batch_settings, lake = gated_lake
    store = BatchStore(spark, lake)
    # the speed watermark is far ahead, but bronze last caught up at 22:00 (a later batch is behind a backlog,
    # heartbeats and an error row are later still): W stops at 22:00 minus the 5-minute lateness
    _write_progress(lake.table("speed/progress"), DAY + timedelta(days=2), bronze_caught_up=DAY + timedelta(hours=22))
    run_batch(spark, batch_settings, DAY, run_id="bronze-behind", lookback_days=0)
    assert store.current_high_water_mark() == DAY + timedelta(hours=21, minutes=55)
    state = store.read_json("bronze-behind", "state.json")
    assert state is not None and state["bronze_caught_up_at"].startswith(f"{DAY + timedelta(hours=22):%Y-%m-%d %H:%M}")
    assert store.current_marks().low == DAY


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


def test_a_failed_rerun_of_a_succeeded_run_keeps_its_row_w_and_versions(spark, gated_lake) -> None:  # type: ignore[no-untyped-def]
    batch_settings, lake = gated_lake
    store = BatchStore(spark, lake)
    before = {row["run_id"]: row for row in store.run_rows()}["good-day"]
    marks_before = store.current_marks()
    # Airflow's "Clear" reruns good-day under the same run id, and this time its input fails the gate
    bad = dict(next(row for row in generated_events(seed=23, count=20, start=DAY, rate=0.01)))
    bad.update(event_id="planted-late-bad", quantity=0, event_type="purchase", kafka_offset=20_000)
    write_bronze(spark, lake.bronze_events, [bad])
    with pytest.raises(ValidationFailed):
        run_batch(spark, batch_settings, DAY, run_id="good-day", lookback_days=0)
    rows = {row["run_id"]: row for row in store.run_rows()}
    assert rows["good-day"] == before  # the succeeded row is untouched
    failed = [row for run_id, row in rows.items() if run_id.startswith("good-day#failed@")]
    assert len(failed) == 1 and failed[0]["status"] == "failed" and failed[0]["high_water_mark"] is None
    assert store.current_marks() == marks_before


def test_a_staged_view_tampered_after_recompute_fails_reconciliation_and_keeps_w(spark, gated_lake) -> None:  # type: ignore[no-untyped-def]
    from pyspark.sql import functions as F

    batch_settings, lake = gated_lake
    store = BatchStore(spark, lake)
    day = NEXT + timedelta(days=1)
    write_bronze(
        spark, lake.bronze_events, generated_events(seed=24, count=60, start=day + timedelta(hours=1), rate=0.01)
    )
    _write_progress(lake.table("speed/progress"), day + timedelta(days=1))
    marks_before = store.current_marks()
    run = batch_run(spark, batch_settings, day, run_id="tampered", lookback_days=0)
    run.validate_input()
    run.recompute()
    # between recompute and validate-views, one product-hour gains a cent: every view rule still holds
    staged = store.read_staging("tampered").cache()
    target = staged.where("grain = 'hour' AND dimension = 'product' AND revenue > 0").limit(1).collect()[0]
    changed = (F.col("grain") == "hour") & (F.col("dimension") == "product") & (F.col("key") == target.key)
    changed = changed & (F.col("bucket_start") == F.lit(target.bucket_start))
    tampered = staged.withColumn("revenue", F.when(changed, F.col("revenue") + F.lit(0.01)).otherwise(F.col("revenue")))
    store.write_staging("tampered", tampered.withColumn("revenue", F.col("revenue").cast("decimal(18,2)")))
    staged.unpersist()
    with pytest.raises(ValidationFailed) as failure:
        run.validate_views()
    assert "revenue_diff" in str(failure.value)
    report = store.read_json("tampered", "validate_views.json")
    assert report is not None and report["success"] is False
    summaries = {summary["suite"]: summary for summary in report["summaries"]}
    assert summaries["batch_views"]["success"] is True  # the view rules alone do not see it
    assert summaries["views_reconcile_with_bronze"]["success"] is False
    with pytest.raises(BatchError, match="did not pass validate-views"):
        run.publish()
    assert store.current_marks() == marks_before


def test_events_appended_while_a_run_is_under_way_wait_for_the_next_run(spark, gated_lake) -> None:  # type: ignore[no-untyped-def]
    # the speed layer keeps appending to bronze during a run (late events of the interval, a bronze query catching
    # up): every step reads the version validate-input pinned, so the reconciliation compares like with like
    from tests.batch_layer.conftest import actual_view, expected_views

    batch_settings, lake = gated_lake
    store = BatchStore(spark, lake)
    day = NEXT + timedelta(days=2)
    rows = generated_events(seed=25, count=60, start=day + timedelta(hours=1), rate=0.01)
    write_bronze(spark, lake.bronze_events, rows)
    _write_progress(lake.table("speed/progress"), day + timedelta(days=1))
    run = batch_run(spark, batch_settings, day, run_id="under-way", lookback_days=0)
    run.validate_input()
    pinned = store.read_json("under-way", "state.json")["bronze_version"]  # type: ignore[index]
    assert pinned == store.latest_version(lake.bronze_events)

    def late_purchase(event_id: str, offset: int) -> dict:
        late = dict(next(row for row in rows if row["event_type"] == "purchase"))
        late.update(event_id=event_id, quantity=3, unit_price=Decimal("10.00"), kafka_offset=offset)
        return late

    write_bronze(spark, lake.bronze_events, [late_purchase("late-before-recompute", 30_000)])
    run.recompute()
    write_bronze(spark, lake.bronze_events, [late_purchase("late-before-validation", 30_001)])
    run.validate_views()  # before the fix: orders_diff -1, revenue_diff -30.00 against the newest bronze
    run.publish()
    assert store.read_json("under-way", "recompute.json")["bronze_version"] == pinned  # type: ignore[index]
    expected = expected_views(rows, day, day + timedelta(days=1))["day"]
    published = {cell: value for cell, value in actual_view(spark, store, "day").items() if cell[0] == day}
    assert published == expected
    # the next run of the day reads the late purchases
    run_batch(spark, batch_settings, day, run_id="under-way-again", lookback_days=0)
    late_rows = [late_purchase("late-before-recompute", 30_000), late_purchase("late-before-validation", 30_001)]
    again = {cell: value for cell, value in actual_view(spark, store, "day").items() if cell[0] == day}
    assert again == expected_views([*rows, *late_rows], day, day + timedelta(days=1))["day"]
    assert again[(day, "total", "all")][1] == expected[(day, "total", "all")][1] + 2
