"""UTC-day intervals and the high-water-mark rule (pure Python, no Spark)."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest

from batch_layer.interval import BatchInterval, Coverage, advance_high_water_mark, complete_until, parse_moment

D = datetime(2026, 1, 5, tzinfo=UTC)
DAY = timedelta(days=1)


@pytest.mark.parametrize(
    ("start", "end", "expected"),
    [
        # Airflow's CronDataIntervalTimetable("0 2 * * *"): 02:00 -> 02:00 recomputes the day it started in
        (D + timedelta(hours=2), D + DAY + timedelta(hours=2), (D, D + DAY)),
        (D, D + DAY, (D, D + DAY)),
        (D, D + 3 * DAY, (D, D + 3 * DAY)),
        # a zero-length or sub-day interval still means its whole day
        (D + timedelta(hours=5), D + timedelta(hours=5), (D, D + DAY)),
    ],
)
def test_bounds_snap_to_whole_utc_days(start: datetime, end: datetime, expected: tuple[datetime, datetime]) -> None:
    interval = BatchInterval.from_bounds(start, end)
    assert (interval.start, interval.end) == expected


def test_lookback_widens_the_recomputed_range_only() -> None:
    interval = BatchInterval.for_date(date(2026, 1, 5), lookback_days=2)
    assert (interval.start, interval.end) == (D, D + DAY)
    assert (interval.range_start, interval.range_end) == (D - 2 * DAY, D + DAY)
    assert interval.days == [date(2026, 1, 3), date(2026, 1, 4), date(2026, 1, 5)]
    assert interval.key() == "20260103-20260106"


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"start": D + timedelta(hours=1), "end": D + DAY}, "midnight"),
        ({"start": D, "end": D}, "after start"),
        ({"start": D, "end": D + DAY, "lookback_days": -1}, "lookback_days"),
        ({"start": D.replace(tzinfo=None), "end": D + DAY}, "midnight"),
    ],
)
def test_bad_intervals_are_rejected_with_the_argument_named(kwargs: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        BatchInterval(**kwargs)


def test_parse_moment_reads_dates_zones_and_naive_values_as_utc() -> None:
    assert parse_moment("2026-01-05") == D
    assert parse_moment("2026-01-05T03:00:00+02:00") == D + timedelta(hours=1)
    assert parse_moment("2026-01-05T01:00:00Z") == D + timedelta(hours=1)
    with pytest.raises(ValueError, match="ISO-8601"):
        parse_moment("yesterday")


def test_complete_until_is_bounded_by_interval_end_and_bronze() -> None:
    assert complete_until(D + DAY, D + 2 * DAY) == D + DAY
    assert complete_until(D + DAY, D + timedelta(hours=6)) == D + timedelta(hours=6)
    assert complete_until(D + DAY, None) is None


@pytest.mark.parametrize(
    ("previous", "coverages", "expected"),
    [
        # first run ever: W is what the run made final
        (None, [Coverage(D - DAY, D + DAY)], D + DAY),
        # consecutive day (lookback overlaps W): advances
        (D + DAY, [Coverage(D, D + 2 * DAY)], D + 2 * DAY),
        # a gap before the run's range: W stays
        (D + DAY, [Coverage(D + 2 * DAY, D + 3 * DAY)], D + DAY),
        # the gap filled later: W moves over the gap and the run that succeeded after it
        (D + DAY, [Coverage(D + 2 * DAY, D + 3 * DAY), Coverage(D + DAY, D + 2 * DAY)], D + 3 * DAY),
        # a rerun of an old interval never moves W backwards
        (D + 3 * DAY, [Coverage(D - DAY, D + DAY)], D + 3 * DAY),
        # bronze complete only part of the day (speed watermark): W stops there
        (D, [Coverage(D - DAY, D + timedelta(hours=7))], D + timedelta(hours=7)),
        # nothing made final: W stays (also when there was none)
        (D, [], D),
        (None, [], None),
    ],
)
def test_high_water_mark_advances_only_over_consecutive_validated_ranges(
    previous: datetime | None, coverages: list[Coverage], expected: datetime | None
) -> None:
    assert advance_high_water_mark(previous, coverages) == expected


@pytest.mark.parametrize(
    ("argv", "expected_day"),
    [
        (["--date", "2026-01-05"], date(2026, 1, 5)),
        (["--start", "2026-01-05T02:00:00+00:00", "--end", "2026-01-06T02:00:00+00:00"], date(2026, 1, 5)),
        # an Airflow run triggered with logical_date null renders an empty interval: the day before run_after
        (["--start", "", "--end", "", "--run-after", "2026-01-06 03:01:14.7+00:00"], date(2026, 1, 5)),
        ([], date(2026, 3, 9)),  # default: yesterday
    ],
)
def test_job_arguments_pick_the_utc_day(argv: list[str], expected_day: date) -> None:
    from batch_layer.job import build_parser, interval_from_args
    from contracts.settings import Settings

    args = build_parser().parse_args(argv)
    interval = interval_from_args(args, Settings(_env_file=None), now=datetime(2026, 3, 10, 1, tzinfo=UTC))
    assert interval.start.date() == expected_day
    assert interval.end - interval.start == DAY
