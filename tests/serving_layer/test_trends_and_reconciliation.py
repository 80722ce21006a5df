"""Read-time 5-minute trends and the speed-vs-batch reconciliation, on crafted rows (exact to the cent)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pyarrow as pa

from serving_layer.views import MONEY, TIMESTAMP, reconcile, rolling_sums

T0 = datetime(2026, 1, 5, 10, 0, tzinfo=UTC)


def minute_rows(values: dict[int, str]) -> pa.Table:
    return pa.table(
        {
            "bucket_start": pa.array([T0 + timedelta(minutes=m) for m in values], TIMESTAMP),
            "revenue": pa.array([Decimal(v) for v in values.values()], MONEY),
            "orders": pa.array([1] * len(values), pa.int64()),
            "units": pa.array([2] * len(values), pa.int64()),
            "distinct_users": pa.array([1] * len(values), pa.int64()),
        }
    )


def test_rolling_five_minute_sums_fill_gaps_and_use_minutes_before_start() -> None:
    source = minute_rows({-1: "100.00", 0: "0.01", 2: "0.02", 6: "0.10"})
    trend = rolling_sums(source, T0, T0 + timedelta(minutes=8), window_minutes=5).to_pylist()
    assert [r["bucket_start"] for r in trend] == [T0 + timedelta(minutes=m) for m in range(8)]
    assert [str(r["revenue"]) for r in trend] == [
        "100.01",  # minutes -4..0: the minute before start counts
        "100.01",
        "100.03",
        "100.03",
        "0.03",  # -1 leaves the window
        "0.02",
        "0.12",
        "0.10",
    ]
    assert [r["orders"] for r in trend] == [2, 2, 3, 3, 2, 1, 2, 1]
    assert [r["units"] for r in trend][:3] == [4, 4, 6]


def test_rolling_sums_of_nothing_are_zero() -> None:
    trend = rolling_sums(minute_rows({}), T0, T0 + timedelta(minutes=3))
    assert [str(v) for v in trend["revenue"].to_pylist()] == ["0.00", "0.00", "0.00"]


def test_reconcile_compares_only_buckets_both_layers_hold() -> None:
    batch = minute_rows({0: "10.00", 1: "20.00", 2: "0.00"})
    speed = minute_rows({1: "19.50", 2: "1.00", 3: "5.00"})
    report = reconcile(batch, speed).to_pylist()
    assert [r["bucket_start"] for r in report] == [T0 + timedelta(minutes=1), T0 + timedelta(minutes=2)]
    assert report[0]["revenue_diff"] == Decimal("-0.50")
    assert report[0]["revenue_diff_pct"] == -2.5
    assert report[1]["revenue_diff"] == Decimal("1.00") and report[1]["revenue_diff_pct"] is None
    assert report[0]["users_diff_pct"] == 0.0
