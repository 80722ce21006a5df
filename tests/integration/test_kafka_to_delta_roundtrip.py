"""Foundation check: 10,000 generated events through the real broker and Spark's Kafka source into Delta."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest
from pyspark.sql import functions as F

from contracts.tables import Lake
from event_generator.generator import GeneratorConfig, generate, produce

pytestmark = pytest.mark.integration


def test_ten_thousand_events_land_in_delta_exactly_once(kafka, spark, settings, test_root) -> None:
    topic = "foundation.roundtrip"
    kafka.ensure_topics({topic: 3})
    records = list(generate(GeneratorConfig(seed=11, count=10_000, start=datetime(2026, 1, 5, tzinfo=UTC))))
    expected_ids = {json.loads(record.value)["event_id"] for record in records}
    assert len(expected_ids) == 10_000

    counts = produce(records, settings, topic=topic)
    assert sum(counts.values()) == 10_000

    target = f"{test_root}/lake/foundation_roundtrip"
    source = spark.read.format("kafka")
    for key, value in settings.kafka_client_options().items():
        source = source.option(f"kafka.{key}", value)
    raw = (
        source.option("subscribe", topic).option("startingOffsets", "earliest").option("endingOffsets", "latest").load()
    )
    (
        raw.select(
            F.col("key").cast("string").alias("product_id"),
            F.get_json_object(F.col("value").cast("string"), "$.event_id").alias("event_id"),
            "topic",
            "partition",
            "offset",
        )
        .write.format("delta")
        .mode("errorifexists")
        .save(target)
    )

    table = spark.read.format("delta").load(target)
    assert table.count() == 10_000
    assert table.select("event_id").distinct().count() == 10_000
    assert {row.event_id for row in table.select("event_id").collect()} == expected_ids
    assert table.select("partition").distinct().count() == 3  # keyed by product id over 3 partitions

    version_zero = spark.read.format("delta").option("versionAsOf", 0).load(target)
    assert version_zero.count() == 10_000
    history = spark.sql(f"DESCRIBE HISTORY delta.`{target}`").select("version").collect()
    assert [row.version for row in history] == [0]
    assert Lake(settings.lake_root, settings.checkpoint_root).bronze_events.startswith(settings.lake_root)
