"""Build the class-data-sharing archives that make later JVM starts cheaper (``make setup`` runs this).

Usage: python -m infra.jvm_archive [--cache DIR] [--force]

Each kind of JVM the project starts runs once here with ``-XX:ArchiveClassesAtExit``, doing a small version of its
usual work, and the JVM writes the classes it loaded into an archive as it exits:

- ``spark``: a local session that writes, merges and reads Delta tables (decimals, dates), runs a stateful
  streaming query (watermark, dedup, window aggregation on RocksDB) into a foreachBatch Delta write, and plans a
  Kafka source. Drivers, executors and the standalone daemons use it (contracts/spark.py, infra/spark_cluster.py).
- ``kafka``: a broker on free loopback ports that creates a topic, takes and serves a few records and stops.

Nothing is rebuilt while the archive of the current JVM build and class path exists (``--force`` rebuilds); older
archives of the same kind are removed. The archive's file name says what it is valid for (contracts/jvm.py).
"""

from __future__ import annotations

import argparse
import contextlib
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path

from contracts.jvm import kafka_archive, spark_archive
from contracts.settings import PROJECT_ROOT, Settings
from infra.processes import free_port

__all__ = ["build_kafka_archive", "build_spark_archive", "main"]

_DUMP_TIMEOUT_S = 600.0


def _install(fresh: Path, archive: Path) -> None:
    """Put ``fresh`` in place as ``archive`` and drop the older archives of the same kind."""
    if not fresh.is_file() or fresh.stat().st_size == 0:
        raise RuntimeError(f"the JVM wrote no archive at {fresh}")
    os.replace(fresh, archive)
    kind = archive.name.split("-", 1)[0]
    for old in archive.parent.glob(f"{kind}-*.jsa"):
        if old != archive:
            old.unlink(missing_ok=True)


def _spark_workload(archive_tmp: Path, work: Path) -> None:
    """The training run of a Spark driver (in its own interpreter: the JVM dumps its archive when it exits)."""
    from pyspark.sql import functions as F

    from contracts.spark import build_spark_session

    settings = Settings(_env_file=None, lake_root=str(work / "lake"), checkpoint_root=str(work / "ck"))
    spark = build_spark_session(
        settings,
        app_name="retail-jvm-archive",
        extra_conf={"spark.driver.extraJavaOptions": f"-Xss64m -XX:ArchiveClassesAtExit={archive_tmp}"},
    )
    gateway = spark.sparkContext._gateway.proc  # type: ignore[attr-defined]  # pyspark keeps its JVM's Popen here
    lake = work / "lake"
    events = (
        spark.range(2000)
        .select(
            F.col("id").cast("string").alias("event_id"),
            (F.col("id") % 7).cast("string").alias("product_id"),
            (F.col("id") % 100 / 10).cast("decimal(18,2)").alias("price"),
            F.timestamp_seconds(F.lit(1_767_225_600) + F.col("id")).alias("event_time"),
        )
        .withColumn("day", F.to_date("event_time"))
    )
    events.write.format("delta").partitionBy("day").save(f"{lake}/events")
    from delta.tables import DeltaTable

    target = DeltaTable.forPath(spark, f"{lake}/events")
    (
        target.alias("t")
        .merge(events.limit(100).alias("s"), "t.event_id = s.event_id")
        .whenMatchedUpdateAll()
        .whenNotMatchedInsertAll()
        .execute()
    )

    def write_batch(batch, batch_id: int) -> None:  # type: ignore[no-untyped-def]
        batch.write.format("delta").mode("append").save(f"{lake}/rollup")

    stream = (
        spark.readStream.format("delta")
        .load(f"{lake}/events")
        .withWatermark("event_time", "5 minutes")
        .dropDuplicatesWithinWatermark(["event_id"])
        .groupBy(F.window("event_time", "1 minute").alias("bucket"), "product_id")
        .agg(F.sum("price").alias("revenue"), F.approx_count_distinct("event_id").alias("events"))
    )
    query = (
        stream.writeStream.outputMode("update")
        .foreachBatch(write_batch)
        .option("checkpointLocation", str(work / "ck" / "rollup"))
        .trigger(availableNow=True)
        .start()
    )
    query.awaitTermination()
    spark.read.format("delta").load(f"{lake}/rollup").groupBy("product_id").agg(F.sum("revenue")).collect()
    kafka = (
        spark.readStream.format("kafka")
        .option("kafka.bootstrap.servers", "127.0.0.1:9")
        .option("subscribe", "retail.jvm-archive")
        .load()
    )
    kafka.selectExpr("CAST(value AS STRING)").explain()
    spark.stop()
    gateway.stdin.close()  # the JVM exits on EOF and writes the archive on its way out
    gateway.wait(timeout=_DUMP_TIMEOUT_S)


