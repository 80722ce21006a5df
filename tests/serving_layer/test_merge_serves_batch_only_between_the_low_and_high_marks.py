"""The merge rule with the low mark L: batch rows only for buckets wholly inside [L, W), speed rows elsewhere.

Speed rows older than the first batch run's range (before L) must stay served (issue 11: "Older speed data
vanishes"); with L unknown (run rows written before L was recorded) the rule is the old one: batch before W.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from serving_layer.views import GRAIN_STEP, MONEY, TIMESTAMP, batch_span, merge_views

T0 = datetime(2026, 1, 5, tzinfo=UTC)


def rows(starts: list[datetime], cents: int, key: str | None = None) -> pa.Table:
    """One sales row per bucket start; revenue = ``cents`` (so the source of a merged row is visible)."""
    table = pa.table(
        {
            "bucket_start": pa.array(starts, TIMESTAMP),
            "revenue": pa.array([Decimal(cents).scaleb(-2)] * len(starts), MONEY),
            "orders": pa.array([1] * len(starts), pa.int64()),
            "units": pa.array([1] * len(starts), pa.int64()),
            "distinct_users": pa.array([1] * len(starts), pa.int64()),
        }
    )
    return table if key is None else table.add_column(1, "key", pa.array([key] * len(starts), pa.string()))


def hours(*offsets: int) -> list[datetime]:
    return [T0 + timedelta(hours=h) for h in offsets]


def sources(table: pa.Table) -> list[tuple[datetime, str]]:
    return [(r["bucket_start"], r["source"]) for r in table.to_pylist()]


# both layers hold the hours 0..9; L = 03:00, W = 07:00
BATCH = rows(hours(*range(10)), 100)
SPEED = rows(hours(*range(10)), 200)
LOW, HIGH = T0 + timedelta(hours=3), T0 + timedelta(hours=7)


def test_speed_rows_before_l_are_served_and_batch_only_inside_the_marks() -> None:
    merged = merge_views(BATCH, SPEED, HIGH, "hour", low_water_mark=LOW)
    assert sources(merged) == [(hour, "batch" if 3 <= n < 7 else "speed") for n, hour in enumerate(hours(*range(10)))]
    assert [str(v) for v in merged["revenue"].to_pylist()] == ["2.00"] * 3 + ["1.00"] * 4 + ["2.00"] * 3


def test_unknown_l_keeps_batch_for_every_bucket_before_w() -> None:
    merged = merge_views(BATCH, SPEED, HIGH, "hour", low_water_mark=None)
    assert merged.equals(merge_views(BATCH, SPEED, HIGH, "hour"))
    assert sources(merged) == [(hour, "batch" if n < 7 else "speed") for n, hour in enumerate(hours(*range(10)))]


def test_a_bucket_straddling_an_unaligned_l_comes_from_speed() -> None:
    merged = merge_views(BATCH, SPEED, HIGH, "hour", low_water_mark=LOW + timedelta(minutes=20))
    assert dict(sources(merged))[LOW] == "speed"  # 03:00-04:00 holds minutes before L: the speed layer has them all
    assert dict(sources(merged))[LOW + timedelta(hours=1)] == "batch"


def test_batch_rows_before_l_without_speed_rows_are_not_served() -> None:
    speed = rows(hours(8), 200)  # the speed layer holds nothing before L
    merged = merge_views(BATCH, speed, HIGH, "hour", low_water_mark=LOW)
    assert sources(merged) == [(hour, "batch") for hour in hours(3, 4, 5, 6)] + [(hours(8)[0], "speed")]


def test_per_key_rows_follow_the_marks() -> None:
    batch = pa.concat_tables([rows(hours(2, 4), 100, key) for key in ("p-1", "p-2")])
    speed = pa.concat_tables([rows(hours(2, 4), 200, key) for key in ("p-1", "p-2")])
    merged = merge_views(batch, speed, HIGH, "hour", low_water_mark=LOW).to_pylist()
    assert [(r["bucket_start"], r["key"], r["source"]) for r in merged] == [
        (hours(2)[0], "p-1", "speed"),
        (hours(2)[0], "p-2", "speed"),
        (hours(4)[0], "p-1", "batch"),
        (hours(4)[0], "p-2", "batch"),
    ]


@pytest.mark.parametrize(
    ("high", "low", "grain", "expected"),
    [
        (None, None, "hour", None),
        (None, LOW, "hour", None),  # L without W is ignored: no batch run is published
        (HIGH, None, "hour", (None, HIGH)),
        (HIGH, LOW, "hour", (LOW, HIGH)),
        (HIGH, LOW, "minute", (LOW, HIGH)),
        (HIGH, LOW + timedelta(seconds=1), "minute", (LOW + timedelta(minutes=1), HIGH)),
        (HIGH + timedelta(minutes=59), LOW + timedelta(minutes=1), "hour", (LOW + timedelta(hours=1), HIGH)),
        (HIGH, HIGH, "hour", None),  # an empty chain
        (HIGH, LOW, "day", None),  # no whole day lies in [03:00, 07:00)
        (T0 + timedelta(days=2), T0, "day", (T0, T0 + timedelta(days=2))),
    ],
    ids=[
        "no-w",
        "l-without-w",
        "l-unknown",
        "aligned",
        "minute",
        "l-ceiled",
        "both-unaligned",
        "l-equals-w",
        "nothing-fits-a-day",
        "days",
    ],
)
def test_batch_span(
    high: datetime | None, low: datetime | None, grain: str, expected: tuple[datetime | None, datetime] | None
) -> None:
    assert batch_span(high, grain, low) == expected  # type: ignore[arg-type]


def test_l_equal_to_w_serves_everything_from_speed() -> None:
    assert set(merge_views(BATCH, SPEED, HIGH, "hour", low_water_mark=HIGH)["source"].to_pylist()) == {"speed"}


def test_bad_low_marks_are_rejected() -> None:
    with pytest.raises(ValueError, match="low_water_mark must be timezone-aware"):
        merge_views(BATCH, SPEED, HIGH, "hour", low_water_mark=LOW.replace(tzinfo=None))
    with pytest.raises(ValueError, match="low_water_mark must not be after high_water_mark"):
        merge_views(BATCH, SPEED, HIGH, "hour", low_water_mark=HIGH + timedelta(minutes=1))


GRAINS = st.sampled_from(["minute", "hour", "day"])


@st.composite
def marks_and_buckets(draw: st.DrawFn) -> tuple[str, datetime | None, datetime | None, list[datetime]]:
    """A grain, W (or None), L <= W (or None), and bucket starts of that grain around both marks."""
    grain = draw(GRAINS)
    step = GRAIN_STEP[grain]
    seconds = st.integers(min_value=0, max_value=int(20 * step.total_seconds()))
    high = None if draw(st.booleans()) and draw(st.booleans()) else T0 + timedelta(seconds=draw(seconds))
    low = None
    if high is not None and draw(st.booleans()):
        low = T0 + timedelta(seconds=draw(st.integers(0, int((high - T0).total_seconds()))))
    indexes = draw(st.sets(st.integers(min_value=-3, max_value=24), max_size=28))
    return grain, high, low, [T0 + step * i for i in sorted(indexes)]


@settings(max_examples=300, deadline=None)
@given(case=marks_and_buckets(), batch_only=st.sets(st.integers(0, 27)), speed_only=st.sets(st.integers(0, 27)))
def test_every_bucket_comes_from_exactly_one_source_and_batch_only_inside_the_marks(
    case: tuple[str, datetime | None, datetime | None, list[datetime]], batch_only: set[int], speed_only: set[int]
) -> None:
    grain, high, low, starts = case
    step = GRAIN_STEP[grain]
    # some buckets only one layer holds: a missing row must never be replaced by the other layer's
    batch_starts = [s for i, s in enumerate(starts) if i not in speed_only or i in batch_only]
    speed_starts = [s for i, s in enumerate(starts) if i not in batch_only or i in speed_only]
    merged = merge_views(rows(batch_starts, 100), rows(speed_starts, 200), high, grain, low_water_mark=low)  # type: ignore[arg-type]

    def from_batch(start: datetime) -> bool:  # the bucket lies wholly in [L, W)
        return high is not None and (low is None or start >= low) and start + step <= high

    expected = sorted(
        [(s, "batch") for s in batch_starts if from_batch(s)]
        + [(s, "speed") for s in speed_starts if not from_batch(s)]
    )
    assert sources(merged) == expected
    held_by_both = set(batch_starts) & set(speed_starts)
    got = [start for start, _ in sources(merged)]
    assert all(got.count(start) == 1 for start in held_by_both)  # exactly one source, never both, never none
    revenue = {"batch": Decimal("1.00"), "speed": Decimal("2.00")}
    assert all(r["revenue"] == revenue[r["source"]] for r in merged.to_pylist())  # the row is its source's row
