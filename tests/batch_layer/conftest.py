"""Helpers of the batch-layer tests: tiny bronze tables written directly, and an independent expected answer.

The expected views are computed here in plain Python with Decimal from the generator's own event dicts, with no
Spark and no project metric code, so a test compares two independent computations.
"""

from __future__ import annotations

from collections import defaultdict
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest

from batch_layer.interval import BatchInterval
from batch_layer.job import STEPS, BatchRun, run_steps
from contracts.settings import Settings
from contracts.tables import TABLE_SCHEMAS
from event_generator.generator import GeneratorConfig, generate

DAY = datetime(2026, 1, 5, tzinfo=UTC)
_GRAIN_SECONDS = {"minute": 60, "hour": 3600, "day": 86400}


def lake_settings(settings: Settings, test_root: Path, name: str) -> Settings:
    """The session's settings with a lake of its own (one per test module)."""
    return settings.model_copy(
        update={"lake_root": str(test_root / name / "lake"), "checkpoint_root": str(test_root / name / "checkpoints")}
    )


def two_day_lake(spark, settings: Settings, test_root: Path, name: str, seed: int, count: int):  # type: ignore[no-untyped-def]
    """(settings, Lake, rows): a lake of its own whose bronze holds ``count`` generated events on DAY and as many
    on the day after (seeds ``seed`` and ``seed + 1``), from 01:00."""
    from contracts.tables import Lake

    lake_config = lake_settings(settings, test_root, name)
    lake = Lake(lake_config.lake_root, lake_config.checkpoint_root)
    rows = [
        row
        for offset in (0, 1)
        for row in generated_events(seed + offset, count, DAY + timedelta(days=offset, hours=1), rate=0.01)
    ]
    write_bronze(spark, lake.bronze_events, rows)
    return lake_config, lake, rows


def generated_events(seed: int, count: int, start: datetime, rate: float) -> list[dict]:
    """Generator events as bronze would hold them: duplicates re-sent, late ones ingested late, Kafka offsets."""
    config = GeneratorConfig(
        seed=seed,
        count=count,
        start=start,
        rate=rate,
        products=6,
        users=40,
        late_ratio=0.08,
        late_minutes=90,
        duplicate_ratio=0.08,
    )
    rows = []
    for offset, record in enumerate(generate(config)):
        event = dict(record.event or {})
        event_time = datetime.fromisoformat(str(event["event_time"]).replace("Z", "+00:00"))
        arrival = event_time + (timedelta(minutes=90) if record.kind == "late" else timedelta(seconds=1))
        if record.kind == "duplicate":
            arrival += timedelta(seconds=5)
        rows.append(
            {
                **event,
                "event_time": event_time,
                "unit_price": Decimal(str(event["unit_price"])) if event["unit_price"] is not None else None,
                "kafka_topic": "retail.events",
                "kafka_partition": offset % 3,
                "kafka_offset": offset,
                "kafka_timestamp": arrival,
                "ingest_time": arrival,
                "event_date": event_time.date(),
                "kind": record.kind,
            }
        )
    return rows


def write_bronze(spark, path: str, rows: list[dict]) -> None:  # type: ignore[no-untyped-def]
    """Append rows to bronze/events the way the speed layer lays it out (partitioned by event_date)."""
    columns = [part.strip().split(" ")[0] for part in _split(TABLE_SCHEMAS["bronze/events"])]
    frame = spark.createDataFrame([tuple(row.get(c) for c in columns) for row in rows], TABLE_SCHEMAS["bronze/events"])
    (frame.write.format("delta").mode("append").partitionBy("event_date").option("delta.appendOnly", "true").save(path))


