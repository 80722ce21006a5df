"""The one Spark session factory every job, notebook and test uses.

Local by default (``local[2]``, driver on 127.0.0.1, UI off); the same call builds a session against a
cluster when ``RETAIL_SPARK_MASTER`` points at one (``RETAIL_SPARK_DRIVER_HOST`` is then an address the
executors can reach, ``RETAIL_SPARK_DRIVER_BIND_ADDRESS`` the interface the driver listens on). Delta Lake and
Spark's Kafka source come from the local jar cache, so no dependency is resolved at run time; ``spark.jars``
ships them to the executors. A lake on ``s3a://`` adds the ``s3`` jar group (``make setup-s3``) and the
``fs.s3a.*`` settings (docs/scale-out.md).

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
from contracts.jvm import share_options, spark_archive
from contracts.settings import Settings

__all__ = ["build_spark_session", "spark_conf", "uses_s3a", "s3a_conf"]


def uses_s3a(settings: Settings) -> bool:
    """True when the lake or the checkpoints live on S3 (or an S3-compatible store) through Hadoop's S3A."""
    return any(root.startswith("s3a://") for root in (settings.lake_root, settings.checkpoint_root))


def s3a_conf(settings: Settings) -> dict[str, str]:
    """The S3A connector's settings (Hadoop keys, prefixed ``spark.hadoop.``) and Delta's log store for s3a://.

    Credentials are not settings: S3A's default chain reads AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY, a profile,
    or the instance's / pod's IAM role; ``RETAIL_S3_CREDENTIALS_PROVIDER`` picks another provider class.
    """
    conf = {
        "spark.hadoop.fs.s3a.path.style.access": str(settings.s3_path_style_access).lower(),
        # Delta's default for s3a:// made explicit: safe with ONE writing driver per table at a time (see
        # docs/scale-out.md; several writers need io.delta.storage.S3DynamoDBLogStore via RETAIL_SPARK_EXTRA_CONF)
        "spark.delta.logStore.s3a.impl": "io.delta.storage.S3SingleDriverLogStore",
    }
    if settings.s3_endpoint:
        conf["spark.hadoop.fs.s3a.endpoint"] = settings.s3_endpoint
        # an http:// endpoint (a local S3-compatible server) is spoken to without TLS
        conf["spark.hadoop.fs.s3a.connection.ssl.enabled"] = str(settings.s3_endpoint.startswith("https")).lower()
    if settings.s3_region:
        conf["spark.hadoop.fs.s3a.endpoint.region"] = settings.s3_region
    if settings.s3_credentials_provider:
        conf["spark.hadoop.fs.s3a.aws.credentials.provider"] = settings.s3_credentials_provider
    return conf


_DRIVER_JAVA_OPTIONS = "spark.driver.extraJavaOptions"
_EXECUTOR_JAVA_OPTIONS = "spark.executor.extraJavaOptions"
# When a foreachBatch query is stopped while its Python function is inside a JVM call (bronze's Delta append),
# Spark decides whether the error means "interrupted by stop()" by running the regex `(.|\r\n|\r|\n)*` over the
# whole Python error text (StreamExecution.isInterruptionException, SPARK-48717), several stack frames per
# character. That text is ~13,500 characters for a Delta write: with the JVM's default 1 MB thread stack (and with
# 8 MB) the stream thread died of StackOverflowError instead of stopping cleanly; 16 MB sufficed. 64 MB leaves room
# for four times that text; thread stacks are reserved address space, only the pages touched become resident.
_DRIVER_STACK_OPTION = "-Xss64m"


def spark_conf(settings: Settings, app_name: str) -> dict[str, str]:
    """Every Spark setting the project relies on, as a plain dict (also handed to spark-submit)."""
    s3a = uses_s3a(settings)
    groups = ("spark", "project", "s3") if s3a else ("spark", "project")
    jars = ",".join(str(path) for group in groups for path in jar_files(settings.jar_cache, group))
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
        # the address executors and the master reach the driver at, and the interface it listens on: both
        # loopback on one machine; on a cluster the host's routable name and 0.0.0.0 (or that interface)
        "spark.driver.host": settings.spark_driver_host,
        "spark.driver.bindAddress": settings.spark_driver_bind_address,
        "spark.sql.adaptive.enabled": "true",
    }
    if not s3a:
        # Without Hadoop's native library (no package ships it) the local file system forks a `readlink` for
        # every FileContext rename: ~40 processes/s from the speed layer's JVM at 1,000 events/s and 0.1-0.2 s of
        # each micro-batch's WAL and commit writes (JFR, docs/design.md "Latency"). Checkpoints written through
        # FileSystem renames avoid them; a local rename is atomic either way.
        conf["spark.sql.streaming.checkpointFileManagerClass"] = (
            "org.apache.spark.sql.execution.streaming.checkpointing.FileSystemBasedCheckpointFileManager"
        )
    if settings.spark_cores_max is not None:
        conf["spark.cores.max"] = str(settings.spark_cores_max)
    if s3a or settings.s3_endpoint:
        conf.update(s3a_conf(settings))
    extra = dict(settings.spark_extra_conf)
    # the class-data archive `make setup` built for this java and pyspark (contracts/jvm.py): faster JVM starts;
    # a JVM elsewhere (a cluster's hosts) without that file, or with another JDK, starts without it
    archive = " ".join(share_options(spark_archive(settings.jar_cache)))
    # the user's JVM options come after ours, so a -Xss of theirs wins
    conf[_DRIVER_JAVA_OPTIONS] = " ".join(
        filter(None, (_DRIVER_STACK_OPTION, archive, extra.pop(_DRIVER_JAVA_OPTIONS, "")))
    )
    executor_options = " ".join(filter(None, (archive, extra.pop(_EXECUTOR_JAVA_OPTIONS, ""))))
    if executor_options:
        conf[_EXECUTOR_JAVA_OPTIONS] = executor_options
    conf.update(extra)
    return conf


def build_spark_session(settings: Settings, app_name: str, extra_conf: dict[str, str] | None = None) -> SparkSession:
    """Create (or return the already running) Spark session configured for this project.

    ``extra_conf`` adds job-specific settings (the speed layer's scheduler pools, for example).
    """
    # executors must run the same interpreter as the driver, or pickled functions will not load
    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    os.environ.setdefault("PYSPARK_DRIVER_PYTHON", sys.executable)
    conf = {**spark_conf(settings, app_name), **(extra_conf or {})}
    if os.environ.get("PYSPARK_GATEWAY_PORT"):
        # launched by spark-submit (Airflow's SparkSubmitOperator): the master on its command line, from the
        # Airflow connection, decides where the job runs; a master set here would silently override it
        conf.pop("spark.master", None)
    builder = SparkSession.builder
    for key, value in conf.items():
        builder = builder.config(key, value)
    spark = builder.getOrCreate()
    spark.sparkContext.setLogLevel("WARN")
    return spark
