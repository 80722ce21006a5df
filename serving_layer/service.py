"""The serving layer's query facade: merged sales, inventory, alerts and pipeline health.

One ``ServingLayer`` per process keeps every table open (delta-rs, no JVM) and answers from per-version caches.
The batch side is always Delta (the views at the versions recorded with W). The speed side is either the
compacted speed topics materialised in memory (``SpeedTopicViews``, the live source: ``from_settings`` with
``serving_speed_source = "kafka"``) or the Delta speed tables (``"delta"``, and any ``ServingLayer(lake_root)``
built without a speed source). Until a topic view has caught up with its topic (startup, broker unreachable,
topic missing) that view is answered from its Delta table. The HTTP API (serving_layer.api) and the Dash
dashboard (serving_layer.dashboard) both call it, and close it when they shut down.

Example::

    from contracts.settings import Settings
    from serving_layer.service import ServingLayer

    serving = ServingLayer.from_settings(Settings())   # starts the speed topic consumer (kafka source)
    result = serving.sales(start, end, "hour", dimension="product", key="p-0001")
    result.high_water_mark, result.rows        # W (or None) and the merged rows with their source
    result.low_water_mark                      # L: batch rows are served for buckets in [L, W) only
    serving.close()                            # stops the consumer thread
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from contracts.progress import HEARTBEAT_STALE_AFTER
from contracts.settings import Settings
from contracts.tables import RUN_SUCCEEDED, Lake
from serving_layer.errors import BadRequest
from serving_layer.lake import (
    FileRowCache,
    IndexedRows,
    LayeredRows,
    OpenTable,
    SnapshotCache,
    column_max,
    scan,
    sql_literal,
    to_micros,
)
from serving_layer.speed_topics import SalesIndex, SpeedTopicViews
from serving_layer.views import (
    DIMENSIONS,
    GRAIN_STEP,
    GRAINS,
    TIMESTAMP,
    TOTAL_KEY,
    Grain,
    batch_span,
    empty_rows,
    floor_to_grain,
    merge_views,
    reconcile,
    rollup_minutes,
)

__all__ = [
    "speed_liveness",
    "HEARTBEAT_STALE_AFTER",
    "BatchState",
    "MAX_RANGE",
    "SUCCESS_STATUSES",
    "SalesResult",
    "ServingLayer",
    "low_water_mark_of",
]

# statuses of batch/runs rows whose W and view versions may be served (compared case-insensitively)
SUCCESS_STATUSES = frozenset({RUN_SUCCEEDED})
# longest [start, end) one query may ask for, per grain: keeps every answer small enough to serve in milliseconds
MAX_RANGE: dict[str, timedelta] = {
    "minute": timedelta(days=31),
    "hour": timedelta(days=400),
    "day": timedelta(days=3660),
}
_BATCH_TABLES = {"minute": "batch/sales_minute", "hour": "batch/sales_hour", "day": "batch/sales_day"}
_VERSION_COLUMNS = {"minute": "sales_minute_version", "hour": "sales_hour_version", "day": "sales_day_version"}
_BATCH_COLUMNS = ["bucket_start", "key", "revenue", "orders", "units", "distinct_users"]
_SPEED_COLUMNS = ["bucket_start", "key", "revenue", "orders", "units", "users_sketch", "users_estimate"]
_TABLES = (
    "speed/sales_minute",
    "speed/inventory",
    "speed/alerts",
    "speed/progress",
    "batch/runs",
    *_BATCH_TABLES.values(),
)


@dataclass(frozen=True)
class BatchState:
    """What batch/runs publishes: the marks [L, W), the validated view versions recorded with W, the newest run.

    ``low_water_mark`` (L) is None when unknown: no W yet, or a run row written before the batch layer recorded L
    (batch rows are then served for every bucket before W).
    """

    high_water_mark: datetime | None = None
    run_id: str | None = None
    versions: dict[str, int] = field(default_factory=dict)
    last_run: dict[str, Any] | None = None
    runs_version: int | None = None
    low_water_mark: datetime | None = None


@dataclass(frozen=True)
class SalesResult:
    """Merged sales rows of one query and the table versions they were read at."""

    high_water_mark: datetime | None
    grain: str
    dimension: str
    key: str | None
    rows: pa.Table
    versions: dict[str, int | None]
    speed_source: str = "delta"  # where the speed rows came from: "kafka" (topic views) or "delta"
    low_water_mark: datetime | None = None  # L: batch rows only for buckets in [L, W); None when unknown


def _utc(moment: datetime, name: str) -> datetime:
    if not isinstance(moment, datetime):
        raise BadRequest(f"{name} must be a datetime, got {type(moment).__name__}")
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def _as_utc(moment: datetime | None) -> datetime | None:
    # a timestamp_ntz column (e.g. Parquet INT96 read back without zone) holds UTC wall time
    if moment is None:
        return None
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def _speed_ranges(
    first: datetime, stop: datetime, span: tuple[datetime | None, datetime] | None
) -> list[tuple[datetime, datetime]]:
    """The parts of [first, stop) that the speed view serves: everything outside the batch span [low, high)."""
    if span is None:
        return [(first, stop)]
    low, high = span
    ranges = []
    if low is not None and first < low:
        ranges.append((first, min(stop, low)))
    if stop > high:
        ranges.append((max(first, high), stop))
    return ranges


def _ceil_to_grain(moment: datetime, grain: Grain) -> datetime:
    floor = floor_to_grain(moment, grain)
    return floor if floor == moment else floor + GRAIN_STEP[grain]


def low_water_mark_of(validation_report: str | None) -> datetime | None:
    """L from the JSON ``validation_report`` of a batch/runs row (``report["high_water_mark"]["low"]``, ISO).

    None when the report, the entry or the value is missing or unreadable: rows written before the batch layer
    recorded L have none, and serving then treats L as unknown rather than failing every query.

    Example::

        low_water_mark_of('{"high_water_mark": {"low": "2026-01-05T00:00:00+00:00"}}')  # 2026-01-05 00:00 UTC
    """
    if not validation_report:
        return None
    try:
        report = json.loads(validation_report)
    except ValueError:
        return None
    marks = report.get("high_water_mark") if isinstance(report, dict) else None
    low = marks.get("low") if isinstance(marks, dict) else None
    if not isinstance(low, str):
        return None
    try:
        return _as_utc(datetime.fromisoformat(low.strip().replace("Z", "+00:00").replace("z", "+00:00")))
    except (ValueError, OverflowError):  # OverflowError: an offset moves year 1 or 9999 out of range
        return None


def _read_batch_state(runs: Any) -> BatchState:
    table = scan(runs, columns=None, predicate=None, label="batch/runs")
    records = table.to_pylist()
    if not records:
        return BatchState(runs_version=runs.version())
    newest = max(records, key=lambda r: (r.get("started_at") or datetime.min.replace(tzinfo=UTC), r["run_id"] or ""))
    good = [
        r
        for r in records
        if str(r.get("status") or "").lower() in SUCCESS_STATUSES
        and r.get("high_water_mark") is not None
        and all(r.get(column) is not None for column in _VERSION_COLUMNS.values())
    ]
    if not good:
        return BatchState(last_run=newest, runs_version=runs.version())
    # W never moves backwards, so the published one is the largest; ties go to the run that finished last
    best = max(good, key=lambda r: (r["high_water_mark"], r.get("finished_at") or r["high_water_mark"]))
    high = _as_utc(best["high_water_mark"])
    low = low_water_mark_of(best.get("validation_report"))
    if low is not None and high is not None and low > high:
        low = None  # the batch layer never records L after W (Marks): an inconsistent row keeps today's rule
    return BatchState(
        high_water_mark=high,
        low_water_mark=low,
        run_id=best["run_id"],
        versions={grain: int(best[column]) for grain, column in _VERSION_COLUMNS.items()},
        last_run=newest,
        runs_version=runs.version(),
    )


class ServingLayer:
    """Reads the lake's views without a JVM and answers the serving contract of DESIGN.md.

    Args:
        lake_root: the lake root (a path or an object-store URI).
        storage_options: delta-rs storage options for object stores (None for local paths).
        clock: returns "now" (UTC); injectable so tests of freshness are deterministic.
        speed_history: how far before W speed rows stay loaded, so the reconciliation view can compare them.
            Speed rows older than that are read (from Delta) only by queries reaching before L.
        min_refresh_s: a table refreshed less than this long ago is not refreshed again (0: every query).
        speed_source: the speed views materialised from the speed topics; None reads the Delta speed tables.
            Each topic view is used once it has caught up with its topic (its Delta table until then).
            ``close()`` closes it.
    """

    def __init__(
        self,
        lake_root: str,
        *,
        storage_options: dict[str, str] | None = None,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        speed_history: timedelta = timedelta(days=1),
        min_refresh_s: float = 0.0,
        speed_source: SpeedTopicViews | None = None,
    ) -> None:
        lake = Lake(root=lake_root, checkpoints=lake_root)
        self._tables = {name: OpenTable(lake.table(name), storage_options, min_refresh_s) for name in _TABLES}
        self._lock = threading.RLock()
        self._cache = SnapshotCache()
        self._speed_files = FileRowCache()
        # (dimension, lower, upper) -> (speed table version, its rows in [lower, upper))
        self._speed_layers: dict[tuple[str, datetime | None, datetime | None], tuple[int, LayeredRows]] = {}
        self._clock = clock
        self._speed_history = speed_history
        self._topics = speed_source

    @classmethod
    def from_settings(cls, settings: Settings) -> ServingLayer:
        """A serving layer over ``settings.lake_root``; with ``serving_speed_source = "kafka"`` (the default) it
        starts a SpeedTopicViews consumer on the speed topics (call ``close()`` to stop it)."""
        topics = SpeedTopicViews(settings) if settings.serving_speed_source == "kafka" else None
        return cls(settings.lake_root, min_refresh_s=settings.serving_min_refresh_seconds, speed_source=topics)

    def close(self) -> None:
        """Stop the speed topic consumer, if there is one. Idempotent."""
        if self._topics is not None:
            self._topics.close()

    def __enter__(self) -> ServingLayer:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    def now(self) -> datetime:
        return self._clock()

    @property
    def speed_source(self) -> SpeedTopicViews | None:
        """The speed topic views, or None when the speed side is read from Delta only."""
        return self._topics

    def _live(self, view: str) -> bool:
        """Whether ``view`` (sales, inventory, alerts) is answered from the topic views right now."""
        return self._topics is not None and self._topics.caught_up(view)

    def speed_source_status(self) -> dict[str, Any]:
        """Which source answers each speed view and, for the kafka source, the consumer's status."""
        serving_from = {view: "kafka" if self._live(view) else "delta" for view in ("sales", "inventory", "alerts")}
        if self._topics is None:
            return {"kind": "delta", "serving_from": serving_from}
        return {**self._topics.status(), "serving_from": serving_from}

    @property
    def speed_files_read(self) -> int:
        """Data files of the speed view read so far (each at most once per filter; the rest come from memory)."""
        return self._speed_files.files_read

    # --- batch/runs ------------------------------------------------------------------------------
    def batch_state(self) -> BatchState:
        """The published W with its validated view versions, and the newest run of any outcome."""
        with self._lock:
            runs = self._tables["batch/runs"].latest()
            if runs is None:
                return BatchState()
            return self._cache.get(("runs", runs.version()), lambda: _read_batch_state(runs))

    # --- sales -----------------------------------------------------------------------------------
    def _batch_index(self, grain: str, version: int, dimension: str) -> IndexedRows:
        name = _BATCH_TABLES[grain]

        def build() -> IndexedRows:
            table = self._tables[name].at_version(version)
            rows = scan(table, _BATCH_COLUMNS, f"dimension = {sql_literal(dimension)}", name)
            return IndexedRows.build(rows)

        return self._cache.get(("batch", name, version, dimension), build)

    def _speed_index(
        self, dimension: str, lower: datetime | None, live: bool, upper: datetime | None = None
    ) -> tuple[LayeredRows | SalesIndex | None, int | None]:
        """The speed minute rows of ``dimension`` with bucket_start in [lower, upper) (None: unbounded), and the
        version they were read at: the topic views when ``live``, else speed/sales_minute (cached per bounds)."""
        if self._topics is not None and live:
            # the whole retained topic is in memory: no lower bound needed
            index = self._topics.sales_index(dimension)
            return index, index.version
        table = self._tables["speed/sales_minute"].latest()
        if table is None:
            return None, None
        version = table.version()
        slot = (dimension, lower, upper)
        known = self._speed_layers.get(slot)
        if known is not None and known[0] == version:
            return known[1], version
        import pyarrow.dataset as ds

        sql = f"dimension = {sql_literal(dimension)}"
        expression = ds.field("dimension") == dimension
        if lower is not None:
            sql += f" AND bucket_start >= {sql_literal(lower)}"
            expression = expression & (ds.field("bucket_start") >= pa.scalar(lower, TIMESTAMP))
        if upper is not None:
            sql += f" AND bucket_start < {sql_literal(upper)}"
            expression = expression & (ds.field("bucket_start") < pa.scalar(upper, TIMESTAMP))
        files = self._speed_files.read_files(table, _SPEED_COLUMNS, sql, expression, "speed/sales_minute")
        if not files:
            return None, version  # the speed layer created the table but has not written a row yet
        layers = LayeredRows.update(known[1] if known else None, files)
        self._speed_layers[slot] = (version, layers)
        if len(self._speed_layers) > 8:  # a mark moved: forget the slots of the old bounds
            self._speed_layers.pop(next(iter(self._speed_layers)))
        return layers, version

    def _speed_lower(self, state: BatchState) -> datetime | None:
        """Where the speed rows every query shares start: a day boundary ``speed_history`` before W (None: all)."""
        if state.high_water_mark is None:
            return None
        return floor_to_grain(state.high_water_mark - self._speed_history, "day")

    def _older_speed_index(
        self, dimension: str, state: BatchState, lower: datetime
    ) -> tuple[LayeredRows | SalesIndex | None, int | None]:
        """Speed rows before ``lower`` (the shared rows' start), for queries that reach before L.

        Only what can be served is loaded: rows before L ceiled to a day (the coarsest grain, so a bucket that
        straddles L is whole), never the validated batch history between L and ``lower``. Always from Delta:
        the topics retain 72 h, and rows before L are usually older.
        """
        upper = lower
        if state.low_water_mark is not None:
            upper = min(upper, _ceil_to_grain(state.low_water_mark, "day"))
        return self._speed_index(dimension, None, False, upper)

    def _speed_minutes(
        self,
        state: BatchState,
        dimension: str,
        key: str | None,
        ranges: list[tuple[datetime, datetime]],
        live: bool,
    ) -> tuple[pa.Table | None, dict[str, int | None]]:
        """Speed minute rows of ``key`` in the half-open ``ranges``, and the speed versions read.

        The rows from ``_speed_lower`` on (the common case: every query at or after L) come from one shared index;
        only a range that starts before it (speed rows before L) also reads ``_older_speed_index``.
        """
        lower = self._speed_lower(state)
        parts: list[pa.Table] = []
        versions: dict[str, int | None] = {}
        for first, stop in ranges:
            if lower is not None and first < lower:
                older, versions["speed_before_low"] = self._older_speed_index(dimension, state, lower)
                if older is not None:
                    parts.append(older.select(key, to_micros(first), to_micros(min(stop, lower))))
                first = max(first, lower)
            if first < stop:
                index, versions["speed"] = self._speed_index(dimension, lower, live)
                if index is not None:
                    parts.append(index.select(key, to_micros(first), to_micros(stop)))
        if not parts:
            return None, versions
        if len(parts) == 1:
            return parts[0], versions
        schema = parts[0].schema
        return pa.concat_tables([part if part.schema == schema else part.cast(schema) for part in parts]), versions

    def sales(
        self,
        start: datetime,
        end: datetime,
        grain: Grain,
        dimension: str = "total",
        key: str | None = TOTAL_KEY,
        *,
        distinct_users: bool = True,
    ) -> SalesResult:
        """Revenue, orders, units and distinct users per bucket in [start, end): batch in [L, W), speed elsewhere.

        Args:
            start, end: half-open range of bucket starts (naive datetimes are read as UTC).
            grain: "minute", "hour" or "day".
            dimension: "total" (key "all"), "product" (key = product_id) or "category" (key = category).
            key: one key of the dimension, or None for every key (the rows then carry a ``key`` column).
            distinct_users: False skips the sketch union of speed roll-ups (distinct_users is then null there).

        Returns:
            A SalesResult: W, L, and rows (bucket_start, [key,] revenue, orders, units, distinct_users, source).

        Raises:
            BadRequest: a parameter is out of its domain (the message names it).
        """
        start, end = _utc(start, "start"), _utc(end, "end")
        if grain not in GRAINS:
            raise BadRequest(f"grain must be one of {', '.join(GRAINS)}, got {grain!r}")
        if dimension not in DIMENSIONS:
            raise BadRequest(f"dimension must be one of {', '.join(DIMENSIONS)}, got {dimension!r}")
        if start >= end:
            raise BadRequest(f"start must be before end (the range is [start, end)), got {start} >= {end}")
        if end - start > MAX_RANGE[grain]:
            raise BadRequest(f"a {grain} query may span at most {MAX_RANGE[grain].days} days; use a coarser grain")
        first, stop = _ceil_to_grain(start, grain), _ceil_to_grain(end, grain)
        live = self._live("sales")
        with self._lock:
            state = self.batch_state()
            span = batch_span(state.high_water_mark, grain, state.low_water_mark)
            batch_rows = empty_rows(with_key=key is None)
            batch_version = None
            if span is not None:
                low, high = span
                batch_first = first if low is None else max(first, low)
                batch_stop = min(stop, high)
                if batch_first < batch_stop:
                    batch_version = state.versions[grain]
                    index = self._batch_index(grain, batch_version, dimension)
                    batch_rows = index.select(key, to_micros(batch_first), to_micros(batch_stop))
            minute_rows, speed_versions = self._speed_minutes(
                state, dimension, key, _speed_ranges(first, stop, span), live
            )
        if minute_rows is None:
            speed_rows = empty_rows(with_key=key is None)
        else:
            speed_rows = rollup_minutes(minute_rows, grain, distinct_users=distinct_users)
        return SalesResult(
            high_water_mark=state.high_water_mark,
            low_water_mark=state.low_water_mark,
            grain=grain,
            dimension=dimension,
            key=key,
            rows=merge_views(batch_rows, speed_rows, state.high_water_mark, grain, low_water_mark=state.low_water_mark),
            # "speed_before_low": the Delta speed version read for rows before L, when the query reached there
            versions={"batch_runs": state.runs_version, f"batch_{grain}": batch_version, "speed": None}
            | speed_versions,
            speed_source="kafka" if live else "delta",
        )

    def top_products(self, start: datetime, end: datetime, limit: int = 10) -> pa.Table:
        """Products by revenue over minute buckets in [start, end): key, revenue, orders, units (merged)."""
        rows = self.sales(start, end, "minute", dimension="product", key=None, distinct_users=False).rows
        if rows.num_rows == 0:
            return pa.table(
                {
                    "key": pa.array([], pa.string()),
                    "revenue": rows["revenue"],
                    "orders": rows["orders"],
                    "units": rows["units"],
                }
            )
        totals = rows.group_by("key", use_threads=False).aggregate(
            [("revenue", "sum"), ("orders", "sum"), ("units", "sum")]
        )
        totals = totals.rename_columns(["key", "revenue", "orders", "units"])
        return totals.sort_by([("revenue", "descending"), ("key", "ascending")]).slice(0, limit)

    def reconciliation(self, start: datetime, end: datetime, grain: Grain = "hour") -> pa.Table:
        """Speed vs batch figures (total) for the buckets in [start, end) that both layers hold, inside [L, W).

        Only buckets the batch view serves (``batch_span``) are compared: outside [L, W) the batch rows are not
        what the API shows, so comparing them would report a difference nobody sees. Returns the
        ``views.reconcile`` layout; empty with no batch run or no speed rows in [L, W).
        """
        start, end = _utc(start, "start"), _utc(end, "end")
        with self._lock:
            state = self.batch_state()
            span = batch_span(state.high_water_mark, grain, state.low_water_mark)
            if span is None:
                return reconcile(empty_rows(), empty_rows())
            low, high = span
            first, stop = _ceil_to_grain(start, grain), min(_ceil_to_grain(end, grain), high)
            if low is not None:
                first = max(first, low)
            if first >= stop:
                return reconcile(empty_rows(), empty_rows())
            batch = self._batch_index(grain, state.versions[grain], "total").select(
                TOTAL_KEY, to_micros(first), to_micros(stop)
            )
            # the shared speed rows only (from a day before W): older buckets are not compared
            index, _ = self._speed_index("total", self._speed_lower(state), self._live("sales"))
            minutes = index.select(TOTAL_KEY, to_micros(first), to_micros(stop)) if index else None
        speed = rollup_minutes(minutes, grain) if minutes is not None else empty_rows()
        return reconcile(batch, speed)

    # --- inventory, alerts, health -----------------------------------------------------------------
    def _whole(self, name: str) -> tuple[pa.Table | None, int | None]:
        with self._lock:
            table = self._tables[name].latest()
            if table is None:
                return None, None
            version = table.version()
            return self._cache.get(("whole", name, version), lambda: scan(table, None, None, name)), version

    def inventory(self) -> pa.Table:
        """speed/inventory, products below their threshold first, then by stock ascending."""
        if self._topics is not None and self._live("inventory"):
            table: pa.Table | None = self._topics.inventory()
        else:
            table, _ = self._whole("speed/inventory")
        if table is None:
            return pa.table(
                {
                    "product_id": pa.array([], pa.string()),
                    "stock": pa.array([], pa.int64()),
                    "threshold": pa.array([], pa.int32()),
                    "below_threshold": pa.array([], pa.bool_()),
                    "last_event_time": pa.array([], TIMESTAMP),
                    "updated_at": pa.array([], TIMESTAMP),
                }
            )
        return table.sort_by([("below_threshold", "descending"), ("stock", "ascending"), ("product_id", "ascending")])

    def alerts(self, recent: timedelta = timedelta(hours=24)) -> pa.Table:
        """Open alerts and those opened or resolved within ``recent`` of now: open first, newest first."""
        if self._topics is not None and self._live("alerts"):
            table: pa.Table | None = self._topics.alerts()
        else:
            table, _ = self._whole("speed/alerts")
        if table is None:
            return pa.table(
                {
                    "alert_id": pa.array([], pa.string()),
                    "product_id": pa.array([], pa.string()),
                    "kind": pa.array([], pa.string()),
                    "stock_at_open": pa.array([], pa.int64()),
                    "threshold": pa.array([], pa.int32()),
                    "opened_at": pa.array([], TIMESTAMP),
                    "resolved_at": pa.array([], TIMESTAMP),
                    "open": pa.array([], pa.bool_()),
                }
            )
        since = pa.scalar(self.now() - recent, TIMESTAMP)
        is_open = pc.is_null(table["resolved_at"])
        keep = pc.or_(
            is_open,
            pc.or_(
                pc.fill_null(pc.greater_equal(table["resolved_at"], since), False),
                pc.fill_null(pc.greater_equal(table["opened_at"], since), False),
            ),
        )
        chosen = table.append_column("open", is_open).filter(keep)
        return chosen.sort_by([("open", "descending"), ("opened_at", "descending"), ("alert_id", "ascending")])

    def health(self) -> dict[str, Any]:
        """Pipeline health: newest event time in the speed views, freshness, consumer lag, last batch run, W, L,
        and the speed source (``speed_source``: kind, which source answers each view, the consumer's status)."""
        now = self.now()
        state = self.batch_state()
        source = self.speed_source_status()
        live = self._topics.newest() if self._topics is not None else {}
        with self._lock:
            if source["serving_from"]["sales"] == "kafka":
                newest_bucket, speed_updated = live["bucket_start"], live["updated_at"]
            else:
                sales = self._tables["speed/sales_minute"].latest()
                newest_bucket = _as_utc(column_max(sales, "bucket_start")) if sales is not None else None
                speed_updated = _as_utc(column_max(sales, "updated_at")) if sales is not None else None
            if source["serving_from"]["inventory"] == "kafka":
                newest_stock_event = live["last_event_time"]
            else:
                inventory = self._tables["speed/inventory"].latest()
                newest_stock_event = (
                    _as_utc(column_max(inventory, "last_event_time")) if inventory is not None else None
                )
            progress, liveness = self._latest_progress()
        candidates = [moment for moment in (newest_bucket, newest_stock_event) if moment is not None]
        newest = max(candidates) if candidates else None
        latest = max(progress, key=lambda r: (r["timestamp"], r["batch_id"])) if progress else None
        return {
            "now": now,
            "newest_event_time": newest,
            "newest_sales_bucket": newest_bucket,
            "newest_inventory_event_time": newest_stock_event,
            "speed_last_update": speed_updated,
            "freshness_seconds": (now - newest).total_seconds() if newest is not None else None,
            "offsets_behind": latest["offsets_behind"] if latest else None,
            "speed_watermark": latest["watermark"] if latest else None,
            "progress_time": latest["timestamp"] if latest else None,
            "queries": {
                row["query"]: {
                    "batch_id": row["batch_id"],
                    "timestamp": row["timestamp"],
                    "offsets_behind": row["offsets_behind"],
                    "input_rows_per_s": row["input_rows_per_s"],
                    "batch_duration_ms": row["batch_duration_ms"],
                    "watermark": row["watermark"],
                    "late_rows": row["late_rows"],
                }
                for row in progress
            },
            "speed_layer": liveness,
            "high_water_mark": state.high_water_mark,
            "low_water_mark": state.low_water_mark,
            "last_batch_run": state.last_run,
            "speed_source": source,
        }

    def _latest_progress(self) -> tuple[list[dict[str, Any]], dict[str, Any]]:
        """The newest micro-batch row of every query, and the speed layer's liveness, from the last hour of
        speed/progress rows before the newest (rows with batch_id -1 are heartbeats and errors, not batches)."""
        table = self._tables["speed/progress"].latest()
        if table is None:
            return [], speed_liveness([], self.now())
        version = table.version()

        def build() -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
            newest = column_max(table, "timestamp")
            predicate = None if newest is None else f"timestamp >= {sql_literal(newest - timedelta(hours=1))}"
            rows = scan(table, None, predicate, "speed/progress").to_pylist()
            latest: dict[str, dict[str, Any]] = {}
            status_rows = []
            for row in rows:
                if row["batch_id"] < 0:
                    status_rows.append(row)
                    continue
                current = latest.get(row["query"])
                if current is None or (row["timestamp"], row["batch_id"]) > (current["timestamp"], current["batch_id"]):
                    latest[row["query"]] = row
            return sorted(latest.values(), key=lambda r: r["query"]), status_rows

        batches, status_rows = self._cache.get(("progress", version), build)
        return batches, speed_liveness(status_rows, self.now())


