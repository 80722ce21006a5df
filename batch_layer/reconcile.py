"""The reconciliation's independent path: totals straight from bronze with a second engine, compared with the views.

The views are computed by Spark (``transforms.first_copies`` + ``transforms.build_views``). This module reads the
same bronze partitions with delta-rs and pyarrow (no Spark, no JVM), deduplicates by event_id on its own (first
copy by ingest time, then Kafka coordinates), and computes per UTC day the revenue, orders and units of the
sales events and, per bucket of every grain, the exact distinct users. It then reads the staged views (delta-rs,
at the version being validated) and returns a difference frame: one row per (grain, dimension, day) whose
differences must all be zero. A bug in the Spark path, a wrong dedup, a lost or doubled event, or a staged view
changed after it was computed shows up as a non-zero (or NULL) difference.

Only the interval's partitions are read (plus the dedup guard), and only the columns needed, so the cost grows
with the interval, never with history. Pure functions over pyarrow tables (``reference_from_bronze``,
``view_sums``, ``difference``) are separated from the reads (``read_bronze_range``, ``read_staged_views``).

Example::

    diff = reconcile(store, run_id, staged_version, range_start, range_end, guard_days=0, bronze_version=12)
    # pandas frame: grain, dimension, day, revenue_diff, orders_diff, units_diff, users_diff
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from contracts.events import EventType

__all__ = [
    "Reference",
    "reference_from_bronze",
    "view_sums",
    "difference",
    "read_bronze_range",
    "read_staged_views",
    "reconcile",
]

_SALES = [EventType.PAGE_VIEW.value, EventType.ADD_TO_CART.value, EventType.PURCHASE.value]
_PURCHASE = EventType.PURCHASE.value
_GRAIN_SECONDS = {"minute": 60, "hour": 3600, "day": 86400}
_DIMENSIONS = ("total", "product", "category")
# the first copy of an event: earliest ingest time, then Kafka coordinates (nulls last), as the batch job's rule
_FIRST_COPY = ("ingest_time", "kafka_timestamp", "kafka_topic", "kafka_partition", "kafka_offset", "event_time")
BRONZE_COLUMNS = ("event_id", "event_type", "event_time", "user_id", "quantity", "unit_price", *_FIRST_COPY[:-1])
# DECIMAL(18,2): what a line and a bucket's revenue must fit (contracts.metrics.revenue_of / money_total)
_MONEY_MAX = Decimal("9999999999999999.99")


@dataclass(frozen=True)
class Reference:
    """What bronze says, computed independently: per-day sums and per-bucket distinct users."""

    days: dict[date, dict[str, Any]]  # day -> {"revenue": Decimal | None, "orders": int, "units": int}
    users: dict[str, dict[datetime, int]]  # grain -> bucket_start -> exact distinct users (total dimension)
    rows: int  # bronze rows read (copies included)
    events: int  # deduplicated events whose first copy lies in the range


def _first_copies(table: pa.Table) -> pa.Table:
    """One row per event_id: the first copy by (ingest_time, kafka_timestamp, topic, partition, offset, time)."""
    if table.num_rows == 0:
        return table
    keys = [("event_id", "ascending", "at_end"), *[(name, "ascending", "at_end") for name in _FIRST_COPY]]
    ordered = table.sort_by(keys)
    ids = ordered["event_id"].combine_chunks()
    if len(ids) == 1:
        return ordered
    changed = pc.fill_null(pc.not_equal(ids.slice(1), ids.slice(0, len(ids) - 1)), True)
    first = pa.concat_arrays([pa.array([True]), changed])
    return ordered.filter(first)


def _narrow_money(value: Decimal | None) -> Decimal | None:
    return None if value is None or abs(value) > _MONEY_MAX else value


def reference_from_bronze(bronze: pa.Table, start: datetime, end: datetime) -> Reference:
    """Deduplicate the bronze rows (every copy the range can have) and compute the reference totals.

    Required columns: BRONZE_COLUMNS. Events count for the range when their first copy's event time lies in
    ``[start, end)``.
    """
    events = _first_copies(bronze)
    ts = pa.scalar(start.astimezone(UTC), pa.timestamp("us", tz="UTC"))
    te = pa.scalar(end.astimezone(UTC), pa.timestamp("us", tz="UTC"))
    times = pc.cast(events["event_time"], pa.timestamp("us", tz="UTC"))
    events = events.filter(pc.and_(pc.greater_equal(times, ts), pc.less(times, te)))
    sales = events.filter(pc.is_in(events["event_type"], pa.array(_SALES)))
    seconds = pc.divide(pc.cast(pc.cast(sales["event_time"], pa.timestamp("us", tz="UTC")), pa.int64()), 1_000_000)
    is_purchase = pc.equal(sales["event_type"], _PURCHASE)
    line = pc.multiply(
        pc.cast(sales["quantity"], pa.decimal128(10, 0)), pc.cast(sales["unit_price"], pa.decimal128(18, 2))
    )
    # a line past DECIMAL(18,2) counts as nothing (revenue_of gives NULL), as does a line of another type
    line = pc.if_else(pc.and_(is_purchase, pc.less_equal(pc.abs(line), pa.scalar(_MONEY_MAX, line.type))), line, None)
    frame = pa.table(
        {
            "day": pc.cast(pc.cast(sales["event_time"], pa.timestamp("us", tz="UTC")), pa.date32()),
            "seconds": seconds,
            "user_id": sales["user_id"],
            "line": line,
            "order": pc.if_else(is_purchase, 1, 0),
            "units": pc.if_else(is_purchase, pc.cast(sales["quantity"], pa.int64()), 0),
        }
    )
    days: dict[date, dict[str, Any]] = {}
    for row in frame.group_by("day").aggregate([("line", "sum"), ("order", "sum"), ("units", "sum")]).to_pylist():
        days[row["day"]] = {
            "revenue": _narrow_money(row["line_sum"] if row["line_sum"] is not None else Decimal("0.00")),
            "orders": int(row["order_sum"] or 0),
            "units": int(row["units_sum"] or 0),
        }
    users: dict[str, dict[datetime, int]] = {}
    for grain, width in _GRAIN_SECONDS.items():
        bucket = pc.multiply(pc.divide(frame["seconds"], width), width)  # integer division: epoch-aligned
        grouped = pa.table({"bucket": bucket, "user_id": frame["user_id"]}).group_by("bucket")
        users[grain] = {
            datetime.fromtimestamp(row["bucket"], UTC): int(row["user_id_count_distinct"])
            for row in grouped.aggregate([("user_id", "count_distinct")]).to_pylist()
        }
    return Reference(days=days, users=users, rows=bronze.num_rows, events=events.num_rows)


def view_sums(views: pa.Table) -> tuple[dict[tuple[str, str, date], dict[str, Any]], dict[str, dict[datetime, int]]]:
    """Per (grain, dimension, day) the views' revenue, orders and units, and per grain the total dimension's
    distinct users per bucket. A NULL revenue makes its day's sum NULL (it must fail, never count as zero).

    Required columns: grain, bucket_start, dimension, revenue, orders, units, distinct_users.
    """
    day = pc.cast(pc.cast(views["bucket_start"], pa.timestamp("us", tz="UTC")), pa.date32())
    frame = pa.table(
        {
            "grain": views["grain"],
            "dimension": views["dimension"],
            "day": day,
            "revenue": views["revenue"],
            "orders": views["orders"],
            "units": views["units"],
        }
    )
    keep_nulls = pc.ScalarAggregateOptions(skip_nulls=False, min_count=0)
    sums: dict[tuple[str, str, date], dict[str, Any]] = {}
    aggregated = frame.group_by(["grain", "dimension", "day"]).aggregate(
        [("revenue", "sum", keep_nulls), ("orders", "sum", keep_nulls), ("units", "sum", keep_nulls)]
    )
    for row in aggregated.to_pylist():
        sums[(row["grain"], row["dimension"], row["day"])] = {
            "revenue": _narrow_money(row["revenue_sum"]),
            "orders": row["orders_sum"],
            "units": row["units_sum"],
        }
    users: dict[str, dict[datetime, int]] = {grain: {} for grain in _GRAIN_SECONDS}
    totals = views.filter(pc.equal(views["dimension"], "total"))
    for row in totals.select(["grain", "bucket_start", "distinct_users"]).to_pylist():
        bucket = row["bucket_start"]
        bucket = bucket.astimezone(UTC) if bucket.tzinfo else bucket.replace(tzinfo=UTC)
        users.setdefault(row["grain"], {})[bucket] = row["distinct_users"]
    return sums, users


def _minus(left: Any, right: Any) -> Any:
    return None if left is None or right is None else left - right


def difference(reference: Reference, views: pa.Table) -> list[dict[str, Any]]:
    """One row per (grain, dimension, day) of either side: view minus reference for revenue, orders and units (a
    day missing on one side counts as zeros there; a NULL stays NULL), and for the total dimension the summed
    absolute difference of distinct users over the day's buckets."""
    sums, view_users = view_sums(views)
    days = set(reference.days) | {day for (_, _, day) in sums}
    for buckets in [*reference.users.values(), *view_users.values()]:
        days |= {bucket.date() for bucket in buckets}
    zero = {"revenue": Decimal("0.00"), "orders": 0, "units": 0}
    rows = []
    for grain in _GRAIN_SECONDS:
        for day in sorted(days):
            expected = reference.days.get(day, zero)
            wrong_users = 0
            mine = view_users.get(grain, {})
            truth = reference.users.get(grain, {})
            for bucket in {b for b in [*mine, *truth] if b.date() == day}:
                seen, real = mine.get(bucket, 0), truth.get(bucket, 0)
                wrong_users = None if seen is None or wrong_users is None else wrong_users + abs(seen - real)
            for dimension in _DIMENSIONS:
                got = sums.get((grain, dimension, day), zero)
                rows.append(
                    {
                        "grain": grain,
                        "dimension": dimension,
                        "day": day,
                        "revenue_diff": _minus(got["revenue"], expected["revenue"]),
                        "orders_diff": _minus(got["orders"], expected["orders"]),
                        "units_diff": _minus(got["units"], expected["units"]),
                        "users_diff": wrong_users if dimension == "total" else 0,
                    }
                )
    return rows


