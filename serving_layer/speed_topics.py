"""The speed views materialised in memory from the speed layer's compacted Kafka topics (the live speed source).

The speed layer writes every provisional view row to a compacted topic as the full current value of its key
(contracts/topics.py): minute rollups to ``retail.speed.sales``, stock per product to ``retail.speed.inventory``,
alerts to ``retail.alerts``. ``SpeedTopicViews`` runs one daemon thread with a kafka-python consumer (no consumer
group: every partition assigned, read from the beginning), keeps the newest value of every key in memory and
hands out pyarrow snapshots with the columns and types the Delta speed tables give the serving layer, so the
serving layer sees a micro-batch about as soon as Kafka has it. The Delta speed tables stay the durable copy.

Rules:
- a later message for a key replaces the earlier one (a replayed micro-batch only repeats a value: nothing adds
  up); a null value (a compaction tombstone) deletes the key;
- a message that does not parse or does not fit the wire format is skipped and counted by reason, never fatal;
- an unreachable broker, missing topics or a broker restart are retried with backoff; ``status()`` says what is
  going on (for /api/health), and a view counts as *caught up* once it has read everything its topic held when
  it was first assigned (the serving layer uses the Delta copy until then);
- ``version`` counts the applied messages; snapshots are rebuilt lazily, only for views that changed, and the
  minute rollups incrementally (a sorted base plus the keys changed since it), so queries stay in milliseconds
  while the topics move.

Example::

    views = SpeedTopicViews(Settings())          # starts the consumer thread
    views.wait_caught_up(timeout_s=30)
    index = views.sales_index("total")           # SalesIndex at views.version
    rows = index.select("all", start_us, end_us)  # bucket_start, revenue, orders, units, users_sketch, ...
    views.inventory(), views.alerts(), views.status()
    views.close()
"""

from __future__ import annotations

import base64
import binascii
import json
import logging
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal, InvalidOperation
from typing import Any

import numpy as np
import pyarrow as pa

from contracts.settings import Settings
from serving_layer.lake import IndexedRows
from serving_layer.views import DIMENSIONS, EARLIEST, LATEST, MONEY, TIMESTAMP

__all__ = [
    "ALERTS_SCHEMA",
    "INVENTORY_SCHEMA",
    "SALES_MINUTE_SCHEMA",
    "VIEWS",
    "SalesIndex",
    "SpeedTopicViews",
]

log = logging.getLogger("serving_layer.speed_topics")

# The columns and types the Delta speed tables give the serving layer (serving_layer/service.py), so one
# ServingLayer code path serves either source.
SALES_MINUTE_SCHEMA = pa.schema(
    [
        ("bucket_start", TIMESTAMP),
        ("key", pa.string()),
        ("revenue", MONEY),
        ("orders", pa.int64()),
        ("units", pa.int64()),
        ("users_sketch", pa.binary()),
        ("users_estimate", pa.int64()),
    ]
)
INVENTORY_SCHEMA = pa.schema(
    [
        ("product_id", pa.string()),
        ("stock", pa.int64()),
        ("threshold", pa.int32()),
        ("below_threshold", pa.bool_()),
        ("last_event_time", TIMESTAMP),
        ("updated_at", TIMESTAMP),
    ]
)
ALERTS_SCHEMA = pa.schema(
    [
        ("alert_id", pa.string()),
        ("product_id", pa.string()),
        ("kind", pa.string()),
        ("stock_at_open", pa.int64()),
        ("threshold", pa.int32()),
        ("opened_at", TIMESTAMP),
        ("resolved_at", TIMESTAMP),
    ]
)
VIEWS: tuple[str, ...] = ("sales", "inventory", "alerts")

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MICRO = timedelta(microseconds=1)
_MAX_CENTS = 10**18  # DECIMAL(18,2) holds |value| < 10^16, i.e. < 10^18 cents
_MAX_DIGITS = 16  # digits before the point of such a value
_INT32 = 2**31
_INT64 = 2**63


class _Skip(Exception):
    """A record that does not fit the wire format; the message is the reason it is counted under."""


# --- parsing the wire format (contracts/topics.py) --------------------------------------------------------
def _text(value: Any, name: str, required: bool = False) -> str | None:
    if value is None:
        if required:
            raise _Skip(f"missing_{name}")
        return None
    if not isinstance(value, str):
        raise _Skip(f"bad_{name}")
    return value


