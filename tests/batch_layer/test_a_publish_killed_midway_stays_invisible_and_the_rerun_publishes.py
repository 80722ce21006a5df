"""SIGKILL of the batch job in the middle of publishing: after the minute view was replaced and before batch/runs
was written. Serving reads the views at the versions recorded with W, so the half publish is invisible (W, L and
the recorded versions are those of the previous run); a rerun of the publish step (Airflow retries the task)
publishes the staged, validated views and moves W."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from datetime import timedelta

import pytest

from batch_layer.job import CRASH_ENV, run_steps
from batch_layer.store import BatchStore
from contracts.settings import PROJECT_ROOT
from tests.batch_layer.conftest import (
    DAY,
    actual_view,
    batch_run,
    expected_views,
    run_batch,
    two_day_lake,
)

NEXT = DAY + timedelta(days=1)
_VERSIONS = {"minute": "sales_minute_version", "hour": "sales_hour_version", "day": "sales_day_version"}


@pytest.fixture(scope="module")
def crash_lake(spark, settings, test_root, batch_env):  # type: ignore[no-untyped-def]
    batch_settings, lake, rows = two_day_lake(spark, settings, test_root, "batch_crash", seed=51, count=80)
    run_batch(spark, batch_settings, DAY, run_id="day-1", lookback_days=0)
    return batch_settings, lake, rows


def _served(store: BatchStore) -> tuple[object, dict[str, int]]:
    rows = {row["run_id"]: row for row in store.run_rows()}
    best = max(
        (row for row in rows.values() if row["status"] == "succeeded" and row["high_water_mark"] is not None),
        key=lambda row: (row["high_water_mark"], row["finished_at"]),
    )
    return store.current_marks(), {grain: int(best[column]) for grain, column in _VERSIONS.items()}


def test_a_publish_killed_after_one_view_is_invisible_and_the_rerun_publishes(spark, crash_lake) -> None:  # type: ignore[no-untyped-def]
    batch_settings, lake, rows = crash_lake
    store = BatchStore(spark, lake)
    rows_before = store.run_rows()
    marks_before, versions_before = _served(store)
    assert marks_before.high == NEXT

    env = {
        **os.environ,
        "RETAIL_LAKE_ROOT": batch_settings.lake_root,
        "RETAIL_CHECKPOINT_ROOT": batch_settings.checkpoint_root,
        "RETAIL_BATCH_LOOKBACK_DAYS": "0",
        CRASH_ENV: "publish:minute",
    }
    killed = subprocess.run(
        [sys.executable, "-m", "batch_layer.job", "--date", f"{NEXT:%Y-%m-%d}", "--run-id", "day-2"],
        cwd=PROJECT_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=1200,
        start_new_session=True,  # its own process group: the kill takes the driver and its JVM, not pytest
        check=False,
    )
    assert killed.returncode == -signal.SIGKILL, killed.stdout[-2000:] + killed.stderr[-2000:]
    assert "publish:minute" in killed.stderr

    # half published: the minute view has a new version, batch/runs does not know it
    assert store.latest_version(lake.table("batch/sales_minute")) > versions_before["minute"]
    assert store.latest_version(lake.table("batch/sales_hour")) == versions_before["hour"]
    assert store.run_rows() == rows_before
    assert _served(store) == (marks_before, versions_before)
    at_served = store.read_view("minute", versions_before["minute"])
    assert at_served.where(f"bucket_start >= TIMESTAMP'{NEXT:%Y-%m-%d %H:%M:%S}'").count() == 0

    # Airflow retries the publish task: the staged views (validated before the kill) are published
    run_steps(batch_run(spark, batch_settings, NEXT, run_id="day-2", lookback_days=0), ["publish"])
    marks_after, versions_after = _served(store)
    assert (marks_after.low, marks_after.high) == (DAY, NEXT + timedelta(days=1))
    for grain in ("minute", "hour", "day"):
        assert versions_after[grain] == store.latest_version(lake.table(f"batch/sales_{grain}"))
    expected = expected_views(rows, DAY, NEXT + timedelta(days=1))
    for grain in ("minute", "hour", "day"):
        assert actual_view(spark, store, grain, versions_after[grain]) == expected[grain], grain
    assert not store.staging_exists("day-2")
