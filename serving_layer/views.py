"""Pure functions of the serving layer: merge at the time boundary, roll-ups, rolling trends, reconciliation.

Nothing here reads a table, the clock or the environment: every function takes small Arrow tables and returns
one, so the rules are tested on crafted rows (tests/serving_layer/test_merge_*.py).

Row layout (``SALES_ROW_SCHEMA``), one row per bucket (and per ``key`` when a caller asks for every key of a
dimension, in which case a ``key`` string column follows ``bucket_start``):

- bucket_start  timestamp[us, UTC], the start of an epoch-aligned minute, hour or day
- revenue       decimal128(18, 2), exact money
- orders, units, distinct_users  int64 (distinct users exact in batch rows, an HLL estimate in speed rows)
- source        "batch" or "speed" (merge output only)

Example::

    merged = merge_views(batch_rows, speed_rows, high_water_mark=w, grain="hour", low_water_mark=low)
    trend = rolling_sums(merged, start=start, end=end, window_minutes=5)
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Literal

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from serving_layer.errors import BadRequest

__all__ = [
    "EARLIEST",
    "LATEST",
    "DIMENSIONS",
    "GRAINS",
    "GRAIN_STEP",
    "Grain",
    "HLL_LG_CONFIG_K",
    "TOTAL_KEY",
    "MONEY",
    "SALES_ROW_SCHEMA",
    "SOURCE_BATCH",
    "SOURCE_SPEED",
    "TIMESTAMP",
    "batch_span",
    "empty_rows",
    "floor_to_grain",
    "merge_views",
    "reconcile",
    "rollup_minutes",
    "rolling_sums",
    "union_sketch_estimate",
]

# The metric vocabulary of contracts.metrics, restated here because that module imports pyspark and the
# serving process must stay JVM- and Spark-free; tests/serving_layer/test_vocabulary_matches_metrics.py keeps
# the two in step.
Grain = Literal["minute", "hour", "day"]
GRAINS: tuple[str, ...] = ("minute", "hour", "day")
DIMENSIONS: tuple[str, ...] = ("total", "product", "category")
TOTAL_KEY = "all"
HLL_LG_CONFIG_K = 12

SOURCE_BATCH = "batch"
SOURCE_SPEED = "speed"
TIMESTAMP = pa.timestamp("us", tz="UTC")
# the times the serving layer accepts, in queries and on the speed topics; the event contract's events all lie
# inside, and the date arithmetic behind an answer (zone conversion, rounding a bucket up) cannot overflow there
EARLIEST = datetime(1970, 1, 1, tzinfo=UTC)
LATEST = datetime(9000, 1, 1, tzinfo=UTC)
MONEY = pa.decimal128(18, 2)
GRAIN_STEP: dict[str, timedelta] = {
    "minute": timedelta(minutes=1),
    "hour": timedelta(hours=1),
    "day": timedelta(days=1),
}
SALES_ROW_SCHEMA = pa.schema(
    [
        ("bucket_start", TIMESTAMP),
        ("revenue", MONEY),
        ("orders", pa.int64()),
        ("units", pa.int64()),
        ("distinct_users", pa.int64()),
    ]
)
_METRICS = ("revenue", "orders", "units", "distinct_users")


def _check_grain(grain: str) -> None:
    if grain not in GRAINS:
        raise BadRequest(f"grain must be one of {', '.join(GRAINS)}, got {grain!r}")


def floor_to_grain(moment: datetime, grain: Grain) -> datetime:
    """The start of the UTC minute, hour or day holding ``moment`` (buckets are aligned to the epoch)."""
    _check_grain(grain)
    moment = moment.astimezone(UTC)
    if grain == "minute":
        return moment.replace(second=0, microsecond=0)
    if grain == "hour":
        return moment.replace(minute=0, second=0, microsecond=0)
    return moment.replace(hour=0, minute=0, second=0, microsecond=0)


def empty_rows(with_key: bool = False) -> pa.Table:
    """A table with the sales row layout and no rows."""
    return _row_schema(with_key).empty_table()


def _row_schema(with_key: bool) -> pa.Schema:
    return SALES_ROW_SCHEMA.insert(1, pa.field("key", pa.string())) if with_key else SALES_ROW_SCHEMA


def _conform(rows: pa.Table, with_key: bool, label: str) -> pa.Table:
    schema = _row_schema(with_key)
    missing = [name for name in schema.names if name not in rows.column_names]
    if missing:
        raise ValueError(f"{label} lacks the columns {missing}; needs {schema.names}")
    return rows.select(schema.names).cast(schema)


def batch_span(
    high_water_mark: datetime | None, grain: Grain, low_water_mark: datetime | None = None
) -> tuple[datetime | None, datetime] | None:
    """The bucket starts ``[low, high)`` that come from the batch view at ``grain``; None when no bucket does.

    A bucket comes from the batch view iff it lies wholly in [L, W): its start is at or after L (L ceiled to the
    grain) and its end at or before W (W floored to the grain). ``low`` is None when L is unknown (batch/runs rows
    written before L was recorded): then every bucket ending by W is a batch bucket, as before L existed. With no
    W, or when no whole bucket of the grain fits between L and W, nothing comes from the batch view.

    Example::

        batch_span(datetime(2026, 1, 6, tzinfo=UTC), "hour", datetime(2026, 1, 5, 12, 30, tzinfo=UTC))
        # (2026-01-05 13:00, 2026-01-06 00:00): the 12:00 hour straddles L and comes from the speed view
    """
    _check_grain(grain)
    if high_water_mark is None:
        return None
    for name, moment in (("high_water_mark", high_water_mark), ("low_water_mark", low_water_mark)):
        if moment is not None and moment.tzinfo is None:
            raise ValueError(f"{name} must be timezone-aware (UTC)")
    if low_water_mark is not None and low_water_mark > high_water_mark:
        raise ValueError(f"low_water_mark must not be after high_water_mark, got {low_water_mark} > {high_water_mark}")
    high = floor_to_grain(high_water_mark, grain)
    if low_water_mark is None:
        return None, high
    low = floor_to_grain(low_water_mark, grain)
    if low != low_water_mark:
        low += GRAIN_STEP[grain]
    return (low, high) if low < high else None


def merge_views(
    batch_rows: pa.Table,
    speed_rows: pa.Table,
    high_water_mark: datetime | None,
    grain: Grain,
    *,
    low_water_mark: datetime | None = None,
) -> pa.Table:
    """Merge batch and speed rows of one grain at the marks [L, W): each bucket from exactly one layer.

    A bucket comes from the batch view when it lies wholly in [L, W) (``batch_span``): it starts at or after
    the low mark L and ends at or before the high-water mark W; every other bucket comes from the speed view.
    W is where validated batch history ends; L is where the chain of validated batch ranges that W closes
    starts, so speed rows older than the first batch run stay served instead of vanishing. With L unknown
    (None) every bucket ending by W is a batch bucket. For marks on the grain's boundaries (the usual case:
    batch intervals start and end at midnight) that is exactly "L <= bucket_start < W"; a bucket that straddles
    an unaligned mark is taken from the speed layer, which holds the whole bucket, rather than from a batch row
    missing the part outside [L, W). With no W (no successful batch run yet) every row is a speed row.

    Args:
        batch_rows: rows of the batch view (bucket_start, [key,] revenue, orders, units, distinct_users);
            rows outside the batch span are ignored (they were not validated as complete).
        speed_rows: rows of the speed view at the same grain, same columns; rows inside the batch span are ignored.
        high_water_mark: W from batch/runs, timezone-aware, or None.
        grain: "minute", "hour" or "day".
        low_water_mark: L from batch/runs, timezone-aware and not after W, or None when unknown (ignored
            without a W).

    Returns:
        The rows of both inputs that survive, with a ``source`` column ("batch" or "speed"), sorted by
        bucket_start (then key). No bucket appears twice unless an input already held it twice.

    Raises:
        ValueError: a mark is naive, L is after W, or an input lacks a column.

    Example::

        merge_views(batch, speed, datetime(2026, 1, 6, tzinfo=UTC), "minute",
                    low_water_mark=datetime(2026, 1, 5, tzinfo=UTC))
    """
    _check_grain(grain)
    with_key = "key" in batch_rows.column_names or "key" in speed_rows.column_names
    batch = _conform(batch_rows, with_key, "batch_rows")
    speed = _conform(speed_rows, with_key, "speed_rows")
    span = batch_span(high_water_mark, grain, low_water_mark)
    if span is None:
        batch = batch.slice(0, 0)
    else:
        low, high = span
        batch = batch.filter(_inside(batch["bucket_start"], low, high))
        speed = speed.filter(pc.invert(_inside(speed["bucket_start"], low, high)))
    batch = batch.append_column("source", pa.array([SOURCE_BATCH] * batch.num_rows, pa.string()))
    speed = speed.append_column("source", pa.array([SOURCE_SPEED] * speed.num_rows, pa.string()))
    merged = pa.concat_tables([batch, speed])
    order = [("bucket_start", "ascending")] + ([("key", "ascending")] if with_key else [])
    return merged.sort_by(order)


def _inside(starts: pa.ChunkedArray, low: datetime | None, high: datetime) -> pa.ChunkedArray:
    below_high = pc.less(starts, pa.scalar(high, TIMESTAMP))
    return below_high if low is None else pc.and_(pc.greater_equal(starts, pa.scalar(low, TIMESTAMP)), below_high)


def union_sketch_estimate(sketches: Sequence[bytes | None], lg_config_k: int = HLL_LG_CONFIG_K) -> int:
    """Distinct count of the union of Spark ``hll_sketch_agg`` sketches (Apache DataSketches HLL format).

    Rounded the way Spark's ``hll_sketch_estimate`` rounds (half up), so one sketch gives Spark's own figure.
    """
    import datasketches  # lazy: only hour/day roll-ups of speed rows need it

    union = datasketches.hll_union(lg_config_k)
    for blob in sketches:
        if blob:
            union.update(datasketches.hll_sketch.deserialize(blob))
    return int(math.floor(union.get_estimate() + 0.5))


def rollup_minutes(minute_rows: pa.Table, grain: Grain, distinct_users: bool = True) -> pa.Table:
    """Roll speed minute rows up to ``grain``: sums of money, orders, units; distinct users by sketch union.

    Args:
        minute_rows: bucket_start (minute), [key,] revenue, orders, units, users_sketch (binary), users_estimate.
        grain: target grain; "minute" returns the rows with distinct_users = users_estimate.
        distinct_users: False skips the sketch union (distinct_users is null), for callers that need only money.

    Returns:
        One row per (bucket_start at ``grain``[, key]) in the sales row layout, sorted.
    """
    _check_grain(grain)
    with_key = "key" in minute_rows.column_names
    keys = ["bucket_start"] + (["key"] if with_key else [])
    if grain == "minute":
        renamed = minute_rows.append_column("distinct_users", minute_rows["users_estimate"])
        return _conform(renamed, with_key, "minute_rows").sort_by([(k, "ascending") for k in keys])
    if minute_rows.num_rows == 0:
        return empty_rows(with_key)
    floored = minute_rows.set_column(
        minute_rows.schema.get_field_index("bucket_start"),
        "bucket_start",
        pc.floor_temporal(minute_rows["bucket_start"], unit=grain),
    )
    aggregates = [("revenue", "sum"), ("orders", "sum"), ("units", "sum")]
    if distinct_users:
        aggregates.append(("users_sketch", "list"))
    grouped = floored.group_by(keys, use_threads=False).aggregate(aggregates)
    if distinct_users:
        users = [union_sketch_estimate(sketches) for sketches in grouped["users_sketch_list"].to_pylist()]
    else:
        users = [None] * grouped.num_rows
    result = pa.table(
        {
            **{k: grouped[k] for k in keys},
            "revenue": grouped["revenue_sum"],
            "orders": grouped["orders_sum"],
            "units": grouped["units_sum"],
            "distinct_users": pa.array(users, pa.int64()),
        }
    )
    return _conform(result, with_key, "rollup").sort_by([(k, "ascending") for k in keys])


def _cents(revenue: pa.ChunkedArray | pa.Array) -> np.ndarray:
    # exact: DECIMAL(18,2) × 100 is an integer number of cents, which int64 holds for any DECIMAL(18,2)
    scaled = pc.multiply(revenue.cast(MONEY), pa.scalar(Decimal(100), pa.decimal128(3, 0)))
    return np.asarray(pc.cast(scaled, pa.int64()).to_numpy(zero_copy_only=False), dtype=np.int64)


def _money_from_cents(cents: np.ndarray) -> pa.Array:
    return pa.array([Decimal(int(c)).scaleb(-2) for c in cents], MONEY)


def rolling_sums(minute_rows: pa.Table, start: datetime, end: datetime, window_minutes: int = 5) -> pa.Table:
    """Rolling sums of revenue, orders and units over the ``window_minutes`` minute buckets ending at each minute.

    The trend is computed where it is read (DESIGN.md), over merged minute rows, so it exists on both sides of W.
    Minutes without a row count as zero. To be exact at ``start`` the input must also hold the
    ``window_minutes - 1`` minutes before it.

    Args:
        minute_rows: bucket_start (minute), revenue, orders, units (other columns ignored); one row per minute.
        start, end: half-open range [start, end) of minutes to report, timezone-aware.
        window_minutes: window length, >= 1.

    Returns:
        One row per minute in [start, end): bucket_start, revenue, orders, units (each the window's sum).
    """
    if window_minutes < 1:
        raise ValueError(f"window_minutes must be >= 1, got {window_minutes}")
    first = floor_to_grain(start, "minute")
    lead = first - timedelta(minutes=window_minutes - 1)
    count = max(0, math.ceil((end - first) / timedelta(minutes=1)))
    span = count + window_minutes - 1
    lead_us = int(lead.timestamp() * 1_000_000)
    values = {name: np.zeros(span, dtype=np.int64) for name in ("revenue", "orders", "units")}
    if minute_rows.num_rows and span:
        offsets = (
            minute_rows["bucket_start"].cast(TIMESTAMP).cast(pa.int64()).to_numpy(zero_copy_only=False) - lead_us
        ) // 60_000_000
        inside = (offsets >= 0) & (offsets < span)
        for name, column in (
            ("revenue", _cents(minute_rows["revenue"])),
            ("orders", minute_rows["orders"].to_numpy(zero_copy_only=False)),
            ("units", minute_rows["units"].to_numpy(zero_copy_only=False)),
        ):
            np.add.at(values[name], offsets[inside], np.asarray(column, dtype=np.int64)[inside])
    sums = {}
    for name, series in values.items():
        running = np.concatenate([[0], np.cumsum(series)])
        sums[name] = running[window_minutes:] - running[:-window_minutes] if span else np.zeros(0, np.int64)
    starts = [first + timedelta(minutes=i) for i in range(count)]
    return pa.table(
        {
            "bucket_start": pa.array(starts, TIMESTAMP),
            "revenue": _money_from_cents(sums["revenue"]),
            "orders": pa.array(sums["orders"], pa.int64()),
            "units": pa.array(sums["units"], pa.int64()),
        }
    )


def reconcile(batch_rows: pa.Table, speed_rows: pa.Table) -> pa.Table:
    """How far provisional speed figures were from final batch figures, for buckets both layers hold.

    Args:
        batch_rows, speed_rows: sales rows of one grain and one dimension key (no merge applied).

    Returns:
        One row per bucket_start present in both, sorted: bucket_start, batch_revenue, speed_revenue,
        revenue_diff (speed − batch, exact), revenue_diff_pct (float, null when batch revenue is 0),
        batch_orders, speed_orders, batch_users, speed_users, users_diff_pct (float, null when batch has 0 users).
    """
    batch = _conform(batch_rows, False, "batch_rows")
    speed = _conform(speed_rows, False, "speed_rows")
    joined = batch.join(speed, keys="bucket_start", join_type="inner", left_suffix="_b", right_suffix="_s")
    joined = joined.sort_by("bucket_start")
    batch_cents = _cents(joined["revenue_b"])
    speed_cents = _cents(joined["revenue_s"])
    diff = speed_cents - batch_cents
    with np.errstate(divide="ignore", invalid="ignore"):
        pct = np.where(batch_cents != 0, diff * 100.0 / np.where(batch_cents == 0, 1, batch_cents), np.nan)
        b_users = joined["distinct_users_b"].to_numpy(zero_copy_only=False).astype(np.float64)
        s_users = joined["distinct_users_s"].to_numpy(zero_copy_only=False).astype(np.float64)
        users_pct = np.where(b_users != 0, (s_users - b_users) * 100.0 / np.where(b_users == 0, 1, b_users), np.nan)
    return pa.table(
        {
            "bucket_start": joined["bucket_start"],
            "batch_revenue": joined["revenue_b"],
            "speed_revenue": joined["revenue_s"],
            "revenue_diff": _money_from_cents(diff),
            "revenue_diff_pct": pa.array(pct, pa.float64(), from_pandas=True),
            "batch_orders": joined["orders_b"],
            "speed_orders": joined["orders_s"],
            "batch_users": joined["distinct_users_b"],
            "speed_users": joined["distinct_users_s"],
            "users_diff_pct": pa.array(users_pct, pa.float64(), from_pandas=True),
        }
    )
