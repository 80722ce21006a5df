"""
### retail_batch: nightly exact recompute of the sales views (the batch layer)

Runs at 02:00 UTC on `CronDataIntervalTimetable("0 2 * * *")`: each run's data interval is the 24 hours that
ended at 02:00, and the job recomputes the UTC day that interval started in (yesterday), plus
`RETAIL_BATCH_LOOKBACK_DAYS` earlier days so very late events are repaired. A run triggered without a logical
date has no data interval: it recomputes the UTC day before its `run_after`.

Tasks, each one `spark-submit` of `batch_layer/job.py --step <name>` (idempotent, safe to retry or backfill):

1. **validate_input**: Great Expectations suite on the interval's bronze rows
2. **recompute**: dedup by event_id over the range's bronze partitions, exact minute/hour/day views, staged in Delta
3. **validate_views**: view suite + reconciliation with bronze read by a second engine (every difference zero)
4. **publish**: replace the interval in `batch/sales_*`, record versions and the marks L, W in `batch/runs`
5. **maintain**: OPTIMIZE closed bronze partitions and the speed tables where there is work, VACUUM (>= 7 days)

One batch run at a time, whoever starts it: each task holds the lake's batch lease and waits up to an hour for
it while a `retail batch` or a notebook holds it. A failed suite fails its task and the run; the high-water mark
stays. Reports: `<lake>/batch/reports/<run>/`.
Spark runs where the Airflow connection `retail_spark` points (`AIRFLOW_CONN_RETAIL_SPARK`, `local[2]` by default).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from airflow.providers.apache.spark.operators.spark_submit import SparkSubmitOperator
from airflow.sdk import CronDataIntervalTimetable, chain, dag

from batch_layer.arguments import STEPS, TASK_IDS
from contracts.settings import Settings

JOB = str(Path(__file__).resolve().parents[1] / "batch_layer" / "job.py")
# RETAIL_* environment only: reading settings costs no I/O and keeps the schedule configurable
_SETTINGS = Settings()
_LEASE_WAIT_SECONDS = 3600


class RetailSparkSubmitOperator(SparkSubmitOperator):
    """spark-submit with the project's Spark conf (Delta, jars from the local cache) computed when the task runs.

    The conf is built at run time, not at parse time, so parsing the DAG imports neither pyspark nor reads the
    jar cache. The master comes from the Airflow connection, so it is dropped from the conf.
    """

    def execute(self, context: Any) -> Any:
        from contracts.spark import spark_conf

        conf = spark_conf(Settings(), app_name=self.task_id)
        conf.pop("spark.master", None)
        self.conf = {**conf, **(self.conf or {})}
        return super().execute(context)


@dag(
    dag_id="retail_batch",
    schedule=CronDataIntervalTimetable("0 2 * * *", timezone="UTC"),
    start_date=datetime.combine(_SETTINGS.batch_start_date, datetime.min.time(), tzinfo=UTC),
    catchup=_SETTINGS.batch_catchup,
    max_active_runs=1,
    default_args={
        "owner": "retail",
        "retries": 2,
        "retry_delay": timedelta(minutes=1),
        "retry_exponential_backoff": True,
        "max_retry_delay": timedelta(minutes=20),
        "execution_timeout": timedelta(hours=2),
    },
    tags=["retail", "batch"],
    doc_md=__doc__,
)
def retail_batch() -> None:
    tasks = [
        RetailSparkSubmitOperator(
            task_id=task_id,
            conn_id=_SETTINGS.airflow_spark_conn_id,
            application=JOB,
            name=f"retail-batch-{step}",
            application_args=[
                # a run triggered with logical_date null has no data interval: then the job recomputes the
                # day before run_after
                "--start",
                "{{ data_interval_start | default('') }}",
                "--end",
                "{{ data_interval_end | default('') }}",
                "--run-after",
                "{{ dag_run.run_after }}",
                "--run-id",
                "{{ run_id }}",
                "--step",
                step,
                # one batch run at a time whoever starts it: a CLI run or a notebook holding the lake's batch
                # lease makes this task wait for it (batch_layer/lease.py)
                "--wait-for-lease",
                str(_LEASE_WAIT_SECONDS),
            ],
        )
        for step, task_id in zip(STEPS, TASK_IDS, strict=True)
    ]
    chain(*tasks)


retail_batch()
