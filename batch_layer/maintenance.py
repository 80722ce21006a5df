"""Table maintenance after a batch run: OPTIMIZE (bin-packing compaction) and VACUUM with a safe retention.

- bronze/events: only closed partitions (event_date older than ``closed_after_days`` days before today) are
  compacted; the partitions the speed layer still appends to are left alone. Compaction writes no new data
  (dataChange=false), so it is allowed on the append-only table and never conflicts with blind appends.
- speed and batch tables: compacted whole. The speed layer MERGEs into some of them; if a concurrent commit
  wins, OPTIMIZE fails on our side with a concurrent-modification error, which is recorded and skipped (the
  next night tries again) rather than failing the run.
- VACUUM with ``retention_hours`` (at least 168 h = 7 days; Delta 4 takes it from the table property
  ``delta.deletedFileRetentionDuration``, which is set only when it differs) on every table, so
  readers pinned to versions of the last week (the serving layer reads batch views at validated versions) and
  streaming queries never lose files.

Example::

    report = maintain(spark, lake, today=date(2026, 1, 6), closed_after_days=1, retention_hours=168)
"""

from __future__ import annotations

from datetime import date, timedelta
from typing import Any

from pyspark.sql import SparkSession

from contracts.tables import Lake

__all__ = ["MIN_RETENTION_HOURS", "maintain", "optimize", "vacuum"]

MIN_RETENTION_HOURS = 168
_RETENTION_PROPERTY = "delta.deletedFileRetentionDuration"
_COMPACTED = (
    "speed/sales_minute",
    "speed/inventory",
    "speed/alerts",
    "speed/progress",
    "bronze/quarantine",
    "batch/sales_minute",
    "batch/sales_hour",
    "batch/sales_day",
    "batch/runs",
)


def _is_delta(spark: SparkSession, path: str) -> bool:
    from delta.tables import DeltaTable

    return bool(DeltaTable.isDeltaTable(spark, path))


def _file_count(spark: SparkSession, path: str) -> int:
    from delta.tables import DeltaTable

    return int(DeltaTable.forPath(spark, path).detail().select("numFiles").first()[0] or 0)


def optimize(spark: SparkSession, path: str, where: str | None = None) -> dict[str, Any]:
    """Compact one table (optionally only the partitions matching ``where``); returns Delta's file metrics."""
    from delta.tables import DeltaTable

    builder = DeltaTable.forPath(spark, path).optimize()
    if where:
        builder = builder.where(where)
    row = builder.executeCompaction().select("metrics.numFilesAdded", "metrics.numFilesRemoved").first()
    return {"files_added": int(row[0] or 0), "files_removed": int(row[1] or 0)} if row else {}


def vacuum(spark: SparkSession, path: str, retention_hours: int) -> None:
    """Delete files no version of the last ``retention_hours`` hours needs (>= 168 h enforced)."""
    from delta.tables import DeltaTable

    if retention_hours < MIN_RETENTION_HOURS:
        raise ValueError(f"retention_hours must be >= {MIN_RETENTION_HOURS} (7 days), got {retention_hours}")
    table = DeltaTable.forPath(spark, path)
    # Delta 4 ignores VACUUM's own retention argument and uses the table property (default: 1 week), so the
    # property is set, as a metadata commit, only when the setting asks for something else than it holds
    properties = table.detail().select("properties").first()[0] or {}
    current = properties.get(_RETENTION_PROPERTY, "interval 1 week")
    if _hours(current) != retention_hours:
        spark.sql(
            f"ALTER TABLE delta.`{path}` SET TBLPROPERTIES "
            f"('{_RETENTION_PROPERTY}' = 'interval {retention_hours} hours')"
        )
    try:
        # LITE finds unreferenced files through the Delta log instead of listing the whole table directory
        spark.sql(f"VACUUM delta.`{path}` LITE")
    except Exception as error:  # noqa: BLE001 - LITE refuses when the log no longer covers the retention window
        if "LITE" not in str(error).upper():
            raise
        table.vacuum()


def _hours(interval: str) -> float | None:
    """Hours of a Delta interval string such as 'interval 1 week' or 'interval 168 hours' (None if unknown)."""
    parts = interval.lower().replace("interval", "").split()
    units = {"week": 168.0, "day": 24.0, "hour": 1.0, "minute": 1 / 60}
    if len(parts) != 2:
        return None
    unit = parts[1].rstrip("s")
    try:
        return float(parts[0]) * units[unit] if unit in units else None
    except ValueError:
        return None


def maintain(
    spark: SparkSession,
    lake: Lake,
    today: date,
    closed_after_days: int,
    retention_hours: int,
    optimize_speed_tables: bool = True,
) -> dict[str, Any]:
    """OPTIMIZE then VACUUM every table that exists; returns what was done per table (JSON-able)."""
    if closed_after_days < 1:
        raise ValueError(f"closed_after_days must be >= 1, got {closed_after_days}")
    if retention_hours < MIN_RETENTION_HOURS:
        raise ValueError(f"retention_hours must be >= {MIN_RETENTION_HOURS} (7 days), got {retention_hours}")
    report: dict[str, Any] = {}
    newest_closed = today - timedelta(days=closed_after_days + 1)
    targets: list[tuple[str, str | None]] = [("bronze/events", f"event_date <= DATE'{newest_closed:%Y-%m-%d}'")]
    targets += [(name, None) for name in _COMPACTED if optimize_speed_tables or not name.startswith("speed/")]
    for name, where in targets:
        path = lake.table(name)
        if not _is_delta(spark, path):
            continue
        entry: dict[str, Any] = {"optimize_where": where}
        try:
            if where is None and _file_count(spark, path) < 2:
                entry["optimize"] = "skipped: fewer than 2 files"
            else:
                entry["optimize"] = optimize(spark, path, where)
        except Exception as error:  # noqa: BLE001 - a lost race with a streaming commit is retried next night
            if "Concurrent" not in type(error).__name__ + str(error):
                raise
            entry["optimize"] = f"skipped: {str(error).splitlines()[0][:200]}"
        vacuum(spark, path, retention_hours)
        entry["vacuum_retention_hours"] = retention_hours
        report[name] = entry
    return report
