"""Transformations of the speed layer: DataFrame in, DataFrame out, static or streaming. No I/O here.

- :func:`valid_events` / :func:`quarantined_records` split parsed Kafka records (contracts.parser).
- :func:`minute_rollups` deduplicates by event_id within the watermark and applies the shared metric.
- :func:`inventory_updates` keeps stock per product and emits alert transitions, in the JVM
  (retail.speed.InventoryProcessor, speed_layer/jvm/): no Python worker on the latency path.
- :func:`sales_records` / :func:`inventory_records` turn the live views into Kafka records in the wire format of
  contracts.topics; :func:`latest_speed_rows` turns those records back into table rows for the Delta copy.
- :func:`first_copies`, :func:`newest_alert_transitions` and :func:`inventory_state` serve `retail rebuild-speed`
  (speed_layer/rebuild.py), which recomputes the speed views from bronze with the same functions.
"""

from __future__ import annotations

import re
from datetime import timedelta

from pyspark.sql import Column, DataFrame, Window
from pyspark.sql import functions as F

from contracts.events import MONEY_TYPE, EventType
from contracts.metrics import sales_rollup
from contracts.tables import BRONZE_COLUMNS, QUARANTINE_COLUMNS, TABLE_SCHEMAS
from contracts.topics import ALERT_FIELDS, INVENTORY_FIELDS, JSON_TIMESTAMP_FORMAT, SPEED_SALES_FIELDS

__all__ = [
    "valid_events",
    "quarantined_records",
    "minute_rollups",
    "inventory_updates",
    "INVENTORY_OUTPUT_SCHEMA",
    "sales_records",
    "inventory_records",
    "latest_speed_rows",
    "first_copies",
    "newest_alert_transitions",
    "inventory_state",
    "INVENTORY_STATE_SCHEMA",
]

_JSON_OPTIONS = {"timestampFormat": JSON_TIMESTAMP_FORMAT}


def valid_events(parsed: DataFrame) -> DataFrame:
    """Bronze rows: every record without a reject reason, duplicates and late ones included (BRONZE_COLUMNS)."""
    return parsed.where(F.col("reject_reason").isNull()).select(*BRONZE_COLUMNS)


def quarantined_records(parsed: DataFrame) -> DataFrame:
    """Quarantine rows: raw bytes, Kafka coordinates and the reason (QUARANTINE_COLUMNS)."""
    return parsed.where(F.col("reject_reason").isNotNull()).select(*QUARANTINE_COLUMNS)


def minute_rollups(events: DataFrame, watermark: str) -> DataFrame:
    """Provisional minute rollups with sketch distinct users: one row per minute × dimension × key.

    Requires bronze columns (event_id, event_type, event_time, user_id, product_id, category, quantity,
    unit_price). Events later than ``watermark`` behind the newest event time are left out (Spark counts them
    as numRowsDroppedByWatermark); a re-sent event_id within the watermark is counted once.
    """
    deduplicated = events.withWatermark("event_time", watermark).dropDuplicatesWithinWatermark(["event_id"])
    return sales_rollup(deduplicated, grain="minute", users="sketch")


# one row per product whose stock changed in the micro-batch, plus one per alert opened or resolved (the same
# DDL as InventoryProcessor.OUTPUT_DDL in speed_layer/jvm)
INVENTORY_OUTPUT_SCHEMA = (
    "row_kind string, product_id string, stock bigint, threshold int, below_threshold boolean, "
    "last_event_time timestamp, alert_id string, alert_at timestamp, stock_at_open bigint, opened_at timestamp, "
    "resolved_at timestamp"
)


