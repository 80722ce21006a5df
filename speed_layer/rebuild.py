"""Kappa rebuild of the speed views from bronze, after a lost checkpoint: ``retail rebuild-speed``.

With the speed layer stopped (the CLI refuses while it runs), :func:`rebuild_speed`:

1. deletes every speed query's checkpoint (bronze, rollups, inventory, durable) and an earlier restart plan;
2. recomputes from bronze, with the speed layer's own functions, the minute rollups (``sales_rollup`` over the
   first copy of every event_id, users as HLL sketches), stock per product and the low-stock alerts (the JVM
   inventory processor over all of bronze in Kafka order, re-sent ids once), turns them into the speed topics'
   wire format (``sales_records`` / ``inventory_records``) and back into table rows (``latest_speed_rows``, as the
   durable copy does), and replaces the contents of speed/sales_minute, speed/inventory and speed/alerts;
3. publishes the same values onto the compacted speed topics (and a tombstone for every key no longer there),
   so the serving layer shows the rebuilt values;
4. writes a restart plan under the checkpoint root (speed_layer.sinks.RestartPlan) for the next ``retail speed``:
   ``bronze`` starts where bronze + quarantine end in each partition (nothing ingested twice or skipped);
   ``inventory`` starts there too, seeded with the processor's state computed from bronze (stock, open alert,
   the ids applied within the watermark); ``rollups`` re-reads from the first offset holding an event at or after
   the cutoff (the newest event time minus the watermark, floored to the minute) and leaves out older events, so
   its state holds every event of each bucket it can still update; ``durable`` starts after the values published
   in step 3.

The rebuilt views count every valid event in bronze once, late ones included (more than a running speed layer,
which leaves events beyond its watermark out); they equal the exact batch answer, users as sketches.

Usage::

    retail stop speed && retail rebuild-speed && retail start speed
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from contracts.metrics import sales_rollup
from contracts.settings import Settings
from contracts.topics import ensure_topics, pipeline_topics
from speed_layer.job import SpeedLayer
from speed_layer.sinks import (
    RestartPlan,
    delete_checkpoints,
    ensure_speed_tables,
    inventory_state_path,
    save_restart_plan,
)
from speed_layer.transforms import (
    first_copies,
    inventory_records,
    inventory_state,
    inventory_updates,
    latest_speed_rows,
    newest_alert_transitions,
    sales_records,
)

__all__ = ["RebuildReport", "rebuild_speed", "EARLIEST"]

# Spark's startingOffsets value for "the partition's earliest offset"
EARLIEST = -2


@dataclass(frozen=True)
class RebuildReport:
    """What one rebuild did: rows per speed table, tombstones sent, and the restart plan."""

    bronze_rows: int
    table_rows: dict[str, int]
    tombstones: int
    plan: RestartPlan
    deleted_checkpoints: list[str]

    def describe(self) -> str:
        tables = ", ".join(f"{name} {rows:,} rows" for name, rows in self.table_rows.items())
        cutoff = self.plan.live_cutoff.isoformat() if self.plan.live_cutoff else "none (bronze is empty)"
        starts = "; ".join(f"{query} {offsets}" for query, offsets in sorted(self.plan.offsets.items()))
        return (
            f"rebuilt from {self.bronze_rows:,} bronze rows: {tables}; {self.tombstones} stale keys deleted from the "
            f"speed topics; checkpoints reset ({len(self.deleted_checkpoints)} deleted); live cutoff {cutoff}; "
            f"next start: {starts}"
        )


def _minute_floor(moment: datetime) -> datetime:
    return moment.replace(second=0, microsecond=0)


def _partitions(settings: Settings, topics: list[str]) -> dict[str, dict[int, int]]:
    """Every partition of ``topics`` with its end offset (kafka-python; topics must exist)."""
    from kafka import KafkaConsumer, TopicPartition

    consumer = KafkaConsumer(**settings.kafka_python_options())
    try:
        result: dict[str, dict[int, int]] = {}
        for topic in topics:
            partitions = sorted(consumer.partitions_for_topic(topic) or [])
            if not partitions:
                raise RuntimeError(f"topic {topic} has no partitions the client can see")
            ends = consumer.end_offsets([TopicPartition(topic, p) for p in partitions])
            result[topic] = {tp.partition: int(offset) for tp, offset in ends.items()}
        return result
    finally:
        consumer.close()


def _offsets_json(offsets: dict[str, dict[int, int]]) -> str:
    return json.dumps({topic: {str(p): o for p, o in sorted(parts.items())} for topic, parts in offsets.items()})


def _coordinate_bounds(bronze: DataFrame, quarantine: DataFrame, topic: str, cutoff: datetime | None) -> tuple:
    """Per partition of ``topic``: the offset after the last record bronze or quarantine holds, and the first
    offset of a valid event at or after ``cutoff``."""
    consumed = (
        bronze.select("kafka_topic", "kafka_partition", "kafka_offset")
        .unionByName(quarantine.select("kafka_topic", "kafka_partition", "kafka_offset"))
        .where(F.col("kafka_topic") == F.lit(topic))
        .groupBy("kafka_partition")
        .agg(F.max("kafka_offset").alias("last"))
    )
    ends = {row["kafka_partition"]: int(row["last"]) + 1 for row in consumed.collect()}
    replay_from: dict[int, int] = {}
    if cutoff is not None:
        recent = (
            bronze.where((F.col("kafka_topic") == F.lit(topic)) & (F.col("event_time") >= F.lit(cutoff)))
            .groupBy("kafka_partition")
            .agg(F.min("kafka_offset").alias("first"))
        )
        replay_from = {row["kafka_partition"]: int(row["first"]) for row in recent.collect()}
    return ends, replay_from


def _stale_keys(spark: SparkSession, layer: SpeedLayer, topics: list[str], records: DataFrame) -> DataFrame:
    """Tombstones (topic, key, null value) for keys whose newest value on ``topics`` the rebuild does not have."""
    existing = (
        spark.read.format("kafka")
        .options(**layer._kafka_options())
        .option("subscribe", ",".join(topics))
        .option("startingOffsets", "earliest")
        .option("endingOffsets", "latest")
        .load()
        .groupBy("topic", F.col("key").cast("string").alias("key"))
        .agg(F.max_by("value", "offset").alias("value"))
        .where(F.col("value").isNotNull())
        .select("topic", "key")
    )
    return existing.join(records.select("topic", "key"), ["topic", "key"], "left_anti").withColumn(
        "value", F.lit(None).cast("string")
    )


def rebuild_speed(spark: SparkSession, settings: Settings, now: datetime | None = None) -> RebuildReport:
    """Recompute the speed views from bronze, publish them, reset the checkpoints and plan the next start.

    The caller makes sure no speed layer runs (the CLI refuses otherwise): its writes would race these. Running
    it again gives the same tables and plan (it only reads bronze and replaces everything it writes).
    """
    layer = SpeedLayer(spark, settings)
    lake = layer.lake
    ensure_speed_tables(spark, lake)
    ensure_topics(pipeline_topics(settings), settings.kafka_python_options())
    deleted = delete_checkpoints(spark, lake)

    bronze = spark.read.format("delta").load(lake.bronze_events).persist()
    quarantine = spark.read.format("delta").load(lake.bronze_quarantine)
    try:
        bronze_rows = bronze.count()
        delay: timedelta = layer.watermark_delay
        # epoch microseconds, not a datetime: PySpark turns timestamps into the Python process's local time
        newest_us = bronze.agg(F.unix_micros(F.max("event_time")).alias("us")).first()["us"]  # type: ignore[index]
        newest = None if newest_us is None else datetime(1970, 1, 1, tzinfo=UTC) + timedelta(microseconds=newest_us)
        cutoff = None if newest is None else _minute_floor(newest - delay)

        # the views, through the same functions (and wire format) as the running speed layer
        rollups = sales_rollup(first_copies(bronze), grain="minute", users="sketch")
        updates = newest_alert_transitions(inventory_updates(bronze, settings.low_stock_threshold, delay)).persist()
        records = (
            sales_records(rollups, settings.speed_sales_topic)
            .unionByName(inventory_records(updates, settings.speed_inventory_topic, settings.alerts_topic))
            .persist()
        )
        try:
            table_rows: dict[str, int] = {}
            for topic, table, _on in layer._durable_targets():
                # one record per key: the conversion the durable copy applies to the newest value on the topic
                rows = latest_speed_rows(records.withColumn("offset", F.lit(0)), topic, table)
                rows.write.format("delta").mode("overwrite").save(lake.table(table))
                table_rows[table] = spark.read.format("delta").load(lake.table(table)).count()

            speed_topics = [topic for topic, _, _ in layer._durable_targets()]
            stale = _stale_keys(spark, layer, speed_topics, records).persist()
            tombstones = stale.count()
            (
                records.unionByName(stale)
                .write.format("kafka")
                .options(**layer._kafka_options())
                .option("kafka.acks", "all")
                .save()
            )
            stale.unpersist()

            state = inventory_state(bronze, updates, delay)
            state.write.format("delta").mode("overwrite").save(inventory_state_path(lake))
        finally:
            records.unpersist()
            updates.unpersist()

        partitions = _partitions(settings, [settings.events_topic, *speed_topics])
        events_partitions = partitions.pop(settings.events_topic)
        ends, replay_from = _coordinate_bounds(bronze, quarantine, settings.events_topic, cutoff)
        bronze_start = {p: ends.get(p, EARLIEST) for p in events_partitions}
        rollups_start = {p: replay_from.get(p, bronze_start[p]) for p in events_partitions}
        plan = RestartPlan(
            offsets={
                "bronze": _offsets_json({settings.events_topic: bronze_start}),
                "inventory": _offsets_json({settings.events_topic: bronze_start}),
                "rollups": _offsets_json({settings.events_topic: rollups_start}),
                "durable": _offsets_json(partitions),
            },
            live_cutoff=cutoff,
            created_at=now or datetime.now(UTC),
        )
        save_restart_plan(spark, lake, plan)
    finally:
        bronze.unpersist()
    return RebuildReport(bronze_rows, table_rows, tombstones, plan, deleted)
