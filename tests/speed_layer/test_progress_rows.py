from __future__ import annotations

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