def _int(value: Any, name: str, bound: int = _INT64) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or not -bound <= value < bound:
        raise _Skip(f"bad_{name}")
    return value


def _micros(value: Any, name: str, required: bool = False) -> int | None:
    """An ISO-8601 time (``2026-11-26T10:01:00.000000Z``; no zone means UTC) as epoch microseconds."""
    text = _text(value, name, required)
    if text is None:
        return None
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise _Skip(f"bad_{name}") from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    # 9999-12-31T23:59:59-01:00 parses, but is year 10000 in UTC: every later conversion of it would overflow
    if not EARLIEST <= moment < LATEST:
        raise _Skip(f"bad_{name}")
    return (moment - _EPOCH) // _MICRO


def _cents(value: Any) -> int | None:
    """A decimal string (or JSON number read as Decimal) with at most two places, as integer cents."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, str | int | Decimal):
        raise _Skip("bad_revenue")
    try:
        amount = Decimal(value)
        # the exponent is checked before any conversion: int() of "1e400000" builds a 400,000-digit integer,
        # seconds of CPU holding the GIL (and a compacted topic replays the record on every start)
        if not amount.is_finite() or amount.adjusted() >= _MAX_DIGITS:
            raise _Skip("bad_revenue")
        scaled = amount.scaleb(2)
        cents = int(scaled)
    except (InvalidOperation, ValueError, OverflowError):
        raise _Skip("bad_revenue") from None
    if scaled != cents or not -_MAX_CENTS < cents < _MAX_CENTS:
        raise _Skip("bad_revenue")
    return cents


def _sketch(value: Any) -> bytes | None:
    text = _text(value, "users_sketch")
    if text is None:
        return None
    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise _Skip("bad_users_sketch") from None


def _object(raw: bytes) -> dict[str, Any]:
    try:
        value = json.loads(raw, parse_float=Decimal)
    except (UnicodeDecodeError, ValueError):
        raise _Skip("not_json") from None
    if not isinstance(value, dict):
        raise _Skip("not_an_object")
    return value


def _sales_row(key: str, raw: bytes) -> tuple[str, tuple[Any, ...], int | None]:
    """(dimension, row, updated_at) of a retail.speed.sales message; the row follows SALES_MINUTE_SCHEMA."""
    value = _object(raw)
    dimension = _text(value.get("dimension"), "dimension", required=True)
    if dimension not in DIMENSIONS:
        raise _Skip("bad_dimension")
    name = _text(value.get("key"), "key", required=True)
    bucket = _micros(value.get("bucket_start"), "bucket_start", required=True)
    if key != f"{dimension}|{name}|{bucket}":  # the contract's sales_key: a mismatch would count a row twice
        raise _Skip("key_mismatch")
    row = (
        bucket,
        name,
        _cents(value.get("revenue")),
        _int(value.get("orders"), "orders"),
        _int(value.get("units"), "units"),
        _sketch(value.get("users_sketch")),
        _int(value.get("users_estimate"), "users_estimate"),
    )
    return dimension, row, _micros(value.get("updated_at"), "updated_at")


def _inventory_row(key: str, raw: bytes) -> tuple[Any, ...]:
    value = _object(raw)
    if _text(value.get("product_id"), "product_id", required=True) != key:
        raise _Skip("key_mismatch")
    below = value.get("below_threshold")
    if below is not None and not isinstance(below, bool):
        raise _Skip("bad_below_threshold")
    return (
        key,
        _int(value.get("stock"), "stock"),
        _int(value.get("threshold"), "threshold", _INT32),
        below,
        _micros(value.get("last_event_time"), "last_event_time"),
        _micros(value.get("updated_at"), "updated_at"),
    )


def _alert_row(key: str, raw: bytes) -> tuple[Any, ...]:
    value = _object(raw)
    if _text(value.get("alert_id"), "alert_id", required=True) != key:
        raise _Skip("key_mismatch")
    state = _text(value.get("state"), "state")
    if state not in (None, "opened", "resolved"):
        raise _Skip("bad_state")
    resolved_at = _micros(value.get("resolved_at"), "resolved_at")
    at = _micros(value.get("at"), "at")
    if state == "resolved" and resolved_at is None:
        resolved_at = at
    return (
        key,
        _text(value.get("product_id"), "product_id"),
        _text(value.get("kind"), "kind"),
        _int(value.get("stock_at_open"), "stock_at_open"),
        _int(value.get("threshold"), "threshold", _INT32),
        _micros(value.get("opened_at"), "opened_at"),
        resolved_at,
    )


# --- building Arrow columns -----------------------------------------------------------------------------
def _money(cents: Iterable[int | None]) -> pa.Array:
    """DECIMAL(18,2) from integer cents, built from the 128-bit words directly (exact, no Decimal objects)."""
    ints = pa.array(cents, pa.int64())
    values = np.asarray(ints.fill_null(0).to_numpy(zero_copy_only=False), dtype=np.int64)
    words = np.empty((len(values), 2), dtype="<i8")
    words[:, 0] = values
    words[:, 1] = values >> 63  # sign extension into the high word
    validity = ints.buffers()[0] if ints.null_count else None
    return pa.Array.from_buffers(MONEY, len(ints), [validity, pa.py_buffer(words.tobytes())], ints.null_count)


def _table(schema: pa.Schema, rows: list[tuple[Any, ...]]) -> pa.Table:
    if not rows:
        return schema.empty_table()
    columns = list(zip(*rows, strict=True))
    arrays = [
        _money(column) if field.type == MONEY else pa.array(column, field.type)
        for field, column in zip(schema, columns, strict=True)
    ]
    return pa.Table.from_arrays(arrays, schema=schema)


def _sort_rows(table: pa.Table, keys: list[tuple[str, str]]) -> pa.Table:
    return table.sort_by(keys) if table.num_rows else table


# --- the minute rollups of one dimension as an incrementally rebuilt index -------------------------------
class SalesIndex:
    """Minute rows of one sales dimension at one version: a sorted base plus the rows changed since it.

    ``version`` is SpeedTopicViews.version when the snapshot was built (reused while the dimension is unchanged).

    ``select`` answers like ``serving_layer.lake.IndexedRows.select`` (and ``LayeredRows.select``): rows of one
    key without the key column, or of every key with it, for bucket starts in [start_us, end_us), any order.
    Immutable: a query keeps its snapshot while the consumer moves on.
    """

    __slots__ = ("version", "_base", "_alive", "_recent")

    def __init__(self, version: int, base: IndexedRows, alive: np.ndarray | None, recent: IndexedRows | None):
        self.version = version
        self._base = base
        self._alive = alive  # None: every base row is current; else False marks a row replaced since the base
        self._recent = recent

    @property
    def num_rows(self) -> int:
        live = self._base.table.num_rows if self._alive is None else int(self._alive.sum())
        return live + (self._recent.table.num_rows if self._recent is not None else 0)

    def select(self, key: str | None, start_us: int, end_us: int) -> pa.Table:
        base = self._base
        if key is None:
            mask = (base.starts >= start_us) & (base.starts < end_us)
            if self._alive is not None:
                mask &= self._alive
            parts = [base.table.filter(pa.array(mask))]
        else:
            lo, hi = base.ranges.get(key, (0, 0))
            section = base.starts[lo:hi]
            first = lo + int(np.searchsorted(section, start_us, side="left"))
            last = lo + int(np.searchsorted(section, end_us, side="left"))
            part = base.table.slice(first, max(0, last - first))
            if self._alive is not None and last > first and not self._alive[first:last].all():
                part = part.filter(pa.array(self._alive[first:last]))
            parts = [part.drop_columns(["key"])]
        if self._recent is not None and self._recent.table.num_rows:
            fresh = self._recent.select(key, start_us, end_us)
            if fresh.num_rows:
                parts.append(fresh)
        return parts[0] if len(parts) == 1 else pa.concat_tables(parts)

    def table(self) -> pa.Table:
        """Every current row (with the key column), sorted by key and bucket_start."""
        base = self._base.table
        if self._alive is not None:
            base = base.filter(pa.array(self._alive))
        if self._recent is None or not self._recent.table.num_rows:
            return base
        return _sort_rows(
            pa.concat_tables([base, self._recent.table]), [("key", "ascending"), ("bucket_start", "ascending")]
        )


@dataclass
class _SalesDimension:
    """Rows of one dimension (message key -> row), what changed since the base, and the built snapshots."""

    rows: dict[str, tuple[Any, ...]] = field(default_factory=dict)
    changed: set[str] = field(default_factory=set)  # message keys set or deleted since the base was taken
    version: int = 0  # bumped on every change of this dimension
    base: IndexedRows | None = None
    base_positions: dict[str, int] = field(default_factory=dict)  # message key -> row of the sorted base
    snapshot: SalesIndex | None = None
    snapshot_of: int = -1  # the dimension version the snapshot was built at
    build_lock: threading.Lock = field(default_factory=threading.Lock)


def _build_base(items: list[tuple[str, tuple[Any, ...]]]) -> tuple[IndexedRows, dict[str, int]]:
    table = _table(SALES_MINUTE_SCHEMA, [row for _, row in items])
    slots = pa.array(np.arange(table.num_rows, dtype=np.int64))
    built = IndexedRows.build(table.append_column("_slot", slots))
    order = np.asarray(built.table["_slot"].to_numpy(zero_copy_only=False), dtype=np.int64)
    position = np.empty(len(order), dtype=np.int64)
    position[order] = np.arange(len(order), dtype=np.int64)
    positions = dict(zip((key for key, _ in items), position.tolist(), strict=True))
    return IndexedRows(built.table.drop_columns(["_slot"]), built.starts, built.ranges), positions


# --- the consumer ---------------------------------------------------------------------------------------
@dataclass
class _Partition:
    view: str
    next_offset: int | None = None  # the next offset to read (None: from the beginning)
    target: int | None = None  # the end offset when the partition was (re)assigned: caught up at or past it
    end: int | None = None  # the end offset seen by the last offsets check
    caught_up: bool = False


class _Consumer:
    """kafka-python's KafkaConsumer, whose failed construction would leave its IO thread running: stop it."""

    @staticmethod
    def create(**config: Any) -> Any:
        from kafka import KafkaConsumer

        class Consumer(KafkaConsumer):  # type: ignore[misc]
            def __init__(self, **options: Any) -> None:
                try:
                    super().__init__(**options)
                except BaseException:
                    client = self.__dict__.get("_client")
                    if client is not None:
                        try:
                            client.close()
                        except Exception:  # noqa: BLE001 - best effort: the original error matters
                            log.debug("closing a half-built consumer failed", exc_info=True)
                    raise

        return Consumer(**config)


