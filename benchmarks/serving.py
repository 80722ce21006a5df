"""`make bench-serve`: latency of the merged query over 30 days of minute data and of a full dashboard refresh.

Builds (once, under var/bench/serving_lake) a lake shaped like production: 30 days of batch views (minute, hour,
day; total + 50 products + 8 categories, one Delta commit per day like the nightly job) with W at the start of
"today", and a speed view holding the last 2 days plus today's 14 hours of minute rows with HLL sketches, written
as 30-minute commits like micro-batches. The writer is delta-rs (``write_deltalake``), not Spark: same table
layout and types (contracts.tables), but fewer, larger files than a long-running stream leaves before
compaction. Sketches are real Apache DataSketches HLL_8 sketches (the format Spark's hll_sketch_agg writes),
drawn from a pool so the set-up stays quick.

Then it times, in this process (no network), p50/p95 of:
- the merged query (batch before W, speed from W) at minute/hour/day grains, warm (table versions unchanged);
- the first query after a new speed commit (the speed view is re-read once per version);
- /api/revenue through the real uvicorn server over loopback HTTP;
- a full dashboard refresh: the three callbacks' work (queries + figures) plus JSON encoding of their outputs.

Results are printed and written into BENCHMARKS.md between the bench-serve markers (other sections untouched);
``--json PATH`` also writes them as JSON (what ``python -m benchmarks.all`` reads).
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

from contracts.settings import PROJECT_ROOT, Settings
from contracts.tables import Lake
from infra.processes import free_port

__all__ = ["main"]

DAYS = 30
PRODUCTS = 50
CATEGORIES = 8
SPEED_DAYS_BEFORE_W = 2
TODAY_HOURS = 14
_MARK_START = "<!-- bench-serve:start -->"
_MARK_END = "<!-- bench-serve:end -->"
_TS = pa.timestamp("us", tz="UTC")
_MONEY = pa.decimal128(18, 2)


def _keys() -> list[tuple[str, str]]:
    return (
        [("total", "all")]
        + [("product", f"p-{i:03d}") for i in range(PRODUCTS)]
        + [("category", f"c-{i}") for i in range(CATEGORIES)]
    )


def _sketch_pool(size: int, seed: int) -> list[bytes]:
    import datasketches

    rng = np.random.default_rng(seed)
    pool = []
    for _ in range(size):
        sketch = datasketches.hll_sketch(12, datasketches.tgt_hll_type.HLL_8)
        for user in rng.integers(0, 5000, size=int(rng.integers(1, 60))):
            sketch.update(f"u{user}")
        pool.append(sketch.serialize_updatable())
    return pool


def _minute_rows(start: datetime, minutes: int, rng: np.random.Generator, with_sketch: list[bytes] | None) -> pa.Table:
    keys = _keys()
    starts = np.array([int(start.timestamp()) * 1_000_000 + m * 60_000_000 for m in range(minutes)], dtype=np.int64)
    bucket = np.repeat(starts, len(keys))
    dims = [d for d, _ in keys] * minutes
    names = [k for _, k in keys] * minutes
    n = len(bucket)
    orders = rng.poisson(0.6, n).astype(np.int64)
    orders[:: len(keys)] = rng.poisson(25, minutes)  # the total rows carry the whole shop
    units = orders + rng.poisson(0.3, n) * (orders > 0)
    cents = orders * rng.integers(150, 9000, n)
    columns: dict[str, Any] = {
        "bucket_start": pa.array(bucket, pa.int64()).cast(_TS),
        "bucket_end": pa.array(bucket + 60_000_000, pa.int64()).cast(_TS),
        "dimension": pa.array(dims, pa.string()),
        "key": pa.array(names, pa.string()),
        "revenue": pa.array([Decimal(int(c)).scaleb(-2) for c in cents], _MONEY),
        "orders": pa.array(orders),
        "units": pa.array(units.astype(np.int64)),
    }
    if with_sketch is not None:
        picks = rng.integers(0, len(with_sketch), n)
        columns["users_sketch"] = pa.array([with_sketch[i] for i in picks], pa.binary())
        columns["users_estimate"] = pa.array(rng.integers(1, 60, n).astype(np.int64))
        columns["updated_at"] = pa.array(bucket + 90_000_000, pa.int64()).cast(_TS)
    else:
        columns["distinct_users"] = pa.array(rng.integers(1, 60, n).astype(np.int64))
        columns["run_id"] = pa.array(["bench"] * n, pa.string())
        columns["computed_at"] = pa.array(bucket, pa.int64()).cast(_TS)
    return pa.table(columns)


def _roll(minute: pa.Table, unit: str) -> pa.Table:
    import pyarrow.compute as pc

    floored = minute.set_column(0, "bucket_start", pc.floor_temporal(minute["bucket_start"], unit=unit))
    grouped = floored.group_by(["bucket_start", "dimension", "key"], use_threads=False).aggregate(
        [("revenue", "sum"), ("orders", "sum"), ("units", "sum"), ("distinct_users", "max")]
    )
    step = 3_600_000_000 if unit == "hour" else 86_400_000_000
    starts = grouped["bucket_start"].cast(pa.int64()).to_numpy()
    return pa.table(
        {
            "bucket_start": grouped["bucket_start"],
            "bucket_end": pa.array(starts + step, pa.int64()).cast(_TS),
            "dimension": grouped["dimension"],
            "key": grouped["key"],
            "revenue": grouped["revenue_sum"].cast(_MONEY),
            "orders": grouped["orders_sum"],
            "units": grouped["units_sum"],
            "distinct_users": grouped["distinct_users_max"],
            "run_id": pa.array(["bench"] * grouped.num_rows, pa.string()),
            "computed_at": grouped["bucket_start"],
        }
    )


def build_lake(root: Path, w: datetime) -> None:
    """Write the benchmark lake (idempotent: skipped when its marker file matches)."""
    from deltalake import write_deltalake

    marker = root / "_bench.json"
    spec = {"days": DAYS, "products": PRODUCTS, "categories": CATEGORIES, "w": w.isoformat(), "v": 2}
    if marker.exists() and json.loads(marker.read_text()) == spec:
        return
    import shutil

    shutil.rmtree(root, ignore_errors=True)
    root.mkdir(parents=True)
    lake = Lake(str(root), str(root / "_checkpoints"))
    rng = np.random.default_rng(7)
    pool = _sketch_pool(400, seed=7)
    started = time.perf_counter()
    versions = {}
    for day in range(DAYS, 0, -1):
        minute = _minute_rows(w - timedelta(days=day), 1440, rng, None)
        for grain, table in (("minute", minute), ("hour", _roll(minute, "hour")), ("day", _roll(minute, "day"))):
            write_deltalake(lake.table(f"batch/sales_{grain}"), table, mode="append")
    from deltalake import DeltaTable

    for grain in ("minute", "hour", "day"):
        versions[grain] = DeltaTable(lake.table(f"batch/sales_{grain}")).version()
    speed_start = w - timedelta(days=SPEED_DAYS_BEFORE_W)
    write_deltalake(
        lake.table("speed/sales_minute"),
        _minute_rows(speed_start, SPEED_DAYS_BEFORE_W * 1440, rng, pool),
        mode="append",
    )
    for half_hour in range(TODAY_HOURS * 2):
        rows = _minute_rows(w + timedelta(minutes=30 * half_hour), 30, rng, pool)
        write_deltalake(lake.table("speed/sales_minute"), rows, mode="append")
    now = w + timedelta(hours=TODAY_HOURS)
    runs = pa.table(
        {
            "run_id": ["bench-run"],
            "interval_start": pa.array([w - timedelta(days=1)], _TS),
            "interval_end": pa.array([w], _TS),
            "status": ["succeeded"],
            "message": pa.array([None], pa.string()),
            "started_at": pa.array([w + timedelta(hours=2)], _TS),
            "finished_at": pa.array([w + timedelta(hours=2, minutes=5)], _TS),
            "bronze_rows": pa.array([1_000_000], pa.int64()),
            "deduplicated_rows": pa.array([999_000], pa.int64()),
            "view_rows": pa.array([85_000], pa.int64()),
            "high_water_mark": pa.array([w], _TS),
            "sales_minute_version": pa.array([versions["minute"]], pa.int64()),
            "sales_hour_version": pa.array([versions["hour"]], pa.int64()),
            "sales_day_version": pa.array([versions["day"]], pa.int64()),
            "validation_report": pa.array(["{}"], pa.string()),
        }
    )
    write_deltalake(lake.table("batch/runs"), runs, mode="append")
    stock = rng.integers(0, 80, PRODUCTS)
    inventory = pa.table(
        {
            "product_id": [f"p-{i:03d}" for i in range(PRODUCTS)],
            "stock": pa.array(stock.astype(np.int64)),
            "threshold": pa.array([10] * PRODUCTS, pa.int32()),
            "below_threshold": pa.array(stock < 10),
            "last_event_time": pa.array([now] * PRODUCTS, _TS),
            "updated_at": pa.array([now] * PRODUCTS, _TS),
        }
    )
    write_deltalake(lake.table("speed/inventory"), inventory, mode="append")
    low = [i for i in range(PRODUCTS) if stock[i] < 10]
    alerts = pa.table(
        {
            "alert_id": [f"a-{i}" for i in low],
            "product_id": [f"p-{i:03d}" for i in low],
            "kind": ["low_stock"] * len(low),
            "stock_at_open": pa.array([int(stock[i]) for i in low], pa.int64()),
            "threshold": pa.array([10] * len(low), pa.int32()),
            "opened_at": pa.array([now - timedelta(minutes=30)] * len(low), _TS),
            "resolved_at": pa.array([None] * len(low), _TS),
        }
    )
    write_deltalake(lake.table("speed/alerts"), alerts, mode="append")
    marker.write_text(json.dumps(spec))
    print(f"built the benchmark lake in {time.perf_counter() - started:.1f}s: {root}", flush=True)


def _percentiles(samples: list[float]) -> dict[str, float]:
    ordered = sorted(samples)
    return {
        "p50": statistics.median(ordered) * 1000,
        "p95": ordered[min(len(ordered) - 1, int(round(0.95 * (len(ordered) - 1))))] * 1000,
        "max": ordered[-1] * 1000,
        "n": len(ordered),
    }


def _time(action: Callable[[], Any], repeat: int, warmup: int = 3) -> dict[str, float]:
    for _ in range(warmup):
        action()
    samples = []
    for _ in range(repeat):
        started = time.perf_counter()
        action()
        samples.append(time.perf_counter() - started)
    return _percentiles(samples)


def _machine() -> dict[str, str]:
    import dash
    import datasketches  # noqa: F401
    import deltalake
    import fastapi

    cpu = "unknown"
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            cpu = line.split(":", 1)[1].strip()
            break
    memory_kb = next(
        int(line.split()[1]) for line in Path("/proc/meminfo").read_text().splitlines() if line.startswith("MemTotal")
    )
    from importlib.metadata import version

    return {
        "cpu": f"{cpu}, nproc={os.cpu_count()}",
        "memory": f"{memory_kb / 1024 / 1024:.1f} GiB",
        "load": "load average " + " ".join(f"{x:.2f}" for x in os.getloadavg()) + " (at the start of the run)",
        "os": f"{platform.system()} {platform.release()}",
        "versions": (
            f"Python {platform.python_version()}, deltalake {deltalake.__version__}, pyarrow {pa.__version__}, "
            f"datasketches {version('datasketches')}, dash {dash.__version__}, fastapi {fastapi.__version__}, "
            f"uvicorn {version('uvicorn')}"
        ),
    }


def _http_get(connection: http.client.HTTPConnection, path: str) -> bytes:
    connection.request("GET", path)
    response = connection.getresponse()
    body = response.read()
    if response.status != 200:
        raise RuntimeError(f"GET {path} answered {response.status}: {body[:200]!r}")
    return body


def run(root: Path, repeat: int) -> dict[str, Any]:
    from serving_layer.dashboard.callbacks import health_outputs, sales_outputs, stock_outputs
    from serving_layer.service import ServingLayer

    w = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    now = w + timedelta(hours=TODAY_HOURS)
    build_lake(root, w)
    results: dict[str, Any] = {"machine": _machine(), "queries": {}, "notes": []}
    clock = [now]
    serving = ServingLayer(str(root), clock=lambda: clock[0])
    q = results["queries"]

    def first(label: str, action: Callable[[], Any]) -> None:
        started = time.perf_counter()
        action()
        q[label] = {"p50": (time.perf_counter() - started) * 1000, "p95": None, "max": None, "n": 1}

    month = (w - timedelta(days=DAYS), now)
    first("cold: first query, 30 days minute, total (loads the views)", lambda: serving.sales(*month, "minute"))
    queries: dict[str, Callable[[], Any]] = {
        "merged minute, last 24 h, total (1,440 rows)": lambda: serving.sales(now - timedelta(days=1), now, "minute"),
        "merged minute, 30 days, total (43,200 rows)": lambda: serving.sales(*month, "minute"),
        "merged hour, 30 days, total (sketch union for today's hours)": lambda: serving.sales(*month, "hour"),
        "merged day, 30 days, one product": lambda: serving.sales(*month, "day", dimension="product", key="p-007"),
        "merged minute, 30 days, one category": lambda: serving.sales(
            *month, "minute", dimension="category", key="c-3"
        ),
    }
    for label, action in queries.items():
        if "product" in label:
            action()  # the product dimension's first load is not part of the warm figure
        q[label] = _time(action, repeat)

    # the first query after each new speed commit re-reads the speed view (once per version)
    from deltalake import write_deltalake

    speed_path = Lake(str(root), str(root)).table("speed/sales_minute")
    rng = np.random.default_rng(99)
    pool = _sketch_pool(50, seed=99)
    samples = []
    for i in range(10):
        write_deltalake(speed_path, _minute_rows(now + timedelta(minutes=i), 1, rng, pool), mode="append")
        started = time.perf_counter()
        serving.sales(now - timedelta(days=1), now + timedelta(hours=1), "minute")
        samples.append(time.perf_counter() - started)
    q["first query after a new speed commit, minute, 24 h, total"] = _percentiles(samples)

    # the HTTP API through the real server over loopback (keep-alive connection)
    port = free_port()
    env = {**os.environ, "RETAIL_LAKE_ROOT": str(root), "RETAIL_API_PORT": str(port)}
    server = subprocess.Popen(
        [sys.executable, "-m", "retail_cli.main", "serve"], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )
    try:
        connection = _wait_for_http(port, server)
        day_path = (
            f"/api/revenue?start={_iso(now - timedelta(days=1))}&end={_iso(now + timedelta(hours=1))}&grain=minute"
        )
        month_hour = f"/api/revenue?start={_iso(month[0])}&end={_iso(now + timedelta(hours=1))}&grain=hour"
        month_minute = f"/api/revenue?start={_iso(month[0])}&end={_iso(now + timedelta(hours=1))}&grain=minute"
        q["HTTP /api/revenue minute, 24 h"] = _time(lambda: _http_get(connection, day_path), repeat)
        q["HTTP /api/revenue hour, 30 days"] = _time(lambda: _http_get(connection, month_hour), repeat)
        q["HTTP /api/revenue minute, 30 days (43k rows of JSON)"] = _time(
            lambda: _http_get(connection, month_minute), max(10, repeat // 5)
        )
        q["HTTP /api/health"] = _time(lambda: _http_get(connection, "/api/health"), repeat)
    finally:
        server.terminate()
        server.wait(timeout=15)

    # a full dashboard refresh: the three callbacks' work and the JSON encoding of what they return
    from plotly.io.json import to_json_plotly

    clock[0] = now + timedelta(minutes=10)

    def refresh(window: int) -> None:
        outputs = [*sales_outputs(serving, window, "EUR"), *stock_outputs(serving), *health_outputs(serving, "EUR")]
        to_json_plotly(outputs)

    for window in (180, 1440):
        q[f"dashboard full refresh, window {window // 60} h (3 callbacks + JSON)"] = _time(
            lambda window=window: refresh(window), max(20, repeat // 5)
        )
    samples = []
    for i in range(10, 16):
        write_deltalake(speed_path, _minute_rows(now + timedelta(minutes=i), 1, rng, pool), mode="append")
        started = time.perf_counter()
        refresh(180)
        samples.append(time.perf_counter() - started)
    q["dashboard full refresh after a new speed commit, 3 h"] = _percentiles(samples)
    return results


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _wait_for_http(port: int, server: subprocess.Popen[bytes]) -> http.client.HTTPConnection:
    deadline = time.monotonic() + 60
    while True:
        try:
            connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
            _http_get(connection, "/api/health")
            return connection
        except (ConnectionError, OSError):
            if server.poll() is not None or time.monotonic() > deadline:
                reason = server.stderr.read().decode() if server.stderr else ""
                raise RuntimeError(f"the API did not start: {reason}") from None
            time.sleep(0.3)


def _markdown(results: dict[str, Any], repeat: int) -> str:
    machine = results["machine"]
    lines = [
        _MARK_START,
        "## Serving layer (`make bench-serve`)",
        "",
        f"Measured {datetime.now(UTC):%Y-%m-%d %H:%M} UTC on {machine['cpu']}, {machine['memory']} RAM, "
        f"{machine['os']}; {machine['versions']}. {machine['load'].capitalize()}: the machine was shared with other "
        "jobs, so treat tails as pessimistic.",
        "",
        f"Lake: {DAYS} days of batch views (minute/hour/day; total + {PRODUCTS} products + {CATEGORIES} categories = "
        f"{(1 + PRODUCTS + CATEGORIES) * 1440 * DAYS:,} minute rows), W at 00:00 today, speed view with "
        f"{SPEED_DAYS_BEFORE_W} days + {TODAY_HOURS} h of minute rows and HLL sketches (written by delta-rs, same "
        "layout as the Spark writers). Warm = table versions unchanged since the previous query "
        f"(n={repeat} unless stated). Times in ms.",
        "",
        "| measurement | p50 | p95 | max | n |",
        "|---|---:|---:|---:|---:|",
    ]

    def cell(value: float | None) -> str:
        return "–" if value is None else f"{value:.1f}"

    for label, stats in results["queries"].items():
        lines.append(f"| {label} | {cell(stats['p50'])} | {cell(stats['p95'])} | {cell(stats['max'])} | {stats['n']} |")
    lines += ["", *results["notes"], _MARK_END]
    return "\n".join(lines)


def write_benchmarks(markdown: str, path: Path) -> None:
    """Put ``markdown`` between the bench-serve markers of ``path`` (appended when they are missing)."""
    text = path.read_text() if path.exists() else "# Benchmarks\n"
    if _MARK_START in text and _MARK_END in text:
        before, rest = text.split(_MARK_START, 1)
        after = rest.split(_MARK_END, 1)[1]
        text = before + markdown + after
    else:
        text = text.rstrip("\n") + "\n\n" + markdown + "\n"
    path.write_text(text)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="bench-serve", description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=200, help="timed runs per warm measurement (default 200)")
    parser.add_argument("--lake", type=Path, default=PROJECT_ROOT / "var" / "bench" / "serving_lake")
    parser.add_argument("--output", type=Path, default=PROJECT_ROOT / "BENCHMARKS.md")
    parser.add_argument("--json", type=Path, default=None, help="also write the results as JSON to this file")
    args = parser.parse_args(argv)
    Settings()  # fail early on a broken environment, like every other entry point
    results = run(args.lake, args.repeat)
    target = 20.0
    merged = results["queries"]["merged minute, last 24 h, total (1,440 rows)"]
    verdict = "meets" if merged["p95"] <= target else "misses"
    results["notes"].append(
        f"Aim: merged query p95 <= {target:.0f} ms. The 24-hour minute query {verdict} it "
        f"(p95 {merged['p95']:.1f} ms); see the table for the 30-day queries and the first query after a speed commit."
    )
    results["notes"] += [
        "",
        "- Cold: the first query after start (or after the batch run publishes new view versions) loads a whole "
        "dimension of a view version into memory once; every later query at those versions slices it.",
        "- After a speed commit only the commit's new data files are read (FileRowCache), then the query proceeds "
        "as warm; the speed view's rows are re-sorted only every 32 commits or when a MERGE rewrites an older file.",
        "- HTTP figures include uvicorn, FastAPI routing and JSON encoding over loopback with a keep-alive "
        "connection; the 30-day minute answer is 43,200 rows (about 5 MB of JSON), which dominates its time.",
        "- A dashboard refresh is the server-side work of one interval tick: the three callbacks (queries, pandas "
        "frames, Plotly figures) plus JSON encoding of their outputs, as Dash does; the browser's rendering is "
        "not included. The dashboard widens its interval to twice its slowest callback when needed.",
    ]
    markdown = _markdown(results, args.repeat)
    print(markdown)
    write_benchmarks(markdown, args.output)
    print(f"\nwritten to {args.output}")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps({**results, "target_p95_ms": target, "repeat": args.repeat}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
