"""One definition of each metric: the same rows through a static (batch) and a streaming path agree."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal

from pyspark.testing import assertDataFrameEqual

from contracts.metrics import sales_rollup
from speed_layer.transforms import minute_rollups

SCHEMA = (
    "event_id string, event_type string, event_time timestamp, user_id string, product_id string, "
    "category string, quantity int, unit_price decimal(18,2)"
)
T = datetime
ROWS = [
    ("e1", "purchase", T(2026, 1, 1, 10, 0, 0), "u1", "p1", "books", 2, Decimal("19.99")),
    ("e2", "page_view", T(2026, 1, 1, 10, 0, 59, 999000), "u2", "p1", "books", None, None),
    ("e3", "purchase", T(2026, 1, 1, 10, 1, 0), "u1", "p2", "toys", 1, Decimal("0.01")),
    ("e3", "purchase", T(2026, 1, 1, 10, 1, 0), "u1", "p2", "toys", 1, Decimal("0.01")),  # re-sent
    ("e4", "restock", T(2026, 1, 1, 10, 1, 0), None, "p2", "toys", 50, None),
    ("e5", "add_to_cart", T(2026, 1, 1, 10, 1, 30), "u3", "p2", None, 1, None),
]


def test_minute_rollup_matches_hand_computed_values(spark) -> None:
    events = spark.createDataFrame(ROWS, SCHEMA).dropDuplicates(["event_id"])
    got = sales_rollup(events, grain="minute", users="exact").where("dimension = 'total'")
    expected = spark.createDataFrame(
        [
            (T(2026, 1, 1, 10, 0), T(2026, 1, 1, 10, 1), "total", "all", Decimal("39.98"), 1, 2, 2),
            (T(2026, 1, 1, 10, 1), T(2026, 1, 1, 10, 2), "total", "all", Decimal("0.01"), 1, 1, 2),
        ],
        "bucket_start timestamp, bucket_end timestamp, dimension string, key string, revenue decimal(18,2), "
        "orders bigint, units bigint, distinct_users bigint",
    )
    assertDataFrameEqual(got, expected)
    categories = {r.key for r in sales_rollup(events).where("dimension = 'category'").collect()}
    assert categories == {"books", "toys", "unknown"}  # a missing category is reported, not dropped


def test_empty_input_gives_no_rows(spark) -> None:
    assert sales_rollup(spark.createDataFrame([], SCHEMA), grain="hour").count() == 0


def test_streaming_rollup_equals_static_rollup(spark, test_root) -> None:
    source = str(test_root / "parity_events")
    spark.createDataFrame(ROWS, SCHEMA).write.format("delta").mode("overwrite").save(source)
    sink: list = []
    schemas: list = []

    def collect(batch, _batch_id) -> None:
        rows = batch.drop("users_sketch")
        schemas.append(rows.schema)
        sink.extend(rows.collect())

    query = (
        minute_rollups(spark.readStream.format("delta").load(source), watermark="5 minutes")
        .writeStream.outputMode("update")
        .option("checkpointLocation", str(test_root / "parity_ck"))
        .foreachBatch(collect)
        .trigger(availableNow=True)
        .start()
    )
    query.awaitTermination()
    streamed = spark.createDataFrame(sink, schemas[0]).withColumnRenamed("users_estimate", "distinct_users")
    static = sales_rollup(spark.createDataFrame(ROWS, SCHEMA).dropDuplicates(["event_id"]), "minute", "exact")
    # HLL estimates are exact at this cardinality, so the sketch path must agree with count(DISTINCT) here
    assertDataFrameEqual(streamed.select(*static.columns), static, ignoreNullable=True)
