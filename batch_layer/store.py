"""The I/O edge of the batch layer: Delta reads and writes, the batch/runs table, run files under the lake.

Data goes through Spark (Delta, and Hadoop's FileSystem for the small JSON files) so a lake root on object storage
works the same as a local folder. Small metadata reads that need no Spark job (table versions, speed/progress,
batch/runs, the staged views for the reconciliation) go through delta-rs (``deltalake``), which reads the same
tables without a JVM; delta-rs never writes here (one writer per table: Spark).

Layout under the lake root (besides the tables of DESIGN.md)::

    batch/_staging/<run>/views              results of `recompute` (all grains, partitioned by grain), per run
    batch/reports/<run>/state.json, validate_input.json, recompute.json, validate_views.json, publish.json, ...
    batch/maintenance.json                  table versions and times of the last maintenance (skips idle tables)
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from batch_layer.arguments import checked_run_id
from batch_layer.interval import Coverage, Marks, RunRecord, SpeedProgress, parse_moment
from contracts.storage import delta_rs_location
from contracts.tables import RUN_FAILED, RUN_SUCCEEDED, TABLE_SCHEMAS, Lake

__all__ = ["BatchStore", "RunRow", "VIEW_TABLES"]

VIEW_TABLES: dict[str, str] = {"minute": "batch/sales_minute", "hour": "batch/sales_hour", "day": "batch/sales_day"}
STATUS_SUCCEEDED = RUN_SUCCEEDED
STATUS_FAILED = RUN_FAILED
STAGED_VIEWS = "views"
RETENTION_PROPERTY = "delta.deletedFileRetentionDuration"


def _safe(run_id: str) -> str:
    # checked again here, whoever called: a path built from a run id never leaves its folder ("..", "/")
    checked_run_id(run_id)
    # Airflow run ids hold ':' and '+', which Hadoop paths reject
    return re.sub(r"[^A-Za-z0-9_.-]", "_", run_id)


def _sql_ts(moment: datetime) -> str:
    return f"TIMESTAMP'{moment.astimezone(UTC):%Y-%m-%d %H:%M:%S}'"


@dataclass(frozen=True)
class RunRow:
    """One row of batch/runs (TABLE_SCHEMAS["batch/runs"])."""

    run_id: str
    interval_start: datetime
    interval_end: datetime
    status: str
    message: str
    started_at: datetime
    finished_at: datetime
    bronze_rows: int | None = None
    deduplicated_rows: int | None = None
    view_rows: int | None = None
    high_water_mark: datetime | None = None
    sales_minute_version: int | None = None
    sales_hour_version: int | None = None
    sales_day_version: int | None = None
    validation_report: str | None = None


class BatchStore:
    """Reads and writes of one lake for the batch layer.

    Example::

        store = BatchStore(spark, Lake(settings.lake_root, settings.checkpoint_root))
        bronze = store.bronze()
        store.write_view("day", view_df, interval.range_start, interval.range_end)
    """

    def __init__(self, spark: SparkSession, lake: Lake, settings: Any = None) -> None:
        self.spark = spark
        self.lake = lake
        self.settings = settings

    # --- generic --------------------------------------------------------------------------------
    def exists(self, path: str) -> bool:
        """Whether ``path`` holds a Delta table (read through delta-rs: no Spark job)."""
        from deltalake import DeltaTable

        uri, options = delta_rs_location(path, self.settings)
        return bool(DeltaTable.is_deltatable(uri, storage_options=options))

    def delta_rs(self, path: str, version: int | None = None):  # type: ignore[no-untyped-def]
        """The delta-rs handle of a table (latest version unless ``version``)."""
        from deltalake import DeltaTable

        uri, options = delta_rs_location(path, self.settings)
        return DeltaTable(uri, version=version, storage_options=options)

    def _fs(self, uri: str):  # type: ignore[no-untyped-def]
        jvm = self.spark.sparkContext._jvm
        path = jvm.org.apache.hadoop.fs.Path(uri)
        return path, path.getFileSystem(self.spark.sparkContext._jsc.hadoopConfiguration())

    def write_text(self, uri: str, text: str) -> None:
        path, fs = self._fs(uri)
        stream = fs.create(path, True)
        try:
            stream.write(bytearray(text.encode("utf-8")))
        finally:
            stream.close()

    def read_text(self, uri: str) -> str | None:
        path, fs = self._fs(uri)
        if not fs.exists(path):
            return None
        stream = fs.open(path)
        try:
            return str(self.spark.sparkContext._jvm.org.apache.commons.io.IOUtils.toString(stream, "UTF-8"))
        finally:
            stream.close()

    def delete_tree(self, uri: str) -> None:
        path, fs = self._fs(uri)
        if fs.exists(path):
            fs.delete(path, True)

    def latest_version(self, path: str) -> int:
        return int(self.delta_rs(path).version())

    # --- run files ------------------------------------------------------------------------------
    def report_uri(self, run_id: str, name: str) -> str:
        return f"{self.lake.root.rstrip('/')}/batch/reports/{_safe(run_id)}/{name}"

    def write_json(self, run_id: str, name: str, payload: dict[str, Any]) -> str:
        uri = self.report_uri(run_id, name)
        self.write_text(uri, json.dumps(payload, indent=2, sort_keys=True, default=str))
        return uri

    def read_json(self, run_id: str, name: str) -> dict[str, Any] | None:
        text = self.read_text(self.report_uri(run_id, name))
        return None if text is None else json.loads(text)

    def delete_json(self, run_id: str, name: str) -> None:
        self.delete_tree(self.report_uri(run_id, name))

    def lake_json(self, name: str) -> dict[str, Any]:
        text = self.read_text(f"{self.lake.root.rstrip('/')}/batch/{name}")
        return {} if text is None else json.loads(text)

    def write_lake_json(self, name: str, payload: dict[str, Any]) -> None:
        self.write_text(f"{self.lake.root.rstrip('/')}/batch/{name}", json.dumps(payload, indent=2, sort_keys=True))

    # --- staging --------------------------------------------------------------------------------
    def staging_uri(self, run_id: str, name: str = STAGED_VIEWS) -> str:
        return f"{self.lake.root.rstrip('/')}/batch/_staging/{_safe(run_id)}/{name}"

    def write_staging(self, run_id: str, frame: DataFrame) -> int:
        """Overwrite the run's staged views (all grains, partitioned by grain); returns the staged version.

        A retry replaces what an earlier try left; the version tells validate-views and publish apart.
        """
        uri = self.staging_uri(run_id)
        (frame.write.format("delta").mode("overwrite").option("overwriteSchema", "true").partitionBy("grain").save(uri))
        return self.latest_version(uri)

    def read_staging(self, run_id: str, version: int | None = None) -> DataFrame:
        reader = self.spark.read.format("delta")
        if version is not None:
            reader = reader.option("versionAsOf", version)
        return reader.load(self.staging_uri(run_id))

    def staged_rows(self, run_id: str, version: int | None = None) -> dict[str, int]:
        """Rows per grain of the staged views, from the Delta log's file statistics (no data read)."""
        import pyarrow as pa

        actions = pa.table(self.delta_rs(self.staging_uri(run_id), version).get_add_actions(flatten=True)).to_pylist()
        rows: dict[str, int] = {}
        for action in actions:
            grain = action.get("partition.grain")
            rows[str(grain)] = rows.get(str(grain), 0) + int(action.get("num_records") or 0)
        return rows

    def staging_exists(self, run_id: str) -> bool:
        return self.exists(self.staging_uri(run_id))

    def drop_stale_staging(self, older_than_hours: float, now: datetime) -> list[str]:
        """Delete staging folders of runs that never published (a failed validation) after ``older_than_hours``."""
        path, fs = self._fs(f"{self.lake.root.rstrip('/')}/batch/_staging")
        if not fs.exists(path):
            return []
        cutoff_ms = (now.timestamp() - older_than_hours * 3600) * 1000
        dropped = []
        for status in fs.listStatus(path):
            if status.isDirectory() and status.getModificationTime() < cutoff_ms:
                fs.delete(status.getPath(), True)
                dropped.append(str(status.getPath().getName()))
        return dropped

    def drop_staging(self, run_id: str) -> None:
        self.delete_tree(f"{self.lake.root.rstrip('/')}/batch/_staging/{_safe(run_id)}")

    # --- bronze and speed -----------------------------------------------------------------------
    def bronze_version(self) -> int | None:
        """bronze/events' newest version now (None: no bronze yet). A run pins it so that every step reads the
        same snapshot while the speed layer keeps appending (late events of the interval included)."""
        path = self.lake.table("bronze/events")
        return self.latest_version(path) if self.exists(path) else None

    def bronze(self, version: int | None = None) -> DataFrame:
        """bronze/events (at ``version`` if given; an empty frame of its schema while there is no table)."""
        path = self.lake.table("bronze/events")
        if not self.exists(path):
            # an empty lake is a valid input (nothing happened yet): an empty frame of the contract's schema
            return self.spark.createDataFrame([], TABLE_SCHEMAS["bronze/events"])
        reader = self.spark.read.format("delta")
        if version is not None:
            reader = reader.option("versionAsOf", version)
        return reader.load(path)

    def speed_progress(self) -> SpeedProgress:
        """What speed/progress says now (delta-rs; no Spark job), from its recent window (contracts/progress.py).

        The speed watermark is each query's newest non-null watermark, and the smallest of those over the
        queries that have one (the most careful reading when several stateful queries run). Bronze is caught up
        at the trigger time of its newest committed micro-batch with no offsets behind latest. Rows with
        batch_id -1 (heartbeats, errors) are no micro-batch and count for neither.
        """
        import pyarrow.compute as pc

        from contracts.progress import DEFAULT_RETENTION_HOURS, PROGRESS_TABLE, recent_progress

        path = self.lake.table(PROGRESS_TABLE)
        if not self.exists(path):
            return SpeedProgress(exists=False)
        table = recent_progress(
            self.delta_rs(path),
            ["query", "batch_id", "timestamp", "watermark", "offsets_behind"],
            getattr(self.settings, "speed_progress_retention_hours", DEFAULT_RETENTION_HOURS),
        )
        table = table.filter(pc.greater_equal(table["batch_id"], 0))
        newest: dict[str, tuple[datetime, datetime]] = {}
        caught_up: datetime | None = None
        for row in table.to_pylist():
            at = row["timestamp"]
            if at is None:
                continue
            at = _aware(at)
            if row["watermark"] is not None:
                current = newest.get(row["query"])
                if current is None or at >= current[0]:
                    newest[row["query"]] = (at, _aware(row["watermark"]))
            if row["query"] == "bronze" and row["offsets_behind"] == 0 and (caught_up is None or at > caught_up):
                caught_up = at
        watermark = min((mark for _, mark in newest.values()), default=None)
        return SpeedProgress(exists=True, watermark=watermark, bronze_caught_up_at=caught_up)

    # --- views ----------------------------------------------------------------------------------
    def create_view_table(self, grain: str) -> None:
        """Create an empty batch view table with the maintenance's retention as a property (set at creation, so
        maintenance never alters a table)."""
        path = self.lake.table(VIEW_TABLES[grain])
        self._create(path, TABLE_SCHEMAS[VIEW_TABLES[grain]])

    def _create(self, path: str, schema: str) -> None:
        hours = getattr(self.settings, "vacuum_retention_hours", 168)
        properties = f" TBLPROPERTIES ('{RETENTION_PROPERTY}' = 'interval {hours} hours')" if hours != 168 else ""
        self.spark.sql(f"CREATE TABLE IF NOT EXISTS delta.`{path}` ({schema}) USING delta{properties}")

    def write_view(self, grain: str, view: DataFrame, start: datetime, end: datetime) -> int:
        """Replace exactly the buckets in ``[start, end)`` of one batch view; returns the new table version."""
        path = self.lake.table(VIEW_TABLES[grain])
        predicate = f"bucket_start >= {_sql_ts(start)} AND bucket_start < {_sql_ts(end)}"
        ordered = view.select(*[F.col(c) for c in _columns("batch/sales_minute")]).sortWithinPartitions("bucket_start")
        if not self.exists(path):
            self.create_view_table(grain)
        ordered.write.format("delta").mode("overwrite").option("replaceWhere", predicate).save(path)
        return self.latest_version(path)

    def read_view(self, grain: str, version: int | None = None) -> DataFrame:
        reader = self.spark.read.format("delta")
        if version is not None:
            reader = reader.option("versionAsOf", version)
        return reader.load(self.lake.table(VIEW_TABLES[grain]))

    # --- batch/runs -----------------------------------------------------------------------------
    def runs(self) -> DataFrame | None:
        path = self.lake.table("batch/runs")
        return self.spark.read.format("delta").load(path) if self.exists(path) else None

    def run_rows(self) -> list[dict[str, Any]]:
        """Every row of batch/runs as a dict with UTC datetimes (delta-rs; no Spark job)."""
        path = self.lake.table("batch/runs")
        if not self.exists(path):
            return []
        rows = self.delta_rs(path).to_pyarrow_table().to_pylist()
        return [{k: (_aware(v) if isinstance(v, datetime) else v) for k, v in row.items()} for row in rows]

    def run_records(self) -> list[RunRecord]:
        return [run_record(row) for row in self.run_rows()]

    def current_high_water_mark(self) -> datetime | None:
        """W now: the high-water mark of the published row (the largest; it never moves backwards)."""
        from batch_layer.interval import served_marks

        return served_marks(self.run_records())[1].high

    def current_marks(self) -> Marks:
        from batch_layer.interval import served_marks

        return served_marks(self.run_records())[1]

    def succeeded_runs(self) -> list[dict[str, Any]]:
        return [row for row in self.run_rows() if row.get("status") == STATUS_SUCCEEDED]

    def upsert_run(self, row: RunRow) -> None:
        """Insert or replace the row of ``row.run_id``: a retried step rewrites its own row only.

        A ``replaceWhere`` on the run id is the MERGE of one row, in one Spark job instead of several.
        """
        path = self.lake.table("batch/runs")
        frame = self.spark.createDataFrame(
            [tuple(getattr(row, c) for c in _columns("batch/runs"))], TABLE_SCHEMAS["batch/runs"]
        )
        if not self.exists(path):
            self._create(path, TABLE_SCHEMAS["batch/runs"])
        quoted = row.run_id.replace("'", "''")
        frame.write.format("delta").mode("overwrite").option("replaceWhere", f"run_id = '{quoted}'").save(path)


