"""Pure transformations of the speed layer: DataFrame in, DataFrame out, static or streaming. No I/O here.

- :func:`valid_events` / :func:`quarantined_records` split parsed Kafka records (contracts.parser).
- :func:`minute_rollups` deduplicates by event_id within the watermark and applies the shared metric.
- :func:`inventory_updates` keeps stock per product (applyInPandasWithState) and emits alert transitions.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import timedelta

import pandas as pd
from pyspark.sql import DataFrame
from pyspark.sql import functions as F
from pyspark.sql.streaming.state import GroupState, GroupStateTimeout

from contracts.events import EventType
from contracts.metrics import sales_rollup
from contracts.tables import BRONZE_COLUMNS, QUARANTINE_COLUMNS

__all__ = [
    "valid_events",
    "quarantined_records",
    "minute_rollups",
    "inventory_updates",
    "INVENTORY_OUTPUT_SCHEMA",
    "alert_id_for",
]


def valid_events(parsed: DataFrame) -> DataFrame:
    """Bronze rows: every record without a reject reason, duplicates and late ones included (BRONZE_COLUMNS)."""
    return parsed.where(F.col("reject_reason").isNull()).select(*BRONZE_COLUMNS)


def quarantined_records(parsed: DataFrame) -> DataFrame:
    """Quarantine rows: raw bytes, Kafka coordinates and the reason (QUARANTINE_COLUMNS)."""
    return parsed.where(F.col("reject_reason").isNotNull()).select(*QUARANTINE_COLUMNS)


def minute_rollups(events: DataFrame, watermark: str) -> DataFrame:
    """Provisional minute rollups with sketch distinct users: one row per minute × dimension × key.

    Requires bronze columns (event_id, event_type, event_time, user_id, product_id, category, quantity,
    unit_price). Events later than ``watermark`` behind the newest event time are left out (Spark counts them
    as numRowsDroppedByWatermark); a re-sent event_id within the watermark is counted once.
    """
    deduplicated = events.withWatermark("event_time", watermark).dropDuplicatesWithinWatermark(["event_id"])
    return sales_rollup(deduplicated, grain="minute", users="sketch")


# one row per product whose stock changed in the micro-batch, plus one per alert opened or resolved
INVENTORY_OUTPUT_SCHEMA = (
    "row_kind string, product_id string, stock bigint, threshold int, below_threshold boolean, "
    "last_event_time timestamp, alert_id string, alert_at timestamp"
)
# the applied event ids travel as JSON ({event_id: event time in epoch seconds}): pandas state handles flat
# columns best
_STATE_SCHEMA = "stock bigint, open_alert_id string, seen_json string"


def alert_id_for(product_id: str, kafka_partition: int, kafka_offset: int) -> str:
    """Deterministic alert id: the product and the Kafka coordinates of the event that crossed the threshold.

    A replayed micro-batch produces the same id, so consumers of retail.alerts deduplicate by it.
    """
    return f"low_stock:{product_id}:{kafka_partition}:{kafka_offset}"


def _inventory_state_fn(threshold: int, dedup_horizon: timedelta):  # type: ignore[no-untyped-def]
    """The per-product state function: applies restocks/purchases in Kafka order, once per event_id."""

    def apply(key: tuple[str], batches: Iterator[pd.DataFrame], state: GroupState) -> Iterator[pd.DataFrame]:
        (product_id,) = key
        if state.hasTimedOut:
            return
        if state.exists:
            stock, open_alert, seen_json = state.get
            seen: dict[str, float] = json.loads(seen_json)
        else:
            stock, open_alert, seen = 0, None, {}
        events = pd.concat(list(batches), ignore_index=True).sort_values(["kafka_partition", "kafka_offset"])
        alerts: list[dict[str, object]] = []
        last_time = None
        changed = False
        for row in events.itertuples(index=False):
            if row.event_id in seen:
                continue  # a re-sent event: already applied
            seen[row.event_id] = pd.Timestamp(row.event_time).timestamp()
            delta = row.quantity if row.event_type == EventType.RESTOCK.value else -row.quantity
            stock += int(delta)
            changed = True
            last_time = row.event_time if last_time is None else max(last_time, row.event_time)
            if stock < threshold and open_alert is None:
                open_alert = alert_id_for(product_id, int(row.kafka_partition), int(row.kafka_offset))
                alerts.append(
                    {"row_kind": "alert_open", "alert_id": open_alert, "alert_at": row.kafka_timestamp, "stock": stock}
                )
            elif stock >= threshold and open_alert is not None:
                alerts.append(
                    {
                        "row_kind": "alert_resolve",
                        "alert_id": open_alert,
                        "alert_at": row.kafka_timestamp,
                        "stock": stock,
                    }
                )
                open_alert = None
        if seen:
            # remember ids only as long as a re-send can plausibly arrive (the watermark's horizon)
            oldest_kept = max(seen.values()) - dedup_horizon.total_seconds()
            seen = {event_id: moment for event_id, moment in seen.items() if moment >= oldest_kept}
        state.update((int(stock), open_alert, json.dumps(seen)))
        if not changed:
            return
        rows = [{"row_kind": "inventory", "alert_id": None, "alert_at": None, "stock": stock}, *alerts]
        frame = pd.DataFrame(rows)
        frame["product_id"] = product_id
        frame["threshold"] = threshold
        frame["below_threshold"] = stock < threshold
        frame["last_event_time"] = last_time
        yield frame[
            [
                "row_kind",
                "product_id",
                "stock",
                "threshold",
                "below_threshold",
                "last_event_time",
                "alert_id",
                "alert_at",
            ]
        ]

    return apply


def inventory_updates(events: DataFrame, threshold: int, dedup_horizon: timedelta) -> DataFrame:
    """Stock per product from restocks (+) and purchases (−), with low-stock alert transitions.

    Requires event_id, event_type, event_time, product_id, quantity, kafka_partition, kafka_offset and
    kafka_timestamp (an alert opens or resolves at the Kafka timestamp of the event that crossed the threshold:
    arrival order, so a late restock never resolves an alert "before" it opened, and replays give the same
    time). The topic is keyed by product_id, so one product's events share a partition and offsets give their
    order. An event_id already applied is ignored; events later than the watermark (``dedup_horizon``, the same
    delay as the rollups') are left out, like in every speed view, and counted by Spark as late. At most one
    alert is open per product: it opens when stock falls below ``threshold`` and resolves when stock is back at
    or above it.

    Output (INVENTORY_OUTPUT_SCHEMA, update mode): one ``inventory`` row per product touched in the batch and one
    ``alert_open`` / ``alert_resolve`` row per transition.
    """
    if threshold < 0:
        raise ValueError(f"threshold must be >= 0, got {threshold}")
    stock_events = (
        events.where(F.col("event_type").isin(EventType.RESTOCK.value, EventType.PURCHASE.value))
        .select(
            "event_id",
            "event_type",
            "event_time",
            "product_id",
            "quantity",
            "kafka_partition",
            "kafka_offset",
            "kafka_timestamp",
        )
        # the same lateness rule as the rollups: Spark drops events older than the watermark before the state
        # function sees them, so an event_id forgotten by the state (older than the horizon) cannot be re-applied
        .withWatermark("event_time", f"{int(dedup_horizon.total_seconds())} seconds")
    )
    return stock_events.groupBy("product_id").applyInPandasWithState(
        _inventory_state_fn(threshold, dedup_horizon),
        outputStructType=INVENTORY_OUTPUT_SCHEMA,
        stateStructType=_STATE_SCHEMA,
        outputMode="update",
        # event-time timeout is what makes Spark drop input older than the watermark for this operator; no
        # timeout is ever set, so the state itself never expires
        timeoutConf=GroupStateTimeout.EventTimeTimeout,
    )
