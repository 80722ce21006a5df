"""Speed layer job: Kafka (retail.events) → bronze + quarantine (Delta), live views (Kafka), their Delta copy.

Four streaming queries, each with its own checkpoint and scheduler pool. On a local master `retail speed` runs
``--part split`` by default: everything that reads retail.events (bronze, rollups, inventory) in its own process,
and the Delta copy in a child process at a lower CPU priority (CopyDriver); on a cluster, ``one`` driver:

- ``bronze``    (pool bronze, RETAIL_SPEED_BRONZE_TRIGGER) stateless: every valid record → bronze/events (before
                any watermark or dedup), every invalid one → bronze/quarantine with its reason. Off the latency path.
- ``rollups``   (pool live, RETAIL_SPEED_TRIGGER) watermark + dedup by event_id + the shared minute metric →
                Spark's Kafka sink → the compacted topic retail.speed.sales (update mode).
- ``inventory`` (pool live) stock per product and low-stock alerts (a JVM stateful processor) → Spark's Kafka
                sink → the compacted topic retail.speed.inventory and the topic retail.alerts.
- ``durable``   (pool durable, RETAIL_SPEED_DURABLE_TRIGGER) reads those three topics back and MERGEs the newest
                value per key into speed/sales_minute, speed/inventory and speed/alerts, once per micro-batch.

The serving layer materialises the speed topics in memory, so an event reaches the API after one live
micro-batch: no Delta commit and no Python worker on the way (docs/design.md, "The flow").

After `retail rebuild-speed` (speed_layer/rebuild.py) a restart plan under the checkpoint root says where each
query's new checkpoint starts, the event-time floor of the live queries and the inventory's initial state.

Usage::

    retail speed                       # run until stopped (Ctrl-C): split on a local master, else one
    retail speed --part one            # all four queries on this driver
    retail speed --part events         # bronze + live queries only (with `--part copy` elsewhere, e.g. two submits)
    retail speed --available-now       # process what is in Kafka now, then stop (tests, catch-up; one driver)

Settings: RETAIL_SPEED_WATERMARK, RETAIL_SPEED_TRIGGER, RETAIL_SPEED_BRONZE_TRIGGER, RETAIL_SPEED_DURABLE_TRIGGER,
RETAIL_SPEED_COPY_NICENESS, RETAIL_SPEED_SHUFFLE_PARTITIONS, RETAIL_SPEED_MAX_OFFSETS_PER_TRIGGER,
RETAIL_SPEED_STARTING_OFFSETS,
RETAIL_LOW_STOCK_THRESHOLD (docs/settings.md).
"""

from __future__ import annotations

import contextlib
import ctypes
import logging
import os
import re
import signal
import subprocess
import sys
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

from delta.tables import DeltaTable
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql.streaming import DataStreamWriter, StreamingQuery

from contracts.parser import parse_kafka_records
from contracts.settings import Settings
from contracts.spark import build_spark_session
from contracts.storage import delta_rs_location
from contracts.tables import Lake
from contracts.topics import ensure_topics, pipeline_topics
from speed_layer.progress import ProgressRecorder
from speed_layer.sinks import (
    QueryIdentity,
    RestartPlan,
    append_once,
    crash_planned_for,
    ensure_speed_tables,
    inventory_state_path,
    load_restart_plan,
    maybe_crash_for_test,
    merge_once,
)
from speed_layer.transforms import (
    inventory_records,
    inventory_updates,
    latest_speed_rows,
    minute_rollups,
    quarantined_records,
    sales_records,
    valid_events,
)

__all__ = ["SpeedLayer", "run"]

log = logging.getLogger(__name__)

BatchFn = Callable[[DataFrame, int], None]


def _duration(text: str) -> timedelta:
    match = re.fullmatch(r"\s*(\d+)\s*(second|minute|hour)s?\s*", text)
    if not match:
        raise ValueError(f"speed_watermark must look like '5 minutes' or '30 seconds', got {text!r}")
    amount, unit = int(match.group(1)), match.group(2)
    return timedelta(**{f"{unit}s": amount})


