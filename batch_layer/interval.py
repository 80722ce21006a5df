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

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta

__all__ = [
    "BatchInterval",
    "Coverage",
    "Marks",
    "RunRecord",
    "SpeedProgress",
    "advance_high_water_mark",
    "advance_marks",
    "bronze_complete_until",
    "complete_until",
    "failure_row_id",
    "floor_day",
    "next_marks",
    "parse_duration",
    "parse_moment",
    "served_marks",
]

_DAY = timedelta(days=1)


def parse_moment(text: str) -> datetime:
    """An ISO-8601 date or timestamp as an aware UTC datetime (a value without a zone is read as UTC)."""
    try:
        moment = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    except ValueError as error:
        raise ValueError(f"expected an ISO-8601 date or timestamp, got {text!r}") from error
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


_UNITS = {"microsecond": 1e-6, "millisecond": 1e-3, "second": 1.0, "minute": 60.0, "hour": 3600.0, "day": 86400.0}


def parse_duration(text: str) -> timedelta:
    """A Spark-style duration such as ``"5 minutes"`` or ``"10 seconds"`` (the speed layer's settings)."""
    match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([a-z]+?)s?\s*", text.lower())
    if not match or match.group(2) not in _UNITS:
        raise ValueError(f"expected a duration such as '5 minutes', got {text!r}")
    return timedelta(seconds=float(match.group(1)) * _UNITS[match.group(2)])


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


@dataclass(frozen=True)
class Marks:
    """What the batch layer publishes: batch rows are served for buckets in ``[low, high)``, speed rows elsewhere.

    ``high`` is the high-water mark W, ``low`` (L) the start of the chain of validated ranges that W closes. Both
    None before the first W; ``low`` None on rows written before L was recorded.
    """

    low: datetime | None = None
    high: datetime | None = None


@dataclass(frozen=True)
class SpeedProgress:
    """What speed/progress says at a run's start.

    ``watermark``: the speed layer's watermark (each stateful query's newest, the smallest of those);
    ``bronze_caught_up_at``: the trigger time of the newest committed bronze micro-batch that read everything Kafka
    held (offsets behind latest = 0). Rows with batch_id -1 (heartbeats, errors) count for neither.
    """

    exists: bool
    watermark: datetime | None = None
    bronze_caught_up_at: datetime | None = None


@dataclass(frozen=True)
class RunRecord:
    """One row of batch/runs as the high-water-mark rule needs it."""

    run_id: str
    succeeded: bool
    coverage: Coverage | None = None
    marks: Marks = Marks()
    finished_at: datetime | None = None


def bronze_complete_until(
    progress: SpeedProgress, attempt_started_at: datetime, lateness: timedelta
) -> datetime | None:
    """The time up to which bronze holds every event that is not late, measured by bronze's own commits.

    - No speed/progress table: nothing streams into bronze (a backfill or a test wrote it), so it is complete up to
      the attempt's start.
    - Otherwise: ``min(speed watermark, bronze caught up at - lateness)``. A bronze batch triggered at T that read
      everything Kafka held has written every record that arrived before T; an event that is not late (it arrives
      at most ``lateness``, the speed watermark delay, after its event time) with an event time before
      T - lateness arrived before T. Later arrivals are late by the speed layer's own rule and are repaired by the
      lookback of later runs. Never beyond the speed watermark. Without a watermark or a caught-up bronze batch
      nothing is known to be complete: None.
    """
    if not progress.exists:
        return attempt_started_at
    if progress.watermark is None or progress.bronze_caught_up_at is None:
        return None
    return min(progress.watermark, progress.bronze_caught_up_at - lateness)


def complete_until(interval_end: datetime, bronze_complete: datetime | None) -> datetime | None:
    """How far one run's views are final: min(end of its interval, the time up to which bronze is complete).

    ``bronze_complete`` None means nobody can say bronze is complete anywhere (the speed layer runs but has no
    watermark yet): the run then makes nothing final.
    """
    if bronze_complete is None:
        return None
    return min(interval_end, bronze_complete)


