"""Speed layer job: Kafka (retail.events) → bronze + quarantine (Delta), live views (Kafka), their Delta copy.

Four streaming queries on one session, each with its own checkpoint and scheduler pool:

- ``bronze``    (pool bronze, RETAIL_SPEED_BRONZE_TRIGGER) stateless: every valid record → bronze/events (before
                any watermark or dedup), every invalid one → bronze/quarantine with its reason. Off the latency path.
- ``rollups``   (pool live, RETAIL_SPEED_TRIGGER) watermark + dedup by event_id + the shared minute metric →
                Spark's Kafka sink → the compacted topic retail.speed.sales (update mode).
- ``inventory`` (pool live) stock per product and low-stock alerts (a JVM stateful processor) → Spark's Kafka
                sink → the compacted topic retail.speed.inventory and the topic retail.alerts.
- ``durable``   (pool durable, RETAIL_SPEED_DURABLE_TRIGGER) reads those three topics back and MERGEs the newest
                value per key into speed/sales_minute, speed/inventory and speed/alerts, once per micro-batch.

The serving layer materialises the speed topics in memory, so an event reaches the API after one live
micro-batch: no Delta commit and no Python worker on the way (docs/design.md, "The flow").

After `retail rebuild-speed` (speed_layer/rebuild.py) a restart plan under the checkpoint root says where each
query's new checkpoint starts, the event-time floor of the live queries and the inventory's initial state.

Usage::

    retail speed                       # run until stopped (Ctrl-C)
    retail speed --available-now       # process what is in Kafka now, then stop (tests, catch-up)

Settings: RETAIL_SPEED_WATERMARK, RETAIL_SPEED_TRIGGER, RETAIL_SPEED_BRONZE_TRIGGER, RETAIL_SPEED_DURABLE_TRIGGER,
RETAIL_SPEED_MAX_OFFSETS_PER_TRIGGER, RETAIL_SPEED_STARTING_OFFSETS, RETAIL_LOW_STOCK_THRESHOLD (docs/settings.md).
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

from delta.tables import DeltaTable
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql.streaming import DataStreamWriter, StreamingQuery

from contracts.parser import parse_kafka_records
from contracts.settings import Settings
from contracts.spark import build_spark_session
from contracts.storage import delta_rs_location
from contracts.tables import Lake
from contracts.topics import ensure_topics, pipeline_topics
from speed_layer.progress import ProgressRecorder
from speed_layer.sinks import (
    QueryIdentity,
    RestartPlan,
    append_once,
    crash_planned_for,
    ensure_speed_tables,
    inventory_state_path,
    load_restart_plan,
    maybe_crash_for_test,
    merge_once,
)
from speed_layer.transforms import (
    inventory_records,
    inventory_updates,
    latest_speed_rows,
    minute_rollups,
    quarantined_records,
    sales_records,
    valid_events,
)

__all__ = ["SpeedLayer", "run"]

log = logging.getLogger(__name__)

BatchFn = Callable[[DataFrame, int], None]


def _duration(text: str) -> timedelta:
    match = re.fullmatch(r"\s*(\d+)\s*(second|minute|hour)s?\s*", text)
    if not match:
        raise ValueError(f"speed_watermark must look like '5 minutes' or '30 seconds', got {text!r}")
    amount, unit = int(match.group(1)), match.group(2)
    return timedelta(**{f"{unit}s": amount})


POOLS = ("live", "bronze", "durable")
_FAIR_SCHEDULER_FILE = Path(__file__).with_name("fairscheduler.xml")


def speed_session_conf() -> dict[str, str]:
    """Spark settings of the speed layer's own session (on top of contracts.spark.spark_conf)."""
    return {
        # the live queries' tasks go before bronze's and the Delta copy's (speed_layer/fairscheduler.xml)
        "spark.scheduler.mode": "FAIR",
        "spark.scheduler.allocation.file": str(_FAIR_SCHEDULER_FILE),
    }