PARTS = ("split", "one", "events", "copy")
# set by CopyDriver in its child's environment: the parent's pid (become_copy_child)
COPY_PARENT_ENV = "RETAIL_SPEED_COPY_PARENT_PID"
_FAIR_SCHEDULER_FILE = Path(__file__).with_name("fairscheduler.xml")


def speed_session_conf(settings: Settings) -> dict[str, str]:
    """Spark settings of the speed layer's own session (on top of contracts.spark.spark_conf)."""
    return {
        # every stateful operator keeps one state store (RocksDB instance) per shuffle partition and commits each
        # one every micro-batch: on two cores one partition per operator gave event→served p95 5.1 s instead of
        # 8.6 s at 1,000 events/s (docs/design.md, "Latency"). A query keeps the number its checkpoint was
        # created with, so this only changes new checkpoints.
        "spark.sql.shuffle.partitions": str(settings.speed_shuffle_partitions),
        # the live queries' tasks go before bronze's and the Delta copy's (speed_layer/fairscheduler.xml)
        "spark.scheduler.mode": "FAIR",
        "spark.scheduler.allocation.file": str(_FAIR_SCHEDULER_FILE),
    }


@dataclass
class SpeedLayer:
    """Builds and starts the queries on one session. ``start`` returns the running queries."""

    spark: SparkSession
    settings: Settings
    available_now: bool = False

    def __post_init__(self) -> None:
        self.lake = Lake(self.settings.lake_root, self.settings.checkpoint_root)
        self.watermark_delay = _duration(self.settings.speed_watermark)
        self._plan: RestartPlan | None = None

    def _starting_offsets(self, query: str) -> str:
        # after `retail rebuild-speed`: the offsets consistent with the rebuilt views (used by Spark only when the
        # query's checkpoint is new); otherwise the setting
        if self._plan is not None and query in self._plan.offsets:
            return self._plan.offsets[query]
        return self.settings.speed_starting_offsets

    # --- sources and sinks ----------------------------------------------------------------------------
    def _kafka_options(self) -> dict[str, str]:
        return {f"kafka.{key}": value for key, value in self.settings.kafka_client_options().items()}

    def _kafka_records(self, topics: str, query: str) -> DataFrame:
        reader = self.spark.readStream.format("kafka").options(**self._kafka_options())
        reader = (
            reader.option("subscribe", topics)
            .option("startingOffsets", self._starting_offsets(query))
            # a gap in the topic (retention deleted unread data) must stop the job, never pass silently
            .option("failOnDataLoss", "true")
            # answer a fetch as soon as data is there instead of waiting to fill a batch
            .option("kafka.fetch.max.wait.ms", "20")
        )
        if self.settings.speed_max_offsets_per_trigger:
            reader = reader.option("maxOffsetsPerTrigger", self.settings.speed_max_offsets_per_trigger)
        return reader.load()

    def _trigger(self, writer: DataStreamWriter, interval: str) -> DataStreamWriter:
        return writer.trigger(availableNow=True) if self.available_now else writer.trigger(processingTime=interval)

    def _start(self, name: str, pool: str, writer: DataStreamWriter, interval: str) -> StreamingQuery:
        writer = self._trigger(
            writer.queryName(name).option("checkpointLocation", self.lake.checkpoint(name)),
            interval,
        )
        # a query's micro-batches run in the pool set on the thread that starts it (Spark's fair scheduler)
        self.spark.sparkContext.setLocalProperty("spark.scheduler.pool", pool)
        try:
            return writer.start()
        finally:
            self.spark.sparkContext.setLocalProperty("spark.scheduler.pool", None)  # type: ignore[arg-type]

    def _start_batches(
        self, name: str, pool: str, frame: DataFrame, batch_fn: BatchFn, output_mode: str, interval: str
    ) -> StreamingQuery:
        identity = QueryIdentity(name)

        def on_batch(batch: DataFrame, batch_id: int) -> None:
            # foreachBatch runs on a Python callback thread: give its jobs the query's pool there too
            batch.sparkSession.sparkContext.setLocalProperty("spark.scheduler.pool", pool)
            batch_fn(batch, batch_id, identity.app_id)  # type: ignore[call-arg]
            maybe_crash_for_test(name)

        query = self._start(name, pool, frame.writeStream.outputMode(output_mode).foreachBatch(on_batch), interval)
        identity.set(query.id)
        return query

    def _start_to_kafka(self, name: str, records: DataFrame) -> StreamingQuery:
        """A live query: update-mode records (topic, key, value) through Spark's Kafka sink."""
        options = {**self._kafka_options(), "kafka.linger.ms": "0"}
        if crash_planned_for(name):
            # test-only: the same records written from foreachBatch, so a crash can land between the Kafka write
            # and the checkpoint commit of one micro-batch (the window that replays a batch)
            def write(batch: DataFrame, _batch_id: int, _app_id: str) -> None:
                batch.write.format("kafka").options(**options).save()

            return self._start_batches(name, "live", records, write, "update", self.settings.speed_trigger)
        writer = records.writeStream.format("kafka").options(**options).outputMode("update")
        return self._start(name, "live", writer, self.settings.speed_trigger)

    # --- bronze + quarantine ------------------------------------------------------------------------
    def _write_bronze(self, batch: DataFrame, batch_id: int, app_id: str) -> None:
        parsed = batch.persist()
        try:
            append_once(valid_events(parsed), self.lake.bronze_events, app_id, batch_id)
            quarantined = quarantined_records(parsed)
            # most batches hold no bad record, and even an empty Delta commit costs ~0.8 s of driver work here
            # (measured: 10,000 records, 2.9 → 2.1 s per batch). A replay sees the same records and the same batch
            # time (Spark keeps it in the offset log), so it makes the same choice.
            if not quarantined.isEmpty():
                append_once(quarantined, self.lake.bronze_quarantine, app_id, batch_id)
        finally:
            parsed.unpersist()

    # --- the durable Delta copy of the live views -----------------------------------------------------
    def _durable_targets(self) -> list[tuple[str, str, str]]:
        settings = self.settings
        return [
            (
                settings.speed_sales_topic,
                "speed/sales_minute",
                "t.bucket_start = s.bucket_start AND t.dimension = s.dimension AND t.key = s.key",
            ),
            (settings.speed_inventory_topic, "speed/inventory", "t.product_id = s.product_id"),
            (settings.alerts_topic, "speed/alerts", "t.alert_id = s.alert_id"),
        ]

    def _write_durable(self, batch: DataFrame, batch_id: int, app_id: str) -> None:
        records = batch.persist()
        try:
            for topic, table, on in self._durable_targets():
                rows = latest_speed_rows(records, topic, table).persist()
                try:
                    if not rows.isEmpty():
                        merge_once(rows, self.lake.table(table), on, app_id, batch_id)
                finally:
                    rows.unpersist()
        finally:
            records.unpersist()

    # --- wiring ---------------------------------------------------------------------------------------
    def _prepare(self, create_topics: bool = True) -> None:
        ensure_speed_tables(self.spark, self.lake)
        if create_topics:
            ensure_topics(pipeline_topics(self.settings), self.settings.kafka_python_options())
        self._plan = load_restart_plan(self.spark, self.lake)

    def _parsed(self, query: str) -> DataFrame:
        # The skew limit (event_time at most RETAIL_MAX_EVENT_TIME_SKEW_SECONDS past ingest): bronze compares with
        # its batch's current time, the ingest time the master dataset records; the live queries compare with each
        # record's Kafka timestamp, a column. The batch time is an inlined literal, so a live plan using it would
        # generate different code every micro-batch and compile it again each time (~0.2-0.4 s of CPU per batch
        # and query; measured in docs/design.md "Latency"). An event within a few seconds of the limit can thus be
        # admitted by one query and not another; bronze's verdict (master dataset or quarantine) is the record,
        # and the nightly batch recomputes from it.
        return parse_kafka_records(
            self._kafka_records(self.settings.events_topic, query),
            max_event_time_skew_seconds=self.settings.max_event_time_skew_seconds,
            ingest_time=None if query == "bronze" else F.col("timestamp"),
            currency=self.settings.currency,
        )

    def _live_events(self, query: str) -> DataFrame:
        events = valid_events(self._parsed(query))
        if self._plan is not None and self._plan.live_cutoff is not None:
            # a rebuilt speed layer: buckets before the cutoff are the rebuild's; a new checkpoint has no
            # watermark in its first micro-batch, so this floor stands in for it (later the watermark is past it)
            events = events.where(F.col("event_time") >= F.lit(self._plan.live_cutoff))
        return events

    def start_bronze(self) -> StreamingQuery:
        """Start bronze + quarantine (every valid record, before any watermark or dedup)."""
        return self._start_batches(
            "bronze",
            "bronze",
            self._parsed("bronze"),
            self._write_bronze,
            "append",
            self.settings.speed_bronze_trigger,
        )

    def start_views(self) -> list[StreamingQuery]:
        """Start the two live queries: minute rollups, and inventory + alerts (Spark's Kafka sink)."""
        # spark.sql.streaming.noDataMicroBatches.enabled stays true: without the batch that only moves the
        # watermark, Spark filters late input one batch behind (its late-event watermark is the previous
        # batch's), so an event beyond the watermark could still be counted; under load no such batch runs anyway
        settings = self.settings
        initial_inventory = None
        if self._plan is not None and DeltaTable.isDeltaTable(self.spark, inventory_state_path(self.lake)):
            initial_inventory = self.spark.read.format("delta").load(inventory_state_path(self.lake))
        return [
            self._start_to_kafka(
                "rollups",
                sales_records(
                    minute_rollups(self._live_events("rollups"), settings.speed_watermark), settings.speed_sales_topic
                ),
            ),
            self._start_to_kafka(
                "inventory",
                inventory_records(
                    inventory_updates(
                        self._live_events("inventory"),
                        settings.low_stock_threshold,
                        self.watermark_delay,
                        initial_inventory,
                    ),
                    settings.speed_inventory_topic,
                    settings.alerts_topic,
                ),
            ),
        ]

    def start_live(self) -> list[StreamingQuery]:
        """Start bronze and the two live queries (everything that reads retail.events)."""
        self._prepare()
        return [self.start_bronze(), *self.start_views()]

    def start_durable(self) -> StreamingQuery:
        """Start the query that copies the speed topics into the Delta speed tables."""
        topics = ",".join(topic for topic, _, _ in self._durable_targets())
        return self._start_batches(
            "durable",
            "durable",
            self._kafka_records(topics, "durable"),
            self._write_durable,
            "append",
            self.settings.speed_durable_trigger,
        )

    def start(self, part: str = "one", create_topics: bool = True) -> list[StreamingQuery]:
        """Start the queries of ``part`` (continuous mode); see ``drain`` for available-now runs.

        ``one``: every query on this session. ``events``: the queries that read retail.events (bronze and the two
        live queries). ``copy``: the Delta copy of the speed topics only (`retail speed` runs it as a second,
        lower-priority driver: CopyDriver). ``create_topics=False`` when a parent driver has created them: no
        admin request to Kafka at start, so a broker outage while the child starts does not stop it (its Kafka
        source waits for the broker like every running query does).
        """
        if self.available_now:
            raise ValueError("available_now runs go through drain(), which orders the queries")
        if part not in ("one", "events", "copy"):
            raise ValueError(f"part must be one, events or copy, got {part!r}")
        self._prepare(create_topics)
        queries: list[StreamingQuery] = []
        if part in ("one", "events"):
            queries.append(self.start_bronze())
            queries.extend(self.start_views())
        if part in ("one", "copy"):
            queries.append(self.start_durable())
        return queries

    def drain(self) -> None:
        """Available-now: process what Kafka holds, then copy the live views to Delta; raises if a query failed."""
        if not self.available_now:
            raise ValueError("drain() needs available_now=True")
        for query in self.start_live():
            _await(query)
        # the Delta copy reads the live queries' output, so it runs once they have written everything
        _await(self.start_durable())


