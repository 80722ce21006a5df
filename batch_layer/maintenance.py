"""Table maintenance after a batch run: OPTIMIZE (bin-packing compaction) and VACUUM, only where there is work.

What is looked at first, without a Spark job (delta-rs reads the Delta log): the table's version, its files per
partition, its retention property, and the files a VACUUM would delete. Spark (OPTIMIZE, VACUUM) runs only
when that says there is something to do, so an idle table costs milliseconds, not a dozen Spark jobs.

- A table whose version is the one recorded after the last maintenance (``batch/maintenance.json``) is skipped,
  unless that maintenance is older than the retention (files it could not delete yet may be deletable now).
- bronze/events: only closed partitions (event_date older than ``closed_after_days`` days before today) that hold
  ``MIN_FILES_TO_COMPACT`` (10) or more small files are compacted; the partitions the speed layer still appends
  to are left alone. Compaction writes no new data (dataChange=false), so it is allowed on the append-only table
  and never conflicts with the stream's blind appends.
- speed tables (the speed layer's ``durable`` query MERGEs into them every ~30 s) and the other tables with
  ``MIN_FILES_TO_COMPACT`` or more small files: compacted whole. A commit that lands between our read and our
  commit makes OPTIMIZE fail with a concurrent-modification error: it is retried (``optimize_attempts`` times,
  with a short back-off), then skipped and reported (the next night tries again). The speed layer's MERGE
  retries its own conflicts.
- The MERGE targets of the speed layer (speed/sales_minute, speed/inventory, speed/alerts) are compacted while
  the speed layer runs: when our OPTIMIZE commits first, the durable query's MERGE gets a concurrent-modification
  error and redoes itself (``speed_layer.sinks.merge_once`` retries every Delta conflict; its transaction id keeps
  the redo exactly-once). The report says whether the speed layer was running (a driver heartbeat in
  speed/progress no older than ``contracts.progress.HEARTBEAT_STALE_AFTER``).
- speed/progress: rows older than its window (``RETAIL_SPEED_PROGRESS_RETENTION_HOURS`` before its newest row,
  contracts/progress.py) are deleted first, whether the table changed or not; every reader reads that window only.
- batch views: never compacted. Each night's publish writes one file per view for its range and the
  replaceWhere rewrites only the files overlapping that range; a compacted file spanning all history would be
  rewritten by every publish (cost growing with history).
- VACUUM (``VACUUM ... LITE``, through the Delta log) only when delta-rs finds files past the retention. Delta 4
  takes the retention from the table property ``delta.deletedFileRetentionDuration`` and ignores VACUUM's own
  RETAIN argument, so the property decides: maintenance never ALTERs a table (a metadata commit conflicts with
  the stream's appends, which do not retry). Tables the batch layer creates get the property at creation; a
  table whose property is shorter than ``retention_hours`` is not vacuumed, and the report says so.

Example::

    report = maintain(spark, lake, today=date(2026, 1, 6), closed_after_days=1, retention_hours=168)
"""

from __future__ import annotations

import time
from collections import defaultdict
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta
from typing import Any

from pyspark.sql import SparkSession

from contracts.progress import DEFAULT_RETENTION_HOURS, HEARTBEAT_STALE_AFTER, PROGRESS_TABLE, newest_heartbeat
from contracts.tables import Lake

__all__ = [
    "MIN_FILES_TO_COMPACT",
    "MIN_RETENTION_HOURS",
    "maintain",
    "optimize",
    "prune_progress",
    "retention_hours_of",
    "speed_layer_heartbeat",
    "vacuum",
]