def run_record(row: dict[str, Any]) -> RunRecord:
    """The high-water-mark view of one batch/runs row: its coverage and the (L, W) it published."""
    report: dict[str, Any] = {}
    if row.get("validation_report"):
        try:
            report = json.loads(row["validation_report"]) or {}
        except ValueError:
            report = {}
    marks_report = report.get("high_water_mark") or {}
    until = marks_report.get("complete_until")
    low = marks_report.get("low")
    coverage = None
    if row.get("status") == STATUS_SUCCEEDED and until and row.get("interval_start") is not None:
        coverage = Coverage(_aware(row["interval_start"]), parse_moment(str(until)))
    high = row.get("high_water_mark")
    return RunRecord(
        run_id=str(row["run_id"]),
        succeeded=row.get("status") == STATUS_SUCCEEDED,
        coverage=coverage,
        marks=Marks(
            low=parse_moment(str(low)) if low and high is not None else None,
            high=_aware(high) if high is not None else None,
        ),
        finished_at=_aware(row["finished_at"]) if row.get("finished_at") is not None else None,
    )


def _columns(table: str) -> list[str]:
    # split on the commas between fields, not those inside decimal(18,2)
    return [part.strip().split(" ")[0] for part in re.split(r",(?![^(]*\))", TABLE_SCHEMAS[table])]


def _aware(value: datetime) -> datetime:
    # Spark hands timestamps to Python as naive datetimes in the Python process's local zone; delta-rs gives aware
    # UTC values (or naive UTC for timestamp_ntz)
    if value.tzinfo is not None:
        return value.astimezone(UTC)
    return value.replace(tzinfo=UTC)
