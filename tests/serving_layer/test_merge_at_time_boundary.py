"""The merge rule on crafted rows: batch for buckets wholly before W, speed from W, each bucket exactly once."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pyarrow as pa
import pytest

from serving_layer.errors import BadRequest
from serving_layer.views import MONEY, TIMESTAMP, floor_to_grain, merge_views

T0 = datetime(2026, 1, 5, 23, 55, tzinfo=UTC)


def rows(*items: tuple[datetime, str, int, int, int], key: str | None = None) -> pa.Table:
    """Sales rows from (bucket_start, revenue, orders, units, distinct_users) tuples."""
    columns = {
        "bucket_start": pa.array([i[0] for i in items], TIMESTAMP),
        "revenue": pa.array([Decimal(i[1]) for i in items], MONEY),
        "orders": pa.array([i[2] for i in items], pa.int64()),
        "units": pa.array([i[3] for i in items], pa.int64()),
        "distinct_users": pa.array([i[4] for i in items], pa.int64()),
    }
    table = pa.table(columns)
    if key is not None:
        table = table.add_column(1, "key", pa.array([key] * len(items), pa.string()))
    return table


def minute(n: int) -> datetime:
    return T0 + timedelta(minutes=n)


def as_tuples(table: pa.Table) -> list[tuple]:
    return [(r["bucket_start"], str(r["revenue"]), r["source"]) for r in table.to_pylist()]


# both layers hold the minutes 0..9; W = minute 5 (midnight)
BATCH = rows(*[(minute(n), f"{n}.10", 1, 1, 1) for n in range(10)])
SPEED = rows(*[(minute(n), f"{n}.20", 1, 1, 1) for n in range(10)])
W = minute(5)


def test_boundary_bucket_comes_from_speed_and_each_bucket_once() -> None:
    merged = merge_views(BATCH, SPEED, W, "minute")
    got = as_tuples(merged)
    assert [g[0] for g in got] == [minute(n) for n in range(10)]  # no bucket missed, none twice
    assert got[4] == (minute(4), "4.10", "batch")  # last bucket before W: batch
    assert got[5] == (minute(5), "5.20", "speed")  # the bucket starting at W: speed
    assert {g[2] for g in got[:5]} == {"batch"} and {g[2] for g in got[5:]} == {"speed"}


def test_events_on_both_sides_of_w_sum_exactly() -> None:
    merged = merge_views(BATCH, SPEED, W, "minute")
    total = sum(Decimal(r["revenue"]) for r in merged.select(["revenue"]).to_pylist())
    assert total == Decimal("10.50") + Decimal("36.00")  # 0.10+..+4.10 from batch, 5.20+..+9.20 from speed


def test_no_batch_run_means_everything_is_speed() -> None:
    merged = merge_views(BATCH, SPEED, None, "minute")
    assert merged.num_rows == 10
    assert set(merged["source"].to_pylist()) == {"speed"}
    assert merged["revenue"].to_pylist()[0] == Decimal("0.20")


def test_batch_ahead_of_speed_keeps_batch_rows_and_later_speed_rows() -> None:
    speed = rows(*[(minute(n), f"{n}.20", 1, 1, 1) for n in range(3)])  # speed stops at minute 2
    merged = merge_views(BATCH, speed, minute(8), "minute")
    assert as_tuples(merged) == [(minute(n), f"{n}.10", "batch") for n in range(8)]  # batch rows >= W dropped


@pytest.mark.parametrize(
    ("batch", "speed", "w", "expected"),
    [
        (rows(), rows(), None, 0),
        (rows(), rows(), W, 0),
        (BATCH, rows(), W, 5),
        (rows(), SPEED, W, 5),
        (BATCH.slice(0, 0), SPEED.slice(0, 0), minute(1), 0),
    ],
    ids=["both-empty-no-w", "both-empty", "speed-empty", "batch-empty", "sliced-empty"],
)
def test_empty_inputs(batch: pa.Table, speed: pa.Table, w: datetime | None, expected: int) -> None:
    merged = merge_views(batch, speed, w, "minute")
    assert merged.num_rows == expected
    assert merged.column_names == ["bucket_start", "revenue", "orders", "units", "distinct_users", "source"]


def test_per_key_rows_merge_per_bucket_and_key() -> None:
    batch = pa.concat_tables(
        [rows((minute(0), "1.00", 1, 1, 1), (minute(5), "9.99", 9, 9, 9), key=k) for k in ("p-1", "p-2")]
    )
    speed = pa.concat_tables(
        [rows((minute(0), "7.77", 7, 7, 7), (minute(5), "2.00", 2, 2, 2), key=k) for k in ("p-1", "p-2")]
    )
    merged = merge_views(batch, speed, W, "minute").to_pylist()
    assert [(r["bucket_start"], r["key"], str(r["revenue"]), r["source"]) for r in merged] == [
        (minute(0), "p-1", "1.00", "batch"),
        (minute(0), "p-2", "1.00", "batch"),
        (minute(5), "p-1", "2.00", "speed"),
        (minute(5), "p-2", "2.00", "speed"),
    ]


def test_hour_bucket_straddling_an_unaligned_w_comes_from_speed() -> None:
    hour = datetime(2026, 1, 5, 10, tzinfo=UTC)
    batch = rows((hour - timedelta(hours=1), "5.00", 1, 1, 1), (hour, "1.00", 1, 1, 1))  # 10:00 batch row incomplete
    speed = rows((hour - timedelta(hours=1), "4.00", 1, 1, 1), (hour, "3.00", 2, 2, 2))
    merged = merge_views(batch, speed, hour + timedelta(minutes=47), "hour")
    assert as_tuples(merged) == [(hour - timedelta(hours=1), "5.00", "batch"), (hour, "3.00", "speed")]


@pytest.mark.parametrize(
    ("grain", "expected"),
    [
        ("minute", datetime(2026, 1, 5, 10, 47, tzinfo=UTC)),
        ("hour", datetime(2026, 1, 5, 10, tzinfo=UTC)),
        ("day", datetime(2026, 1, 5, tzinfo=UTC)),
    ],
)
def test_floor_to_grain(grain: str, expected: datetime) -> None:
    assert floor_to_grain(datetime(2026, 1, 5, 10, 47, 31, 5, tzinfo=UTC), grain) == expected  # type: ignore[arg-type]


def test_bad_grain_and_naive_w_are_rejected() -> None:
    with pytest.raises(BadRequest, match="grain must be one of"):
        merge_views(BATCH, SPEED, W, "week")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="timezone-aware"):
        merge_views(BATCH, SPEED, W.replace(tzinfo=None), "minute")
    with pytest.raises(ValueError, match="lacks the columns"):
        merge_views(BATCH.drop_columns(["units"]), SPEED, W, "minute")
