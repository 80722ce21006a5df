"""Scale-out measurements on this machine (make bench-scale-out): local[2] against Spark's standalone cluster.

1. ``batch``: one small lake of generated events (one UTC day, bronze as the speed layer lays it out, written once
   with Spark ``local[2]``) is copied twice; ``retail batch --date DAY --lookback-days 0`` (every step: validate,
   recompute, validate, publish, maintain) runs once with ``RETAIL_SPARK_MASTER=local[2]`` and once against a
   2-worker standalone cluster (1 core, 1g each) started by infra.spark_cluster. Wall time of the whole command
   (JVM and executor start included), as a user sees it.
2. ``speed``: `retail speed` runs continuously (live trigger back to back) against a broker of its own, once on
   ``local[2]`` and once on the cluster. After a warm-up, one probe purchase per second of a product of its own is
   produced; the latency is from the probe's Kafka CreateTime to the arrival of its minute rollup on the live topic
   retail.speed.sales (what the serving layer materialises; the HTTP hop is not included).

Usage::

    python -m benchmarks.scale_out                     # both, 100k events, 30 probes
    python -m benchmarks.scale_out --only batch --events 50000

Prints a markdown table and the machine's load; docs/scale-out.md holds the numbers measured for the docs.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Sequence
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

from infra.processes import free_port

__all__ = ["main"]

DAY = date(2026, 2, 10)
_ROOT = Path(__file__).resolve().parents[1]


def _load() -> str:
    return " ".join(f"{value:.1f}" for value in os.getloadavg())


# --- the lake --------------------------------------------------------------------------------------------
def write_lake(lake_root: str, events: int, seed: int = 5) -> dict[str, Any]:
    """Bronze with ``events`` generated events (2 % re-sent, 2 % late) spread over DAY, written with local[2]."""
    import re

    from contracts.settings import Settings
    from contracts.spark import build_spark_session
    from contracts.tables import TABLE_SCHEMAS, Lake
    from event_generator.generator import GeneratorConfig, generate

    start = datetime.combine(DAY, datetime.min.time(), tzinfo=UTC)
    config = GeneratorConfig(
        seed=seed,
        count=events,
        rate=events / 86_000,
        start=start,
        products=50,
        users=5000,
        late_ratio=0.02,
        late_minutes=30,
        duplicate_ratio=0.02,
    )
    ddl = TABLE_SCHEMAS["bronze/events"]
    columns = [part.strip().split(" ")[0] for part in re.split(r",(?![^(]*\))", ddl)]
    rows = []
    for offset, record in enumerate(generate(config)):
        event = dict(record.event or {})
        event_time = datetime.fromisoformat(str(event["event_time"]).replace("Z", "+00:00"))
        if event_time.date() != DAY:
            continue
        arrival = event_time + timedelta(seconds=1)
        price = event.get("unit_price")
        row = {
            **event,
            "event_time": event_time,
            "unit_price": Decimal(str(price)) if price is not None else None,
            "kafka_topic": "retail.events",
            "kafka_partition": offset % 3,
            "kafka_offset": offset,
            "kafka_timestamp": arrival,
            "ingest_time": arrival,
            "event_date": event_time.date(),
        }
        rows.append(tuple(row.get(column) for column in columns))
    settings = Settings(lake_root=lake_root, spark_driver_memory="1g")
    spark = build_spark_session(settings, app_name="bench-scale-out-lake")
    began = time.monotonic()
    frame = spark.createDataFrame(rows, ddl)
    lake = Lake(settings.lake_root, settings.checkpoint_root)
    frame.write.format("delta").mode("append").partitionBy("event_date").save(lake.bronze_events)
    seconds = time.monotonic() - began
    spark.stop()
    return {"rows": len(rows), "write_s": round(seconds, 1)}


def _retail(args: list[str], env: dict[str, str], log: Path, timeout_s: float = 1800) -> float:
    began = time.monotonic()
    with log.open("ab") as out:
        result = subprocess.run(
            [sys.executable, "-m", "retail_cli.main", *args],
            cwd=_ROOT,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            timeout=timeout_s,
            check=False,
        )
    if result.returncode != 0:
        raise RuntimeError(f"retail {' '.join(args)} failed (exit {result.returncode}); see {log}")
    return time.monotonic() - began


def _base_env(work: Path, **extra: str) -> dict[str, str]:
    return {
        **os.environ,
        "RETAIL_SPARK_DRIVER_MEMORY": "1g",
        "RETAIL_SPARK_EXECUTOR_MEMORY": "1g",
        "RETAIL_RUN_DIR": str(work / "run"),
        "GX_ANALYTICS_ENABLED": "false",
        **extra,
    }


def bench_batch(work: Path, cluster: Any, events: int) -> dict[str, Any]:
    base = work / "lake-base"
    generated = _in_subprocess("write_lake", str(base), events)
    results: dict[str, Any] = {"events": generated["rows"]}
    for label, master in (("local[2]", "local[2]"), ("standalone 2x(1 core, 1g)", cluster.master_url)):
        lake = work / f"lake-{label[:5]}"
        shutil.copytree(base, lake)
        env = _base_env(
            work,
            RETAIL_LAKE_ROOT=str(lake),
            RETAIL_CHECKPOINT_ROOT=str(work / f"ck-{label[:5]}"),
            RETAIL_SPARK_MASTER=master,
        )
        load = _load()
        seconds = _retail(["batch", "--date", DAY.isoformat(), "--lookback-days", "0"], env, work / "batch.log")
        results[label] = {"seconds": round(seconds, 1), "load_before": load}
        print(f"[batch] {label}: {seconds:.1f}s (load before {load})", flush=True)
    return results


# --- speed latency --------------------------------------------------------------------------------------
def bench_speed(work: Path, cluster: Any, probes: int, warmup_s: float) -> dict[str, Any]:
    from contracts.settings import Settings
    from infra.kafka_broker import LocalKafka

    broker = LocalKafka(
        host="127.0.0.1",
        port=free_port(),
        controller_port=free_port(),
        data_dir=work / "kafka",
        jar_cache=Settings().jar_cache,
        heap="256m",
    )
    broker.start()
    results: dict[str, Any] = {}
    try:
        for label, master in (("local[2]", "local[2]"), ("standalone 2x(1 core, 1g)", cluster.master_url)):
            tag = uuid.uuid4().hex[:6]
            env = _base_env(
                work,
                RETAIL_KAFKA_BOOTSTRAP_SERVERS=broker.address,
                RETAIL_EVENTS_TOPIC=f"bench.{tag}.events",
                RETAIL_ALERTS_TOPIC=f"bench.{tag}.alerts",
                RETAIL_SPEED_SALES_TOPIC=f"bench.{tag}.sales",
                RETAIL_SPEED_INVENTORY_TOPIC=f"bench.{tag}.inventory",
                RETAIL_LAKE_ROOT=str(work / f"speed-lake-{tag}"),
                RETAIL_CHECKPOINT_ROOT=str(work / f"speed-ck-{tag}"),
                RETAIL_SPARK_MASTER=master,
            )
            results[label] = _probe_latency(env, work / f"speed-{tag}.log", probes, warmup_s)
            print(f"[speed] {label}: {results[label]}", flush=True)
    finally:
        broker.stop()
    return results


def _probe_event(index: int, now: datetime) -> bytes:
    event = {
        "schema_version": 1,
        "event_id": f"probe-{uuid.uuid4().hex}",
        "event_type": "purchase",
        "event_time": now.isoformat(timespec="milliseconds").replace("+00:00", "Z"),
        "user_id": "u-probe",
        "product_id": f"probe-{index:04d}",
        "category": "probe",
        "quantity": 1,
        "unit_price": "1.00",
        "currency": "EUR",
        "order_id": f"o-probe-{index}",
    }
    return json.dumps(event).encode()


def _probe_latency(env: dict[str, str], log: Path, probes: int, warmup_s: float) -> dict[str, Any]:
    from kafka import KafkaConsumer, KafkaProducer

    from contracts.settings import Settings
    from contracts.topics import ensure_topics, pipeline_topics

    settings = Settings(
        kafka_bootstrap_servers=env["RETAIL_KAFKA_BOOTSTRAP_SERVERS"],
        events_topic=env["RETAIL_EVENTS_TOPIC"],
        alerts_topic=env["RETAIL_ALERTS_TOPIC"],
        speed_sales_topic=env["RETAIL_SPEED_SALES_TOPIC"],
        speed_inventory_topic=env["RETAIL_SPEED_INVENTORY_TOPIC"],
    )
    ensure_topics(pipeline_topics(settings), settings.kafka_python_options())
    producer = KafkaProducer(**settings.kafka_python_options(), acks="all", linger_ms=0)
    consumer = KafkaConsumer(
        settings.speed_sales_topic, **settings.kafka_python_options(), auto_offset_reset="latest", fetch_max_wait_ms=20
    )
    consumer.poll(timeout_ms=1000)
    with log.open("ab") as out:
        speed = subprocess.Popen(
            [sys.executable, "-m", "retail_cli.main", "speed"],
            cwd=_ROOT,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    latencies: list[float] = []
    try:
        # warm-up: probes until the first one comes back (queries started, executors up), then warmup_s more
        deadline = time.monotonic() + 600
        index = 0
        first_back: float | None = None
        while time.monotonic() < deadline and (first_back is None or time.monotonic() - first_back < warmup_s):
            index += 1
            producer.send(settings.events_topic, key=f"probe-{index:04d}".encode(), value=_probe_event(index, _now()))
            producer.flush()
            if consumer.poll(timeout_ms=1000) and first_back is None:
                first_back = time.monotonic()
            if speed.poll() is not None:
                raise RuntimeError(f"speed layer exited; see {log}")
        consumer.poll(timeout_ms=2000)
        for _ in range(probes):
            index += 1
            key = f"probe-{index:04d}"
            future = producer.send(settings.events_topic, key=key.encode(), value=_probe_event(index, _now()))
            created_ms = future.get(timeout=10).timestamp
            wanted = f"product|{key}|".encode()
            got = None
            until = time.monotonic() + 60
            while got is None and time.monotonic() < until:
                for records in consumer.poll(timeout_ms=200).values():
                    for record in records:
                        if record.key and record.key.startswith(wanted):
                            got = time.time() * 1000
            if got is not None:
                latencies.append((got - created_ms) / 1000)
            time.sleep(max(0.0, 1.0 - (time.time() * 1000 - created_ms) / 1000))
    finally:
        os.kill(speed.pid, signal.SIGINT)
        try:
            speed.wait(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(speed.pid, signal.SIGKILL)
            speed.wait(timeout=30)
        producer.close()
        consumer.close()
    if not latencies:
        return {"probes": probes, "answered": 0}
    ordered = sorted(latencies)
    return {
        "probes": probes,
        "answered": len(latencies),
        "p50_s": round(statistics.median(ordered), 2),
        "p95_s": round(ordered[math.ceil(len(ordered) * 0.95) - 1], 2),  # nearest rank
        "max_s": round(ordered[-1], 2),
        "load": _load(),
    }


def _now() -> datetime:
    return datetime.now(UTC)


# --- plumbing -------------------------------------------------------------------------------------------
def _in_subprocess(function: str, *args: Any) -> Any:
    """Run one function of this module in a fresh interpreter (its own JVM) and return its JSON result."""
    code = (
        "import json, sys; from benchmarks import scale_out as m; "
        f"print('RESULT ' + json.dumps(m.{function}(*json.loads(sys.argv[1]))))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code, json.dumps(list(args))],
        cwd=_ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    if result.returncode != 0:
        raise RuntimeError(f"{function} failed:\n{result.stderr[-3000:]}")
    line = next(line for line in result.stdout.splitlines() if line.startswith("RESULT "))
    return json.loads(line.removeprefix("RESULT "))


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", choices=["batch", "speed"], default=None)
    parser.add_argument("--events", type=int, default=100_000, help="events in the batch lake (default 100k)")
    parser.add_argument("--probes", type=int, default=30, help="speed latency probes (default 30)")
    parser.add_argument("--warmup", type=float, default=20.0, help="seconds of probes before measuring")
    parser.add_argument("--keep", action="store_true", help="keep the temporary folder")
    args = parser.parse_args(argv)

    from infra.spark_cluster import SparkStandalone

    work = Path(tempfile.mkdtemp(prefix="bench-scale-out-"))
    cluster = SparkStandalone(
        host="127.0.0.1",
        master_port=free_port(),
        master_webui_port=free_port(),
        worker_ports=(free_port(), free_port()),
        worker_webui_ports=(free_port(), free_port()),
        data_dir=work / "spark-cluster",
    )
    results: dict[str, Any] = {"load_at_start": _load(), "cpus": os.cpu_count()}
    cluster.start()
    try:
        if args.only in (None, "batch"):
            results["batch"] = bench_batch(work, cluster, args.events)
        if args.only in (None, "speed"):
            results["speed"] = bench_speed(work, cluster, args.probes, args.warmup)
    finally:
        cluster.stop()
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)
    print(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
