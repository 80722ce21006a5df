"""Write real Delta views with the real Spark + Delta writer, the way the speed and batch layers write them.

The speed and batch layers are written by others in parallel; until they land, these helpers call the shared
metric function (contracts.metrics.sales_rollup) and write its output with the table layouts of
contracts.tables, so the serving layer is tested against tables it will meet in production:
- speed/sales_minute is MERGEd on (bucket_start, dimension, key) like an update-mode micro-batch would;
- batch views are overwritten for their interval and a batch/runs row records W and the view versions.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from contracts.metrics import sales_rollup
from contracts.tables import TABLE_SCHEMAS, Lake

__all__ = ["Event", "LakeBuilder", "purchase", "view"]

_EVENT_SCHEMA = (
    "event_id string, event_type string, event_time timestamp, user_id string, product_id string, "
    "category string, quantity int, unit_price decimal(18,2)"
)


@dataclass(frozen=True)
class Event:
    event_id: str
    event_type: str
    event_time: datetime
    user_id: str | None
    product_id: str
    category: str
    quantity: int | None = None
    unit_price: Decimal | None = None


def purchase(n: int, at: datetime, user: str, product: str, category: str, quantity: int, price: str) -> Event:
    return Event(f"e-{n}", "purchase", at, user, product, category, quantity, Decimal(price))


def view(n: int, at: datetime, user: str, product: str, category: str) -> Event:
    return Event(f"e-{n}", "page_view", at, user, product, category)


def _iso(moment: datetime | None) -> str | None:
    return None if moment is None else moment.astimezone(UTC).isoformat()


def _version(path: str) -> int:
    from deltalake import DeltaTable

    return int(DeltaTable(path).version())


class LakeBuilder:
    """Writes views into one lake root with the session's Spark (one per test run)."""

    def __init__(self, spark: SparkSession, lake_root: str) -> None:
        self.spark = spark
        self.lake = Lake(root=lake_root, checkpoints=lake_root + "/_checkpoints")

    def events(self, events: Sequence[Event]) -> DataFrame:
        rows = [
            (e.event_id, e.event_type, e.event_time, e.user_id, e.product_id, e.category, e.quantity, e.unit_price)
            for e in events
        ]
        return self.spark.createDataFrame(rows, _EVENT_SCHEMA)

    def _exists(self, path: str) -> bool:
        from deltalake import DeltaTable

        return DeltaTable.is_deltatable(path)

    def merge_speed_minutes(self, events: Sequence[Event]) -> int:
        """Recompute the minute buckets of ``events`` and MERGE them into speed/sales_minute; returns the version."""
        path = self.lake.table("speed/sales_minute")
        rolled = sales_rollup(self.events(events), grain="minute", users="sketch").withColumn(
            "updated_at", F.current_timestamp()
        )
        if not self._exists(path):
            rolled.write.format("delta").mode("errorifexists").save(path)
        else:
            from delta.tables import DeltaTable as SparkDeltaTable

            (
                SparkDeltaTable.forPath(self.spark, path)
                .alias("t")
                .merge(
                    rolled.alias("s"),
                    "t.bucket_start = s.bucket_start AND t.dimension = s.dimension AND t.key = s.key",
                )
                .whenMatchedUpdateAll()
                .whenNotMatchedInsertAll()
                .execute()
            )
        return _version(path)

    def write_batch(
        self,
        events: Sequence[Event],
        run_id: str,
        interval: tuple[datetime, datetime],
        high_water_mark: datetime | None,
        status: str = "succeeded",
        low_water_mark: datetime | None = None,
    ) -> dict[str, int]:
        """Overwrite the batch views with exact roll-ups of ``events`` and record the run in batch/runs.

        ``low_water_mark`` (L) goes where the batch layer's publish step puts it: ``validation_report`` JSON,
        ``["high_water_mark"]["low"]`` as an ISO string; without it the row looks like one written before L existed.
        """
        versions: dict[str, int] = {}
        frame = self.events(events)
        for grain in ("minute", "hour", "day"):
            path = self.lake.table(f"batch/sales_{grain}")
            rolled = sales_rollup(frame, grain=grain, users="exact").select(
                "*", F.lit(run_id).alias("run_id"), F.current_timestamp().alias("computed_at")
            )
            rolled.write.format("delta").mode("overwrite").save(path)
            versions[grain] = _version(path)
        now = datetime.now(UTC)
        run = {
            "run_id": run_id,
            "interval_start": interval[0],
            "interval_end": interval[1],
            "status": status,
            "message": None,
            "started_at": now,
            "finished_at": now,
            "bronze_rows": len(events),
            "deduplicated_rows": len(events),
            "view_rows": None,
            "high_water_mark": high_water_mark,
            "sales_minute_version": versions["minute"],
            "sales_hour_version": versions["hour"],
            "sales_day_version": versions["day"],
            "validation_report": None
            if low_water_mark is None
            else json.dumps(
                {"high_water_mark": {"new": _iso(high_water_mark), "low": _iso(low_water_mark)}},
            ),
        }
        self.append("batch/runs", [run])
        return versions

    def append(self, name: str, records: Iterable[dict[str, Any]]) -> int:
        """Append rows (dicts with every column of the table's layout) to table ``name``."""
        schema = TABLE_SCHEMAS[name]
        columns = [part.strip().split(" ")[0] for part in schema.split(", ")]
        rows = [tuple(record[c] for c in columns) for record in records]
        path = self.lake.table(name)
        self.spark.createDataFrame(rows, schema).write.format("delta").mode("append").save(path)
        return _version(path)

    def overwrite(self, name: str, records: Iterable[dict[str, Any]]) -> int:
        schema = TABLE_SCHEMAS[name]
        columns = [part.strip().split(" ")[0] for part in schema.split(", ")]
        rows = [tuple(record[c] for c in columns) for record in records]
        path = self.lake.table(name)
        self.spark.createDataFrame(rows, schema).write.format("delta").mode("overwrite").save(path)
        return _version(path)