def _await(query: StreamingQuery) -> None:
    query.awaitTermination()
    if query.exception() is not None:
        raise RuntimeError(f"speed query {query.name} failed: {query.exception()}")


class CopyDriver:
    """The second driver of `retail speed --part split`: the Delta copy of the speed topics, in a child process.

    Its JVM gets the CPU the first driver leaves (``nice`` RETAIL_SPEED_COPY_NICENESS): its three MERGEs per
    micro-batch (tens of seconds of work on two busy cores) no longer take the live queries' CPU, which the fair
    scheduler pools cannot prevent (they only order tasks). Falling behind costs nothing the live answers or the
    batch depend on: the copy catches up in larger batches, exactly once. The child dies with its parent
    (PR_SET_PDEATHSIG on Linux), takes SIGTERM from it on a graceful stop, and a child that exits on its own stops
    the parent too.
    """

    def __init__(self, settings: Settings) -> None:
        niceness = settings.speed_copy_niceness
        # the speed layer's own entry point (main below), not the CLI above it
        argv = [sys.executable, "-m", "speed_layer.job", "--part", "copy"]
        # No preexec_fn: Python code between fork and exec can deadlock in this multi-threaded driver (py4j, the
        # progress recorder). The child lowers its own priority and ties itself to this process first thing
        # (become_copy_child), before it starts any thread or its JVM.
        env = {**os.environ, COPY_PARENT_ENV: str(os.getpid())}
        self.process = subprocess.Popen(argv, env=env)  # noqa: S603 - our own CLI
        self.stopping = threading.Event()
        print(
            f"speed layer: copy driver (the Delta copy) started: pid {self.process.pid}, nice +{niceness}", flush=True
        )

    def watch(self, on_exit: Callable[[int], None]) -> None:
        """Call ``on_exit(code)`` from a thread when the child exits without being asked to."""

        def wait() -> None:
            code = self.process.wait()
            if not self.stopping.is_set():
                on_exit(code)

        threading.Thread(target=wait, name="copy-driver-watch", daemon=True).start()

    def stop(self, grace_s: float = 90.0) -> bool:
        """SIGTERM (its queries stop between batches), then SIGKILL after ``grace_s``; False if it had failed."""
        self.stopping.set()
        if self.process.poll() is not None:
            return self.process.returncode == 0
        with contextlib.suppress(ProcessLookupError):
            self.process.terminate()
        try:
            self.process.wait(timeout=grace_s)
        except subprocess.TimeoutExpired:
            log.error("the copy driver did not stop within %.0f s: killing it", grace_s)
            self.process.kill()
            self.process.wait()
            return False
        # 130: the interrupt reached it inside a py4j call; -15: before its handler was installed
        return self.process.returncode in (0, 130, -signal.SIGTERM)


