"""Scale-out is configuration: the driver's advertised host and bind address are separate settings, cluster-only
Spark settings and a lake on s3a:// map to Spark conf, Kafka security reaches every client (Spark's Kafka source
and sink, kafka-python in the generator, admin and serving), and the producer is idempotent with acks=all."""

from __future__ import annotations

from pathlib import Path

import pytest

from contracts.errors import SetupError
from contracts.settings import Settings
from contracts.spark import spark_conf, uses_s3a


def _jar_cache(tmp_path: Path, *groups: str) -> Path:
    for group in groups:
        (tmp_path / group).mkdir(parents=True, exist_ok=True)
        (tmp_path / group / f"{group}-1.0.jar").write_bytes(b"")
    return tmp_path


def test_driver_host_and_bind_address_are_separate_and_loopback_by_default(tmp_path: Path) -> None:
    cache = _jar_cache(tmp_path, "spark", "project")
    conf = spark_conf(Settings(_env_file=None, jar_cache=cache), "t")
    assert (conf["spark.driver.host"], conf["spark.driver.bindAddress"]) == ("127.0.0.1", "127.0.0.1")
    cluster = Settings(
        _env_file=None,
        jar_cache=cache,
        spark_master="spark://head:7077",
        spark_driver_host="edge-1.internal",
        spark_driver_bind_address="0.0.0.0",
        spark_cores_max=4,
    )
    conf = spark_conf(cluster, "t")
    assert conf["spark.master"] == "spark://head:7077"
    assert (conf["spark.driver.host"], conf["spark.driver.bindAddress"]) == ("edge-1.internal", "0.0.0.0")
    assert conf["spark.cores.max"] == "4"
    assert "s3" not in conf["spark.jars"] and "fs.s3a" not in " ".join(conf)


def test_extra_spark_conf_comes_from_json_and_wins(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(
        "RETAIL_SPARK_EXTRA_CONF",
        '{"spark.delta.logStore.s3a.impl": "io.delta.storage.S3DynamoDBLogStore", "spark.executor.cores": "2"}',
    )
    monkeypatch.setenv("RETAIL_LAKE_ROOT", "s3a://shop/lake")
    conf = spark_conf(Settings(jar_cache=_jar_cache(tmp_path, "spark", "project", "s3")), "t")
    assert conf["spark.executor.cores"] == "2"
    assert conf["spark.delta.logStore.s3a.impl"] == "io.delta.storage.S3DynamoDBLogStore"


def test_driver_java_options_of_the_user_come_after_the_stack_size(tmp_path: Path) -> None:
    cache = _jar_cache(tmp_path, "spark", "project")
    plain = spark_conf(Settings(_env_file=None, jar_cache=cache), "t")
    assert plain["spark.driver.extraJavaOptions"] == "-Xss64m"
    extra = {"spark.driver.extraJavaOptions": "-Xss128m -Dfoo=bar"}
    conf = spark_conf(Settings(_env_file=None, jar_cache=cache, spark_extra_conf=extra), "t")
    assert conf["spark.driver.extraJavaOptions"] == "-Xss64m -Xss128m -Dfoo=bar"  # the JVM takes the last -Xss


def test_a_lake_on_s3a_adds_the_s3_jars_and_the_s3a_settings(tmp_path: Path) -> None:
    settings = Settings(
        _env_file=None,
        jar_cache=_jar_cache(tmp_path, "spark", "project", "s3"),
        lake_root="s3a://shop/lake",
        checkpoint_root="s3a://shop/checkpoints",
        s3_endpoint="http://127.0.0.1:9000",
        s3_path_style_access=True,
        s3_region="eu-central-1",
        s3_credentials_provider="software.amazon.awssdk.auth.credentials.EnvironmentVariableCredentialsProvider",
    )
    assert uses_s3a(settings)
    conf = spark_conf(settings, "t")
    assert str(tmp_path / "s3" / "s3-1.0.jar") in conf["spark.jars"].split(",")
    assert conf["spark.hadoop.fs.s3a.endpoint"] == "http://127.0.0.1:9000"
    assert conf["spark.hadoop.fs.s3a.connection.ssl.enabled"] == "false"
    assert conf["spark.hadoop.fs.s3a.path.style.access"] == "true"
    assert conf["spark.hadoop.fs.s3a.endpoint.region"] == "eu-central-1"
    assert conf["spark.hadoop.fs.s3a.aws.credentials.provider"].endswith("EnvironmentVariableCredentialsProvider")
    assert conf["spark.delta.logStore.s3a.impl"] == "io.delta.storage.S3SingleDriverLogStore"
    assert not any("secret" in key.lower() or "access.key" in key for key in conf), "no credentials in the conf"


def test_a_lake_on_s3a_without_the_s3_jars_names_the_make_target(tmp_path: Path) -> None:
    settings = Settings(_env_file=None, jar_cache=_jar_cache(tmp_path, "spark", "project"), lake_root="s3a://b/l")
    with pytest.raises(SetupError, match="make setup-s3"):
        spark_conf(settings, "t")


def test_kafka_tls_ca_and_sasl_reach_spark_and_kafka_python(tmp_path: Path) -> None:
    ca = tmp_path / "ca.pem"
    settings = Settings(
        _env_file=None,
        kafka_bootstrap_servers="b1:9093,b2:9093,b3:9093",
        kafka_security_protocol="SASL_SSL",
        kafka_sasl_mechanism="SCRAM-SHA-512",
        kafka_sasl_username="shop",
        kafka_sasl_password="s3cret",
        kafka_ssl_ca_file=ca,
    )
    java = settings.kafka_client_options()
    assert java["bootstrap.servers"] == "b1:9093,b2:9093,b3:9093"
    assert java["security.protocol"] == "SASL_SSL" and java["sasl.mechanism"] == "SCRAM-SHA-512"
    assert "ScramLoginModule" in java["sasl.jaas.config"]
    assert (java["ssl.truststore.type"], java["ssl.truststore.location"]) == ("PEM", str(ca))
    python = settings.kafka_python_options()
    assert python["bootstrap_servers"] == ["b1:9093", "b2:9093", "b3:9093"]
    assert python["ssl_cafile"] == str(ca) and python["sasl_plain_password"] == "s3cret"


def test_the_generator_producer_is_idempotent_with_acks_all(monkeypatch: pytest.MonkeyPatch) -> None:
    import kafka

    from event_generator.generator import GeneratorConfig, generate, produce

    seen: dict[str, object] = {}

    class RecordingProducer:
        """Stands in for the network only: records the options the project passes to kafka-python."""

        def __init__(self, **options: object) -> None:
            seen.update(options)

        def send(self, *_args: object, **_kwargs: object):  # type: ignore[no-untyped-def]
            class Future:
                def add_errback(self, _fn: object) -> None:
                    return None

            return Future()

        def flush(self) -> None:
            return None

        def close(self) -> None:
            return None

    monkeypatch.setattr(kafka, "KafkaProducer", RecordingProducer)
    settings = Settings(_env_file=None, kafka_bootstrap_servers="b1:9092,b2:9092")
    produce(generate(GeneratorConfig(count=3)), settings)
    assert seen["acks"] == "all" and seen["enable_idempotence"] is True
    assert seen["bootstrap_servers"] == ["b1:9092", "b2:9092"]
    # idempotence needs at most 5 requests in flight (one keeps each partition in send order across retries)
    assert int(seen["max_in_flight_requests_per_connection"]) <= 5  # type: ignore[call-overload]
