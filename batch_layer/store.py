"""The I/O edge of the batch layer: Delta reads and writes, the batch/runs table, run files under the lake.

Everything goes through Spark (Delta, and Hadoop's FileSystem for the small JSON files) so a lake root on
object storage works the same as a local folder.

Layout under the lake root (besides the tables of DESIGN.md)::

    batch/_staging/<run>/sales_minute|sales_hour|sales_day|daily_totals   results of `recompute`, per run
    batch/reports/<run>/state.json, validate_input.json, recompute.json, validate_views.json, publish.json
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from contracts.tables import TABLE_SCHEMAS, Lake

__all__ = ["BatchStore", "RunRow", "VIEW_TABLES"]

VIEW_TABLES: dict[str, str] = {"minute": "batch/sales_minute", "hour": "batch/sales_hour", "day": "batch/sales_day"}
STATUS_SUCCEEDED = "succeeded"
STATUS_FAILED = "failed"


def _safe(run_id: str) -> str:
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

    def __init__(self, spark: SparkSession, lake: Lake) -> None:
        self.spark = spark
        self.lake = lake

    # --- generic --------------------------------------------------------------------------------
    def exists(self, path: str) -> bool:
        from delta.tables import DeltaTable

        return bool(DeltaTable.isDeltaTable(self.spark, path))

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
        from delta.tables import DeltaTable

        return int(DeltaTable.forPath(self.spark, path).history(1).select("version").first()[0])

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

    def staging_uri(self, run_id: str, name: str) -> str:
        return f"{self.lake.root.rstrip('/')}/batch/_staging/{_safe(run_id)}/{name}"

    def write_staging(self, run_id: str, name: str, frame: DataFrame) -> None:
        """Overwrite one staging table of the run (a retry replaces what an earlier try left)."""
        (
            frame.write.format("delta")
            .mode("overwrite")
            .option("overwriteSchema", "true")
            .save(self.staging_uri(run_id, name))
        )

    def read_staging(self, run_id: str, name: str) -> DataFrame:
        return self.spark.read.format("delta").load(self.staging_uri(run_id, name))

    def staging_exists(self, run_id: str) -> bool:
        return all(self.exists(self.staging_uri(run_id, name)) for name in ("sales_minute", "sales_hour", "sales_day"))

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
    def bronze(self) -> DataFrame:
        path = self.lake.table("bronze/events")
        if not self.exists(path):
            # an empty lake is a valid input (nothing happened yet): an empty frame of the contract's schema
            return self.spark.createDataFrame([], TABLE_SCHEMAS["bronze/events"])
        return self.spark.read.format("delta").load(path)

    def speed_watermark(self) -> tuple[bool, datetime | None]:
        """(speed/progress exists, the speed layer's watermark now).

        The watermark is each query's latest non-null watermark, and the smallest of those over the queries
        that have one (the most careful reading when several stateful queries run).
        """
        path = self.lake.table("speed/progress")
        if not self.exists(path):
            return False, None
        progress = self.spark.read.format("delta").load(path).where(F.col("watermark").isNotNull())
        latest = progress.groupBy("query").agg(F.max_by("watermark", "timestamp").alias("watermark"))
        row = latest.agg(F.min("watermark").alias("watermark")).first()
        value = row["watermark"] if row else None
        return True, None if value is None else _aware(value)

    # --- views ----------------------------------------------------------------------------------
    def write_view(self, grain: str, view: DataFrame, start: datetime, end: datetime) -> int:
        """Replace exactly the buckets in ``[start, end)`` of one batch view; returns the new table version."""
        path = self.lake.table(VIEW_TABLES[grain])
        predicate = f"bucket_start >= {_sql_ts(start)} AND bucket_start < {_sql_ts(end)}"
        ordered = view.select(*[F.col(c) for c in _columns("batch/sales_minute")])
        if not self.exists(path):
            self.spark.createDataFrame([], TABLE_SCHEMAS[VIEW_TABLES[grain]]).write.format("delta").save(path)
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

    def current_high_water_mark(self) -> datetime | None:
        """W now: the newest high-water mark of a succeeded run (it never moves backwards, so also the largest)."""
        runs = self.runs()
        if runs is None:
            return None
        row = runs.where(F.col("status") == STATUS_SUCCEEDED).agg(F.max("high_water_mark").alias("w")).first()
        return None if row is None or row["w"] is None else _aware(row["w"])

    def succeeded_runs(self) -> list[dict[str, Any]]:
        runs = self.runs()
        if runs is None:
            return []
        return [row.asDict() for row in runs.where(F.col("status") == STATUS_SUCCEEDED).collect()]

    def upsert_run(self, row: RunRow) -> None:
        """Insert or replace the row of ``row.run_id``: a retried step rewrites its own row only.

        A ``replaceWhere`` on the run id is the MERGE of one row, in one Spark job instead of several.
        """
        path = self.lake.table("batch/runs")
        frame = self.spark.createDataFrame(
            [tuple(getattr(row, c) for c in _columns("batch/runs"))], TABLE_SCHEMAS["batch/runs"]
        )
        if not self.exists(path):
            frame.write.format("delta").save(path)
            return
        quoted = row.run_id.replace("'", "''")
        frame.write.format("delta").mode("overwrite").option("replaceWhere", f"run_id = '{quoted}'").save(path)


def _columns(table: str) -> list[str]:
    # split on the commas between fields, not those inside decimal(18,2)
    return [part.strip().split(" ")[0] for part in re.split(r",(?![^(]*\))", TABLE_SCHEMAS[table])]


def _aware(value: datetime) -> datetime:
    # Spark hands timestamps to Python as naive datetimes in the Python process's local zone
    return value.astimezone(UTC) if value.tzinfo else value.astimezone().astimezone(UTC)