def _partition_dates(start: datetime, end: datetime, guard_days: int) -> list[str]:
    first = start.astimezone(UTC).date() - timedelta(days=guard_days)
    last = (end - timedelta(microseconds=1)).astimezone(UTC).date() + timedelta(days=guard_days)
    return [(first + timedelta(days=n)).isoformat() for n in range((last - first).days + 1)]


def read_bronze_range(table: Any, start: datetime, end: datetime, guard_days: int = 0) -> pa.Table:
    """The bronze rows filed under the range's event dates (plus the guard), only BRONZE_COLUMNS (delta-rs)."""
    if table is None:
        return pa.table({name: pa.array([], pa.null()) for name in BRONZE_COLUMNS})
    partitions = [("event_date", "in", _partition_dates(start, end, guard_days))]
    return table.to_pyarrow_table(filters=partitions, columns=list(BRONZE_COLUMNS))


def read_staged_views(table: Any) -> pa.Table:
    return table.to_pyarrow_table(
        columns=["grain", "bucket_start", "dimension", "revenue", "orders", "units", "distinct_users"]
    )


def reconcile(  # type: ignore[no-untyped-def]
    store: Any,
    run_id: str,
    staged_version: int,
    start: datetime,
    end: datetime,
    guard_days: int = 0,
    bronze_version: int | None = None,
):
    """The difference frame (pandas) of the staged views at ``staged_version`` against bronze (at
    ``bronze_version``, the snapshot the recompute read; newest if None), and the counts."""
    import pandas as pd

    bronze_path = store.lake.table("bronze/events")
    bronze = store.delta_rs(bronze_path, bronze_version) if store.exists(bronze_path) else None
    rows = read_bronze_range(bronze, start, end, guard_days)
    reference = reference_from_bronze(rows, start, end) if rows.num_rows else Reference({}, {}, 0, 0)
    views = read_staged_views(store.delta_rs(store.staging_uri(run_id), staged_version))
    diff = pd.DataFrame(
        difference(reference, views),
        columns=["grain", "dimension", "day", "revenue_diff", "orders_diff", "units_diff", "users_diff"],
    )
    return diff, {"bronze_rows": reference.rows, "events": reference.events}
