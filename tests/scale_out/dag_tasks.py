"""Run the nightly DAG's tasks the way an Airflow worker would, one after the other, in this process.

    python -m tests.scale_out.dag_tasks 2026-01-06T02:00:00+00:00

Each task of dags/retail_batch.py gets a context with the data interval of the run that ends at the given moment
(`CronDataIntervalTimetable("0 2 * * *")`), its templated fields rendered with the DAG's Jinja environment, and
then ``execute(context)``: the real RetailSparkSubmitOperator, which runs spark-submit against the master of the
Airflow connection (``AIRFLOW_CONN_RETAIL_SPARK``). No scheduler or metadata database is involved; the caller
sets AIRFLOW_HOME to a temporary folder. Prints one line per task with its duration.
"""

from __future__ import annotations

import sys
import time
from datetime import timedelta


def main(run_after_text: str) -> int:
    import pendulum

    from dags.retail_batch import retail_batch

    dag = retail_batch()
    end = pendulum.parse(run_after_text)
    start = end - timedelta(days=1)
    run_id = f"scheduled__{end.isoformat()}"
    for task in dag.topological_sort():
        context = {
            "dag": dag,
            "task": task,
            "run_id": run_id,
            "data_interval_start": start,
            "data_interval_end": end,
            "logical_date": start,
            "ds": start.to_date_string(),
            "dag_run": type("DagRun", (), {"run_after": end, "run_id": run_id})(),
        }
        task.render_template_fields(context, jinja_env=dag.get_template_env())
        began = time.monotonic()
        task.execute(context)
        print(f"[dag task] {task.task_id} succeeded in {time.monotonic() - began:.1f}s", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