MIN_RETENTION_HOURS = 168
_RETENTION_PROPERTY = "delta.deletedFileRetentionDuration"
_DEFAULT_RETENTION = "interval 1 week"
_SPEED_TABLES = ("speed/sales_minute", "speed/inventory", "speed/alerts")
_COMPACTED = (
    *_SPEED_TABLES,
    "speed/progress",
    "bronze/quarantine",
    "batch/runs",
)
_NOT_COMPACTED = ("batch/sales_minute", "batch/sales_hour", "batch/sales_day")
# compact a table (or a closed bronze partition) once it has this many small files: bronze gets one file per
# micro-batch (thousands a day) and the speed tables one per MERGE, while batch/runs gains one a night and is
# not worth a rewrite every night (Delta's own auto-compaction waits for 50)
MIN_FILES_TO_COMPACT = 10
_MERGE_TARGETS = _SPEED_TABLES


def _delta_rs(path: str, settings: Any = None):  # type: ignore[no-untyped-def]
    from deltalake import DeltaTable

    from contracts.storage import delta_rs_location

    uri, options = delta_rs_location(path, settings)
    if not DeltaTable.is_deltatable(uri, storage_options=options):
        return None
    return DeltaTable(uri, storage_options=options)


def _is_conflict(error: BaseException) -> bool:
    return "Concurrent" in type(error).__name__ + str(error) or "DELTA_CONCURRENT" in str(error)


def optimize(spark: SparkSession, path: str, where: str | None = None, attempts: int = 1) -> dict[str, Any]:
    """Compact one table (optionally only the partitions matching ``where``); returns Delta's file metrics.

    A concurrent commit that conflicts is retried up to ``attempts`` times in all (0.5 s, 1 s, 1.5 s ... apart).
    """
    from delta.tables import DeltaTable

    def compact() -> dict[str, Any]:
        builder = DeltaTable.forPath(spark, path).optimize()
        if where:
            builder = builder.where(where)
        row = builder.executeCompaction().select("metrics.numFilesAdded", "metrics.numFilesRemoved").first()
        return {"files_added": int(row[0] or 0), "files_removed": int(row[1] or 0)} if row else {}

    return _retrying_conflicts(compact, attempts)


def _retrying_conflicts(action: Callable[[], dict[str, Any]], attempts: int) -> dict[str, Any]:
    """``action()`` plus ``"attempts"``; a Delta concurrent-modification error is retried up to ``attempts`` times
    in all (0.5 s, 1 s, 1.5 s ... apart), any other error is raised at once."""
    for attempt in range(1, attempts + 1):
        try:
            return {**action(), "attempts": attempt}
        except Exception as error:  # noqa: BLE001 - only a lost race is retried
            if not _is_conflict(error) or attempt == attempts:
                raise
            time.sleep(0.5 * attempt)
    raise AssertionError("unreachable")


def prune_progress(spark: SparkSession, path: str, table: Any, retention_hours: float, attempts: int = 1) -> str | dict:
    """Delete the rows of speed/progress older than its window (contracts/progress.py); the speed driver's
    appends go on meanwhile (a lost race is retried like OPTIMIZE's). Returns what was done."""
    from contracts.progress import oldest_row, progress_cutoff

    cutoff, oldest = progress_cutoff(table, retention_hours), oldest_row(table)
    if cutoff is None or oldest is None or oldest >= cutoff:
        return f"skipped: no row older than {retention_hours:g} h before the newest"
    literal = f"TIMESTAMP'{cutoff.astimezone(UTC):%Y-%m-%d %H:%M:%S.%f}'"

    def delete() -> dict[str, Any]:
        row = spark.sql(f"DELETE FROM delta.`{path}` WHERE timestamp < {literal}").first()
        return {"before": cutoff.isoformat(), "deleted_rows": int(row[0] or 0) if row is not None else None}

    return _retrying_conflicts(delete, attempts)


def retention_hours_of(properties: dict[str, str]) -> float | None:
    """Hours of a table's ``delta.deletedFileRetentionDuration`` (Delta's default 1 week when unset)."""
    return _hours(properties.get(_RETENTION_PROPERTY, _DEFAULT_RETENTION))


