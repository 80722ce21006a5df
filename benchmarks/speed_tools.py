"""Building blocks of `make bench-speed` (benchmarks/speed.py): load, probes, read-back and the arithmetic.

- ``EventLines``: contract-valid retail events as pre-formatted ``key<TAB>json`` lines (string templates, so a
  10,000 events/s load costs the benchmark a few ms of CPU per second), plus the planted low-stock product.
- ``JavaProducer``: Kafka's own ``org.apache.kafka.tools.ConsoleProducer`` (acks=all, idempotent, linger 5 ms)
  fed through its stdin, so the load does not take a Python core from Spark.
- ``RevenuePoller`` / ``AlertsPoller``: threads polling the serving API and recording what each answer held.
- ``read_topic``: reads a topic back (after the load, so the reader never competes with Spark).
- pure arithmetic: ``served_times`` (event→served per purchase), ``percentile``, checkpoint commits and lag,
  phase-duration statistics, CPU accounting per process group.
"""

from __future__ import annotations

import contextlib
import http.client
import json
import math
import os
import random
import shutil
import subprocess
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import IO, Any

import numpy as np

from contracts.events import SCHEMA_VERSION, EventType
from contracts.jars import jar_files
from event_generator.generator import build_catalogue
from infra.processes import stop_group

__all__ = [
    "AlertsPoller",
    "CpuMeter",
    "EventLines",
    "JavaProducer",
    "ManagedProcesses",
    "RevenuePoller",
    "checkpoint_commits",
    "iso_ms",
    "java_binary",
    "java_command",
    "percentile",
    "read_topic",
    "served_times",
]

MINUTE_MS = 60_000
# the generator's mix (event_generator.generator._EVENT_MIX)
EVENT_MIX = (
    (EventType.PAGE_VIEW, 0.70),
    (EventType.ADD_TO_CART, 0.15),
    (EventType.PURCHASE, 0.11),
    (EventType.RESTOCK, 0.04),
)


