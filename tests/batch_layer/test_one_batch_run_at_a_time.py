"""One batch run at a time, whoever starts it: the lake's batch lease (batch_layer/lease.py).

- Of runs that find the lease free at once, exactly one takes it; tokens only grow; a run whose lease another run
  took has lost it for good (pure rule over any history, and the compare-and-swap on a real Delta table).
- A run holding the lease between its steps (as an Airflow run does between tasks) makes ``retail batch`` fail at
  once with a clear error and nothing written, and makes a waiting run (what a DAG task does) wait until it
  publishes; the served views are exact.
- A run whose lease expired and was taken by another cannot publish: no view version, no row, W unchanged.
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from batch_layer.job import run_steps
from batch_layer.lease import LEASE_TABLE, Lease, LeaseHeld, LeaseLost, LeaseState, decide
from batch_layer.store import BatchStore
from contracts.settings import PROJECT_ROOT
from tests.batch_layer.conftest import (
    DAY,
    actual_view,
    batch_run,
    expected_views,
    two_day_lake,
)

START = datetime(2026, 1, 1, tzinfo=UTC)
NEXT = DAY + timedelta(days=1)


# --- the rule, over any history -------------------------------------------------------------------
@settings(max_examples=300, deadline=None)
@given(st.lists(st.tuples(st.sampled_from("abc"), st.sampled_from(["start", "step", "release"]), st.integers(0, 900))))
def test_a_fenced_token_never_holds_the_lease_again(history) -> None:  # type: ignore[no-untyped-def]
    # a model of Lease.acquire ("start"), Lease.hold ("step") and Lease.release over one lease row
    state, now, seconds = LeaseState("", 0, START, START), START, 300
    tokens: dict[str, int] = {}
    fenced: set[tuple[str, int]] = set()
    for run, action, wait in history:
        now += timedelta(seconds=wait)
        token = None if action == "start" else tokens.get(run)
        verdict = decide(state, run, token, now)
        if token is not None and (run, token) in fenced:
            assert verdict == "lost", (run, token, state)
        if verdict == "wait":
            assert state.holder not in ("", run) and state.expires_at > now
        if verdict in ("wait", "lost"):
            continue
        if action == "release":
            if verdict == "keep":
                state = LeaseState("", state.token, now, START)
            continue
        if verdict == "take":
            fenced |= set(tokens.items())  # every earlier token is fenced off from now on
            assert state.free_at(now)
        new = state.token + 1 if verdict == "take" else state.token
        state, tokens[run] = LeaseState(run, new, now, now + timedelta(seconds=seconds)), new


def test_racing_runs_take_the_lease_once_and_a_taken_lease_is_lost(tmp_path) -> None:  # type: ignore[no-untyped-def]
    uri = str(tmp_path / "lake" / LEASE_TABLE)
    winners: list[tuple[str, int]] = []
    refused: list[str] = []
    barrier = threading.Barrier(6)

    def contend(name: str) -> None:
        lease = Lease(uri, seconds=60)
        barrier.wait()
        try:
            winners.append((name, lease.acquire(name)))
        except LeaseHeld as error:
            refused.append(str(error))

    threads = [threading.Thread(target=contend, args=(f"run-{i}",)) for i in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert len(winners) == 1 and len(refused) == 5, (winners, refused)
    ((holder, token),) = winners
    assert all(f"batch run {holder!r} holds the batch lease" in text for text in refused)

    # the same run id takes its own lease back (an Airflow retry); expired, another run takes the next token
    assert Lease(uri, seconds=60).acquire(holder) == token
    later = Lease(uri, seconds=60, clock=lambda: datetime.now(UTC) + timedelta(seconds=61))
    assert later.acquire("intruder") == token + 1
    with pytest.raises(LeaseLost, match="lost the batch lease"):
        Lease(uri, seconds=60).hold(holder, token)
    assert not Lease(uri, seconds=60).release(holder, token)  # a lost holder cannot free it either
    assert Lease(uri).state().holder == "intruder"

    # a waiting run (a DAG task) gets the lease once the holder releases it
    got: list[int] = []
    waiter = threading.Thread(target=lambda: got.append(Lease(uri, seconds=60).acquire("dag", 60, log=lambda _: None)))
    waiter.start()
    time.sleep(1.5)
    assert not got
    assert Lease(uri, seconds=60).release("intruder", token + 1)
    waiter.join(timeout=30)
    assert got == [token + 2]


# --- the job ----------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def lease_lake(spark, settings, test_root, batch_env):  # type: ignore[no-untyped-def]
    return two_day_lake(spark, settings, test_root, "batch_lease", seed=61, count=60)


def test_a_second_run_is_refused_or_waits_and_a_run_that_lost_its_lease_publishes_nothing(spark, lease_lake) -> None:  # type: ignore[no-untyped-def]
    batch_settings, lake, rows = lease_lake
    store = BatchStore(spark, lake)

    # run "nightly" is between its Airflow tasks: validate-input done, the lease held
    nightly = batch_run(spark, batch_settings, DAY, run_id="nightly", lookback_days=0)
    run_steps(nightly, ["validate-input"])
    assert Lease(lake.table(LEASE_TABLE)).state().holder == "nightly"

    # `retail batch` beside it: refused at once, before Spark starts, and nothing written
    began = time.monotonic()
    cli = subprocess.run(
        [sys.executable, "-m", "retail_cli.main", "batch", "--date", f"{NEXT:%Y-%m-%d}", "--run-id", "by-hand"],
        cwd=PROJECT_ROOT,
        env={**os.environ, "RETAIL_LAKE_ROOT": lake.root, "RETAIL_CHECKPOINT_ROOT": batch_settings.checkpoint_root},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert cli.returncode != 0, cli.stdout + cli.stderr
    assert "batch run 'nightly' holds the batch lease" in cli.stderr and "--wait-for-lease" in cli.stderr
    assert "SparkContext" not in cli.stderr, f"refused only after {time.monotonic() - began:.0f} s of Spark start-up"
    assert store.read_json("by-hand", "state.json") is None and store.run_rows() == []

    # a run that waits for the lease (what each DAG task does) gets it once "nightly" has published
    backfill = batch_run(spark, batch_settings, NEXT, run_id="backfill", lookback_days=0)
    tokens: list[int] = []
    waiter = threading.Thread(target=lambda: tokens.append(backfill.lease.acquire("backfill", 300, log=lambda _: None)))
    waiter.start()
    time.sleep(1)
    run_steps(nightly, ["recompute", "validate-views", "publish"])
    assert waiter.is_alive() or tokens, "the waiting run got the lease before nightly published"
    waiter.join(timeout=120)
    assert tokens and Lease(lake.table(LEASE_TABLE)).state().holder == "backfill"
    marks = store.current_marks()
    assert (marks.low, marks.high) == (DAY, NEXT)
    expected = expected_views(rows, DAY, NEXT)
    for grain in ("minute", "hour", "day"):
        assert actual_view(spark, store, grain) == expected[grain], grain

    # "backfill" validates, then its lease expires and another run takes it: "backfill" cannot publish
    run_steps(backfill, ["validate-input", "recompute", "validate-views"])
    rows_before = store.run_rows()
    versions_before = {g: store.latest_version(lake.table(f"batch/sales_{g}")) for g in ("minute", "hour", "day")}
    future = Lease(lake.table(LEASE_TABLE), clock=lambda: datetime.now(UTC) + timedelta(hours=1))
    intruder = future.acquire("intruder")
    retried = batch_run(spark, batch_settings, NEXT, run_id="backfill", lookback_days=0)  # an Airflow retry
    with pytest.raises(LeaseLost, match="'backfill' lost the batch lease"):
        run_steps(retried, ["publish"])
    assert store.run_rows() == rows_before
    assert {g: store.latest_version(lake.table(f"batch/sales_{g}")) for g in versions_before} == versions_before
    assert store.current_marks() == marks
    assert future.release("intruder", intruder)
