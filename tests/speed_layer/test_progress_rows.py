from __future__ import annotations

import contextlib
from datetime import UTC, datetime

from speed_layer.progress import progress_row


def test_progress_row_reads_lag_watermark_and_late_rows() -> None:
    progress = {
        "id": "q",
        "runId": "r",
        "name": "rollups",
        "timestamp": "2026-01-01T10:00:05.000Z",
        "batchId": 7,
        "batchDuration": 812,
        "numInputRows": 1200,
        "inputRowsPerSecond": 1000.0,
        "processedRowsPerSecond": 1477.8,
        "eventTime": {"watermark": "2026-01-01T09:55:00.000Z"},
        "stateOperators": [{"numRowsDroppedByWatermark": 3}, {"numRowsDroppedByWatermark": 2}],
        "sources": [
            {
                "latestOffset": '{"retail.events":{"0":10,"1":20,"2":30}}',
                "metrics": {"avgOffsetsBehindLatest": "4.0", "maxOffsetsBehindLatest": "6"},
            }
        ],
    }
    row = progress_row(progress)
    assert row["query"] == "rollups" and row["batch_id"] == 7
    assert row["watermark"] == datetime(2026, 1, 1, 9, 55, tzinfo=UTC)
    assert row["offsets_behind"] == 12
    assert row["late_rows"] == 5
    assert row["batch_duration_ms"] == 812


def test_epoch_watermark_means_none_yet() -> None:
    row = progress_row({"batchId": 0, "eventTime": {"watermark": "1970-01-01T00:00:00.000Z"}, "sources": []})
    assert row["watermark"] is None and row["offsets_behind"] == 0 and row["late_rows"] == 0


def test_sources_without_kafka_offsets_report_no_lag() -> None:
    row = progress_row({"batchId": 3, "sources": [{"latestOffset": "1500", "metrics": {}}]})
    assert row["offsets_behind"] == 0


def test_the_jvm_listener_records_every_batch_and_a_failed_query(spark, tmp_path) -> None:  # type: ignore[no-untyped-def]
    """ProgressRecorder with the JVM ProgressBuffer on a real session: one row per micro-batch, named after the
    query, and a row carrying the error of a query that failed."""
    import json

    from deltalake import DeltaTable

    from speed_layer.progress import ProgressRecorder

    source = tmp_path / "in"
    source.mkdir()
    for index in range(3):
        (source / f"{index}.json").write_text(json.dumps({"n": index}) + "\n")
    recorder = ProgressRecorder(str(tmp_path / "progress"), flush_every_s=3600)
    recorder.attach(spark)

    def fail(_batch, _batch_id):  # type: ignore[no-untyped-def]
        raise RuntimeError("boom in foreachBatch")

    try:
        frames = spark.readStream.schema("n int").option("maxFilesPerTrigger", 1).json(str(source))
        ok = (
            frames.writeStream.queryName("progress-ok")
            .format("noop")
            .option("checkpointLocation", str(tmp_path / "ck-ok"))
            .trigger(availableNow=True)
            .start()
        )
        ok.awaitTermination()
        bad = (
            frames.writeStream.queryName("progress-bad")
            .foreachBatch(fail)
            .option("checkpointLocation", str(tmp_path / "ck-bad"))
            .trigger(availableNow=True)
            .start()
        )
        with contextlib.suppress(Exception):
            bad.awaitTermination()
        spark.sparkContext._jsc.sc().listenerBus().waitUntilEmpty()  # the listener bus delivers asynchronously
    finally:
        recorder.close()  # takes what the listener still holds, removes it and writes
    rows = DeltaTable(str(tmp_path / "progress")).to_pandas()
    ok_rows = rows[rows["query"] == "progress-ok"]
    assert sorted(ok_rows.batch_id) == [0, 1, 2]
    assert ok_rows.input_rows.sum() == 3
    errors = rows[rows["query"] == "progress-bad"].error.dropna()
    assert errors.str.contains("boom in foreachBatch").any()
