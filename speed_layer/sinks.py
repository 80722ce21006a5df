"""The speed layer's I/O edge: Delta tables, idempotent micro-batch writes, crash hook.

Exactly-once: every Delta write of micro-batch N carries the Delta transaction id (app id, N). A batch replayed
after a crash (written to Delta, but not yet committed to the checkpoint) is skipped by Delta, so no row is
written twice. DataFrame writes take ``txnAppId``/``txnVersion`` options; MERGE takes them as session conf, set
on the query's own (cloned) session and unset right after the commit.
"""

from __future__ import annotations

import json
import os
import signal
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime

from delta.exceptions import (
    ConcurrentAppendException,
    ConcurrentDeleteDeleteException,
    ConcurrentDeleteReadException,
    ConcurrentTransactionException,
    ConcurrentWriteException,
    DeltaConcurrentModificationException,
    MetadataChangedException,
    ProtocolChangedException,
)
from delta.tables import DeltaTable
from pyspark.sql import DataFrame, SparkSession

from contracts.tables import TABLE_SCHEMAS, Lake

__all__ = [
    "DELTA_CONFLICTS",
    "retry_delta_conflicts",
    "QueryIdentity",
    "ensure_speed_tables",
    "append_once",
    "merge_once",
    "maybe_crash_for_test",
    "crash_planned_for",
    "CRASH_ENV",
    "RESTART_QUERIES",
    "RestartPlan",
    "save_restart_plan",
    "load_restart_plan",
    "inventory_state_path",
    "delete_checkpoints",
]

# test-only: "<query>:<n>" makes the driver SIGKILL its own process group (driver + JVM) right after the Delta
# writes of the n-th micro-batch this process runs for that query, before Spark commits the batch to the
# checkpoint: the window a crash test must hit
CRASH_ENV = "RETAIL_SPEED_CRASH_AFTER_BATCH"

_PARTITIONING = {"bronze/events": "event_date"}
_COMMIT_ATTEMPTS = 4
_PROPERTIES = {
    # the master dataset is append-only; OPTIMIZE and VACUUM still work on it
    "bronze/events": {"delta.appendOnly": "true"},
}
_SPEED_TABLES = ("bronze/events", "bronze/quarantine", "speed/sales_minute", "speed/inventory", "speed/alerts")


def ensure_speed_tables(spark: SparkSession, lake: Lake) -> None:
    """Create every table the speed layer writes (empty, fixed schema) unless it exists."""
    for name in _SPEED_TABLES:
        partitioned = f" PARTITIONED BY ({_PARTITIONING[name]})" if name in _PARTITIONING else ""
        properties = _PROPERTIES.get(name, {})
        tblprops = (
            " TBLPROPERTIES (" + ", ".join(f"'{k}' = '{v}'" for k, v in properties.items()) + ")" if properties else ""
        )
        statement = (
            f"CREATE TABLE IF NOT EXISTS delta.`{lake.table(name)}` ({TABLE_SCHEMAS[name]}) USING delta"
            f"{partitioned}{tblprops}"
        )
        # the two drivers of `retail speed` start together: the one that loses the race to create a table retries
        # and then finds it there
        retry_delta_conflicts(lambda statement=statement: spark.sql(statement), attempts=5)  # type: ignore[misc]


class QueryIdentity:
    """The Delta transaction app id of one streaming query: its name plus the checkpoint's query id.

    The id is only known once the query has started, while micro-batches may already run: ``app_id`` waits for
    it. A new checkpoint gets a new query id, so a deleted checkpoint never makes Delta skip fresh writes.
    """

    def __init__(self, name: str) -> None:
        self.name = name
        self._query_id: str | None = None
        self._known = threading.Event()

    def set(self, query_id: str) -> None:
        self._query_id = query_id
        self._known.set()

    @property
    def app_id(self) -> str:
        if not self._known.wait(timeout=120):
            raise RuntimeError(f"query {self.name} did not report its id within 120 s")
        return f"retail-speed-{self.name}-{self._query_id}"


def append_once(frame: DataFrame, path: str, app_id: str, batch_id: int) -> None:
    """Append ``frame`` to the Delta table at ``path`` unless batch ``batch_id`` of ``app_id`` is already there."""
    (frame.write.format("delta").mode("append").option("txnAppId", app_id).option("txnVersion", batch_id).save(path))


@contextmanager
def _delta_txn(session: SparkSession, app_id: str, batch_id: int) -> Iterator[None]:
    # the conf would otherwise stay set and make Delta silently skip this query's later commits
    session.conf.set("spark.databricks.delta.write.txnAppId", app_id)
    session.conf.set("spark.databricks.delta.write.txnVersion", str(batch_id))
    try:
        yield
    finally:
        session.conf.unset("spark.databricks.delta.write.txnAppId")
        session.conf.unset("spark.databricks.delta.write.txnVersion")


# Every commit conflict Delta reports. delta-spark's Python classes do not derive from one another
# (ConcurrentAppendException is not a DeltaConcurrentModificationException), so each is named.
DELTA_CONFLICTS = (
    ConcurrentAppendException,
    ConcurrentDeleteDeleteException,
    ConcurrentDeleteReadException,
    ConcurrentTransactionException,
    ConcurrentWriteException,
    DeltaConcurrentModificationException,
    MetadataChangedException,
    ProtocolChangedException,
)


