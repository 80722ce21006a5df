"""Maintenance while the speed layer writes: neither stops the other.

A writer thread does what the speed layer's queries do, with the speed layer's own sink functions: blind appends
to bronze (``append_once``, the bronze query), MERGEs into speed/sales_minute that rewrite the rows OPTIMIZE would
compact (``merge_once``, the durable query), and driver heartbeats in speed/progress. Meanwhile the batch layer's
maintenance compacts the closed bronze partitions (never in conflict with blind appends) and vacuums. Every
append and MERGE lands, maintenance finishes, and no table's metadata is altered (the VACUUM retention comes from
the table property; a table created without the longer retention asked for is not vacuumed, and the report says
so).

The speed table is compacted beside the MERGEs: when OPTIMIZE commits first, delta-spark 4.4 raises
``ConcurrentAppendException`` (not a subclass of ``DeltaConcurrentModificationException``) in the MERGE, and
``merge_once`` redoes it (it retries every Delta conflict class; the transaction id keeps the redo exactly-once).
A second case shows the same with no speed layer heartbeat (maintenance of a stopped speed layer).
"""

from __future__ import annotations

import threading
import time
from datetime import datetime, timedelta
from decimal import Decimal

import pyarrow as pa
import pytest
from deltalake import write_deltalake

from batch_layer.maintenance import MIN_FILES_TO_COMPACT, maintain
from batch_layer.store import BatchStore
from contracts.tables import BRONZE_COLUMNS, TABLE_SCHEMAS, Lake
from speed_layer.sinks import append_once, ensure_speed_tables, merge_once
from tests.batch_layer.conftest import DAY, generated_events, lake_settings, write_bronze_commits

TODAY = DAY + timedelta(days=3)  # DAY and DAY + 1 are closed partitions, TODAY is open
_ON = "t.bucket_start = s.bucket_start AND t.dimension = s.dimension AND t.key = s.key"


def _minute_rows(spark, keys: list[str], value: int):  # type: ignore[no-untyped-def]
    rows = [
        (DAY, DAY + timedelta(minutes=1), "product", key, Decimal(value), value, value, b"", value, datetime.now())
        for key in keys
    ]
    return spark.createDataFrame(rows, TABLE_SCHEMAS["speed/sales_minute"])


def _heartbeat(lake: Lake) -> None:
    """A driver heartbeat in speed/progress, as the speed layer's ProgressRecorder writes every flush."""
    from speed_layer.progress import DRIVER_ROW, PROGRESS_ARROW_SCHEMA, status_row

    write_deltalake(
        lake.table("speed/progress"),
        pa.Table.from_pylist([status_row(DRIVER_ROW)], schema=PROGRESS_ARROW_SCHEMA),
        mode="append",
        schema_mode="merge",
    )


def _lake(spark, settings, test_root, name: str):  # type: ignore[no-untyped-def]
    batch_settings = lake_settings(settings, test_root, name)
    lake = Lake(batch_settings.lake_root, batch_settings.checkpoint_root)
    ensure_speed_tables(spark, lake)  # bronze append-only, as the speed layer creates it
    closed = generated_events(seed=61, count=2 * MIN_FILES_TO_COMPACT, start=DAY + timedelta(hours=1), rate=0.01)
    write_bronze_commits(lake.bronze_events, closed)  # one small file per micro-batch in closed partitions
    keys = [f"p{n:04d}" for n in range(MIN_FILES_TO_COMPACT + 2)]
    for n, key in enumerate(keys):  # one small file per MERGE of the durable query
        merge_once(_minute_rows(spark, [key], 1), lake.table("speed/sales_minute"), _ON, "setup-durable", n)
    return batch_settings, lake, keys


