"""Memory of the whole running stack under a modest load: PSS per component (part of `make bench`).

Starts the stack with the project's own commands, on free loopback ports with every folder in a temporary
directory (a user's running stack, its ports and ``var/`` are not touched):

- ``retail up`` (the Kafka broker and the topics), ``retail start speed api dashboard``,
  ``retail airflow start`` (api-server, scheduler, dag-processor; ``--no-airflow`` leaves it out);
- load: ``retail produce --rate R`` (the event generator) for the whole run;
- after every service answers and ``--warmup`` seconds more, samples every ``--interval`` seconds for
  ``--seconds``: the PSS (``Pss:`` of ``/proc/<pid>/smaps_rollup``) of every process, summed per component over
  its process group (each service runs in its own group: JVMs, Python workers and Airflow's task supervisors
  included), plus the total;
- stops everything with ``retail stop``, ``retail airflow stop``, ``retail down`` (and by process group if a
  command failed), also on errors and Ctrl-C.

PSS (proportional set size) counts a page shared by N processes as 1/N in each, so the per-component figures add
up to the stack's real footprint, which RSS would overstate (shared JVM and Python libraries).

Usage::

    python -m benchmarks.memory [--seconds 60] [--rate 20] [--warmup 30] [--no-airflow] [--json PATH]
                                [--output BENCHMARKS.md]
"""

from __future__ import annotations

import argparse
import contextlib
import http.client
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from contracts.settings import PROJECT_ROOT
from infra.processes import free_port

__all__ = ["group_pss_kib", "main", "parse_pss_kib", "summarise_samples"]

MARK_START, MARK_END = "<!-- bench-memory:start -->", "<!-- bench-memory:end -->"
STACK = ("broker", "speed", "api", "dashboard", "airflow-api-server", "airflow-scheduler", "airflow-dag-processor")


def _log(message: str) -> None:
    print(f"[bench-memory {datetime.now(UTC):%H:%M:%S}] {message}", flush=True)


def parse_pss_kib(smaps_rollup: str) -> int:
    """The ``Pss:`` figure (KiB) of a ``/proc/<pid>/smaps_rollup`` text; 0 when it has none (a kernel thread)."""
    for line in smaps_rollup.splitlines():
        if line.startswith("Pss:"):
            parts = line.split()
            if len(parts) < 2 or not parts[1].isdigit():
                raise ValueError(f"unexpected Pss line in smaps_rollup: {line!r}")
            return int(parts[1])
    return 0


def _groups_of_processes() -> dict[int, list[int]]:
    """Process group id -> its pids, for every process readable now."""
    groups: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(") ", 1)[-1].split()
        except OSError:
            continue
        groups.setdefault(int(fields[2]), []).append(int(stat.parent.name))
    return groups


def group_pss_kib(leaders: Mapping[str, int], read: Any = None) -> dict[str, int]:
    """PSS (KiB) per named process group, the sum over every process of the group led by each pid."""
    read = read or (lambda pid: Path(f"/proc/{pid}/smaps_rollup").read_text())
    groups = _groups_of_processes()
    result = {}
    for name, leader in leaders.items():
        total = 0
        for pid in groups.get(leader, []):
            with contextlib.suppress(OSError):  # exited meanwhile
                total += parse_pss_kib(read(pid))
        result[name] = total
    return result


def summarise_samples(samples: Iterable[Mapping[str, int]]) -> dict[str, dict[str, float]]:
    """Median and max (MiB) per component over the samples, and of their per-sample total ("total")."""
    rows = list(samples)
    names = sorted({name for row in rows for name in row})
    result: dict[str, dict[str, float]] = {}
    for name in [*names, "total"]:
        values = [
            (sum(row.values()) if name == "total" else row.get(name, 0)) / 1024
            for row in rows
            if name == "total" or name in row
        ]
        if values:
            result[name] = {"median_mib": statistics.median(values), "max_mib": max(values), "samples": len(values)}
    return result


# --- the stack --------------------------------------------------------------------------------------------


def _http_ok(port: int, path: str) -> bool:
    try:
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=3)
        connection.request("GET", path)
        ok = connection.getresponse().status < 500
        connection.close()
        return ok
    except OSError:
        return False


