"""The batch job: recompute exact sales views for a data interval from bronze, validate them, publish W.

Steps (each idempotent, so an Airflow retry or a backfill of the same interval is safe):

  validate-input  Great Expectations suite on the interval's bronze rows (one aggregate Spark job); records what
                  speed/progress says at the attempt's start (speed watermark, bronze caught up) and pins
                  bronze's version: recompute and the reconciliation read that same snapshot
  recompute       deduplicate bronze by event_id over the range's partitions (duplicates share their event
                  time), roll up minute/hour/day views with distinct users computed once, stage them (one Delta
                  table, overwritten per attempt)
  validate-views  view suite + reconciliation of the staged views with totals computed from bronze by a second
                  engine (delta-rs + pyarrow, deduplicated on its own): every difference zero
  publish         replace exactly the interval's buckets in batch/sales_* (replaceWhere) with the staged views at
                  the version validate-views checked, then write the run's row into batch/runs with the new view
                  versions and the advanced marks (W, and L where the validated chain starts)
  maintain        OPTIMIZE / VACUUM only the tables that have work (closed bronze partitions, speed tables),
                  never altering a table
  all             every step above in one Spark session (what ``retail batch`` / ``make batch`` runs)

A failed suite writes its report (JSON under ``<lake>/batch/reports/<run>/``), records a failed row in
batch/runs with the report (its own row when the run id had succeeded before, so that row, W and the served
versions stay), and exits 1: nothing is published and W stays where it was.

Every step runs under a Spark job group; the job prints, per step, its wall time, the Spark jobs it ran and
their durations (``batch_layer.profiling``) and keeps them in ``<lake>/batch/reports/<run>/profile.json``.

Usage::

    retail batch --date 2026-01-05                              # one UTC day, all steps
    spark-submit ... batch_layer/job.py --start 2026-01-05T02:00:00+00:00 --end 2026-01-06T02:00:00+00:00 \\
        --run-id scheduled__2026-01-05 --step recompute          # what the Airflow DAG runs per task
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from pyspark.sql import SparkSession

from batch_layer.arguments import STEPS, add_arguments
from batch_layer.errors import BatchError, ValidationFailed
from batch_layer.interval import (
    BatchInterval,
    Coverage,
    SpeedProgress,
    bronze_complete_until,
    complete_until,
    failure_row_id,
    next_marks,
    parse_duration,
    parse_moment,
)
from batch_layer.lease import LEASE_TABLE, Lease
from batch_layer.profiling import SparkProfile
from batch_layer.store import STATUS_FAILED, STATUS_SUCCEEDED, VIEW_TABLES, BatchStore, RunRow
from contracts.settings import Settings
from contracts.storage import delta_rs_location
from contracts.tables import Lake

__all__ = ["STEPS", "CRASH_ENV", "BatchRun", "run_steps", "main", "build_parser"]

# test-only: "<step>:<point>" makes the job SIGKILL its process group (driver + JVM) at that point, e.g.
# "publish:minute" right after the minute view was replaced and before batch/runs is written
CRASH_ENV = "RETAIL_BATCH_CRASH_AT"


def _observed(observation: Any, count: Callable[[], int]) -> int:
    """The row count an ``Observation`` collected, or ``count()`` when it collected nothing: a range without any
    bronze file is planned as an empty relation, the observing operator never runs and ``get`` fails."""
    try:
        return int(observation.get["rows"] or 0)
    except Exception:  # noqa: BLE001 - py4j surfaces it as a bare java.lang.AssertionError
        return count()


def _maybe_crash(step: str, point: str) -> None:
    if os.environ.get(CRASH_ENV) != f"{step}:{point}":
        return
    print(f"[batch] {CRASH_ENV}={step}:{point}: killing the job now", file=sys.stderr, flush=True)
    if os.getpgid(0) == os.getpid():
        os.killpg(0, signal.SIGKILL)  # the driver and its JVM (spark-submit's child), like an OOM kill
    os.kill(os.getpid(), signal.SIGKILL)


@dataclass
class BatchRun:
    """One run of the batch job: its id, interval, settings, session and clock.

    ``dedup_guard_days`` widens the partitions deduplication looks at (0: the range's own, exact when a duplicate
    carries its event's event_time, which the contract says it does). ``lease_wait_seconds``: how long a step waits
    for the lake's batch lease when another run holds it (0: fail at once with LeaseHeld).
    """

    run_id: str
    interval: BatchInterval
    settings: Settings
    spark: SparkSession
    clock: Callable[[], datetime] = lambda: datetime.now(UTC)
    profile: Any = None
    dedup_guard_days: int = 0
    lease_wait_seconds: float = 0.0
    _lease_token: int | None = field(default=None, init=False, repr=False)
    _lease_check: Callable[[], None] | None = field(default=None, init=False, repr=False)

    def __post_init__(self) -> None:
        if self.profile is None:
            self.profile = SparkProfile(self.spark)

    @property
    def lease(self) -> Lease:
        """The lake's batch lease (wall-clock time, whatever ``clock`` says: it times real processes)."""
        uri, options = delta_rs_location(self.store.lake.table(LEASE_TABLE), self.settings)
        return Lease(uri, options, seconds=self.settings.batch_lease_seconds)

    def _check_lease(self) -> None:
        """Raise LeaseLost when the step runs under a lease that another run has taken since (run_steps' steps;
        a step method called on its own runs without the lease)."""
        if self._lease_check is not None:
            self._lease_check()

    @contextmanager
    def leased(self, step: str) -> Iterator[None]:
        """Run one step under the lake's batch lease: one batch run at a time, whoever started it.

        validate-input and maintain take the lease (waiting up to ``lease_wait_seconds``); the steps between hold
        it with the token validate-input recorded in state.json (LeaseLost if another run took it since). The
        lease is renewed while the step runs, released after publish and maintain and when a suite fails; a step
        that crashes keeps it until it expires (the same run id takes it back at once: an Airflow retry).
        """
        lease = self.lease
        token = self._lease_token
        if token is None and step not in ("validate-input", "maintain"):
            token = (self.store.read_json(self.run_id, "state.json") or {}).get("lease_token")
        if token is None or step in ("validate-input", "maintain"):
            token = lease.acquire(self.run_id, self.lease_wait_seconds)
        else:
            token = lease.hold(self.run_id, int(token))
        self._lease_token = token
        release = step in ("publish", "maintain")
        try:
            with lease.kept(self.run_id, token) as check:
                self._lease_check = check
                yield
        except ValidationFailed:
            release = True
            raise
        finally:
            self._lease_check = None
            if release:
                lease.release(self.run_id, token)
                self._lease_token = None

    @property
    def store(self) -> BatchStore:
        return BatchStore(self.spark, Lake(self.settings.lake_root, self.settings.checkpoint_root), self.settings)

    def _state(self) -> dict[str, Any]:
        state = self.store.read_json(self.run_id, "state.json")
        if state is None:
            raise BatchError(f"run {self.run_id!r} has no state.json: run the validate-input step first")
        return state

    def _check_run_id(self) -> None:
        """A run id names one recomputed range (Airflow's run id and data interval): reusing it for another range
        would replace the row that records what the first one validated."""
        for row in self.store.run_rows():
            if row["run_id"] != self.run_id:
                continue
            if (row["interval_start"], row["interval_end"]) != (self.interval.range_start, self.interval.range_end):
                raise BatchError(
                    f"run id {self.run_id!r} was used for [{row['interval_start']:%Y-%m-%d}, "
                    f"{row['interval_end']:%Y-%m-%d}), not [{self.interval.range_start:%Y-%m-%d}, "
                    f"{self.interval.range_end:%Y-%m-%d}): give this range a run id of its own"
                )

    def _fail(self, suite_report: dict[str, Any], message: str, started_at: datetime) -> str:
        """Record a failed attempt; never touches a succeeded row of this run id (nor W, nor the views)."""
        store = self.store
        now = self.clock()
        row_id = failure_row_id(store.run_records(), self.run_id, now)
        store.upsert_run(
            RunRow(
                run_id=row_id,
                interval_start=self.interval.range_start,
                interval_end=self.interval.range_end,
                status=STATUS_FAILED,
                message=message[:2000],
                started_at=started_at,
                finished_at=now,
                validation_report=json.dumps({**suite_report, "run_id": self.run_id}, default=str),
            )
        )
        return row_id

    # --- steps ----------------------------------------------------------------------------------
    def validate_input(self) -> dict[str, Any]:
        from batch_layer.quality import validate_bronze
        from batch_layer.transforms import bronze_checks, in_partitions

        store, profile = self.store, self.profile
        now = self.clock()
        self._check_run_id()
        with profile.part("speed progress"):
            previous_state = store.read_json(self.run_id, "state.json") or {}
            progress = store.speed_progress()
            # pinned after the progress is read, so the snapshot holds all that progress promises: every step of
            # the run reads this one version while the speed layer keeps appending (late events of the interval)
            bronze_version = store.bronze_version()
        lateness = parse_duration(self.settings.speed_watermark)
        state = {
            "run_id": self.run_id,
            "interval_start": self.interval.start,
            "interval_end": self.interval.end,
            "range_start": self.interval.range_start,
            "range_end": self.interval.range_end,
            "started_at": previous_state.get("started_at", now.isoformat()),
            "attempt_started_at": now.isoformat(),
            "speed_progress_exists": progress.exists,
            "speed_watermark": progress.watermark,
            "bronze_caught_up_at": progress.bronze_caught_up_at,
            "lateness_seconds": lateness.total_seconds(),
            "bronze_complete_until": bronze_complete_until(progress, now, lateness),
            "bronze_version": bronze_version,
            "lease_token": self._lease_token,
        }
        store.write_json(self.run_id, "state.json", state)
        with profile.part("input suite"):
            rows = in_partitions(store.bronze(bronze_version), self.interval.range_start, self.interval.range_end)
            checks = bronze_checks(rows, now, self.settings.batch_future_tolerance_seconds)
            report = validate_bronze(checks, self.settings.batch_gx_pandas_max_rows)
        uri = store.write_json(
            self.run_id,
            "validate_input.json",
            {"summary": report.summary(), "result": report.full},
        )
        if not report.success:
            self._fail(
                {"input": report.summary(), "report_uri": uri},
                f"input validation failed: {report.failed_names()}",
                parse_moment(str(state["started_at"])),
            )
            raise ValidationFailed(report.suite, uri, report.failed_names())
        return {"validate_input": report.summary(), "report_uri": uri}

    def recompute(self) -> dict[str, Any]:
        from pyspark.sql import Observation
        from pyspark.sql import functions as F

        from batch_layer.transforms import DEDUP_COLUMNS, build_views, candidate_rows, first_copies

        store, profile = self.store, self.profile
        start, end = self.interval.range_start, self.interval.range_end
        computed_at = self.clock()
        state = store.read_json(self.run_id, "state.json") or {}
        # the snapshot validate-input checked (a recompute run on its own pins the newest one)
        bronze_version = state["bronze_version"] if "bronze_version" in state else store.bronze_version()
        with profile.part("dedup + views + staging write"):
            # the counts are observed while the views are written: no extra pass over bronze or the events
            read, kept = Observation("bronze_rows"), Observation("deduplicated_rows")
            in_range = (F.col("event_time") >= F.lit(start)) & (F.col("event_time") < F.lit(end))
            candidates = (
                candidate_rows(store.bronze(bronze_version), start, end, self.dedup_guard_days)
                .select(*DEDUP_COLUMNS)
                .observe(read, F.count(F.when(in_range, 1)).alias("rows"))
            )
            events = first_copies(candidates, start, end).observe(kept, F.count(F.lit(1)).alias("rows"))
            version = store.write_staging(self.run_id, build_views(events, self.run_id, computed_at))
            metrics = {
                "bronze_rows": _observed(read, lambda: candidates.where(in_range).count()),
                "deduplicated_rows": _observed(kept, events.count),
            }
        view_rows = store.staged_rows(self.run_id, version)
        counts = {
            "bronze_rows": int(metrics.get("bronze_rows") or 0),
            "deduplicated_rows": int(metrics.get("deduplicated_rows") or 0),
            "view_rows": {grain: view_rows.get(grain, 0) for grain in VIEW_TABLES},
            "staging_version": version,
            "bronze_version": bronze_version,
            "dedup_guard_days": self.dedup_guard_days,
        }
        store.write_json(self.run_id, "recompute.json", counts)
        return {"recompute": counts}

    def validate_views(self) -> dict[str, Any]:
        from batch_layer.quality import validate_reconciliation, validate_views
        from batch_layer.reconcile import reconcile
        from batch_layer.transforms import view_checks

        store, profile = self.store, self.profile
        if not store.staging_exists(self.run_id):
            raise BatchError(f"run {self.run_id!r} has no staged views: run the recompute step first")
        version = store.latest_version(store.staging_uri(self.run_id))
        limit = self.settings.batch_gx_pandas_max_rows
        with profile.part("view suite"):
            views_report = validate_views(view_checks(store.read_staging(self.run_id, version)), limit)
        with profile.part("reconciliation (delta-rs + pyarrow)"):
            start, end = self.interval.range_start, self.interval.range_end
            # bronze as the recompute read it: rows appended since (late events) are the next run's business
            bronze_version = (store.read_json(self.run_id, "recompute.json") or {}).get("bronze_version")
            diff, independent = reconcile(
                store, self.run_id, version, start, end, self.dedup_guard_days, bronze_version=bronze_version
            )
            reconciliation = validate_reconciliation(diff, limit)
        reports = [views_report, reconciliation]
        success = all(report.success for report in reports)
        uri = store.write_json(
            self.run_id,
            "validate_views.json",
            {
                "success": success,
                "staging_version": version,
                "view_rows": store.staged_rows(self.run_id, version),
                "independent": independent,
                "summaries": [r.summary() for r in reports],
                "results": [r.full for r in reports],
            },
        )
        if not success:
            failed = [name for report in reports for name in report.failed_names()]
            state = self._state()
            self._fail(
                {"views": [r.summary() for r in reports], "report_uri": uri},
                f"view validation failed: {failed}",
                parse_moment(str(state["started_at"])),
            )
            raise ValidationFailed("batch_views", uri, failed)
        return {"validate_views": [r.summary() for r in reports], "report_uri": uri}

    def publish(self) -> dict[str, Any]:
        from pyspark.sql import functions as F

        store, profile = self.store, self.profile
        if not store.staging_exists(self.run_id):
            done = [row for row in store.succeeded_runs() if row["run_id"] == self.run_id]
            if done:
                return {"publish": "already published", "high_water_mark": done[0]["high_water_mark"]}
            raise BatchError(f"run {self.run_id!r} has no staged views: run recompute and validate-views first")
        checked = store.read_json(self.run_id, "validate_views.json")
        if not checked or not checked.get("success") or checked.get("staging_version") is None:
            raise BatchError(f"run {self.run_id!r}: the staged views did not pass validate-views; nothing published")
        self._check_run_id()
        state = self._state()
        counts = store.read_json(self.run_id, "recompute.json") or {}
        input_report = (store.read_json(self.run_id, "validate_input.json") or {}).get("summary")
        start, end = self.interval.range_start, self.interval.range_end
        # exactly what validate-views checked, even if a later recompute overwrote the staging table
        staged = store.read_staging(self.run_id, int(checked["staging_version"]))
        versions = {}
        self._check_lease()  # a run that lost its lease writes nothing: another run may have published since
        with profile.part("replace views"):
            for grain in VIEW_TABLES:
                versions[grain] = store.write_view(grain, staged.where(F.col("grain") == grain), start, end)
                _maybe_crash("publish", grain)
        started_at = parse_moment(str(state["started_at"]))
        bronze_complete = _bronze_complete_from_state(state, self.settings)
        own = complete_until(end, bronze_complete)
        with profile.part("runs row"):
            previous, marks, coverage = next_marks(
                store.run_records(), self.run_id, Coverage(start, own) if own is not None else None
            )
            own = coverage.until if coverage is not None else None
            view_rows = checked.get("view_rows") or counts.get("view_rows") or {}
            report = {
                "input": input_report,
                "views": checked.get("summaries"),
                "high_water_mark": {
                    "previous": previous.high,
                    "previous_low": previous.low,
                    "speed_progress_exists": state["speed_progress_exists"],
                    "speed_watermark_at_start": state.get("speed_watermark"),
                    "bronze_caught_up_at": state.get("bronze_caught_up_at"),
                    "bronze_complete_until": bronze_complete,
                    "complete_until": own,
                    "new": marks.high,
                    "low": marks.low,
                },
                "staging_version": checked["staging_version"],
                "lease_token": self._lease_token,
                "report_dir": store.report_uri(self.run_id, ""),
            }
            total_view_rows = sum(int(v) for v in view_rows.values())
            self._check_lease()
            store.upsert_run(
                RunRow(
                    run_id=self.run_id,
                    interval_start=start,
                    interval_end=end,
                    status=STATUS_SUCCEEDED,
                    message=(
                        f"recomputed [{start:%Y-%m-%d}, {end:%Y-%m-%d}): {counts.get('bronze_rows')} bronze rows, "
                        f"{counts.get('deduplicated_rows')} events, {total_view_rows} view rows; "
                        f"W={_iso(marks.high)} L={_iso(marks.low)}"
                    ),
                    started_at=started_at,
                    finished_at=self.clock(),
                    bronze_rows=counts.get("bronze_rows"),
                    deduplicated_rows=counts.get("deduplicated_rows"),
                    view_rows=total_view_rows,
                    high_water_mark=marks.high,
                    sales_minute_version=versions["minute"],
                    sales_hour_version=versions["hour"],
                    sales_day_version=versions["day"],
                    validation_report=json.dumps(report, default=_iso),
                )
            )
        store.write_json(self.run_id, "publish.json", {"versions": versions, **report})
        store.drop_staging(self.run_id)
        return {"publish": {"versions": versions, "high_water_mark": _iso(marks.high), "low": _iso(marks.low)}}

    def maintain(self) -> dict[str, Any]:
        from batch_layer.maintenance import maintain

        store = self.store
        now = self.clock()
        previous = store.lake_json("maintenance.json").get("tables") or {}
        report = maintain(
            self.spark,
            store.lake,
            today=now.date(),
            closed_after_days=self.settings.bronze_closed_after_days,
            retention_hours=self.settings.vacuum_retention_hours,
            optimize_speed_tables=self.settings.batch_optimize_speed_tables,
            previous=previous,
            now=now,
            settings=self.settings,
        )
        store.write_lake_json("maintenance.json", {"run_id": self.run_id, "tables": report.pop("_state")})
        report["dropped_stale_staging"] = store.drop_stale_staging(self.settings.vacuum_retention_hours, now)
        store.write_json(self.run_id, "maintain.json", report)
        return {"maintain": report}


def _bronze_complete_from_state(state: dict[str, Any], settings: Settings) -> datetime | None:
    if "bronze_complete_until" in state:
        value = state["bronze_complete_until"]
        return parse_moment(str(value)) if value else None
    # a state.json written before bronze's own progress was recorded: the rule of that time
    progress = SpeedProgress(
        exists=bool(state.get("speed_progress_exists")),
        watermark=parse_moment(str(state["speed_watermark"])) if state.get("speed_watermark") else None,
    )
    if not progress.exists:
        return parse_moment(str(state["started_at"]))
    return progress.watermark


def _iso(value: object) -> str | None:
    if value is None:
        return None
    if isinstance(value, datetime):
        return _utc(value).isoformat()
    return str(value)


def _utc(value: datetime) -> datetime:
    return value.astimezone(UTC) if value.tzinfo else value.astimezone().astimezone(UTC)


def run_steps(run: BatchRun, steps: Sequence[str]) -> dict[str, Any]:
    """Run ``steps`` (names from STEPS, in the order given) and return what each reported.

    Each step is profiled (``batch_layer.profiling``): its wall time, Spark jobs and parts are printed and kept in
    ``<lake>/batch/reports/<run>/profile.json`` (one entry per step, the newest attempt).
    """
    unknown = [step for step in steps if step not in STEPS]
    if unknown:
        raise ValueError(f"steps must be among {STEPS}, got {unknown}")
    results: dict[str, Any] = {}
    for step in steps:
        began = time.monotonic()
        try:
            with run.leased(step), run.profile.step(step):
                results.update(getattr(run, step.replace("-", "_"))())
        finally:
            summary = run.profile.step_report(step) or {}
            print(f"[batch {run.run_id}] {step} done in {time.monotonic() - began:.1f}s", flush=True)
            print(f"[batch {run.run_id}] profile {step}: {json.dumps(summary)}", flush=True)
            _keep_profile(run, step, summary)
    return results


def _keep_profile(run: BatchRun, step: str, summary: dict[str, Any]) -> None:
    try:
        store = run.store
        profiles = store.read_json(run.run_id, "profile.json") or {}
        profiles[step] = summary
        store.write_json(run.run_id, "profile.json", profiles)
    except Exception as error:  # noqa: BLE001 - a profile is diagnostics: it never fails a step
        print(f"[batch {run.run_id}] could not keep the profile of {step}: {error}", file=sys.stderr, flush=True)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="retail batch", description="Recompute exact batch views for an interval.")
    add_arguments(parser)
    return parser


