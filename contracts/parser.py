"""Parse Kafka records into typed events and classify each against the event contract (pure, static or streaming).

Spark 4 runs in ANSI mode, so nothing here raises on bad input: the value is parsed once with ``try_parse_json``
into a VARIANT (null for anything that is not JSON), every field is read from it with ``try_variant_get`` and its
JSON type with ``schema_of_variant``, typed with ``try_cast`` / ``try_to_timestamp``, and the first broken rule
becomes the record's ``reject_reason`` (REJECT_REASONS, in the order the rules are checked). A record with a
reason goes to quarantine; one without is a valid event for bronze, inside every bound of contracts.events, so
no later expression (line revenue, bucket sums, window arithmetic) can overflow on it. Pure Spark SQL functions,
no Python UDF: it runs inside a streaming query.

Why the VARIANT and not ``from_json`` into strings: ``from_json`` renders a JSON number through a double
(``19.990`` arrives as ``19.99``, ``0.000000000001`` as ``1.0E-12``, ``1e400`` as ``"Infinity"``), while the
VARIANT keeps a plain-notation JSON number as an exact decimal and tells a string ``"3"`` from a number ``3``.

Required input columns (Spark's Kafka source): key, value, topic, partition, offset, timestamp.
Output grain: one row per Kafka record, with the BRONZE_COLUMNS plus ``reject_reason`` (null when valid),
``raw_key`` and ``raw_value`` (the original bytes).

Example::

    parsed = parse_kafka_records(kafka_df, max_event_time_skew_seconds=settings.max_event_time_skew_seconds)
    bronze = parsed.where("reject_reason IS NULL")
"""

from __future__ import annotations

import re

from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F

from contracts.events import (
    CURRENCY_PATTERN,
    DEFAULT_CURRENCY,
    DEFAULT_MAX_EVENT_TIME_SKEW_SECONDS,
    MAX_EVENT_TIME_SKEW_SECONDS,
    MAX_QUANTITY,
    MAX_RECORD_BYTES,
    MAX_TEXT_LENGTH,
    MAX_UNIT_PRICE,
    MIN_EVENT_TIME,
    MONEY_TYPE,
    SCHEMA_VERSION,
    TEXT_FIELDS,
    EventType,
)
from contracts.tables import BRONZE_COLUMNS

__all__ = ["parse_kafka_records", "REJECT_REASONS"]

_WITH_QUANTITY = [EventType.ADD_TO_CART.value, EventType.PURCHASE.value, EventType.RESTOCK.value]
_WITH_USER = [EventType.PAGE_VIEW.value, EventType.ADD_TO_CART.value, EventType.PURCHASE.value]
_PURCHASE = EventType.PURCHASE.value
_INTEGER_TYPES = ["TINYINT", "SMALLINT", "INT", "BIGINT"]
# a JSON number in plain notation: the VARIANT keeps it as an exact decimal with trailing zeros stripped
# (1.000 -> DECIMAL(1,0)); exponent notation (1e2) and numbers beyond 38 digits become DOUBLE
_DECIMAL_TYPE = r"^DECIMAL\(\d+,\d+\)$"
_WHOLE_DECIMAL_TYPE = r"^DECIMAL\(\d+,0\)$"
_PLAIN_DECIMAL = r"^[+-]?\d+(\.\d+)?$"
_NON_FINITE = r"(?i)^[+-]?(nan|inf|infinity)$"
# a non-zero digit in the third decimal place or later: more than 2 places once trailing zeros are ignored
_SUB_CENT = r"\.\d{2}\d*[1-9]"
_NEGATIVE = r"^-.*[1-9]"  # "-0.00" is zero, not negative
_MAX_PRICE = str(MAX_UNIT_PRICE)
# the JSON fields read from the VARIANT (ingest_time and the Kafka coordinates are not event fields)
_READ: tuple[str, ...] = ("schema_version", "event_type", "event_time", *TEXT_FIELDS, "quantity", "unit_price")
_PASS_THROUGH = (
    "raw_key",
    "raw_value",
    "kafka_topic",
    "kafka_partition",
    "kafka_offset",
    "kafka_timestamp",
    "ingest_time",
)


def _text_reasons() -> dict[str, str]:
    reasons: dict[str, str] = {}
    for name in TEXT_FIELDS:
        reasons[f"bad_{name}"] = f"{name} is not a JSON string"
        reasons[f"{name}_too_long"] = f"{name} is longer than {MAX_TEXT_LENGTH} characters"
    return reasons


