"""The one definition of every sales metric, shared by the speed layer (streaming) and the batch layer (static).

Definitions (per event-time bucket, UTC; buckets are aligned to the epoch, so a day bucket is a UTC day):

- revenue  = sum(quantity × unit_price) over purchases, DECIMAL(18,2), 0.00 when the bucket had none; NULL (never
  an error) in a bucket whose sum exceeds DECIMAL(18,2), which the contract's bounds make possible only past
  999,999 purchases of the largest line in one bucket (contracts.events)
- orders   = number of purchase events (one event is one order line; the generator gives one line per order)
- units    = sum(quantity) over purchases
- distinct users = distinct user_id over page_view, add_to_cart and purchase events (active users):
  exact (``count(DISTINCT)``) in the batch layer, a mergeable HLL sketch in the speed layer
  (``users_sketch``, Spark's Apache DataSketches HLL, plus its ``users_estimate``)

Every bucket is reported three ways, by ``dimension``: ``total`` (key ``all``), ``product`` (key = product_id)
and ``category`` (key = category). Restocks carry no sales and no user, so they do not appear here.

Deduplication is the caller's job (by event_id: within the watermark in the speed layer, over all history in the
batch layer) because the two layers differ there in completeness, never in formula.

Example::

    minute = sales_rollup(events, grain="minute", users="exact")     # batch
    minute = sales_rollup(deduped_stream, grain="minute", users="sketch")  # speed (after withWatermark)
"""

from __future__ import annotations

from typing import Literal

from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F

from contracts.events import MONEY_TYPE, EventType

__all__ = [
    "GRAINS",
    "Grain",
    "UserCount",
    "HLL_LG_CONFIG_K",
    "TOTAL_KEY",
    "DIMENSIONS",
    "SALES_METRIC_COLUMNS",
    "sales_rollup",
    "revenue_of",
    "money_total",
]

Grain = Literal["minute", "hour", "day"]
UserCount = Literal["exact", "sketch"]
GRAINS: dict[str, str] = {"minute": "1 minute", "hour": "1 hour", "day": "1 day"}
DIMENSIONS: tuple[str, ...] = ("total", "product", "category")
TOTAL_KEY = "all"
# the additive measures of a sales view (notebooks/02_reconcile_speed_and_batch.ipynb compares them)
SALES_METRIC_COLUMNS: tuple[str, ...] = ("revenue", "orders", "units")
# log2 of the sketch's bucket count: 12 is Spark's default (about 1.6 % standard error)
HLL_LG_CONFIG_K = 12

_SALES_EVENT_TYPES = [EventType.PAGE_VIEW.value, EventType.ADD_TO_CART.value, EventType.PURCHASE.value]


def revenue_of(quantity: Column, unit_price: Column) -> Column:
    """Revenue of one purchase line: quantity × unit_price, exact decimal (DECIMAL(18,2)); never raises.

    The event contract bounds a line to 10^10 (contracts.events), so for parsed events this is always exact. For
    anything else (rows written before the bounds, a hand-made frame) a product that does not fit DECIMAL(18,2)
    is NULL instead of an ANSI overflow error: the batch input suite flags such rows before they are summed.
    """
    wide = F.try_multiply(quantity.try_cast("decimal(10,0)"), unit_price.try_cast(MONEY_TYPE))
    return wide.try_cast(MONEY_TYPE)


def money_total(total: Column) -> Column:
    """A sum of money narrowed to DECIMAL(18,2): NULL, not an ANSI overflow error, when it does not fit.

    Spark sums DECIMAL(18,2) into DECIMAL(28,2), which cannot overflow (that takes more than 10^18 lines of the
    largest revenue); only the narrowing can, above 10^16 in one bucket (contracts.events has the arithmetic).
    """
    return total.try_cast(MONEY_TYPE)


def _by_dimension(events: DataFrame) -> DataFrame:
    dimension_keys = F.array(
        F.struct(F.lit("total").alias("dimension"), F.lit(TOTAL_KEY).alias("key")),
        F.struct(F.lit("product").alias("dimension"), F.col("product_id").alias("key")),
        F.struct(F.lit("category").alias("dimension"), F.coalesce(F.col("category"), F.lit("unknown")).alias("key")),
    )
    return events.where(F.col("event_type").isin(_SALES_EVENT_TYPES)).withColumn(
        "dimension_key", F.explode(dimension_keys)
    )


def sales_rollup(events: DataFrame, grain: Grain = "minute", users: UserCount = "exact") -> DataFrame:
    """Revenue, orders, units and distinct users per event-time bucket × dimension × key.

    Args:
        events: valid, deduplicated events; needs event_type, event_time, user_id, product_id, category,
            quantity, unit_price. Static or streaming (a streaming caller sets the watermark first).
        grain: "minute", "hour" or "day" (UTC buckets).
        users: "exact" gives ``distinct_users`` (static input only); "sketch" gives ``users_sketch``
            (binary HLL, mergeable across buckets) and ``users_estimate``.

    Returns:
        One row per (bucket_start, dimension, key) with at least one page view, add-to-cart or purchase:
        bucket_start, bucket_end, dimension, key, revenue DECIMAL(18,2), orders, units, and the user columns.
    """
    if grain not in GRAINS:
        raise ValueError(f"grain must be one of {tuple(GRAINS)}, got {grain!r}")
    if users not in ("exact", "sketch"):
        raise ValueError(f"users must be 'exact' or 'sketch', got {users!r}")
    is_purchase = F.col("event_type") == F.lit(EventType.PURCHASE.value)
    line_revenue = F.when(is_purchase, revenue_of(F.col("quantity"), F.col("unit_price")))
    if users == "exact":
        user_columns = [F.count_distinct("user_id").alias("distinct_users")]
    else:
        user_columns = [F.hll_sketch_agg("user_id", HLL_LG_CONFIG_K).alias("users_sketch")]
    rolled = (
        _by_dimension(events)
        .groupBy(
            F.window("event_time", GRAINS[grain]).alias("bucket"),
            F.col("dimension_key.dimension").alias("dimension"),
            F.col("dimension_key.key").alias("key"),
        )
        .agg(
            # the sum is DECIMAL(28,2) and never overflows; the narrowing to DECIMAL(18,2) is NULL past 10^16
            money_total(F.coalesce(F.sum(line_revenue), F.lit(0))).alias("revenue"),
            F.count(F.when(is_purchase, 1)).alias("orders"),
            # bigint: the contract's quantity <= 10^4 keeps a day's units below 10^18 at any feasible rate
            F.coalesce(F.sum(F.when(is_purchase, F.col("quantity"))), F.lit(0)).cast("long").alias("units"),
            *user_columns,
        )
    )
    selected = [
        F.col("bucket.start").alias("bucket_start"),
        F.col("bucket.end").alias("bucket_end"),
        "dimension",
        "key",
        "revenue",
        "orders",
        "units",
    ]
    if users == "exact":
        selected.append("distinct_users")
    else:
        selected += ["users_sketch", F.hll_sketch_estimate("users_sketch").alias("users_estimate")]
    return rolled.select(*selected)
