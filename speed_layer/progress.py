"""Per-micro-batch progress of every speed query, stored in the speed/progress Delta table.

The listener is JVM code (retail.speed.ProgressBuffer in speed_layer/jvm) that only buffers each event as a JSON
line: a listener written in Python is called back through py4j for every event, which cost about a sixth of the
speed layer's CPU. A background thread takes the buffered lines every few seconds with one call and appends the
rows with delta-rs, without taking Spark's cores from the queries.
"""

from __future__ import annotations

import json
import logging
import queue
import threading
from datetime import UTC, datetime

import pyarrow as pa
from pyspark.sql import SparkSession

__all__ = ["ProgressRecorder", "PROGRESS_ARROW_SCHEMA", "progress_row", "DRIVER_ROW", "status_row"]

# the `query` of the rows that speak for the whole driver: heartbeats while it runs, and its fatal errors

from contracts.progress import DRIVER_ROW

log = logging.getLogger(__name__)

_TS = pa.timestamp("us", tz="UTC")
PROGRESS_ARROW_SCHEMA = pa.schema(
    [
        ("query", pa.string()),
        ("batch_id", pa.int64()),
        ("run_id", pa.string()),
        ("timestamp", _TS),
        ("input_rows", pa.int64()),
        ("input_rows_per_s", pa.float64()),
        ("processed_rows_per_s", pa.float64()),
        ("batch_duration_ms", pa.int64()),
        ("watermark", _TS),
        ("offsets_behind", pa.int64()),
        ("late_rows", pa.int64()),
        ("durations", pa.string()),
        ("error", pa.string()),
    ]
)


def _parse_time(text: str | None) -> datetime | None:
    if not text:
        return None
    return datetime.fromisoformat(text.replace("Z", "+00:00")).astimezone(UTC)


def progress_row(progress: dict) -> dict:  # type: ignore[type-arg]
    """One progress table row from Spark's StreamingQueryProgress JSON (pure)."""
    offsets_behind = 0
    for source in progress.get("sources", []):
        metrics = source.get("metrics") or {}
        latest = source.get("latestOffset")
        partitions = 0
        if latest:
            offsets = json.loads(latest) if isinstance(latest, str) else latest
            # Kafka: {"topic": {"0": offset, ...}}; other sources report other shapes and no lag
            if isinstance(offsets, dict):
                partitions = sum(
                    len(by_partition) for by_partition in offsets.values() if isinstance(by_partition, dict)
                )
        average = float(metrics.get("avgOffsetsBehindLatest", 0) or 0)
        offsets_behind += round(average * partitions)
    watermark = (progress.get("eventTime") or {}).get("watermark")
    watermark_time = _parse_time(watermark)
    if watermark_time is not None and watermark_time.timestamp() <= 0:
        watermark_time = None  # Spark reports the epoch until the first watermark exists
    return {
        "query": progress.get("name") or progress.get("id"),
        "batch_id": int(progress["batchId"]),
        "run_id": progress.get("runId"),
        "timestamp": _parse_time(progress.get("timestamp")),
        "input_rows": int(progress.get("numInputRows", 0)),
        "input_rows_per_s": float(progress.get("inputRowsPerSecond") or 0.0),
        "processed_rows_per_s": float(progress.get("processedRowsPerSecond") or 0.0),
        "batch_duration_ms": int(progress.get("batchDuration", 0)),
        "watermark": watermark_time,
        "offsets_behind": offsets_behind,
        "late_rows": sum(int(op.get("numRowsDroppedByWatermark", 0)) for op in progress.get("stateOperators", [])),
        # Spark's phase durations of the micro-batch in ms (addBatch, getBatch, latestOffset, queryPlanning,
        # walCommit, commitOffsets, triggerExecution), as JSON
        "durations": json.dumps(progress.get("durationMs") or {}, sort_keys=True),
    }


