"""A day without any event (a closed shop, a new lake): the run succeeds with empty views and moves W over it."""

from __future__ import annotations

from datetime import timedelta

from contracts.tables import Lake
from tests.batch_layer.conftest import DAY, generated_events, lake_settings, run_batch, write_bronze


def test_a_day_without_bronze_rows_publishes_empty_views(spark, settings, test_root, batch_env) -> None:  # type: ignore[no-untyped-def]
    run_settings = lake_settings(settings, test_root, "batch_empty_day")
    lake = Lake(run_settings.lake_root, run_settings.checkpoint_root)
    # bronze exists, but holds nothing in the recomputed range (the day and its 1-day lookback)
    write_bronze(spark, lake.bronze_events, generated_events(seed=3, count=20, start=DAY - timedelta(days=5), rate=1))
    day = DAY

    result = run_batch(
        spark, run_settings, day, "empty-day", steps=("validate-input", "recompute", "validate-views", "publish")
    )

    assert result["recompute"]["bronze_rows"] == 0
    assert result["recompute"]["deduplicated_rows"] == 0
    assert sum(result["recompute"]["view_rows"].values()) == 0
    assert result["publish"]["high_water_mark"] is not None