@dataclass
class SpeedLayer:
    """Builds and starts the queries on one session. ``start`` returns the running queries."""

    spark: SparkSession
    settings: Settings
    available_now: bool = False

    def __post_init__(self) -> None:
        self.lake = Lake(self.settings.lake_root, self.settings.checkpoint_root)
        self.watermark_delay = _duration(self.settings.speed_watermark)
        self._plan: RestartPlan | None = None

    def _starting_offsets(self, query: str) -> str:
        # after `retail rebuild-speed`: the offsets consistent with the rebuilt views (used by Spark only when the
        # query's checkpoint is new); otherwise the setting
        if self._plan is not None and query in self._plan.offsets:
            return self._plan.offsets[query]
        return self.settings.speed_starting_offsets

    # --- sources and sinks ----------------------------------------------------------------------------
    def _kafka_options(self) -> dict[str, str]:
        return {f"kafka.{key}": value for key, value in self.settings.kafka_client_options().items()}

    def _kafka_records(self, topics: str, query: str) -> DataFrame:
        reader = self.spark.readStream.format("kafka").options(**self._kafka_options())
        reader = (
            reader.option("subscribe", topics)
            .option("startingOffsets", self._starting_offsets(query))
            # a gap in the topic (retention deleted unread data) must stop the job, never pass silently
            .option("failOnDataLoss", "true")
            # answer a fetch as soon as data is there instead of waiting to fill a batch
            .option("kafka.fetch.max.wait.ms", "20")
        )
        if self.settings.speed_max_offsets_per_trigger:
            reader = reader.option("maxOffsetsPerTrigger", self.settings.speed_max_offsets_per_trigger)
        return reader.load()

    def _trigger(self, writer: DataStreamWriter, interval: str) -> DataStreamWriter:
        return writer.trigger(availableNow=True) if self.available_now else writer.trigger(processingTime=interval)

    def _start(self, name: str, pool: str, writer: DataStreamWriter, interval: str) -> StreamingQuery:
        writer = self._trigger(
            writer.queryName(name).option("checkpointLocation", self.lake.checkpoint(name)),
            interval,
        )
        # a query's micro-batches run in the pool set on the thread that starts it (Spark's fair scheduler)
        self.spark.sparkContext.setLocalProperty("spark.scheduler.pool", pool)
        try:
            return writer.start()
        finally:
            self.spark.sparkContext.setLocalProperty("spark.scheduler.pool", None)  # type: ignore[arg-type]

    def _start_batches(
        self, name: str, pool: str, frame: DataFrame, batch_fn: BatchFn, output_mode: str, interval: str
    ) -> StreamingQuery:
        identity = QueryIdentity(name)

        def on_batch(batch: DataFrame, batch_id: int) -> None:
            # foreachBatch runs on a Python callback thread: give its jobs the query's pool there too
            batch.sparkSession.sparkContext.setLocalProperty("spark.scheduler.pool", pool)
            batch_fn(batch, batch_id, identity.app_id)  # type: ignore[call-arg]
            maybe_crash_for_test(name)

        query = self._start(name, pool, frame.writeStream.outputMode(output_mode).foreachBatch(on_batch), interval)
        identity.set(query.id)
        return query

    def _start_to_kafka(self, name: str, records: DataFrame) -> StreamingQuery:
        """A live query: update-mode records (topic, key, value) through Spark's Kafka sink."""
        options = {**self._kafka_options(), "kafka.linger.ms": "0"}
        if crash_planned_for(name):
            # test-only: the same records written from foreachBatch, so a crash can land between the Kafka write
            # and the checkpoint commit of one micro-batch (the window that replays a batch)
            def write(batch: DataFrame, _batch_id: int, _app_id: str) -> None:
                batch.write.format("kafka").options(**options).save()

            return self._start_batches(name, "live", records, write, "update", self.settings.speed_trigger)
        writer = records.writeStream.format("kafka").options(**options).outputMode("update")
        return self._start(name, "live", writer, self.settings.speed_trigger)

    # --- bronze + quarantine ------------------------------------------------------------------------
    def _write_bronze(self, batch: DataFrame, batch_id: int, app_id: str) -> None:
        parsed = batch.persist()
        try:
            append_once(valid_events(parsed), self.lake.bronze_events, app_id, batch_id)
            append_once(quarantined_records(parsed), self.lake.bronze_quarantine, app_id, batch_id)
        finally:
            parsed.unpersist()

    # --- the durable Delta copy of the live views -----------------------------------------------------
    def _durable_targets(self) -> list[tuple[str, str, str]]:
        settings = self.settings
        return [
            (
                settings.speed_sales_topic,
                "speed/sales_minute",
                "t.bucket_start = s.bucket_start AND t.dimension = s.dimension AND t.key = s.key",
            ),
            (settings.speed_inventory_topic, "speed/inventory", "t.product_id = s.product_id"),
            (settings.alerts_topic, "speed/alerts", "t.alert_id = s.alert_id"),
        ]

    def _write_durable(self, batch: DataFrame, batch_id: int, app_id: str) -> None:
        records = batch.persist()
        try:
            for topic, table, on in self._durable_targets():
                rows = latest_speed_rows(records, topic, table).persist()
                try:
                    if not rows.isEmpty():
                        merge_once(rows, self.lake.table(table), on, app_id, batch_id)
                finally:
                    rows.unpersist()
        finally:
            records.unpersist()

    # --- wiring ---------------------------------------------------------------------------------------
    def start_live(self) -> list[StreamingQuery]:
        """Start bronze and the two live queries (everything that reads retail.events)."""
        ensure_speed_tables(self.spark, self.lake)
        ensure_topics(pipeline_topics(self.settings), self.settings.kafka_python_options())
        self._plan = load_restart_plan(self.spark, self.lake)
        # spark.sql.streaming.noDataMicroBatches.enabled stays true: without the batch that only moves the
        # watermark, Spark filters late input one batch behind (its late-event watermark is the previous
        # batch's), so an event beyond the watermark could still be counted; under load no such batch runs anyway
        settings = self.settings

        # The skew limit (event_time at most RETAIL_MAX_EVENT_TIME_SKEW_SECONDS past ingest): bronze compares with
        # its batch's current time, the ingest time the master dataset records; the live queries compare with each
        # record's Kafka timestamp, a column. The batch time is an inlined literal, so a live plan using it would
        # generate different code every micro-batch and compile it again each time (~0.2-0.4 s of CPU per batch
        # and query; measured in docs/design.md "Latency"). An event within a few seconds of the limit can thus be
        # admitted by one query and not another; bronze's verdict (master dataset or quarantine) is the record,
        # and the nightly batch recomputes from it.
        def parsed(query: str) -> DataFrame:
            return parse_kafka_records(
                self._kafka_records(settings.events_topic, query),
                max_event_time_skew_seconds=settings.max_event_time_skew_seconds,
                ingest_time=None if query == "bronze" else F.col("timestamp"),
            )

        def live_events(query: str) -> DataFrame:
            events = valid_events(parsed(query))
            if self._plan is not None and self._plan.live_cutoff is not None:
                # a rebuilt speed layer: buckets before the cutoff are the rebuild's; a new checkpoint has no
                # watermark in its first micro-batch, so this floor stands in for it (later the watermark is past it)
                events = events.where(F.col("event_time") >= F.lit(self._plan.live_cutoff))
            return events

        initial_inventory = None
        if self._plan is not None and DeltaTable.isDeltaTable(self.spark, inventory_state_path(self.lake)):
            initial_inventory = self.spark.read.format("delta").load(inventory_state_path(self.lake))
        return [
            self._start_batches(
                "bronze", "bronze", parsed("bronze"), self._write_bronze, "append", settings.speed_bronze_trigger
            ),
            self._start_to_kafka(
                "rollups",
                sales_records(
                    minute_rollups(live_events("rollups"), settings.speed_watermark), settings.speed_sales_topic
                ),
            ),
            self._start_to_kafka(
                "inventory",
                inventory_records(
                    inventory_updates(
                        live_events("inventory"), settings.low_stock_threshold, self.watermark_delay, initial_inventory
                    ),
                    settings.speed_inventory_topic,
                    settings.alerts_topic,
                ),
            ),
        ]

    def start_durable(self) -> StreamingQuery:
        """Start the query that copies the speed topics into the Delta speed tables."""
        topics = ",".join(topic for topic, _, _ in self._durable_targets())
        return self._start_batches(
            "durable",
            "durable",
            self._kafka_records(topics, "durable"),
            self._write_durable,
            "append",
            self.settings.speed_durable_trigger,
        )

    def start(self) -> list[StreamingQuery]:
        """Start every query (continuous mode); see ``drain`` for available-now runs."""
        if self.available_now:
            raise ValueError("available_now runs go through drain(), which orders the queries")
        live = self.start_live()
        return [*live, self.start_durable()]

    def drain(self) -> None:
        """Available-now: process what Kafka holds, then copy the live views to Delta; raises if a query failed."""
        if not self.available_now:
            raise ValueError("drain() needs available_now=True")
        for query in self.start_live():
            _await(query)
        # the Delta copy reads the live queries' output, so it runs once they have written everything
        _await(self.start_durable())


