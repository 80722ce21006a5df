"""Defence in depth: rows outside the contract (written before its bounds, or around the parser) never make the
metric or the batch job raise an ANSI overflow; a sum past DECIMAL(18,2) is NULL, and the gates catch it."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

from pyspark.sql import functions as F

from batch_layer.quality import validate_views
from batch_layer.transforms import bronze_checks, build_view, daily_totals, reconciliation_diff, view_checks
from contracts.events import MAX_LINE_REVENUE, MAX_MONEY, MAX_QUANTITY, MAX_UNIT_PRICE
from contracts.metrics import revenue_of, sales_rollup
from contracts.tables import TABLE_SCHEMAS

T = datetime(2026, 1, 5, 10, 0, tzinfo=UTC)
LARGEST = Decimal("9999999999999999.99")  # DECIMAL(18,2)'s largest value, far past MAX_UNIT_PRICE


def test_the_bounds_arithmetic_of_the_docs() -> None:
    assert MAX_LINE_REVENUE == MAX_QUANTITY * MAX_UNIT_PRICE == Decimal(10) ** 10
    assert MAX_MONEY == LARGEST
    # a bucket holds 999,999 maximal lines, not a million: past that only the try_cast path helps
    assert MAX_LINE_REVENUE * 999_999 <= MAX_MONEY < MAX_LINE_REVENUE * 1_000_000


def _bronze(spark, rows: list[dict]):  # type: ignore[no-untyped-def]
    columns = [part.split(" ")[0] for part in TABLE_SCHEMAS["bronze/events"].split(", ")]
    defaults = {
        "schema_version": 1,
        "event_type": "purchase",
        "user_id": "u1",
        "product_id": "p1",
        "category": "books",
        "currency": "EUR",
        "order_id": "o",
        "kafka_topic": "retail.events",
        "kafka_partition": 0,
        "kafka_timestamp": T,
        "ingest_time": T,
    }
    full = [
        {**defaults, "event_date": row["event_time"].date(), "kafka_offset": i, **row} for i, row in enumerate(rows)
    ]
    return spark.createDataFrame([tuple(row.get(c) for c in columns) for row in full], TABLE_SCHEMAS["bronze/events"])


def test_out_of_contract_rows_give_null_revenue_and_fail_the_gates(spark) -> None:  # type: ignore[no-untyped-def]
    rows = [
        # one line past DECIMAL(18,2): quantity × price = 2^31-1 × 10^16
        {"event_id": "huge-line", "event_time": T, "quantity": 2**31 - 1, "unit_price": LARGEST},
        # two lines that fit alone but not together, in the next minute
        {"event_id": "a", "event_time": T + timedelta(minutes=1), "quantity": 1, "unit_price": LARGEST},
        {"event_id": "b", "event_time": T + timedelta(minutes=1, seconds=1), "quantity": 1, "unit_price": LARGEST},
        {"event_id": "fine", "event_time": T + timedelta(minutes=2), "quantity": 2, "unit_price": Decimal("1.50")},
    ]
    bronze = _bronze(spark, rows)
    line_revenue = revenue_of(F.col("quantity"), F.col("unit_price")).alias("revenue")
    lines = {r.event_id: r.revenue for r in bronze.select("event_id", line_revenue).collect()}
    assert lines == {"huge-line": None, "a": LARGEST, "b": LARGEST, "fine": Decimal("3.00")}

    for users in ("exact", "sketch"):
        minutes = {
            (r.bucket_start.minute, r.dimension): r.revenue
            for r in sales_rollup(bronze, grain="minute", users=users).collect()
        }
        # the huge line alone adds nothing it cannot hold (NULL line), the pair overflows the bucket: NULL
        assert minutes[(0, "total")] == Decimal("0.00")
        assert minutes[(1, "total")] is None
        assert minutes[(2, "total")] == Decimal("3.00")
    day = sales_rollup(bronze, grain="day").where("dimension = 'total'").collect()
    assert [(r.revenue, r.orders, r.units) for r in day] == [(None, 4, 2**31 - 1 + 4)]

    # the batch layer: its input gate flags the rows outside the contract, the view suite refuses NULL revenue
    checks = bronze_checks(bronze, T + timedelta(hours=1), 300).collect()
    gate = {r.event_id: (r.quantity_ok, r.price_ok) for r in checks}
    assert gate == {"huge-line": (False, False), "a": (True, False), "b": (True, False), "fine": (True, True)}
    views = {grain: build_view(bronze, grain, "r", T) for grain in ("minute", "day")}
    totals = daily_totals(bronze).collect()
    assert [(r.revenue, r.orders) for r in totals] == [(None, 4)]
    diffs = reconciliation_diff(views, daily_totals(bronze)).where("dimension = 'total'").collect()
    assert {d.grain: d.revenue_diff for d in diffs} == {"minute": None, "day": None}  # NULL, never a zero
    report = validate_views(view_checks(views))
    assert not report.success
    assert any(item["column"] == "revenue" for item in report.failed)
