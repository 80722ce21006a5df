"""The nightly batch DAG runs unchanged on Spark's standalone cluster: every task of dags/retail_batch.py is the
real RetailSparkSubmitOperator, executed with a context the way an Airflow worker would (tests/scale_out/
dag_tasks.py), and spark-submit goes wherever the Airflow connection points: AIRFLOW_CONN_RETAIL_SPARK with host
spark://127.0.0.1:<port>. The published views equal an independent Decimal computation, and the master lists one
application per task.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from datetime import timedelta

import pytest

from batch_layer.arguments import TASK_IDS
from batch_layer.interval import BatchInterval
from batch_layer.store import BatchStore
from contracts.settings import PROJECT_ROOT
from contracts.tables import Lake
from tests.batch_layer.conftest import DAY, actual_view, expected_views, generated_events, lake_settings, write_bronze
from tests.scale_out.conftest import pipeline_env

# slow on a busy 2-core box (several JVMs per test): past the suite's 900 s default
pytestmark = [pytest.mark.integration, pytest.mark.cluster, pytest.mark.airflow, pytest.mark.timeout(2400)]

TASKS = TASK_IDS


def test_nightly_dag_tasks_run_on_the_standalone_cluster(spark, settings, test_root, spark_cluster) -> None:  # type: ignore[no-untyped-def]
    batch_settings = lake_settings(settings, test_root, "batch-on-cluster")
    lake = Lake(batch_settings.lake_root, batch_settings.checkpoint_root)
    rows = generated_events(seed=21, count=300, start=DAY + timedelta(hours=9), rate=0.05)
    write_bronze(spark, lake.bronze_events, rows)

    home = test_root / "batch-on-cluster" / "airflow"
    home.mkdir(parents=True)
    env = pipeline_env(
        batch_settings,
        AIRFLOW_HOME=str(home),
        AIRFLOW__CORE__LOAD_EXAMPLES="False",
        RETAIL_BATCH_LOOKBACK_DAYS="0",
        # the only change from local[2]: the connection's host is the standalone master
        AIRFLOW_CONN_RETAIL_SPARK=json.dumps(
            {"conn_type": "spark", "host": spark_cluster.master_url, "extra": {"spark-binary": "spark-submit"}}
        ),
    )
    env.pop("RETAIL_SPARK_MASTER", None)
    run_after = (DAY + timedelta(days=1, hours=2)).isoformat()
    began = time.monotonic()
    result = subprocess.run(
        [sys.executable, "-m", "tests.scale_out.dag_tasks", run_after],
        cwd=PROJECT_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=2000,
        check=False,
    )
    seconds = time.monotonic() - began
    (home / "dag_tasks.log").write_text(result.stdout + result.stderr)
    assert result.returncode == 0, (result.stdout + result.stderr)[-4000:]
    durations = [line for line in result.stdout.splitlines() if line.startswith("[dag task]")]
    assert len(durations) == len(TASKS), result.stdout[-3000:]
    # spark-submit was pointed at the standalone master by the connection
    assert f"--master {spark_cluster.master_url}" in result.stdout + result.stderr

    state = spark_cluster.master_state()
    assert state is not None
    batch_apps = [name for name in state["completed_apps"] if name in TASKS or name.startswith("retail-batch-")]
    assert len(batch_apps) == len(TASKS), state
    assert any(spark_cluster.work_dir(1).glob("app-*")) and any(spark_cluster.work_dir(2).glob("app-*"))

    store = BatchStore(spark, lake)
    run = store.runs().first()
    assert run.status == "succeeded" and run.deduplicated_rows > 0, run  # the re-sent events were dropped
    interval = BatchInterval.for_date(DAY.date(), lookback_days=0)
    expected = expected_views(rows, interval.range_start, interval.range_end)
    versions = {"minute": run.sales_minute_version, "hour": run.sales_hour_version, "day": run.sales_day_version}
    for grain in ("minute", "hour", "day"):
        assert actual_view(spark, store, grain, versions[grain]) == expected[grain], grain
    assert store.current_high_water_mark() == DAY + timedelta(days=1)
    print(f"\n[batch DAG on spark standalone] 5 tasks in {seconds:.1f}s: " + "; ".join(durations))
