"""`make bench-jvm`: what the class-data archives (contracts/jvm.py) save per JVM start, Spark driver and Kafka broker.

    python -m benchmarks.jvm_start [--pairs 3] [--output BENCHMARKS.md]

Each pair starts the same JVM twice in fresh processes, once with the archive `make setup` built and once without
(alternating, so a drift of the machine's speed hits both alike):

- a Spark driver the way every job starts one (``build_spark_session``), then a first small Delta write and read:
  seconds until the session is ready, seconds in all, and the JVM's CPU seconds (user + system, /proc);
- a Kafka broker (``LocalKafka.start``: storage format, JVM start, first answered metadata request), seconds and
  the broker JVM's CPU seconds.

Medians and ranges go into BENCHMARKS.md between the bench-jvm markers (other sections untouched), with the
machine's description and the load beside the run.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from contracts.settings import PROJECT_ROOT, Settings

__all__ = ["main"]

MARK_START = "<!-- bench-jvm:start -->"
MARK_END = "<!-- bench-jvm:end -->"


def _cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _mapped(pid: int, archive: Path | None) -> bool:
    return archive is not None and str(archive.resolve()) in Path(f"/proc/{pid}/maps").read_text()


def _probe_spark(use_archive: bool) -> dict[str, Any]:
    from contracts.jvm import spark_archive
    from contracts.spark import build_spark_session

    began = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="bench-jvm-") as work:
        settings = Settings(lake_root=f"{work}/lake", checkpoint_root=f"{work}/ck")
        extra = {} if use_archive else {"spark.driver.extraJavaOptions": "-Xss64m"}
        spark = build_spark_session(settings, "bench-jvm", extra)
        ready = time.monotonic() - began
        frame = spark.range(1000).selectExpr("id", "cast(id as decimal(18,2)) as amount")
        frame.write.format("delta").save(f"{work}/lake/t")
        spark.read.format("delta").load(f"{work}/lake/t").groupBy().sum("amount").collect()
        total = time.monotonic() - began
        pid = int(spark.sparkContext._jvm.java.lang.ProcessHandle.current().pid())  # type: ignore[union-attr]
        result = {
            "ready_s": ready,
            "total_s": total,
            "cpu_s": _cpu_seconds(pid),
            "mapped": _mapped(pid, spark_archive(settings.jar_cache)),
        }
        spark.stop()
    return result


def _probe_kafka(use_archive: bool) -> dict[str, Any]:
    from contracts.jvm import kafka_archive
    from infra.kafka_broker import LocalKafka
    from infra.processes import free_port as _free_port

    settings = Settings()
    with tempfile.TemporaryDirectory(prefix="bench-jvm-") as work:
        broker = LocalKafka(
            host="127.0.0.1",
            port=_free_port(),
            controller_port=_free_port(),
            data_dir=Path(work),
            jar_cache=settings.jar_cache,
            heap="256m",
            jvm_options=None if use_archive else (),
        )
        try:
            seconds = broker.start()
            pid = broker.pid()
            if pid is None:
                raise RuntimeError("the broker answered but its PID file names no running process")
            return {
                "ready_s": seconds,
                "cpu_s": _cpu_seconds(pid),
                "mapped": _mapped(pid, kafka_archive(settings.jar_cache)),
            }
        finally:
            broker.stop()


def _run_probe(kind: str, use_archive: bool) -> dict[str, Any]:
    args = [sys.executable, "-m", "benchmarks.jvm_start", "--probe", kind]
    if not use_archive:
        args.append("--no-archive")
    result = subprocess.run(args, cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=900, check=False)
    lines = [line for line in result.stdout.splitlines() if line.startswith("{")]
    if result.returncode != 0 or not lines:
        raise RuntimeError(f"the {kind} probe failed:\n{(result.stdout + result.stderr)[-3000:]}")
    return dict(json.loads(lines[-1]))


def _summary(values: list[float]) -> str:
    return f"{statistics.median(values):.1f} ({min(values):.1f}-{max(values):.1f})"


def render(results: dict[str, dict[bool, list[dict[str, Any]]]], machine: dict[str, Any], load: str) -> str:
    lines = [
        MARK_START,
        "## JVM start-up with and without the class-data archives (`make bench-jvm`)",
        "",
        f"Machine: {machine.get('cpu', '?')}, {machine.get('cores', '?')} cores, {machine.get('java', '?')}. "
        f"Beside the run: {load}. Median (min-max) of {len(results['spark'][True])} fresh processes each, "
        "alternating with and without.",
        "",
        "| JVM | measure | with archive | without | saved |",
        "|---|---|---:|---:|---:|",
    ]
    names = {"ready_s": "s to ready", "total_s": "s incl. a first Delta write + read", "cpu_s": "JVM CPU s"}
    for kind, label in (("spark", "Spark driver"), ("kafka", "Kafka broker")):
        for measure in ("ready_s", "total_s", "cpu_s"):
            if measure not in results[kind][True][0]:
                continue
            with_archive = [run[measure] for run in results[kind][True]]
            without = [run[measure] for run in results[kind][False]]
            saved = statistics.median(without) - statistics.median(with_archive)
            lines.append(
                f"| {label} | {names[measure]} | {_summary(with_archive)} | {_summary(without)} | {saved:.1f} |"
            )
    lines.append(MARK_END)
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.jvm_start", description=__doc__.splitlines()[0])
    parser.add_argument("--pairs", type=int, default=3, help="runs with and without the archive, per JVM kind")
    parser.add_argument("--output", type=Path, default=PROJECT_ROOT / "BENCHMARKS.md")
    parser.add_argument("--probe", choices=["spark", "kafka"], help=argparse.SUPPRESS)
    parser.add_argument("--no-archive", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.probe:
        probe = _probe_spark if args.probe == "spark" else _probe_kafka
        print(json.dumps(probe(not args.no_archive)), flush=True)
        return 0

    from benchmarks.machine import describe, load_average
    from benchmarks.memory import write_section

    results: dict[str, dict[bool, list[dict[str, Any]]]] = {kind: {True: [], False: []} for kind in ("spark", "kafka")}
    before = load_average()
    for pair in range(args.pairs):
        for kind in ("spark", "kafka"):
            for use_archive in (pair % 2 == 0, pair % 2 != 0):
                run = _run_probe(kind, use_archive)
                if run["mapped"] != use_archive:
                    raise RuntimeError(f"{kind}: archive mapped={run['mapped']} in a run with archive={use_archive}")
                results[kind][use_archive].append(run)
                print(f"[bench-jvm] {kind} {'with' if use_archive else 'without'} archive: {run}", flush=True)
    section = render(results, describe(), f"load average {before} before, {load_average()} after")
    print(section)
    write_section(args.output, section, MARK_START, MARK_END)
    return 0


if __name__ == "__main__":
    sys.exit(main())
