"""The project's command line: ``retail <command>`` (installed as a console script by uv sync).

Commands:
  up        start the local Kafka broker (KRaft) and create the topics; harmless when already up
  down      stop the local broker (no process left behind)
  status    show whether the broker runs, its address and topics
  produce   send generated retail events to Kafka (rate, duration, seed, faults configurable)
  demo      a retailer's day end to end: broker, speed layer, API, dashboard, yesterday + live events, a batch run
  start     start background services (speed, api, dashboard); logs and PIDs under var/run
  stop      stop background services (all when none is named)
  serve     run the serving layer's HTTP JSON API (127.0.0.1:8000 by default)
  dashboard run the live Dash dashboard (127.0.0.1:8050 by default)
  speed     run the speed layer: Kafka -> bronze + quarantine, minute rollups, inventory + alerts (Delta)
  replay-quarantine  re-parse quarantined records with the current contract; add those that pass to bronze, once
  rebuild-speed      recompute the speed views and inventory from bronze after a lost checkpoint (speed stopped)
  batch     recompute exact batch views for a UTC day (+ lookback), validate, publish W, maintain
  airflow   start | stop | status the local Airflow (api-server, scheduler, dag-processor) for the batch DAG
  cluster   spark | kafka  up | down | status: local Spark standalone / 3-node Kafka cluster (docs/scale-out.md)

Every command reads its settings from RETAIL_* environment variables (docs/settings.md).
"""

from __future__ import annotations

import argparse
import math
import socket
import sys
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from typing import NoReturn

from contracts.errors import RetailError
from contracts.events import MIN_EVENT_TIME
from contracts.settings import Settings

__all__ = ["main"]


def _cmd_up(settings: Settings, _args: argparse.Namespace) -> int:
    from infra.kafka_broker import LocalKafka

    broker = LocalKafka.from_settings(settings)
    print(f"starting Kafka (KRaft) on {broker.address} ...", flush=True)
    seconds = broker.start()
    print(f"kafka ready on {broker.address}" + (f" after {seconds:.1f}s" if seconds else " (already running)"))
    from contracts.topics import pipeline_topics

    topics = broker.ensure_topics(pipeline_topics(settings))
    print("topics: " + ", ".join(f"{name} ({parts} partitions)" for name, parts in sorted(topics.items())))
    print(f"broker log: {broker.log_file}")
    return 0


def _cmd_down(settings: Settings, _args: argparse.Namespace) -> int:
    from infra.kafka_broker import LocalKafka

    broker = LocalKafka.from_settings(settings)
    print("kafka stopped" if broker.stop() else "kafka was not running")
    return 0


def _cmd_status(settings: Settings, _args: argparse.Namespace) -> int:
    from infra.kafka_broker import LocalKafka

    status = LocalKafka.from_settings(settings).status()
    print(status.describe())
    services = _services(settings)
    for name, pid in services.running().items():
        print(f"{name}: running, pid {pid}, log {services.log_file(name)}")
    for name, error in services.died().items():
        print(
            f"{name}: DIED (not running; `retail start {name}` restarts it): {error}  [log {services.log_file(name)}]"
        )
    if not status.ready:
        print(
            f"retail status: no Kafka broker answers at {status.address} (start one with `retail up`)", file=sys.stderr
        )
    return 0 if status.ready else 1


def _require_broker(settings: Settings, timeout_s: float = 3.0) -> None:
    """Fail fast, in one line, when no bootstrap server accepts a TCP connection (the client would retry ~30 s)."""
    servers = [server.strip() for server in settings.kafka_bootstrap_servers.split(",") if server.strip()]
    for server in servers:
        host, _, port = server.rpartition(":")
        try:
            with socket.create_connection((host.strip("[]") or "127.0.0.1", int(port)), timeout=timeout_s):
                return
        except (OSError, ValueError):
            continue
    from infra.errors import BrokerError

    raise BrokerError(f"no Kafka broker answers at {settings.kafka_bootstrap_servers} (start one with `retail up`)")