# reason code -> human description (docs/design.md and the dashboard show these); one code per broken rule
REJECT_REASONS: dict[str, str] = {
    "record_too_large": f"the record value is larger than {MAX_RECORD_BYTES} bytes (not parsed)",
    "not_json": "value is not a JSON object (also: duplicate keys, NaN or Infinity tokens, a null value)",
    "unsupported_schema_version": f"schema_version is not {SCHEMA_VERSION}",
    "missing_event_id": "event_id is missing or empty",
    "unknown_event_type": "event_type is not one of " + ", ".join(e.value for e in EventType),
    "bad_event_time": "event_time is missing or not an ISO-8601 timestamp with zone",
    "event_time_too_early": f"event_time is before {MIN_EVENT_TIME:%Y-%m-%dT%H:%M:%SZ}",
    "event_time_in_future": "event_time is later than the ingest time plus the allowed clock skew "
    "(RETAIL_MAX_EVENT_TIME_SKEW_SECONDS)",
    "missing_product_id": "product_id is missing or empty",
    "missing_user_id": "user_id is required for page_view, add_to_cart and purchase",
    "bad_quantity": "quantity of an add_to_cart, purchase or restock is missing, not a JSON integer in plain "
    "notation (a string, a fraction, 1e2, a boolean, an object), or not > 0",
    "quantity_out_of_range": f"quantity is larger than {MAX_QUANTITY}",
    "bad_unit_price": "unit_price of a purchase is missing, or not a decimal in plain notation "
    "(a decimal string or a JSON number without exponent)",
    "non_finite_unit_price": "unit_price is NaN or Infinity",
    "negative_unit_price": "unit_price must be >= 0",
    "unit_price_out_of_range": f"unit_price is larger than {_MAX_PRICE}",
    "sub_cent_unit_price": "unit_price has more than 2 decimal places (money is DECIMAL(18,2); never rounded)",
    "missing_order_id": "order_id is required for a purchase",
    **_text_reasons(),
    "foreign_currency": "a purchase's currency is not the deployment's one currency (RETAIL_CURRENCY); a purchase "
    "without one takes it. Replayable (`retail replay-quarantine --reason foreign_currency`) after a config change",
}


def _blank(column: Column) -> Column:
    return column.isNull() | (column == F.lit(""))


def _is_false(condition: Column) -> Column:
    """True unless ``condition`` is true: a rule whose input is null counts as broken, never as passed."""
    return ~F.coalesce(condition, F.lit(False))


def _parse_time(text: Column) -> Column:
    # ISO-8601 with a zone: 2026-01-05T10:00:00.123Z or +01:00; a value without a zone is rejected, because
    # it would be read in the session zone and silently shift buckets
    has_zone = text.rlike(r"(Z|[+-]\d\d:?\d\d)$")
    return F.when(has_zone, F.try_to_timestamp(text))


