"""Stopping a foreachBatch query while its Python function is inside a Delta write stops it cleanly.

Spark recognises that stop by matching a regex over the whole Python error text, several stack frames per
character; on the JVM's default thread stack the stream thread died of StackOverflowError instead (bronze,
stopped mid-append, lost its batch's rows from the stop onwards in a clean-clone CI run). The session factory
gives the driver a larger thread stack (contracts/spark.py); this is what it buys.
"""

from __future__ import annotations

import threading
import time

import pytest
from pyspark.sql import functions as F

pytestmark = pytest.mark.integration


def test_a_query_stopped_inside_a_delta_write_reports_stopped(spark, test_root) -> None:
    table = test_root / "stop-mid-write" / "table"  # never committed: the stop interrupts the first write
    writing = threading.Event()

    def write(batch, _batch_id: int) -> None:
        writing.set()
        # long enough to still be running when the query is stopped (about 10 s on two cores)
        rows = batch.sparkSession.range(40_000_000).withColumn("h", F.sha2(F.col("id").cast("string"), 256))
        rows.write.format("delta").mode("append").save(str(table))

    query = (
        spark.readStream.format("rate")
        .option("rowsPerSecond", 1)
        .load()
        .writeStream.foreachBatch(write)
        .option("checkpointLocation", str(test_root / "stop-mid-write" / "checkpoint"))
        .start()
    )
    try:
        assert writing.wait(120), "the first micro-batch never started"
        time.sleep(2)  # inside the Delta write's Spark job
        assert query.status["isTriggerActive"], "the batch finished before the stop: the test proves nothing"
    finally:
        query.stop()

    assert query.exception() is None
    # "Stopped" is set only by the stop path; a stream thread killed by an Error leaves the batch's message
    assert query.status["message"] == "Stopped", query.status
    assert not list(table.glob("_delta_log/*.json")), "nothing was committed"
