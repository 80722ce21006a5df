"""The serving layer on real Delta tables written by Spark, read back with delta-rs (no JVM in the reader).

The scenario (tests/serving_layer/scenario.py): W = 2026-01-06T00:00 from a validated run; the speed layer missed
a late purchase at 23:58 that the batch has; a later run rewrote the views and failed.
"""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import timedelta
from decimal import Decimal

from pyspark.sql import functions as F

from serving_layer.service import ServingLayer
from tests.serving_layer.lake_builder import LakeBuilder, purchase
from tests.serving_layer.scenario import AT, EVENTS, D, W, at


def money(rows: list[dict]) -> Decimal:
    return sum((Decimal(r["revenue"]) for r in rows), Decimal("0.00"))


def test_minute_rows_switch_from_batch_to_speed_at_w(scenario_lake: LakeBuilder) -> None:
    serving = ServingLayer(scenario_lake.lake.root)
    result = serving.sales(at(117), at(122), "minute")
    rows = result.rows.to_pylist()
    assert result.high_water_mark == W
    assert [(r["bucket_start"], str(r["revenue"]), r["source"]) for r in rows] == [
        (at(118), "100.00", "batch"),  # the late purchase: only the batch layer has it
        (at(119), "1.01", "batch"),
        (at(120), "7.50", "speed"),
        (at(121), "0.99", "speed"),
    ]
    assert result.versions["speed"] == 0


def test_hour_rows_roll_speed_minutes_up_with_spark_sketches(scenario_lake: LakeBuilder, spark) -> None:  # type: ignore[no-untyped-def]
    serving = ServingLayer(scenario_lake.lake.root)
    rows = serving.sales(AT, W + timedelta(hours=1), "hour").rows.to_pylist()
    assert [(r["bucket_start"], str(r["revenue"]), r["orders"], r["units"], r["source"]) for r in rows] == [
        (AT, "20.00", 1, 2, "batch"),
        (AT + timedelta(hours=1), "106.56", 3, 3, "batch"),
        (W, "8.49", 2, 4, "speed"),
    ]
    assert rows[1]["distinct_users"] == 4  # exact: u2, u3, u4, u7
    # the speed hour's users come from a datasketches union of Spark's minute sketches: Spark agrees
    spark_estimate = (
        spark.read.format("delta")
        .load(scenario_lake.lake.table("speed/sales_minute"))
        .where((F.col("dimension") == "total") & (F.col("bucket_start") >= W))
        .agg(F.hll_sketch_estimate(F.hll_union_agg("users_sketch")).alias("users"))
        .first()["users"]
    )
    assert rows[2]["distinct_users"] == spark_estimate == 3  # u5, u1, u6


def test_day_rows_and_product_and_category_filters(scenario_lake: LakeBuilder) -> None:
    serving = ServingLayer(scenario_lake.lake.root)
    days = serving.sales(D, W + timedelta(days=1), "day").rows.to_pylist()
    assert [(r["bucket_start"], str(r["revenue"]), r["source"]) for r in days] == [
        (D, "126.56", "batch"),
        (W, "8.49", "speed"),
    ]
    p1 = serving.sales(D, W + timedelta(days=1), "minute", dimension="product", key="p-1").rows.to_pylist()
    assert [(r["bucket_start"], str(r["revenue"]), r["source"]) for r in p1 if r["orders"]] == [
        (at(0), "20.00", "batch"),
        (at(119), "1.01", "batch"),
        (at(121), "0.99", "speed"),
    ]
    books = serving.sales(AT, W + timedelta(hours=1), "hour", dimension="category", key="books").rows
    assert money(books.to_pylist()) == Decimal("5.55") + Decimal("100.00") + Decimal("7.50")
    assert serving.sales(AT, W, "minute", dimension="product", key="no-such").rows.num_rows == 0
    every = serving.sales(AT, W + timedelta(hours=1), "hour", dimension="product", key=None).rows
    assert set(every["key"].to_pylist()) == {"p-1", "p-2"}
    assert money(every.to_pylist()) == Decimal("126.56") + Decimal("8.49")


def test_new_speed_version_is_picked_up_incrementally(spark, test_root) -> None:  # type: ignore[no-untyped-def]
    builder = LakeBuilder(spark, str(test_root / "serving_incremental"))
    builder.merge_speed_minutes(EVENTS)
    serving = ServingLayer(builder.lake.root)
    first = serving.sales(W, W + timedelta(hours=1), "minute")
    files_before = serving.speed_files_read
    assert files_before > 0  # Spark's files are read through the per-file cache, not the whole-table fallback
    version = builder.merge_speed_minutes([*EVENTS, purchase(9, at(121.5), "u8", "p-1", "toys", 1, "0.02")])
    second = serving.sales(W, W + timedelta(hours=1), "minute")
    assert second.versions["speed"] == version > first.versions["speed"]
    assert serving.speed_files_read > files_before  # the MERGE's rewritten files, and only those, were read
    assert money(second.rows.to_pylist()) - money(first.rows.to_pylist()) == Decimal("0.02")


def test_reader_runs_without_a_jvm(scenario_lake: LakeBuilder) -> None:
    program = f"""
import json, sys
from datetime import datetime
from serving_layer.service import ServingLayer
rows = ServingLayer({scenario_lake.lake.root!r}).sales(datetime.fromisoformat({AT.isoformat()!r}),
    datetime.fromisoformat({(W + timedelta(hours=1)).isoformat()!r}), "hour").rows.to_pylist()
print(json.dumps({{"pyspark": "pyspark" in sys.modules, "revenue": [str(r["revenue"]) for r in rows]}}))
"""
    done = subprocess.run([sys.executable, "-c", program], capture_output=True, text=True, timeout=120, check=True)
    answer = json.loads(done.stdout.strip().splitlines()[-1])
    assert answer["pyspark"] is False
    assert answer["revenue"][:2] == ["20.00", "106.56"]


def test_without_any_batch_run_everything_is_speed(spark, test_root) -> None:  # type: ignore[no-untyped-def]
    builder = LakeBuilder(spark, str(test_root / "serving_speed_only"))
    builder.merge_speed_minutes(EVENTS[:2])
    result = ServingLayer(builder.lake.root).sales(AT, W, "hour")
    assert result.high_water_mark is None
    assert [(str(r["revenue"]), r["source"]) for r in result.rows.to_pylist()] == [
        ("20.00", "speed"),
        ("5.55", "speed"),
    ]
    assert ServingLayer(str(test_root / "nothing_here")).sales(AT, W, "hour").rows.num_rows == 0


def test_tables_the_speed_layer_just_created_serve_empty_answers(spark, test_root) -> None:  # type: ignore[no-untyped-def]
    from contracts.tables import Lake
    from speed_layer.sinks import ensure_speed_tables

    lake = Lake(str(test_root / "fresh_speed_lake"), str(test_root / "fresh_speed_ck"))
    ensure_speed_tables(spark, lake)  # what `retail speed` does before its first micro-batch
    serving = ServingLayer(lake.root)
    for grain in ("minute", "hour", "day"):
        result = serving.sales(AT, W, grain)
        assert result.rows.num_rows == 0 and result.high_water_mark is None
    json.dumps(serving.health(), default=str)