def parse_kafka_records(
    records: DataFrame,
    *,
    max_event_time_skew_seconds: int = DEFAULT_MAX_EVENT_TIME_SKEW_SECONDS,
    ingest_time: Column | None = None,
    currency: str = DEFAULT_CURRENCY,
) -> DataFrame:
    """Type and classify Kafka records; never raises on content. See the module docstring for columns.

    Args:
        records: Kafka source rows (key, value, topic, partition, offset, timestamp), static or streaming.
        max_event_time_skew_seconds: how far past the ingest time (``current_timestamp()``, the same value the
            ``ingest_time`` column gets) an event_time may lie; later ones are ``event_time_in_future``.
            The speed job passes ``Settings.max_event_time_skew_seconds``.
        ingest_time: when the records arrived, if not now (``current_timestamp()``): `retail replay-quarantine`
            re-parses quarantined records at their original ingest time, so a replay's verdict never depends on
            when it runs.
        currency: the deployment's one currency (``Settings.currency``): a purchase in another one is quarantined
            as ``foreign_currency``, one without a currency gets this one.

    Raises:
        ValueError: the skew is not an integer in [0, MAX_EVENT_TIME_SKEW_SECONDS] or the currency is no ISO 4217
            code (arguments, never content).
    """
    if not isinstance(currency, str) or not re.fullmatch(CURRENCY_PATTERN, currency):
        raise ValueError(f"currency must be three capital letters (ISO 4217), got {currency!r}")
    skew = max_event_time_skew_seconds
    if isinstance(skew, bool) or not isinstance(skew, int) or not 0 <= skew <= MAX_EVENT_TIME_SKEW_SECONDS:
        raise ValueError(
            f"max_event_time_skew_seconds must be an integer in [0, {MAX_EVENT_TIME_SKEW_SECONDS}], got {skew!r}"
        )
    fits = F.coalesce(F.octet_length(F.col("value")) <= F.lit(MAX_RECORD_BYTES), F.lit(True))
    stage = records.select(
        F.col("key").alias("raw_key"),
        F.col("value").alias("raw_value"),
        F.col("topic").alias("kafka_topic"),
        F.col("partition").alias("kafka_partition"),
        F.col("offset").alias("kafka_offset"),
        F.col("timestamp").alias("kafka_timestamp"),
        (F.current_timestamp() if ingest_time is None else ingest_time).alias("ingest_time"),
        fits.alias("_fits"),
        # an oversized value is never parsed: its size alone quarantines it
        F.when(fits, F.try_parse_json(F.col("value").cast("string"))).alias("_v"),
    )
    v = F.col("_v")
    # each field's JSON type ("STRING", "BIGINT", "DECIMAL(4,2)", "DOUBLE", "BOOLEAN", "OBJECT<...>", "VOID" for
    # a JSON null; null when absent) and its text, read once per record
    fields = stage.select(
        *_PASS_THROUGH,
        "_fits",
        F.coalesce(F.schema_of_variant(v).startswith("OBJECT"), F.lit(False)).alias("_is_object"),
        *[F.schema_of_variant(F.try_variant_get(v, f"$.{name}", "variant")).alias(f"_t_{name}") for name in _READ],
        *[F.try_variant_get(v, f"$.{name}", "string").alias(f"_s_{name}") for name in _READ],
    )

    def string(name: str) -> Column:  # the trimmed value of a JSON string; null for any other JSON type
        return F.when(F.col(f"_t_{name}") == F.lit("STRING"), F.trim(F.col(f"_s_{name}")))

    def wrong_type(name: str) -> Column:
        kind = F.col(f"_t_{name}")
        return F.coalesce(kind.isNotNull() & ~kind.isin("VOID", "STRING"), F.lit(False))

    quantity_type, price_type = F.col("_t_quantity"), F.col("_t_unit_price")
    price_exact = price_type.isin(_INTEGER_TYPES) | price_type.rlike(_DECIMAL_TYPE)
    typed = fields.select(
        *_PASS_THROUGH,
        "_fits",
        "_is_object",
        F.trim(F.col("_s_schema_version")).try_cast("int").alias("schema_version"),
        F.lower(string("event_type")).alias("event_type"),
        _parse_time(string("event_time")).alias("_time"),
        # currency is upper-cased before its length is checked ("ß" becomes "SS")
        *[(F.upper(string(name)) if name == "currency" else string(name)).alias(name) for name in TEXT_FIELDS],
        *[wrong_type(name).alias(f"_bad_{name}") for name in TEXT_FIELDS],
        F.when(
            quantity_type.isin(_INTEGER_TYPES) | quantity_type.rlike(_WHOLE_DECIMAL_TYPE),
            F.col("_s_quantity").try_cast("decimal(38,0)"),
        ).alias("_quantity"),
        # exponent notation or more than 38 digits: not an exact integer, but say "out of range" when it is
        F.when(quantity_type == F.lit("DOUBLE"), F.col("_s_quantity").try_cast("double")).alias("_quantity_double"),
        F.coalesce(price_type == F.lit("DOUBLE"), F.lit(False)).alias("_price_is_double"),
        F.when(price_type == F.lit("STRING"), F.trim(F.col("_s_unit_price")))
        .when(price_exact, F.col("_s_unit_price"))
        .alias("_price_text"),
        F.when(price_type == F.lit("DOUBLE"), F.col("_s_unit_price").try_cast("double")).alias("_price_double"),
    )
    typed = typed.withColumn("_price", F.col("_price_text").try_cast("decimal(38,2)"))
    event_type = F.col("event_type")
    is_purchase = F.coalesce(event_type == F.lit(_PURCHASE), F.lit(False))
    needs_quantity = F.coalesce(event_type.isin(_WITH_QUANTITY), F.lit(False))
    needs_user = F.coalesce(event_type.isin(_WITH_USER), F.lit(False))
    event_time = F.col("_time")
    latest = F.col("ingest_time") + F.make_dt_interval(secs=F.lit(skew))
    quantity = F.col("_quantity")
    price_text, price_double, price = F.col("_price_text"), F.col("_price_double"), F.col("_price")
    is_double = F.col("_price_is_double")

    def too_long(name: str) -> Column:
        return F.coalesce(F.length(F.col(name)) > F.lit(MAX_TEXT_LENGTH), F.lit(False))

    def matches(column: Column, pattern: str) -> Column:
        return F.coalesce(column.rlike(pattern), F.lit(False))

    # (code, broken) in the order the rules are checked; each `broken` is true or false, never null
    rules: list[tuple[str, Column]] = [
        ("record_too_large", ~F.col("_fits")),
        ("not_json", ~F.col("_is_object")),
        ("unsupported_schema_version", _is_false(F.col("schema_version") == F.lit(SCHEMA_VERSION))),
        ("bad_event_id", F.col("_bad_event_id")),
        ("missing_event_id", _blank(F.col("event_id"))),
        ("event_id_too_long", too_long("event_id")),
        ("unknown_event_type", _is_false(event_type.isin([e.value for e in EventType]))),
        ("bad_event_time", event_time.isNull()),
        ("event_time_too_early", _is_false(event_time >= F.lit(MIN_EVENT_TIME))),
        ("event_time_in_future", _is_false(event_time <= latest)),
        ("bad_product_id", F.col("_bad_product_id")),
        ("missing_product_id", _blank(F.col("product_id"))),
        ("product_id_too_long", too_long("product_id")),
        ("bad_user_id", F.col("_bad_user_id")),
        ("missing_user_id", needs_user & _blank(F.col("user_id"))),
        ("user_id_too_long", too_long("user_id")),
        ("bad_category", F.col("_bad_category")),
        ("category_too_long", too_long("category")),
        (
            "quantity_out_of_range",
            needs_quantity & (F.coalesce(F.col("_quantity_double") > F.lit(float(MAX_QUANTITY)), F.lit(False))),
        ),
        ("bad_quantity", needs_quantity & _is_false(quantity > F.lit(0))),
        ("quantity_out_of_range", needs_quantity & _is_false(quantity <= F.lit(MAX_QUANTITY))),
        # missing, a boolean, an object, an array, or a string that is no number
        (
            "bad_unit_price",
            is_purchase & ~is_double & ~matches(price_text, _PLAIN_DECIMAL) & ~matches(price_text, _NON_FINITE),
        ),
        ("non_finite_unit_price", is_purchase & matches(price_text, _NON_FINITE)),
        (
            "negative_unit_price",
            is_purchase
            & (matches(price_text, _NEGATIVE) | (is_double & F.coalesce(price_double < F.lit(0.0), F.lit(False)))),
        ),
        (
            "unit_price_out_of_range",
            is_purchase
            & F.when(is_double, _is_false(F.abs(price_double) <= F.lit(float(MAX_UNIT_PRICE)))).otherwise(
                _is_false(price <= F.lit(MAX_UNIT_PRICE))
            ),
        ),
        # exponent notation (1e2) reaches Spark as a double, which can hide a sub-cent part: not exact money
        ("bad_unit_price", is_purchase & is_double),
        ("sub_cent_unit_price", is_purchase & matches(price_text, _SUB_CENT)),
        ("bad_currency", is_purchase & F.col("_bad_currency")),
        ("currency_too_long", is_purchase & too_long("currency")),
        ("foreign_currency", is_purchase & ~_blank(F.col("currency")) & (F.col("currency") != F.lit(currency))),
        ("bad_order_id", is_purchase & F.col("_bad_order_id")),
        ("missing_order_id", is_purchase & _blank(F.col("order_id"))),
        ("order_id_too_long", is_purchase & too_long("order_id")),
    ]
    reason = F.when(rules[0][1], F.lit(rules[0][0]))
    for code, broken in rules[1:]:
        reason = reason.when(broken, F.lit(code))
    classified = typed.withColumn("reject_reason", reason)
    valid = F.col("reject_reason").isNull()
    derived = {
        "event_time": F.when(valid, event_time),
        "event_date": F.when(valid, F.to_date(event_time)),
        "user_id": F.nullif(F.col("user_id"), F.lit("")),
        "category": F.nullif(F.col("category"), F.lit("")),
        # quantity and price only mean something for the event types that carry them
        "quantity": F.when(valid & needs_quantity, quantity.try_cast("int")),
        "unit_price": F.when(valid & is_purchase, price.try_cast(MONEY_TYPE)),
        "currency": F.when(is_purchase, F.coalesce(F.nullif(F.col("currency"), F.lit("")), F.lit(currency))),
        "order_id": F.when(is_purchase, F.nullif(F.col("order_id"), F.lit(""))),
    }
    return classified.select(
        "raw_key",
        "raw_value",
        *[derived[name].alias(name) if name in derived else F.col(name) for name in BRONZE_COLUMNS],
        "reject_reason",
    )
