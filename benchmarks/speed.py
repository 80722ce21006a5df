"""`make bench-speed`: sustained throughput, event→served latency and backlog drain of the speed layer.

Usage: python -m benchmarks.speed [--rates 1000,5000,10000] [--seconds 30] [--backlog 300000]

Runs everything on this machine, on free loopback ports, in a temporary folder: a real broker (LocalKafka), the
real speed layer as a separate process (`retail speed`), kafka-python producing generated events.

Latency is measured as DESIGN.md defines it: from a record's Kafka CreateTime to the commit time of the
speed/sales_minute Delta version that covers its offset. The offsets each rollups micro-batch covered come from
the query's checkpoint (offsets/<batch>), the batch of each Delta commit from its transaction (txn) action, and
each record's CreateTime and offset from bronze. The figures go into BENCHMARKS.md between bench-speed markers.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import signal
import socket
import subprocess
import sys
import tempfile
import time
from bisect import bisect_left
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

from contracts.settings import PROJECT_ROOT, Settings
from contracts.tables import Lake
from event_generator.generator import GeneratorConfig, generate, produce
from infra.kafka_broker import LocalKafka

MARK_START, MARK_END = "<!-- bench-speed:start -->", "<!-- bench-speed:end -->"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _log(message: str) -> None:
    print(f"[bench-speed {datetime.now(UTC):%H:%M:%S}] {message}", flush=True)


def _commits_by_batch(table: str) -> dict[int, float]:
    """Rollups batch id → commit time (epoch ms) of the Delta version that batch wrote."""
    found: dict[int, float] = {}
    for entry in sorted((Path(table) / "_delta_log").glob("*.json")):
        txn_version = commit_ms = None
        for line in entry.read_text().splitlines():
            action = json.loads(line)
            if "txn" in action:
                txn_version = int(action["txn"]["version"])
            if "commitInfo" in action:
                commit_ms = float(action["commitInfo"]["timestamp"])
        if txn_version is not None and commit_ms is not None:
            found.setdefault(txn_version, commit_ms)
    return found


def _end_offsets_by_batch(checkpoint: str) -> dict[int, dict[int, int]]:
    """Rollups batch id → {partition: end offset (exclusive)} from the checkpoint's offset log."""
    found: dict[int, dict[int, int]] = {}
    for entry in (Path(checkpoint) / "offsets").iterdir():
        if not entry.name.isdigit():
            continue
        lines = entry.read_text().splitlines()
        offsets = json.loads(lines[2])
        by_partition = next(iter(offsets.values()))
        found[int(entry.name)] = {int(p): int(o) for p, o in by_partition.items()}
    return found


def _served_at(lake: Lake) -> dict[int, tuple[list[int], list[float]]]:
    """partition → (sorted end offsets, commit ms) of every committed rollups batch."""
    commits = _commits_by_batch(lake.table("speed/sales_minute"))
    ends = _end_offsets_by_batch(lake.checkpoint("rollups"))
    per_partition: dict[int, list[tuple[int, float]]] = {}
    for batch, commit_ms in commits.items():
        for partition, end in ends.get(batch, {}).items():
            per_partition.setdefault(partition, []).append((end, commit_ms))
    result = {}
    for partition, pairs in per_partition.items():
        pairs.sort()
        # the earliest commit whose end offset passed the record's offset
        offsets, times = [], []
        best = float("inf")
        for end, commit_ms in reversed(pairs):
            best = min(best, commit_ms)
            offsets.append(end)
            times.append(best)
        result[partition] = (offsets[::-1], times[::-1])
    return result


def _latencies(lake: Lake, since_ms: float, until_ms: float) -> np.ndarray:
    import pandas as pd
    from deltalake import DeltaTable

    bronze = DeltaTable(lake.bronze_events).to_pandas(columns=["kafka_partition", "kafka_offset", "kafka_timestamp"])
    epoch = pd.Timestamp(0, tz="UTC")
    bronze = bronze.assign(created_ms=(bronze.kafka_timestamp - epoch) / pd.Timedelta(milliseconds=1))
    window = bronze[(bronze.created_ms >= since_ms) & (bronze.created_ms < until_ms)]
    served = _served_at(lake)
    values = []
    for row in window.itertuples():
        offsets, times = served.get(int(row.kafka_partition), ([], []))
        index = bisect_left(offsets, int(row.kafka_offset) + 1)
        if index < len(offsets):
            values.append(times[index] - row.created_ms)
    return np.array(values)


