"""Where every Delta table and checkpoint lives, under the lake root (names fixed by docs/design.md)."""

from __future__ import annotations

from dataclasses import dataclass

from contracts.events import EVENT_FIELD_TYPES

__all__ = [
    "TABLE_NAMES",
    "TABLE_SCHEMAS",
    "BRONZE_COLUMNS",
    "QUARANTINE_COLUMNS",
    "RUN_FAILED",
    "RUN_SUCCEEDED",
    "Lake",
]

TABLE_NAMES: tuple[str, ...] = (
    "bronze/events",
    "bronze/quarantine",
    "speed/sales_minute",
    "speed/inventory",
    "speed/alerts",
    "speed/progress",
    "batch/sales_minute",
    "batch/sales_hour",
    "batch/sales_day",
    "batch/runs",
    "batch/lease",
)


def _join(root: str, name: str) -> str:
    # lake roots may be URIs (s3a://bucket/prefix), so join as strings, not pathlib paths
    return f"{root.rstrip('/')}/{name}"


@dataclass(frozen=True)
class Lake:
    """Table and checkpoint locations derived from two roots.

    Example::

        lake = Lake(root="var/lake", checkpoints="var/checkpoints")
        lake.bronze_events            # 'var/lake/bronze/events'
        lake.checkpoint("bronze")     # 'var/checkpoints/bronze'
    """

    root: str
    checkpoints: str

    def table(self, name: str) -> str:
        """Location of the table called ``name`` (one of TABLE_NAMES)."""
        if name not in TABLE_NAMES:
            raise ValueError(f"table name must be one of {TABLE_NAMES}, got {name!r}")
        return _join(self.root, name)

    def checkpoint(self, query: str) -> str:
        """Checkpoint folder of the streaming query called ``query``."""
        if not query or "/" in query:
            raise ValueError(f"query must be a non-empty name without '/', got {query!r}")
        return _join(self.checkpoints, query)

    @property
    def bronze_events(self) -> str:
        return self.table("bronze/events")

    @property
    def bronze_quarantine(self) -> str:
        return self.table("bronze/quarantine")


# The master dataset: every event field, then where and when the record arrived (Kafka coordinates, ingest time)
# and the date partition column.
_BRONZE_COLUMN_TYPES: dict[str, str] = {
    **EVENT_FIELD_TYPES,
    "kafka_topic": "string",
    "kafka_partition": "int",
    "kafka_offset": "bigint",
    "kafka_timestamp": "timestamp",
    "ingest_time": "timestamp",
    "event_date": "date",
}
BRONZE_COLUMNS: tuple[str, ...] = tuple(_BRONZE_COLUMN_TYPES)

QUARANTINE_COLUMNS: tuple[str, ...] = (
    "raw_key",
    "raw_value",
    "kafka_topic",
    "kafka_partition",
    "kafka_offset",
    "kafka_timestamp",
    "reject_reason",
    "ingest_time",
)

# Column layouts every writer and reader agrees on (Spark DDL). Timestamps are UTC `timestamp`, money DECIMAL(18,2).
TABLE_SCHEMAS: dict[str, str] = {
    "bronze/events": ", ".join(f"{name} {kind}" for name, kind in _BRONZE_COLUMN_TYPES.items()),
    "bronze/quarantine": (
        "raw_key binary, raw_value binary, kafka_topic string, kafka_partition int, kafka_offset bigint, "
        "kafka_timestamp timestamp, reject_reason string, ingest_time timestamp"
    ),
    "speed/sales_minute": (
        "bucket_start timestamp, bucket_end timestamp, dimension string, key string, revenue decimal(18,2), "
        "orders bigint, units bigint, users_sketch binary, users_estimate bigint, updated_at timestamp"
    ),
    "speed/inventory": (
        "product_id string, stock bigint, threshold int, below_threshold boolean, "
        "last_event_time timestamp, updated_at timestamp"
    ),
    "speed/alerts": (
        "alert_id string, product_id string, kind string, stock_at_open bigint, threshold int, "
        "opened_at timestamp, resolved_at timestamp"
    ),
    "speed/progress": (
        "query string, batch_id bigint, run_id string, timestamp timestamp, input_rows bigint, "
        "input_rows_per_s double, processed_rows_per_s double, batch_duration_ms bigint, "
        "watermark timestamp, offsets_behind bigint, late_rows bigint, durations string"
    ),
    "batch/sales_minute": (
        "bucket_start timestamp, bucket_end timestamp, dimension string, key string, revenue decimal(18,2), "
        "orders bigint, units bigint, distinct_users bigint, run_id string, computed_at timestamp"
    ),
    "batch/runs": (
        "run_id string, interval_start timestamp, interval_end timestamp, status string, message string, "
        "started_at timestamp, finished_at timestamp, bronze_rows bigint, deduplicated_rows bigint, "
        "view_rows bigint, high_water_mark timestamp, sales_minute_version bigint, "
        "sales_hour_version bigint, sales_day_version bigint, validation_report string"
    ),
    # one row: the run holding the batch lease ("" when free) and its fencing token (batch_layer/lease.py)
    "batch/lease": "holder string, token bigint, acquired_at timestamp, expires_at timestamp",
}
TABLE_SCHEMAS["batch/sales_hour"] = TABLE_SCHEMAS["batch/sales_minute"]

RUN_SUCCEEDED = "succeeded"
"""batch/runs.status of a run that published its views and marks."""
RUN_FAILED = "failed"
"""batch/runs.status of a run whose gate failed: it published nothing."""
TABLE_SCHEMAS["batch/sales_day"] = TABLE_SCHEMAS["batch/sales_minute"]
