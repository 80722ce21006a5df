"""Batch views from bronze with late and duplicate events equal an independent Decimal computation; reruns of
the same date replace, never add."""

from __future__ import annotations

from datetime import timedelta

import pytest

from batch_layer.interval import BatchInterval
from batch_layer.store import BatchStore
from contracts.tables import Lake
from tests.batch_layer.conftest import (
    DAY,
    actual_view,
    expected_views,
    generated_events,
    lake_settings,
    run_batch,
    write_bronze,
)


@pytest.fixture(scope="module")
def lake_run(spark, settings, test_root, batch_env):  # type: ignore[no-untyped-def]
    batch_settings = lake_settings(settings, test_root, "batch_exact")
    lake = Lake(batch_settings.lake_root, batch_settings.checkpoint_root)
    # 50 minutes of events around midnight (so the lookback day is used), late ones 90 minutes late
    rows = generated_events(seed=7, count=600, start=DAY - timedelta(minutes=25), rate=0.2)
    # and some events of the next day, which a run for DAY must leave out
    rows += generated_events(seed=8, count=40, start=DAY + timedelta(days=1, hours=3), rate=1.0)
    write_bronze(spark, lake.bronze_events, rows[:300])
    write_bronze(spark, lake.bronze_events, rows[300:])  # two commits, like micro-batches
    result = run_batch(spark, batch_settings, DAY, run_id="exact-1", lookback_days=1)
    return batch_settings, lake, rows, result


def _latest_run(store: BatchStore, run_id: str):  # type: ignore[no-untyped-def]
    return store.runs().where(f"run_id = '{run_id}'").first()


def test_views_equal_an_independent_decimal_computation(spark, lake_run) -> None:  # type: ignore[no-untyped-def]
    _settings, lake, rows, _result = lake_run
    kinds = {row["kind"] for row in rows}
    assert {"late", "duplicate"} <= kinds
    interval = BatchInterval.for_date(DAY.date(), lookback_days=1)
    expected = expected_views(rows, interval.range_start, interval.range_end)
    store = BatchStore(spark, lake)
    run = _latest_run(store, "exact-1")
    assert run.status == "succeeded"
    versions = {"minute": run.sales_minute_version, "hour": run.sales_hour_version, "day": run.sales_day_version}
    for grain in ("minute", "hour", "day"):
        actual = actual_view(spark, store, grain, versions[grain])
        assert actual == expected[grain], grain  # Decimal revenue: equal to the cent
    # both days of the range are in the day view; the next day is not
    assert {cell[0] for cell in expected["day"]} == {interval.range_start, DAY}
    unique = {row["event_id"] for row in rows if interval.range_start <= row["event_time"] < interval.range_end}
    assert run.deduplicated_rows == len(unique)
    assert run.bronze_rows > run.deduplicated_rows  # duplicates were there and removed
    # no speed/progress table: bronze counts as complete up to the run's start, so W = end of the interval
    assert run.high_water_mark is not None
    assert run.high_water_mark.date() == (DAY + timedelta(days=1)).date()


def test_rerunning_the_same_date_three_times_leaves_identical_views(spark, lake_run) -> None:  # type: ignore[no-untyped-def]
    batch_settings, lake, _rows, _result = lake_run
    store = BatchStore(spark, lake)
    before = {grain: actual_view(spark, store, grain) for grain in ("minute", "hour", "day")}
    counts = {grain: store.read_view(grain).count() for grain in ("minute", "hour", "day")}
    w_before = store.current_high_water_mark()
    for attempt in (2, 3):
        run_batch(spark, batch_settings, DAY, run_id=f"exact-{attempt}", lookback_days=1)
    for grain in ("minute", "hour", "day"):
        assert actual_view(spark, store, grain) == before[grain]
        assert store.read_view(grain).count() == counts[grain]
        assert store.read_view(grain).select("run_id").distinct().collect()[0].run_id == "exact-3"
    runs = store.runs().orderBy("finished_at").collect()
    assert [r.status for r in runs] == ["succeeded"] * 3
    assert store.current_high_water_mark() == w_before
    # each rerun published new, validated versions of the views
    assert runs[-1].sales_day_version > runs[0].sales_day_version
