"""The high-water mark's invariants as properties over arbitrary histories of runs (hypothesis, pure Python).

The runs table is modelled as the job uses it: a failed attempt is recorded under ``failure_row_id``, a publish
replaces the run's own row with the marks of ``next_marks`` (the functions the job calls), a crash inside publish
leaves new view versions behind but no row. Histories mix nightly runs, reruns of the same run id (Airflow's
"Clear"), backfills of older days, failures at every step, and bronze known complete only part of the way.

Invariants checked after every operation:
- W never moves backwards; the served view versions never go back.
- a failed or crashed attempt changes nothing that is served (row, W, L, versions).
- L never moves forward, L <= W, and every moment of [L, W) is covered by a validated run's coverage.
- W never passes what some validated run found complete in bronze.

And for bronze completeness: with bronze micro-batches that are sometimes behind (a backlog after downtime),
every event that is not late and whose event time lies before ``bronze_complete_until`` is in bronze already.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from hypothesis import given, settings
from hypothesis import strategies as st

from batch_layer.interval import (
    BatchInterval,
    Coverage,
    Marks,
    RunRecord,
    SpeedProgress,
    bronze_complete_until,
    complete_until,
    failure_row_id,
    next_marks,
    served_marks,
)

START = datetime(2026, 1, 1, tzinfo=UTC)
DAY = timedelta(days=1)
OUTCOMES = ("succeed", "succeed", "succeed", "fail_input", "fail_views", "crash_in_publish")


@dataclass
class RunsTable:
    """batch/runs and the view tables, as far as W is concerned."""

    rows: dict[str, RunRecord] = field(default_factory=dict)
    versions: dict[str, int] = field(default_factory=dict)  # view version recorded with each succeeded row
    view_version: int = 0  # the view tables' newest version (published or not)
    clock: datetime = START + 400 * DAY
    bronze_complete: dict[str, datetime | None] = field(default_factory=dict)

    def served(self) -> tuple[str | None, Marks, int | None]:
        best, marks = served_marks(self.rows.values())
        return (best.run_id if best else None), marks, (self.versions.get(best.run_id) if best else None)

    def attempt(self, run_id: str, day: int, lookback: int, bronze_hours: int | None, outcome: str) -> None:
        self.clock += timedelta(minutes=7)
        interval = BatchInterval(START + day * DAY, START + (day + 1) * DAY, lookback)
        if outcome in ("fail_input", "fail_views"):
            row_id = failure_row_id(list(self.rows.values()), run_id, self.clock)
            self.rows[row_id] = RunRecord(row_id, succeeded=False, finished_at=self.clock)
            return
        self.view_version += 3  # publish replaced the three views first
        if outcome == "crash_in_publish":
            return  # SIGKILL before batch/runs was written
        bronze = None if bronze_hours is None else interval.end + timedelta(hours=bronze_hours)
        until = complete_until(interval.range_end, bronze)
        own = Coverage(interval.range_start, until) if until is not None else None
        _previous, marks, own = next_marks(list(self.rows.values()), run_id, own)
        self.rows[run_id] = RunRecord(run_id, succeeded=True, coverage=own, marks=marks, finished_at=self.clock)
        self.versions[run_id] = self.view_version
        known = [b for b in (bronze, self.bronze_complete.get(run_id)) if b is not None]
        self.bronze_complete[run_id] = max(known) if known else None  # bronze only grows


@st.composite
def operations(draw):  # type: ignore[no-untyped-def]
    """Attempts of a few run ids; a run id names one interval (Airflow's run id and data interval), so reruns
    under the same id recompute the same days. Days come in any order: nightly, backfills, gaps."""
    intervals = draw(
        st.lists(
            st.tuples(st.integers(min_value=0, max_value=12), st.integers(min_value=0, max_value=2)),
            min_size=1,
            max_size=6,
        )
    )
    attempts = draw(
        st.lists(
            st.tuples(
                st.integers(min_value=0, max_value=len(intervals) - 1),
                # bronze complete relative to the end of the day (None: speed/progress says nothing yet)
                st.one_of(st.none(), st.integers(min_value=-40, max_value=30)),
                st.sampled_from(OUTCOMES),
            ),
            min_size=1,
            max_size=40,
        )
    )
    return [(f"run-{n}", *intervals[n], bronze, outcome) for n, bronze, outcome in attempts]


def _covered(low: datetime, high: datetime, coverages: list[Coverage]) -> bool:
    point = low
    while point < high:
        reach = [c.until for c in coverages if c.start <= point < c.until]
        if not reach:
            return False
        point = max(reach)
    return True


@settings(max_examples=400, deadline=None)
@given(operations())
def test_w_never_moves_back_failures_change_nothing_and_l_w_stay_validated(history) -> None:  # type: ignore[no-untyped-def]
    table = RunsTable()
    first_w_seen = False
    for run_id, day, lookback, bronze_hours, outcome in history:
        before_id, before, before_version = table.served()
        table.attempt(run_id, day, lookback, bronze_hours, outcome)
        after_id, after, after_version = table.served()
        if outcome != "succeed":
            assert (after_id, after, after_version) == (before_id, before, before_version), outcome
            continue
        if before.high is not None:
            assert after.high is not None and after.high >= before.high, "W moved backwards"
            assert after_version is not None and before_version is not None and after_version >= before_version
            assert after.low is not None and before.low is not None and after.low <= before.low, "L moved forward"
        if after.high is None:
            continue
        assert after.low is not None and after.low <= after.high
        coverages = [row.coverage for row in table.rows.values() if row.succeeded and row.coverage is not None]
        assert _covered(after.low, after.high, coverages), "[L, W) holds a moment no validated run covered"
        complete = [b for b in table.bronze_complete.values() if b is not None]
        assert complete and after.high <= max(complete), "W passed what bronze was found complete up to"
        if not first_w_seen:
            first_w_seen = True
            # the first W starts its chain where its validated coverage starts: nothing before it is claimed
            assert after.low == min(c.start for c in coverages if c.start <= after.low < c.until)


def test_a_failed_rerun_of_a_succeeded_run_keeps_its_row_w_and_versions() -> None:
    table = RunsTable()
    table.attempt("scheduled__d5", day=5, lookback=2, bronze_hours=3, outcome="succeed")
    served = table.served()
    table.attempt("scheduled__d5", day=5, lookback=2, bronze_hours=3, outcome="fail_views")  # "Clear", then fails
    assert table.served() == served
    assert table.rows["scheduled__d5"].succeeded
    assert [row_id for row_id in table.rows if row_id.startswith("scheduled__d5#failed@")]
    table.attempt("scheduled__d5", day=5, lookback=2, bronze_hours=3, outcome="succeed")  # and then succeeds
    assert table.served()[1].high == served[1].high and table.served()[2] > served[2]


def test_the_first_w_starts_l_at_its_range_so_older_speed_rows_stay_served() -> None:
    table = RunsTable()
    table.attempt("first", day=10, lookback=2, bronze_hours=1, outcome="succeed")
    _id, marks, _version = table.served()
    assert (marks.low, marks.high) == (START + 8 * DAY, START + 11 * DAY)
    # a backfill that touches L moves it back; one behind a gap does not
    table.attempt("gap", day=5, lookback=0, bronze_hours=1, outcome="succeed")
    assert table.served()[1].low == START + 8 * DAY
    table.attempt("touching", day=7, lookback=1, bronze_hours=1, outcome="succeed")
    assert table.served()[1] == Marks(low=START + 5 * DAY, high=START + 11 * DAY)


# --- bronze completeness measured by bronze's own commits ---------------------------------------------------
LATENESS = timedelta(minutes=5)


@st.composite
def streams(draw):  # type: ignore[no-untyped-def]
    """Events (event time, arrival) and bronze micro-batches (trigger time, caught up or behind)."""
    count = draw(st.integers(min_value=1, max_value=60))
    events = []
    for _ in range(count):
        event_time = START + timedelta(seconds=draw(st.integers(min_value=0, max_value=7200)))
        late = draw(st.booleans()) and draw(st.booleans())
        delay = draw(st.integers(min_value=301, max_value=3600)) if late else draw(st.integers(0, 300))
        events.append((event_time, event_time + timedelta(seconds=delay)))
    triggers = sorted(
        {
            START + timedelta(seconds=draw(st.integers(min_value=0, max_value=9000)))
            for _ in range(draw(st.integers(1, 30)))
        }
    )
    batches = []
    read_up_to = START - DAY  # bronze holds every record that arrived up to here
    for trigger in triggers:
        caught_up = draw(st.booleans())
        if caught_up:
            read_up_to = trigger
        else:  # a backlog: this batch reads only part of what waits (never less than before)
            lag = timedelta(seconds=draw(st.integers(min_value=1, max_value=3600)))
            read_up_to = max(read_up_to, trigger - lag)
        batches.append((trigger, caught_up, read_up_to))
    run_at = START + timedelta(seconds=draw(st.integers(min_value=0, max_value=10000)))
    return events, batches, run_at


@settings(max_examples=500, deadline=None)
@given(streams())
def test_every_event_before_bronze_complete_until_that_is_not_late_is_in_bronze(stream) -> None:  # type: ignore[no-untyped-def]
    events, batches, run_at = stream
    committed = [(trigger, caught_up, read_up_to) for trigger, caught_up, read_up_to in batches if trigger <= run_at]
    in_bronze_up_to = max((read for _, _, read in committed), default=START - DAY)
    # the speed layer's watermark: what it has seen (up to the run) minus the lateness it allows
    seen = [event_time for event_time, arrival in events if arrival <= run_at]
    watermark = max(seen) - LATENESS if seen else None
    caught_up_at = max((trigger for trigger, caught_up, _ in committed if caught_up), default=None)
    progress = SpeedProgress(exists=True, watermark=watermark, bronze_caught_up_at=caught_up_at)
    complete = bronze_complete_until(progress, run_at, LATENESS)
    if complete is None:
        assert watermark is None or caught_up_at is None
        return
    for event_time, arrival in events:
        on_time = arrival - event_time <= LATENESS
        if on_time and event_time < complete:
            assert arrival <= in_bronze_up_to, (event_time, arrival, complete, in_bronze_up_to)


def test_without_speed_progress_bronze_counts_as_complete_up_to_the_attempt() -> None:
    at = START + timedelta(hours=3)
    assert bronze_complete_until(SpeedProgress(exists=False), at, LATENESS) == at
    assert bronze_complete_until(SpeedProgress(exists=True, watermark=at), at, LATENESS) is None
    caught_up = SpeedProgress(exists=True, watermark=at, bronze_caught_up_at=at - timedelta(hours=1))
    assert bronze_complete_until(caught_up, at, LATENESS) == at - timedelta(hours=1) - LATENESS