def _cmd_produce(settings: Settings, args: argparse.Namespace) -> int:
    from event_generator.generator import GeneratorConfig, generate, produce

    count = args.count if args.count is not None else max(1, int(args.rate * args.duration))
    _require_broker(settings)
    config = GeneratorConfig(
        seed=args.seed,
        count=count,
        rate=args.rate,
        start=args.start,
        products=args.products,
        users=args.users,
        late_ratio=args.late_ratio,
        late_minutes=args.late_minutes,
        duplicate_ratio=args.duplicate_ratio,
        malformed_ratio=args.malformed_ratio,
        currency=settings.currency,
    )
    print(
        f"producing {count:,} events to {settings.events_topic} at {settings.kafka_bootstrap_servers} "
        f"({'as fast as possible' if args.burst else f'{args.rate:,.0f}/s'}) ...",
        file=sys.stderr,
        flush=True,
    )
    produce(generate(config), settings, rate=None if args.burst else args.rate)
    return 0


def _cmd_demo(settings: Settings, args: argparse.Namespace) -> int:
    from infra.demo import options_from_args, run_demo

    return run_demo(settings, options_from_args(args))


def _cmd_speed(settings: Settings, args: argparse.Namespace) -> int:
    from speed_layer.job import run

    return run(settings, available_now=args.available_now, part=args.part)


def _cmd_replay_quarantine(settings: Settings, args: argparse.Namespace) -> int:
    from contracts.spark import build_spark_session
    from speed_layer.replay import replay_quarantine

    spark = build_spark_session(settings, app_name="retail-replay-quarantine")
    report = replay_quarantine(spark, settings, reasons=args.reason or None, since=args.since)
    print(report.describe(), flush=True)
    return 0


def _speed_layer_runs(settings: Settings) -> str | None:
    """Why the speed layer looks alive (a background service, or a recent driver heartbeat), or None."""
    running = _services(settings).running()
    if "speed" in running:
        return f"the speed service runs (pid {running['speed']}; stop it with `retail stop speed`)"
    from deltalake import DeltaTable
    from deltalake.exceptions import TableNotFoundError

    from contracts.progress import HEARTBEAT_STALE_AFTER, PROGRESS_TABLE, newest_heartbeat
    from contracts.storage import delta_rs_location
    from contracts.tables import Lake

    lake = Lake(settings.lake_root, settings.checkpoint_root)
    uri, options = delta_rs_location(lake.table(PROGRESS_TABLE), settings)
    try:
        table = DeltaTable(uri, storage_options=options)
    except TableNotFoundError:
        return None
    newest = newest_heartbeat(table, settings.speed_progress_retention_hours)
    if newest is not None and datetime.now(UTC) - newest <= HEARTBEAT_STALE_AFTER:
        return (
            f"a speed driver wrote a heartbeat at {newest:%Y-%m-%dT%H:%M:%SZ} (stop it, then wait "
            f"{int(HEARTBEAT_STALE_AFTER.total_seconds())} s)"
        )
    return None


def _cmd_rebuild_speed(settings: Settings, _args: argparse.Namespace) -> int:
    _require_broker(settings)
    alive = _speed_layer_runs(settings)
    if alive:
        raise RetailError(f"refusing to rebuild while the speed layer runs: {alive}")
    from contracts.spark import build_spark_session
    from speed_layer.rebuild import rebuild_speed

    spark = build_spark_session(settings, app_name="retail-rebuild-speed")
    report = rebuild_speed(spark, settings)
    print(report.describe(), flush=True)
    print("next: `retail start speed` (or `retail speed`) continues from the plan above", flush=True)
    return 0


def _cmd_serve(settings: Settings, _args: argparse.Namespace) -> int:
    from serving_layer.api import serve

    serve(settings)
    return 0


