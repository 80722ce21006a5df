"""Speed layer job: Kafka (retail.events) → bronze + quarantine, minute rollups, inventory + alerts, in Delta.

Three streaming queries, each with its own checkpoint, because Spark restricts chaining stateful operators:

- ``bronze``    stateless: every valid record → bronze/events (before any watermark or dedup), every invalid one
                → bronze/quarantine with its reason.
- ``rollups``   watermark + dedup by event_id + the shared minute metric → MERGE into speed/sales_minute.
- ``inventory`` stock per product (state in the checkpoint) → MERGE into speed/inventory and speed/alerts, and
                alert transitions → the alerts topic.

Usage::

    retail speed                       # run until stopped (Ctrl-C)
    retail speed --available-now       # process what is in Kafka now, then stop (tests, catch-up)

Settings: RETAIL_SPEED_WATERMARK, RETAIL_SPEED_TRIGGER, RETAIL_SPEED_MAX_OFFSETS_PER_TRIGGER,
RETAIL_SPEED_STARTING_OFFSETS, RETAIL_LOW_STOCK_THRESHOLD (docs/settings.md).
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql.streaming import StreamingQuery

from contracts.parser import parse_kafka_records
from contracts.settings import Settings
from contracts.spark import build_spark_session
from contracts.tables import Lake
from speed_layer.progress import ProgressRecorder
from speed_layer.sinks import (
    QueryIdentity,
    append_once,
    ensure_speed_tables,
    maybe_crash_for_test,
    merge_once,
    send_alerts,
)
from speed_layer.transforms import inventory_updates, minute_rollups, quarantined_records, valid_events

__all__ = ["SpeedLayer", "run"]

log = logging.getLogger(__name__)

BatchFn = Callable[[DataFrame, int], None]


def _duration(text: str) -> timedelta:
    match = re.fullmatch(r"\s*(\d+)\s*(second|minute|hour)s?\s*", text)
    if not match:
        raise ValueError(f"speed_watermark must look like '5 minutes' or '30 seconds', got {text!r}")
    amount, unit = int(match.group(1)), match.group(2)
    return timedelta(**{f"{unit}s": amount})


@dataclass
class SpeedLayer:
    """Builds and starts the three queries on one session. ``start`` returns the running queries."""

    spark: SparkSession
    settings: Settings
    available_now: bool = False

    def __post_init__(self) -> None:
        self.lake = Lake(self.settings.lake_root, self.settings.checkpoint_root)
        self.watermark_delay = _duration(self.settings.speed_watermark)

    # --- source -----------------------------------------------------------------------------------
    def _kafka_records(self) -> DataFrame:
        reader = self.spark.readStream.format("kafka")
        for key, value in self.settings.kafka_client_options().items():
            reader = reader.option(f"kafka.{key}", value)
        reader = (
            reader.option("subscribe", self.settings.events_topic)
            .option("startingOffsets", self.settings.speed_starting_offsets)
            # a gap in the topic (retention deleted unread data) must stop the job, never pass silently
            .option("failOnDataLoss", "true")
        )
        if self.settings.speed_max_offsets_per_trigger:
            reader = reader.option("maxOffsetsPerTrigger", self.settings.speed_max_offsets_per_trigger)
        return reader.load()

    def _start(self, name: str, frame: DataFrame, batch_fn: BatchFn, output_mode: str) -> StreamingQuery:
        identity = QueryIdentity(name)

        def on_batch(batch: DataFrame, batch_id: int) -> None:
            batch_fn(batch, batch_id, identity.app_id)  # type: ignore[call-arg]
            maybe_crash_for_test(name)

        writer = (
            frame.writeStream.queryName(name)
            .outputMode(output_mode)
            .option("checkpointLocation", self.lake.checkpoint(name))
            .foreachBatch(on_batch)
        )
        writer = (
            writer.trigger(availableNow=True)
            if self.available_now
            else writer.trigger(processingTime=self.settings.speed_trigger)
        )
        query = writer.start()
        identity.set(query.id)
        return query

    # --- bronze + quarantine ------------------------------------------------------------------------
    def _write_bronze(self, batch: DataFrame, batch_id: int, app_id: str) -> None:
        parsed = batch.persist()
        try:
            append_once(valid_events(parsed), self.lake.bronze_events, app_id, batch_id)
            append_once(quarantined_records(parsed), self.lake.bronze_quarantine, app_id, batch_id)
        finally:
            parsed.unpersist()

    # --- rollups ----------------------------------------------------------------------------------
    def _write_rollups(self, batch: DataFrame, batch_id: int, app_id: str) -> None:
        # materialise once: commits the state store even when Delta skips an already-written batch
        rows = batch.withColumn("updated_at", F.current_timestamp()).persist()
        try:
            if rows.count() == 0:
                return  # a no-data batch that only moved the watermark: nothing to MERGE, no empty commit
            merge_once(
                rows,
                self.lake.table("speed/sales_minute"),
                on="t.bucket_start = s.bucket_start AND t.dimension = s.dimension AND t.key = s.key",
                app_id=app_id,
                batch_id=batch_id,
            )
        finally:
            rows.unpersist()

    # --- inventory + alerts -------------------------------------------------------------------------
    def _write_inventory(self, batch: DataFrame, batch_id: int, app_id: str) -> None:
        rows = batch.persist()
        try:
            if rows.count() == 0:
                return  # materialised (state committed) and nothing changed
            stock = rows.where(F.col("row_kind") == "inventory").select(
                "product_id",
                "stock",
                "threshold",
                "below_threshold",
                "last_event_time",
                F.current_timestamp().alias("updated_at"),
            )
            merge_once(stock, self.lake.table("speed/inventory"), "t.product_id = s.product_id", app_id, batch_id)
            transitions = rows.where(F.col("row_kind") != "inventory")
            alerts = transitions.groupBy("alert_id").agg(
                F.first("product_id").alias("product_id"),
                F.lit("low_stock").alias("kind"),
                F.max(F.when(F.col("row_kind") == "alert_open", F.col("stock"))).alias("stock_at_open"),
                F.first("threshold").alias("threshold"),
                F.max(F.when(F.col("row_kind") == "alert_open", F.col("alert_at"))).alias("opened_at"),
                F.max(F.when(F.col("row_kind") == "alert_resolve", F.col("alert_at"))).alias("resolved_at"),
            )
            merge_once(
                alerts,
                self.lake.table("speed/alerts"),
                "t.alert_id = s.alert_id",
                app_id,
                batch_id,
                update_set={"resolved_at": "coalesce(s.resolved_at, t.resolved_at)"},
                insert_condition="s.opened_at IS NOT NULL",
            )
            if not transitions.isEmpty():
                send_alerts(
                    transitions.select(
                        "alert_id",
                        "product_id",
                        F.when(F.col("row_kind") == "alert_open", "opened").otherwise("resolved").alias("state"),
                        "stock",
                        "threshold",
                        F.date_format("alert_at", "yyyy-MM-dd'T'HH:mm:ss.SSSXXX").alias("at"),
                    ),
                    self.settings.kafka_client_options(),
                    self.settings.alerts_topic,
                )
        finally:
            rows.unpersist()

    def start(self) -> list[StreamingQuery]:
        ensure_speed_tables(self.spark, self.lake)
        parsed = parse_kafka_records(self._kafka_records())
        events = valid_events(parsed)
        threshold = self.settings.low_stock_threshold
        return [
            self._start("bronze", parsed, self._write_bronze, "append"),  # type: ignore[arg-type]
            self._start(
                "rollups",
                minute_rollups(events, self.settings.speed_watermark),
                self._write_rollups,  # type: ignore[arg-type]
                "update",
            ),
            self._start(
                "inventory",
                inventory_updates(events, threshold, self.watermark_delay),
                self._write_inventory,  # type: ignore[arg-type]
                "update",
            ),
        ]


def run(settings: Settings, available_now: bool = False) -> int:
    """Entry point of `retail speed`: start the queries and wait; returns a process exit code."""
    spark = build_spark_session(settings, app_name="retail-speed-layer")
    lake = Lake(settings.lake_root, settings.checkpoint_root)
    recorder = ProgressRecorder(lake.table("speed/progress"))
    spark.streams.addListener(recorder)
    queries = SpeedLayer(spark, settings, available_now=available_now).start()
    print(
        f"speed layer running: {', '.join(q.name for q in queries)} reading {settings.events_topic} "
        f"at {settings.kafka_bootstrap_servers}; lake {settings.lake_root}",
        flush=True,
    )
    failed = False
    try:
        if available_now:
            for query in queries:
                query.awaitTermination()
        else:
            spark.streams.awaitAnyTermination()
    except KeyboardInterrupt:
        print("stopping speed layer ...", flush=True)
    finally:
        for query in queries:
            if query.exception() is not None:
                failed = True
                log.error("query %s failed: %s", query.name, query.exception())
            query.stop()
        recorder.close()
    return 1 if failed else 0