def become_copy_child(niceness: int) -> bool:
    """First thing of ``--part copy``: when CopyDriver started this process (its pid in COPY_PARENT_ENV), leave
    Ctrl-C to the parent, lower this process's CPU priority (the JVM started next inherits it) and die with the
    parent. Returns whether it was so started."""
    parent = os.environ.pop(COPY_PARENT_ENV, None)
    if parent is None:
        return False
    # a terminal's Ctrl-C reaches the whole process group: the child leaves it to the parent, which stops it with
    # SIGTERM once its own queries have stopped
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    os.nice(niceness)
    if sys.platform == "linux":
        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG, even if it is SIGKILLed
    if str(os.getppid()) != parent:  # the parent died before the line above: nobody would stop this driver
        raise SystemExit(f"speed layer copy driver: its parent {parent} is gone")
    return True


def _interrupt(_signum: int, _frame: object) -> None:
    raise KeyboardInterrupt


def default_part(settings: Settings) -> str:
    """``split`` on a local master (the Delta copy's MERGEs then run at a lower CPU priority than the live
    queries); ``one`` on a cluster, where executors do the work and a second application would wait for cores."""
    return "split" if settings.spark_master.startswith("local") else "one"


def run(settings: Settings, available_now: bool = False, part: str | None = None) -> int:
    """Entry point of `retail speed`: start the queries and wait; returns a process exit code.

    ``part`` (None: ``default_part``): ``split`` runs bronze and the live queries here and the Delta copy in a
    second, lower-priority driver (CopyDriver); ``one`` runs all four queries on this driver; ``events`` / ``copy``
    run one half only (e.g. as two spark-submits on a cluster). ``available_now`` runs every query here, in order.
    """
    part = default_part(settings) if part is None else part
    if part not in PARTS:
        raise ValueError(f"part must be one of {', '.join(PARTS)}, got {part!r}")
    child = part == "copy" and become_copy_child(settings.speed_copy_niceness)  # started by CopyDriver
    # CopyDriver starts its child once this driver has created the topics: the child asks Kafka nothing at start
    # (a copy child that started during a broker outage exited 2 on its admin request and stopped both drivers)
    topics_ready = child
    if part == "copy":
        # the parent's CopyDriver.stop (and its death, through PR_SET_PDEATHSIG) stop this driver gracefully
        signal.signal(signal.SIGTERM, _interrupt)
    app_name = "retail-speed-layer-copy" if part == "copy" else "retail-speed-layer"
    spark = build_spark_session(settings, app_name=app_name, extra_conf=speed_session_conf(settings))
    if child:
        signal.signal(signal.SIGINT, signal.SIG_IGN)  # SparkContext installs its own Ctrl-C handler
    lake = Lake(settings.lake_root, settings.checkpoint_root)
    progress_uri, progress_options = delta_rs_location(lake.table("speed/progress"), settings)
    recorder = ProgressRecorder(progress_uri, storage_options=progress_options)
    recorder.attach(spark)
    layer = SpeedLayer(spark, settings, available_now=available_now)
    print(
        f"speed layer {'draining' if available_now else 'running'} ({'all queries' if available_now else part}): "
        f"reading {settings.events_topic} at {settings.kafka_bootstrap_servers}; live views on "
        f"{settings.speed_sales_topic}, {settings.speed_inventory_topic}, {settings.alerts_topic}; "
        f"lake {settings.lake_root}",
        flush=True,
    )
    if available_now:
        try:
            layer.drain()
        except Exception as error:  # noqa: BLE001 - recorded for /api/health, then the exit code says it
            log.error("%s", error)
            recorder.record_error(error)
            return 1
        finally:
            recorder.close()
        return 0
    copy: CopyDriver | None = None
    copy_failed: list[int] = []
    try:
        queries = layer.start("events" if part == "split" else part, create_topics=not topics_ready)
        if part == "split":
            # started once this driver has created the tables and topics, so the two never race to create them
            copy = CopyDriver(settings)

            def copy_exited(code: int) -> None:
                copy_failed.append(code)
                log.error("the copy driver (the Delta copy) exited with code %s: stopping", code)
                recorder.record_error(f"the copy driver (the Delta copy) exited with code {code}")
                for query in queries:
                    query.stop()

            copy.watch(copy_exited)
    except Exception as error:
        recorder.record_error(error)
        recorder.close()
        if copy is not None:
            copy.stop()
        raise
    failed = False
    try:
        spark.streams.awaitAnyTermination()
    except KeyboardInterrupt:
        print("stopping speed layer ...", flush=True)
    finally:
        for query in queries:
            if query.exception() is not None:
                failed = True
                log.error("query %s failed: %s", query.name, query.exception())
            query.stop()
        if copy is not None and not copy.stop():
            failed = True
        recorder.close()
    return 1 if failed or copy_failed else 0


def main(argv: list[str] | None = None) -> int:
    """``python -m speed_layer.job [--part PART]``: how CopyDriver starts its child. Errors a user can cause are
    one line and exit code 2, Ctrl-C is 130, as with ``retail speed``."""
    import argparse

    from contracts.errors import RetailError

    parser = argparse.ArgumentParser(prog="python -m speed_layer.job", description="Run the speed layer.")
    parser.add_argument("--part", choices=PARTS, default=None, help="which queries run here (default: by master)")
    args = parser.parse_args(argv)
    try:
        return run(Settings(), part=args.part)
    except KeyboardInterrupt:
        return 130
    except (RetailError, ValueError, OSError) as error:
        print(f"speed layer ({args.part or 'default part'}): {error}", file=sys.stderr, flush=True)
        return 2


if __name__ == "__main__":
    sys.exit(main())