def _wait_caught_up(lake: Lake, topic_end: int, timeout_s: float) -> float:
    """Wait until the rollups query committed every offset produced so far; returns seconds waited."""
    started = time.monotonic()
    while time.monotonic() - started < timeout_s:
        try:
            commits = _commits_by_batch(lake.table("speed/sales_minute"))
            ends = _end_offsets_by_batch(lake.checkpoint("rollups"))
            done = max((sum(ends[b].values()) for b in commits if b in ends), default=0)
            if done >= topic_end:
                return time.monotonic() - started
        except (FileNotFoundError, json.JSONDecodeError):
            pass
        time.sleep(0.5)
    raise TimeoutError(f"speed layer did not catch up within {timeout_s}s")


def _machine() -> str:
    cpu = next(
        (
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if line.startswith("model name")
        ),
        platform.processor(),
    )
    memory_kb = int(
        next(line.split()[1] for line in Path("/proc/meminfo").read_text().splitlines() if line.startswith("MemTotal"))
    )
    import pyspark

    return (
        f"{cpu}, nproc={os.cpu_count()}, {memory_kb / 1024 / 1024:.1f} GiB RAM, {platform.system()} "
        f"{platform.release()}; Python {platform.python_version()}, pyspark {pyspark.__version__}, "
        f"Kafka 4.4.0 (KRaft, one node); load average {os.getloadavg()[0]:.2f} at start"
    )


