"""Parse Kafka records into typed events and classify each against the event contract (pure, static or streaming).

Spark 4 runs in ANSI mode, so nothing here raises on bad input: JSON is parsed with ``from_json`` into strings
(RAW_EVENT_SCHEMA), then typed with ``try_cast`` / ``try_to_timestamp``, and the first broken rule becomes the
record's ``reject_reason``. A record with a reason goes to quarantine; one without is a valid event for bronze.

Required input columns (Spark's Kafka source): key, value, topic, partition, offset, timestamp.
Output grain: one row per Kafka record, with the BRONZE_COLUMNS plus ``reject_reason`` (null when valid),
``raw_key`` and ``raw_value`` (the original bytes).
"""

from __future__ import annotations

from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F
from pyspark.sql.types import StringType, StructField, StructType

from contracts.events import EVENT_FIELDS, MONEY_TYPE, SCHEMA_VERSION, EventType
from contracts.tables import BRONZE_COLUMNS

__all__ = ["parse_kafka_records", "REJECT_REASONS"]

# Every field is read as a string first: from_json keeps a JSON number's text for a string field, so a price
# like 19.99 arrives exactly as "19.99", and typing happens afterwards with functions that return null
# instead of raising (ANSI mode), which lets a bad value be classified rather than crash the query.
RAW_EVENT_SCHEMA = StructType([StructField(name, StringType(), nullable=True) for name in EVENT_FIELDS])

_WITH_QUANTITY = [EventType.ADD_TO_CART.value, EventType.PURCHASE.value, EventType.RESTOCK.value]
_WITH_USER = [EventType.PAGE_VIEW.value, EventType.ADD_TO_CART.value, EventType.PURCHASE.value]

# reason code -> human description (docs and the dashboard show these)
REJECT_REASONS: dict[str, str] = {
    "not_json": "value is not a JSON object",
    "unsupported_schema_version": f"schema_version is not {SCHEMA_VERSION}",
    "missing_event_id": "event_id is missing or empty",
    "unknown_event_type": "event_type is not one of " + ", ".join(e.value for e in EventType),
    "bad_event_time": "event_time is missing or not an ISO-8601 timestamp with zone",
    "missing_product_id": "product_id is missing or empty",
    "missing_user_id": "user_id is required for page_view, add_to_cart and purchase",
    "bad_quantity": "quantity must be an integer > 0 for add_to_cart, purchase and restock",
    "bad_unit_price": "unit_price must be a decimal with at most 2 places for a purchase",
    "negative_unit_price": "unit_price must be >= 0",
    "missing_order_id": "order_id is required for a purchase",
}


def _blank(column: Column) -> Column:
    return column.isNull() | (F.trim(column) == F.lit(""))


def _parse_time(text: Column) -> Column:
    # ISO-8601 with a zone: 2026-01-05T10:00:00.123Z or +01:00; a value without a zone is rejected, because
    # it would be read in the session zone and silently shift buckets
    has_zone = text.rlike(r"(Z|[+-]\d\d:?\d\d)$")
    return F.when(has_zone, F.try_to_timestamp(text))


def parse_kafka_records(records: DataFrame) -> DataFrame:
    """Type and classify Kafka records; never raises on content. See the module docstring for columns."""
    raw_value = F.col("value").cast("string")
    parsed = records.select(
        F.col("key").alias("raw_key"),
        F.col("value").alias("raw_value"),
        F.col("topic").alias("kafka_topic"),
        F.col("partition").alias("kafka_partition"),
        F.col("offset").alias("kafka_offset"),
        F.col("timestamp").alias("kafka_timestamp"),
        F.from_json(raw_value, RAW_EVENT_SCHEMA, {"mode": "PERMISSIVE"}).alias("j"),
        # from_json yields an all-null struct for a truncated document; the object check tells them apart
        F.try_parse_json(raw_value).alias("variant"),
    )
    j = F.col("j")
    price_text = F.trim(j["unit_price"])
    wide_price = price_text.try_cast("decimal(38,10)")
    typed = parsed.select(
        "raw_key",
        "raw_value",
        "kafka_topic",
        "kafka_partition",
        "kafka_offset",
        "kafka_timestamp",
        (F.col("variant").isNotNull() & (F.schema_of_variant(F.col("variant")).startswith("OBJECT"))).alias(
            "_is_object"
        ),
        j["schema_version"].try_cast("int").alias("schema_version"),
        F.trim(j["event_id"]).alias("event_id"),
        F.lower(F.trim(j["event_type"])).alias("event_type"),
        _parse_time(F.trim(j["event_time"])).alias("event_time"),
        F.trim(j["event_time"]).alias("_event_time_text"),
        F.nullif(F.trim(j["user_id"]), F.lit("")).alias("user_id"),
        F.trim(j["product_id"]).alias("product_id"),
        F.nullif(F.trim(j["category"]), F.lit("")).alias("category"),
        j["quantity"].try_cast("int").alias("quantity"),
        j["quantity"].alias("_quantity_text"),
        price_text.alias("_price_text"),
        wide_price.alias("_wide_price"),
        wide_price.try_cast(MONEY_TYPE).alias("unit_price"),
        F.nullif(F.upper(F.trim(j["currency"])), F.lit("")).alias("currency"),
        F.nullif(F.trim(j["order_id"]), F.lit("")).alias("order_id"),
    )
    event_type = F.col("event_type")
    is_purchase = event_type == F.lit(EventType.PURCHASE.value)
    reason = (
        F.when(~F.col("_is_object"), F.lit("not_json"))
        .when(
            F.col("schema_version").isNull() | (F.col("schema_version") != SCHEMA_VERSION),
            F.lit("unsupported_schema_version"),
        )
        .when(_blank(F.col("event_id")), F.lit("missing_event_id"))
        .when(event_type.isNull() | ~event_type.isin([e.value for e in EventType]), F.lit("unknown_event_type"))
        .when(F.col("event_time").isNull(), F.lit("bad_event_time"))
        .when(_blank(F.col("product_id")), F.lit("missing_product_id"))
        .when(event_type.isin(_WITH_USER) & F.col("user_id").isNull(), F.lit("missing_user_id"))
        .when(
            event_type.isin(_WITH_QUANTITY) & (F.col("quantity").isNull() | (F.col("quantity") <= 0)),
            F.lit("bad_quantity"),
        )
        .when(
            is_purchase & (F.col("_wide_price").isNull() | (F.col("_wide_price") != F.col("unit_price"))),
            F.lit("bad_unit_price"),
        )
        .when(is_purchase & (F.col("unit_price") < 0), F.lit("negative_unit_price"))
        .when(is_purchase & F.col("order_id").isNull(), F.lit("missing_order_id"))
    )
    derived = {
        # quantity and price only mean something for the event types that carry them
        "quantity": F.when(event_type.isin(_WITH_QUANTITY), F.col("quantity")),
        "unit_price": F.when(is_purchase, F.col("unit_price")),
        "currency": F.when(is_purchase, F.col("currency")),
        "order_id": F.when(is_purchase, F.col("order_id")),
        "ingest_time": F.current_timestamp(),
        "event_date": F.to_date(F.col("event_time")),
    }
    return typed.select(
        "raw_key",
        "raw_value",
        *[derived[name].alias(name) if name in derived else F.col(name) for name in BRONZE_COLUMNS],
        reason.alias("reject_reason"),
    )
