"""A new speed-view version costs only its new data files; the rows always equal a full read of that version."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pyarrow as pa
import pyarrow.dataset as ds
from deltalake import DeltaTable, write_deltalake

from serving_layer.lake import FileRowCache, LayeredRows, scan
from serving_layer.views import MONEY, TIMESTAMP

T0 = datetime(2026, 1, 5, tzinfo=UTC)
COLUMNS = ["bucket_start", "key", "revenue"]


def minute_rows(minute: int, dimension: str = "total") -> pa.Table:
    return pa.table(
        {
            "bucket_start": pa.array([T0 + timedelta(minutes=minute)], TIMESTAMP),
            "dimension": [dimension],
            "key": ["all" if dimension == "total" else "p-1"],
            "revenue": pa.array([Decimal(f"{minute}.01")], MONEY),
        }
    )


def test_appends_and_overwrites_are_read_file_by_file(tmp_path: Path) -> None:
    path = str(tmp_path / "speed")
    for minute in range(3):
        write_deltalake(path, pa.concat_tables([minute_rows(minute), minute_rows(minute, "product")]), mode="append")
    table = DeltaTable(path)
    cache = FileRowCache()
    sql, expression = "dimension = 'total'", ds.field("dimension") == "total"
    first = cache.read(table, COLUMNS, sql, expression)
    assert cache.files_read == 3 and first.num_rows == 3

    write_deltalake(path, minute_rows(3), mode="append")
    table.update_incremental()
    second = cache.read(table, COLUMNS, sql, expression)
    assert cache.files_read == 4  # only the new file
    assert second.sort_by("bucket_start").equals(scan(table, COLUMNS, sql, "speed").sort_by("bucket_start"))

    write_deltalake(path, minute_rows(9), mode="overwrite")  # every old file removed
    table.update_incremental()
    third = cache.read(table, COLUMNS, sql, expression)
    assert cache.files_read == 5
    assert third["revenue"].to_pylist() == [Decimal("9.01")]


def test_layers_add_new_files_and_rebuild_when_a_base_file_goes(tmp_path: Path) -> None:
    files = {"a": minute_rows(0), "b": minute_rows(1)}
    layers = LayeredRows.update(None, files)
    assert layers.base_files == {"a", "b"} and layers.recent == ()
    grown = LayeredRows.update(layers, {**files, "c": minute_rows(2)})
    assert grown.base is layers.base and [path for path, _ in grown.recent] == ["c"]
    everything = (0, 10**18)
    assert sorted(str(v) for v in grown.select("all", *everything)["revenue"].to_pylist()) == ["0.01", "1.01", "2.01"]
    assert "key" in grown.select(None, *everything).column_names  # every key: the key column stays
    rewritten = LayeredRows.update(grown, {"b": minute_rows(1), "c": minute_rows(2), "d": minute_rows(0)})
    assert rewritten.base is not layers.base and rewritten.recent == ()  # "a" was rewritten as "d": rebuild
    assert rewritten.select("all", *everything).num_rows == 3
    many = {f"f{i}": minute_rows(i) for i in range(40)}
    assert LayeredRows.update(layers, {**files, **many}).recent == ()  # too many new files: one rebuild