def inventory_updates(
    events: DataFrame, threshold: int, dedup_horizon: timedelta, initial_state: DataFrame | None = None
) -> DataFrame:
    """Stock per product from restocks (+) and purchases (−), with low-stock alert transitions.

    Requires event_id, event_type, event_time, product_id, quantity, kafka_partition, kafka_offset and
    kafka_timestamp (an alert opens or resolves at the Kafka timestamp of the event that crossed the threshold:
    arrival order, so a late restock never resolves an alert "before" it opened, and replays give the same
    time). The topic is keyed by product_id, so one product's events share a partition and offsets give their
    order. An event_id already applied is ignored; events later than the watermark (``dedup_horizon``, the same
    delay as the rollups') are left out, like in every speed view, and counted by Spark as late. At most one
    alert is open per product: it opens when stock falls below ``threshold`` and resolves when stock is back at
    or above it.

    Output (INVENTORY_OUTPUT_SCHEMA, update mode): one ``inventory`` row per product touched in the batch and one
    ``alert_open`` / ``alert_resolve`` row per transition, carrying the alert's state so far. The state function
    is JVM code (speed_layer/jvm, built by `make setup`), reached through py4j.

    ``initial_state`` (INVENTORY_STATE_SCHEMA, one row per product; :func:`inventory_state`) seeds the state in
    the first micro-batch of a new checkpoint: `retail rebuild-speed` computes it from bronze.
    """
    if threshold < 0:
        raise ValueError(f"threshold must be >= 0, got {threshold}")
    stock_events = (
        events.where(F.col("event_type").isin(EventType.RESTOCK.value, EventType.PURCHASE.value))
        .select(
            "event_id",
            "event_type",
            "event_time",
            "product_id",
            "quantity",
            "kafka_partition",
            "kafka_offset",
            "kafka_timestamp",
        )
        # the same lateness rule as the rollups: Spark drops events older than the watermark before the state
        # function sees them (event-time timeout), so an id forgotten by the state cannot be re-applied
        .withWatermark("event_time", f"{int(dedup_horizon.total_seconds())} seconds")
    )
    session = events.sparkSession
    processor = session._jvm.retail.speed.InventoryProcessor  # type: ignore[union-attr]
    horizon = int(dedup_horizon.total_seconds())
    if initial_state is None:
        return DataFrame(processor.updates(stock_events._jdf, threshold, horizon), session)
    seed = initial_state.select(*[name for name, _ in _ddl_columns(INVENTORY_STATE_SCHEMA)])
    return DataFrame(processor.updates(stock_events._jdf, threshold, horizon, seed._jdf), session)


# the state of one product for a restarted inventory query (the same DDL as InventoryProcessor.INITIAL_STATE_DDL):
# stock, the open alert if any, and the event ids applied within the dedup horizon (id -> event time, epoch µs)
INVENTORY_STATE_SCHEMA = (
    "product_id string, stock bigint, open_alert_id string, stock_at_open bigint, opened_at timestamp, "
    "seen map<string, bigint>"
)

# the same rule as the batch layer's deduplication: among the copies of one event_id the one bronze received first
_FIRST_COPY = ("ingest_time", "kafka_timestamp", "kafka_topic", "kafka_partition", "kafka_offset", "event_time")


def first_copies(events: DataFrame) -> DataFrame:
    """One row per event_id: the copy bronze received first (ingest time, then Kafka timestamp and coordinates).

    Static input only (a window over all history). Requires event_id and the ordering columns; keeps every column.
    """
    first = Window.partitionBy("event_id").orderBy(*[F.col(name).asc_nulls_last() for name in _FIRST_COPY])
    return events.withColumn("_copy", F.row_number().over(first)).where(F.col("_copy") == 1).drop("_copy")


def newest_alert_transitions(updates: DataFrame) -> DataFrame:
    """The inventory rows of ``updates`` plus, per alert_id, only its newest transition (a resolve over its open).

    Static input (inventory_updates over a static frame). Each transition row carries the alert's whole state, so
    the newest one is the alert, as on the compacted topic.
    """
    is_alert = F.col("row_kind") != F.lit("inventory")
    newest = Window.partitionBy("alert_id").orderBy((F.col("row_kind") == F.lit("alert_resolve")).desc())
    alerts = (
        updates.where(is_alert)
        .withColumn("_rank", F.row_number().over(newest))
        .where(F.col("_rank") == 1)
        .drop("_rank")
    )
    return updates.where(~is_alert).unionByName(alerts)


def inventory_state(stock_events: DataFrame, updates: DataFrame, dedup_horizon: timedelta) -> DataFrame:
    """The processor's state per product after ``updates`` (INVENTORY_STATE_SCHEMA), for a restarted query.

    ``stock_events`` are the valid bronze rows the updates came from (event_id, event_type, event_time,
    product_id); ``updates`` is inventory_updates over them (static). ``seen`` holds the ids of restocks and
    purchases within ``dedup_horizon`` of the product's newest event time, as the processor keeps them.
    """
    horizon = int(dedup_horizon.total_seconds())
    stock = updates.where(F.col("row_kind") == F.lit("inventory")).select("product_id", "stock")
    open_alerts = (
        newest_alert_transitions(updates)
        .where(F.col("row_kind") == F.lit("alert_open"))
        .select(
            "product_id",
            F.col("alert_id").alias("open_alert_id"),
            "stock_at_open",
            "opened_at",
        )
    )
    moves = first_copies(
        stock_events.where(F.col("event_type").isin(EventType.RESTOCK.value, EventType.PURCHASE.value))
    ).select("product_id", "event_id", "event_time")
    newest = Window.partitionBy("product_id")
    seen = (
        moves.withColumn("_newest", F.max("event_time").over(newest))
        .where(F.col("event_time") >= F.col("_newest") - F.make_dt_interval(secs=F.lit(horizon)))
        .groupBy("product_id")
        .agg(
            F.map_from_entries(F.collect_list(F.struct("event_id", F.unix_micros("event_time")))).alias("seen"),
        )
    )
    return (
        stock.join(open_alerts, "product_id", "left")
        .join(seen, "product_id", "left")
        .select(*[F.col(name).cast(kind).alias(name) for name, kind in _ddl_columns(INVENTORY_STATE_SCHEMA)])
    )


