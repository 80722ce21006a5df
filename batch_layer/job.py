"""The batch job: recompute exact sales views for a data interval from bronze, validate them, publish W.

Steps (each idempotent, so an Airflow retry or a backfill of the same interval is safe):

  validate-input  Great Expectations suite on the interval's bronze rows; records the speed watermark at start
  recompute       deduplicate bronze by event_id over all history, roll up minute/hour/day views with
                  ``sales_rollup(users="exact")`` and stage them (Delta, overwritten per run)
  validate-views  view suite + reconciliation of the staged views against bronze totals (all diffs zero)
  publish         replace exactly the interval's buckets in batch/sales_* (replaceWhere), then MERGE the run's
                  row into batch/runs with the new view versions and the advanced high-water mark W
  maintain        OPTIMIZE closed bronze partitions and the speed/batch tables, VACUUM (>= 7 days retention)
  all             every step above in one Spark session (what ``retail batch`` / ``make batch`` runs)

A failed suite writes its report (JSON under ``<lake>/batch/reports/<run>/``), records a failed row in
batch/runs with the report, and exits 1: nothing is published and W stays where it was.

Usage::

    retail batch --date 2026-01-05                              # one UTC day, all steps
    spark-submit ... batch_layer/job.py --start 2026-01-05T02:00:00+00:00 --end 2026-01-06T02:00:00+00:00 \\
        --run-id scheduled__2026-01-05 --step recompute          # what the Airflow DAG runs per task
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from pyspark.sql import SparkSession

from batch_layer.arguments import STEPS, add_arguments
from batch_layer.errors import BatchError, ValidationFailed
from batch_layer.interval import BatchInterval, Coverage, advance_high_water_mark, complete_until, parse_moment
from batch_layer.store import STATUS_FAILED, STATUS_SUCCEEDED, VIEW_TABLES, BatchStore, RunRow
from contracts.settings import Settings
from contracts.tables import Lake

__all__ = ["STEPS", "BatchRun", "run_steps", "main", "build_parser"]


@dataclass
class BatchRun:
    """One run of the batch job: its id, interval, settings, session and clock."""

    run_id: str
    interval: BatchInterval
    settings: Settings
    spark: SparkSession
    clock: Callable[[], datetime] = lambda: datetime.now(UTC)

    @property
    def store(self) -> BatchStore:
        return BatchStore(self.spark, Lake(self.settings.lake_root, self.settings.checkpoint_root))

    def _state(self) -> dict[str, Any]:
        state = self.store.read_json(self.run_id, "state.json")
        if state is None:
            raise BatchError(f"run {self.run_id!r} has no state.json: run the validate-input step first")
        return state

    def _fail(self, suite_report: dict[str, Any], message: str, started_at: datetime) -> None:
        self.store.upsert_run(
            RunRow(
                run_id=self.run_id,
                interval_start=self.interval.range_start,
                interval_end=self.interval.range_end,
                status=STATUS_FAILED,
                message=message[:2000],
                started_at=started_at,
                finished_at=self.clock(),
                validation_report=json.dumps(suite_report, default=str),
            )
        )

    # --- steps ----------------------------------------------------------------------------------
    def validate_input(self) -> dict[str, Any]:
        from batch_layer.quality import validate_bronze
        from batch_layer.transforms import bronze_checks, in_partitions

        store = self.store
        now = self.clock()
        previous_state = store.read_json(self.run_id, "state.json") or {}
        progress_exists, watermark = store.speed_watermark()
        state = {
            "run_id": self.run_id,
            "interval_start": self.interval.start,
            "interval_end": self.interval.end,
            "range_start": self.interval.range_start,
            "range_end": self.interval.range_end,
            "started_at": previous_state.get("started_at", now.isoformat()),
            "speed_progress_exists": progress_exists,
            "speed_watermark": watermark,
        }
        store.write_json(self.run_id, "state.json", state)
        rows = in_partitions(store.bronze(), self.interval.range_start, self.interval.range_end)
        checks = bronze_checks(rows, now, self.settings.batch_future_tolerance_seconds)
        report = validate_bronze(checks, self.settings.batch_gx_pandas_max_rows)
        uri = store.write_json(self.run_id, "validate_input.json", {"summary": report.summary(), "result": report.full})
        if not report.success:
            self._fail(
                {"input": report.summary(), "report_uri": uri},
                f"input validation failed: {report.failed_names()}",
                parse_moment(str(state["started_at"])),
            )
            raise ValidationFailed(report.suite, uri, report.failed_names())
        return {"validate_input": report.summary(), "report_uri": uri}

    def recompute(self) -> dict[str, Any]:
        from batch_layer.transforms import build_view, daily_totals, deduplicate_events, in_range

        store = self.store
        start, end = self.interval.range_start, self.interval.range_end
        bronze = store.bronze()
        events = deduplicate_events(bronze, start, end).persist()
        try:
            bronze_rows = in_range(bronze, start, end).count()
            deduplicated_rows = events.count()
            computed_at = self.clock()
            view_rows: dict[str, int] = {}
            for grain in VIEW_TABLES:
                store.write_staging(self.run_id, f"sales_{grain}", build_view(events, grain, self.run_id, computed_at))
                view_rows[grain] = store.read_staging(self.run_id, f"sales_{grain}").count()
            store.write_staging(self.run_id, "daily_totals", daily_totals(events))
        finally:
            events.unpersist()
        counts = {"bronze_rows": bronze_rows, "deduplicated_rows": deduplicated_rows, "view_rows": view_rows}
        store.write_json(self.run_id, "recompute.json", counts)
        return {"recompute": counts}

    def validate_views(self) -> dict[str, Any]:
        from batch_layer.quality import validate_reconciliation, validate_views
        from batch_layer.transforms import reconciliation_diff, view_checks

        store = self.store
        if not store.staging_exists(self.run_id):
            raise BatchError(f"run {self.run_id!r} has no staged views: run the recompute step first")
        views = {grain: store.read_staging(self.run_id, f"sales_{grain}") for grain in VIEW_TABLES}
        totals = store.read_staging(self.run_id, "daily_totals")
        limit = self.settings.batch_gx_pandas_max_rows
        reports = [
            validate_views(view_checks(views), limit),
            validate_reconciliation(reconciliation_diff(views, totals), limit),
        ]
        success = all(report.success for report in reports)
        uri = store.write_json(
            self.run_id,
            "validate_views.json",
            {"success": success, "summaries": [r.summary() for r in reports], "results": [r.full for r in reports]},
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
        store = self.store
        if not store.staging_exists(self.run_id):
            done = [row for row in store.succeeded_runs() if row["run_id"] == self.run_id]
            if done:
                return {"publish": "already published", "high_water_mark": done[0]["high_water_mark"]}
            raise BatchError(f"run {self.run_id!r} has no staged views: run recompute and validate-views first")
        checked = store.read_json(self.run_id, "validate_views.json")
        if not checked or not checked.get("success"):
            raise BatchError(f"run {self.run_id!r}: the staged views did not pass validate-views; nothing published")
        state = self._state()
        counts = store.read_json(self.run_id, "recompute.json") or {}
        input_report = (store.read_json(self.run_id, "validate_input.json") or {}).get("summary")
        start, end = self.interval.range_start, self.interval.range_end

        versions = {
            grain: store.write_view(grain, store.read_staging(self.run_id, f"sales_{grain}"), start, end)
            for grain in VIEW_TABLES
        }
        started_at = parse_moment(str(state["started_at"]))
        watermark = parse_moment(str(state["speed_watermark"])) if state.get("speed_watermark") else None
        # Without speed/progress nobody streams into bronze (a backfill or a test wrote it): bronze counts as
        # complete up to the run's start. With it, never beyond the speed watermark read at the run's start.
        bronze_complete = watermark if state["speed_progress_exists"] else started_at
        own = complete_until(end, bronze_complete)
        previous = store.current_high_water_mark()
        coverages = [Coverage(start, own)] if own is not None else []
        for row in store.succeeded_runs():
            if row["run_id"] == self.run_id or not row.get("validation_report"):
                continue
            until = (json.loads(row["validation_report"]).get("high_water_mark") or {}).get("complete_until")
            if until:
                coverages.append(Coverage(_utc(row["interval_start"]), parse_moment(until)))
        mark = advance_high_water_mark(previous, coverages)
        views_report = checked.get("summaries")
        report = {
            "input": input_report,
            "views": views_report,
            "high_water_mark": {
                "previous": previous,
                "speed_progress_exists": state["speed_progress_exists"],
                "speed_watermark_at_start": state.get("speed_watermark"),
                "bronze_complete_until": bronze_complete,
                "complete_until": own,
                "new": mark,
            },
            "report_dir": store.report_uri(self.run_id, ""),
        }
        view_rows = sum((counts.get("view_rows") or {}).values())
        store.upsert_run(
            RunRow(
                run_id=self.run_id,
                interval_start=start,
                interval_end=end,
                status=STATUS_SUCCEEDED,
                message=(
                    f"recomputed [{start:%Y-%m-%d}, {end:%Y-%m-%d}): {counts.get('bronze_rows')} bronze rows, "
                    f"{counts.get('deduplicated_rows')} events, {view_rows} view rows; W={_iso(mark)}"
                ),
                started_at=started_at,
                finished_at=self.clock(),
                bronze_rows=counts.get("bronze_rows"),
                deduplicated_rows=counts.get("deduplicated_rows"),
                view_rows=view_rows,
                high_water_mark=mark,
                sales_minute_version=versions["minute"],
                sales_hour_version=versions["hour"],
                sales_day_version=versions["day"],
                validation_report=json.dumps(report, default=_iso),
            )
        )
        store.write_json(self.run_id, "publish.json", {"versions": versions, **report})
        store.drop_staging(self.run_id)
        return {"publish": {"versions": versions, "high_water_mark": _iso(mark)}}

    def maintain(self) -> dict[str, Any]:
        from batch_layer.maintenance import maintain

        report = maintain(
            self.spark,
            self.store.lake,
            today=self.clock().date(),
            closed_after_days=self.settings.bronze_closed_after_days,
            retention_hours=self.settings.vacuum_retention_hours,
            optimize_speed_tables=self.settings.batch_optimize_speed_tables,
        )
        report["dropped_stale_staging"] = self.store.drop_stale_staging(
            self.settings.vacuum_retention_hours, self.clock()
        )
        self.store.write_json(self.run_id, "maintain.json", report)
        return {"maintain": report}


def _iso(value: object) -> str | None:
    if value is None:
        return None
    if isinstance(value, datetime):
        return _utc(value).isoformat()
    return str(value)


def _utc(value: datetime) -> datetime:
    return value.astimezone(UTC) if value.tzinfo else value.astimezone().astimezone(UTC)


def run_steps(run: BatchRun, steps: Sequence[str]) -> dict[str, Any]:
    """Run ``steps`` (names from STEPS, in the order given) and return what each reported."""
    unknown = [step for step in steps if step not in STEPS]
    if unknown:
        raise ValueError(f"steps must be among {STEPS}, got {unknown}")
    results: dict[str, Any] = {}
    for step in steps:
        began = time.monotonic()
        results.update(getattr(run, step.replace("-", "_"))())
        print(f"[batch {run.run_id}] {step} done in {time.monotonic() - began:.1f}s", flush=True)
    return results


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
    spark = build_spark_session(settings, app_name=f"retail-batch-{args.step}")
    run = BatchRun(run_id=run_id, interval=interval, settings=settings, spark=spark)
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
