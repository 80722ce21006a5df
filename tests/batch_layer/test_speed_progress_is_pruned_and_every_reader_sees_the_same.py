"""speed/progress keeps RETAIL_SPEED_PROGRESS_RETENTION_HOURS back from its newest row: the maintenance deletes
older rows, and what every reader says (the batch marks' speed progress, the maintenance's heartbeat) is the same
before and after the pruning, since every reader looks at that window only (contracts/progress.py)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pyarrow as pa
from deltalake import DeltaTable, write_deltalake

from batch_layer.maintenance import maintain, speed_layer_heartbeat
from batch_layer.store import BatchStore
from contracts.progress import PROGRESS_TABLE, recent_progress
from contracts.tables import Lake
from speed_layer.progress import DRIVER_ROW, PROGRESS_ARROW_SCHEMA
from tests.batch_layer.conftest import lake_settings

NEWEST = datetime(2026, 1, 9, 12, 0, tzinfo=UTC)


def _row(query: str, batch_id: int, at: datetime, watermark: datetime | None = None, behind: int = 0) -> dict:
    return {"query": query, "batch_id": batch_id, "timestamp": at, "watermark": watermark, "offsets_behind": behind}


def test_old_progress_rows_are_pruned_and_no_reader_changes_its_answer(spark, settings, test_root) -> None:  # type: ignore[no-untyped-def]
    batch_settings = lake_settings(settings, test_root, "progress_pruning").model_copy(
        update={"speed_progress_retention_hours": 24}
    )
    lake = Lake(batch_settings.lake_root, batch_settings.checkpoint_root)
    path = lake.table(PROGRESS_TABLE)
    # four days of history, one commit a day (like a driver flushing), then the last day's rows
    for day in range(4, 0, -1):
        at = NEWEST - timedelta(days=day)
        rows = [
            _row("bronze", day, at, behind=0),
            _row("rollups", day, at, watermark=at - timedelta(minutes=5)),
            _row(DRIVER_ROW, -1, at),
            # a query whose newest row is old: once outside the window it counts for no reader, pruned or not
            *([_row("inventory", 1, at, watermark=at - timedelta(days=9))] if day == 4 else []),
        ]
        write_deltalake(path, pa.Table.from_pylist(rows, schema=PROGRESS_ARROW_SCHEMA), mode="append")
    latest = [
        _row("bronze", 100, NEWEST - timedelta(hours=1), behind=3),
        _row("rollups", 100, NEWEST, watermark=NEWEST - timedelta(minutes=5)),
        _row(DRIVER_ROW, -1, NEWEST),
    ]
    write_deltalake(path, pa.Table.from_pylist(latest, schema=PROGRESS_ARROW_SCHEMA), mode="append")

    store = BatchStore(spark, lake, batch_settings)
    before = (store.speed_progress(), speed_layer_heartbeat(lake, batch_settings))
    assert before[0].watermark == NEWEST - timedelta(minutes=5)  # the old inventory row is outside the window
    assert before[0].bronze_caught_up_at == NEWEST - timedelta(days=1)
    assert before[1] == NEWEST
    rows_before = DeltaTable(path).to_pyarrow_table().num_rows

    report = maintain(
        spark, lake, today=NEWEST.date(), closed_after_days=1, retention_hours=168, settings=batch_settings
    )

    pruned = report[PROGRESS_TABLE]["prune"]
    assert pruned["before"] == (NEWEST - timedelta(hours=24)).isoformat()
    kept = DeltaTable(path).to_pyarrow_table()
    assert pruned["deleted_rows"] == rows_before - kept.num_rows == 3 * 3 + 1  # days 4, 3 and 2 (+ inventory)
    assert min(kept["timestamp"].to_pylist()) >= NEWEST - timedelta(hours=24)
    assert (store.speed_progress(), speed_layer_heartbeat(lake, batch_settings)) == before
    assert recent_progress(DeltaTable(path), ["query"], 24).num_rows == kept.num_rows
    # a second maintenance has nothing to prune
    again = maintain(
        spark, lake, today=NEWEST.date(), closed_after_days=1, retention_hours=168, settings=batch_settings
    )
    assert again[PROGRESS_TABLE]["prune"].startswith("skipped: no row older than 24 h")