class SpeedTopicViews:
    """The speed views from the compacted speed topics, materialised in memory by one consumer thread.

    Args:
        settings: topic names (speed_sales_topic, speed_inventory_topic, alerts_topic) and the Kafka connection
            (``Settings.kafka_python_options()``: bootstrap servers, SASL/SSL).
        start: start the consumer thread now (else call ``start()``).
        fetch_max_wait_ms: how long the broker may hold an empty fetch open. It answers as soon as a record
            arrives, so this bounds no latency; a small value only makes an idle consumer and its broker spin
            (10 ms: ~18% of a core each, 500 ms: 2-5%).
        backoff_s: (first, longest) wait between reconnection attempts; doubles after each failure.
        metadata_refresh_s: how often present topics are checked for new partitions or re-creation.
        recent_limit: the minute rollups keep one sorted base plus up to this many changed rows (or an eighth of
            the base, whichever is larger) before the base is rebuilt.
    """

    def __init__(
        self,
        settings: Settings,
        *,
        start: bool = True,
        client_id: str = "retail-serving",
        fetch_max_wait_ms: int = 500,
        poll_timeout_ms: int = 100,
        backoff_s: tuple[float, float] = (0.5, 10.0),
        metadata_refresh_s: float = 5.0,
        offsets_check_s: float = 1.0,
        request_timeout_ms: int = 5000,
        recent_limit: int = 2048,
    ) -> None:
        self.topics: dict[str, str] = {
            "sales": settings.speed_sales_topic,
            "inventory": settings.speed_inventory_topic,
            "alerts": settings.alerts_topic,
        }
        self._view_of = {topic: view for view, topic in self.topics.items()}
        if len(self._view_of) != len(self.topics):
            raise ValueError(f"the three speed topics must differ, got {self.topics}")
        self._bootstrap = settings.kafka_bootstrap_servers
        self._config: dict[str, Any] = {
            **settings.kafka_python_options(),
            "client_id": client_id,
            "group_id": None,
            "enable_auto_commit": False,
            "auto_offset_reset": "earliest",
            "allow_auto_create_topics": False,
            "fetch_max_wait_ms": fetch_max_wait_ms,
            "request_timeout_ms": request_timeout_ms,
            "bootstrap_timeout_ms": min(request_timeout_ms, 2000),  # bounds how long close() can wait
            "max_poll_records": 5000,
            "reconnect_backoff_max_ms": 2000,
        }
        self._poll_timeout_ms = poll_timeout_ms
        self._backoff = backoff_s
        self._metadata_refresh_s = metadata_refresh_s
        self._offsets_check_s = offsets_check_s
        self._request_timeout_ms = request_timeout_ms
        self._recent_limit = recent_limit

        self._lock = threading.Lock()
        self._changed = threading.Condition(self._lock)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        # data (guarded by _lock)
        self._sales = {dimension: _SalesDimension() for dimension in DIMENSIONS}
        self._inventory: dict[str, tuple[Any, ...]] = {}
        self._alerts: dict[str, tuple[Any, ...]] = {}
        self._view_versions = dict.fromkeys(VIEWS, 0)
        self._whole_cache: dict[str, tuple[int, pa.Table]] = {}
        self._newest: dict[str, int | None] = {"bucket_start": None, "updated_at": None, "last_event_time": None}
        # consumer state (written by the consumer thread, read under _lock)
        self._partitions: dict[Any, _Partition] = {}
        self._present: dict[str, bool] = dict.fromkeys(VIEWS, False)
        self._version = 0
        self._applied = 0
        self._skipped: Counter[str] = Counter()
        self._last_skipped: dict[str, Any] | None = None
        self._connected = False
        self._connects = 0
        self._last_error: str | None = None
        self._last_error_at: datetime | None = None
        self._last_message_at: datetime | None = None
        self._last_record_time: datetime | None = None
        self._warm_sales = True
        if start:
            self.start()

    # --- lifecycle ------------------------------------------------------------------------------------
    def start(self) -> None:
        """Start the consumer thread (once)."""
        if self._thread is not None:
            return
        self._thread = threading.Thread(target=self._run, name="speed-topic-views", daemon=True)
        self._thread.start()

    def close(self, timeout_s: float = 10.0) -> None:
        """Stop the consumer thread and close its connections (waits at most ``timeout_s``)."""
        self._stop.set()
        with self._changed:
            self._changed.notify_all()
        thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout_s)
            if thread.is_alive():
                log.warning("speed topic consumer did not stop within %.1f s (daemon thread left)", timeout_s)

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def __enter__(self) -> SpeedTopicViews:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    # --- reading ----------------------------------------------------------------------------------------
    @property
    def version(self) -> int:
        """Number of messages applied so far: grows with every change of any view."""
        with self._lock:
            return self._version

    def view_version(self, view: str) -> int:
        """Messages applied so far to one of VIEWS."""
        with self._lock:
            return self._view_versions[view]

    def caught_up(self, view: str) -> bool:
        """True once ``view``'s topic exists and everything it held when first assigned has been read."""
        with self._lock:
            return self._caught_up(view)

    def _caught_up(self, view: str) -> bool:
        parts = [p for p in self._partitions.values() if p.view == view]
        return self._present[view] and bool(parts) and all(p.caught_up for p in parts)

    def wait_until(self, condition: Callable[[], bool], timeout_s: float) -> bool:
        """Wait until ``condition()`` holds (re-checked after every applied batch); False after ``timeout_s``."""
        deadline = time.monotonic() + timeout_s
        while not condition():
            left = deadline - time.monotonic()
            if left <= 0:
                return False
            with self._changed:
                self._changed.wait(min(left, 0.05))
        return True

    def wait_caught_up(self, timeout_s: float, views: Iterable[str] = VIEWS) -> bool:
        """Wait until every view of ``views`` is caught up; False after ``timeout_s``."""
        wanted = tuple(views)
        return self.wait_until(lambda: all(self.caught_up(view) for view in wanted), timeout_s)

    def sales_index(self, dimension: str) -> SalesIndex:
        """The minute rows of ``dimension`` at the current version, as a SalesIndex (built only on change)."""
        state = self._sales[dimension]
        with state.build_lock:
            with self._lock:
                snapshot = state.snapshot
                if snapshot is not None and state.snapshot_of == state.version:
                    return snapshot
                version, dimension_version = self._version, state.version
                rebuild = state.base is None or len(state.changed) > max(
                    self._recent_limit, len(state.base_positions) // 8
                )
                if rebuild:
                    items = list(state.rows.items())
                    state.changed.clear()
                    recent_rows: list[tuple[Any, ...]] = []
                    dead: list[int] = []
                else:
                    recent_rows = [state.rows[k] for k in state.changed if k in state.rows]
                    dead = [state.base_positions[k] for k in state.changed if k in state.base_positions]
            if rebuild:
                state.base, state.base_positions = _build_base(items)
            assert state.base is not None
            alive = None
            if dead:
                alive = np.ones(state.base.table.num_rows, dtype=bool)
                alive[np.asarray(dead, dtype=np.int64)] = False
            recent = IndexedRows.build(_table(SALES_MINUTE_SCHEMA, recent_rows)) if recent_rows else None
            snapshot = SalesIndex(version, state.base, alive, recent)
            state.snapshot, state.snapshot_of = snapshot, dimension_version
            return snapshot

    def sales_minute(self, dimension: str) -> pa.Table:
        """Every minute row of ``dimension`` (SALES_MINUTE_SCHEMA), sorted by key and bucket_start."""
        return self.sales_index(dimension).table()

    def _whole(self, view: str, schema: pa.Schema, rows: dict[str, tuple[Any, ...]], order: str) -> pa.Table:
        with self._lock:
            version = self._view_versions[view]
            cached = self._whole_cache.get(view)
            if cached is not None and cached[0] == version:
                return cached[1]
            values = list(rows.values())
        table = _sort_rows(_table(schema, values), [(order, "ascending")])
        with self._lock:
            self._whole_cache[view] = (version, table)
        return table

    def inventory(self) -> pa.Table:
        """Stock per product (INVENTORY_SCHEMA, the columns of speed/inventory), by product_id."""
        return self._whole("inventory", INVENTORY_SCHEMA, self._inventory, "product_id")

    def alerts(self) -> pa.Table:
        """Every alert in its newest state (ALERTS_SCHEMA, the columns of speed/alerts), by alert_id."""
        return self._whole("alerts", ALERTS_SCHEMA, self._alerts, "alert_id")

    def newest(self) -> dict[str, datetime | None]:
        """Newest sales bucket, newest speed update and newest inventory event time seen on the topics."""
        with self._lock:
            values = dict(self._newest)
        return {
            name: None if micros is None else _EPOCH + timedelta(microseconds=micros) for name, micros in values.items()
        }

    def status(self) -> dict[str, Any]:
        """What the consumer is doing, for /api/health."""
        with self._lock:
            topics = {}
            for view, topic in self.topics.items():
                parts = [p for p in self._partitions.values() if p.view == view]
                behind = [p.end - (p.next_offset or 0) for p in parts if p.end is not None]
                topics[topic] = {
                    "view": view,
                    "present": self._present[view],
                    "partitions": len(parts),
                    "caught_up": self._caught_up(view),
                    "offsets_behind": max(0, sum(behind)) if parts and len(behind) == len(parts) else None,
                }
            return {
                "kind": "kafka",
                "bootstrap_servers": self._bootstrap,
                "running": self.running,
                "connected": self._connected,
                "connects": self._connects,
                "last_error": self._last_error,
                "last_error_at": self._last_error_at,
                "version": self._version,
                "messages_applied": self._applied,
                "records_skipped": sum(self._skipped.values()),
                "skip_reasons": dict(self._skipped),
                "last_skipped": self._last_skipped,
                "last_message_at": self._last_message_at,
                "last_record_timestamp": self._last_record_time,
                "topics": topics,
            }

    # --- applying records (consumer thread) ---------------------------------------------------------------
    def _apply(self, topic: str, records: Iterable[Any]) -> int:
        """Apply consumed records of ``topic`` (kafka-python ConsumerRecords, in offset order).

        Parses outside the lock, applies under it. Returns the number of records applied (the rest were skipped
        and counted by reason).
        """
        view = self._view_of[topic]
        parsed: list[tuple[str, Any]] = []
        skipped: list[tuple[str, Any]] = []
        newest_time = None
        for record in records:
            try:
                if record.key is None:
                    raise _Skip("missing_key")
                try:
                    key = record.key.decode("utf-8") if isinstance(record.key, bytes) else str(record.key)
                except UnicodeDecodeError:
                    raise _Skip("bad_key") from None
                if record.value is None:
                    parsed.append((key, None))  # a tombstone: the key is gone
                elif view == "sales":
                    parsed.append((key, _sales_row(key, record.value)))
                elif view == "inventory":
                    parsed.append((key, _inventory_row(key, record.value)))
                else:
                    parsed.append((key, _alert_row(key, record.value)))
            except _Skip as reason:
                skipped.append((str(reason), record))
            except Exception as error:  # noqa: BLE001 - a record must never stop the thread
                skipped.append((f"unexpected_{type(error).__name__}", record))
            stamp = getattr(record, "timestamp", None)
            if isinstance(stamp, int) and stamp >= 0 and (newest_time is None or stamp > newest_time):
                newest_time = stamp
        now = datetime.now(UTC)
        with self._changed:
            for key, row in parsed:
                self._apply_one(view, key, row)
            for reason, record in skipped:
                self._skipped[reason] += 1
                self._last_skipped = {
                    "topic": topic,
                    "partition": getattr(record, "partition", None),
                    "offset": getattr(record, "offset", None),
                    "reason": reason,
                    "at": now,
                }
            if skipped:
                log.warning("skipped %d record(s) of %s (last: %s)", len(skipped), topic, skipped[-1][0])
            if parsed:
                self._applied += len(parsed)
                self._version += len(parsed)
                self._view_versions[view] += len(parsed)
                self._last_message_at = now
            if newest_time is not None:
                self._last_record_time = datetime.fromtimestamp(newest_time / 1000, UTC)
            self._changed.notify_all()
        return len(parsed)

    def _apply_one(self, view: str, key: str, row: Any) -> None:
        if view == "sales":
            if row is None:
                dimension = key.split("|", 1)[0]
                state = self._sales.get(dimension)
                if state is not None and state.rows.pop(key, None) is not None:
                    state.changed.add(key)
                    state.version += 1
                return
            dimension, values, updated_at = row
            state = self._sales[dimension]
            if state.rows.get(key) != values:  # an identical re-send changes nothing
                state.rows[key] = values
                state.changed.add(key)
                state.version += 1
            self._newer("bucket_start", values[0])
            self._newer("updated_at", updated_at)
            return
        table = self._inventory if view == "inventory" else self._alerts
        if row is None:
            table.pop(key, None)
            return
        table[key] = row
        if view == "inventory":
            self._newer("last_event_time", row[4])

    def _newer(self, name: str, micros: int | None) -> None:
        if micros is not None and (self._newest[name] is None or micros > self._newest[name]):  # type: ignore[operator]
            self._newest[name] = micros

    def _reset_view(self, view: str) -> None:
        """Forget a view's rows (its topic was re-created or truncated): it is read again from the start."""
        with self._changed:
            if view == "sales":
                self._warm_sales = True
                for state in self._sales.values():
                    if state.rows:
                        state.changed.update(state.rows)
                        state.rows.clear()
                        state.version += 1
            elif view == "inventory":
                self._inventory.clear()
            else:
                self._alerts.clear()
            self._view_versions[view] += 1
            self._version += 1
            for part in self._partitions.values():
                if part.view == view:
                    part.next_offset, part.target, part.caught_up = None, None, False

    def _note(self, connected: bool | None = None, error: BaseException | str | None = None) -> None:
        with self._changed:
            if connected is not None:
                self._connected = connected
            if error is not None:
                text = error if isinstance(error, str) else f"{type(error).__name__}: {error}"
                if text != self._last_error:
                    log.warning("speed topics: %s", text)
                self._last_error = text
                self._last_error_at = datetime.now(UTC)
            self._changed.notify_all()

    def _run(self) -> None:
        backoff = self._backoff[0]
        while not self._stop.is_set():
            consumer = None
            try:
                consumer = _Consumer.create(**self._config)
                with self._lock:
                    self._connects += 1
                self._note(connected=True)
                backoff = self._backoff[0]
                self._consume(consumer)
            except Exception as error:  # noqa: BLE001 - never let the thread die: report and retry
                self._note(connected=False, error=error)
            finally:
                with self._lock:
                    for part in self._partitions.values():
                        part.end = None
                if consumer is not None:
                    try:
                        consumer.close(autocommit=False, timeout_ms=1000)
                    except Exception:  # noqa: BLE001
                        log.debug("closing the consumer failed", exc_info=True)
                self._note(connected=False)
            if self._stop.wait(backoff):
                break
            backoff = min(backoff * 2, self._backoff[1])

    def _consume(self, consumer: Any) -> None:
        assigned: set[Any] = set()
        next_metadata = next_offsets = 0.0
        missing_backoff = self._backoff[0]
        while not self._stop.is_set():
            now = time.monotonic()
            if now >= next_metadata:
                complete = self._assign(consumer, assigned)
                if complete:
                    next_metadata, missing_backoff = now + self._metadata_refresh_s, self._backoff[0]
                else:
                    next_metadata = now + missing_backoff
                    missing_backoff = min(missing_backoff * 2, self._backoff[1])
            if not assigned:
                self._stop.wait(min(0.5, max(0.0, next_metadata - time.monotonic())))
                continue
            batches = consumer.poll(timeout_ms=self._poll_timeout_ms)
            if batches and not self._connected:
                self._note(connected=True)  # records came in: Kafka answers again
            for tp, records in batches.items():
                if records:
                    self._apply(tp.topic, records)
                    with self._lock:
                        part = self._partitions[tp]
                        part.next_offset = records[-1].offset + 1
                        if part.target is not None and part.next_offset >= part.target:
                            part.caught_up = True
            if self._warm_sales and self.caught_up("sales"):
                # build the first snapshots here rather than in the first query after catching up
                self._warm_sales = False
                for dimension in DIMENSIONS:
                    self.sales_index(dimension)
            if time.monotonic() >= next_offsets:
                if not self._check_offsets(consumer, assigned):
                    next_metadata = 0.0  # a topic was re-created: assign and read it again at once
                next_offsets = time.monotonic() + self._offsets_check_s

    def _assign(self, consumer: Any, assigned: set[Any]) -> bool:
        """Assign every partition of the topics that exist; returns whether all three exist."""
        from kafka import TopicPartition

        wanted: list[Any] = []
        complete = True
        for view, topic in self.topics.items():
            numbers = consumer.partitions_for_topic(topic)
            with self._lock:
                self._present[view] = bool(numbers) or self._present[view]
            if not numbers:
                complete = False
                if not any(tp.topic == topic for tp in assigned):
                    self._note(error=f"topic {topic} does not exist (yet)")
                continue
            wanted += [TopicPartition(topic, number) for number in sorted(numbers)]
        wanted += [tp for tp in assigned if tp not in set(wanted)]  # a partition never goes away
        if set(wanted) == assigned:
            return complete
        consumer.assign(wanted)
        timeout = self._request_timeout_ms
        begin = consumer.beginning_offsets(wanted, timeout_ms=timeout)
        end = consumer.end_offsets(wanted, timeout_ms=timeout)
        stale: set[str] = set()
        with self._lock:
            for tp in wanted:
                part = self._partitions.setdefault(tp, _Partition(self._view_of[tp.topic]))
                if part.next_offset is not None and part.next_offset > end[tp]:
                    stale.add(part.view)  # fewer records than we read: the topic was re-created
        for view in stale:
            self._reset_view(view)
        with self._changed:
            for tp in wanted:
                part = self._partitions[tp]
                if part.next_offset is None or part.next_offset < begin[tp]:
                    part.next_offset = begin[tp]
                if part.target is None:
                    part.target = end[tp]
                part.end = end[tp]
                part.caught_up = part.caught_up or part.next_offset >= part.target
                consumer.seek(tp, part.next_offset)
            self._changed.notify_all()
        assigned.clear()
        assigned.update(wanted)
        return complete

    def _check_offsets(self, consumer: Any, assigned: set[Any]) -> bool:
        """End offsets of every partition: lag, catching up past compaction gaps, and whether Kafka answers.

        Returns False when a topic turned out re-created (its view was reset and must be assigned again).
        """
        try:
            end = consumer.end_offsets(list(assigned), timeout_ms=min(self._request_timeout_ms, 2000))
        except Exception as error:  # noqa: BLE001 - the consumer reconnects by itself; report meanwhile
            self._note(connected=False, error=error)
            return True
        stale: set[str] = set()
        behind: list[Any] = []
        with self._changed:
            self._connected = True
            for tp, offset in end.items():
                part = self._partitions[tp]
                part.end = offset
                if part.next_offset is not None and part.next_offset > offset:
                    stale.add(part.view)
                elif not part.caught_up:
                    behind.append(tp)
            self._changed.notify_all()
        for view in stale:
            self._reset_view(view)
        if stale:
            assigned.clear()  # re-assigned (and sought to the beginning) on the next round
            return False
        for tp in behind:
            # the records before a target may be gone (compaction, control records): trust the fetch position
            try:
                position = consumer.position(tp, timeout_ms=200)
            except Exception:  # noqa: BLE001
                continue
            with self._changed:
                part = self._partitions[tp]
                if position is not None and part.target is not None and position >= part.target:
                    part.next_offset = max(part.next_offset or 0, position)
                    part.caught_up = True
                    self._changed.notify_all()
        return True
