"""Command-line arguments of the batch job, shared by ``retail batch`` and the spark-submit entry point.

Kept free of pyspark so that building the ``retail`` parser stays fast.
"""

from __future__ import annotations

import argparse
import re

__all__ = ["RUN_ID_PATTERN", "STEPS", "TASK_IDS", "add_arguments", "checked_run_id"]

STEPS: tuple[str, ...] = ("validate-input", "recompute", "validate-views", "publish", "maintain")
TASK_IDS: tuple[str, ...] = tuple(step.replace("-", "_") for step in STEPS)
"""The Airflow task id of each step, in order (dags/retail_batch.py)."""

# A run id names folders of the lake (batch/reports/<id>, batch/_staging/<id>): it starts with a letter or digit
# and holds only characters that cannot leave that folder (no "/", never "." or ".."). Airflow's own run ids
# (manual__2026-01-05T02:00:00+00:00, scheduled__..., backfill__...) match.
RUN_ID_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.:+-]{0,199}")


def checked_run_id(text: str) -> str:
    """``text`` if it is a valid run id; ValueError naming the rule otherwise."""
    if not RUN_ID_PATTERN.fullmatch(text):
        raise ValueError(
            f"invalid run id {text!r}: 1-200 characters of letters, digits and _ . : + -, starting with a letter or "
            "digit"
        )
    return text


def _run_id(text: str) -> str:
    try:
        return checked_run_id(text)
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error)) from None


def _days(text: str) -> int:
    value = int(text)
    if not 0 <= value <= 366:
        raise argparse.ArgumentTypeError(f"must be between 0 and 366 days, got {value}")
    return value


def _seconds(text: str) -> float:
    value = float(text)
    if not 0 <= value <= 86_400:
        raise argparse.ArgumentTypeError(f"must be between 0 and 86400 seconds, got {text}")
    return value


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add --date | --start/--end, --lookback-days, --step, --run-id, --dedup-guard-days and --wait-for-lease to
    ``parser``."""
    parser.add_argument("--date", help="the UTC day to recompute, YYYY-MM-DD (default: yesterday)")
    parser.add_argument("--start", help="data interval start, ISO-8601 (snapped to its UTC day)")
    parser.add_argument("--end", help="data interval end, ISO-8601 (exclusive; snapped to its UTC day)")
    parser.add_argument(
        "--run-after",
        help="when --start/--end are empty (an Airflow run triggered without a logical date): recompute the UTC "
        "day before this moment's day",
    )
    parser.add_argument("--lookback-days", type=int, default=None, help="extra days recomputed before the interval")
    parser.add_argument("--step", default="all", choices=["all", *STEPS], help="one step, or all of them (default)")
    parser.add_argument(
        "--run-id",
        type=_run_id,
        default=None,
        help="run id (required with --step; generated otherwise): letters, digits and _ . : + -",
    )
    parser.add_argument(
        "--dedup-guard-days",
        type=_days,
        default=0,
        help="deduplicate over the range's partitions plus this many days on each side (default 0: a duplicate "
        "carries its event's event_time, so the range's own partitions hold every copy)",
    )
    parser.add_argument(
        "--wait-for-lease",
        type=_seconds,
        default=0.0,
        metavar="SECONDS",
        help="when another batch run holds the lake's batch lease, wait up to this long for it (default 0: fail at "
        "once; the Airflow DAG waits)",
    )
