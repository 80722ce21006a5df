"""Re-ingest quarantined records after the contract is fixed: ``retail replay-quarantine``.

Each selected row of bronze/quarantine (its raw key and value, Kafka coordinates and original ingest time) is
parsed again with the CURRENT parser (contracts.parser.parse_kafka_records, the current settings), judged at its
original ingest time, so the verdict never depends on when the replay runs. Records that now pass become bronze
rows with their original Kafka coordinates and ingest time; they are added with an insert-only Delta MERGE on
event_id, so an event whose id bronze already holds is never added again: running the replay twice adds nothing
(the batch layer deduplicates by event_id over all history as well, so even a concurrent re-send of the same
event counts once). Quarantine is left as it is: it is the record of what was rejected at ingest, and a record
that still fails is reported with its current reason.

The speed views never see replayed events (they read Kafka, not bronze); the batch layer does, at its next run
over the events' days: within the nightly lookback, or with ``retail batch --date DAY`` for older days.

Usage::

    RETAIL_MAX_EVENT_TIME_SKEW_SECONDS=3600 retail replay-quarantine --reason event_time_in_future
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from delta.tables import DeltaTable
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from contracts.parser import REJECT_REASONS, parse_kafka_records
from contracts.settings import Settings
from contracts.tables import Lake
from speed_layer.sinks import ensure_speed_tables, retry_delta_conflicts
from speed_layer.transforms import first_copies, valid_events

__all__ = ["ReplayReport", "replay_quarantine", "replayable_records"]

_COMMIT_ATTEMPTS = 5


@dataclass(frozen=True)
class ReplayReport:
    """Counts of one replay: selected quarantine rows, events added to bronze, and what still fails."""

    selected: int
    now_valid: int
    added: int
    already_in_bronze: int
    still_failing: dict[str, int]
    event_dates: list[str]

    def describe(self) -> str:
        failing = ", ".join(f"{reason} {n}" for reason, n in sorted(self.still_failing.items())) or "none"
        days = ", ".join(self.event_dates) or "none"
        return (
            f"replayed {self.selected} quarantined records: {self.now_valid} pass the current contract, "
            f"{self.added} events added to bronze/events, {self.already_in_bronze} already there; still failing: "
            f"{failing}. Event days touched: {days} (the batch layer counts them at its next run over those days: "
            f"nightly lookback, or `retail batch --date DAY`)"
        )


def replayable_records(quarantine: DataFrame, reasons: list[str] | None, since: datetime | None) -> DataFrame:
    """Quarantine rows selected by reason and ingest time, shaped as Kafka source rows plus their ingest_time.

    Requires the bronze/quarantine columns; output columns: key, value, topic, partition, offset, timestamp,
    ingest_time. One row per selected quarantine row.
    """
    selected = quarantine
    if reasons:
        selected = selected.where(F.col("reject_reason").isin(reasons))
    if since is not None:
        selected = selected.where(F.col("ingest_time") >= F.lit(since))
    return selected.select(
        F.col("raw_key").alias("key"),
        F.col("raw_value").alias("value"),
        F.col("kafka_topic").alias("topic"),
        F.col("kafka_partition").alias("partition"),
        F.col("kafka_offset").alias("offset"),
        F.col("kafka_timestamp").alias("timestamp"),
        "ingest_time",
    )


def _insert_new_events(events: DataFrame, bronze_path: str) -> None:
    """Insert-only MERGE on event_id: only adds files, so bronze's delta.appendOnly allows it."""
    target = DeltaTable.forPath(events.sparkSession, bronze_path).alias("t")
    merge = target.merge(events.alias("s"), "t.event_id = s.event_id").whenNotMatchedInsertAll()
    # the running speed layer appended to bronze meanwhile (ConcurrentAppendException): the MERGE is redone against
    # the new version (idempotent: ids it would add twice are matched then)
    retry_delta_conflicts(merge.execute, _COMMIT_ATTEMPTS)


def replay_quarantine(
    spark: SparkSession, settings: Settings, reasons: list[str] | None = None, since: datetime | None = None
) -> ReplayReport:
    """Re-parse the selected quarantine rows with the current contract; add the events that pass to bronze once.

    Args:
        reasons: quarantine reason codes to replay (contracts.parser.REJECT_REASONS); None replays every row.
        since: replay only rows ingested at or after this moment (timezone-aware); None replays all.

    Raises:
        ValueError: an unknown reason code or a naive ``since``.
    """
    unknown = sorted(set(reasons or ()) - set(REJECT_REASONS))
    if unknown:
        raise ValueError(f"--reason must be among the quarantine reasons ({', '.join(REJECT_REASONS)}), got {unknown}")
    if since is not None and since.tzinfo is None:
        raise ValueError(f"since must be timezone-aware, got {since!r}")
    lake = Lake(settings.lake_root, settings.checkpoint_root)
    ensure_speed_tables(spark, lake)
    quarantine = spark.read.format("delta").load(lake.bronze_quarantine)
    records = replayable_records(quarantine, reasons, since)
    parsed = parse_kafka_records(
        records,
        max_event_time_skew_seconds=settings.max_event_time_skew_seconds,
        ingest_time=F.col("ingest_time"),
        currency=settings.currency,
    ).persist()
    try:
        selected = parsed.count()
        still_failing = {
            row["reject_reason"]: int(row["n"])
            for row in parsed.where(F.col("reject_reason").isNotNull())
            .groupBy("reject_reason")
            .agg(F.count(F.lit(1)).alias("n"))
            .collect()
        }
        # one row per event_id (a re-sent event may sit in quarantine twice), the copy that arrived first
        events = first_copies(valid_events(parsed)).persist()
        try:
            now_valid = events.count()
            bronze_ids = spark.read.format("delta").load(lake.bronze_events).select("event_id")
            new = events.join(bronze_ids, "event_id", "left_anti")
            added = new.count()
            days = sorted({str(row["event_date"]) for row in new.select("event_date").distinct().collect()})
            if now_valid:
                _insert_new_events(events, lake.bronze_events)
        finally:
            events.unpersist()
    finally:
        parsed.unpersist()
    return ReplayReport(selected, now_valid, added, now_valid - added, still_failing, days)