def vacuum(spark: SparkSession, path: str, retention_hours: int) -> dict[str, Any]:
    """Delete files no version of the table's retention needs, when that retention is >= ``retention_hours``.

    Never alters the table: Delta uses the table property (``retention_hours_of``); a table whose property is
    shorter than ``retention_hours`` (>= 168 h enforced) is left alone and reported.
    """
    from delta.tables import DeltaTable

    if retention_hours < MIN_RETENTION_HOURS:
        raise ValueError(f"retention_hours must be >= {MIN_RETENTION_HOURS} (7 days), got {retention_hours}")
    table = _delta_rs(path)
    properties = dict(table.metadata().configuration) if table is not None else {}
    effective = retention_hours_of(properties)
    if effective is None or effective < retention_hours:
        return {
            "vacuum": f"skipped: the table's {_RETENTION_PROPERTY} is "
            f"{properties.get(_RETENTION_PROPERTY, _DEFAULT_RETENTION)!r}, shorter than {retention_hours} h "
            "(set it at table creation; maintenance never alters a table)"
        }
    try:
        # LITE finds unreferenced files through the Delta log instead of listing the whole table directory
        spark.sql(f"VACUUM delta.`{path}` LITE")
    except Exception as error:  # noqa: BLE001 - LITE refuses when the log no longer covers the retention window
        if "LITE" not in str(error).upper():
            raise
        DeltaTable.forPath(spark, path).vacuum()
    return {"vacuum": "done", "retention_hours": effective}


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


def _small_files(table: Any, min_file_size: int) -> dict[tuple[tuple[str, Any], ...], int]:
    """Files smaller than ``min_file_size`` per partition (the files OPTIMIZE would bin-pack)."""
    counts: dict[tuple[tuple[str, Any], ...], int] = defaultdict(int)
    import pyarrow as pa

    files = pa.table(table.get_add_actions(flatten=True))
    wanted = [name for name in files.column_names if name == "size_bytes" or name.startswith("partition.")]
    actions = files.select(wanted).to_pylist()
    for action in actions:
        if int(action.get("size_bytes") or 0) >= min_file_size:
            continue
        partition = tuple(sorted((k, v) for k, v in action.items() if k.startswith("partition.")))
        counts[partition] += 1
    return counts


def _vacuum_candidates(table: Any, hours: float) -> int | None:
    """How many files a VACUUM with the table's retention would delete now (None: delta-rs cannot tell)."""
    try:
        return len(table.vacuum(retention_hours=int(hours), dry_run=True, enforce_retention_duration=False))
    except Exception:  # noqa: BLE001 - e.g. a table feature delta-rs does not read: let Spark decide
        return None


def speed_layer_heartbeat(lake: Lake, settings: Any = None) -> datetime | None:
    """The newest driver heartbeat of the speed layer in speed/progress (contracts.progress.newest_heartbeat)."""
    table = _delta_rs(lake.table(PROGRESS_TABLE), settings)
    if table is None:
        return None
    return newest_heartbeat(table, getattr(settings, "speed_progress_retention_hours", DEFAULT_RETENTION_HOURS))


