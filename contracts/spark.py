"""The one Spark session factory every job, notebook and test uses.

Local by default (``local[2]``, driver on 127.0.0.1, UI off); the same call builds a session against a
cluster when ``RETAIL_SPARK_MASTER`` points at one. Delta Lake and Spark's Kafka source come from the local
jar cache, so no dependency is resolved at run time.

Example::

    from contracts.settings import Settings
    from contracts.spark import build_spark_session

    spark = build_spark_session(Settings(), app_name="notebook")
"""

from __future__ import annotations

import os
import sys

from pyspark.sql import SparkSession

from contracts.jars import jar_files
from contracts.settings import Settings

__all__ = ["build_spark_session", "spark_conf"]


def spark_conf(settings: Settings, app_name: str) -> dict[str, str]:
    """Every Spark setting the project relies on, as a plain dict (also handed to spark-submit)."""
    jars = ",".join(str(path) for group in ("spark", "project") for path in jar_files(settings.jar_cache, group))
    conf = {
        "spark.app.name": app_name,
        "spark.master": settings.spark_master,
        "spark.jars": jars,
        "spark.sql.extensions": "io.delta.sql.DeltaSparkSessionExtension",
        "spark.sql.catalog.spark_catalog": "org.apache.spark.sql.delta.catalog.DeltaCatalog",
        "spark.sql.session.timeZone": "UTC",
        "spark.sql.shuffle.partitions": str(settings.spark_shuffle_partitions),
        # Delta's snapshot reconstruction defaults to 50 partitions: far too many tasks for 2 cores
        "spark.databricks.delta.snapshotPartitions": str(settings.spark_shuffle_partitions),
        "spark.sql.streaming.stateStore.providerClass": (
            "org.apache.spark.sql.execution.streaming.state.RocksDBStateStoreProvider"
        ),
        # RocksDB commits only a changelog per micro-batch instead of uploading a snapshot each time, and skips
        # counting every row of the store on each commit (a metric only)
        "spark.sql.streaming.stateStore.rocksdb.changelogCheckpointing.enabled": "true",
        "spark.sql.streaming.stateStore.rocksdb.trackTotalNumberOfRows": "false",
        "spark.ui.enabled": str(settings.spark_ui_enabled).lower(),
        "spark.ui.showConsoleProgress": "false",
        "spark.driver.memory": settings.spark_driver_memory,
        "spark.executor.memory": settings.spark_executor_memory,
        "spark.driver.host": settings.spark_driver_host,
        "spark.driver.bindAddress": settings.spark_driver_host,
        "spark.sql.adaptive.enabled": "true",
    }
    return conf


def build_spark_session(settings: Settings, app_name: str, extra_conf: dict[str, str] | None = None) -> SparkSession:
    """Create (or return the already running) Spark session configured for this project.

    ``extra_conf`` adds job-specific settings (the speed layer's scheduler pools, for example).
    """
    # executors must run the same interpreter as the driver, or pickled functions will not load
    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    os.environ.setdefault("PYSPARK_DRIVER_PYTHON", sys.executable)
    builder = SparkSession.builder
    for key, value in {**spark_conf(settings, app_name), **(extra_conf or {})}.items():
        builder = builder.config(key, value)
    spark = builder.getOrCreate()
    spark.sparkContext.setLogLevel("WARN")
    return spark
