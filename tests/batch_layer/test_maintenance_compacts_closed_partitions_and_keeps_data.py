"""OPTIMIZE compacts closed bronze partitions with enough small files only (the open ones stay as the stream wrote
them); VACUUM keeps at least 7 days; no row changes; a second maintenance skips the tables that did not change."""

from __future__ import annotations

from datetime import date, timedelta

import pytest
from pyspark.sql import functions as F

from batch_layer.maintenance import MIN_FILES_TO_COMPACT, maintain, vacuum
from contracts.tables import Lake
from tests.batch_layer.conftest import DAY, generated_events, lake_settings, write_bronze_commits


def _files_per_date(spark, path: str) -> dict[date, int]:  # type: ignore[no-untyped-def]
    files = spark.read.format("delta").load(path).select("event_date", F.input_file_name().alias("file")).distinct()
    return {row.event_date: row["count"] for row in files.groupBy("event_date").count().collect()}


def test_closed_partitions_are_compacted_open_ones_left_and_data_kept(spark, settings, test_root) -> None:  # type: ignore[no-untyped-def]
    batch_settings = lake_settings(settings, test_root, "batch_maintenance")
    lake = Lake(batch_settings.lake_root, batch_settings.checkpoint_root)
    rows = generated_events(seed=31, count=90, start=DAY, rate=1 / 2400)  # 90 events over ~2.5 days
    write_bronze_commits(lake.bronze_events, rows, per_commit=2)  # 45 small commits, like micro-batches
    before = _files_per_date(spark, lake.bronze_events)
    days = [(DAY + timedelta(days=offset)).date() for offset in range(3)]
    assert all(before[day] >= MIN_FILES_TO_COMPACT for day in days)
    few = [day for day, files in before.items() if 1 < files < MIN_FILES_TO_COMPACT]  # e.g. late events' day
    snapshot = sorted(spark.read.format("delta").load(lake.bronze_events).select("event_id", "kafka_offset").collect())

    today = (DAY + timedelta(days=3)).date()  # DAY and DAY+1 are closed (closed_after_days=1), DAY+2 is open
    report = maintain(spark, lake, today=today, closed_after_days=1, retention_hours=168)

    after = _files_per_date(spark, lake.bronze_events)
    assert after[DAY.date()] == 1
    assert after[(DAY + timedelta(days=1)).date()] == 1
    open_day = (DAY + timedelta(days=2)).date()
    assert after[open_day] == before[open_day]
    assert report["bronze/events"]["optimize"]["files_removed"] > 0
    assert all(after[day] == before[day] for day in few)  # not worth a rewrite yet
    again = maintain(spark, lake, today=today, closed_after_days=1, retention_hours=168, previous=report["_state"])
    assert again["bronze/events"]["skipped"].startswith("unchanged since the maintenance")
    after_rows = spark.read.format("delta").load(lake.bronze_events).select("event_id", "kafka_offset").collect()
    assert sorted(after_rows) == snapshot
    with pytest.raises(ValueError, match="168"):
        vacuum(spark, lake.bronze_events, retention_hours=24)