def merge_once(
    source: DataFrame,
    path: str,
    on: str,
    app_id: str,
    batch_id: int,
    update_set: dict[str, str] | None = None,
    insert_condition: str | None = None,
) -> None:
    """MERGE ``source`` (alias ``s``) into the table at ``path`` (alias ``t``), once per (app_id, batch_id).

    Matched rows are updated with ``update_set`` (all columns when None), others inserted (all columns, when
    ``insert_condition`` holds). Runs on the source's own session, which each streaming query has cloned.
    """
    session = source.sparkSession
    target = DeltaTable.forPath(session, path).alias("t")
    merge = target.merge(source.alias("s"), on)
    merge = merge.whenMatchedUpdate(set=update_set) if update_set else merge.whenMatchedUpdateAll()
    merge = merge.whenNotMatchedInsertAll(condition=insert_condition)

    def execute() -> None:
        with _delta_txn(session, app_id, batch_id):
            merge.execute()

    # e.g. the nightly OPTIMIZE rewrote files this MERGE read: safe to redo, the txn id guards it
    retry_delta_conflicts(execute, _COMMIT_ATTEMPTS)


def retry_delta_conflicts(commit: Callable[[], None], attempts: int) -> None:
    """Run ``commit`` (a Delta write that is safe to redo), again after any of DELTA_CONFLICTS, at most ``attempts``
    times in all, 0.5 s, 1 s, 1.5 s ... apart; the last conflict is raised."""
    for attempt in range(1, attempts + 1):
        try:
            commit()
            return
        except DELTA_CONFLICTS:
            if attempt == attempts:
                raise
            time.sleep(0.5 * attempt)


_batches_run: dict[str, int] = {}


def crash_planned_for(query: str) -> bool:
    """Test-only: whether CRASH_ENV names this query."""
    return os.environ.get(CRASH_ENV, "").startswith(f"{query}:")


def maybe_crash_for_test(query: str) -> None:
    """Test-only: SIGKILL this driver and its JVM when CRASH_ENV names this query and its batch count."""
    if not crash_planned_for(query):
        return
    target = os.environ[CRASH_ENV]
    _batches_run[query] = _batches_run.get(query, 0) + 1
    if _batches_run[query] == int(target.split(":", 1)[1]):
        os.killpg(os.getpgid(0), signal.SIGKILL)


# --- the restart plan that `retail rebuild-speed` leaves for the next start (speed_layer/rebuild.py) ---------------
_PLAN = "rebuild-plan"
_INVENTORY_STATE = "rebuild-inventory-state"
RESTART_QUERIES: tuple[str, ...] = ("bronze", "rollups", "inventory", "durable")


@dataclass(frozen=True)
class RestartPlan:
    """Where each query of a rebuilt speed layer starts, and the event-time floor of its live queries.

    ``offsets`` maps a query name to Spark's ``startingOffsets`` JSON; Spark uses it only when the query's
    checkpoint is new, so the plan is harmless once the queries have committed batches. ``live_cutoff``: the live
    queries leave out events before it (the rebuilt views hold those buckets, and a restarted query has no
    watermark in its first micro-batch).
    """

    offsets: dict[str, str]
    live_cutoff: datetime | None
    created_at: datetime


def _plan_path(lake: Lake) -> str:
    return lake.checkpoint(_PLAN)


def inventory_state_path(lake: Lake) -> str:
    """Where the rebuild leaves the inventory processor's initial state (INVENTORY_STATE_SCHEMA)."""
    return lake.checkpoint(_INVENTORY_STATE)


def save_restart_plan(spark: SparkSession, lake: Lake, plan: RestartPlan) -> None:
    """Write ``plan`` under the checkpoint root (a one-row Delta table holding JSON; any URI the lake supports)."""
    document = {
        "offsets": plan.offsets,
        "live_cutoff": None if plan.live_cutoff is None else plan.live_cutoff.isoformat(),
        "created_at": plan.created_at.isoformat(),
    }
    frame = spark.createDataFrame([(json.dumps(document, sort_keys=True),)], "plan string")
    frame.write.format("delta").mode("overwrite").save(_plan_path(lake))


def load_restart_plan(spark: SparkSession, lake: Lake) -> RestartPlan | None:
    """The plan the last `retail rebuild-speed` left under the checkpoint root, or None."""
    path = _plan_path(lake)
    if not DeltaTable.isDeltaTable(spark, path):
        return None
    row = spark.read.format("delta").load(path).first()
    if row is None:
        return None
    document = json.loads(row["plan"])
    cutoff = document["live_cutoff"]
    return RestartPlan(
        offsets=document["offsets"],
        live_cutoff=None if cutoff is None else datetime.fromisoformat(cutoff),
        created_at=datetime.fromisoformat(document["created_at"]),
    )


def delete_checkpoints(spark: SparkSession, lake: Lake) -> list[str]:
    """Delete every speed query's checkpoint and an earlier restart plan; returns the paths that existed."""
    jvm = spark.sparkContext._jvm  # type: ignore[attr-defined]
    hadoop_conf = spark.sparkContext._jsc.hadoopConfiguration()  # type: ignore[union-attr]
    deleted = []
    for name in (*RESTART_QUERIES, _PLAN, _INVENTORY_STATE):
        path = jvm.org.apache.hadoop.fs.Path(lake.checkpoint(name))
        filesystem = path.getFileSystem(hadoop_conf)
        if filesystem.exists(path):
            filesystem.delete(path, True)
            deleted.append(lake.checkpoint(name))
    return deleted