def _spans(coverages: Iterable[Coverage]) -> list[Coverage]:
    return sorted((c for c in coverages if c.until > c.start), key=lambda c: (c.start, c.until))


def advance_high_water_mark(previous: datetime | None, coverages: Iterable[Coverage]) -> datetime | None:
    """The new high-water mark W from the previous one and the coverage of every successful run (this one too).

    W only moves forward, and only over consecutive validated ranges: starting at ``previous``, it jumps to the
    end of any coverage that begins at or before it, until no coverage extends it further. So a gap (an
    interval that was never validated) stops it, and a backfill that fills the gap later lets it move on over
    the runs that succeeded after the gap. With no previous W, the earliest coverage starts the chain.
    """
    spans = _spans(coverages)
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


def _extend_back(mark: datetime, spans: Sequence[Coverage]) -> datetime:
    moved = True
    while moved:
        moved = False
        for span in spans:
            if span.start < mark <= span.until:
                mark = span.start
                moved = True
    return mark


def advance_marks(previous: Marks, coverages: Iterable[Coverage]) -> Marks:
    """The new (L, W) from the published ones and the coverage of every successful run (this one too).

    W moves as ``advance_high_water_mark`` says (never backwards). L is where the chain of validated ranges that
    reaches W starts: the first W's chain starts at its earliest coverage; afterwards L only moves backwards, when a
    backfill validates a range that touches it. A row published before L existed (``low`` None) gets the start of
    the chain that ends at its W.
    """
    spans = _spans(coverages)
    high = advance_high_water_mark(previous.high, spans)
    if high is None:
        return previous
    if previous.high is None:
        low = spans[0].start
    else:
        low = previous.low if previous.low is not None else _extend_back(previous.high, spans)
    low = min(low, _extend_back(low, spans))
    return Marks(low=min(low, high), high=high)


def served_marks(records: Iterable[RunRecord]) -> tuple[RunRecord | None, Marks]:
    """The published state: the succeeded run with the largest W (ties: the one that finished last) and its marks.

    This is the row whose view versions serving reads; W never moves backwards, so it is also the newest publish.
    """
    best: RunRecord | None = None
    for record in records:
        if not record.succeeded or record.marks.high is None:
            continue
        if best is None or (record.marks.high, _finish(record)) > (best.marks.high, _finish(best)):  # type: ignore[operator]
            best = record
    if best is None:
        return None, Marks()
    return best, best.marks


def next_marks(records: Sequence[RunRecord], run_id: str, own: Coverage | None) -> tuple[Marks, Marks, Coverage | None]:
    """What publish records for run ``run_id`` with coverage ``own``: (published marks now, marks after this
    publish, the coverage to record with the run).

    A rerun under the same id (Airflow's "Clear") replaces the run's earlier row. Bronze only grows, so what that
    row found complete still is: the recorded coverage is the longer of the two, and no validated moment drops out
    of the chain. The published marks never move back.
    """
    _best, previous = served_marks(records)
    for record in records:
        if record.run_id == run_id and record.succeeded and record.coverage is not None:
            if own is None or own.start != record.coverage.start:
                own = record.coverage if own is None else own
            else:
                own = Coverage(own.start, max(own.until, record.coverage.until))
    coverages = [own] if own is not None else []
    coverages += [r.coverage for r in records if r.succeeded and r.run_id != run_id and r.coverage is not None]
    return previous, advance_marks(previous, coverages), own


def _finish(record: RunRecord) -> datetime:
    return record.finished_at or datetime.min.replace(tzinfo=UTC)


def failure_row_id(records: Iterable[RunRecord], run_id: str, failed_at: datetime) -> str:
    """The batch/runs row a failed attempt is recorded under.

    A run id that has never succeeded keeps one row (a retry replaces its failed row). A run id that succeeded
    before (Airflow's "Clear" reruns a run under the same id) keeps its succeeded row, W and view versions: the
    failed attempt gets a row of its own, ``<run_id>#failed@<time>``, so a failed run changes nothing.
    """
    if any(record.run_id == run_id and record.succeeded for record in records):
        return f"{run_id}#failed@{failed_at.astimezone(UTC):%Y%m%dT%H%M%S%f}"
    return run_id