def status_row(query: str, error: str | None = None) -> dict:  # type: ignore[type-arg]
    """A row that is no micro-batch (batch_id -1): a heartbeat of ``query``, or the error that stopped it."""
    return {
        "query": query,
        "batch_id": -1,
        "timestamp": datetime.now(UTC),
        "input_rows": 0,
        "error": None if error is None else error[:4000],
    }


class ProgressRecorder:
    """Takes each query's progress from the JVM and appends it to ``path`` every ``flush_every_s`` seconds.

    ``attach(spark)`` registers the JVM listener on a session (``detach`` removes it). Every flush also appends a
    heartbeat row (query ``driver``, batch_id -1), so a reader can tell a driver that is idle from one that is
    gone; a query that terminates with an exception leaves a row with ``error`` set.
    """

    def __init__(self, path: str, flush_every_s: float = 5.0, storage_options: dict[str, str] | None = None) -> None:
        # written with delta-rs, not Spark: on object storage it needs its own options (contracts.storage)
        self.path = path
        self.storage_options = storage_options
        self.flush_every_s = flush_every_s
        self._names: dict[str, str] = {}
        self._rows: queue.Queue[dict] = queue.Queue()  # type: ignore[type-arg]
        self._buffer = None
        self._spark: SparkSession | None = None
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="progress-recorder", daemon=True)
        self._thread.start()

    def attach(self, spark: SparkSession) -> None:
        """Listen to every streaming query of ``spark`` (the JVM listener retail.speed.ProgressBuffer)."""
        self._buffer = spark._jvm.retail.speed.ProgressBuffer()  # type: ignore[union-attr]
        self._spark = spark
        spark._jsparkSession.streams().addListener(self._buffer)  # type: ignore[attr-defined]

    def detach(self) -> None:
        """Take what the listener holds, then remove it from the session."""
        if self._buffer is None or self._spark is None:
            return
        self.collect()
        self._spark._jsparkSession.streams().removeListener(self._buffer)  # type: ignore[attr-defined]
        self._buffer = None

    def collect(self) -> int:
        """Queue a row per event the JVM listener buffered since the last call; returns how many events."""
        with self._lock:
            buffer = self._buffer
            text = buffer.drain() if buffer is not None else ""
            lines = [line for line in text.split("\n") if line.strip()]
            for line in lines:
                self._event(json.loads(line))
        return len(lines)

    def _event(self, event: dict) -> None:  # type: ignore[type-arg]
        if "started" in event:
            self._names[event["started"]] = event.get("name")
            log.info("query %s started (id %s)", event.get("name"), event["started"])
        elif "terminated" in event:
            if event.get("exception"):
                name = self._names.get(event["terminated"]) or event["terminated"]
                log.error("query %s terminated: %s", name, event["exception"])
                self._rows.put(status_row(name, event["exception"]))
        elif event.get("batchId") is not None:
            self._rows.put(progress_row(event))

    def record_error(self, error: BaseException | str) -> None:
        """Record an error that stops the whole driver (e.g. it could not start its queries)."""
        self._rows.put(status_row(DRIVER_ROW, str(error)))

    def flush(self) -> int:
        """Append every queued row now; returns how many were written."""
        rows = []
        while True:
            try:
                rows.append(self._rows.get_nowait())
            except queue.Empty:
                break
        if not rows:
            return 0
        from deltalake import write_deltalake

        write_deltalake(
            self.path,
            pa.Table.from_pylist(rows, schema=PROGRESS_ARROW_SCHEMA),
            mode="append",
            schema_mode="merge",
            storage_options=self.storage_options,
        )
        return len(rows)

    def _run(self) -> None:
        while not self._stop.wait(self.flush_every_s):
            self._rows.put(status_row(DRIVER_ROW))
            try:
                self.collect()
                self.flush()
            except Exception:  # noqa: BLE001 - progress is diagnostics: log and keep the queries running
                log.exception("writing speed progress to %s failed", self.path)

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=10)
        try:
            self.detach()
        except Exception:  # noqa: BLE001 - the session may be gone already (Ctrl-C): keep what was taken
            log.exception("taking the last speed progress failed")
        self.flush()
