"""Data intervals of the batch layer and the high-water-mark rule (pure Python: no Spark, no clock, no I/O).

The batch layer works on whole UTC days. A data interval ``[start, end)`` (Airflow's ``data_interval_start`` /
``data_interval_end``, or ``--date``) becomes the UTC days from ``start``'s date up to ``end``'s date, so the
nightly 02:00 → 02:00 interval of ``CronDataIntervalTimetable("0 2 * * *")`` recomputes the day it started in
(yesterday). A lookback of N days widens the recomputed range to ``[first day - N, last day + 1)`` so very late
events are repaired.

Example::

    interval = BatchInterval.from_bounds(datetime(2026, 1, 5, 2, tzinfo=UTC), datetime(2026, 1, 6, 2, tzinfo=UTC),
                                         lookback_days=2)
    interval.start, interval.end              # 2026-01-05 00:00, 2026-01-06 00:00 (the days asked for)
    interval.range_start, interval.range_end  # 2026-01-03 00:00, 2026-01-06 00:00 (what is recomputed)
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta

__all__ = ["BatchInterval", "Coverage", "advance_high_water_mark", "complete_until", "floor_day", "parse_moment"]

_DAY = timedelta(days=1)


def parse_moment(text: str) -> datetime:
    """An ISO-8601 date or timestamp as an aware UTC datetime (a value without a zone is read as UTC)."""
    try:
        moment = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    except ValueError as error:
        raise ValueError(f"expected an ISO-8601 date or timestamp, got {text!r}") from error
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def floor_day(moment: datetime) -> datetime:
    """Midnight UTC of the day holding ``moment`` (which must be timezone-aware)."""
    if moment.tzinfo is None:
        raise ValueError(f"moment must be timezone-aware, got the naive {moment!r}")
    return moment.astimezone(UTC).replace(hour=0, minute=0, second=0, microsecond=0)


@dataclass(frozen=True)
class BatchInterval:
    """The UTC days ``[start, end)`` a run is for, and the lookback in days that widens what it recomputes."""

    start: datetime
    end: datetime
    lookback_days: int = 0

    def __post_init__(self) -> None:
        for name in ("start", "end"):
            value = getattr(self, name)
            if value.tzinfo is None or value != floor_day(value):
                raise ValueError(f"{name} must be midnight UTC (timezone-aware), got {value!r}")
        if self.end <= self.start:
            raise ValueError(f"end must be after start, got [{self.start}, {self.end})")
        if self.lookback_days < 0:
            raise ValueError(f"lookback_days must be >= 0, got {self.lookback_days}")

    @classmethod
    def from_bounds(cls, start: datetime, end: datetime, lookback_days: int = 0) -> BatchInterval:
        """Snap any ``[start, end)`` to whole UTC days: ``start``'s day up to ``end``'s day (at least one day)."""
        first = floor_day(start)
        last = floor_day(end)
        return cls(first, max(last, first + _DAY), lookback_days)

    @classmethod
    def for_date(cls, day: date, lookback_days: int = 0) -> BatchInterval:
        """The one UTC day ``day``."""
        first = datetime(day.year, day.month, day.day, tzinfo=UTC)
        return cls(first, first + _DAY, lookback_days)

    @property
    def range_start(self) -> datetime:
        """First moment recomputed: the interval start minus the lookback."""
        return self.start - self.lookback_days * _DAY

    @property
    def range_end(self) -> datetime:
        return self.end

    @property
    def days(self) -> list[date]:
        """Every UTC date in ``[range_start, range_end)`` (bronze partitions to read)."""
        count = (self.range_end - self.range_start) // _DAY
        return [(self.range_start + offset * _DAY).date() for offset in range(count)]

    def key(self) -> str:
        """A short readable name of the recomputed range, e.g. ``20260103-20260106``."""
        return f"{self.range_start:%Y%m%d}-{self.range_end:%Y%m%d}"


@dataclass(frozen=True)
class Coverage:
    """What one successful run validated: views are final in ``[start, until)``."""

    start: datetime
    until: datetime


def complete_until(interval_end: datetime, bronze_complete: datetime | None) -> datetime | None:
    """How far one run's views are final: min(end of its interval, the time up to which bronze is complete).

    ``bronze_complete`` None means nobody can say bronze is complete anywhere (the speed layer runs but has no
    watermark yet): the run then makes nothing final.
    """
    if bronze_complete is None:
        return None
    return min(interval_end, bronze_complete)


def advance_high_water_mark(previous: datetime | None, coverages: Iterable[Coverage]) -> datetime | None:
    """The new high-water mark W from the previous one and the coverage of every successful run (this one too).

    W only moves forward, and only over consecutive validated ranges: starting at ``previous``, it jumps to the
    end of any coverage that begins at or before it, until no coverage extends it further. So a gap (an
    interval that was never validated) stops it, and a backfill that fills the gap later lets it move on over
    the runs that succeeded after the gap. With no previous W, the earliest coverage starts the chain.
    """
    spans = sorted((c for c in coverages if c.until > c.start), key=lambda c: (c.start, c.until))
    if not spans:
        return previous
    mark = previous if previous is not None else spans[0].start
    moved = True
    while moved:
        moved = False
        for span in spans:
            if span.start <= mark < span.until:
                mark = span.until
                moved = True
    if previous is not None and mark < previous:
        return previous
    return mark if (previous is not None or mark > spans[0].start) else previous