def iso_ms(epoch_ms: int) -> str:
    """``2026-11-26T10:01:02.345Z`` from epoch milliseconds, exactly (no float rounding)."""
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(epoch_ms // 1000)) + f".{epoch_ms % 1000:03d}Z"


def _template(key: str, event: dict[str, object]) -> str:
    """One line ``key<TAB>json\\n`` as a str.format template: {0} = event number, {1} = event_time."""
    text = json.dumps(event, separators=(",", ":"))
    text = text.replace("{", "{{").replace("}", "}}").replace("@N@", "{0}").replace("@T@", "{1}")
    return f"{key}\t{text}\n"


class EventLines:
    """Contract-valid events (docs/design.md) as Kafka lines, from a pool of templates cycled in order.

    Every line gets a unique event number (event_id ``<run>-<n>``; purchases also order_id ``o-<run>-<n>``)
    and the event_time it is given when it is formatted. 50 products of the generator's catalogue, 1,000 users,
    the generator's mix of page views, add-to-carts, purchases and restocks.
    """

    POOL = 8192

    def __init__(self, run: str, products: int = 50, users: int = 1000, seed: int = 7, currency: str = "EUR"):
        self.run = run
        self.next_number = 0
        rng = random.Random(seed)
        catalogue = build_catalogue(seed, products)
        templates: list[str] = []
        purchases: list[int] = []
        for _ in range(self.POOL):
            roll, cumulative, kind = rng.random(), 0.0, EVENT_MIX[-1][0]
            for candidate, weight in EVENT_MIX:
                cumulative += weight
                if roll < cumulative:
                    kind = candidate
                    break
            product = catalogue[rng.randrange(len(catalogue))]
            event = self._event(kind, product.product_id, product.category, f"u{rng.randrange(users):05d}")
            if kind is EventType.ADD_TO_CART:
                event["quantity"] = rng.randint(1, 3)
            elif kind is EventType.PURCHASE:
                event.update(quantity=rng.randint(1, 3), unit_price=str(product.unit_price), currency=currency)
            elif kind is EventType.RESTOCK:
                event.update(quantity=rng.randint(20, 60), user_id=None)
            templates.append(_template(product.product_id, event))
            purchases.append(kind is EventType.PURCHASE)
        self._templates = templates
        # purchases among template slots [0, i): counts purchases of any range of numbers without a loop
        self._purchase_prefix = np.concatenate([[0], np.cumsum(purchases)]).astype(np.int64)
        self._planted: dict[tuple[str, int], str] = {}

    def _event(self, kind: EventType, product_id: str, category: str, user: str | None) -> dict[str, object]:
        event: dict[str, object] = {
            "schema_version": SCHEMA_VERSION,
            "event_id": f"{self.run}-@N@",
            "event_type": str(kind),
            "event_time": "@T@",
            "user_id": user,
            "product_id": product_id,
            "category": category,
            "quantity": None,
            "unit_price": None,
            "currency": None,
            "order_id": f"o-{self.run}-@N@" if kind is EventType.PURCHASE else None,
        }
        return event

    def _purchases_before(self, number: int) -> int:
        cycles, rest = divmod(number, self.POOL)
        return int(cycles * self._purchase_prefix[-1] + self._purchase_prefix[rest])

    def chunk(self, count: int, event_time_ms: int) -> tuple[str, int]:
        """``count`` lines with one event_time; returns (text, purchases among them)."""
        if count <= 0:
            return "", 0
        first, stamp, pool, templates = self.next_number, iso_ms(event_time_ms), self.POOL, self._templates
        text = "".join([templates[n % pool].format(n, stamp) for n in range(first, first + count)])
        self.next_number = first + count
        return text, self._purchases_before(first + count) - self._purchases_before(first)

    def planted(self, product_id: str, kind: EventType, quantity: int, event_time_ms: int) -> str:
        """One line of the planted product (its own id, never in the random mix): a restock or a purchase."""
        template = self._planted.get((str(kind), quantity))
        if template is None:
            event = self._event(kind, product_id, "toys", "u-bench-alert" if kind is EventType.PURCHASE else None)
            event["quantity"] = quantity
            if kind is EventType.PURCHASE:
                event.update(unit_price="1.00", currency="EUR")
            template = self._planted[(str(kind), quantity)] = _template(product_id, event)
        number = self.next_number
        self.next_number += 1
        return template.format(number, iso_ms(event_time_ms))

    def write_backlog(self, path: Path, count: int, end_ms: int, nominal_rate: float = 10_000.0) -> int:
        """``count`` lines into ``path`` with event times spread at ``nominal_rate`` up to ``end_ms``; returns
        the number of purchases. Event times step per chunk of 100 lines (10 ms at 10,000/s)."""
        start_ms = end_ms - int(count / nominal_rate * 1000)
        purchases, written = 0, 0
        with path.open("w", buffering=1 << 20) as out:
            while written < count:
                n = min(100, count - written)
                text, bought = self.chunk(n, start_ms + int(written / nominal_rate * 1000))
                out.write(text)
                purchases += bought
                written += n
        return purchases


# --- JVM tools from the broker's jars -----------------------------------------------------------------------
def java_binary() -> str:
    java_home = os.environ.get("JAVA_HOME")
    java = str(Path(java_home) / "bin" / "java") if java_home else shutil.which("java")
    if not java:
        raise RuntimeError("java not found: install OpenJDK 17+ (make setup checks for it)")
    return java


def java_command(jar_cache: Path, main_class: str, *args: str, heap: str = "512m") -> list[str]:
    """A Kafka tool (same jars as the broker: var/cache/jars/kafka) as a command line."""
    java = java_binary()
    classpath = os.pathsep.join(str(jar) for jar in jar_files(jar_cache, "kafka"))
    return [java, "-Xms64m", f"-Xmx{heap}", "-XX:+UseG1GC", "-cp", classpath, main_class, *args]


def console_producer_args(bootstrap: str, topic: str) -> list[str]:
    """ConsoleProducer: ``key<TAB>value`` lines, acks=all, idempotent, linger 5 ms."""
    return [
        "--bootstrap-server",
        bootstrap,
        "--topic",
        topic,
        "--reader-property",
        "parse.key=true",
        "--reader-property",
        "key.separator=\t",
        "--request-required-acks",
        "all",
        "--timeout",  # ConsoleProducer's name for linger.ms
        "5",
        "--request-timeout-ms",
        "30000",
        "--message-send-max-retries",
        "10",
        "--command-property",
        "acks=all",
        "--command-property",
        "enable.idempotence=true",
        "--command-property",
        "linger.ms=5",
        "--command-property",
        "max.in.flight.requests.per.connection=5",
    ]


@dataclass
class ManagedProcesses:
    """Every process the benchmark starts, each in its own session (process group), stopped by group."""

    procs: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)

    def start(
        self,
        name: str,
        argv: Sequence[str],
        env: dict[str, str],
        log: Path,
        stdin: Any = subprocess.DEVNULL,
        cwd: Path | None = None,
    ) -> subprocess.Popen[bytes]:
        process = subprocess.Popen(
            list(argv),
            env=env,
            cwd=cwd,
            stdin=stdin,
            stdout=log.open("ab"),
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        self.procs[name] = process
        return process

    def pgids(self) -> dict[str, int]:
        return {name: p.pid for name, p in self.procs.items() if p.poll() is None}

    def stop(self, name: str, grace_s: float = 60.0, interrupt: bool = True) -> int | None:
        """SIGINT to the leader (graceful), then SIGKILL to whatever is left of its group. Returns the exit code."""
        process = self.procs.pop(name, None)
        if process is None:
            return None
        if interrupt and process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(process.pid, 2)  # SIGINT
            with contextlib.suppress(subprocess.TimeoutExpired):
                process.wait(timeout=grace_s)
        stop_group(process.pid, 5.0 if interrupt else grace_s)
        with contextlib.suppress(subprocess.TimeoutExpired):
            process.wait(timeout=5)
        if process.stdin is not None:
            with contextlib.suppress(OSError):
                process.stdin.close()
        return process.returncode

    def stop_all(self) -> None:
        for name in list(self.procs):
            self.stop(name, grace_s=20.0)


class JavaProducer:
    """ConsoleProducer with a pipe to its stdin; ``write`` blocks when the producer falls behind."""

    def __init__(self, processes: ManagedProcesses, name: str, argv: list[str], env: dict[str, str], log: Path):
        self.processes = processes
        self.name = name
        self.process = processes.start(name, argv, env, log, stdin=subprocess.PIPE)
        assert self.process.stdin is not None
        self._stdin: IO[bytes] = self.process.stdin

    def write(self, text: str) -> None:
        if self.process.poll() is not None:
            raise RuntimeError(f"ConsoleProducer exited with code {self.process.returncode}")
        self._stdin.write(text.encode())
        self._stdin.flush()

    def close(self, timeout_s: float = 60.0) -> int | None:
        """End of input: the producer sends what it holds and exits."""
        with contextlib.suppress(OSError):
            self._stdin.close()
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.process.wait(timeout=timeout_s)
        return self.processes.stop(self.name, grace_s=5.0)


# --- probes of the serving API -----------------------------------------------------------------------------
class _Poller(threading.Thread):
    """GET ``path`` every ``interval_s`` over one keep-alive connection; ``handle`` gets (sent ms, received ms,
    parsed JSON). Errors are counted, never fatal."""

    def __init__(self, port: int, path: str, interval_s: float, name: str):
        super().__init__(name=name, daemon=True)
        self.port, self.path, self.interval_s = port, path, interval_s
        self.stop_event = threading.Event()
        self.errors = 0
        self.last_error: str | None = None
        self.polls = 0
        self.request_ms: list[float] = []

    def handle(self, sent_ms: int, received_ms: int, payload: Any) -> None:
        raise NotImplementedError

    def run(self) -> None:
        connection: http.client.HTTPConnection | None = None
        next_at = time.monotonic()
        while not self.stop_event.is_set():
            try:
                if connection is None:
                    connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
                sent = time.time_ns() // 1_000_000
                connection.request("GET", self.path)
                response = connection.getresponse()
                body = response.read()
                received = time.time_ns() // 1_000_000
                if response.status != 200:
                    raise RuntimeError(f"HTTP {response.status}: {body[:200]!r}")
                self.handle(sent, received, json.loads(body))
                self.polls += 1
                self.request_ms.append(received - sent)
            except Exception as error:  # noqa: BLE001 - a probe must keep going
                self.errors += 1
                self.last_error = f"{type(error).__name__}: {error}"
                if connection is not None:
                    connection.close()
                connection = None
            next_at += self.interval_s
            delay = next_at - time.monotonic()
            if delay < 0:
                next_at = time.monotonic()  # a slow answer: poll again at once, do not burst to catch up
            else:
                self.stop_event.wait(delay)
        if connection is not None:
            connection.close()

    def stop(self) -> None:
        self.stop_event.set()
        self.join(timeout=15)


def _epoch_ms(text: str, cache: dict[str, int]) -> int:
    value = cache.get(text)
    if value is None:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
        value = cache[text] = round(moment.timestamp() * 1000)
    return value


class RevenuePoller(_Poller):
    """/api/revenue (total, minute grain) over [start, end): per poll the receive time and orders per bucket."""

    def __init__(self, port: int, start: datetime, end: datetime, interval_s: float):
        query = f"start={start:%Y-%m-%dT%H:%M:%SZ}&end={end:%Y-%m-%dT%H:%M:%SZ}&grain=minute"
        super().__init__(port, f"/api/revenue?{query}", interval_s, "poll-revenue")
        self.times: list[int] = []
        self.orders: list[dict[int, int]] = []
        self._lock = threading.Lock()
        self._bucket_cache: dict[str, int] = {}

    def handle(self, sent_ms: int, received_ms: int, payload: Any) -> None:
        orders = {_epoch_ms(row["bucket_start"], self._bucket_cache): int(row["orders"]) for row in payload["rows"]}
        with self._lock:
            self.times.append(received_ms)
            self.orders.append(orders)

    def latest(self) -> dict[int, int]:
        with self._lock:
            return dict(self.orders[-1]) if self.orders else {}

    def series(self) -> tuple[np.ndarray, dict[int, np.ndarray]]:
        """Receive times and, per bucket, the orders of every poll (0 where the bucket was not answered yet)."""
        with self._lock:
            times, orders = list(self.times), list(self.orders)
        buckets = sorted({bucket for poll in orders for bucket in poll})
        counts = {b: np.fromiter((poll.get(b, 0) for poll in orders), np.int64, len(orders)) for b in buckets}
        return np.asarray(times, np.int64), counts


class AlertsPoller(_Poller):
    """/api/alerts: the receive time of the first answer that listed each alert_id."""

    def __init__(self, port: int, interval_s: float):
        super().__init__(port, "/api/alerts", interval_s, "poll-alerts")
        self.first_seen: dict[str, int] = {}

    def handle(self, sent_ms: int, received_ms: int, payload: Any) -> None:
        for row in payload["rows"]:
            self.first_seen.setdefault(row["alert_id"], received_ms)


# --- reading topics back ---------------------------------------------------------------------------------
def read_topic(bootstrap: str, topic: str, handle: Callable[[list[Any]], None], timeout_s: float = 600.0) -> int:
    """Every record of ``topic`` from the beginning to its current end, in batches to ``handle``; returns the
    number read. No consumer group, nothing committed."""
    from kafka import KafkaConsumer, TopicPartition

    consumer = KafkaConsumer(
        bootstrap_servers=bootstrap.split(","),
        enable_auto_commit=False,
        group_id=None,
        fetch_max_bytes=64 * 1024 * 1024,
        max_partition_fetch_bytes=16 * 1024 * 1024,
        max_poll_records=50_000,
    )
    try:
        partitions = [TopicPartition(topic, p) for p in sorted(consumer.partitions_for_topic(topic) or [])]
        consumer.assign(partitions)
        consumer.seek_to_beginning(*partitions)
        end = consumer.end_offsets(partitions)
        deadline, count = time.monotonic() + timeout_s, 0
        while any(consumer.position(tp) < end[tp] for tp in partitions):
            if time.monotonic() > deadline:
                raise TimeoutError(f"reading {topic} back took longer than {timeout_s:.0f}s")
            for records in consumer.poll(timeout_ms=1000).values():
                handle(records)
                count += len(records)
        return count
    finally:
        consumer.close(autocommit=False)


def end_offsets(bootstrap: str, topic: str) -> int:
    """Sum of the end offsets of ``topic``'s partitions (records in a fresh topic written without transactions)."""
    from kafka import KafkaConsumer, TopicPartition

    consumer = KafkaConsumer(bootstrap_servers=bootstrap.split(","), enable_auto_commit=False, group_id=None)
    try:
        partitions = [TopicPartition(topic, p) for p in sorted(consumer.partitions_for_topic(topic) or [])]
        return int(sum(consumer.end_offsets(partitions).values()))
    finally:
        consumer.close(autocommit=False)


# --- arithmetic --------------------------------------------------------------------------------------------
def percentile(values: Iterable[float], q: float) -> float:
    """The q-th percentile by rank (nearest rank, no interpolation), so +inf (never served) stays honest:
    if more than (100 - q) % of the values are +inf, the percentile is +inf. NaN for no values."""
    ordered = np.sort(np.asarray(list(values), dtype=np.float64))
    if not len(ordered):
        return math.nan
    rank = max(1, math.ceil(q / 100 * len(ordered)))
    return float(ordered[rank - 1])


def served_times(
    buckets: np.ndarray, created: np.ndarray, poll_times: np.ndarray, poll_counts: dict[int, np.ndarray]
) -> np.ndarray:
    """When each purchase was first served (epoch ms, +inf if never), from the polls of /api/revenue.

    ``buckets`` / ``created``: each purchase's minute bucket (event time) and Kafka CreateTime. Within a bucket
    the purchases are ranked by CreateTime; the i-th is served at the first poll whose orders for that bucket
    are >= i (orders never go back; a running maximum guards against a stale answer).
    """
    served = np.full(len(created), np.inf)
    for bucket in np.unique(buckets):
        index = np.flatnonzero(buckets == bucket)
        order = index[np.argsort(created[index], kind="stable")]
        counts = poll_counts.get(int(bucket))
        if counts is None or not len(poll_times):
            continue
        reached = np.maximum.accumulate(counts)
        first = np.searchsorted(reached, np.arange(1, len(order) + 1), side="left")
        ok = first < len(poll_times)
        served[order[ok]] = poll_times[first[ok]]
    return served


def checkpoint_commits(checkpoint: Path) -> list[tuple[int, float, int]]:
    """(batch id, commit time in epoch ms, end offset summed over partitions) of every committed micro-batch
    of a query reading one Kafka topic: offsets/<id> gives the batch's end offsets, commits/<id> its commit."""
    found = []
    commits = checkpoint / "commits"
    if not commits.is_dir():
        return found
    for entry in commits.iterdir():
        if not entry.name.isdigit():
            continue
        batch = int(entry.name)
        offsets_file = checkpoint / "offsets" / entry.name
        try:
            lines = offsets_file.read_text().splitlines()
        except FileNotFoundError:
            continue
        total = 0
        for line in lines[2:]:
            for by_partition in json.loads(line).values():
                total += sum(int(offset) for offset in by_partition.values())
        found.append((batch, entry.stat().st_mtime_ns / 1e6, total))
    return sorted(found)


class CpuMeter:
    """CPU time of the machine and of process groups, from /proc (Linux)."""

    TICK = os.sysconf("SC_CLK_TCK")

    @staticmethod
    def machine_busy_s() -> float:
        fields = [int(v) for v in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
        user, nice, system, _idle, _iowait, irq, softirq, steal = fields[:8]
        # guest time is already inside user/nice
        return (user + nice + system + irq + softirq + steal) / CpuMeter.TICK

    @staticmethod
    def groups_s(pgids: dict[str, int], own_pid: int) -> dict[str, float]:
        """CPU seconds (user + system, plus reaped children) per named process group, and the benchmark itself."""
        by_group = {pgid: name for name, pgid in pgids.items()}
        used: Counter[str] = Counter()
        for stat in Path("/proc").glob("[0-9]*/stat"):
            try:
                text = stat.read_text()
            except OSError:
                continue
            pid = int(stat.parent.name)
            fields = text.rsplit(") ", 1)[-1].split()
            name = "benchmark" if pid == own_pid else by_group.get(int(fields[2]))
            if name is not None:
                used[name] += sum(int(v) for v in fields[11:15]) / CpuMeter.TICK
        return dict(used)

    @classmethod
    def snapshot(cls, pgids: dict[str, int]) -> tuple[float, float, dict[str, float]]:
        return time.monotonic(), cls.machine_busy_s(), cls.groups_s(pgids, os.getpid())

    @staticmethod
    def usage(first: tuple[float, float, dict[str, float]], last: tuple[float, float, dict[str, float]]) -> dict:
        """Average cores used between two snapshots: the whole machine, each group, and everything else."""
        seconds = max(1e-9, last[0] - first[0])
        groups = {
            name: max(0.0, last[2].get(name, 0.0) - first[2].get(name, 0.0)) / seconds
            for name in set(first[2]) | set(last[2])
        }
        machine = (last[1] - first[1]) / seconds
        return {"machine": machine, "groups": groups, "others": max(0.0, machine - sum(groups.values()))}
