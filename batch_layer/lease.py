"""One batch run at a time, whoever starts it (Airflow, ``retail batch``, a notebook): a lease in the lake.

The lease is a one-row Delta table, ``batch/lease`` (holder, token, acquired_at, expires_at), written only here and
only through delta-rs (one writer per table). Every change is a compare-and-swap: a Delta UPDATE of the row the
caller read, and Delta's conflict check refuses the commit when another writer changed that row in between
("a concurrent transaction deleted data this operation read"). So of two runs that find the lease free, exactly one
takes it.

- ``token`` grows by one each time a new holder takes the lease (the fencing token). A holder keeps its token while
  it renews; a run that finds another token than its own has lost the lease and must not write (``LeaseLost``).
- A holder renews the lease while a step runs (``Lease.kept``: a thread, every third of the lease's duration) and
  from one step to the next (Airflow tasks are separate processes; the lease outlives the gap between them).
- A crashed holder blocks the next run until its lease expires (``RETAIL_BATCH_LEASE_SECONDS``); the same run id
  (an Airflow retry, a rerun) takes its own lease back at once.

On object storage the lease is exactly as safe as Delta's log store there: the compare-and-swap relies on the
store creating a commit file only if it does not exist (local disks and HDFS do; S3 needs conditional writes or a
locking provider for delta-rs, see docs/scale-out.md).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Literal

from batch_layer.errors import BatchError

__all__ = ["LEASE_TABLE", "Lease", "LeaseHeld", "LeaseLost", "LeaseState", "decide"]

LEASE_TABLE = "batch/lease"
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
# compare-and-swap attempts before giving up (each lost attempt means another writer changed the row meanwhile);
# a waiting acquire sleeps between reads, so this also bounds a wait to ~10,000 reads
_ATTEMPTS = range(10_000)


@dataclass(frozen=True)
class LeaseState:
    """The lease row: ``holder`` is the run id holding it ("" when free)."""

    holder: str
    token: int
    acquired_at: datetime
    expires_at: datetime

    def free_at(self, now: datetime) -> bool:
        return not self.holder or self.expires_at <= now


class LeaseHeld(BatchError):
    """Another run holds the lease (and the caller would not wait, or waited long enough)."""

    def __init__(self, run_id: str, state: LeaseState) -> None:
        self.state = state
        super().__init__(
            f"run {run_id!r} cannot start: batch run {state.holder!r} holds the batch lease (token {state.token}) "
            f"until {state.expires_at:%Y-%m-%d %H:%M:%S} UTC unless it renews it. One batch run at a time: wait for "
            "it to finish (or its lease to expire, if it crashed), or pass --wait-for-lease SECONDS"
        )


class LeaseLost(BatchError):
    """The run's lease expired and another run took it: this run must not write anything more."""

    def __init__(self, run_id: str, token: int, state: LeaseState) -> None:
        self.state = state
        holder = f"run {state.holder!r} holds it" if state.holder else "it is free"
        super().__init__(
            f"run {run_id!r} lost the batch lease (its token {token}; now token {state.token}, {holder}): nothing "
            "more is written by this run; start it again from validate-input"
        )


def decide(state: LeaseState, run_id: str, token: int | None, now: datetime) -> Literal["take", "keep", "wait", "lost"]:
    """What ``run_id`` may do with the lease ``state`` at ``now`` (pure).

    ``token`` is the token the run took earlier (None: it holds none yet). ``keep``: the run holds it (expired or
    not: nobody took it since) and renews it; ``take``: the lease is free or expired and nobody took it since the
    run's own token, so the run takes it with the next token; ``wait``: another run holds it; ``lost``: another
    run took the lease after ``token``: whatever this run prepared may be older than what that run published.
    """
    if state.holder == run_id and (token is None or token == state.token):
        return "keep"
    if token is not None and token != state.token:
        return "lost"
    return "take" if state.free_at(now) else "wait"


