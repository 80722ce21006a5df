"""The serving layer's I/O edge: Delta tables read without a JVM (delta-rs), kept open and cached per version.

Every table is opened once and refreshed with ``update_incremental()`` (a log listing, well under a millisecond
when nothing changed). What a query reads is materialised once per (table, version, dimension) into an
``IndexedRows`` (rows sorted by key and bucket, with a per-key index), so a query at an unchanged version is a
binary search plus a slice. Batch views are pinned at the versions recorded in batch/runs; a speed view is read at
its newest version. Rows are read with ``DeltaTable.scan`` (delta-rs' DataFusion engine), which also handles
deletion vectors, unlike pyarrow datasets built from the file list.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Hashable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from serving_layer.errors import ViewUnreadable
from serving_layer.views import TIMESTAMP

__all__ = [
    "FileRowCache",
    "IndexedRows",
    "LayeredRows",
    "OpenTable",
    "SnapshotCache",
    "column_max",
    "scan",
    "sql_literal",
    "to_micros",
]

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_PLAIN_TYPES = {pa.string_view(): pa.string(), pa.binary_view(): pa.binary()}


def to_micros(moment: datetime) -> int:
    """Microseconds since the epoch of a timezone-aware datetime (the Arrow timestamp[us] value), exactly."""
    return (moment - _EPOCH) // timedelta(microseconds=1)


def sql_literal(value: str | datetime) -> str:
    """A DataFusion SQL literal: a quoted string (quotes doubled) or a UTC timestamp string."""
    if isinstance(value, datetime):
        return "'" + value.isoformat() + "'"
    return "'" + value.replace("'", "''") + "'"


class OpenTable:
    """One Delta table, opened lazily (it may not exist yet) and kept open.

    Example::

        runs = OpenTable("var/lake/batch/runs")
        table = runs.latest()            # refreshed DeltaTable, or None while nobody has written it
        pinned = runs.at_version(3)      # a second handle pinned at version 3
    """

    def __init__(self, uri: str, storage_options: dict[str, str] | None = None, min_refresh_s: float = 0.0) -> None:
        self.uri = uri
        self._storage_options = storage_options
        self._min_refresh_s = min_refresh_s
        self._refreshed_at = float("-inf")
        self._latest: Any = None
        self._pinned: Any = None

    def _open(self, version: int | None = None) -> Any:
        from deltalake import DeltaTable

        return DeltaTable(self.uri, version=version, storage_options=self._storage_options)

    def latest(self) -> Any | None:
        """The table at its newest version (refreshed incrementally), or None when it does not exist yet.

        Within ``min_refresh_s`` of the previous refresh the same version is returned without listing the log,
        so the several queries of one dashboard refresh cost one refresh per table.
        """
        from deltalake import DeltaTable

        now = time.monotonic()
        if now - self._refreshed_at < self._min_refresh_s:
            return self._latest
        if self._latest is None:
            if not DeltaTable.is_deltatable(self.uri, storage_options=self._storage_options):
                return None
            self._latest = self._open()
        else:
            self._latest.update_incremental()
        self._refreshed_at = now
        return self._latest

    def at_version(self, version: int) -> Any:
        """The table pinned at ``version`` (one handle, moved with load_as_version when the version changes)."""
        if self._pinned is None:
            self._pinned = self._open(version)
        elif self._pinned.version() != version:
            self._pinned.load_as_version(version)
        return self._pinned


def scan(table: Any, columns: list[str] | None, predicate: str | None, label: str) -> pa.Table:
    """Rows of ``table`` (a DeltaTable at its loaded version) as a pyarrow Table."""
    try:
        rows = pa.table(table.scan(columns=columns, predicate=predicate))
    except Exception as error:  # delta-rs raises several exception types; name the table in one message
        raise ViewUnreadable(
            f"cannot read {label} ({table.table_uri}) at version {table.version()}: {error}"
        ) from error
    # DataFusion yields string_view / binary_view columns, which pyarrow cannot sort or group: use the plain types
    plain = pa.schema([field.with_type(_PLAIN_TYPES.get(field.type, field.type)) for field in rows.schema])
    return rows if plain == rows.schema else rows.cast(plain)


def column_max(table: Any, column: str) -> Any:
    """Largest value of ``column`` over the table's live files, from the Delta log's file statistics (no scan).

    Returns None when the table has no files or no statistics for the column.
    """
    actions = pa.table(table.get_add_actions(flatten=True))
    name = f"max.{column}"
    if actions.num_rows == 0 or name not in actions.column_names:
        return None
    return pc.max(actions[name]).as_py()


class FileRowCache:
    """Rows of a table's data files, each file read once: a new table version costs only its new files.

    Delta data files are immutable and uniquely named, so a version's rows are the union of its live files' rows.
    A streaming table gains a few small files per micro-batch (and a MERGE rewrites only the files it touches),
    so refreshing after a commit reads kilobytes instead of the whole view. On a local lake the file list comes
    from the snapshot (``file_uris``) and only new files are opened; on an object store through delta-rs'
    pyarrow dataset. Tables this cannot serve exactly (deletion vectors, column mapping, partition columns) are
    read whole with ``scan`` instead.

    Example::

        cache = FileRowCache()
        sql, expression = "dimension = 'total'", ds.field("dimension") == "total"
        files = cache.read_files(table, ["bucket_start", "key"], sql, expression)   # {path: rows}
    """

    def __init__(self, max_filters: int = 8) -> None:
        self._by_filter: OrderedDict[str, dict[str, pa.Table]] = OrderedDict()
        self._max_filters = max_filters
        self.files_read = 0

    def read(self, table: Any, columns: list[str], sql: str, expression: Any, label: str = "table") -> pa.Table:
        """All matching rows of ``table`` at its loaded version, as one table (see ``read_files``)."""
        files = self.read_files(table, columns, sql, expression, label)
        parts = [rows for rows in files.values() if rows.num_rows] or list(files.values())[:1]
        if not parts:
            return _plain(pa.schema(table.schema().to_arrow())).empty_table().select(columns)
        return pa.concat_tables(parts)

    def read_files(
        self, table: Any, columns: list[str], sql: str, expression: Any, label: str = "table"
    ) -> dict[str, pa.Table]:
        """Matching rows of ``table`` at its loaded version, per live data file (path -> rows).

        The filter is given twice: as DataFusion SQL (the key of the cached file rows, and the fallback's
        predicate) and as the equivalent pyarrow dataset expression.
        """
        protocol = table.protocol()
        features = set(protocol.reader_features or ())
        if features & {"deletionVectors", "columnMapping"} or table.metadata().partition_columns:
            return {f"{table.table_uri}@{table.version()}": scan(table, columns, sql, label)}
        known = self._by_filter.pop(sql, {})
        live: dict[str, pa.Table] = {}
        for path, fragment, schema in self._fragments(table, known):
            rows = known.get(path)
            if rows is None:
                rows = fragment.to_table(schema=schema, columns=columns, filter=expression)
                rows = rows.cast(_plain(rows.schema))
                self.files_read += 1
            live[path] = rows
        self._by_filter[sql] = live
        while len(self._by_filter) > self._max_filters:
            self._by_filter.popitem(last=False)
        return live

    @staticmethod
    def _fragments(table: Any, known: dict[str, pa.Table]) -> Iterator[tuple[str, Any, pa.Schema | None]]:
        import pyarrow.dataset as ds

        uris = table.file_uris()
        if uris and all(uri.startswith("/") for uri in uris):
            # local lake: listing the snapshot's files costs microseconds; only unknown files are opened
            from pyarrow.fs import LocalFileSystem

            parquet, local = ds.ParquetFileFormat(), LocalFileSystem()
            schema = pa.schema(table.schema().to_arrow()) if any(uri not in known for uri in uris) else None
            for uri in uris:
                yield uri, (None if uri in known else parquet.make_fragment(uri, filesystem=local)), schema
            return
        dataset = table.to_pyarrow_dataset()
        for fragment in dataset.get_fragments():
            yield fragment.path, fragment, dataset.schema


def _plain(schema: pa.Schema) -> pa.Schema:
    return pa.schema([field.with_type(_PLAIN_TYPES.get(field.type, field.type)) for field in schema])


@dataclass(frozen=True)
class LayeredRows:
    """Speed rows as one big sorted ``base`` plus the few files committed since it was built (LSM-style).

    A new speed version adds its files to ``recent``; the base is rebuilt (one sort) only when more than
    ``max_recent`` files piled up or a file of the base was removed (a MERGE rewrote it, or compaction).
    Rows come back unsorted across layers: every consumer (merge, roll-up, trend) orders or groups them itself.
    """

    base: IndexedRows
    base_files: frozenset[str]
    recent: tuple[tuple[str, IndexedRows], ...] = ()

    @classmethod
    def update(cls, previous: LayeredRows | None, files: dict[str, pa.Table], max_recent: int = 32) -> LayeredRows:
        """The layers for a new version whose live files are ``files`` (path -> rows), reusing ``previous``."""
        if previous is not None and previous.base_files <= files.keys():
            fresh = [path for path in files if path not in previous.base_files]
            if len(fresh) <= max_recent:
                known = dict(previous.recent)
                recent = tuple((path, known.get(path) or IndexedRows.build(files[path])) for path in fresh)
                return cls(previous.base, previous.base_files, recent)
        parts = [rows for rows in files.values() if rows.num_rows] or list(files.values())[:1]
        return cls(IndexedRows.build(pa.concat_tables(parts)), frozenset(files))

    def select(self, key: str | None, start_us: int, end_us: int) -> pa.Table:
        """Rows of one key (without the key column) or of every key in [start_us, end_us), any order."""
        parts = [self.base.select(key, start_us, end_us)]
        parts += [rows.select(key, start_us, end_us) for _, rows in self.recent]
        parts = [part for part in parts if part.num_rows] or parts[:1]
        return parts[0] if len(parts) == 1 else pa.concat_tables(parts)


@dataclass(frozen=True)
class IndexedRows:
    """Rows sorted by (key, bucket_start) with the row range of every key: slicing is a binary search.

    Example::

        rows = IndexedRows.build(table)              # table has key and bucket_start columns
        rows.select("p-1", start_us, end_us)          # rows of key p-1 in [start, end)
        rows.select(None, start_us, end_us)           # every key, with its key column
    """

    table: pa.Table
    starts: np.ndarray
    ranges: dict[str, tuple[int, int]]

    @classmethod
    def build(cls, table: pa.Table) -> IndexedRows:
        ordered = table.sort_by([("key", "ascending"), ("bucket_start", "ascending")])
        starts = ordered["bucket_start"].cast(TIMESTAMP).cast(pa.int64()).to_numpy(zero_copy_only=False)
        ranges: dict[str, tuple[int, int]] = {}
        if ordered.num_rows:
            keys = ordered["key"].combine_chunks()
            changes = np.flatnonzero(pc.not_equal(keys[1:], keys[:-1]).to_numpy(zero_copy_only=False)) + 1
            bounds = np.concatenate([[0], changes, [ordered.num_rows]])
            firsts = keys.take(pa.array(bounds[:-1])).to_pylist()
            ranges = {key: (int(lo), int(hi)) for key, lo, hi in zip(firsts, bounds[:-1], bounds[1:], strict=True)}
        return cls(ordered, np.asarray(starts, dtype=np.int64), ranges)

    def select(self, key: str | None, start_us: int, end_us: int) -> pa.Table:
        """Rows of one key (without the key column) or of every key (with it) in [start_us, end_us)."""
        if key is None:
            mask = (self.starts >= start_us) & (self.starts < end_us)
            return self.table.filter(pa.array(mask))
        lo, hi = self.ranges.get(key, (0, 0))
        section = self.starts[lo:hi]
        first = lo + int(np.searchsorted(section, start_us, side="left"))
        last = lo + int(np.searchsorted(section, end_us, side="left"))
        return self.table.slice(first, max(0, last - first)).drop_columns(["key"])


class SnapshotCache:
    """A small thread-safe LRU of values built from a table version (nothing is shared across versions)."""

    def __init__(self, max_entries: int = 24) -> None:
        self._entries: OrderedDict[Hashable, Any] = OrderedDict()
        self._max = max_entries
        self._lock = threading.Lock()

    def get(self, key: Hashable, build: Callable[[], Any]) -> Any:
        with self._lock:
            if key in self._entries:
                self._entries.move_to_end(key)
                return self._entries[key]
        value = build()  # outside the lock: a slow build must not stall readers of other entries
        with self._lock:
            self._entries[key] = value
            self._entries.move_to_end(key)
            while len(self._entries) > self._max:
                self._entries.popitem(last=False)
        return value

    def __len__(self) -> int:
        return len(self._entries)
