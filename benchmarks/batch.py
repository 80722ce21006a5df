"""Benchmark of the batch recompute: Spark (the project's job) vs DuckDB on the same Delta table (make bench-batch).

1. ``generate``: N synthetic events (1 % re-sent duplicates) written straight into a bronze/events Delta table
   with Spark (``spark.range`` + deterministic hash expressions; no Kafka), partitioned by event_date.
2. ``spark``: the batch job's ``recompute`` step over the whole range, in a subprocess (JVM start excluded from
   the timed part, reported separately), peak RSS of the process tree sampled every 0.2 s.
3. ``duckdb``: the same three views computed by DuckDB from the same Delta table (``delta_scan`` of the
   offline ``duckdb-extension-delta`` package), written to Parquet, also in a subprocess with peak RSS.
   The SQL restates the metric definitions for this comparison only; the two outputs are cross-checked (rows,
   revenue, orders, units and distinct users per grain must agree exactly).
4. ``nightly``: the one-day nightly run as a user runs it (`retail batch --date D` in a subprocess: wall time
   including Python start, the JVM and the Spark session) over a small day (``--nightly-events``, 6,000 events,
   a small shop) on a lake with one day of history, after the previous night's run; per-step times and Spark jobs
   from the job's own profile lines (``batch_layer.profiling``; also kept in
   ``<lake>/batch/reports/<run>/profile.json``). Target: under 60 s wall.
5. ``growth``: the same nightly run over lakes with 1, 10 and 30 days of history (``--growth-days``). Target:
   flat, i.e. the longest history's wall time within 1.25x of the shortest's (cost follows the interval, not
   the history).
6. The numbers go into BENCHMARKS.md (the batch blocks: Spark vs DuckDB, nightly, growth), each with its targets
   and verdicts, the machine's description, the load average before/after and the CPU other processes used.

``all`` runs 1-5 (the nightly figure is the growth curve's 1-day point); each mode alone rewrites only its own
block. ``--json PATH`` writes the result for ``python -m benchmarks.all``.

Usage::

    python -m benchmarks.batch --events 10000000 --days 3 --reuse    # what `make bench-batch` runs
    python -m benchmarks.batch nightly --nightly-events 6000
    python -m benchmarks.batch growth --growth-days 1,10,30
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import subprocess
import sys
import threading
import time
from collections.abc import Sequence
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

from batch_layer.arguments import STEPS

__all__ = ["main"]

START = datetime(2026, 1, 1, tzinfo=UTC)
_MARK_BEGIN = "<!-- batch-bench:begin -->"
_MARK_END = "<!-- batch-bench:end -->"
_NIGHTLY_BEGIN, _NIGHTLY_END = "<!-- batch-nightly:begin -->", "<!-- batch-nightly:end -->"
_GROWTH_BEGIN, _GROWTH_END = "<!-- batch-growth:begin -->", "<!-- batch-growth:end -->"

# targets (issue 13); compared with the unrounded measurements
TARGET_RATIO = 3.0  # Spark's timed recompute within 3x DuckDB's on the same table
TARGET_NIGHTLY_S = 60.0  # `retail batch` for one small day, wall incl. Python, JVM and Spark session start
FLAT_GROWTH = 1.25  # flat: the longest history's nightly wall time within 1.25x of the shortest history's


# --- generation -----------------------------------------------------------------------------------
def generate(lake_root: str, events: int, days: int, seed: int) -> dict[str, Any]:
    """Write ``events`` bronze rows (1 % duplicates of earlier events) spread evenly over ``days`` UTC days."""
    from pyspark.sql import functions as F

    from contracts.settings import Settings
    from contracts.spark import build_spark_session
    from contracts.tables import Lake

    settings = Settings(lake_root=lake_root, spark_driver_memory="4g")
    spark = build_spark_session(settings, app_name="bench-generate")
    path = Lake(settings.lake_root, settings.checkpoint_root).bronze_events
    step_us = days * 86_400_000_000 // events
    start_us = int(START.timestamp() * 1_000_000)
    num = F.when(F.col("id") % 100 == 99, F.col("id") - 37).otherwise(F.col("id"))  # a re-send of an earlier one
    roll = F.pmod(F.xxhash64(F.lit(seed), num), F.lit(100))
    product = F.pmod(F.xxhash64(F.lit(seed + 1), num), F.lit(50)) + 1
    event_type = (
        F.when(roll < 70, "page_view").when(roll < 85, "add_to_cart").when(roll < 96, "purchase").otherwise("restock")
    )
    event_time = F.timestamp_micros(F.lit(start_us) + num * F.lit(step_us))
    categories = F.array(*[F.lit(c) for c in ("books", "electronics", "garden", "kitchen", "toys", "sports")])
    user = F.pmod(F.xxhash64(F.lit(seed + 3), num), F.lit(20_000))
    small_qty = (F.pmod(F.xxhash64(F.lit(seed + 2), num), F.lit(3)) + 1).cast("int")
    frame = spark.range(events).select(
        F.concat(F.lit(f"b{seed}-"), num.cast("string")).alias("event_id"),
        event_type.alias("event_type"),
        event_time.alias("event_time"),
        F.when(event_type != "restock", F.format_string("u%05d", user)).alias("user_id"),
        F.format_string("p%04d", product).alias("product_id"),
        F.element_at(categories, (product % 6 + 1).cast("int")).alias("category"),
        F.when(event_type.isin("add_to_cart", "purchase"), small_qty)
        .when(event_type == "restock", small_qty * 20)
        .alias("quantity"),
        F.when(event_type == "purchase", ((product * 997) % 49_900 + 100) / F.lit(100))
        .cast("decimal(18,2)")
        .alias("unit_price"),
        F.when(event_type == "purchase", F.lit("EUR")).alias("currency"),
        F.when(event_type == "purchase", F.concat(F.lit("o-"), num.cast("string"))).alias("order_id"),
        F.lit(1).alias("schema_version"),
        F.lit("retail.events").alias("kafka_topic"),
        (product % 3).cast("int").alias("kafka_partition"),
        F.col("id").alias("kafka_offset"),
        (event_time + F.expr("INTERVAL 1 SECOND")).alias("kafka_timestamp"),
        F.timestamp_micros(F.lit(start_us) + F.col("id") * F.lit(step_us) + F.lit(1_000_000)).alias("ingest_time"),
        F.to_date(event_time).alias("event_date"),
    )
    began = time.monotonic()
    frame.write.format("delta").mode("overwrite").partitionBy("event_date").save(path)
    seconds = time.monotonic() - began
    spark.stop()
    return {"events": events, "days": days, "generate_s": round(seconds, 1), "path": path}


# --- a lake with N days of history, laid out like the speed layer writes it (for the nightly run) ----------


def _bronze_arrow_schema():  # type: ignore[no-untyped-def]
    import pyarrow as pa

    ts = pa.timestamp("us", tz="UTC")
    return pa.schema(
        [
            ("schema_version", pa.int32()),
            ("event_id", pa.string()),
            ("event_type", pa.string()),
            ("event_time", ts),
            ("user_id", pa.string()),
            ("product_id", pa.string()),
            ("category", pa.string()),
            ("quantity", pa.int32()),
            ("unit_price", pa.decimal128(18, 2)),
            ("currency", pa.string()),
            ("order_id", pa.string()),
            ("kafka_topic", pa.string()),
            ("kafka_partition", pa.int32()),
            ("kafka_offset", pa.int64()),
            ("kafka_timestamp", ts),
            ("ingest_time", ts),
            ("event_date", pa.date32()),
        ]
    )


def _day_events(day: date, events: int, seed: int, first_offset: int) -> dict[str, Any]:
    """One UTC day of generated events as numpy columns: 1 % re-sent duplicates, 2 % ingested 90 minutes late."""
    import numpy as np

    rng = np.random.default_rng([seed, day.toordinal()])
    day_us = int(datetime(day.year, day.month, day.day, tzinfo=UTC).timestamp() * 1_000_000)
    times = day_us + np.sort(rng.integers(0, 86_400_000_000, events))
    serial = np.arange(events)
    ids = np.char.add(f"e{day:%Y%m%d}-", serial.astype(str))
    roll = rng.integers(0, 100, events)
    kinds = np.where(
        roll < 70, "page_view", np.where(roll < 85, "add_to_cart", np.where(roll < 96, "purchase", "restock"))
    )
    product = rng.integers(1, 51, events)
    delay = np.where(rng.random(events) < 0.02, 90 * 60_000_000, 1_000_000)
    duplicate = rng.random(events) < 0.01
    pick = np.concatenate([serial, serial[duplicate]])  # a duplicate is a re-send of the same event, later
    ingest = (times + delay)[pick] + np.where(np.arange(len(pick)) >= events, 5_000_000, 0)
    order = np.argsort(ingest, kind="stable")
    pick, ingest = pick[order], ingest[order]
    return {
        "ids": ids[pick],
        "kinds": kinds[pick],
        "times": times[pick],
        "users": np.char.add("u", rng.integers(0, 2_000, events).astype(str))[pick],
        "product": product[pick],
        "quantity": rng.integers(1, 4, events)[pick],
        "ingest": ingest,
        "offsets": first_offset + np.arange(len(pick)),
    }


def _bronze_table(columns: dict[str, Any]):  # type: ignore[no-untyped-def]
    import numpy as np
    import pyarrow as pa

    kinds = columns["kinds"]
    is_purchase = kinds == "purchase"
    categories = np.array(["books", "electronics", "garden", "kitchen", "toys", "sports"])
    product = columns["product"]
    prices = [
        Decimal(int(cents)).scaleb(-2) if buy else None
        for cents, buy in zip((product * 997) % 49_900 + 100, is_purchase, strict=True)
    ]
    quantity = np.where(kinds == "page_view", 0, columns["quantity"] * np.where(kinds == "restock", 20, 1))
    times = pa.array(columns["times"], pa.timestamp("us", tz="UTC"))
    return pa.table(
        {
            "schema_version": pa.array(np.ones(len(kinds), dtype=np.int32)),
            "event_id": pa.array(columns["ids"].tolist(), pa.string()),
            "event_type": pa.array(kinds.tolist(), pa.string()),
            "event_time": times,
            "user_id": pa.array(
                [None if k == "restock" else u for k, u in zip(kinds, columns["users"], strict=True)], pa.string()
            ),
            "product_id": pa.array([f"p{p:04d}" for p in product], pa.string()),
            "category": pa.array(categories[product % 6].tolist(), pa.string()),
            "quantity": pa.array(quantity.astype(np.int32), mask=quantity == 0),
            "unit_price": pa.array(prices, pa.decimal128(18, 2)),
            "currency": pa.array(np.where(is_purchase, "EUR", None).tolist(), pa.string()),
            "order_id": pa.array(
                [f"o-{i}" if buy else None for i, buy in zip(columns["ids"], is_purchase, strict=True)], pa.string()
            ),
            "kafka_topic": pa.array(["retail.events"] * len(kinds), pa.string()),
            "kafka_partition": pa.array((product % 3).astype(np.int32)),
            "kafka_offset": pa.array(columns["offsets"].astype(np.int64)),
            "kafka_timestamp": pa.array(columns["ingest"], pa.timestamp("us", tz="UTC")),
            "ingest_time": pa.array(columns["ingest"], pa.timestamp("us", tz="UTC")),
            "event_date": pa.compute.cast(pa.compute.cast(times, pa.timestamp("us", tz="UTC")), pa.date32()),
        },
        schema=_bronze_arrow_schema(),
    )


def history_rows(last_day: date, history_days: int, events_per_day: int, seed: int = 11):  # type: ignore[no-untyped-def]
    """Every bronze row of ``history_days`` UTC days ending with ``last_day`` (pyarrow), in ingest order."""
    import pyarrow as pa

    first = last_day - timedelta(days=history_days - 1)
    offset = 0
    tables = []
    for index in range(history_days):
        columns = _day_events(first + timedelta(days=index), events_per_day, seed, offset)
        offset += len(columns["ids"])
        tables.append(_bronze_table(columns))
    return pa.concat_tables(tables)


def _micros(moment: datetime) -> int:
    return int(moment.timestamp() * 1_000_000)


def land(
    lake_root: str,
    rows: Any,
    ingest_from: datetime | None,
    ingest_to: datetime | None,
    compacted_before: datetime | None,
) -> int:
    """Append the bronze rows ingested in ``[ingest_from, ingest_to)`` the way the speed layer would have.

    Rows ingested before ``compacted_before`` land in one commit (earlier nights compacted them, one file per
    partition); the others in one commit per 30 minutes of ingest time, like bronze micro-batches (late events
    go to their own older partitions). The speed tables get one small MERGE-like file per 2 hours, speed/progress
    a bronze batch caught up at ``ingest_to`` and a rollups watermark 5 minutes before it, plus heartbeats.
    A Delta checkpoint is written at the end (Spark's writers checkpoint every 10 commits). Returns the commits.
    """
    import numpy as np
    import pyarrow as pa
    import pyarrow.compute as pc
    from deltalake import DeltaTable, write_deltalake

    from contracts.tables import Lake

    lake = Lake(lake_root, lake_root + "/_checkpoints")
    ingest = pc.cast(rows["ingest_time"], pa.int64()).to_numpy()
    low = _micros(ingest_from) if ingest_from else int(ingest.min())
    high = _micros(ingest_to) if ingest_to else int(ingest.max()) + 1
    window = (ingest >= low) & (ingest < high)
    config = {"delta.appendOnly": "true"}
    commits = 0
    compacted = window & (ingest < (_micros(compacted_before) if compacted_before else low))
    if compacted.any():
        write_deltalake(
            lake.bronze_events,
            rows.filter(pa.array(compacted)),
            partition_by=["event_date"],
            mode="append",
            configuration=config,
        )
        commits += 1
    streamed = window & ~compacted
    slots = np.where(streamed, (ingest - low) // (30 * 60 * 1_000_000), -1)
    for slot in np.unique(slots[slots >= 0]):
        write_deltalake(
            lake.bronze_events,
            rows.filter(pa.array(slots == slot)),
            partition_by=["event_date"],
            mode="append",
            configuration=config,
        )
        commits += 1
    DeltaTable(lake.bronze_events).create_checkpoint()
    began = datetime.fromtimestamp(low / 1e6, UTC)
    ended = datetime.fromtimestamp(high / 1e6, UTC) if ingest_to is None else ingest_to
    _speed_tables(lake, began, ended)
    return commits


def build_history_lake(
    lake_root: str, last_day: date, history_days: int, events_per_day: int, seed: int = 11
) -> dict[str, Any]:
    """A lake with ``history_days`` days of bronze ending with ``last_day``, in two landings around the night
    before ``last_day``: ``landings[0]`` is everything ingested before ``last_day`` 02:00 (what the previous
    night's run sees), ``landings[1]`` the rest (the day the timed nightly run recomputes)."""
    began = time.monotonic()
    rows = history_rows(last_day, history_days, events_per_day, seed)
    night = datetime.combine(last_day, datetime.min.time(), UTC) + timedelta(hours=2)
    first = land(lake_root, rows, None, night, night - timedelta(days=1, hours=2))
    return {
        "history_days": history_days,
        "events_per_day": events_per_day,
        "bronze_rows": rows.num_rows,
        "first_landing_commits": first,
        "build_s": round(time.monotonic() - began, 1),
        "_rows": rows,
        "_night": night,
    }


def _speed_tables(lake: Any, began: datetime, ended: datetime) -> None:
    import pyarrow as pa
    from deltalake import write_deltalake

    ts = pa.timestamp("us", tz="UTC")
    end = ended
    commits = max(1, min(12, int((ended - began).total_seconds() // 7200)))
    for commit in range(commits):  # the durable query's MERGEs leave one small file each
        minutes = [end - timedelta(minutes=5 * commit + m) for m in range(1, 6)]
        write_deltalake(
            lake.table("speed/sales_minute"),
            pa.table(
                {
                    "bucket_start": pa.array(minutes, ts),
                    "bucket_end": pa.array([m + timedelta(minutes=1) for m in minutes], ts),
                    "dimension": ["total"] * 5,
                    "key": ["all"] * 5,
                    "revenue": pa.array([Decimal("1.00")] * 5, pa.decimal128(18, 2)),
                    "orders": pa.array([1] * 5, pa.int64()),
                    "units": pa.array([1] * 5, pa.int64()),
                    "users_sketch": pa.array([b""] * 5, pa.binary()),
                    "users_estimate": pa.array([1] * 5, pa.int64()),
                    "updated_at": pa.array(minutes, ts),
                }
            ),
            mode="append",
        )
    write_deltalake(
        lake.table("speed/inventory"),
        pa.table(
            {
                "product_id": ["p0001"],
                "stock": pa.array([5], pa.int64()),
                "threshold": pa.array([10], pa.int32()),
                "below_threshold": [True],
                "last_event_time": pa.array([end], ts),
                "updated_at": pa.array([end], ts),
            }
        ),
        mode="append",
    )
    write_deltalake(
        lake.table("bronze/quarantine"),
        pa.table(
            {
                "raw_key": pa.array([b"k"], pa.binary()),
                "raw_value": pa.array([b"{"], pa.binary()),
                "kafka_topic": ["retail.events"],
                "kafka_partition": pa.array([0], pa.int32()),
                "kafka_offset": pa.array([1], pa.int64()),
                "kafka_timestamp": pa.array([end], ts),
                "reject_reason": ["not_json"],
                "ingest_time": pa.array([end], ts),
            }
        ),
        mode="append",
    )
    from contracts.progress import DRIVER_ROW, PROGRESS_TABLE
    from speed_layer.progress import PROGRESS_ARROW_SCHEMA

    rows = []
    batch = int(end.timestamp()) // 10
    for minute in range(0, 120, 10):
        at = end - timedelta(minutes=minute)
        rows.append({"query": "bronze", "batch_id": batch - minute, "timestamp": at, "offsets_behind": 0})
        rows.append(
            {"query": "rollups", "batch_id": batch - minute, "timestamp": at, "watermark": at - timedelta(minutes=5)}
        )
        rows.append({"query": DRIVER_ROW, "batch_id": -1, "timestamp": at})
    write_deltalake(lake.table(PROGRESS_TABLE), pa.Table.from_pylist(rows, schema=PROGRESS_ARROW_SCHEMA), mode="append")


# --- the nightly run, end to end ---------------------------------------------------------------------------
_STEP_LINE = re.compile(r"^\[batch [^\]]+\] (?P<step>[a-z-]+) done in (?P<seconds>[0-9.]+)s$")
_PROFILE_LINE = re.compile(r"^\[batch [^\]]+\] profile (?P<step>[a-z-]+): (?P<json>\{.*\})$")


def run_nightly(lake_root: str, day: date, extra: Sequence[str] = ()) -> dict[str, Any]:
    """``retail batch --date day`` as a subprocess (what ``make batch`` runs): wall time including the Python and
    JVM start, each step's time and Spark jobs (the job's own profile lines)."""
    env = {
        **os.environ,
        "RETAIL_LAKE_ROOT": lake_root,
        "RETAIL_CHECKPOINT_ROOT": lake_root + "/_checkpoints",
        "PYTHONUNBUFFERED": "1",
    }
    began = time.monotonic()
    done = subprocess.run(
        [sys.executable, "-m", "retail_cli.main", "batch", "--date", day.isoformat(), *extra],
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    wall = time.monotonic() - began
    if done.returncode != 0:
        raise SystemExit(f"retail batch --date {day} failed ({done.returncode}):\n{done.stderr[-3000:]}")
    steps: dict[str, Any] = {}
    for line in done.stdout.splitlines():
        if match := _STEP_LINE.match(line):
            steps.setdefault(match["step"], {})["seconds"] = float(match["seconds"])
        elif match := _PROFILE_LINE.match(line):
            profile = json.loads(match["json"])
            steps.setdefault(match["step"], {}).update(
                jobs=profile.get("jobs"), job_s=profile.get("job_s"), parts=profile.get("parts")
            )
    return {"day": day.isoformat(), "wall_s": round(wall, 1), "steps": steps}


def nightly_on_history(root: Path, history_days: int, events_per_day: int, extra: Sequence[str] = ()) -> dict[str, Any]:
    """A lake with ``history_days`` days of history before yesterday (UTC), plus yesterday; the previous night's
    run (not timed), then the day's landing, then the timed nightly run for yesterday.

    History counts the days before the measured one, so even the 1-day lake has a previous night with data (its
    run publishes W and the views, like every night but the very first) and the timed run is an ordinary night.
    """
    import shutil

    lake = str(root / f"nightly-{history_days}d" / "lake")
    shutil.rmtree(Path(lake).parent, ignore_errors=True)
    yesterday = datetime.now(UTC).date() - timedelta(days=1)
    built = build_history_lake(lake, yesterday, history_days + 1, events_per_day)
    built["days_in_lake"], built["history_days"] = built["history_days"], history_days
    rows, night = built.pop("_rows"), built.pop("_night")
    previous = run_nightly(lake, yesterday - timedelta(days=1), extra)
    built["second_landing_commits"] = land(lake, rows, night, night + timedelta(days=1), None)
    timed = run_nightly(lake, yesterday, extra)
    return {"lake": built, "previous_night": previous, "night": timed}


# --- the two engines (each run in its own subprocess) ---------------------------------------------
def run_spark(lake_root: str, days: int) -> dict[str, Any]:
    from batch_layer.interval import BatchInterval
    from batch_layer.job import BatchRun
    from contracts.settings import Settings
    from contracts.spark import build_spark_session

    began = time.monotonic()
    settings = Settings(lake_root=lake_root, spark_driver_memory="4g")
    spark = build_spark_session(settings, app_name="bench-batch")
    session_s = time.monotonic() - began
    interval = BatchInterval(START, START + timedelta(days=days), 0)
    run = BatchRun(run_id="bench", interval=interval, settings=settings, spark=spark)
    began = time.monotonic()
    with run.profile.step("recompute"):
        counts = run.recompute()["recompute"]
    seconds = time.monotonic() - began
    staged = run.store.read_staging("bench")
    checks = {grain: _spark_check(staged.where(f"grain = '{grain}'")) for grain in ("minute", "hour", "day")}
    profile = run.profile.report()["steps"].get("recompute") if run.profile else None
    spark.stop()
    return {
        "session_s": round(session_s, 1),
        "recompute_s": round(seconds, 1),
        "counts": counts,
        "checks": checks,
        "profile": profile,
    }


def _spark_check(view: Any) -> dict[str, str]:
    from pyspark.sql import functions as F

    row = view.agg(
        F.count(F.lit(1)).alias("rows"),
        F.sum("revenue").alias("revenue"),
        F.sum("orders").alias("orders"),
        F.sum("units").alias("units"),
        F.sum("distinct_users").alias("users"),
    ).first()
    return {key: str(row[key]) for key in ("rows", "revenue", "orders", "units", "users")}


_DUCKDB_VIEW = """
COPY (
  SELECT date_trunc('{unit}', event_time) AS bucket_start, dimension, key,
         coalesce(sum(CASE WHEN event_type = 'purchase' THEN CAST(quantity AS DECIMAL(10,0)) * unit_price END), 0)
           ::DECIMAL(18,2) AS revenue,
         count(*) FILTER (WHERE event_type = 'purchase') AS orders,
         coalesce(sum(quantity) FILTER (WHERE event_type = 'purchase'), 0) AS units,
         count(DISTINCT user_id) AS distinct_users
  FROM (
    SELECT 'total' AS dimension, 'all' AS key, * FROM sales
    UNION ALL SELECT 'product', product_id, * FROM sales
    UNION ALL SELECT 'category', coalesce(category, 'unknown'), * FROM sales
  )
  GROUP BY ALL
) TO '{out}' (FORMAT parquet)
"""


def run_duckdb(lake_root: str, days: int, out_dir: str) -> dict[str, Any]:
    import duckdb
    import duckdb_extension_delta

    extension = next(Path(duckdb_extension_delta.__file__).parent.glob("extensions/*/delta.duckdb_extension"))
    con = duckdb.connect()
    con.execute(f"LOAD '{extension}'")
    con.execute("SET TimeZone = 'UTC'")
    con.execute(f"SET threads = {os.cpu_count() or 2}")
    bronze = f"{lake_root.rstrip('/')}/bronze/events"
    start, end = START, START + timedelta(days=days)
    Path(out_dir).mkdir(parents=True, exist_ok=True)
    began = time.monotonic()
    con.execute(
        f"""
        CREATE TEMP TABLE sales AS
        SELECT * EXCLUDE (copy) FROM (
          SELECT *, row_number() OVER (PARTITION BY event_id ORDER BY ingest_time, kafka_timestamp, kafka_topic,
                                       kafka_partition, kafka_offset, event_time) AS copy
          FROM delta_scan('{bronze}')
        )
        WHERE copy = 1
          AND event_time >= TIMESTAMPTZ '{start.isoformat()}' AND event_time < TIMESTAMPTZ '{end.isoformat()}'
          AND event_type IN ('page_view', 'add_to_cart', 'purchase')
        """
    )
    for grain in ("minute", "hour", "day"):
        con.execute(_DUCKDB_VIEW.format(unit=grain, out=f"{out_dir}/{grain}.parquet"))
    seconds = time.monotonic() - began
    checks = {}
    for grain in ("minute", "hour", "day"):
        row = con.execute(
            f"SELECT count(*), sum(revenue), sum(orders), sum(units), sum(distinct_users) "
            f"FROM '{out_dir}/{grain}.parquet'"
        ).fetchone()
        checks[grain] = dict(zip(("rows", "revenue", "orders", "units", "users"), (str(v) for v in row), strict=True))
    return {"compute_s": round(seconds, 1), "checks": checks, "duckdb": duckdb.__version__}


# --- orchestration --------------------------------------------------------------------------------
def _tree_rss(pid: int) -> int:
    import psutil

    try:
        root = psutil.Process(pid)
        return sum(p.memory_info().rss for p in [root, *root.children(recursive=True)])
    except psutil.Error:
        return 0


def _measured(args: list[str]) -> tuple[dict[str, Any], float, int]:
    """Run ``python -m benchmarks.batch <args>`` and return (its JSON answer, wall seconds, peak tree RSS)."""
    began = time.monotonic()
    process = subprocess.Popen([sys.executable, "-m", "benchmarks.batch", *args], stdout=subprocess.PIPE, text=True)
    peak = 0
    done = threading.Event()

    def sample() -> None:
        nonlocal peak
        while not done.is_set():
            peak = max(peak, _tree_rss(process.pid))
            time.sleep(0.2)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    stdout, _ = process.communicate()
    done.set()
    sampler.join()
    if process.returncode != 0:
        raise SystemExit(f"bench step {args[0]} failed with exit code {process.returncode}")
    answer = json.loads(stdout.strip().splitlines()[-1])
    return answer, time.monotonic() - began, peak


def _machine() -> dict[str, str]:
    import psutil

    cpu = "unknown"
    with open("/proc/cpuinfo") as info:
        for line in info:
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    java = subprocess.run(["java", "-version"], capture_output=True, text=True).stderr.splitlines()[0]
    import duckdb
    import pyspark

    return {
        "nproc": str(os.cpu_count()),
        "memory": f"{psutil.virtual_memory().total / 2**30:.1f} GiB",
        "cpu": cpu,
        "os": platform.platform(),
        "python": platform.python_version(),
        "java": java,
        "pyspark": pyspark.__version__,
        "duckdb": duckdb.__version__,
        "load_average_at_start": " ".join(f"{v:.2f}" for v in os.getloadavg()),
    }


def _others(load: dict[str, Any] | None) -> str:
    if not load:
        return ""
    top = ", ".join(f"{name} {cores:.2f}" for name, cores in load.get("top_others", [])[:3])
    return (
        f" Load average {load['load_before']} before, {load['load_after']} after; over the run the machine's cores "
        f"were busy {load['machine_cores']:.2f} on average, {load['ours_cores']:.2f} of them this benchmark and "
        f"{load['others_cores']:.2f} other processes" + (f" (busiest: {top})" if top else "") + "."
    )


def _verdict(ok: bool) -> str:
    return "met" if ok else "**missed**"


def _machine_line(machine: dict[str, str], measured_at: str) -> str:
    return (
        f"Measured {measured_at} on: {machine['nproc']} cores ({machine['cpu']}), {machine['memory']} RAM, "
        f"{machine['os']}; Python {machine['python']}, {machine['java']}, pyspark {machine['pyspark']} "
        f"(`local[2]`), DuckDB {machine['duckdb']}."
    )


def _markdown(result: dict[str, Any]) -> str:
    spark, duck, machine = result["spark"], result["duckdb"], result["machine"]
    rows = result["generate"]["events"]
    ratio = spark["recompute_s"] / duck["compute_s"] if duck["compute_s"] else float("nan")
    lines = [
        _MARK_BEGIN,
        "## Batch layer: exact views recompute, Spark vs DuckDB (`make bench-batch`)",
        "",
        _machine_line(machine, result["measured_at"]) + " Driver 4g. The machine is shared with other work; "
        "numbers are one run." + _others(result.get("load")),
        "",
        f"Input: {rows:,} bronze rows over {result['generate']['days']} UTC days (1 % duplicates by event_id), "
        f"written by Spark straight into Delta in {result['generate']['generate_s']} s. Both engines deduplicate by "
        "event_id over all of bronze and compute minute, hour and day views (total, per product, per category; "
        "revenue, orders, units, exact distinct users), writing the results (Spark: Delta staging tables; DuckDB: "
        "Parquet).",
        "",
        "| engine | timed part | seconds | rows/s | peak RSS (process tree) | wall incl. start |",
        "|---|---|---:|---:|---:|---:|",
        f"| Spark (batch job `recompute`) | dedup + 3 views, one Delta staging write | {spark['recompute_s']} | "
        f"{rows / spark['recompute_s']:,.0f} | {spark['peak_rss_gib']:.2f} GiB | {spark['wall_s']:.1f} s "
        f"(session start {spark['session_s']} s) |",
        f"| DuckDB (`delta_scan`) | dedup + 3 views, Parquet writes | {duck['compute_s']} | "
        f"{rows / duck['compute_s']:,.0f} | {duck['peak_rss_gib']:.2f} GiB | {duck['wall_s']:.1f} s |",
        "",
        "| target | measured | verdict |",
        "|---|---|---|",
        f"| Spark within {TARGET_RATIO:.0f}x DuckDB on {rows:,} events (timed parts) | {ratio:.1f}x | "
        f"{_verdict(ratio <= TARGET_RATIO)} |",
        "",
        f"Results cross-checked: {'identical' if result['same_results'] else 'DIFFERENT'} row counts and sums of "
        "revenue, orders, units and distinct users per grain.",
        "",
        "Reading: on one 2-core machine DuckDB's single-process vectorised engine has no JVM, no task scheduling "
        "and no shuffle files, so it wins by a wide margin; Spark is there for what DuckDB cannot do here: the "
        "same code on a cluster (RETAIL_SPARK_MASTER) over data that does not fit one machine, Delta MERGE / "
        "replaceWhere writes, and one metric definition shared with the streaming layer.",
        *_spark_profile_lines(spark),
        _MARK_END,
    ]
    return "\n".join(lines) + "\n"


def _spark_profile_lines(spark: dict[str, Any]) -> list[str]:
    """Where Spark's recompute spends its time: the batch job's own per-Spark-job profile, slowest first."""
    try:
        profile = spark.get("profile") or {}
        jobs = sorted(profile.get("all_jobs") or [], key=lambda job: -float(job[1]))
        if not jobs:
            return []
        lines = [
            "",
            f"Where Spark's time goes (the job's own profile, `batch_layer.profiling`): {profile.get('jobs')} Spark "
            f"jobs, {float(profile.get('job_s') or 0):.1f} s of job time in {float(profile.get('wall_s') or 0):.1f} s "
            "wall (jobs overlap). The slowest:",
            "",
            "| Spark job | seconds | tasks | description |",
            "|---:|---:|---:|---|",
        ]
        lines += [f"| {job[0]} | {float(job[1]):.1f} | {job[2]} | {job[4]} |" for job in jobs[:6]]
        lines += [
            "",
            "They are the stages of the one staging write: reading and shuffling every row by event_id for the "
            "deduplication, then the aggregations of three grains x three dimensions with exact distinct users "
            "(each an extra shuffle of (bucket, key, user) pairs). DuckDB does the same work in one vectorised "
            "process without shuffle files or task scheduling.",
        ]
        return lines
    except (TypeError, ValueError, IndexError, AttributeError):
        return []  # an older result without the profile: the section stays as it was


def _step_rows(steps: dict[str, Any]) -> list[str]:
    rows = []
    for step, info in steps.items():
        parts = info.get("parts") or {}
        timed = sorted(
            ((name, part.get("wall_s", part.get("job_s", 0.0))) for name, part in parts.items()), key=lambda p: -p[1]
        )
        shown = ", ".join(f"{name} {seconds:.1f} s" for name, seconds in timed[:4]) or "–"
        rows.append(
            f"| {step} | {info.get('seconds', float('nan')):.1f} | {info.get('jobs') or 0} | "
            f"{info.get('job_s') or 0.0:.1f} | {shown} |"
        )
    return rows


def _nightly_markdown(result: dict[str, Any]) -> str:
    point = result["nightly"]
    night, lake = point["night"], point["lake"]
    steps_s = sum(info.get("seconds", 0.0) for info in night["steps"].values())
    wall = night["wall_s"]
    lines = [
        _NIGHTLY_BEGIN,
        "### Batch layer: the nightly run of one small day (`make bench-batch`, `python -m benchmarks.batch nightly`)",
        "",
        _machine_line(result["machine"], result["measured_at"]) + " One run." + _others(result.get("load")),
        "",
        f"`retail batch --date {night['day']}` as a user runs it (a subprocess: Python start, JVM and Spark session "
        f"included) over a day of {lake['events_per_day']:,} generated events (1 % re-sent duplicates, 2 % ingested "
        f"90 minutes late) on a lake with {lake['history_days']} day(s) of history before it ({lake['bronze_rows']:,} "
        "bronze "
        "rows, landed by delta-rs the way the speed layer writes: one commit per 30 minutes of ingest, speed tables "
        "and speed/progress beside them), after the previous night's run (not timed). Every step: validate-input, "
        "recompute (with the 2-day lookback), validate-views, publish, maintain.",
        "",
        "| target | measured | verdict |",
        "|---|---|---|",
        f"| nightly run of one small day, wall < {TARGET_NIGHTLY_S:.0f} s | {wall:.1f} s | "
        f"{_verdict(wall < TARGET_NIGHTLY_S)} |",
        "",
        "Per step (the job's own profile: wall time, Spark jobs it ran and their summed duration, its slowest parts):",
        "",
        "| step | seconds | Spark jobs | job seconds | parts |",
        "|---|---:|---:|---:|---|",
        *_step_rows(night["steps"]),
        f"| start-up and exit (wall − steps: Python, JVM, Spark session, imports) | {wall - steps_s:.1f} | | | |",
        f"| **wall** | **{wall:.1f}** | | | |",
        _NIGHTLY_END,
    ]
    return "\n".join(lines) + "\n"


def growth_ratio(points: Sequence[dict[str, Any]]) -> float:
    """Wall time of the longest history over that of the shortest (nan with fewer than two points)."""
    if len(points) < 2:
        return float("nan")
    ordered = sorted(points, key=lambda p: p["lake"]["history_days"])
    first = ordered[0]["night"]["wall_s"]
    return ordered[-1]["night"]["wall_s"] / first if first else float("nan")


def _growth_markdown(result: dict[str, Any]) -> str:
    points = sorted(result["growth"], key=lambda p: p["lake"]["history_days"])
    base = points[0]["night"]["wall_s"]
    ratio = growth_ratio(points)
    longest, shortest = points[-1]["lake"]["history_days"], points[0]["lake"]["history_days"]
    lines = [
        _GROWTH_BEGIN,
        "### Batch layer: nightly run vs history (`make bench-batch`, `python -m benchmarks.batch growth`)",
        "",
        _machine_line(result["machine"], result["measured_at"]) + " One run per point." + _others(result.get("load")),
        "",
        f"The same one-day nightly run ({points[0]['lake']['events_per_day']:,} events a day) over lakes with "
        f"{', '.join(str(p['lake']['history_days']) for p in points)} days of history before the measured day. "
        "Flat means: the "
        f"{longest}-day lake's wall time is within {FLAT_GROWTH}x of the {shortest}-day lake's, i.e. the cost "
        "follows the interval (one day plus the lookback), not the history.",
        "",
        "| target | measured | verdict |",
        "|---|---|---|",
        f"| flat growth: {longest}-day wall ≤ {FLAT_GROWTH}x {shortest}-day wall | {ratio:.2f}x | "
        f"{_verdict(ratio <= FLAT_GROWTH)} |",
        "",
        "| history days | bronze rows | wall s | × shortest | validate-input s | recompute s | validate-views s "
        "| publish s | maintain s |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for point in points:
        steps = point["night"]["steps"]
        cells = [f"{steps.get(step, {}).get('seconds', float('nan')):.1f}" for step in _STEP_NAMES]
        wall = point["night"]["wall_s"]
        lines.append(
            f"| {point['lake']['history_days']} | {point['lake']['bronze_rows']:,} | {wall:.1f} | "
            f"{wall / base:.2f} | " + " | ".join(cells) + " |"
        )
    lines.append(_GROWTH_END)
    return "\n".join(lines) + "\n"


_STEP_NAMES = STEPS


def write_block(path: Path, block: str, begin: str, end: str, after: str | None = None) -> None:
    """Replace the block between ``begin`` and ``end`` in ``path``; a new block goes after the ``after`` marker
    (the end of the Spark vs DuckDB block), else at the end. Other sections are left as they are."""
    text = path.read_text() if path.exists() else "# Benchmarks\n\n"
    if begin in text and end in text:
        head, rest = text.split(begin, 1)
        text = head + block.rstrip("\n") + rest.split(end, 1)[1]
    elif after and after in text:
        head, rest = text.split(after, 1)
        text = head + after + "\n\n" + block.rstrip("\n") + rest
    else:
        text = text.rstrip("\n") + "\n\n" + block
    path.write_text(text)


def _write_benchmarks(path: Path, section: str) -> None:
    write_block(path, section, _MARK_BEGIN, _MARK_END)


def _growth_points(root: Path, days: Sequence[int], events_per_day: int) -> list[dict[str, Any]]:
    points = []
    for history in days:
        print(f"nightly run over {history} day(s) of history ({events_per_day:,} events a day) ...", file=sys.stderr)
        point = nightly_on_history(root, history, events_per_day)
        print(f"  {history} day(s): wall {point['night']['wall_s']} s", file=sys.stderr, flush=True)
        points.append(point)
    return points


def _compare(args: argparse.Namespace, root: Path, lake: str) -> dict[str, Any]:
    common = ["--events", str(args.events), "--days", str(args.days), "--seed", str(args.seed), "--root", str(root)]
    marker = root / "generated.json"
    previous = json.loads(marker.read_text()) if marker.exists() else {}
    if args.reuse and (previous.get("events"), previous.get("days")) == (args.events, args.days):
        generated = previous
        print(f"reusing {args.events:,} generated events in {lake}", file=sys.stderr)
    else:
        print(f"generating {args.events:,} events into {lake} ...", file=sys.stderr, flush=True)
        generated, _, _ = _measured(["generate", *common])
        marker.write_text(json.dumps(generated))
    print("timing Spark recompute ...", file=sys.stderr, flush=True)
    spark, spark_wall, spark_peak = _measured(["spark", *common])
    print(f"  spark: {spark}", file=sys.stderr)
    print("timing DuckDB ...", file=sys.stderr, flush=True)
    duck, duck_wall, duck_peak = _measured(["duckdb", *common])
    print(f"  duckdb: {duck}", file=sys.stderr)
    return {
        "generate": generated,
        "spark": {**spark, "wall_s": spark_wall, "peak_rss_gib": spark_peak / 2**30},
        "duckdb": {**duck, "wall_s": duck_wall, "peak_rss_gib": duck_peak / 2**30},
        "same_results": _same(spark["checks"], duck["checks"]),
        "ratio": spark["recompute_s"] / duck["compute_s"] if duck["compute_s"] else float("nan"),
    }


def _days_list(text: str) -> list[int]:
    days = sorted({int(part) for part in text.split(",") if part.strip()})
    if not days or days[0] < 1:
        raise argparse.ArgumentTypeError(f"history days must be positive integers, comma-separated, got {text!r}")
    return days


def main(argv: Sequence[str] | None = None) -> int:
    from benchmarks.machine import OtherLoad

    parser = argparse.ArgumentParser(prog="python -m benchmarks.batch", description=__doc__.splitlines()[0])
    parser.add_argument(
        "mode", nargs="?", default="all", choices=["all", "generate", "spark", "duckdb", "nightly", "growth"]
    )
    parser.add_argument("--events", type=int, default=10_000_000)
    parser.add_argument("--days", type=int, default=3)
    parser.add_argument("--seed", type=int, default=5)
    parser.add_argument("--root", default="var/bench", help="scratch folder (a lake of its own)")
    parser.add_argument("--reuse", action="store_true", help="keep an existing generated bronze table")
    parser.add_argument("--nightly-events", type=int, default=6_000, help="events of the nightly run's day")
    parser.add_argument("--growth-days", type=_days_list, default=[1, 10, 30], help="history days, e.g. 1,10,30")
    parser.add_argument("--output", default="BENCHMARKS.md")
    parser.add_argument("--json", type=Path, default=None, help="also write the result as JSON to this file")
    args = parser.parse_args(argv)
    root = Path(args.root).resolve()
    lake = str(root / "lake")
    if args.mode == "generate":
        print(json.dumps(generate(lake, args.events, args.days, args.seed)))
        return 0
    if args.mode == "spark":
        print(json.dumps(run_spark(lake, args.days)))
        return 0
    if args.mode == "duckdb":
        print(json.dumps(run_duckdb(lake, args.days, str(root / "duckdb"))))
        return 0

    root.mkdir(parents=True, exist_ok=True)
    result: dict[str, Any] = {"mode": args.mode, "machine": _machine()}
    with OtherLoad() as load:
        if args.mode == "all":
            result.update(_compare(args, root, lake))
        if args.mode in ("all", "growth"):
            result["growth"] = _growth_points(root, args.growth_days, args.nightly_events)
        if args.mode == "nightly" or (args.mode == "all" and 1 not in args.growth_days):
            result["nightly"] = _growth_points(root, [1], args.nightly_events)[0]
        elif args.mode == "all":
            result["nightly"] = next(p for p in result["growth"] if p["lake"]["history_days"] == 1)
    result["load"] = load.result()
    result["measured_at"] = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    if "growth" in result:
        result["growth_ratio"] = growth_ratio(result["growth"])
    (root / f"result-{args.mode}.json").write_text(json.dumps(result, indent=2))
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(result, indent=2))
    output = Path(args.output)
    if "spark" in result:
        section = _markdown(result)
        _write_benchmarks(output, section)
        print(section)
    if "nightly" in result:
        section = _nightly_markdown(result)
        write_block(output, section, _NIGHTLY_BEGIN, _NIGHTLY_END, after=_MARK_END)
        print(section)
    if "growth" in result:
        section = _growth_markdown(result)
        write_block(output, section, _GROWTH_BEGIN, _GROWTH_END, after=_NIGHTLY_END)
        print(section)
    return 0 if result.get("same_results", True) else 1


def _same(left: dict[str, dict[str, str]], right: dict[str, dict[str, str]]) -> bool:
    from decimal import Decimal

    for grain, values in left.items():
        for key, value in values.items():
            if Decimal(value) != Decimal(right[grain][key]):
                print(f"mismatch {grain}.{key}: spark {value} duckdb {right[grain][key]}", file=sys.stderr)
                return False
    return True


if __name__ == "__main__":
    raise SystemExit(main())