def _await(query: StreamingQuery) -> None:
    query.awaitTermination()
    if query.exception() is not None:
        raise RuntimeError(f"speed query {query.name} failed: {query.exception()}")


def run(settings: Settings, available_now: bool = False) -> int:
    """Entry point of `retail speed`: start the queries and wait; returns a process exit code."""
    spark = build_spark_session(settings, app_name="retail-speed-layer", extra_conf=speed_session_conf())
    lake = Lake(settings.lake_root, settings.checkpoint_root)
    progress_uri, progress_options = delta_rs_location(lake.table("speed/progress"), settings)
    recorder = ProgressRecorder(progress_uri, storage_options=progress_options)
    spark.streams.addListener(recorder)
    layer = SpeedLayer(spark, settings, available_now=available_now)
    print(
        f"speed layer {'draining' if available_now else 'running'}: reading {settings.events_topic} at "
        f"{settings.kafka_bootstrap_servers}; live views on {settings.speed_sales_topic}, "
        f"{settings.speed_inventory_topic}, {settings.alerts_topic}; lake {settings.lake_root}",
        flush=True,
    )
    if available_now:
        try:
            layer.drain()
        except Exception as error:  # noqa: BLE001 - recorded for /api/health, then the exit code says it
            log.error("%s", error)
            recorder.record_error(error)
            return 1
        finally:
            recorder.close()
        return 0
    try:
        queries = layer.start()
    except Exception as error:
        recorder.record_error(error)
        recorder.close()
        raise
    failed = False
    try:
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
