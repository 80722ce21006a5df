"""The DAG file parses without heavy imports and declares the schedule, the stages and their arguments.

Airflow is loaded in a subprocess with a temporary AIRFLOW_HOME, so the test never touches ~/airflow.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from batch_layer.arguments import TASK_IDS

DAG_FILE = Path(__file__).resolve().parents[2] / "dags" / "retail_batch.py"

_PROBE = """
import json, sys
from airflow.dag_processing.dagbag import DagBag
bag = DagBag(dag_folder=sys.argv[1])
dag = bag.dags["retail_batch"]
print(json.dumps({
    "import_errors": {str(k): str(v) for k, v in bag.import_errors.items()},
    "timetable": type(dag.timetable).__name__,
    "summary": dag.timetable.expression, "tz": str(dag.timetable.timezone),
    "max_active_runs": dag.max_active_runs,
    "catchup": dag.catchup,
    "start_tz": str(dag.start_date.tzinfo),
    "tasks": {t.task_id: {"upstream": sorted(t.upstream_task_ids), "retries": t.retries,
                          "backoff": t.retry_exponential_backoff, "application": t.application,
                          "args": t.application_args, "conn_id": t._conn_id} for t in dag.tasks},
    "heavy_modules": sorted(m for m in ("pyspark", "great_expectations", "delta") if m in sys.modules),
}))
"""


def test_dag_declares_nightly_schedule_stages_and_interval_arguments(tmp_path: Path) -> None:
    env = {**os.environ, "AIRFLOW_HOME": str(tmp_path), "AIRFLOW__CORE__LOAD_EXAMPLES": "False"}
    result = subprocess.run(
        [sys.executable, "-c", _PROBE, str(DAG_FILE)], capture_output=True, text=True, timeout=300, env=env
    )
    assert result.returncode == 0, result.stderr[-3000:]
    facts = json.loads(result.stdout.strip().splitlines()[-1])
    assert facts["import_errors"] == {}
    assert facts["timetable"] == "CronDataIntervalTimetable"
    assert (facts["summary"], facts["tz"], facts["max_active_runs"]) == ("0 2 * * *", "UTC", 1)
    assert facts["start_tz"] in ("UTC", "Timezone('UTC')")
    order = list(TASK_IDS)
    tasks = facts["tasks"]
    assert sorted(tasks) == sorted(order)
    for upstream, task_id in zip([None, *order], order, strict=False):
        task = tasks[task_id]
        assert task["upstream"] == ([upstream] if upstream else [])
        assert task["retries"] >= 1 and task["backoff"]
        assert task["application"].endswith("batch_layer/job.py")
        assert task["conn_id"] == "retail_spark"
        rendered = " ".join(task["args"])
        assert "{{ data_interval_start" in rendered and "{{ data_interval_end" in rendered
        args = task["args"]
        assert args[args.index("--step") + 1] == task_id.replace("_", "-")
        # one batch run at a time: a task waits for a `retail batch` or a notebook holding the lake's lease
        assert float(args[args.index("--wait-for-lease") + 1]) >= 600
    # parsing the DAG imports neither pyspark, Delta nor Great Expectations (the tasks do, when they run)
    assert facts["heavy_modules"] == []
