"""Pure DataFrame functions of the batch layer: deduplication, the exact views, checks and reconciliation.

No ``spark.read``, no writes, no ``collect()``, no clock and no environment here: the job (batch_layer.job)
reads bronze, passes the interval bounds and the run's clock in, and writes what these functions return.

Metrics come from ``contracts.metrics.sales_rollup`` (the same definition the speed layer uses) and
``revenue_of`` (the one revenue formula); nothing here restates them.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

from pyspark.sql import Column, DataFrame, Window
from pyspark.sql import functions as F

from contracts.events import MAX_QUANTITY, MAX_UNIT_PRICE, MONEY_TYPE, EventType
from contracts.metrics import GRAINS, TOTAL_KEY, Grain, money_total, revenue_of, sales_rollup

__all__ = [
    "VIEW_COLUMNS",
    "STAGED_COLUMNS",
    "TOTAL_COLUMNS",
    "DEDUP_COLUMNS",
    "in_range",
    "in_partitions",
    "candidate_rows",
    "deduplicate_events",
    "first_copies",
    "build_view",
    "build_views",
    "daily_totals",
    "bronze_checks",
    "view_checks",
    "reconciliation_diff",
]

# batch/sales_* column order (TABLE_SCHEMAS)
VIEW_COLUMNS: tuple[str, ...] = (
    "bucket_start",
    "bucket_end",
    "dimension",
    "key",
    "revenue",
    "orders",
    "units",
    "distinct_users",
    "run_id",
    "computed_at",
)
# the staged views: every grain in one table
STAGED_COLUMNS: tuple[str, ...] = ("grain", *VIEW_COLUMNS)
# what deduplication and the views need of a bronze row (the rest of bronze is never read by the recompute)
DEDUP_COLUMNS: tuple[str, ...] = (
    "event_id",
    "event_type",
    "event_time",
    "user_id",
    "product_id",
    "category",
    "quantity",
    "unit_price",
    "ingest_time",
    "kafka_timestamp",
    "kafka_topic",
    "kafka_partition",
    "kafka_offset",
)
# daily_totals output columns
TOTAL_COLUMNS: tuple[str, ...] = ("day", "revenue", "orders", "units", "distinct_users", "events")

_WITH_QUANTITY = [EventType.ADD_TO_CART.value, EventType.PURCHASE.value, EventType.RESTOCK.value]
_WITH_USER = [EventType.PAGE_VIEW.value, EventType.ADD_TO_CART.value, EventType.PURCHASE.value]
_PURCHASE = EventType.PURCHASE.value
# ordering of the copies of one event_id: the first one bronze received wins (Kafka coordinates break ties);
# plain names here, Columns built at call time (building a Column needs a running SparkContext)
_FIRST_COPY = ("ingest_time", "kafka_timestamp", "kafka_topic", "kafka_partition", "kafka_offset", "event_time")


def _ts(moment: datetime) -> Column:
    if moment.tzinfo is None:
        raise ValueError(f"bounds must be timezone-aware UTC datetimes, got the naive {moment!r}")
    return F.lit(moment).cast("timestamp")


def _utc_date(moment: datetime) -> date:
    if moment.tzinfo is None:
        raise ValueError(f"bounds must be timezone-aware UTC datetimes, got the naive {moment!r}")
    return moment.astimezone(UTC).date()


def in_range(bronze: DataFrame, start: datetime, end: datetime) -> DataFrame:
    """Bronze rows whose event time lies in ``[start, end)``; the event_date filter lets Delta skip partitions.

    Required columns: event_time, event_date. Output grain: one row per bronze row (duplicates kept).
    """
    return bronze.where(
        (F.col("event_date") >= _ts(start).cast("date"))
        & (F.col("event_date") <= _ts(end).cast("date"))
        & (F.col("event_time") >= _ts(start))
        & (F.col("event_time") < _ts(end))
    )


def in_partitions(bronze: DataFrame, start: datetime, end: datetime) -> DataFrame:
    """Bronze rows filed under the event dates of ``[start, end)`` (what the input suite checks).

    Unlike ``in_range`` this keeps a row whose event time does not match its partition (e.g. a time in the
    future filed under today), so the suite can see it. Required columns: event_date.
    """
    last_day = F.date_sub(_ts(end).cast("date"), 1)
    return bronze.where((F.col("event_date") >= _ts(start).cast("date")) & (F.col("event_date") <= last_day))


def candidate_rows(bronze: DataFrame, start: datetime, end: datetime, guard_days: int = 0) -> DataFrame:
    """The bronze rows that can be copies of the events of ``[start, end)``: those filed under its event dates,
    widened by ``guard_days`` on both sides (partition pruning on event_date; nothing else of bronze is read).

    A duplicate is a re-send of the same event and carries the same event_time (docs/design.md, "Time
    semantics"), so it is filed under the same event_date: the range's own partitions hold every copy and
    ``guard_days=0`` is exact. A guard also finds copies whose event time was changed by up to that many days.

    Required columns: event_date. Output grain: one row per bronze row of those partitions.
    """
    if guard_days < 0:
        raise ValueError(f"guard_days must be >= 0, got {guard_days}")
    first = _utc_date(start) - timedelta(days=guard_days)
    # the last date holding a moment before ``end`` (end is exclusive)
    last = _utc_date(end - timedelta(microseconds=1)) + timedelta(days=guard_days)
    return bronze.where((F.col("event_date") >= F.lit(first)) & (F.col("event_date") <= F.lit(last)))


def first_copies(bronze: DataFrame, start: datetime, end: datetime) -> DataFrame:
    """One row per event_id of ``bronze`` (its first copy), kept when its event time lies in ``[start, end)``.

    Among the copies of one event_id the one with the earliest (ingest_time, kafka_timestamp, topic, partition,
    offset, event_time) wins (nulls last); the event belongs to the interval of that copy's event time, so no
    event is counted in two intervals. One shuffle by event_id and a sort within it: ``row_number() = 1``, which
    Spark plans as a per-partition top-1 before the shuffle (measured about twice as fast as ``min_by`` of a
    struct, which Spark cannot hash-aggregate).

    Required columns: event_id and the ordering columns. Output grain: one row per distinct event_id whose kept
    copy has its event time in ``[start, end)``; the input's columns.
    """
    first_copy = Window.partitionBy("event_id").orderBy(*[F.col(name).asc_nulls_last() for name in _FIRST_COPY])
    return (
        bronze.withColumn("_copy", F.row_number().over(first_copy))
        .where((F.col("_copy") == 1) & (F.col("event_time") >= _ts(start)) & (F.col("event_time") < _ts(end)))
        .drop("_copy")
    )


def deduplicate_events(bronze: DataFrame, start: datetime, end: datetime) -> DataFrame:
    """One row per event_id of ``bronze``, for the events whose first copy lies in ``[start, end)``.

    ``bronze`` is every row that can be a copy of those events: all of the master dataset, or (what the job
    passes) ``candidate_rows`` of the range. See ``first_copies`` for the rule.

    Required columns: the bronze/events columns. Output grain: one row per distinct event_id whose kept copy has
    its event time in ``[start, end)``; bronze's columns.
    """
    return first_copies(bronze, start, end)


def build_view(events: DataFrame, grain: Grain, run_id: str, computed_at: datetime) -> DataFrame:
    """The exact batch view of one grain: ``sales_rollup(users="exact")`` plus the run's id and time.

    Required columns: those of ``sales_rollup``. Output grain: one row per (bucket_start, dimension, key), UTC
    buckets of the grain; columns VIEW_COLUMNS.
    """
    if grain not in GRAINS:
        raise ValueError(f"grain must be one of {tuple(GRAINS)}, got {grain!r}")
    return (
        sales_rollup(events, grain=grain, users="exact")
        .withColumn("run_id", F.lit(run_id))
        .withColumn("computed_at", _ts(computed_at))
        .select(*VIEW_COLUMNS)
    )


_GRAIN_SECONDS: dict[str, int] = {"minute": 60, "hour": 3600, "day": 86400}


def _floor(seconds: Column, grain: str) -> Column:
    # epoch-aligned UTC buckets, as sales_rollup's window(): independent of the session time zone
    return seconds - F.pmod(seconds, F.lit(_GRAIN_SECONDS[grain]))


def build_views(events: DataFrame, run_id: str, computed_at: datetime) -> DataFrame:
    """The exact views of every grain in one frame (``grain`` column), computing distinct users once.

    Same numbers as ``sales_rollup(events, grain, users="exact")`` for each grain (tested), but one pass over the
    events instead of three: the sales events are first reduced to per-(minute, dimension, key, user) cells with
    their revenue, orders and units; a minute bucket is the sum of its cells and its distinct users the number of
    its non-null users. Hour cells are the minute cells re-grouped by (hour, dimension, key, user), and day cells
    the hour cells re-grouped the same way: each step only shrinks the data, and a user active in several minutes
    of an hour is one cell of that hour, so exact distinct counts roll up (sums of minute counts would not).
    Revenue is summed unnarrowed (DECIMAL(38,2)) through the chain and narrowed per bucket by ``money_total``,
    so a bucket past DECIMAL(18,2) is NULL exactly as in ``sales_rollup``.

    Required columns: those of ``sales_rollup``. Output grain: one row per (grain, bucket_start, dimension, key);
    columns STAGED_COLUMNS.
    """
    is_purchase = F.col("event_type") == F.lit(_PURCHASE)
    dimension_keys = F.array(
        F.struct(F.lit("total").alias("dimension"), F.lit(TOTAL_KEY).alias("key")),
        F.struct(F.lit("product").alias("dimension"), F.col("product_id").alias("key")),
        F.struct(F.lit("category").alias("dimension"), F.coalesce(F.col("category"), F.lit("unknown")).alias("key")),
    )
    lines = events.where(F.col("event_type").isin(_WITH_USER)).select(
        _floor(F.unix_seconds("event_time"), "minute").alias("bucket"),
        F.inline(dimension_keys),
        "user_id",
        F.when(is_purchase, revenue_of(F.col("quantity"), F.col("unit_price"))).alias("line_revenue"),
        F.when(is_purchase, F.lit(1)).alias("line_order"),
        F.when(is_purchase, F.col("quantity")).alias("line_units"),
    )
    cells = lines.groupBy("bucket", "dimension", "key", "user_id").agg(
        F.sum("line_revenue").cast("decimal(38,2)").alias("revenue"),
        F.count("line_order").alias("orders"),
        F.sum("line_units").cast("long").alias("units"),
    )
    frames = []
    for grain in ("minute", "hour", "day"):
        if grain != "minute":
            cells = cells.groupBy(_floor(F.col("bucket"), grain).alias("bucket"), "dimension", "key", "user_id").agg(
                F.sum("revenue").cast("decimal(38,2)").alias("revenue"),
                F.sum("orders").alias("orders"),
                F.sum("units").cast("long").alias("units"),
            )
        buckets = cells.groupBy("bucket", "dimension", "key").agg(
            money_total(F.coalesce(F.sum("revenue"), F.lit(0))).alias("revenue"),
            F.coalesce(F.sum("orders"), F.lit(0)).cast("long").alias("orders"),
            F.coalesce(F.sum("units"), F.lit(0)).cast("long").alias("units"),
            F.count("user_id").alias("distinct_users"),
        )
        frames.append(
            buckets.select(
                F.lit(grain).alias("grain"),
                F.timestamp_seconds("bucket").alias("bucket_start"),
                F.timestamp_seconds(F.col("bucket") + F.lit(_GRAIN_SECONDS[grain])).alias("bucket_end"),
                "dimension",
                "key",
                "revenue",
                "orders",
                "units",
                "distinct_users",
                F.lit(run_id).alias("run_id"),
                _ts(computed_at).alias("computed_at"),
            )
        )
    return frames[0].unionByName(frames[1]).unionByName(frames[2])


def daily_totals(events: DataFrame) -> DataFrame:
    """Per UTC day straight from deduplicated events, without the rollup: what the views must add up to.

    Required columns: event_type, event_time, user_id, quantity, unit_price. Output grain: one row per UTC day
    with at least one event; columns TOTAL_COLUMNS (distinct_users over page views, carts and purchases).
    """
    is_purchase = F.col("event_type") == F.lit(_PURCHASE)
    is_sales_event = F.col("event_type").isin(_WITH_USER)
    return (
        events.groupBy(F.to_date("event_time").alias("day"))
        .agg(
            money_total(
                F.coalesce(F.sum(F.when(is_purchase, revenue_of(F.col("quantity"), F.col("unit_price")))), F.lit(0))
            ).alias("revenue"),
            F.count(F.when(is_purchase, 1)).alias("orders"),
            F.coalesce(F.try_sum(F.when(is_purchase, F.col("quantity"))), F.lit(0)).cast("long").alias("units"),
            F.count_distinct(F.when(is_sales_event, F.col("user_id"))).alias("distinct_users"),
            F.count(F.lit(1)).alias("events"),
        )
        .select(*TOTAL_COLUMNS)
    )


def bronze_checks(rows: DataFrame, now: datetime, future_tolerance_s: int) -> DataFrame:
    """Bronze rows of the interval with one boolean column per contract rule, for the input suite.

    The plain rules (not null, known type, price in [0, MAX_UNIT_PRICE]) are validated on bronze's own columns;
    the rules that depend on the event type or on the clock are spelled out here as ``*_ok`` flags. The
    contract's bounds (contracts.events) are checked again here, so a row written before them (or around the
    parser) fails the gate instead of overflowing a sum.

    Required columns: the bronze/events columns. Output grain: one row per input row; bronze's key columns plus
    quantity_ok, user_ok, price_ok, not_in_future, event_date_ok.
    """
    needs_quantity = F.col("event_type").isin(_WITH_QUANTITY)
    needs_user = F.col("event_type").isin(_WITH_USER)
    latest_allowed = F.lit(now).cast("timestamp") + F.make_dt_interval(secs=F.lit(future_tolerance_s))
    return rows.select(
        "event_id",
        "event_type",
        "event_time",
        "product_id",
        "unit_price",
        F.coalesce(~needs_quantity | F.col("quantity").between(F.lit(1), F.lit(MAX_QUANTITY)), F.lit(False)).alias(
            "quantity_ok"
        ),
        F.coalesce(~needs_user | F.col("user_id").isNotNull(), F.lit(False)).alias("user_ok"),
        F.coalesce(
            (F.col("event_type") != F.lit(_PURCHASE))
            | F.col("unit_price").between(F.lit(0).cast(MONEY_TYPE), F.lit(MAX_UNIT_PRICE).cast(MONEY_TYPE)),
            F.lit(False),
        ).alias("price_ok"),
        F.coalesce(F.col("event_time") <= latest_allowed, F.lit(False)).alias("not_in_future"),
        F.coalesce(F.col("event_date") == F.to_date("event_time"), F.lit(False)).alias("event_date_ok"),
    )


def view_checks(views: dict[str, DataFrame] | DataFrame) -> DataFrame:
    """All views in one frame with a ``grain`` column, so one suite checks them together.

    ``views``: one frame per grain, or the staged views (STAGED_COLUMNS: already one frame with ``grain``).
    Required columns: VIEW_COLUMNS. Output grain: one row per view row; grain plus VIEW_COLUMNS, plus
    ``bucket_ok`` (the bucket is exactly one grain long and aligned).
    """
    if isinstance(views, DataFrame):
        union = views.select(*STAGED_COLUMNS)
    else:
        frames = [view.select(F.lit(grain).alias("grain"), *VIEW_COLUMNS) for grain, view in views.items()]
        if not frames:
            raise ValueError("views must hold at least one grain")
        union = frames[0]
        for frame in frames[1:]:
            union = union.unionByName(frame)
    seconds = F.col("bucket_end").cast("long") - F.col("bucket_start").cast("long")
    expected = F.when(F.col("grain") == "minute", 60).when(F.col("grain") == "hour", 3600).otherwise(86400).cast("long")
    return union.withColumn(
        "bucket_ok",
        F.coalesce((seconds == expected) & (F.col("bucket_start").cast("long") % expected == 0), F.lit(False)),
    )


def _diff(view_value: Column, total_value: Column, zero: Column) -> Column:
    """view - total, where a side without a row for the day counts as zero but a NULL value (a sum that
    overflowed) stays NULL, so the reconciliation suite fails on it instead of comparing zeros."""
    view_side = F.when(F.col("v_present").isNull(), zero).otherwise(view_value)
    total_side = F.when(F.col("t_present").isNull(), zero).otherwise(total_value)
    return F.try_subtract(view_side, total_side)


def reconciliation_diff(views: dict[str, DataFrame], totals: DataFrame) -> DataFrame:
    """View sums minus bronze totals, per grain × dimension × UTC day: every difference must be zero.

    Each dimension (total, product, category) of each grain must add up, per day, to the revenue, orders and
    units of the deduplicated bronze events; the day view's total row must also hold the day's exact distinct
    users. A day missing on either side counts as zeros on that side, so it shows up as a difference.

    Required columns: VIEW_COLUMNS in the views, TOTAL_COLUMNS in ``totals``. Output grain: one row per
    (grain, dimension, day); columns grain, dimension, day, revenue_diff, orders_diff, units_diff, users_diff.
    """
    frames = []
    expected = totals.select(
        "day",
        F.col("revenue").alias("t_revenue"),
        F.col("orders").alias("t_orders"),
        F.col("units").alias("t_units"),
        F.col("distinct_users").alias("t_users"),
        F.lit(True).alias("t_present"),
    )
    for grain, view in views.items():
        # try_*: a sum past its type gives NULL (a failed check), never an error that stops the job
        sums = view.groupBy(F.to_date("bucket_start").alias("day"), "dimension").agg(
            money_total(F.sum("revenue")).alias("v_revenue"),
            F.try_sum("orders").alias("v_orders"),
            F.try_sum("units").alias("v_units"),
            F.max("distinct_users").alias("v_users"),
            F.lit(True).alias("v_present"),
        )
        dims = view.sparkSession.createDataFrame([("total",), ("product",), ("category",)], "dimension string")
        grid = expected.select("day").union(sums.select("day")).distinct().crossJoin(dims)
        joined = grid.join(sums, on=["day", "dimension"], how="left").join(expected, on="day", how="left")
        zero_money = F.lit(0).cast(MONEY_TYPE)
        users_checked = (F.lit(grain) == F.lit("day")) & (F.col("dimension") == F.lit("total"))
        frames.append(
            joined.select(
                F.lit(grain).alias("grain"),
                "dimension",
                "day",
                # a NULL sum (overflow) stays NULL here: the suite expects every difference to be non-null zero
                _diff(F.col("v_revenue"), F.col("t_revenue"), zero_money).try_cast(MONEY_TYPE).alias("revenue_diff"),
                _diff(F.col("v_orders"), F.col("t_orders"), F.lit(0)).try_cast("long").alias("orders_diff"),
                _diff(F.col("v_units"), F.col("t_units"), F.lit(0)).try_cast("long").alias("units_diff"),
                F.when(users_checked, F.coalesce("v_users", F.lit(0)) - F.coalesce("t_users", F.lit(0)))
                .otherwise(F.lit(0))
                .cast("long")
                .alias("users_diff"),
            )
        )
    union = frames[0]
    for frame in frames[1:]:
        union = union.unionByName(frame)
    return union