def _write_report(section: str) -> None:
    path = PROJECT_ROOT / "BENCHMARKS.md"
    text = path.read_text() if path.exists() else "# Benchmarks\n"
    block = f"{MARK_START}\n{section.rstrip()}\n{MARK_END}"
    if MARK_START in text and MARK_END in text:
        head, rest = text.split(MARK_START, 1)
        text = head + block + rest.split(MARK_END, 1)[1]
    else:
        text = text.rstrip() + "\n\n" + block + "\n"
    path.write_text(text)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rates", default="1000,5000,10000", help="events/s, comma-separated")
    parser.add_argument("--seconds", type=float, default=30.0, help="seconds per rate")
    parser.add_argument("--backlog", type=int, default=300_000, help="events in the drain test")
    parser.add_argument("--trigger", default="0 seconds", help="RETAIL_SPEED_TRIGGER for the run")
    args = parser.parse_args()
    rates = [float(rate) for rate in args.rates.split(",")]
    machine = _machine()
    work = Path(tempfile.mkdtemp(prefix="bench-speed-"))
    settings = Settings(
        kafka_port=_free_port(),
        kafka_controller_port=_free_port(),
        kafka_data_dir=work / "kafka",
        lake_root=str(work / "lake"),
        checkpoint_root=str(work / "ck"),
        speed_trigger=args.trigger,
    )
    lake = Lake(settings.lake_root, settings.checkpoint_root)
    broker = LocalKafka.from_settings(settings)
    _log(f"broker ready in {broker.start():.1f}s on {broker.address}")
    broker.ensure_topics({settings.events_topic: 3, settings.alerts_topic: 1})
    env = {
        **os.environ,
        "RETAIL_KAFKA_PORT": str(settings.kafka_port),
        "RETAIL_KAFKA_CONTROLLER_PORT": str(settings.kafka_controller_port),
        "RETAIL_LAKE_ROOT": settings.lake_root,
        "RETAIL_CHECKPOINT_ROOT": settings.checkpoint_root,
        "RETAIL_SPEED_TRIGGER": args.trigger,
    }
    rows: list[str] = []
    produced = 0
    driver = None
    try:
        driver = subprocess.Popen(
            [sys.executable, "-m", "retail_cli.main", "speed"],
            cwd=PROJECT_ROOT,
            env=env,
            stdout=(work / "driver.log").open("wb"),
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        # warm-up: the first micro-batches pay for codegen and Python workers
        produced += sum(
            produce(
                generate(GeneratorConfig(seed=1, count=2000, rate=200)), settings, rate=200, progress_every_s=3600
            ).values()
        )
        _wait_caught_up(lake, produced, 600)
        _log("warm-up done")
        for index, rate in enumerate(rates):
            count = int(rate * args.seconds)
            since = time.time() * 1000
            started = time.monotonic()
            produced += sum(
                produce(
                    generate(GeneratorConfig(seed=10 + index, count=count, rate=rate)),
                    settings,
                    rate=rate,
                    progress_every_s=10,
                ).values()
            )
            send_s = time.monotonic() - started
            until = time.time() * 1000
            catch_up = _wait_caught_up(lake, produced, 900)
            latency = _latencies(lake, since, until)
            achieved = count / send_s
            sustained = count / (send_s + catch_up)
            p50, p95, p99 = (np.percentile(latency, q) / 1000 for q in (50, 95, 99))
            _log(
                f"rate {rate:,.0f}/s: produced at {achieved:,.0f}/s, p50 {p50:.2f}s p95 {p95:.2f}s p99 {p99:.2f}s, "
                f"caught up {catch_up:.1f}s after the producer stopped"
            )
            rows.append(
                f"| {rate:,.0f} | {achieved:,.0f} | {sustained:,.0f} | {p50:.2f} | {p95:.2f} | {p99:.2f} | "
                f"{catch_up:.1f} | {len(latency):,} |"
            )
        os.kill(driver.pid, signal.SIGINT)
        driver.wait(timeout=120)

        # backlog drain: events wait in Kafka, then the speed layer processes them with --available-now
        _log(f"producing a backlog of {args.backlog:,} events ...")
        produced += sum(
            produce(
                generate(GeneratorConfig(seed=99, count=args.backlog, rate=10_000)), settings, progress_every_s=10
            ).values()
        )
        drain_start = datetime.now(UTC)
        started = time.monotonic()
        drain = subprocess.run(
            [sys.executable, "-m", "retail_cli.main", "speed", "--available-now"],
            cwd=PROJECT_ROOT,
            env=env,
            capture_output=True,
            text=True,
            check=False,
        )
        drain_wall = time.monotonic() - started
        if drain.returncode != 0:
            raise RuntimeError(drain.stdout[-2000:])
        from deltalake import DeltaTable

        progress = DeltaTable(lake.table("speed/progress")).to_pandas()
        drain_rows = progress[progress.timestamp >= drain_start]
        per_query = drain_rows.groupby("query").agg(rows=("input_rows", "sum"), ms=("batch_duration_ms", "sum"))
        drain_rates = {q: r.rows / (r.ms / 1000) for q, r in per_query.iterrows() if r.ms}
        _log(
            f"drain: {args.backlog:,} events in {drain_wall:.1f}s wall (incl. start-up); per query "
            + ", ".join(f"{q} {v:,.0f}/s" for q, v in drain_rates.items())
        )
    finally:
        if driver is not None and driver.poll() is None:
            os.killpg(driver.pid, signal.SIGKILL)
        broker.stop()

    section = f"""## Speed layer (`make bench-speed`)

Measured {datetime.now(UTC):%Y-%m-%d %H:%M} UTC on {machine}. Trigger `{args.trigger}`, watermark
{settings.speed_watermark}, three queries (bronze, rollups, inventory) in one driver, `local[2]`.

Latency = Kafka CreateTime of a record → commit time of the speed/sales_minute Delta version covering its offset
(DESIGN.md's event→served). Sustained = events / (producing time + time to catch up afterwards).

| target ev/s | produced ev/s | sustained ev/s | p50 s | p95 s | p99 s | catch-up s | records |
|---:|---:|---:|---:|---:|---:|---:|---:|
{chr(10).join(rows)}

Backlog drain: {args.backlog:,} events waiting in Kafka, `retail speed --available-now`: {drain_wall:.1f} s wall
including JVM/session start; processing rate by query (input rows / summed batch durations):
{", ".join(f"{q} {v:,.0f} events/s" for q, v in sorted(drain_rates.items()))}.

The issue's aims are p95 <= 1 s at 10,000 events/s and a drain >= 100,000 events/s; compare with the figures
above. What limits them here: three queries each run several Spark jobs and a Delta commit per micro-batch on 2
cores (the rollups query also a state-store commit and a MERGE, the inventory query Python workers), the topic
is read three times, and the kafka-python producer of this benchmark takes about one core at 10,000 events/s.
"""
    _write_report(section)
    _log("BENCHMARKS.md updated")


if __name__ == "__main__":
    main()