def _build(kind: str, archive: Path | None, force: bool, train: Callable[[Path], None]) -> Path | None:
    """Build ``archive`` unless it exists: ``train(fresh)`` runs a JVM that writes ``fresh`` as it exits, which is
    then put in place. None without java."""
    if archive is None:
        return None
    if archive.is_file() and not force:
        print(f"  cds/{kind}: {archive.name} up to date")
        return archive
    archive.parent.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    fresh = archive.parent / f".{kind}-{os.getpid()}.jsa.tmp"
    try:
        train(fresh)
        _install(fresh, archive)
    finally:
        fresh.unlink(missing_ok=True)
    size = archive.stat().st_size / 2**20
    print(f"  cds/{kind}: built {archive.name} ({size:.0f} MB) in {time.monotonic() - started:.0f}s")
    return archive


def _train_spark(fresh: Path) -> None:
    """A Spark driver's training run, in its own interpreter (its JVM writes the archive when it exits)."""
    with tempfile.TemporaryDirectory(prefix="retail-jvm-archive-") as work:
        result = subprocess.run(
            [sys.executable, "-m", "infra.jvm_archive", "--spark-workload", str(fresh), work],
            cwd=PROJECT_ROOT,
            env={**os.environ, "GX_ANALYTICS_ENABLED": "false"},
            capture_output=True,
            text=True,
            timeout=_DUMP_TIMEOUT_S * 2,
            check=False,
        )
    if result.returncode != 0:
        raise RuntimeError(f"the Spark training run failed:\n{(result.stdout + result.stderr)[-3000:]}")


def _train_kafka(jar_cache: Path, fresh: Path) -> None:
    """A broker's training run: start, a topic, 100 records in and out, a clean stop (the JVM writes the archive
    on its way out)."""
    from kafka import KafkaConsumer, KafkaProducer

    from infra.kafka_broker import LocalKafka

    with tempfile.TemporaryDirectory(prefix="retail-jvm-archive-") as work:
        broker = LocalKafka(
            host="127.0.0.1",
            port=free_port(),
            controller_port=free_port(),
            data_dir=Path(work) / "kafka",
            jar_cache=jar_cache,
            heap="256m",
            jvm_options=(f"-XX:ArchiveClassesAtExit={fresh}",),
        )
        try:
            broker.start()
            broker.ensure_topics({"retail.jvm-archive": 1})
            producer = KafkaProducer(bootstrap_servers=broker.address, acks="all")
            for number in range(100):
                producer.send("retail.jvm-archive", key=b"k", value=str(number).encode())
            producer.close()
            consumer = KafkaConsumer(
                "retail.jvm-archive",
                bootstrap_servers=broker.address,
                group_id="retail-jvm-archive",
                auto_offset_reset="earliest",
                consumer_timeout_ms=5000,
            )
            with contextlib.closing(consumer):
                sum(1 for _ in consumer)
        finally:
            # SIGTERM: the broker shuts down cleanly and the JVM writes the archive before it exits
            broker.stop(timeout_s=_DUMP_TIMEOUT_S)


def build_spark_archive(settings: Settings, force: bool = False) -> Path | None:
    """The archive of Spark JVMs for this machine's java and pyspark; built when missing. None without java."""
    return _build("spark", spark_archive(settings.jar_cache), force, _train_spark)


def build_kafka_archive(settings: Settings, force: bool = False) -> Path | None:
    """The archive of Kafka broker JVMs for this machine's java and the cached broker jars. None without java."""
    return _build("kafka", kafka_archive(settings.jar_cache), force, partial(_train_kafka, settings.jar_cache))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cache", type=Path, help="the jar cache (default: RETAIL_JAR_CACHE or var/cache/jars)")
    parser.add_argument("--force", action="store_true", help="rebuild even when the archives are up to date")
    parser.add_argument("--spark-workload", nargs=2, metavar=("ARCHIVE", "WORKDIR"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.spark_workload:
        _spark_workload(Path(args.spark_workload[0]), Path(args.spark_workload[1]))
        return 0
    settings = Settings() if args.cache is None else Settings(jar_cache=args.cache)
    try:
        built = [build_spark_archive(settings, args.force), build_kafka_archive(settings, args.force)]
    except (RuntimeError, OSError, subprocess.TimeoutExpired) as error:
        # an archive only makes starts faster: without one every JVM still works
        print(f"  cds: no archive built ({error}); JVMs start without one", file=sys.stderr)
        return 0
    if None in built:
        print("  cds: no java found; JVMs start without an archive")
    return 0


if __name__ == "__main__":
    sys.exit(main())