def maintain(
    spark: SparkSession,
    lake: Lake,
    today: date,
    closed_after_days: int,
    retention_hours: int,
    optimize_speed_tables: bool = True,
    *,
    previous: dict[str, Any] | None = None,
    now: datetime | None = None,
    optimize_attempts: int = 4,
    settings: Any = None,
) -> dict[str, Any]:
    """OPTIMIZE then VACUUM every table that exists and has work; returns what was done per table (JSON-able)
    and, under ``"_state"``, the versions to record for the next maintenance (``previous``)."""
    if closed_after_days < 1:
        raise ValueError(f"closed_after_days must be >= 1, got {closed_after_days}")
    if retention_hours < MIN_RETENTION_HOURS:
        raise ValueError(f"retention_hours must be >= {MIN_RETENTION_HOURS} (7 days), got {retention_hours}")
    now = now or datetime.now(UTC)
    previous = previous or {}
    min_file_size = int(spark.conf.get("spark.databricks.delta.optimize.minFileSize", str(1024**3)) or 1024**3)
    newest_closed = today - timedelta(days=closed_after_days + 1)
    report: dict[str, Any] = {}
    state: dict[str, Any] = {}
    heartbeat = speed_layer_heartbeat(lake, settings)
    speed_live = heartbeat is not None and now - heartbeat <= HEARTBEAT_STALE_AFTER
    names = ["bronze/events", *_COMPACTED, *_NOT_COMPACTED]
    for name in names:
        path = lake.table(name)
        table = _delta_rs(path, settings)
        if table is None:
            continue
        pruned = None
        if name == PROGRESS_TABLE:  # before the idle check: time moves on even when the table does not
            hours = getattr(settings, "speed_progress_retention_hours", DEFAULT_RETENTION_HOURS)
            pruned = prune_progress(spark, path, table, hours, optimize_attempts)
            table = _delta_rs(path, settings)
        version = int(table.version())
        seen = previous.get(name) or {}
        seen_at = datetime.fromisoformat(seen["at"]) if seen.get("at") else None
        if seen.get("version") == version and seen_at and now - seen_at < timedelta(hours=retention_hours):
            report[name] = {"skipped": f"unchanged since the maintenance of {seen['at']} (version {version})"}
            state[name] = seen
            continue
        entry: dict[str, Any] = {"version_before": version}
        if pruned is not None:
            entry["prune"] = pruned
        # --- OPTIMIZE ---------------------------------------------------------------------------------
        if name in _NOT_COMPACTED:
            entry["optimize"] = "skipped: batch views are never compacted (publish would rewrite history)"
        elif name in _MERGE_TARGETS and not optimize_speed_tables:
            entry["optimize"] = "skipped: RETAIL_BATCH_OPTIMIZE_SPEED_TABLES=false"
        else:
            small = _small_files(table, min_file_size)
            if name == "bronze/events":
                closed = sorted(
                    {
                        str(dict(partition).get("partition.event_date"))
                        for partition, count in small.items()
                        if count >= MIN_FILES_TO_COMPACT
                        and dict(partition).get("partition.event_date") is not None
                        and _as_date(dict(partition)["partition.event_date"]) <= newest_closed
                    }
                )
                where = "event_date IN (" + ", ".join(f"DATE'{day}'" for day in closed) + ")" if closed else None
                entry["optimize_where"] = where
                entry["optimize"] = (
                    optimize(spark, path, where, optimize_attempts)
                    if where
                    else f"skipped: no closed partition with {MIN_FILES_TO_COMPACT} or more small files"
                )
            elif any(count >= MIN_FILES_TO_COMPACT for count in small.values()):
                try:
                    entry["optimize"] = optimize(spark, path, None, optimize_attempts)
                except Exception as error:  # noqa: BLE001 - a race lost every time: reported, tried next night
                    if not _is_conflict(error):
                        raise
                    entry["optimize"] = (
                        f"skipped after {optimize_attempts} attempts lost to concurrent commits: "
                        f"{str(error).splitlines()[0][:200]}"
                    )
            else:
                entry["optimize"] = f"skipped: fewer than {MIN_FILES_TO_COMPACT} small files"
        # --- VACUUM -----------------------------------------------------------------------------------
        table = _delta_rs(path, settings)
        properties = dict(table.metadata().configuration)
        hours = retention_hours_of(properties)
        if hours is None or hours < retention_hours:
            entry.update(vacuum(spark, path, retention_hours))
        else:
            candidates = _vacuum_candidates(table, hours)
            if candidates == 0:
                entry["vacuum"] = f"skipped: no file past the retention of {hours:g} h"
            else:
                entry.update(vacuum(spark, path, retention_hours))
                entry["vacuum_candidates"] = candidates
        entry["vacuum_retention_hours"] = retention_hours
        after = _delta_rs(path, settings)
        state[name] = {"version": int(after.version()), "at": now.isoformat()}
        report[name] = entry
    report["_speed_layer"] = {"heartbeat": heartbeat.isoformat() if heartbeat else None, "running": speed_live}
    report["_state"] = state
    return report


def _as_date(value: Any) -> date:
    return value if isinstance(value, date) else date.fromisoformat(str(value))
