"""Which rows of ``speed/progress`` count: one rule for every reader and for the maintenance that prunes the table.

The speed driver appends a row per micro-batch per query and a heartbeat every few seconds, so the table grows by
hundreds of thousands of rows a day. Only a recent window means anything: the newest watermark of each query, the
newest caught-up bronze batch, the newest heartbeat. The window is ``RETAIL_SPEED_PROGRESS_RETENTION_HOURS`` back
from the table's **newest** row (not from now): a speed layer stopped for a week still shows its last state, and
an answer is the same before and after the nightly maintenance deleted the rows outside the window.

Readers go through :func:`recent_progress` (delta-rs, no JVM; files wholly outside the window are skipped by their
statistics); the batch maintenance deletes the rows before :func:`progress_cutoff` (batch_layer/maintenance.py).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

__all__ = [
    "DEFAULT_RETENTION_HOURS",
    "DRIVER_ROW",
    "HEARTBEAT_STALE_AFTER",
    "PROGRESS_TABLE",
    "newest_heartbeat",
    "oldest_row",
    "progress_cutoff",
    "recent_progress",
]

PROGRESS_TABLE = "speed/progress"
DEFAULT_RETENTION_HOURS = 48
"""RETAIL_SPEED_PROGRESS_RETENTION_HOURS by default."""
DRIVER_ROW = "driver"
"""The ``query`` of the speed driver's own rows: a heartbeat every few seconds (batch_id -1), or the error that
stopped it (batch_id -1, ``error`` set)."""
HEARTBEAT_STALE_AFTER = timedelta(seconds=60)
"""The speed driver writes a heartbeat every 5 s (speed_layer/progress.py): this long without one means it is gone.
The one liveness threshold of the serving layer's health, the batch maintenance's report and ``retail``'s checks."""


def _stat(table: Any, bound: str) -> datetime | None:
    import pyarrow as pa
    import pyarrow.compute as pc

    actions = pa.table(table.get_add_actions(flatten=True))
    name = f"{bound}.timestamp"
    if actions.num_rows == 0 or name not in actions.column_names:
        return None
    return _utc((pc.max if bound == "max" else pc.min)(actions[name]).as_py())


def _utc(value: datetime | None) -> datetime | None:
    # delta-rs gives timestamp columns as aware UTC values, statistics sometimes as naive UTC ones
    if value is None:
        return None
    return value.astimezone(UTC) if value.tzinfo else value.replace(tzinfo=UTC)


def oldest_row(table: Any) -> datetime | None:
    """The oldest row's timestamp, from the Delta log's file statistics (no scan)."""
    return _stat(table, "min")


def progress_cutoff(table: Any, retention_hours: float) -> datetime | None:
    """The oldest moment that still counts: the table's newest row minus the retention (None: no rows)."""
    newest = _stat(table, "max")
    return None if newest is None else newest - timedelta(hours=retention_hours)


def recent_progress(table: Any, columns: list[str], retention_hours: float) -> Any:
    """The rows of ``table`` (a delta-rs DeltaTable of speed/progress) inside the window, as a pyarrow Table."""
    import pyarrow.dataset as ds

    cutoff = progress_cutoff(table, retention_hours)
    dataset = table.to_pyarrow_dataset()
    if cutoff is None:
        return dataset.to_table(columns=columns)
    return dataset.to_table(columns=columns, filter=ds.field("timestamp") >= cutoff)


def newest_heartbeat(table: Any, retention_hours: float) -> datetime | None:
    """The newest heartbeat of the speed driver in ``table`` (delta-rs speed/progress): query DRIVER_ROW,
    batch_id -1, no error; within the window."""
    import pyarrow as pa
    import pyarrow.compute as pc

    names = {field.name for field in table.schema().fields}
    columns = ["query", "batch_id", "timestamp"] + (["error"] if "error" in names else [])
    rows = pa.table(recent_progress(table, columns, retention_hours))
    beats = pc.and_(pc.equal(rows["query"], DRIVER_ROW), pc.equal(rows["batch_id"], -1))
    if "error" in rows.column_names:
        beats = pc.and_(beats, pc.is_null(rows["error"]))
    return _utc(pc.max(rows.filter(beats)["timestamp"]).as_py())