class Lease:
    """The lease of one lake (``uri``: the ``batch/lease`` table, with delta-rs storage options)."""

    def __init__(
        self,
        uri: str,
        storage_options: dict[str, str] | None = None,
        *,
        seconds: float = 600.0,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.uri = uri
        self.storage_options = storage_options
        self.seconds = seconds
        self.clock = clock

    # --- reads ----------------------------------------------------------------------------------
    def _table(self):  # type: ignore[no-untyped-def]
        from deltalake import CommitProperties, DeltaTable, write_deltalake

        if not DeltaTable.is_deltatable(self.uri, storage_options=self.storage_options):
            try:
                # no commit retries: of two runs creating the table at once the second fails here instead of
                # appending a second row as version 1
                write_deltalake(
                    self.uri,
                    _row("", 0, _EPOCH, _EPOCH),
                    mode="error",
                    storage_options=self.storage_options,
                    commit_properties=CommitProperties(max_commit_retries=0),
                )
            except Exception:  # noqa: BLE001 - another run created it first: read theirs
                if not DeltaTable.is_deltatable(self.uri, storage_options=self.storage_options):
                    raise
        return DeltaTable(self.uri, storage_options=self.storage_options)

    def state(self) -> LeaseState:
        """The lease now (a free lease when the table does not exist yet; creates nothing)."""
        from deltalake import DeltaTable

        if not DeltaTable.is_deltatable(self.uri, storage_options=self.storage_options):
            return LeaseState("", 0, _EPOCH, _EPOCH)
        return _state_of(DeltaTable(self.uri, storage_options=self.storage_options))

    # --- changes --------------------------------------------------------------------------------
    def acquire(self, run_id: str, wait_seconds: float = 0.0, log: Callable[[str], None] = print) -> int:
        """Take (or keep, for the same run id) the lease; returns the run's fencing token.

        Raises LeaseHeld when another run holds it and ``wait_seconds`` pass first (0: do not wait).
        """
        deadline = time.monotonic() + wait_seconds
        said = None
        for _ in _ATTEMPTS:
            table = self._table()
            state = _state_of(table)
            action = decide(state, run_id, None, self.clock())
            if action in ("take", "keep"):
                token = state.token + 1 if action == "take" else state.token
                if self._swap(table, state, run_id, token):
                    return token
                continue  # another writer changed the row first: read it again
            if time.monotonic() >= deadline:
                raise LeaseHeld(run_id, state)
            if said != state.holder:
                log(f"[batch {run_id}] waiting for the batch lease held by {state.holder!r} (token {state.token})")
                said = state.holder
            time.sleep(min(5.0, max(0.1, deadline - time.monotonic())))
        raise _contended(run_id)

    def hold(self, run_id: str, token: int) -> int:
        """Renew the lease the run took with ``token``, or take it again if the run released it and nobody took it
        since; returns the run's token now. LeaseLost when another run took it after ``token``."""
        for _ in _ATTEMPTS:
            table = self._table()
            state = _state_of(table)
            action = decide(state, run_id, token, self.clock())
            if action not in ("take", "keep"):
                raise LeaseLost(run_id, token, state)
            held = token if action == "keep" else state.token + 1
            if self._swap(table, state, run_id, held):
                return held
        raise _contended(run_id)

    def release(self, run_id: str, token: int) -> bool:
        """Free the lease if the run still holds it with ``token``; returns whether it did."""
        for _ in _ATTEMPTS:
            table = self._table()
            state = _state_of(table)
            if decide(state, run_id, token, self.clock()) != "keep":
                return False
            if self._swap(table, state, "", token, expires_at=_EPOCH):
                return True
        raise _contended(run_id)

    @contextmanager
    def kept(self, run_id: str, token: int) -> Iterator[Callable[[], None]]:
        """Renew the lease in a thread while the block runs; yields a check that raises LeaseLost once a renewal
        found the lease gone (call it before each write)."""
        stop = threading.Event()
        lost: list[LeaseLost] = []

        def renew() -> None:
            while not stop.wait(self.seconds / 3):
                try:
                    self._renew(run_id, token)
                except LeaseLost as error:
                    lost.append(error)
                    return
                except Exception:  # noqa: BLE001 - a storage hiccup: the next renewal tries again
                    continue

        def check() -> None:
            if lost:
                raise lost[0]
            self._renew(run_id, token)

        thread = threading.Thread(target=renew, name=f"batch-lease-{run_id}", daemon=True)
        thread.start()
        try:
            yield check
        finally:
            stop.set()
            thread.join(timeout=5)

    def _renew(self, run_id: str, token: int) -> None:
        if self.hold(run_id, token) != token:  # released under a running step: only an operator does that
            raise LeaseLost(run_id, token, self.state())

    def _swap(self, table, state: LeaseState, holder: str, token: int, *, expires_at: datetime | None = None) -> bool:  # type: ignore[no-untyped-def]
        """Replace the row ``state`` by (holder, token); False when another writer changed it first."""
        from deltalake.exceptions import CommitFailedError

        now = self.clock()
        values = {
            "holder": holder,
            "token": token,
            "acquired_at": state.acquired_at if holder and holder == state.holder else now,
            "expires_at": expires_at if expires_at is not None else now + timedelta(seconds=self.seconds),
        }
        holder_sql = state.holder.replace("'", "''")
        try:
            result = table.update(new_values=values, predicate=f"token = {state.token} AND holder = '{holder_sql}'")
        except CommitFailedError:
            return False
        return int(result.get("num_updated_rows", 0)) == 1


def _contended(run_id: str) -> BatchError:
    return BatchError(f"run {run_id!r}: the batch lease kept changing under every attempt to update it; try again")


def _row(holder: str, token: int, acquired_at: datetime, expires_at: datetime):  # type: ignore[no-untyped-def]
    import pyarrow as pa

    from contracts.tables import TABLE_SCHEMAS

    types = {"string": pa.string(), "bigint": pa.int64(), "timestamp": pa.timestamp("us", tz="UTC")}
    fields = [column.strip().split(" ") for column in TABLE_SCHEMAS[LEASE_TABLE].split(",")]
    schema = pa.schema([(name, types[kind]) for name, kind in fields])
    values = {"holder": holder, "token": token, "acquired_at": acquired_at, "expires_at": expires_at}
    return pa.table({name: [values[name]] for name, _ in fields}, schema=schema)


def _state_of(table) -> LeaseState:  # type: ignore[no-untyped-def]
    rows = table.to_pyarrow_table().to_pylist()
    if len(rows) != 1:
        raise BatchError(f"the batch lease table holds {len(rows)} rows instead of one: {rows[:3]}")
    row = rows[0]
    return LeaseState(
        holder=str(row["holder"] or ""),
        token=int(row["token"]),
        acquired_at=_aware(row["acquired_at"]),
        expires_at=_aware(row["expires_at"]),
    )


def _aware(value: datetime) -> datetime:
    return value.astimezone(UTC) if value.tzinfo is not None else value.replace(tzinfo=UTC)
