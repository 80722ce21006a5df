"""`make demo` / `retail demo`: a retailer's day through the whole pipeline on one machine.

What it does, in order (every step says what it waits for and for how long):

1. starts the Kafka broker (KRaft) and creates the topics, then the speed layer, the API and the dashboard in
   the background;
2. produces **yesterday** (UTC) in one burst while the speed layer starts: opening restocks and a compressed day
   of events with the diurnal shape and a flash sale (``event_generator.retail_day``);
3. plays **today** live: event_time = now, at the diurnal rate of the current hour; ordinary trading until the
   speed layer serves the first live number, then ``--live-seconds`` with the episodes: late till sales from
   yesterday evening, a flash sale, and a product that sells out (a low-stock alert opens) and is restocked (it
   resolves);
4. once the first live number is served, starts Airflow (api-server, scheduler, dag-processor) and, when the
   speed layer's watermark has passed midnight, triggers one run of the ``retail_batch`` DAG over Airflow's
   REST API (unpause, then a dagRun with ``logical_date: null``: it recomputes yesterday), and follows it task
   by task;
5. reports the run's outcome and W, prints the URLs, the Airflow login (the password file, never the password)
   and how to stop, and returns. The services keep running until ``make down``.

Ctrl-C (or SIGTERM) while it runs stops everything the demo started (background services, Airflow, the broker);
what already ran before it is left alone. A lake with earlier runs is fine: the sell-out reads the real stock
from ``/api/inventory`` before it begins.

Example::

    retail demo --live-seconds 300            # what `make demo` runs after `make setup`
"""

from __future__ import annotations

import argparse
import contextlib
import json
import signal
import sys
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from datetime import time as day_time
from decimal import Decimal
from typing import Any, TextIO

from batch_layer.arguments import TASK_IDS
from contracts.settings import Settings
from contracts.tables import RUN_SUCCEEDED
from event_generator.generator import GeneratedRecord, produce
from event_generator.retail_day import DayConfig, LivePlan, RetailDay, day_phase
from infra.airflow_local import LocalAirflow
from infra.errors import AirflowServiceError
from infra.kafka_broker import LocalKafka
from infra.services import Services

__all__ = ["DemoOptions", "add_arguments", "options_from_args", "run_demo"]

DAG_ID = "retail_batch"
_TASKS = TASK_IDS


