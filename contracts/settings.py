"""All settings in one place: environment variables prefixed ``RETAIL_``, with defaults for one machine.

Settings are read once at the edge (a job's entry point, the CLI, a test fixture) and passed down as
arguments; nothing below the edge reads the environment. Every variable is listed in docs/settings.md.

Example::

    settings = Settings()                      # reads RETAIL_* from the environment
    settings = Settings(spark_master="spark://head:7077", lake_root="s3a://shop-lake/prod")
"""

from __future__ import annotations

from datetime import date
from pathlib import Path

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from contracts.events import (
    CURRENCY_PATTERN,
    DEFAULT_CURRENCY,
    DEFAULT_MAX_EVENT_TIME_SKEW_SECONDS,
    MAX_EVENT_TIME_SKEW_SECONDS,
)
from contracts.progress import DEFAULT_RETENTION_HOURS

__all__ = ["PROJECT_ROOT", "Settings"]

PROJECT_ROOT = Path(__file__).resolve().parents[1]
_VAR = PROJECT_ROOT / "var"


class Settings(BaseSettings):
    """Typed settings with the embedded single-machine defaults of docs/design.md."""

    model_config = SettingsConfigDict(env_prefix="RETAIL_", extra="ignore", frozen=True)

    # --- Kafka: clients --------------------------------------------------------------------------
    kafka_bootstrap_servers: str = Field(
        default="", description="Brokers clients connect to; empty means the local broker's address."
    )
    kafka_security_protocol: str = Field(default="PLAINTEXT", description="PLAINTEXT, SSL, SASL_SSL, ...")
    kafka_sasl_mechanism: str | None = Field(default=None, description="e.g. PLAIN or SCRAM-SHA-512")
    kafka_sasl_username: str | None = None
    kafka_sasl_password: SecretStr | None = None
    kafka_ssl_ca_file: Path | None = Field(
        default=None, description="PEM file of the CA that signed the brokers' certificates (SSL, SASL_SSL)."
    )
    events_topic: str = "retail.events"
    events_partitions: int = Field(default=3, ge=1)
    alerts_topic: str = "retail.alerts"
    alerts_partitions: int = Field(default=1, ge=1)
    speed_sales_topic: str = Field(
        default="retail.speed.sales", description="Compacted topic of provisional minute rollups (served live)."
    )
    speed_inventory_topic: str = Field(
        default="retail.speed.inventory", description="Compacted topic of stock per product (served live)."
    )
    speed_topic_partitions: int = Field(default=3, ge=1, description="Partitions of retail.speed.sales.")
    speed_topic_retention_hours: int = Field(
        default=72, ge=1, description="How long speed rollups stay on their topic (serving needs them from W on)."
    )

    # --- Kafka: the embedded local broker (make up) ------------------------------------------------
    kafka_host: str = Field(default="127.0.0.1", description="Address the local broker listens on.")
    kafka_port: int = Field(default=9092, ge=1, le=65535)
    kafka_controller_port: int = Field(default=9093, ge=1, le=65535)
    kafka_heap: str = Field(default="512m", description="Max heap of the local broker JVM.")
    kafka_data_dir: Path = _VAR / "kafka"

    # --- Kafka: the local 3-node cluster (make kafka-cluster; docs/scale-out.md) ------------------------
    kafka_cluster_nodes: int = Field(default=3, ge=1, description="Combined broker+controller nodes.")
    kafka_cluster_port: int = Field(
        default=9192, ge=1, le=65535, description="Client port of node 1; node N listens on this + N - 1."
    )
    kafka_cluster_controller_port: int = Field(
        default=9292, ge=1, le=65535, description="Controller port of node 1; node N uses this + N - 1."
    )
    kafka_cluster_data_dir: Path = Field(default=_VAR / "kafka-cluster", description="One folder per node.")

    # --- Storage ----------------------------------------------------------------------------------
    lake_root: str = Field(
        default=str(_VAR / "lake"), description="Root of every Delta table: a path or s3a://, abfss://, gs://"
    )
    checkpoint_root: str = Field(default=str(_VAR / "checkpoints"), description="Streaming checkpoints.")
    run_dir: Path = Field(default=_VAR / "run", description="PID files and logs of background services.")
    jar_cache: Path = Field(default=_VAR / "cache" / "jars", description="Filled by make setup.")

    # --- Spark ------------------------------------------------------------------------------------
    spark_master: str = Field(default="local[2]", description="local[N], spark://, yarn, k8s://")
    spark_driver_memory: str = "2g"
    spark_executor_memory: str = Field(
        default="1g",
        description="Heap of each executor on a cluster (no effect in local mode); at most a worker's memory.",
    )
    spark_shuffle_partitions: int = Field(default=2, ge=1)
    spark_ui_enabled: bool = False
    spark_driver_host: str = Field(
        default="127.0.0.1", description="Address the driver advertises: executors and the master connect to it."
    )
    spark_driver_bind_address: str = Field(
        default="127.0.0.1",
        description="Address the driver's listeners bind to (0.0.0.0 or an interface on a cluster).",
    )
    spark_cores_max: int | None = Field(
        default=None, ge=1, description="spark.cores.max: cores one application takes from a standalone cluster."
    )
    spark_extra_conf: dict[str, str] = Field(
        default_factory=dict, description="Any further Spark settings (JSON object); applied last."
    )

    # --- Spark: the local standalone cluster (make spark-cluster; docs/scale-out.md) -------------------
    spark_cluster_host: str = Field(default="127.0.0.1", description="Address the master and workers bind to.")
    spark_cluster_master_port: int = Field(default=7077, ge=1, le=65535)
    spark_cluster_master_webui_port: int = Field(default=8081, ge=1, le=65535)
    spark_cluster_worker_port: int = Field(
        default=7078, ge=1, le=65535, description="Port of worker 1; worker N uses this + N - 1."
    )
    spark_cluster_worker_webui_port: int = Field(
        default=8082, ge=1, le=65535, description="Web UI port of worker 1; worker N uses this + N - 1."
    )
    spark_cluster_workers: int = Field(default=2, ge=1)
    spark_cluster_worker_cores: int = Field(default=1, ge=1)
    spark_cluster_worker_memory: str = Field(default="1g", description="Memory a worker offers to executors.")
    spark_cluster_daemon_memory: str = Field(default="256m", description="Heap of the master and worker JVMs.")
    spark_cluster_dir: Path = Field(default=_VAR / "spark-cluster", description="Logs, PID files, work dirs.")

    # --- Object storage (s3a://; docs/scale-out.md) ----------------------------------------------------
    s3_endpoint: str | None = Field(
        default=None, description="fs.s3a.endpoint: an S3-compatible server's URL; unset = AWS S3."
    )
    s3_region: str | None = Field(default=None, description="fs.s3a.endpoint.region")
    s3_path_style_access: bool = Field(default=False, description="fs.s3a.path.style.access (MinIO and the like).")
    s3_credentials_provider: str | None = Field(
        default=None, description="fs.s3a.aws.credentials.provider; unset = S3A's default chain (env, profile, IAM)."
    )

    # --- Pipeline ---------------------------------------------------------------------------------
    low_stock_threshold: int = Field(default=10, ge=0, description="Stock below this opens an alert.")
    max_event_time_skew_seconds: int = Field(
        default=DEFAULT_MAX_EVENT_TIME_SKEW_SECONDS,
        ge=0,
        le=MAX_EVENT_TIME_SKEW_SECONDS,
        description="How far past its ingest time an event_time may lie before the record is quarantined.",
    )

    # --- Speed layer ------------------------------------------------------------------------------
    speed_watermark: str = Field(default="5 minutes", description="How late an event may be for speed views.")
    speed_trigger: str = Field(
        default="0 seconds", description="Trigger of the live queries (rollups, inventory); '0 seconds' = back to back."
    )
    speed_bronze_trigger: str = Field(
        default="10 seconds", description="Trigger of the bronze + quarantine query (off the latency path)."
    )
    speed_durable_trigger: str = Field(
        default="30 seconds", description="Trigger of the query copying the speed topics into the Delta speed tables."
    )
    speed_copy_niceness: int = Field(
        default=10,
        ge=0,
        le=19,
        description="CPU priority (nice) of the speed layer's second driver (the Delta copy) below the first one.",
    )
    speed_shuffle_partitions: int = Field(
        default=1,
        ge=1,
        description="Shuffle (and state) partitions of the speed layer's new checkpoints; raise on a cluster.",
    )
    speed_max_offsets_per_trigger: int | None = Field(default=None, ge=1, description="Backpressure cap.")
    speed_starting_offsets: str = Field(default="earliest", description="Where a new checkpoint starts.")
    speed_progress_retention_hours: int = Field(
        default=DEFAULT_RETENTION_HOURS,
        ge=2,
        le=24 * 366,
        description="speed/progress keeps (and every reader looks at) this many hours back from its newest row.",
    )
    currency: str = Field(
        default=DEFAULT_CURRENCY,
        pattern=CURRENCY_PATTERN,
        description="The deployment's one currency (ISO 4217): purchases in another are quarantined.",
    )

    # --- Listeners --------------------------------------------------------------------------------
    bind_host: str = Field(default="127.0.0.1", description="Address the API, Dash and Airflow bind to.")
    serving_auth_token: SecretStr | None = Field(
        default=None,
        description="Bearer token of the API and password of the dashboard; required to bind beyond loopback.",
    )
    api_port: int = Field(default=8000, ge=1, le=65535)
    dashboard_port: int = Field(default=8050, ge=1, le=65535)
    dashboard_refresh_seconds: float = Field(
        default=1.0, ge=0.5, description="Dashboard refresh interval; widened automatically past the slowest callback."
    )
    serving_speed_source: str = Field(
        default="kafka",
        pattern="^(kafka|delta)$",
        description="Where serving reads speed views: the compacted speed topics (live) or the Delta speed tables.",
    )
    serving_min_refresh_seconds: float = Field(
        default=0.25, ge=0.0, description="Serving reuses a table version refreshed less than this long ago."
    )
    airflow_port: int = Field(default=8080, ge=1, le=65535)

    # --- Batch layer + Airflow (docs/batch.md) ----------------------------------------------------
    batch_lookback_days: int = Field(default=2, ge=0, description="Days before the interval also recomputed.")
    batch_future_tolerance_seconds: int = Field(
        default=300, ge=0, description="Clock skew allowed before an event time counts as in the future."
    )
    bronze_closed_after_days: int = Field(
        default=1, ge=1, description="A bronze partition is compacted once this many days have passed after it."
    )
    vacuum_retention_hours: int = Field(default=168, ge=168, description="VACUUM retention (at least 7 days).")
    batch_optimize_speed_tables: bool = Field(default=True, description="Also OPTIMIZE the speed tables.")
    batch_gx_pandas_max_rows: int = Field(
        default=200_000, ge=0, description="Frames up to this size are validated by GE's pandas engine (faster)."
    )
    batch_lease_seconds: int = Field(
        default=600,
        ge=30,
        le=86_400,
        description="A batch run's lease lasts this long past its last renewal (a crashed run blocks others as long).",
    )
    batch_start_date: date = Field(default=date(2026, 11, 20), description="First day the nightly DAG covers.")
    batch_catchup: bool = Field(default=True, description="Backfill every missed day since batch_start_date.")
    airflow_home: Path = Field(default=_VAR / "airflow", description="AIRFLOW_HOME of `make airflow`.")
    airflow_spark_conn_id: str = Field(default="retail_spark", description="Airflow connection of spark-submit.")
    airflow_parallelism: int = Field(default=4, ge=1, description="Airflow core.parallelism (task slots).")

    @field_validator("spark_master")
    @classmethod
    def _known_master(cls, value: str) -> str:
        if not value.startswith(("local", "spark://", "yarn", "k8s://", "mesos://")):
            raise ValueError(f"spark_master must be local[N], spark://, yarn or k8s://, got {value!r}")
        return value

    @model_validator(mode="after")
    def _default_bootstrap(self) -> Settings:
        if not self.kafka_bootstrap_servers:
            # frozen model: bypass the immutability guard once, while the object is being built
            object.__setattr__(self, "kafka_bootstrap_servers", f"{self.kafka_host}:{self.kafka_port}")
        return self

    def kafka_client_options(self) -> dict[str, str]:
        """Kafka client settings (security included) in the spelling of the Java client and Spark.

        Spark's Kafka source takes each of them prefixed with ``kafka.``.
        """
        options = {
            "bootstrap.servers": self.kafka_bootstrap_servers,
            "security.protocol": self.kafka_security_protocol,
        }
        if self.kafka_sasl_mechanism:
            options["sasl.mechanism"] = self.kafka_sasl_mechanism
            if self.kafka_sasl_username and self.kafka_sasl_password:
                module = (
                    "org.apache.kafka.common.security.plain.PlainLoginModule"
                    if self.kafka_sasl_mechanism == "PLAIN"
                    else "org.apache.kafka.common.security.scram.ScramLoginModule"
                )
                options["sasl.jaas.config"] = (
                    f'{module} required username="{self.kafka_sasl_username}" '
                    f'password="{self.kafka_sasl_password.get_secret_value()}";'
                )
        if self.kafka_ssl_ca_file is not None:
            options["ssl.truststore.type"] = "PEM"
            options["ssl.truststore.location"] = str(self.kafka_ssl_ca_file)
        return options

    def kafka_python_options(self) -> dict[str, object]:
        """The same connection settings in kafka-python's spelling (producer, consumer, admin)."""
        options: dict[str, object] = {
            "bootstrap_servers": self.kafka_bootstrap_servers.split(","),
            "security_protocol": self.kafka_security_protocol,
        }
        if self.kafka_sasl_mechanism:
            options["sasl_mechanism"] = self.kafka_sasl_mechanism
            options["sasl_plain_username"] = self.kafka_sasl_username
            if self.kafka_sasl_password is not None:
                options["sasl_plain_password"] = self.kafka_sasl_password.get_secret_value()
        if self.kafka_ssl_ca_file is not None:
            options["ssl_cafile"] = str(self.kafka_ssl_ca_file)
        return options

    def kafka_cluster_bootstrap_servers(self) -> str:
        """Client addresses of the local Kafka cluster (make kafka-cluster), comma-separated."""
        return ",".join(
            f"{self.kafka_host}:{self.kafka_cluster_port + node}" for node in range(self.kafka_cluster_nodes)
        )

    def spark_cluster_master_url(self) -> str:
        """Master URL of the local Spark standalone cluster (make spark-cluster)."""
        return f"spark://{self.spark_cluster_host}:{self.spark_cluster_master_port}"