def _ddl_columns(ddl: str) -> list[tuple[str, str]]:
    # split a DDL at top-level commas (decimal(18,2) and map<string, bigint> hold one)
    return [
        (part.strip().split(" ", 1)[0], part.strip().split(" ", 1)[1]) for part in re.split(r",(?![^()<>]*[)>])", ddl)
    ]


def _json(columns: list[Column]) -> Column:
    return F.to_json(F.struct(*columns), _JSON_OPTIONS)


def sales_records(rollups: DataFrame, topic: str) -> DataFrame:
    """Kafka records (topic, key, value) of minute rollups in the wire format of contracts.topics."""
    value = {
        "revenue": F.col("revenue").cast("string"),
        # Spark's base64 wraps its output in MIME lines (spark.sql.chunkBase64String.enabled): one line on the wire
        "users_sketch": F.regexp_replace(F.base64("users_sketch"), r"[\r\n]", ""),
        "updated_at": F.current_timestamp(),
    }
    return rollups.select(
        F.lit(topic).alias("topic"),
        F.concat_ws("|", "dimension", "key", F.unix_micros("bucket_start").cast("string")).alias("key"),
        _json([value.get(name, F.col(name)).alias(name) for name in SPEED_SALES_FIELDS]).alias("value"),
    )


def inventory_records(updates: DataFrame, inventory_topic: str, alerts_topic: str) -> DataFrame:
    """Kafka records of inventory_updates rows: stock rows onto the inventory topic, alerts onto the alerts topic."""
    is_stock = F.col("row_kind") == F.lit("inventory")
    stock_value = {"updated_at": F.current_timestamp()}
    alert_value = {
        "kind": F.lit("low_stock"),
        "state": F.when(F.col("row_kind") == "alert_open", "opened").otherwise("resolved"),
        "at": F.col("alert_at"),
    }
    return updates.select(
        F.when(is_stock, F.lit(inventory_topic)).otherwise(F.lit(alerts_topic)).alias("topic"),
        F.when(is_stock, F.col("product_id")).otherwise(F.col("alert_id")).alias("key"),
        F.when(is_stock, _json([stock_value.get(n, F.col(n)).alias(n) for n in INVENTORY_FIELDS]))
        .otherwise(_json([alert_value.get(n, F.col(n)).alias(n) for n in ALERT_FIELDS]))
        .alias("value"),
    )


_WIRE_TYPES = {
    "speed/sales_minute": {"revenue": "string", "users_sketch": "string"},
}


def latest_speed_rows(records: DataFrame, topic: str, table: str) -> DataFrame:
    """The newest value per key of one speed topic, as rows of the Delta speed ``table`` (for MERGE).

    Requires Kafka source columns (topic, key, value, partition, offset). A key always lands on one partition,
    so its highest offset is its newest value; replays of the same value are harmless.
    """
    # split the table's DDL at top-level commas (decimal(18,2) holds one)
    columns = [part.strip().split(" ", 1) for part in re.split(r",(?![^()]*\))", TABLE_SCHEMAS[table])]
    wire = _WIRE_TYPES.get(table, {})
    schema = ", ".join(f"{name} {wire.get(name, kind)}" for name, kind in columns)
    newest = (
        records.where(F.col("topic") == F.lit(topic))
        .groupBy("key")
        .agg(F.max_by(F.col("value"), F.col("offset")).alias("value"))
        .select(F.from_json(F.col("value").cast("string"), schema, _JSON_OPTIONS).alias("row"))
        .select("row.*")
    )
    if table == "speed/sales_minute":
        newest = newest.withColumn("revenue", F.col("revenue").try_cast(MONEY_TYPE)).withColumn(
            "users_sketch", F.unbase64("users_sketch")
        )
    return newest.select(*[name for name, _ in columns])