def _beside_the_speed_layer(spark, lake: Lake, batch_settings, keys: list[str], merge, live: bool):  # type: ignore[no-untyped-def]
    """Run maintenance while a thread appends to bronze and MERGEs the speed table; returns (report, batches)."""
    session = spark.newSession()  # like a streaming query's cloned session: its own SQL conf (txn ids)
    open_rows = generated_events(seed=62, count=400, start=TODAY + timedelta(hours=3), rate=0.01)
    done = threading.Event()
    errors: list[BaseException] = []
    batches = {"bronze": 0, "durable": 0}

    def speed_layer() -> None:
        batch = 0
        try:
            while batch < 3 or not done.is_set():
                if live:
                    _heartbeat(lake)
                chunk = open_rows[(batch * 4) % 400 : (batch * 4) % 400 + 4]
                frame = session.createDataFrame(
                    [tuple(row.get(c) for c in BRONZE_COLUMNS) for row in chunk], TABLE_SCHEMAS["bronze/events"]
                )
                append_once(frame, lake.bronze_events, "live-bronze", batch)
                batches["bronze"] += 1
                # the durable query rewrites every key's row: the files OPTIMIZE compacts
                merge(_minute_rows(session, keys, batch + 2), lake.table("speed/sales_minute"), "live", batch)
                batches["durable"] += 1
                batch += 1
                time.sleep(0.2)
        except BaseException as error:  # noqa: BLE001 - reported by the test
            errors.append(error)

    if live:
        _heartbeat(lake)
    writer = threading.Thread(target=speed_layer, name="speed-layer", daemon=True)
    writer.start()
    try:
        report = maintain(
            spark,
            lake,
            today=TODAY.date(),
            closed_after_days=1,
            retention_hours=336,  # longer than the tables' default week: never set on a live table
            optimize_speed_tables=True,
            settings=batch_settings,
        )
    finally:
        done.set()
        writer.join(timeout=600)
    assert not writer.is_alive()
    assert errors == [], errors
    # the speed layer kept going: every append and every MERGE landed
    bronze = spark.read.format("delta").load(lake.bronze_events)
    assert bronze.where(f"event_date = DATE'{TODAY:%Y-%m-%d}'").count() == 4 * batches["bronze"]
    values = {r.key: r.orders for r in spark.read.format("delta").load(lake.table("speed/sales_minute")).collect()}
    assert values == dict.fromkeys(keys, batches["durable"] + 1)
    # maintenance compacted the closed bronze partitions beside the appends, and altered no table
    assert report["bronze/events"]["optimize"]["files_removed"] >= MIN_FILES_TO_COMPACT
    assert "shorter than 336 h" in report["bronze/events"]["vacuum"]
    store = BatchStore(spark, lake, batch_settings)
    for name in ("bronze/events", "speed/sales_minute"):
        operations = {entry.get("operation") for entry in store.delta_rs(lake.table(name)).history()}
        assert not operations & {"SET TBLPROPERTIES", "ALTER TABLE SET TBLPROPERTIES"}, (name, operations)
    assert dict(store.delta_rs(lake.bronze_events).metadata().configuration) == {"delta.appendOnly": "true"}
    return report, batches


def _speed_layers_merge(frame, path: str, app_id: str, batch: int) -> None:  # type: ignore[no-untyped-def]
    merge_once(frame, path, _ON, app_id, batch)  # exactly what the durable query runs


@pytest.mark.parametrize("live", [True, False], ids=["speed-layer-running", "speed-layer-stopped"])
def test_maintenance_beside_the_speed_layer_stops_neither_and_compacts(spark, settings, test_root, batch_env, live):  # type: ignore[no-untyped-def]
    batch_settings, lake, keys = _lake(spark, settings, test_root, f"batch_live_{live}")
    report, batches = _beside_the_speed_layer(spark, lake, batch_settings, keys, _speed_layers_merge, live=live)
    print(f"\n[maintenance beside the speed layer, live={live}] writer batches {batches}; report {report}")
    assert report["_speed_layer"]["running"] is live
    speed = report["speed/sales_minute"]["optimize"]
    assert isinstance(speed, dict) and speed["files_removed"] >= MIN_FILES_TO_COMPACT, speed