def speed_liveness(status_rows: list[dict[str, Any]], now: datetime) -> dict[str, Any]:
    """The speed layer's state from its heartbeat and error rows (pure): running, stopped, failed or unknown.

    ``failed``: the newest error is newer than the newest heartbeat (it stopped on that error); ``stopped``: no
    heartbeat for HEARTBEAT_STALE_AFTER; ``running`` otherwise, with the last error of the hour if it restarted
    after one (``errors_last_hour`` counts them: a driver that keeps crashing shows a growing number).
    """
    beats = [_as_utc(row["timestamp"]) for row in status_rows if not row.get("error")]
    errors = sorted(
        ((_as_utc(row["timestamp"]), row) for row in status_rows if row.get("error")), key=lambda pair: pair[0]
    )
    last_beat = max(beats) if beats else None
    last_error_at, last_error_row = errors[-1] if errors else (None, None)
    if last_beat is None and last_error_at is None:
        state = "unknown"
    elif last_error_at is not None and (last_beat is None or last_error_at >= last_beat):
        state = "failed"
    elif now - last_beat > HEARTBEAT_STALE_AFTER:
        state = "stopped"
    else:
        state = "running"
    return {
        "state": state,
        "last_heartbeat": last_beat,
        "last_error": None if last_error_row is None else f"{last_error_row['query']}: {last_error_row['error']}",
        "last_error_at": last_error_at,
        "errors_last_hour": sum(1 for moment, _ in errors if now - moment <= timedelta(hours=1)),
    }