def write_bronze_commits(path: str, rows: list[dict], per_commit: int = 1) -> int:
    """Append rows to bronze/events with delta-rs, ``per_commit`` rows per commit (many small files, like the
    bronze query's micro-batches, in milliseconds instead of a Spark job each); returns the commits."""
    import pyarrow as pa
    from deltalake import write_deltalake

    kinds = {"int": pa.int32(), "bigint": pa.int64(), "string": pa.string(), "date": pa.date32()}
    kinds.update({"timestamp": pa.timestamp("us", tz="UTC"), "decimal(18,2)": pa.decimal128(18, 2)})
    fields = [part.strip().split(" ", 1) for part in _split(TABLE_SCHEMAS["bronze/events"])]
    schema = pa.schema([(name, kinds[kind.strip()]) for name, kind in fields])
    commits = 0
    for start in range(0, len(rows), per_commit):
        chunk = rows[start : start + per_commit]
        table = pa.Table.from_pylist([{name: row.get(name) for name, _ in fields} for row in chunk], schema=schema)
        write_deltalake(
            path, table, mode="append", partition_by=["event_date"], configuration={"delta.appendOnly": "true"}
        )
        commits += 1
    return commits


def _split(ddl: str) -> list[str]:
    import re

    return re.split(r",(?![^(]*\))", ddl)


def expected_views(rows: list[dict], start: datetime, end: datetime) -> dict[str, dict[tuple, tuple]]:
    """Plain-Python views: {grain: {(bucket_start, dimension, key): (revenue, orders, units, distinct_users)}}."""
    first_copy: dict[str, dict] = {}
    for row in sorted(rows, key=lambda r: (r["ingest_time"], r["kafka_offset"])):
        first_copy.setdefault(row["event_id"], row)
    events = [r for r in first_copy.values() if start <= r["event_time"] < end]
    views: dict[str, dict[tuple, tuple]] = {}
    for grain, seconds in _GRAIN_SECONDS.items():
        revenue: dict[tuple, Decimal] = defaultdict(lambda: Decimal("0.00"))
        orders: dict[tuple, int] = defaultdict(int)
        units: dict[tuple, int] = defaultdict(int)
        users: dict[tuple, set] = defaultdict(set)
        for event in events:
            if event["event_type"] == "restock":
                continue
            epoch = int(event["event_time"].timestamp())
            bucket = datetime.fromtimestamp(epoch - epoch % seconds, tz=UTC)
            for dimension, key in (("total", "all"), ("product", event["product_id"]), ("category", event["category"])):
                cell = (bucket, dimension, key)
                users[cell].add(event["user_id"])
                revenue[cell] += Decimal("0.00")
                if event["event_type"] == "purchase":
                    revenue[cell] += event["quantity"] * event["unit_price"]
                    orders[cell] += 1
                    units[cell] += event["quantity"]
        views[grain] = {cell: (revenue[cell], orders[cell], units[cell], len(users[cell])) for cell in users}
    return views


def actual_view(spark, store, grain: str, version: int | None = None) -> dict[tuple, tuple]:  # type: ignore[no-untyped-def]
    rows = store.read_view(grain, version).collect()
    return {
        (
            r.bucket_start.astimezone(UTC) if r.bucket_start.tzinfo else r.bucket_start.astimezone().astimezone(UTC),
            r.dimension,
            r.key,
        ): (r.revenue, r.orders, r.units, r.distinct_users)
        for r in rows
    }


def batch_run(spark, settings: Settings, day: datetime, run_id: str, lookback_days: int = 1) -> BatchRun:  # type: ignore[no-untyped-def]
    """The job's BatchRun for one UTC day, to call its steps one by one."""
    return BatchRun(
        run_id=run_id, interval=BatchInterval.for_date(day.date(), lookback_days), settings=settings, spark=spark
    )


def run_batch(
    spark,
    settings: Settings,
    day: datetime,
    run_id: str,
    lookback_days: int = 1,  # type: ignore[no-untyped-def]
    steps: tuple[str, ...] = STEPS[:4],
) -> dict:
    interval = BatchInterval.for_date(day.date(), lookback_days)
    return run_steps(BatchRun(run_id=run_id, interval=interval, settings=settings, spark=spark), steps)


@pytest.fixture(scope="session")
def batch_env() -> None:
    import os

    os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")
