"""`make bench-speed`: event→served latency, alert latency, lag, phases and backlog drain of the speed path.

Usage::

    python -m benchmarks.speed [--rates 1000,5000,10000] [--duration 60] [--warmup 20]
                               [--drain-events 1000000] [--poll-interval 0.05] [--out BENCHMARKS.md]
                               [--start-timeout 600] [--catch-up-timeout 300] [--development] [--keep]
                               [--json PATH]

Everything runs on this machine, on free loopback ports, in a temporary folder: its own broker (LocalKafka), the
pipeline's topics (contracts.topics.pipeline_topics), then `retail speed` and `retail serve` as subprocesses
(each in its own process group; all of them are stopped at the end, also on errors and Ctrl-C).

Load: Kafka's own Java producer (``org.apache.kafka.tools.ConsoleProducer``, acks=all, idempotent, linger 5 ms)
fed through its stdin with pre-formatted ``key<TAB>json`` lines every 10 ms, so the load generator does not take
a Python core from Spark. Events are contract-valid (50 products, the generator's mix), event_time = when the
line is written, unique event ids. Each rate runs ``--warmup`` seconds, then ``--duration`` measured seconds.

event→served (docs/design.md, "Latency, as the benchmarks measure it"): a thread polls /api/revenue (total,
minute grain) every ``--poll-interval`` seconds and records (receive time, orders per minute bucket). After the
load the purchases are read back from the events topic (Kafka CreateTime, event_time); the i-th purchase of
bucket b by CreateTime counts as served at the first poll whose orders(b) >= i. Alert latency: a planted product
crosses the low-stock threshold every ~5 s; CreateTime of the crossing purchase → the alert's message on
retail.alerts (its Kafka timestamp) and → the first poll of /api/alerts listing its alert_id.

Drain: with the live speed layer stopped, ``--drain-events`` events on a fresh topic, timed through
`retail speed --available-now` with fresh checkpoints, and Kafka's ConsumerPerformance over the same backlog.
The results replace the bench-speed section of BENCHMARKS.md (between its markers; other sections untouched);
``--json PATH`` also writes the headline numbers as JSON (what ``python -m benchmarks.all`` reads).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks.machine import describe
from benchmarks.speed_tools import (
    MINUTE_MS,
    AlertsPoller,
    CpuMeter,
    EventLines,
    JavaProducer,
    ManagedProcesses,
    RevenuePoller,
    checkpoint_commits,
    console_producer_args,
    end_offsets,
    java_command,
    percentile,
    read_topic,
    served_times,
)
from contracts.events import EventType
from contracts.settings import PROJECT_ROOT, Settings
from contracts.tables import Lake
from contracts.topics import pipeline_topics
from infra.kafka_broker import LocalKafka
from infra.processes import free_port
from speed_layer.job import default_part

MARK_START, MARK_END = "<!-- bench-speed:start -->", "<!-- bench-speed:end -->"

# targets (the issue's); compared with the unrounded measurements
TARGET_P95_1K_S = 1.0
TARGET_P95_10K_S = 2.0
TARGET_ALERT_P95_S = 2.0
TARGET_DRAIN_EPS = 50_000.0
# lag counts as flat when the mean lag of the window's last third exceeds its first third's by at most this much
# input (in seconds of the offered rate)
FLAT_LAG_S = 0.5

PLANTED_PRODUCT = "p9001"  # not in the random mix (p0001..p0050)
ALERT_PERIOD_S = 5.0  # purchase 95 (100 → 5: crosses the threshold), half a period later restock 95 (→ 100)
LIVE_QUERIES = ("rollups", "inventory")
QUERIES = ("bronze", "rollups", "inventory", "durable")
PHASES = ("latestOffset", "getBatch", "queryPlanning", "walCommit", "addBatch", "commitOffsets", "triggerExecution")


def _log(message: str) -> None:
    print(f"[bench-speed {datetime.now(UTC):%H:%M:%S}] {message}", flush=True)


def _now_ms() -> int:
    return time.time_ns() // 1_000_000


def _tail(path: Path, lines: int = 30) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except FileNotFoundError:
        return "(no log)"


class _Interrupted(KeyboardInterrupt):
    pass


def _raise_interrupt(signum: int, _frame: Any) -> None:
    raise _Interrupted(f"signal {signum}")


# --- the load -----------------------------------------------------------------------------------------------
@dataclass
class Feed:
    """What one phase of the load wrote: lines, when, and the resulting offered rate."""

    label: str
    rate: float
    seconds: float
    start_ms: int = 0
    end_ms: int = 0
    lines: int = 0

    @property
    def written_rate(self) -> float:
        span = (self.end_ms - self.start_ms) / 1000
        return self.lines / span if span > 0 else math.nan


@dataclass
class Load:
    """Writes paced chunks into the Java producer and plants the low-stock crossings."""

    lines: EventLines
    producer: JavaProducer
    revenue: RevenuePoller
    alerts: AlertsPoller
    purchases: Counter[int] = field(default_factory=Counter)  # written purchases per minute bucket (event time)
    planted_next: float = 0.0
    planted_purchase_next: bool = True
    planted_count: int = 0
    planted_purchases: int = 0

    def _planted(self, now: float, event_ms: int) -> str:
        if not self.planted_next or now < self.planted_next:
            return ""
        self.planted_next += ALERT_PERIOD_S / 2
        self.planted_count += 1
        if self.planted_purchase_next:
            self.planted_purchase_next = False
            self.planted_purchases += 1
            self.purchases[event_ms // MINUTE_MS * MINUTE_MS] += 1
            return self.lines.planted(PLANTED_PRODUCT, EventType.PURCHASE, 95, event_ms)
        self.planted_purchase_next = True
        return self.lines.planted(PLANTED_PRODUCT, EventType.RESTOCK, 95, event_ms)

    def prime(self, count: int) -> None:
        """A first small batch (and the planted product's stock of 100), written at once."""
        now_ms = _now_ms()
        text, bought = self.lines.chunk(count, now_ms)
        self.purchases[now_ms // MINUTE_MS * MINUTE_MS] += bought
        self.producer.write(self.lines.planted(PLANTED_PRODUCT, EventType.RESTOCK, 100, now_ms) + text)

    def start_planting(self) -> None:
        self.planted_next = time.monotonic() + 1.0

    def pending(self) -> int:
        """Purchases written but not yet in the newest /api/revenue answer."""
        served = self.revenue.latest()
        return sum(max(0, count - served.get(bucket, 0)) for bucket, count in self.purchases.items())

    def pending_alerts(self) -> int:
        """Planted threshold crossings written whose alert /api/alerts has not listed yet."""
        prefix = f"low_stock:{PLANTED_PRODUCT}:"
        seen = sum(1 for alert_id in list(self.alerts.first_seen) if alert_id.startswith(prefix))
        return max(0, self.planted_purchases - seen)

    def feed(self, label: str, rate: float, seconds: float, tick_s: float = 0.01) -> Feed:
        total = int(round(rate * seconds))
        feed = Feed(label, rate, seconds, start_ms=_now_ms())
        started = next_tick = time.monotonic()
        next_report = started + 10.0
        sent = 0
        while sent < total:
            now = time.monotonic()
            due = min(total, int(rate * (now - started))) - sent
            event_ms = _now_ms()
            text, bought = self.lines.chunk(due, event_ms)
            if bought:
                self.purchases[event_ms // MINUTE_MS * MINUTE_MS] += bought
            text += self._planted(now, event_ms)
            if text:
                self.producer.write(text)
                feed.end_ms = _now_ms()
            sent += max(0, due)
            if now >= next_report:
                next_report += 10.0
                _log(
                    f"  {label}: {now - started:4.0f}s, {sent:,} lines ({sent / (now - started):,.0f}/s); "
                    f"purchases not yet served: {self.pending():,}"
                )
            next_tick += tick_s
            delay = next_tick - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            else:
                next_tick = time.monotonic()  # behind: write a bigger chunk next time, never a burst of ticks
        feed.lines = sent
        feed.end_ms = feed.end_ms or _now_ms()
        return feed


# --- running it ---------------------------------------------------------------------------------------------
@dataclass
class Stack:
    """The broker, the child processes and their settings; ``close`` stops everything it started."""

    work: Path
    settings: Settings
    broker: LocalKafka
    env: dict[str, str]
    processes: ManagedProcesses = field(default_factory=ManagedProcesses)

    @classmethod
    def create(cls, work: Path) -> Stack:
        kafka_port, controller_port, api_port = free_port(), free_port(), free_port()
        bootstrap = f"127.0.0.1:{kafka_port}"
        overrides = {
            "kafka_host": "127.0.0.1",
            "kafka_port": kafka_port,
            "kafka_controller_port": controller_port,
            "kafka_bootstrap_servers": bootstrap,
            "kafka_data_dir": work / "kafka",
            "lake_root": str(work / "lake"),
            "checkpoint_root": str(work / "checkpoints"),
            "run_dir": work / "run",
            "bind_host": "127.0.0.1",
            "api_port": api_port,
            "dashboard_port": free_port(),
            "serving_speed_source": "kafka",
            # the lag analysis reads every micro-batch's offsets and commit files: keep them all (Spark deletes all
            # but the last 100, which at ~1 batch/s lost the first rate's window)
            "spark_extra_conf": {
                **Settings().spark_extra_conf,
                "spark.sql.streaming.minBatchesToRetain": "100000",
            },
        }
        settings = Settings(**overrides)  # type: ignore[arg-type]
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        env.pop("RETAIL_SERVING_AUTH_TOKEN", None)  # loopback only: the probes send no token
        env.update(
            {
                f"RETAIL_{name.upper()}": json.dumps(value) if isinstance(value, dict) else str(value)
                for name, value in overrides.items()
            }
        )
        return cls(work, settings, LocalKafka.from_settings(settings), env)

    def retail(self, name: str, *args: str, env: dict[str, str] | None = None) -> subprocess.Popen[bytes]:
        return self.processes.start(
            name,
            [sys.executable, "-m", "retail_cli.main", *args],
            env or self.env,
            self.work / f"{name}.log",
            cwd=PROJECT_ROOT,
        )

    def java(self, name: str, main_class: str, *args: str, stdin: Any = subprocess.DEVNULL) -> subprocess.Popen[bytes]:
        argv = java_command(self.settings.jar_cache, main_class, *args)
        return self.processes.start(name, argv, self.env, self.work / f"{name}.log", stdin=stdin)

    def pgids(self) -> dict[str, int]:
        groups = self.processes.pgids()
        broker_pid = self.broker.pid()
        if broker_pid is not None:
            groups["broker"] = broker_pid
        return groups

    def check_alive(self, *names: str) -> None:
        for name in names:
            process = self.processes.procs.get(name)
            if process is not None and process.poll() is not None:
                raise RuntimeError(f"{name} exited with code {process.returncode}:\n{_tail(self.work / f'{name}.log')}")

    def close(self) -> None:
        self.processes.stop_all()
        self.broker.stop()


def _wait(
    what: str,
    check: Callable[[], bool],
    timeout_s: float,
    stack: Stack,
    alive: tuple[str, ...],
    status: Callable[[], str] | None = None,
) -> float:
    """Wait until ``check()``; fails early when one of the ``alive`` processes exited. Returns seconds waited."""
    started = time.monotonic()
    next_report = started + 15
    while not check():
        stack.check_alive(*alive)
        now = time.monotonic()
        if now - started > timeout_s:
            raise TimeoutError(f"{what}: not done after {timeout_s:.0f}s" + (f" ({status()})" if status else ""))
        if now >= next_report:
            next_report += 15
            _log(f"  waiting for {what} ({now - started:.0f}s){': ' + status() if status else ''}")
        time.sleep(0.2)
    return time.monotonic() - started


def _health(port: int) -> dict[str, Any]:
    """/api/health of the serving process (empty when it does not answer)."""
    import http.client

    try:
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
        connection.request("GET", "/api/health")
        response = connection.getresponse()
        payload = json.loads(response.read()) if response.status == 200 else {}
        connection.close()
        return payload
    except (OSError, ValueError):
        return {}


def _source_problems(health: dict[str, Any]) -> list[str]:
    """What in /api/health says the answers did not come from the speed topics as they should."""
    source = health.get("speed_source") or {}
    problems = []
    serving_from = source.get("serving_from") or {}
    not_live = sorted(view for view, kind in serving_from.items() if kind != "kafka")
    if not_live:
        problems.append(f"views not served from the speed topics: {', '.join(not_live)}")
    if source.get("records_skipped"):
        problems.append(f"{source['records_skipped']:,} speed-topic records skipped ({source.get('skip_reasons')})")
    return problems


def _http_ok(port: int, path: str) -> bool:
    import http.client

    try:
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
        connection.request("GET", path)
        ok = connection.getresponse().status == 200
        connection.close()
        return ok
    except OSError:
        return False


@dataclass
class Window:
    """One rate's measured window (CreateTime in [start_ms, end_ms)) and what was measured during it."""

    rate: float
    warmup: Feed
    measured: Feed
    cpu: dict[str, Any]
    load_average: tuple[float, float, float]

    @property
    def start_ms(self) -> int:
        return self.measured.start_ms

    @property
    def end_ms(self) -> int:
        return self.measured.end_ms


def run_live(stack: Stack, args: argparse.Namespace, rates: list[float]) -> dict[str, Any]:
    """Start `retail speed` + `retail serve`, put each rate's load on, measure; returns the raw observations."""
    settings = stack.settings
    speed = stack.retail("speed", "speed")
    _log(f"retail speed started (pid {speed.pid}); log {stack.work / 'speed.log'}")
    stack.retail("serve", "serve")
    _wait("the API", lambda: _http_ok(settings.api_port, "/api/health"), 180, stack, ("speed", "serve"))
    _log(f"retail serve answers on 127.0.0.1:{settings.api_port}")

    bench_start = datetime.now(UTC).replace(second=0, microsecond=0) - timedelta(minutes=2)
    revenue = RevenuePoller(settings.api_port, bench_start, bench_start + timedelta(hours=6), args.poll_interval)
    alerts = AlertsPoller(settings.api_port, args.poll_interval)
    revenue.start()
    alerts.start()
    producer = JavaProducer(
        stack.processes,
        "producer",
        java_command(
            settings.jar_cache,
            "org.apache.kafka.tools.ConsoleProducer",
            *console_producer_args(settings.kafka_bootstrap_servers, settings.events_topic),
        ),
        stack.env,
        stack.work / "producer.log",
    )
    load = Load(EventLines(run=f"bench-{int(time.time())}"), producer, revenue, alerts)
    windows: list[Window] = []
    try:
        load.prime(500)
        waited = _wait(
            "the speed layer to serve the first events (Spark start-up)",
            lambda: load.pending() == 0 and bool(revenue.latest()),
            args.start_timeout,
            stack,
            ("speed", "serve", "producer"),
            status=lambda: "; ".join(
                [f"{load.pending()} purchases not served yet", f"poll errors {revenue.errors}"]
                + _source_problems(_health(settings.api_port))
            ),
        )
        _log(f"first events served {waited:.0f}s after priming")
        load.start_planting()
        for rate in rates:
            _log(f"rate {rate:,.0f}/s: warm-up {args.warmup:.0f}s")
            warmup = load.feed(f"{rate:,.0f}/s warm-up", rate, args.warmup)
            stack.check_alive("speed", "serve", "producer")
            _log(f"rate {rate:,.0f}/s: measuring {args.duration:.0f}s")
            first = CpuMeter.snapshot(stack.pgids())
            measured = load.feed(f"{rate:,.0f}/s measured", rate, args.duration)
            last = CpuMeter.snapshot(stack.pgids())
            stack.check_alive("speed", "serve", "producer")
            windows.append(Window(rate, warmup, measured, CpuMeter.usage(first, last), os.getloadavg()))
            _log(
                f"rate {rate:,.0f}/s: wrote {measured.lines:,} lines at {measured.written_rate:,.0f}/s; "
                f"purchases not yet served: {load.pending():,}"
            )
        code = producer.close()
        _log(f"producer closed (exit code {code}); {load.lines.next_number:,} lines written in all")
        catch_up = math.nan
        try:
            catch_up = _wait(
                "the last purchases and alerts to be served",
                lambda: load.pending() == 0 and load.pending_alerts() == 0,
                args.catch_up_timeout,
                stack,
                ("speed", "serve"),
                status=lambda: f"{load.pending():,} purchases and {load.pending_alerts()} alerts not served yet",
            )
            _log(f"everything served {catch_up:.1f}s after the load ended")
        except TimeoutError as error:
            _log(f"{error}; what was not served counts as never served")
    finally:
        revenue.stop()
        alerts.stop()
        with contextlib.suppress(Exception):
            producer.close(timeout_s=10)
    problems = _source_problems(_health(settings.api_port))
    for problem in problems:
        _log(f"WARNING serving: {problem}")
    _log("stopping retail serve and retail speed (graceful, so the progress rows are flushed) ...")
    stack.processes.stop("serve", grace_s=30)
    code = stack.processes.stop("speed", grace_s=90)
    _log(f"speed layer stopped (exit code {code})")
    poll_times, poll_counts = revenue.series()
    return {
        "windows": windows,
        "poll_times": poll_times,
        "poll_counts": poll_counts,
        "revenue_polls": revenue.polls,
        "revenue_errors": (revenue.errors, revenue.last_error),
        "revenue_request_ms": revenue.request_ms,
        "alerts_polls": alerts.polls,
        "alerts_errors": (alerts.errors, alerts.last_error),
        "alerts_first_seen": dict(alerts.first_seen),
        "lines_written": load.lines.next_number,
        "catch_up_s": catch_up,
        "source_problems": problems,
        "planted_events": load.planted_count,
    }


# --- reading back and computing -----------------------------------------------------------------------------
@dataclass
class EventsReadBack:
    created: np.ndarray  # CreateTime of every record (ms)
    purchase_created: np.ndarray
    purchase_event_ms: np.ndarray
    purchase_bucket: np.ndarray
    planted: list[tuple[int, int, int]]  # (partition, offset, CreateTime) of the planted purchases


def read_events(bootstrap: str, topic: str) -> EventsReadBack:
    created: list[int] = []
    p_created: list[int] = []
    p_event: list[int] = []
    planted: list[tuple[int, int, int]] = []
    marker, planted_key = b'"event_type":"purchase"', PLANTED_PRODUCT.encode()

    def handle(records: list[Any]) -> None:
        if len(created) // 250_000 != (len(created) + len(records)) // 250_000:
            _log(f"  read {len(created) + len(records):,} records of {topic}")
        for record in records:
            created.append(record.timestamp)
            if marker in record.value:
                event = json.loads(record.value)
                moment = datetime.fromisoformat(event["event_time"].replace("Z", "+00:00"))
                p_created.append(record.timestamp)
                p_event.append(round(moment.timestamp() * 1000))
                if record.key == planted_key:
                    planted.append((record.partition, record.offset, record.timestamp))

    read_topic(bootstrap, topic, handle)
    event_ms = np.asarray(p_event, np.int64)
    return EventsReadBack(
        created=np.sort(np.asarray(created, np.int64)),
        purchase_created=np.asarray(p_created, np.int64),
        purchase_event_ms=event_ms,
        purchase_bucket=event_ms // MINUTE_MS * MINUTE_MS,
        planted=planted,
    )


def read_sales_totals(bootstrap: str, topic: str) -> tuple[np.ndarray, dict[int, np.ndarray]]:
    """The total rows on retail.speed.sales as a series like RevenuePoller.series(): per message its Kafka
    timestamp, and per minute bucket the orders it carried (0 in the other buckets' messages)."""
    rows: list[tuple[int, int, int]] = []

    def handle(records: list[Any]) -> None:
        for record in records:
            if record.key is None or record.value is None or not record.key.startswith(b"total|"):
                continue
            bucket_ms = int(record.key.rsplit(b"|", 1)[1]) // 1000
            rows.append((record.timestamp, bucket_ms, int(json.loads(record.value)["orders"])))

    read_topic(bootstrap, topic, handle)
    rows.sort()
    times = np.asarray([t for t, _, _ in rows], np.int64)
    counts: dict[int, np.ndarray] = {}
    for bucket in {b for _, b, _ in rows}:
        counts[bucket] = np.asarray([n if b == bucket else 0 for _, b, n in rows], np.int64)
    return times, counts


def read_alert_opens(bootstrap: str, topic: str) -> dict[str, int]:
    """alert_id → Kafka timestamp of its first 'opened' message on retail.alerts."""
    opened: dict[str, int] = {}

    def handle(records: list[Any]) -> None:
        for record in records:
            if record.value is None or record.key is None:
                continue
            value = json.loads(record.value)
            if value.get("state") == "opened":
                opened.setdefault(record.key.decode(), record.timestamp)

    read_topic(bootstrap, topic, handle)
    return opened


def _progress(lake: Lake) -> Any:
    import pandas as pd
    from deltalake import DeltaTable

    try:
        frame = DeltaTable(lake.table("speed/progress")).to_pandas()
    except Exception as error:  # noqa: BLE001 - no progress table: report, do not fail
        _log(f"speed/progress unreadable: {error}")
        return pd.DataFrame(columns=["query", "timestamp", "batch_duration_ms", "input_rows", "durations"])
    frame["start_ms"] = frame["timestamp"].map(lambda t: t.timestamp() * 1000)
    return frame


def _stats(values_s: np.ndarray) -> dict[str, float]:
    return {
        "n": len(values_s),
        "never": int(np.isinf(values_s).sum()),
        "p50": percentile(values_s, 50),
        "p95": percentile(values_s, 95),
        "p99": percentile(values_s, 99),
        "max": float(values_s.max()) if len(values_s) else math.nan,
    }


def analyse_window(
    window: Window,
    live: dict[str, Any],
    events: EventsReadBack,
    served: np.ndarray,
    on_topic: np.ndarray,
    opens: dict[str, int],
    commits: dict[str, list[tuple[int, float, int]]],
    progress: Any,
) -> dict[str, Any]:
    lo, hi = window.start_ms, window.end_ms
    seconds = (hi - lo) / 1000
    in_window = (events.purchase_created >= lo) & (events.purchase_created < hi)
    latency = (served[in_window] - events.purchase_created[in_window]) / 1000
    topic_latency = (on_topic[in_window] - events.purchase_created[in_window]) / 1000
    queueing = (events.purchase_created[in_window] - events.purchase_event_ms[in_window]) / 1000
    records = int(np.searchsorted(events.created, hi, "left") - np.searchsorted(events.created, lo, "left"))

    # alerts of the planted crossings created in the window
    topic_s, api_s = [], []
    for partition, offset, created in events.planted:
        if lo <= created < hi:
            alert_id = f"low_stock:{PLANTED_PRODUCT}:{partition}:{offset}"
            topic_s.append((opens[alert_id] - created) / 1000 if alert_id in opens else math.inf)
            seen = live["alerts_first_seen"].get(alert_id)
            api_s.append((seen - created) / 1000 if seen is not None else math.inf)

    # lag = records produced (CreateTime) but not yet covered by the query's committed offsets, every 100 ms
    lag: dict[str, Any] = {}
    grid = np.arange(lo, hi, 100, dtype=np.float64)
    third = len(grid) // 3
    for query in LIVE_QUERIES:
        done = commits.get(query, [])
        inside = sum(1 for _, t, _ in done if lo <= t < hi)
        if not done or not third:
            lag[query] = {"commits": inside}
            continue
        times = np.array([t for _, t, _ in done])
        ends = np.array([e for _, _, e in done], np.int64)
        latest = np.searchsorted(times, grid, "right") - 1  # the newest commit at each grid point
        committed = np.where(latest >= 0, ends[np.maximum(latest, 0)], 0)
        behind = (np.searchsorted(events.created, grid, "right") - committed) / window.rate
        first_s, last_s = float(behind[:third].mean()), float(behind[-third:].mean())
        # throughput over the window, from the commit at or before its start to the first at or after its end
        a = max(0, int(np.searchsorted(times, lo, "right")) - 1)
        b = min(len(times) - 1, int(np.searchsorted(times, hi, "left")))
        span = (times[b] - times[a]) / 1000
        lag[query] = {
            "commits": inside,
            "throughput": (ends[b] - ends[a]) / span if span > 0 else math.nan,
            "first_s": first_s,
            "last_s": last_s,
            "max_s": float(behind.max()),
            "flat": last_s - first_s <= FLAT_LAG_S,
        }

    phases: dict[str, dict[str, Any]] = {}
    if len(progress):
        ends = progress["start_ms"] + progress["batch_duration_ms"].fillna(0)
        rows = progress[(progress["start_ms"] < hi) & (ends > lo)]
    else:
        rows = progress
    for query in QUERIES:
        mine = rows[rows["query"] == query] if len(rows) else rows
        durations = [json.loads(text) for text in mine["durations"]] if len(mine) else []
        per_phase = {}
        for phase in PHASES:
            values = [d[phase] for d in durations if phase in d]
            if values:
                per_phase[phase] = (float(np.median(values)), float(np.percentile(values, 90)))
        phases[query] = {
            "batches": len(mine),
            "rows": int(mine["input_rows"].sum()) if len(mine) else 0,
            "offsets_behind_max": int(mine["offsets_behind"].max()) if len(mine) else 0,
            "phases": per_phase,
        }
    return {
        "rate": window.rate,
        "written_rate": window.measured.written_rate,
        "kafka_rate": records / seconds if seconds else math.nan,
        "records": records,
        "warmup_rate": window.warmup.written_rate,
        "latency": _stats(latency),
        "topic_latency": _stats(topic_latency),
        "queueing": _stats(queueing),
        "alerts_topic": _stats(np.asarray(topic_s)),
        "alerts_api": _stats(np.asarray(api_s)),
        "lag": lag,
        "phases": phases,
        "cpu": window.cpu,
        "load_average": window.load_average,
    }


# --- the backlog drain ------------------------------------------------------------------------------------------
def run_drain(stack: Stack, count: int) -> dict[str, Any]:
    """``count`` events on a fresh topic, `retail speed --available-now` over them (fresh lake and checkpoints,
    fresh speed topics), then Kafka's ConsumerPerformance over the same backlog."""
    work = stack.work
    names = {
        "events_topic": "bench.drain.events",
        "speed_sales_topic": "bench.drain.speed.sales",
        "speed_inventory_topic": "bench.drain.speed.inventory",
        "alerts_topic": "bench.drain.alerts",
        "lake_root": str(work / "drain-lake"),
        "checkpoint_root": str(work / "drain-checkpoints"),
    }
    settings = stack.settings.model_copy(update=names)
    env = {**stack.env, **{f"RETAIL_{name.upper()}": value for name, value in names.items()}}
    stack.broker.ensure_topics(pipeline_topics(settings))
    backlog = work / "backlog.txt"
    started = time.monotonic()
    purchases = EventLines(run=f"drain-{int(time.time())}").write_backlog(backlog, count, _now_ms())
    _log(f"drain: {count:,} lines ({purchases:,} purchases) written to a file in {time.monotonic() - started:.1f}s")

    started = time.monotonic()
    with backlog.open("rb") as stdin:
        producer = stack.java(
            "drain-producer",
            "org.apache.kafka.tools.ConsoleProducer",
            *console_producer_args(settings.kafka_bootstrap_servers, settings.events_topic),
            stdin=stdin,
        )
        _wait("the backlog producer", lambda: producer.poll() is not None, 900, stack, ())
    produce_s = time.monotonic() - started
    stack.processes.stop("drain-producer", grace_s=5)
    in_topic = end_offsets(settings.kafka_bootstrap_servers, settings.events_topic)
    _log(f"drain: ConsoleProducer put {in_topic:,} records on {settings.events_topic} in {produce_s:.1f}s")
    if in_topic != count:
        raise RuntimeError(f"the backlog topic holds {in_topic:,} records, expected {count:,}")
    backlog.unlink()

    _log("drain: retail speed --available-now ...")
    started, started_ms = time.monotonic(), _now_ms()
    drain = stack.retail("drain-speed", "speed", "--available-now", env=env)
    _wait("retail speed --available-now", lambda: drain.poll() is not None, 3600, stack, ())
    wall_s = time.monotonic() - started
    code = drain.returncode
    stack.processes.stop("drain-speed", grace_s=5)
    if code != 0:
        raise RuntimeError(f"retail speed --available-now exited with {code}:\n{_tail(work / 'drain-speed.log')}")
    progress = _progress(Lake(settings.lake_root, settings.checkpoint_root))
    per_query = {}
    for query in QUERIES:
        mine = progress[progress["query"] == query]
        if not len(mine):
            continue
        first = float(mine["start_ms"].min())
        last = float((mine["start_ms"] + mine["batch_duration_ms"]).max())
        per_query[query] = {
            "batches": len(mine),
            "rows": int(mine["input_rows"].sum()),
            "first_ms": first,
            "last_ms": last,
            "busy_s": float(mine["batch_duration_ms"].sum()) / 1000,
        }
    live = [per_query[q] for q in ("bronze", *LIVE_QUERIES) if q in per_query]
    if not live:
        raise RuntimeError(f"no progress rows of the drain in {settings.lake_root}/speed/progress")
    first_ms = min(q["first_ms"] for q in live)
    span_s = (max(q["last_ms"] for q in live) - first_ms) / 1000
    rows_of = {q: per_query.get(q, {}).get("rows", 0) for q in ("bronze", *LIVE_QUERIES)}
    incomplete = [f"{q} {rows:,}" for q, rows in rows_of.items() if rows != count]
    _log(f"drain: {wall_s:.1f}s wall, {count / wall_s:,.0f} events/s incl. start-up; {span_s:.1f}s of batches")

    _log("drain: Kafka ConsumerPerformance over the same backlog ...")
    perf = stack.java(
        "consumer-perf",
        "org.apache.kafka.tools.ConsumerPerformance",
        "--bootstrap-server",
        settings.kafka_bootstrap_servers,
        "--topic",
        settings.events_topic,
        "--num-records",
        str(count),
        "--timeout",
        "60000",
    )
    _wait("ConsumerPerformance", lambda: perf.poll() is not None, 900, stack, ())
    stack.processes.stop("consumer-perf", grace_s=5)
    ceiling = _consumer_perf(work / "consumer-perf.log")
    _log(f"drain: ConsumerPerformance {ceiling.get('nMsg.sec', math.nan):,.0f} records/s")
    return {
        "count": count,
        "produce_s": produce_s,
        "wall_s": wall_s,
        "span_s": span_s,
        "startup_s": (first_ms - started_ms) / 1000,
        "incomplete": incomplete,
        "per_query": per_query,
        "ceiling": ceiling,
    }


def _consumer_perf(log: Path) -> dict[str, float]:
    """The data line of ConsumerPerformance's output, by its header's names."""
    lines = [line for line in log.read_text(errors="replace").splitlines() if "," in line]
    header = next((i for i, line in enumerate(lines) if "nMsg.sec" in line), None)
    if header is None or header + 1 >= len(lines):
        raise RuntimeError(f"no ConsumerPerformance result in {log}:\n{_tail(log)}")
    names = [name.strip() for name in lines[header].split(",")]
    values = [value.strip() for value in lines[header + 1].split(",")]
    result = {}
    for name, value in zip(names, values, strict=False):
        with contextlib.suppress(ValueError):
            result[name] = float(value)
    return result


# --- the report ---------------------------------------------------------------------------------------------
def _machine() -> dict[str, str]:
    """benchmarks.machine.describe() in the layout this report prints."""
    described = describe()
    java, _, kafka = described["java"].partition("; Kafka ")
    return {
        "cpu": described["cpu"],
        "cores": str(described["cores"]),
        "memory": f"{described['memory_gib']:.1f} GiB",
        "os": f"{described['os']}, Linux {described['kernel']}",
        "java": java,
        "python": described["python"],
        "pyspark": described["packages"].get("pyspark", "?"),
        "kafka": kafka or "?",
    }


def _s(value: float) -> str:
    if math.isinf(value):
        return "never"
    return "–" if math.isnan(value) else f"{value:.2f}"


def _sec(value: float) -> str:
    text = _s(value)
    return text if text in ("never", "–") else f"{text} s"


def _verdict(ok: bool | None) -> str:
    return "not measured" if ok is None else ("met" if ok else "**missed**")


def render(results: dict[str, Any]) -> str:
    machine, args, settings = results["machine"], results["args"], results["settings"]
    windows: list[dict[str, Any]] = results["windows"]
    by_rate = {w["rate"]: w for w in windows}
    drain = results.get("drain")
    out: list[str] = ["## Speed layer (`make bench-speed`)", ""]
    out.append(
        f"Measured {results['finished']:%Y-%m-%d %H:%M} UTC on {machine['cpu']}, {machine['cores']} cores, "
        f"{machine['memory']} RAM, {machine['os']}; {machine['java']}; Python {machine['python']}, "
        f"pyspark {machine['pyspark']}, Kafka {machine['kafka']} (KRaft, one node). "
        f"Load average (1/5/15 min) {results['load_start']} at the start, {results['load_end']} at the end; "
        "CPU used by other processes during each measured window is in the last table. "
        + (
            "**Development run on a shared, busy machine: not the reference figures.** "
            if results["development"]
            else ""
        )
    )
    out.append("")
    part = default_part(settings)
    copy = f" in a second driver at nice +{settings.speed_copy_niceness}" if part == "split" else ""
    out.append(
        f"Setup: `retail speed` (`{settings.spark_master}`, `--part {part}`, {settings.speed_shuffle_partitions} "
        f"state partition(s); live queries rollups + inventory trigger `{settings.speed_trigger}`, bronze "
        f"`{settings.speed_bronze_trigger}`, durable `{settings.speed_durable_trigger}`{copy}, watermark "
        f"{settings.speed_watermark}) and `retail serve` (speed views from the compacted speed topics) as separate "
        "processes on one broker; load from Kafka's ConsoleProducer (acks=all, idempotent, linger 5 ms) fed every "
        f"10 ms; each rate: {args.warmup:.0f} s warm-up, then {args.duration:.0f} s measured; /api/revenue and "
        f"/api/alerts polled every {args.poll_interval * 1000:.0f} ms."
    )
    out += ["", "### Targets", "", "| target | measured | verdict |", "|---|---|---|"]
    one_k, ten_k = by_rate.get(1000.0), by_rate.get(10000.0)
    if one_k:
        p95 = one_k["latency"]["p95"]
        out.append(
            f"| event→served p95 ≤ {TARGET_P95_1K_S:g} s at 1,000 ev/s | {_sec(p95)} | "
            f"{_verdict(p95 <= TARGET_P95_1K_S)} |"
        )
    else:
        out.append(f"| event→served p95 ≤ {TARGET_P95_1K_S:g} s at 1,000 ev/s | – | {_verdict(None)} |")
    if ten_k:
        p95 = ten_k["latency"]["p95"]
        flat = all(ten_k["lag"][q].get("flat", False) for q in LIVE_QUERIES)
        out.append(
            f"| event→served p95 ≤ {TARGET_P95_10K_S:g} s at 10,000 ev/s with flat lag | {_sec(p95)}, lag "
            f"{'flat' if flat else 'not flat'} | {_verdict(p95 <= TARGET_P95_10K_S and flat)} |"
        )
    else:
        out.append(f"| event→served p95 ≤ {TARGET_P95_10K_S:g} s at 10,000 ev/s with flat lag | – | {_verdict(None)} |")
    alert_cells = [f"{w['rate']:,.0f}/s: {_sec(w['alerts_api']['p95'])} (n={w['alerts_api']['n']})" for w in windows]
    alert_ok = (
        all(w["alerts_api"]["p95"] <= TARGET_ALERT_P95_S for w in windows if w["alerts_api"]["n"])
        if any(w["alerts_api"]["n"] for w in windows)
        else None
    )
    out.append(
        f"| alert p95 ≤ {TARGET_ALERT_P95_S:g} s (CreateTime → /api/alerts), at every rate | "
        f"{'; '.join(alert_cells) or '–'} | {_verdict(alert_ok)} |"
    )
    if drain and "error" not in drain:
        wall_eps = drain["count"] / drain["wall_s"]
        span_eps = drain["count"] / drain["span_s"]
        out.append(
            f"| drain ≥ {TARGET_DRAIN_EPS:,.0f} events/s, wall incl. start-up | {wall_eps:,.0f} events/s | "
            f"{_verdict(wall_eps >= TARGET_DRAIN_EPS)} |"
        )
        out.append(
            f"| drain ≥ {TARGET_DRAIN_EPS:,.0f} events/s, excl. JVM/session start-up | {span_eps:,.0f} events/s | "
            f"{_verdict(span_eps >= TARGET_DRAIN_EPS)} |"
        )
    else:
        out.append(
            f"| drain ≥ {TARGET_DRAIN_EPS:,.0f} events/s | {(drain or {}).get('error', '–')} | {_verdict(None)} |"
        )

    out += [
        "",
        "### event→served latency (s) and alert latency (s)",
        "",
        "| offered ev/s | written ev/s | in Kafka ev/s | purchases | p50 | p95 | p99 | max | never served | "
        "on retail.speed.sales p50 / p95 | producer queueing p95 | alerts | alert→topic p50 / p95 | "
        "alert→API p50 / p95 |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for w in windows:
        lat, topic, api, on = w["latency"], w["alerts_topic"], w["alerts_api"], w["topic_latency"]
        out.append(
            f"| {w['rate']:,.0f} | {w['written_rate']:,.0f} | {w['kafka_rate']:,.0f} | {lat['n']:,} | "
            f"{_s(lat['p50'])} | {_s(lat['p95'])} | {_s(lat['p99'])} | "
            f"{_s(lat['max'])} | {lat['never']:,} | {_s(on['p50'])} / {_s(on['p95'])} | "
            f"{_s(w['queueing']['p95'])} | {api['n']} | "
            f"{_s(topic['p50'])} / {_s(topic['p95'])} | {_s(api['p50'])} / {_s(api['p95'])} |"
        )

    out += [
        "",
        "### Lag and throughput of the live queries",
        "",
        "Lag = records on retail.events (by CreateTime) not yet covered by the query's committed offsets, every "
        "100 ms of the window, in seconds of input at the offered rate. Flat = the mean of the window's last third "
        f"exceeds the first third's by at most {FLAT_LAG_S:g} s. Processed ev/s = offsets committed per second from "
        "the last commit before the window to the first after it.",
        "",
        "| offered ev/s | query | commits | processed ev/s | lag first third s | lag last third s | max lag s | flat |",
        "|---:|---|---:|---:|---:|---:|---:|---|",
    ]
    for w in windows:
        for query in LIVE_QUERIES:
            lag = w["lag"][query]
            if "throughput" not in lag:
                out.append(f"| {w['rate']:,.0f} | {query} | {lag['commits']} | – | – | – | – | **no** |")
                continue
            out.append(
                f"| {w['rate']:,.0f} | {query} | {lag['commits']} | {lag['throughput']:,.0f} | {_s(lag['first_s'])} | "
                f"{_s(lag['last_s'])} | {_s(lag['max_s'])} | {'yes' if lag['flat'] else '**no**'} |"
            )

    out += [
        "",
        "### Phase durations per micro-batch (ms, median / p90 of the batches that ran during the window)",
        "",
    ]
    header = "| offered ev/s | query | batches | " + " | ".join(PHASES) + " |"
    out += [header, "|---:|---|---:|" + "---:|" * len(PHASES)]
    for w in windows:
        for query in QUERIES:
            info = w["phases"][query]
            cells = [
                f"{info['phases'][p][0]:.0f} / {info['phases'][p][1]:.0f}" if p in info["phases"] else "–"
                for p in PHASES
            ]
            out.append(f"| {w['rate']:,.0f} | {query} | {info['batches']} | " + " | ".join(cells) + " |")

    out += [
        "",
        "### CPU during each measured window (average cores busy, of " + machine["cores"] + ")",
        "",
        "| offered ev/s | machine | speed layer | serve | broker | producer (JVM) | benchmark | other processes | "
        "load average at end |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|---|",
    ]
    for w in windows:
        cpu, groups = w["cpu"], w["cpu"]["groups"]
        out.append(
            f"| {w['rate']:,.0f} | {cpu['machine']:.2f} | {groups.get('speed', 0):.2f} | "
            f"{groups.get('serve', 0):.2f} | "
            f"{groups.get('broker', 0):.2f} | {groups.get('producer', 0):.2f} | {groups.get('benchmark', 0):.2f} | "
            f"{cpu['others']:.2f} | {' '.join(f'{v:.2f}' for v in w['load_average'])} |"
        )

    out += ["", "### Backlog drain", ""]
    if drain and "error" not in drain:
        ceiling = drain["ceiling"]
        span_eps = drain["count"] / drain["span_s"]
        out += [
            f"{drain['count']:,} events put on a fresh topic ({settings.events_partitions} partitions) by "
            "ConsoleProducer from a file "
            f"({drain['produce_s']:.1f} s), with the live speed layer stopped; then, in the same run:",
            "",
            "| reader | seconds | events/s |",
            "|---|---:|---:|",
            f"| `retail speed --available-now`, fresh checkpoints: wall incl. JVM/session start-up and the Delta copy "
            f"| {drain['wall_s']:.1f} | {drain['count'] / drain['wall_s']:,.0f} |",
            f"| same run, micro-batches only (first batch start → last bronze/rollups/inventory batch end, from "
            f"speed/progress; start-up before the first batch was {drain['startup_s']:.1f} s) "
            f"| {drain['span_s']:.1f} | {span_eps:,.0f} |",
            f"| Kafka ConsumerPerformance (same jars), incl. its group join | "
            f"{drain['count'] / ceiling['nMsg.sec']:.1f} | {ceiling['nMsg.sec']:,.0f} |"
            if ceiling.get("nMsg.sec")
            else "| Kafka ConsumerPerformance | – | – |",
            f"| Kafka ConsumerPerformance, fetch time only | {ceiling.get('fetch.time.ms', math.nan) / 1000:.1f} | "
            f"{ceiling.get('fetch.nMsg.sec', math.nan):,.0f} |",
            "",
            f"Ratio to Kafka's ConsumerPerformance (incl. group join): {span_eps / ceiling['nMsg.sec']:.1%} for the "
            f"micro-batches only, {drain['count'] / drain['wall_s'] / ceiling['nMsg.sec']:.1%} for the wall time."
            if ceiling.get("nMsg.sec")
            else "",
            "",
            "Per query (the three queries on retail.events run at the same time on the 2 cores; durable copies the "
            "speed topics into Delta afterwards):",
            "",
            "| query | batches | rows | sum of batch durations s |",
            "|---|---:|---:|---:|",
        ]
        for query, info in drain["per_query"].items():
            out.append(f"| {query} | {info['batches']} | {info['rows']:,} | {info['busy_s']:.1f} |")
        if drain["incomplete"]:
            out += ["", f"**Not every event was processed** (rows per query: {', '.join(drain['incomplete'])})."]
    else:
        out.append(f"Not measured: {(drain or {}).get('error', 'skipped')}.")

    req = results["request_ms"]
    out += [
        "",
        "### How it is measured",
        "",
        "- **event→served**: from a purchase's Kafka CreateTime (set by the producer) to the first moment an HTTP "
        "answer of `/api/revenue` (total, minute grain) includes it. A thread polls every "
        f"{args.poll_interval * 1000:.0f} ms (median request {req['p50']:.0f} ms, p95 {req['p95']:.0f} ms; "
        f"{results['revenue_polls']:,} polls, {results['revenue_errors'][0]} errors) and records the receive "
        "time and the orders of every minute bucket. After the run the purchases are read back from retail.events "
        "(CreateTime, event_time). Within a bucket (event-time minute) purchases are ranked by CreateTime, and the "
        "i-th counts as served at the first poll whose orders for that bucket are ≥ i. This is exact when a "
        "micro-batch takes the records in the order they were created (it reads each partition up to its end "
        "offset at the batch's start, so it is FIFO up to the producer's 5 ms linger across partitions). "
        "Resolution: one poll interval plus the request time; the figures are an upper bound by about that much. "
        "Percentiles are nearest-rank (no interpolation): with 20 or fewer values (the alerts: one crossing per "
        f"{ALERT_PERIOD_S:g} s) the p95 is the largest. "
        "Purchases never served before the end are counted as never served, and a percentile they reach is shown "
        "as never (no rounding of a miss).",
        "- **on retail.speed.sales**: the same ranking against the Kafka timestamps of the total rows on the speed "
        "topic (read after the run): the part of event→served spent before the serving process; the rest is its "
        "consumer and the HTTP answer. If the compactor already dropped superseded values of a bucket, this "
        "figure can only come out later, never earlier.",
        "- **producer queueing**: event_time (when the line was written to the producer) → CreateTime; it is "
        "not part of event→served and shows whether the load generator kept up.",
        "- **alerts**: a planted product (not in the random mix) is restocked to 100, then every "
        f"{ALERT_PERIOD_S:g} s a purchase of 95 takes it below the threshold (an alert opens) and a restock of 95 "
        "half a period later resolves it. From the crossing purchase's CreateTime to (a) the Kafka timestamp of "
        "the alert's first `opened` message on retail.alerts (read after the run) and (b) the first poll of "
        "`/api/alerts` listing its alert_id.",
        "- **written / in Kafka ev/s**: lines the benchmark wrote to the producer per second of the window, and "
        "records whose CreateTime falls in the window per second (what actually reached the broker).",
        "- **lag, throughput**: from the live queries' checkpoints (offsets/N = end offsets of batch N, "
        "commits/N = when it finished, by the file's mtime) against the CreateTimes read back. Spark's own "
        "offsets_behind in speed/progress is measured against the offsets fetched at the batch's start, so it "
        "stays 0 without maxOffsetsPerTrigger and is not used for this.",
        "- **phases**: Spark's durationMs per micro-batch from speed/progress (every batch that ran at some point "
        "of the window).",
        "- **CPU**: /proc/stat and the CPU time of each process group between the window's start and end; "
        "'other processes' = machine − ours.",
    ]
    if results.get("notes"):
        out += ["", "Notes: " + " ".join(results["notes"])]
    return "\n".join(out) + "\n"


def write_section(path: Path, section: str) -> None:
    text = path.read_text() if path.exists() else "# Benchmarks\n"
    block = f"{MARK_START}\n{section.rstrip()}\n{MARK_END}"
    if MARK_START in text and MARK_END in text:
        head, rest = text.split(MARK_START, 1)
        text = head + block + rest.split(MARK_END, 1)[1]
    else:
        text = text.rstrip() + "\n\n" + block + "\n"
    path.write_text(text)


def _plain(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, datetime):
        return value.isoformat()
    return str(value)


def json_summary(results: dict[str, Any]) -> dict[str, Any]:
    """The headline numbers of a run (latencies in seconds; inf = never served, nan = not measured)."""
    windows = [
        {
            "rate": w["rate"],
            "written_rate": w["written_rate"],
            "kafka_rate": w["kafka_rate"],
            "latency": w["latency"],
            "topic_latency": w["topic_latency"],
            "alerts_api": w["alerts_api"],
            "alerts_topic": w["alerts_topic"],
            "lag": {q: {k: v for k, v in w["lag"].get(q, {}).items()} for q in LIVE_QUERIES},
            "cpu": w["cpu"],
        }
        for w in results["windows"]
    ]
    drain = results.get("drain") or {}
    if drain and "error" not in drain:
        drain = {
            "count": drain["count"],
            "wall_s": drain["wall_s"],
            "span_s": drain["span_s"],
            "startup_s": drain["startup_s"],
            "events_per_s_wall": drain["count"] / drain["wall_s"] if drain["wall_s"] else math.nan,
            "events_per_s_batches": drain["count"] / drain["span_s"] if drain["span_s"] else math.nan,
            "consumer_perf_per_s": drain["ceiling"].get("nMsg.sec", math.nan),
            "incomplete": drain["incomplete"],
        }
    return {
        "machine": results["machine"],
        "load_start": results["load_start"],
        "load_end": results["load_end"],
        "finished": results["finished"],
        "windows": windows,
        "drain": drain or None,
        "notes": results["notes"],
    }


# --- main ---------------------------------------------------------------------------------------------------
def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Benchmark the speed path: event→served, alerts, lag, drain.")
    parser.add_argument("--rates", default="1000,5000,10000", help="offered events/s, comma-separated")
    parser.add_argument("--duration", type=float, default=60.0, help="measured seconds per rate")
    parser.add_argument(
        "--warmup", type=float, default=45.0, help="seconds of load before each measured window (Spark warms up)"
    )
    parser.add_argument("--drain-events", type=int, default=1_000_000, help="backlog size of the drain (0: skip)")
    parser.add_argument("--poll-interval", type=float, default=0.05, help="seconds between API polls")
    parser.add_argument("--out", type=Path, default=PROJECT_ROOT / "BENCHMARKS.md", help="report file")
    parser.add_argument("--start-timeout", type=float, default=600.0, help="seconds for the speed layer to start")
    parser.add_argument("--catch-up-timeout", type=float, default=300.0, help="seconds to serve the rest at the end")
    parser.add_argument(
        "--development", action="store_true", help="mark the section as a development run on a busy machine"
    )
    parser.add_argument("--keep", action="store_true", help="keep the temporary folder (logs, lake, broker data)")
    parser.add_argument("--json", type=Path, default=None, help="also write the headline numbers as JSON here")
    args = parser.parse_args(argv)
    rates = [float(rate) for rate in args.rates.split(",") if rate.strip()]
    if not rates or any(rate <= 0 for rate in rates) or args.duration <= 0 or args.warmup < 0:
        parser.error("rates and duration must be positive, warmup non-negative")

    # Ctrl-C, kill and a closed terminal all end in the cleanup below (SIGINT explicitly too: a shell starts
    # background jobs with SIGINT ignored)
    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, _raise_interrupt)
    machine = _machine()
    load_start = " ".join(f"{v:.2f}" for v in os.getloadavg())
    work = Path(tempfile.mkdtemp(prefix="bench-speed-"))
    stack = Stack.create(work)
    settings = stack.settings
    _log(f"work folder {work}; load average {load_start}")
    notes: list[str] = []
    try:
        _log(f"broker ready in {stack.broker.start():.1f}s on {stack.broker.address}")
        stack.broker.ensure_topics(pipeline_topics(settings))
        live = run_live(stack, args, rates)

        _log("reading retail.events and retail.alerts back ...")
        events = read_events(settings.kafka_bootstrap_servers, settings.events_topic)
        opens = read_alert_opens(settings.kafka_bootstrap_servers, settings.alerts_topic)
        _log(f"read {len(events.created):,} events ({len(events.purchase_created):,} purchases), {len(opens)} alerts")
        for problem in live["source_problems"]:
            notes.append(f"**The serving process reported: {problem}.**")
        if math.isnan(live["catch_up_s"]):
            notes.append(
                f"After the load the benchmark waited {args.catch_up_timeout:.0f} s (--catch-up-timeout) and not "
                "everything was served by then: those purchases and alerts count as never served."
            )
        else:
            notes.append(f"Everything written was served {live['catch_up_s']:.1f} s after the load ended.")
        if len(events.created) != live["lines_written"]:
            notes.append(
                f"The benchmark wrote {live['lines_written']:,} lines; retail.events holds {len(events.created):,}."
            )
        served = served_times(events.purchase_bucket, events.purchase_created, live["poll_times"], live["poll_counts"])
        topic_times, topic_counts = read_sales_totals(settings.kafka_bootstrap_servers, settings.speed_sales_topic)
        on_topic = served_times(events.purchase_bucket, events.purchase_created, topic_times, topic_counts)
        lake = Lake(settings.lake_root, settings.checkpoint_root)
        commits = {q: checkpoint_commits(Path(lake.checkpoint(q))) for q in LIVE_QUERIES}
        progress = _progress(lake)
        windows = [analyse_window(w, live, events, served, on_topic, opens, commits, progress) for w in live["windows"]]
        if args.keep:
            np.savez(
                work / "observations.npz",
                purchase_created=events.purchase_created,
                purchase_bucket=events.purchase_bucket,
                served=served,
                on_topic=on_topic,
                poll_times=live["poll_times"],
            )
        for w in windows:
            lat, api = w["latency"], w["alerts_api"]
            _log(
                f"{w['rate']:,.0f}/s (in Kafka {w['kafka_rate']:,.0f}/s): event→served p50 {_sec(lat['p50'])} "
                f"p95 {_sec(lat['p95'])} p99 {_sec(lat['p99'])} (n={lat['n']:,}, never {lat['never']}); "
                f"alert→API p95 {_sec(api['p95'])} (n={api['n']}); lag flat: "
                + ", ".join(f"{q} {w['lag'][q].get('flat', False)}" for q in LIVE_QUERIES)
            )

        drain: dict[str, Any] | None = None
        if args.drain_events > 0:
            try:
                drain = run_drain(stack, args.drain_events)
            except (RuntimeError, TimeoutError) as error:
                _log(f"drain failed: {error}")
                drain = {"error": str(error).splitlines()[0]}
        request_ms = np.asarray(live["revenue_request_ms"] or [math.nan])
        results = {
            "machine": machine,
            "args": args,
            "settings": settings,
            "windows": windows,
            "drain": drain,
            "load_start": load_start,
            "load_end": " ".join(f"{v:.2f}" for v in os.getloadavg()),
            "finished": datetime.now(UTC),
            "development": args.development,
            "revenue_polls": live["revenue_polls"],
            "revenue_errors": live["revenue_errors"],
            "request_ms": {"p50": float(np.median(request_ms)), "p95": float(np.percentile(request_ms, 95))},
            "notes": notes,
        }
        write_section(args.out, render(results))
        _log(f"{args.out} updated")
        if args.json:
            args.json.parent.mkdir(parents=True, exist_ok=True)
            args.json.write_text(json.dumps(json_summary(results), indent=2, default=_plain))
            _log(f"{args.json} written")
        return 0
    except KeyboardInterrupt:
        _log("interrupted")
        return 130
    except Exception as error:
        _log(f"failed: {type(error).__name__}: {error}")
        for name in ("speed", "serve", "producer", "drain-speed"):
            log = work / f"{name}.log"
            if log.exists():
                print(f"--- last lines of {log} ---\n{_tail(log)}", file=sys.stderr)
        raise
    finally:
        for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
            signal.signal(sig, signal.SIG_IGN)  # the cleanup itself must not be cut short
        _log("stopping every process the benchmark started ...")
        stack.close()
        _log("all stopped")
        if args.keep:
            _log(f"kept {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    raise SystemExit(main())