class TempStack:
    """The project's stack in ``work`` on free ports, driven through the `retail` command."""

    def __init__(self, work: Path, airflow: bool) -> None:
        self.work = work
        self.airflow = airflow
        self.ports = {
            "kafka_port": free_port(),
            "kafka_controller_port": free_port(),
            "api_port": free_port(),
            "dashboard_port": free_port(),
            "airflow_port": free_port(),
        }
        overrides: dict[str, Any] = {
            **self.ports,
            "kafka_host": "127.0.0.1",
            "kafka_bootstrap_servers": f"127.0.0.1:{self.ports['kafka_port']}",
            "kafka_data_dir": work / "kafka",
            "lake_root": str(work / "lake"),
            "checkpoint_root": str(work / "checkpoints"),
            "run_dir": work / "run",
            "airflow_home": work / "airflow",
            "bind_host": "127.0.0.1",
        }
        self.env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        self.env.pop("RETAIL_SERVING_AUTH_TOKEN", None)  # loopback only
        self.env.update({f"RETAIL_{name.upper()}": str(value) for name, value in overrides.items()})
        self.load: subprocess.Popen[bytes] | None = None

    def retail(self, *args: str, timeout: float = 600) -> None:
        log = self.work / "retail.log"
        with log.open("ab") as out:
            out.write(f"\n$ retail {' '.join(args)}\n".encode())
            out.flush()
            done = subprocess.run(
                [sys.executable, "-m", "retail_cli.main", *args],
                env=self.env,
                cwd=PROJECT_ROOT,
                stdout=out,
                stderr=subprocess.STDOUT,
                timeout=timeout,
                check=False,
            )
        if done.returncode != 0:
            tail = "\n".join(log.read_text(errors="replace").splitlines()[-20:])
            raise RuntimeError(f"`retail {' '.join(args)}` exited {done.returncode}:\n{tail}")

    def start(self, rate: float, seconds: float) -> None:
        _log(f"retail up (broker on 127.0.0.1:{self.ports['kafka_port']}) ...")
        self.retail("up")
        _log("retail start speed api dashboard ...")
        self.retail("start", "speed", "api", "dashboard")
        self.load = subprocess.Popen(
            [sys.executable, "-m", "retail_cli.main", "produce", "--rate", str(rate), "--duration", str(seconds)],
            env=self.env,
            cwd=PROJECT_ROOT,
            stdout=(self.work / "produce.log").open("ab"),
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
        if self.airflow:
            _log(f"retail airflow start (127.0.0.1:{self.ports['airflow_port']}) ...")
            self.retail("airflow", "start")

    def leaders(self) -> dict[str, int]:
        """Process group leaders of the running components (the load generator as "generator")."""
        from infra.processes import read_pid_file

        found: dict[str, int] = {}
        broker = read_pid_file(self.work / "kafka" / "broker.pid")
        if broker is not None:
            found["broker"] = broker
        for name in ("speed", "api", "dashboard"):
            pid = read_pid_file(self.work / "run" / f"{name}.pid")
            if pid is not None:
                found[name] = pid
        for service in ("api-server", "scheduler", "dag-processor"):
            pid = read_pid_file(self.work / "airflow" / f"{service}.pid")
            if pid is not None:
                found[f"airflow-{service}"] = pid
        if self.load is not None and self.load.poll() is None:
            found["generator"] = self.load.pid
        return found

    def ready(self) -> bool:
        return _http_ok(int(self.ports["api_port"]), "/api/health") and _http_ok(int(self.ports["dashboard_port"]), "/")

    def stop(self) -> None:
        """The project's own stop commands, then SIGKILL to whatever group is left."""
        from infra.processes import stop_group

        leaders = self.leaders()
        if self.load is not None:
            stop_group(self.load.pid, 5.0)
        for args in (("stop",), ("airflow", "stop"), ("down",)):
            try:
                self.retail(*args, timeout=120)
            except (RuntimeError, subprocess.TimeoutExpired) as error:
                _log(f"retail {' '.join(args)}: {error}")
        for pid in leaders.values():
            stop_group(pid, 1.0, first=signal.SIGKILL)


# --- measurement ------------------------------------------------------------------------------------------
def measure(args: argparse.Namespace) -> dict[str, Any]:
    from benchmarks.machine import OtherLoad

    work = Path(tempfile.mkdtemp(prefix="bench-memory-"))
    stack = TempStack(work, airflow=not args.no_airflow)
    samples: list[dict[str, int]] = []
    generator: list[int] = []
    try:
        with OtherLoad(groups=lambda: stack.leaders().values()) as load:
            began = time.monotonic()
            stack.start(args.rate, args.start_timeout + args.warmup + args.seconds + 60)
            deadline = time.monotonic() + args.start_timeout
            while not stack.ready():
                missing = [name for name in ("speed", "api", "dashboard") if name not in stack.leaders()]
                if missing:
                    raise RuntimeError(f"{', '.join(missing)} not running; see {work / 'run'}")
                if time.monotonic() > deadline:
                    raise TimeoutError(f"the API and the dashboard did not answer within {args.start_timeout:.0f}s")
                time.sleep(1.0)
            started_s = time.monotonic() - began
            _log(f"stack up after {started_s:.1f}s; warm-up {args.warmup:.0f}s, then {args.seconds:.0f}s of samples")
            time.sleep(args.warmup)
            end = time.monotonic() + args.seconds
            while time.monotonic() < end:
                leaders = stack.leaders()
                expected = [name for name in STACK if stack.airflow or not name.startswith("airflow")]
                gone = [name for name in expected if name not in leaders]
                if gone:
                    raise RuntimeError(f"{', '.join(gone)} stopped during the measurement; see {work}")
                pss = group_pss_kib(leaders)
                generator.append(pss.pop("generator", 0))
                samples.append(pss)
                time.sleep(args.interval)
        components = summarise_samples(samples)
        return {
            "measured_at": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
            "seconds": args.seconds,
            "interval_s": args.interval,
            "warmup_s": args.warmup,
            "rate": args.rate,
            "airflow": stack.airflow,
            "start_s": round(started_s, 1),
            "components": components,
            "generator": summarise_samples([{"generator": kib} for kib in generator]).get("generator"),
            "load": load.result(),
        }
    finally:
        _log("stopping the stack ...")
        stack.stop()
        _log("stopped")
        if args.keep:
            _log(f"kept {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)


def render(result: dict[str, Any], machine: Mapping[str, Any]) -> str:
    load = result["load"]
    lines = [
        MARK_START,
        "## Memory of the running stack (`python -m benchmarks.memory`, part of `make bench`)",
        "",
        f"Measured {result['measured_at']} on {machine['cpu']}, {machine['cores']} cores, {machine['memory_gib']} GiB "
        f"RAM, {machine['os']}, Linux {machine['kernel']}; {machine['java']}; Python {machine['python']}. Load "
        f"average {load['load_before']} before, {load['load_after']} after; other processes kept "
        f"{load['others_cores']:.2f} of the {machine['cores']} cores busy on average. One run.",
        "",
        "The stack from the project's own commands (`retail up`, `retail start speed api dashboard`"
        + (", `retail airflow start`" if result["airflow"] else "")
        + f") on free ports in a temporary folder, started in {result['start_s']} s, with `retail produce --rate "
        f"{result['rate']:g}` as load; after {result['warmup_s']:.0f} s of warm-up, PSS every "
        f"{result['interval_s']:g} s for {result['seconds']:.0f} s, summed per process group (JVMs and Python "
        "workers included).",
        "",
        "| component | median PSS MiB | max PSS MiB |",
        "|---|---:|---:|",
    ]
    for name, stats in result["components"].items():
        label = f"**{name}**" if name == "total" else name
        lines.append(f"| {label} | {stats['median_mib']:,.0f} | {stats['max_mib']:,.0f} |")
    if result.get("generator"):
        lines += ["", f"The load generator (not part of the stack): {result['generator']['median_mib']:,.0f} MiB."]
    lines.append(MARK_END)
    return "\n".join(lines) + "\n"


def write_section(path: Path, section: str, start: str = MARK_START, end: str = MARK_END) -> None:
    """Put ``section`` between the ``start`` and ``end`` markers of ``path`` (appended when they are missing)."""
    text = path.read_text() if path.exists() else "# Benchmarks\n"
    if start in text and end in text:
        head, rest = text.split(start, 1)
        text = head + section.rstrip("\n") + rest.split(end, 1)[1]
    else:
        text = text.rstrip("\n") + "\n\n" + section
    path.write_text(text)


def _raise_interrupt(signum: int, _frame: Any) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


def main(argv: list[str] | None = None) -> int:
    from benchmarks.machine import describe

    parser = argparse.ArgumentParser(prog="python -m benchmarks.memory", description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=60.0, help="sampling time")
    parser.add_argument("--interval", type=float, default=2.0, help="seconds between samples")
    parser.add_argument("--warmup", type=float, default=30.0, help="seconds after the stack answers, before sampling")
    parser.add_argument("--rate", type=float, default=20.0, help="events/s of the load generator")
    parser.add_argument("--start-timeout", type=float, default=600.0, help="seconds for the stack to answer")
    parser.add_argument("--no-airflow", action="store_true", help="leave Airflow out")
    parser.add_argument("--keep", action="store_true", help="keep the temporary folder (logs, lake, broker data)")
    parser.add_argument("--output", type=Path, default=PROJECT_ROOT / "BENCHMARKS.md")
    parser.add_argument("--json", type=Path, default=None, help="also write the result as JSON to this file")
    args = parser.parse_args(argv)
    if args.seconds <= 0 or args.interval <= 0 or args.warmup < 0 or args.rate <= 0:
        parser.error("--seconds, --interval and --rate must be positive, --warmup non-negative")
    for sig in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, _raise_interrupt)  # the finally-block stops the stack
    machine = describe()
    result = measure(args)
    result["machine"] = machine
    section = render(result, machine)
    print(section)
    write_section(args.output, section)
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