def _cmd_dashboard(settings: Settings, _args: argparse.Namespace) -> int:
    from serving_layer.dashboard.app import run

    run(settings)
    return 0


def _cmd_batch(settings: Settings, args: argparse.Namespace) -> int:
    from batch_layer.interval import parse_moment

    for option in ("date", "start", "end", "run_after"):
        text = getattr(args, option, None)
        if text:  # empty --start/--end are Airflow's "no logical date"
            moment = parse_moment(text)
            if not MIN_EVENT_TIME <= moment < _LATEST_DATE:
                flag = "--" + option.replace("_", "-")
                raise ValueError(f"{flag} must be between 2000-01-01 and 8999-12-31, got {text!r}")
    if args.lookback_days is not None and not 0 <= args.lookback_days <= 3660:
        raise ValueError(f"--lookback-days must be between 0 and 3660, got {args.lookback_days}")
    from batch_layer.job import run_from_args

    return run_from_args(settings, args)


def _cmd_airflow(settings: Settings, args: argparse.Namespace) -> int:
    from infra.airflow_local import LocalAirflow

    airflow = LocalAirflow.from_settings(settings)
    if args.action == "stop":
        stopped = airflow.stop()
        print("airflow stopped: " + ", ".join(stopped) if stopped else "airflow was not running")
        return 0
    if args.action == "start":
        print(f"starting Airflow (api-server, scheduler, dag-processor) in {airflow.home} ...", flush=True)
        seconds = airflow.start()
        print(f"airflow ready on {airflow.url} after {seconds:.1f}s (logs: {airflow.home / 'logs'})")
    running = airflow.pids()
    print(f"airflow: {', '.join(f'{name} pid {pid}' for name, pid in running.items()) or 'stopped'}; {airflow.url}")
    if running and airflow.passwords_file.exists():
        # the password itself is never printed (terminals, CI logs and screen shares keep output)
        print(f"login: user admin, password in {airflow.passwords_file} (generated by Airflow)")
    return 0 if running or args.action == "status" else 1


def _cmd_cluster(settings: Settings, args: argparse.Namespace) -> int:
    from infra.clusters import cluster_command

    return cluster_command(settings, args.kind, args.action)


def _services(settings: Settings):  # type: ignore[no-untyped-def]
    from infra.services import Services

    return Services(settings.run_dir)


def _cmd_start(settings: Settings, args: argparse.Namespace) -> int:
    services = _services(settings)
    for name in args.services:
        pid = services.start(name)
        print(f"{name}: running, pid {pid}, log {services.log_file(name)}")
    return 0


def _cmd_stop(settings: Settings, args: argparse.Namespace) -> int:
    from infra.services import SERVICES

    unknown = sorted(set(args.services) - set(SERVICES))
    if unknown:
        raise ValueError(f"services must be among {', '.join(SERVICES)}, got {', '.join(unknown)}")
    services = _services(settings)
    names = args.services or list(services.running())
    stopped = [name for name in names if services.stop(name)]
    not_running = [name for name in args.services if name not in stopped]
    if stopped:
        print("stopped: " + ", ".join(stopped))
    if not_running:  # named explicitly but not running: say so (plain `retail stop` with nothing running is fine)
        verb = "is" if len(not_running) == 1 else "are"
        print(f"retail stop: {', '.join(not_running)} {verb} not running", file=sys.stderr)
        return 1
    if not stopped:
        print("no background service was running")
    return 0


_LATEST_DATE = datetime(9000, 1, 1, tzinfo=UTC)


class _Parser(argparse.ArgumentParser):
    """argparse with one line on stderr for a usage error (no usage block): `retail produce: argument ...`."""

    def error(self, message: str) -> NoReturn:
        print(f"{self.prog}: {message} (see `{self.prog} --help`)", file=sys.stderr)
        raise SystemExit(2)