def interval_from_args(args: argparse.Namespace, settings: Settings, now: datetime) -> BatchInterval:
    lookback = settings.batch_lookback_days if args.lookback_days is None else args.lookback_days
    # Airflow renders a missing data interval (a run triggered with logical_date null) as an empty string
    args.start, args.end = (args.start or None), (args.end or None)
    if args.date and (args.start or args.end):
        raise ValueError("give either --date or --start/--end, not both")
    if args.start or args.end:
        if not (args.start and args.end):
            raise ValueError("--start and --end go together")
        return BatchInterval.from_bounds(parse_moment(args.start), parse_moment(args.end), lookback)
    if args.date:
        return BatchInterval.for_date(parse_moment(args.date).date(), lookback)
    reference = parse_moment(args.run_after) if getattr(args, "run_after", None) else now
    today = BatchInterval.from_bounds(reference, reference).start
    return BatchInterval.for_date((today - timedelta(days=1)).date(), lookback)


def run_from_args(settings: Settings, args: argparse.Namespace) -> int:
    """Entry point shared by ``retail batch`` and spark-submit: build the session, run the steps, report."""
    from contracts.spark import build_spark_session

    now = datetime.now(UTC)
    interval = interval_from_args(args, settings, now)
    if args.step != "all" and not args.run_id:
        raise ValueError("--run-id is required with --step (it ties the steps of one run together)")
    run_id = args.run_id or f"manual__{interval.key()}__{now:%Y%m%dT%H%M%S}"
    steps = list(STEPS) if args.step == "all" else [args.step]
    if steps[0] in ("validate-input", "maintain") and not args.wait_for_lease:
        _refuse_if_leased(settings, run_id, now)  # in a second, not after the JVM started
    warm = None
    if any(step in ("validate-input", "validate-views") for step in steps):
        # Great Expectations takes ~8 s to import: do it while the JVM starts (another process, another core)
        from batch_layer.quality import warm_up

        warm = threading.Thread(target=warm_up, name="import-great-expectations", daemon=True)
        warm.start()
    spark = build_spark_session(
        settings,
        app_name=f"retail-batch-{args.step}",
    )
    if warm is not None:
        warm.join()
    run = BatchRun(
        run_id=run_id,
        interval=interval,
        settings=settings,
        spark=spark,
        dedup_guard_days=args.dedup_guard_days,
        lease_wait_seconds=args.wait_for_lease,
    )
    print(
        f"[batch {run_id}] interval [{interval.start:%Y-%m-%d}, {interval.end:%Y-%m-%d}) "
        f"recomputing [{interval.range_start:%Y-%m-%d}, {interval.range_end:%Y-%m-%d}), steps: {', '.join(steps)}",
        flush=True,
    )
    try:
        results = run_steps(run, steps)
    except ValidationFailed as error:
        print(f"[batch {run_id}] FAILED: {error}", file=sys.stderr, flush=True)
        return 1
    print(json.dumps(results, indent=2, default=_iso), flush=True)
    return 0


def _refuse_if_leased(settings: Settings, run_id: str, now: datetime) -> None:
    from batch_layer.lease import LeaseHeld, decide

    uri, options = delta_rs_location(Lake(settings.lake_root, settings.checkpoint_root).table(LEASE_TABLE), settings)
    state = Lease(uri, options).state()
    if decide(state, run_id, None, now) == "wait":
        raise LeaseHeld(run_id, state)


def main(argv: Sequence[str] | None = None) -> int:
    """spark-submit entry point: ``spark-submit batch_layer/job.py --date 2026-01-05``."""
    args = build_parser().parse_args(argv)
    try:
        return run_from_args(Settings(), args)
    except (BatchError, ValueError) as error:
        print(f"retail batch: {error}", file=sys.stderr, flush=True)
        return 2


if __name__ == "__main__":
    raise SystemExit(main())