@dataclass(frozen=True)
class DemoOptions:
    seed: int = 42
    yesterday_events: int = 30_000
    live_seconds: float = 300.0
    peak_rate: float = 10.0
    batch: bool = True
    batch_timeout_s: float = 2400.0
    airflow_after_s: float = 150.0
    lead_in_max_s: float = 300.0
    started_at: float | None = None
    status_every_s: float = 10.0

    def __post_init__(self) -> None:
        if not 0 <= self.yesterday_events <= 1_000_000:
            raise ValueError(f"--yesterday-events must be between 0 and 1,000,000, got {self.yesterday_events}")
        if not 10 <= self.live_seconds <= 86_400:
            raise ValueError(f"--live-seconds must be between 10 and 86,400, got {self.live_seconds:g}")
        if not 0.1 <= self.peak_rate <= 10_000:
            raise ValueError(f"--peak-rate must be between 0.1 and 10,000 events/s, got {self.peak_rate:g}")
        if self.batch_timeout_s <= 0:
            raise ValueError(f"--batch-timeout must be > 0 seconds, got {self.batch_timeout_s:g}")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The options of `retail demo` (stdlib only, so `retail --help` stays fast)."""
    defaults = DemoOptions()
    parser.add_argument("--seed", type=int, default=defaults.seed, help="random seed (default 42)")
    parser.add_argument(
        "--yesterday-events",
        type=int,
        default=defaults.yesterday_events,
        help="events of the compressed yesterday, produced in one burst (default 30000)",
    )
    parser.add_argument(
        "--live-seconds", type=float, default=defaults.live_seconds, help="length of today's live stream (default 300)"
    )
    parser.add_argument(
        "--peak-rate",
        type=float,
        default=defaults.peak_rate,
        help="live events/s at the busiest hour; the current hour's diurnal share of it is played (default 10)",
    )
    parser.add_argument("--no-batch", action="store_true", help="skip Airflow and the batch run")
    parser.add_argument(
        "--batch-timeout",
        type=float,
        default=defaults.batch_timeout_s,
        help="seconds to wait for the batch run after the live stream (default 2400)",
    )
    parser.add_argument("--started-at", type=float, default=None, help=argparse.SUPPRESS)  # `make demo`'s clock


def options_from_args(args: argparse.Namespace) -> DemoOptions:
    return DemoOptions(
        seed=args.seed,
        yesterday_events=args.yesterday_events,
        live_seconds=args.live_seconds,
        peak_rate=args.peak_rate,
        batch=not args.no_batch,
        batch_timeout_s=args.batch_timeout,
        started_at=args.started_at,
    )


def airflow_settings(settings: Settings, today: datetime) -> Settings:
    """The settings Airflow runs with in the demo: no catch-up of the days since RETAIL_BATCH_START_DATE (the
    scheduler would queue one run per day ahead of ours) and no scheduled run before tomorrow 02:00, unless the
    caller set them explicitly."""
    update: dict[str, Any] = {}
    if "batch_catchup" not in settings.model_fields_set:
        update["batch_catchup"] = False
    if "batch_start_date" not in settings.model_fields_set:
        update["batch_start_date"] = today.date()
    return settings.model_copy(update=update)


class _Prefixed:
    """A text stream that indents every line written to it (for the producer's own progress lines)."""

    def __init__(self, out: TextIO, prefix: str) -> None:
        self.out, self.prefix, self._fresh = out, prefix, True

    def write(self, text: str) -> int:
        for piece in text.splitlines(keepends=True):
            self.out.write((self.prefix if self._fresh else "") + piece)
            self._fresh = piece.endswith("\n")
        return len(text)

    def flush(self) -> None:
        self.out.flush()


def _loopback(host: str) -> str:
    return "127.0.0.1" if host in ("", "0.0.0.0", "::") else host


def _parse_time(text: object) -> datetime | None:
    if not text:
        return None
    return datetime.fromisoformat(str(text).replace("Z", "+00:00")).astimezone(UTC)


class Demo:
    """One run of the demo; :func:`run_demo` drives it and cleans up after Ctrl-C or an error."""

    def __init__(self, settings: Settings, options: DemoOptions, out: TextIO) -> None:
        self.settings = settings
        self.options = options
        self.out = out
        self.t0 = options.started_at or time.time()
        now = datetime.now(UTC)
        self.today_start = datetime.combine(now.date(), day_time(0), tzinfo=UTC)
        self.day = RetailDay(
            DayConfig(
                seed=options.seed,
                yesterday_events=options.yesterday_events,
                live_seconds=options.live_seconds,
                peak_rate=options.peak_rate,
                threshold=settings.low_stock_threshold,
                currency=settings.currency,
            ),
            now.date(),
        )
        self.plan = LivePlan.for_duration(options.live_seconds)  # offsets after the lead-in (see _live)
        self.broker = LocalKafka.from_settings(settings)
        self.services = Services(settings.run_dir)
        self.airflow = LocalAirflow.from_settings(airflow_settings(settings, now))
        host = _loopback(settings.bind_host)
        self.api_url = f"http://{host}:{settings.api_port}"
        self.dashboard_url = f"http://{host}:{settings.dashboard_port}/"
        self.started: list[str] = []  # what this demo started (and Ctrl-C stops), in start order
        self.lock = threading.Lock()
        self.stopping = threading.Event()
        self.live_start: datetime | None = None
        self.live_began: float | None = None  # monotonic
        self.live_done = threading.Event()
        self.sent = 0
        # purchases produced, by where they belong: {"yesterday", "today", "late"} -> [count, revenue]
        self.purchases: dict[str, list[Any]] = {k: [0, Decimal("0.00")] for k in ("yesterday", "today", "late")}
        # what the watcher saw (seconds since t0)
        self.first_live_at: float | None = None
        self.alert_opened_at: float | None = None
        self.alert_resolved_at: float | None = None
        self.high_water_mark: str | None = None
        self.w_at: float | None = None
        self.speed_watermark: datetime | None = None
        self.speed_failed: str | None = None
        self.died: set[str] = set()
        # the batch run
        self.batch_status = "not started"
        self.batch_outcome: str | None = None  # success, failed, timeout, error, skipped
        self.batch_detail = ""
        self.batch_done = threading.Event()
        self.run_id: str | None = None
        self.dag_run_finished_at: float | None = None

    # --- output ---------------------------------------------------------------------------------
    def elapsed(self) -> float:
        return time.time() - self.t0

    def say(self, text: str) -> None:
        with self.lock:
            self.out.write(f"[demo t+{self.elapsed():4.0f}s] {text}\n")
            self.out.flush()

    @contextlib.contextmanager
    def step(self, what: str) -> Iterator[None]:
        """Announce a long step, say every few seconds that it still runs, and how long it took."""
        began = time.monotonic()
        self.say(f"{what} ...")
        done = threading.Event()

        def tick() -> None:
            while not done.wait(self.options.status_every_s):
                self.say(f"  ... {what}: {time.monotonic() - began:.0f} s")

        ticker = threading.Thread(target=tick, name="demo-step", daemon=True)
        ticker.start()
        try:
            yield
        finally:
            done.set()
        self.say(f"  {what}: done in {time.monotonic() - began:.1f} s")

    # --- HTTP -----------------------------------------------------------------------------------
    def _get(self, url: str, headers: dict[str, str] | None = None, timeout: float = 5.0) -> Any:
        request = urllib.request.Request(url)
        for name, value in (headers or {}).items():
            request.add_header(name, value)
        try:
            with urllib.request.urlopen(request, timeout=timeout) as answer:
                return json.loads(answer.read())
        except (OSError, ValueError):  # not up yet, restarting, or a 4xx/5xx (HTTPError is an OSError)
            return None

    def api(self, path: str, **query: str) -> Any:
        headers = {}
        if self.settings.serving_auth_token is not None:
            headers["Authorization"] = f"Bearer {self.settings.serving_auth_token.get_secret_value()}"
        suffix = f"?{urllib.parse.urlencode(query)}" if query else ""
        return self._get(f"{self.api_url}{path}{suffix}", headers)

    # --- the steps ------------------------------------------------------------------------------
    def run(self) -> int:
        day, options = self.day, self.options
        self.say(
            f"a retailer's day: yesterday ({day.yesterday_date}, {options.yesterday_events:,} events in one burst), "
            f"then today live: ordinary trading until the speed layer serves live numbers, then "
            f"{options.live_seconds:g} s with the day's episodes (seed {options.seed})"
        )
        self.say(
            f"plan: flash sale on {day.sale_product.product_id} ({day.sale_product.unit_price} -> {day.sale_price} "
            f"{self.settings.currency}) yesterday 17:00-18:30 and today at +{self.plan.sale_start:.0f}-"
            f"{self.plan.sale_end:.0f} s; {day.sell_out_product.product_id} sells out at +"
            f"{self.plan.sell_out_start:.0f}-{self.plan.sell_out_end:.0f} s and is restocked at "
            f"+{self.plan.restock_at:.0f} s; {day.config.late_purchases} late till sales of yesterday evening "
            f"arrive at +{self.plan.late_sales_at:.0f} s (seconds after the first live number)"
        )
        self._start_broker()
        # the speed layer starts before the burst: its JVM, Spark session and Delta tables take far longer (20 s and
        # more) than producing the burst (a few seconds), so its first micro-batch still reads all of yesterday
        self._start_services(("speed", "api", "dashboard"))
        self.say(f"dashboard {self.dashboard_url}   API {self.api_url}/api/health")
        with self.step(f"producing yesterday ({day.yesterday_date}) in one burst"):
            produce(
                self._tally(day.yesterday(), "yesterday"), self.settings, rate=None, out=_Prefixed(self.out, "    ")
            )
        self.say(f"yesterday's purchases: {self._purchases('yesterday')}")
        threads = [threading.Thread(target=self._watch, name="demo-watch", daemon=True)]
        if options.batch:
            threads.append(threading.Thread(target=self._batch, name="demo-batch", daemon=True))
        else:
            self.batch_status, self.batch_outcome = "skipped (--no-batch)", "skipped"
            self.batch_done.set()
        for thread in threads:
            thread.start()
        self._live()
        self._wait_for_batch()
        self._summary()
        return 0 if self.batch_outcome in ("success", "skipped") else 1

    def _start_broker(self) -> None:
        if self.broker.pid() is None:
            self.started.append("kafka")
        with self.step(f"starting Kafka (KRaft) on {self.broker.address}"):
            self.broker.start()
            from contracts.topics import pipeline_topics

            self.broker.ensure_topics(pipeline_topics(self.settings))

    def _start_services(self, names: Iterable[str]) -> None:
        for name in names:
            if self.services.pid(name) is None:
                self.started.append(name)
            pid = self.services.start(name)
            self.say(f"{name}: running in the background, pid {pid}, log {self.services.log_file(name)}")

    # --- today, live ----------------------------------------------------------------------------
    def _live(self) -> None:
        start = datetime.now(UTC)
        self.live_start, self.live_began = start, time.monotonic()
        self.say(
            f"live stream from {start:%H:%M:%S} UTC ({day_phase(start.hour)}, "
            f"{self.day.rate_at(start, None, 0):.1f} events/s); ordinary trading until the speed layer serves the "
            f"first live number (at most {self.options.lead_in_max_s:g} s), then {self.options.live_seconds:g} s "
            "with the episodes"
        )

        def lead_in(offset: float) -> bool:
            if self.first_live_at is None and offset < self.options.lead_in_max_s:
                return True
            self.say(f"episodes begin (live +{offset:.0f} s)")
            return False

        records = self.day.live(start, observe_stock=self._observe_stock, lead_in=lead_in)
        counts = produce(
            self._paced(records), self.settings, rate=None, progress_every_s=1e9, out=_Prefixed(self.out, "    ")
        )
        self.live_done.set()
        self.say(
            f"live stream done: {sum(counts.values()):,} events; today's purchases: {self._purchases('today')}; "
            f"late till sales of yesterday: {self._purchases('late')}"
        )

    def _paced(self, records: Iterator[tuple[float, GeneratedRecord]]) -> Iterator[GeneratedRecord]:
        """Each record at its offset after the live start; a status line every few seconds meanwhile."""
        assert self.live_began is not None
        next_status = time.monotonic() + self.options.status_every_s
        last_count, last_time = 0, time.monotonic()
        for offset, record in records:
            while True:
                now = time.monotonic()
                if now >= next_status:
                    rate = (self.sent - last_count) / max(now - last_time, 1e-9)
                    last_count, last_time = self.sent, now
                    next_status = now + self.options.status_every_s
                    self.say(self._status(rate))
                wait = self.live_began + offset - now
                if wait <= 0:
                    break
                time.sleep(min(wait, 0.5, max(next_status - now, 0.01)))
            self.sent += 1
            yield from self._tally((record,), "late" if record.kind == "late" else "today")

    def _tally(self, records: Iterable[GeneratedRecord], bucket: str) -> Iterator[GeneratedRecord]:
        """Pass records through, counting purchases and their revenue (what the views must show)."""
        counter = self.purchases[bucket]
        for record in records:
            event = record.event or {}
            if event.get("event_type") == "purchase":
                counter[0] += 1
                counter[1] += int(event["quantity"]) * Decimal(str(event["unit_price"]))  # type: ignore[call-overload]
            yield record

    def _purchases(self, bucket: str) -> str:
        count, revenue = self.purchases[bucket]
        return f"{count:,} = {revenue} {self.settings.currency}"

    def _observe_stock(self) -> dict[str, tuple[int, datetime | None]]:
        """The stock the speed layer serves and the newest event time it includes, once it serves live events
        (before that: nothing, the generator keeps its own count)."""
        if self.first_live_at is None:
            return {}
        answer = self.api("/api/inventory")
        rows = answer.get("rows", []) if isinstance(answer, dict) else []
        return {
            str(row["product_id"]): (int(row["stock"]), _parse_time(row.get("last_event_time")))
            for row in rows
            if row.get("stock") is not None
        }

    def _status(self, rate: float | None = None) -> str:
        parts = []
        if self.live_began is not None and not self.live_done.is_set():
            offset = time.monotonic() - self.live_began
            now = datetime.now(UTC)
            shown = f", {rate:.1f}/s" if rate is not None else ""
            plan = self.day.plan
            until = f"/{plan.end:.0f}" if plan is not None else ""
            phase = plan.phase(offset) if plan is not None else "lead-in, ordinary trading"
            parts.append(
                f"live +{offset:.0f}{until} s: {self.sent:,} events{shown} "
                f"({now:%H:%M} UTC {day_phase(now.hour)}; {phase})"
            )
        if self.first_live_at is None:
            parts.append("speed layer: no live number yet")
        else:
            parts.append(f"first live number at t+{self.first_live_at:.0f}s")
        product = self.day.sell_out_product.product_id
        if self.alert_resolved_at is not None:
            parts.append(
                f"alert {product}: opened t+{self.alert_opened_at:.0f}s, resolved t+{self.alert_resolved_at:.0f}s"
            )
        elif self.alert_opened_at is not None:
            parts.append(f"alert {product}: open since t+{self.alert_opened_at:.0f}s")
        parts.append(f"batch: {self.batch_status}")
        if self.w_at is not None:
            parts.append(f"W {self.high_water_mark}")
        return " | ".join(parts)

    # --- the watcher: what the serving layer shows -------------------------------------------------
    def _watch(self) -> None:
        baseline: int | None = None
        product = self.day.sell_out_product.product_id
        tick = 0
        while not self.stopping.wait(1.0):
            tick += 1
            if self.live_start is None:
                continue
            if self.first_live_at is None:
                baseline = self._watch_first_number(baseline)
            if self.alert_resolved_at is None:
                self._watch_alert(product)
            if tick % 2 == 0:
                self._watch_health()
            if tick % 5 == 0:
                self._watch_services()

    def _watch_services(self) -> None:
        """Say once when a background service died (a port in use, a crash), with the last error of its log."""
        for name, error in self.services.died().items():
            if name not in self.died:
                self.died.add(name)
                self.say(f"{name.upper()} DIED: {error} (log {self.services.log_file(name)}; make status, make down)")

    def _watch_first_number(self, baseline: int | None) -> int | None:
        """Orders the speed layer serves since the live start's minute: the first answer is the baseline (what
        an earlier run left in that minute), the first larger one is the first live number."""
        assert self.live_start is not None
        begin = self.live_start.replace(second=0, microsecond=0)
        end = begin + timedelta(days=1)
        answer = self.api("/api/revenue", start=begin.isoformat(), end=end.isoformat(), grain="minute")
        if not isinstance(answer, dict):
            return baseline
        rows = [row for row in answer.get("rows", []) if row.get("source") == "speed"]
        orders = sum(int(row["orders"]) for row in rows)
        if baseline is None:
            return orders
        if orders > baseline:
            self.first_live_at = self.elapsed()
            revenue = sum((Decimal(row["revenue"]) for row in rows), Decimal("0.00"))
            self.say(
                f"FIRST LIVE NUMBER at t+{self.first_live_at:.0f}s: {orders - baseline} orders, {revenue} "
                f"{self.settings.currency} since {begin:%H:%M} UTC (speed, provisional) on the API and the dashboard"
            )
        return baseline

    def _watch_alert(self, product: str) -> None:
        answer = self.api("/api/alerts")
        if not isinstance(answer, dict) or self.live_start is None:
            return
        for row in answer.get("rows", []):
            opened = _parse_time(row.get("opened_at"))
            if row.get("product_id") != product or opened is None or opened < self.live_start - timedelta(seconds=5):
                continue
            if self.alert_opened_at is None:
                self.alert_opened_at = self.elapsed()
                self.say(f"ALERT OPENED: {product} stock {row.get('stock_at_open')} < {row.get('threshold')}")
            if row.get("resolved_at") and self.alert_resolved_at is None:
                self.alert_resolved_at = self.elapsed()
                self.say(f"ALERT RESOLVED: {product} restocked")

    def _watch_health(self) -> None:
        health = self.api("/api/health")
        if not isinstance(health, dict):
            return
        # the batch computes W from each stateful query's watermark, the smallest of them: the same here
        marks = [_parse_time(q.get("watermark")) for q in (health.get("queries") or {}).values()]
        marks = [mark for mark in marks if mark is not None]
        self.speed_watermark = min(marks) if marks else None
        liveness = health.get("speed_layer") or {}
        if liveness.get("state") == "failed" and self.speed_failed is None:
            self.speed_failed = str(liveness.get("last_error"))
            self.say(f"SPEED LAYER FAILED: {self.speed_failed} (log {self.services.log_file('speed')})")
        last = health.get("last_batch_run") or {}
        w = health.get("high_water_mark")
        ours = self.run_id is not None and last.get("run_id") == self.run_id
        if ours and w and str(last.get("status", "")).lower() == RUN_SUCCEEDED and self.w_at is None:
            self.high_water_mark, self.w_at = str(w), self.elapsed()
            self.say(f"W = {w} is served: batch rows before it are final (the dashboard shows W in its header)")

    # --- the batch run through Airflow ------------------------------------------------------------
    def _wait(self, condition: Callable[[], bool], timeout_s: float) -> bool:
        deadline = time.monotonic() + timeout_s
        while not condition():
            if self.stopping.is_set():
                raise InterruptedError("demo stopping")
            if time.monotonic() > deadline:
                return False
            time.sleep(1.0)
        return True

    def _batch(self) -> None:
        try:
            self._run_batch()
        except InterruptedError:
            self.batch_outcome = self.batch_outcome or "interrupted"
        except Exception as error:  # reported, never fatal: the live part keeps running
            if self.stopping.is_set():  # the demo is being stopped: Airflow going away is expected
                self.batch_outcome = self.batch_outcome or "interrupted"
                return
            self.batch_outcome = "error"
            self.batch_detail = " ".join(str(error).split())[:600]
            self.batch_status = f"error: {self.batch_detail[:200]}"
            self.say(f"BATCH ERROR: {self.batch_detail}")
        finally:
            self.batch_done.set()

    def _run_batch(self) -> None:
        airflow = self.airflow
        # Airflow's start-up competes with the speed layer's for two cores: let the first live number come first
        self.batch_status = "waiting for the first live number before starting Airflow"
        self._wait(lambda: self.first_live_at is not None, self.options.airflow_after_s)
        self.batch_status = "starting Airflow"
        if not airflow.pids():
            with self.lock:
                self.started.append("airflow")
        with self.step(f"starting Airflow (db migrate, api-server, scheduler, dag-processor) on {airflow.url}"):
            airflow.start(timeout_s=600)
        self.say(f"Airflow ready: {airflow.url} (login: user admin, password in {airflow.passwords_file})")
        if self.stopping.is_set():
            raise InterruptedError("demo stopping")
        token = airflow.token()

        self.batch_status = f"waiting for the dag-processor to parse {DAG_ID}"
        began = time.monotonic()
        while True:
            try:
                airflow.request("GET", f"/api/v2/dags/{DAG_ID}", token=token)
                break
            except AirflowServiceError:
                if self.stopping.is_set():
                    raise InterruptedError("demo stopping") from None
                if time.monotonic() - began > 300:
                    errors = airflow.request("GET", "/api/v2/importErrors", token=token) or {}
                    raise AirflowServiceError(
                        f"{DAG_ID} was not parsed within 300 s; import errors: "
                        f"{json.dumps(errors.get('import_errors', []))[:400]}"
                    ) from None
                time.sleep(2.0)

        # W = min(yesterday's end, the speed layer's watermark when the run starts): wait until the watermark has
        # passed midnight (and the late till sales had time to reach bronze), so the run makes all of yesterday final
        self.batch_status = "waiting for the speed layer's watermark to pass midnight"

        def ready() -> bool:
            watermark_ok = self.speed_watermark is not None and self.speed_watermark >= self.today_start
            plan, began = self.day.plan, self.live_began
            # the bronze query commits every 10 s: give the late till sales two of its triggers
            late_in_bronze = (
                plan is not None and began is not None and time.monotonic() - began >= plan.late_sales_at + 20
            )
            return watermark_ok and (late_in_bronze or self.live_done.is_set())

        if not self._wait(ready, 600):
            self.say("the speed watermark has not passed midnight after 10 min: triggering anyway (W may stay put)")

        airflow.request("PATCH", f"/api/v2/dags/{DAG_ID}", {"is_paused": False}, token=token)
        run = airflow.request("POST", f"/api/v2/dags/{DAG_ID}/dagRuns", {"logical_date": None}, token=token)
        self.run_id = str(run["dag_run_id"])
        self.batch_status = f"run {self.run_id} {run.get('state', 'queued')}"
        self.say(f"BATCH triggered: dag run {self.run_id} of {DAG_ID} (recomputes {self.day.yesterday_date})")
        self._follow_run(token)

    def _follow_run(self, token: str) -> None:
        airflow, run_id = self.airflow, self.run_id
        began = time.monotonic()
        deadline = began + self.options.batch_timeout_s + self.options.live_seconds
        reported: dict[str, str] = {}
        state = "queued"
        while time.monotonic() < deadline:
            if self.stopping.wait(3.0):
                raise InterruptedError("demo stopping")
            try:
                state = airflow.request("GET", f"/api/v2/dags/{DAG_ID}/dagRuns/{run_id}", token=token)["state"]
                tasks = airflow.request("GET", f"/api/v2/dags/{DAG_ID}/dagRuns/{run_id}/taskInstances", token=token)[
                    "task_instances"
                ]
            except (AirflowServiceError, OSError, KeyError) as error:
                self.batch_status = f"run {run_id}: cannot read its state ({str(error)[:80]})"
                with contextlib.suppress(AirflowServiceError, OSError, KeyError):
                    token = airflow.token()  # an expired token is the usual reason on a long run
                continue
            by_id = {task["task_id"]: task for task in tasks}
            for task_id in _TASKS:
                task = by_id.get(task_id) or {}
                task_state = str(task.get("state"))
                if (
                    task_state in ("success", "failed", "up_for_retry", "upstream_failed")
                    and reported.get(task_id) != task_state
                ):
                    reported[task_id] = task_state
                    took = self._task_seconds(task)
                    self.say(f"  batch task {task_id}: {task_state}" + (f" in {took:.0f} s" if took else ""))
            total = time.monotonic() - began
            # the first task that is not done yet: running, waiting for a retry, queued or scheduled
            current = next((by_id[t] for t in _TASKS if by_id.get(t, {}).get("state") not in ("success", None)), None)
            if current is not None:
                since = _parse_time(current.get("start_date"))
                running = (datetime.now(UTC) - since).total_seconds() if since else 0.0
                step = _TASKS.index(current["task_id"]) + 1
                try_number = int(current.get("try_number") or 1)
                self.batch_status = (
                    f"{current['task_id']} ({step}/5) {current.get('state')}"
                    + (f" {running:.0f} s" if current.get("state") == "running" else "")
                    + (f", try {try_number}" if try_number > 1 else "")
                    + f", run {total:.0f} s"
                )
            else:
                self.batch_status = f"run {state}, {total:.0f} s"
            if state in ("success", "failed"):
                self.dag_run_finished_at = self.elapsed()
                self.batch_outcome = state
                summary = ", ".join(f"{t}={by_id.get(t, {}).get('state')}" for t in _TASKS)
                self.batch_detail = summary
                self.batch_status = f"run {state} after {total:.0f} s"
                self.say(f"BATCH {state.upper()}: dag run {run_id} in {total:.0f} s ({summary})")
                if state == "failed":
                    self.say(f"  task logs: {airflow.home / 'logs' / f'dag_id={DAG_ID}' / f'run_id={run_id}'}")
                return
        self.batch_outcome = "timeout"
        self.batch_status = f"run {run_id} still {state} after {time.monotonic() - began:.0f} s"
        self.say(f"BATCH TIMEOUT: {self.batch_status}; follow it at {airflow.url}")

    @staticmethod
    def _task_seconds(task: dict[str, Any]) -> float | None:
        start, end = _parse_time(task.get("start_date")), _parse_time(task.get("end_date"))
        return (end - start).total_seconds() if start and end else None

    def _wait_for_batch(self) -> None:
        """After the live stream: status lines until the batch run is over, then until W is served."""
        next_status = time.monotonic()
        while not self.batch_done.wait(0.5):
            if time.monotonic() >= next_status:
                self.say(self._status())
                next_status = time.monotonic() + self.options.status_every_s
        if self.batch_outcome == "success":
            deadline = time.monotonic() + 60
            while self.w_at is None and time.monotonic() < deadline:
                time.sleep(0.5)
            if self.w_at is None:
                self.say("W is not served yet 60 s after the run (see /api/health)")

    def _summary(self) -> None:
        def at(seconds: float | None) -> str:
            return "not seen" if seconds is None else f"t+{seconds:.0f}s"

        timeline = [("first live number", at(self.first_live_at))]
        if self.alert_opened_at is not None:
            resolved = f"resolved {at(self.alert_resolved_at)}" if self.alert_resolved_at else "still open"
            product = self.day.sell_out_product.product_id
            timeline.append(("low-stock alert", f"{product}: opened {at(self.alert_opened_at)}, {resolved}"))
        if self.dag_run_finished_at is not None:
            outcome = f"{at(self.dag_run_finished_at)}: {self.batch_outcome} ({self.batch_detail})"
            timeline.append(("batch run finished", outcome))
        elif self.batch_outcome:
            timeline.append(("batch run", f"{self.batch_outcome}: {self.batch_detail or self.batch_status}"))
        timeline.append(("W served", f"{at(self.w_at)}: {self.high_water_mark}" if self.w_at else "not yet"))
        logs = f"{self.settings.run_dir}/{{speed,api,dashboard}}.log, {self.broker.log_file}"
        lines = ["", "=" * 100, "timeline (seconds since `make demo` began):"]
        lines += [f"  {label:<20} {text}" for label, text in timeline]
        lines += [
            "",
            f"dashboard   {self.dashboard_url}",
            "            pick 'last 24 hours': yesterday's final (batch) bars next to today's provisional (speed) ones",
            f"API         {self.api_url}/api/health   {self.api_url}/api/docs",
        ]
        if self.options.batch:
            lines.append(f"Airflow     {self.airflow.url}   user admin, password in {self.airflow.passwords_file}")
            logs += f", {self.airflow.home / 'logs'}"
        lines += [
            f"logs        {logs}",
            "more events: make produce    status: make status    stop everything: make down",
            "=" * 100,
        ]
        with self.lock:
            self.out.write("\n".join(lines) + "\n")
            self.out.flush()

    # --- stopping -------------------------------------------------------------------------------
    def cleanup(self) -> list[str]:
        """Stop everything this demo started (services, Airflow, the broker); returns what was stopped."""
        self.stopping.set()
        stopped = []
        with self.lock:
            started = list(self.started)
        for name in reversed([n for n in started if n in ("speed", "api", "dashboard")]):
            if self.services.stop(name):
                stopped.append(name)
        if "airflow" in started:
            # the batch thread may still be inside airflow.start() (migrating, or spawning the services): stop
            # what has a PID file until that thread is gone, so nothing it spawns late survives
            deadline = time.monotonic() + 240
            batch = next((t for t in threading.enumerate() if t.name == "demo-batch"), None)
            while batch is not None and batch.is_alive() and time.monotonic() < deadline:
                self.airflow.stop(grace_s=10)
                batch.join(2.0)
            self.airflow.stop()
            stopped.append("airflow")
        if "kafka" in started and self.broker.stop():
            stopped.append("kafka")
        return stopped


def _interrupt(_signum: int, _frame: object) -> None:
    raise KeyboardInterrupt


def run_demo(settings: Settings, options: DemoOptions, out: TextIO = sys.stdout) -> int:
    """Run the demo; on Ctrl-C, SIGTERM or an error, stop everything it started before returning or raising."""
    demo = Demo(settings, options, out)
    main = threading.current_thread() is threading.main_thread()
    previous = signal.signal(signal.SIGTERM, _interrupt) if main else None
    try:
        return demo.run()
    except BaseException as error:
        reason = "Ctrl-C or SIGTERM" if isinstance(error, KeyboardInterrupt) else " ".join(str(error).split())[:200]
        demo.say(f"stopping everything the demo started ({reason}) ...")
        ignored = signal.signal(signal.SIGINT, signal.SIG_IGN) if main else None
        try:
            stopped = demo.cleanup()
        finally:
            if main:
                signal.signal(signal.SIGINT, ignored)
        demo.say("stopped: " + (", ".join(stopped) or "nothing was running"))
        raise
    finally:
        demo.stopping.set()
        if main:
            signal.signal(signal.SIGTERM, previous)