def _number(kind: Callable[[str], float], low: float, high: float, low_open: bool = False) -> Callable[[str], float]:
    """An argparse type: a finite number of ``kind`` in [low, high] (or (low, high] with ``low_open``)."""

    def parse(text: str) -> float:
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
        inside = (value > low if low_open else value >= low) and value <= high
        if not math.isfinite(value) or not inside:
            bracket = "(" if low_open else "["
            raise argparse.ArgumentTypeError(f"must be in {bracket}{low:g}, {high:g}], got {text}")
        return value

    parse.__name__ = kind.__name__  # argparse names the type in its messages
    return parse


def _iso_datetime(text: str) -> datetime:
    try:
        moment = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected an ISO-8601 time such as 2026-01-05T10:00:00Z, got {text!r}"
        ) from None
    moment = moment if moment.tzinfo else moment.replace(tzinfo=UTC)
    latest = datetime.now(UTC) + timedelta(days=365)
    if not MIN_EVENT_TIME <= moment <= latest:
        raise argparse.ArgumentTypeError(
            f"must be between 2000-01-01 and a year from now (the event contract's range), got {text!r}"
        )
    return moment


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="retail", description="Lambda-architecture retail analytics pipeline.")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    commands.add_parser("up", help="start the local Kafka broker and create the topics").set_defaults(run=_cmd_up)
    commands.add_parser("down", help="stop the local Kafka broker").set_defaults(run=_cmd_down)
    commands.add_parser("status", help="show the local broker's state").set_defaults(run=_cmd_status)

    produce = commands.add_parser("produce", help="send generated retail events to Kafka")
    produce.add_argument(
        "--rate", type=_number(float, 0, 1e6, low_open=True), default=200.0, help="events per second (default 200)"
    )
    produce.add_argument(
        "--duration",
        type=_number(float, 0, 7 * 86400, low_open=True),
        default=30.0,
        help="seconds to produce for (default 30)",
    )
    produce.add_argument(
        "--count", type=_number(int, 1, 10**9), default=None, help="number of events (overrides --duration)"
    )
    produce.add_argument(
        "--burst", action="store_true", help="send as fast as possible; --rate only spaces event times"
    )
    produce.add_argument("--seed", type=int, default=42, help="random seed: the same seed gives the same events")
    produce.add_argument(
        "--start",
        type=_iso_datetime,
        default=None,
        help="event time of the first event, ISO-8601 (default: now)",
    )
    produce.add_argument("--products", type=_number(int, 1, 100_000), default=50, help="catalogue size (default 50)")
    produce.add_argument("--users", type=_number(int, 1, 10**9), default=1000, help="distinct users (default 1000)")
    ratio = _number(float, 0, 1)
    produce.add_argument("--late-ratio", type=ratio, default=0.0, help="share of events sent late (0..1)")
    produce.add_argument(
        "--late-minutes", type=_number(float, 0, 100_000), default=10.0, help="how late, in minutes (default 10)"
    )
    produce.add_argument("--duplicate-ratio", type=ratio, default=0.0, help="share of events sent twice (0..1)")
    produce.add_argument(
        "--malformed-ratio",
        type=ratio,
        default=0.0,
        help="share of records replaced by a malformed one, every kind in turn (0..1)",
    )
    produce.set_defaults(run=_cmd_produce)
    from infra.demo import add_arguments as add_demo_arguments

    demo = commands.add_parser("demo", help="a retailer's day through the whole pipeline, with one batch run")
    add_demo_arguments(demo)
    demo.set_defaults(run=_cmd_demo)

    speed = commands.add_parser("speed", help="run the speed layer (Kafka -> bronze, rollups, inventory, alerts)")
    speed.add_argument(
        "--available-now",
        action="store_true",
        help="process what Kafka holds now, then stop (default: run until Ctrl-C)",
    )
    speed.add_argument(
        "--part",
        choices=("split", "one", "events", "copy"),
        default=None,
        help="split (default on a local master): bronze + live queries here, the Delta copy of the speed topics in "
        "a second, lower-priority driver; one (default on a cluster): all four queries on one driver; events / "
        "copy: one half (docs/design.md)",
    )
    speed.set_defaults(run=_cmd_speed)
    replay = commands.add_parser(
        "replay-quarantine",
        help="re-parse quarantined records with the current contract; add those that pass to bronze, once",
    )
    replay.add_argument(
        "--reason",
        action="append",
        metavar="CODE",
        help="only records quarantined for this reason (repeatable; default: every reason)",
    )
    replay.add_argument(
        "--since", type=_iso_datetime, default=None, help="only records ingested at or after this ISO-8601 time"
    )
    replay.set_defaults(run=_cmd_replay_quarantine)
    commands.add_parser(
        "rebuild-speed",
        help="recompute the speed views and inventory from bronze, reset the speed checkpoints (speed stopped)",
    ).set_defaults(run=_cmd_rebuild_speed)
    from infra.services import SERVICES

    start = commands.add_parser("start", help="start services in the background: speed, api, dashboard")
    start.add_argument("services", nargs="+", choices=list(SERVICES), help="which services")
    start.set_defaults(run=_cmd_start)
    stop = commands.add_parser("stop", help="stop background services (all when none is named)")
    # no `choices` here: argparse rejects an empty list against choices for nargs="*"
    stop.add_argument("services", nargs="*", help=f"any of {', '.join(SERVICES)} (default: all)")
    stop.set_defaults(run=_cmd_stop)
    commands.add_parser("serve", help="run the serving layer's HTTP JSON API").set_defaults(run=_cmd_serve)
    commands.add_parser("dashboard", help="run the live Dash dashboard").set_defaults(run=_cmd_dashboard)

    from batch_layer.arguments import add_arguments as add_batch_arguments  # stdlib only: keeps `retail` fast

    batch = commands.add_parser("batch", help="recompute exact batch views for a UTC day, validate, publish W")
    add_batch_arguments(batch)
    batch.set_defaults(run=_cmd_batch)
    airflow = commands.add_parser("airflow", help="start | stop | status the local Airflow for the batch DAG")
    airflow.add_argument("action", choices=["start", "stop", "status"], help="what to do")
    airflow.set_defaults(run=_cmd_airflow)
    cluster = commands.add_parser("cluster", help="local Spark standalone / Kafka cluster: up | down | status")
    cluster.add_argument("kind", choices=["spark", "kafka"], help="which cluster")
    cluster.add_argument("action", choices=["up", "down", "status"], help="what to do")
    cluster.set_defaults(run=_cmd_cluster)
    return parser


def _one_line(error: BaseException) -> str:
    text = " ".join(str(error).split()) or type(error).__name__
    return text if isinstance(error, RetailError | ValueError) else f"{type(error).__name__}: {text}"


def _is_kafka_error(error: BaseException) -> bool:
    return type(error).__module__.split(".")[0] == "kafka"


def main(argv: Sequence[str] | None = None) -> int:
    """Run one command. An error the user can cause (a bad argument or setting, no broker, a service that is not
    running) is one line on stderr and exit code 2 (1 for a state: `status` of a stopped broker, `stop` of a
    stopped service); a bug still shows its traceback."""
    args = build_parser().parse_args(argv)
    try:
        settings = Settings()
        return int(args.run(settings, args))
    except KeyboardInterrupt:
        return 130
    except (RetailError, ValueError, OSError, OverflowError) as error:  # ConnectionError is an OSError
        print(f"retail {args.command}: {_one_line(error)}", file=sys.stderr)
        return 2
    except Exception as error:
        if not _is_kafka_error(error):  # kafka-python is imported lazily: its errors are told apart by module
            raise
        print(f"retail {args.command}: cannot talk to Kafka: {_one_line(error)}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
