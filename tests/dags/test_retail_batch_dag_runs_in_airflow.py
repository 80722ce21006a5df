"""The nightly batch DAG runs for real: a run triggered through the REST API of the project's own local Airflow
(api-server, scheduler, dag-processor on free loopback ports) runs every stage and publishes the interval's views
and its high-water mark.

Slow by nature (each task is one spark-submit, 10-20 s of JVM start on two cores), so there is one DAG run here.
The same tasks also run outside Airflow on the standalone cluster (tests/scale_out), and the demo test triggers
the DAG through the same REST API.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import psutil
import pytest

from batch_layer.store import BatchStore
from contracts.settings import Settings
from contracts.tables import Lake
from infra.airflow_local import LocalAirflow
from tests.batch_layer.conftest import generated_events, lake_settings, write_bronze
from tests.conftest import free_port

pytestmark = pytest.mark.airflow

_LOOPBACK = ("127.0.0.1", "::ffff:127.0.0.1", "::1")


def _exposed_listeners(airflow: LocalAirflow) -> tuple[int, list[tuple[str, int]]]:
    """(how many listeners the Airflow services and their children have, those not on loopback)."""
    pids = set()
    for pid in airflow.pids().values():
        pids.add(pid)
        pids.update(child.pid for child in psutil.Process(pid).children(recursive=True))
    output = subprocess.run(["ss", "-ltnpH"], capture_output=True, text=True, check=True).stdout
    ours = []
    for line in output.splitlines():
        address = line.split()[3].rsplit(":", 1)[0].strip("[]")
        ours += [(address, int(pid)) for pid in re.findall(r"pid=(\d+)", line) if int(pid) in pids]
    return len(ours), [(address, pid) for address, pid in ours if address not in _LOOPBACK]


@pytest.fixture(scope="module")
def airflow_settings(settings: Settings, test_root) -> Settings:  # type: ignore[no-untyped-def]
    base = lake_settings(settings, test_root, "airflow")
    today = datetime.now(UTC).date()
    return base.model_copy(
        update={
            "airflow_home": test_root / "airflow" / "home",
            "airflow_port": free_port(),
            # the scheduler must not backfill anything by itself: only the runs the tests ask for
            "batch_start_date": today,
            "batch_catchup": False,
            "batch_lookback_days": 0,
        }
    )


@pytest.fixture(scope="module")
def airflow_lake(spark, airflow_settings: Settings) -> Lake:  # type: ignore[no-untyped-def]
    """Events on yesterday and the day before: a manual run covers one of them, depending on the hour (02:00)."""
    lake = Lake(airflow_settings.lake_root, airflow_settings.checkpoint_root)
    yesterday = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0) - timedelta(days=1)
    rows = generated_events(seed=41, count=60, start=yesterday - timedelta(hours=14), rate=0.01)
    rows += generated_events(seed=42, count=60, start=yesterday + timedelta(hours=10), rate=0.01)
    write_bronze(spark, lake.bronze_events, rows)
    return lake


@pytest.fixture(scope="module")
def running_airflow(airflow_settings: Settings) -> Iterator[LocalAirflow]:
    airflow = LocalAirflow.from_settings(airflow_settings)
    airflow.migrate()
    seconds = airflow.start()
    print(f"\n[airflow fixture] api-server, scheduler, dag-processor ready on {airflow.url} in {seconds:.1f}s")
    yield airflow
    stopped = airflow.stop()
    assert set(stopped) == {"api-server", "scheduler", "dag-processor"}
    assert airflow.pids() == {}


def test_dag_triggered_through_the_rest_api_succeeds(spark, running_airflow, airflow_lake) -> None:  # type: ignore[no-untyped-def]
    airflow = running_airflow
    password = airflow.admin_password()
    assert password and password != "admin"
    token = airflow.token()
    # the login is reachable, but no status output shows the password itself
    status = subprocess.run(
        [sys.executable, "-m", "retail_cli.main", "airflow", "status"],
        env={**os.environ, **airflow.settings_env},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert "running" in status.stdout or "pid" in status.stdout, status.stdout + status.stderr
    assert str(airflow.passwords_file) in status.stdout
    assert password not in status.stdout + status.stderr

    deadline = time.monotonic() + 180
    while True:  # the dag-processor parses dags/ shortly after start
        try:
            airflow.request("GET", "/api/v2/dags/retail_batch", token=token)
            break
        except Exception:  # noqa: BLE001 - 404 until parsed
            if time.monotonic() > deadline:
                raise
            time.sleep(2)
    airflow.request("PATCH", "/api/v2/dags/retail_batch", {"is_paused": False}, token=token)
    run = airflow.request("POST", "/api/v2/dags/retail_batch/dagRuns", {"logical_date": None}, token=token)
    run_id = run["dag_run_id"]

    deadline = time.monotonic() + 1500
    state = run["state"]
    listeners, exposed = _exposed_listeners(airflow)
    while state not in ("success", "failed") and time.monotonic() < deadline:
        time.sleep(5)
        state = airflow.request("GET", f"/api/v2/dags/retail_batch/dagRuns/{run_id}", token=token)["state"]
        # while tasks run, their spark-submit drivers are children of the services too
        seen, more = _exposed_listeners(airflow)
        listeners, exposed = max(listeners, seen), exposed + more
    assert listeners >= 1, "expected at least the api-server's listener"
    assert not exposed, f"Airflow or its tasks listen beyond loopback: {sorted(set(exposed))}"
    tasks = airflow.request("GET", f"/api/v2/dags/retail_batch/dagRuns/{run_id}/taskInstances", token=token)
    summary = {t["task_id"]: t["state"] for t in tasks["task_instances"]}
    assert state == "success", summary
    assert summary == dict.fromkeys(("validate_input", "recompute", "validate_views", "publish", "maintain"), "success")

    store = BatchStore(spark, airflow_lake)
    runs = store.runs().collect()
    assert [run.run_id for run in runs] == [run_id]
    recorded = runs[0]
    assert recorded.status == "succeeded" and recorded.deduplicated_rows > 0
    # a manual run "now" covers the last complete 02:00 -> 02:00 interval: it recomputes the UTC day it starts on
    # (yesterday, or the day before when the run starts before 02:00) and W moves to the end of that day
    yesterday = (datetime.now(UTC) - timedelta(days=1)).date()
    day = recorded.interval_start.date()
    assert day in (yesterday, yesterday - timedelta(days=1))
    assert recorded.interval_end.date() == day + timedelta(days=1)
    assert store.current_high_water_mark() == datetime.combine(day + timedelta(days=1), datetime.min.time(), UTC)
    assert store.read_json(run_id, "maintain.json") is not None  # the last stage ran too
