from __future__ import annotations

import pytest
from pydantic import ValidationError

from contracts.settings import Settings
from contracts.tables import TABLE_NAMES, Lake


def test_defaults_listen_on_loopback_only() -> None:
    settings = Settings(_env_file=None)
    assert settings.kafka_host == "127.0.0.1"
    assert settings.bind_host == "127.0.0.1"
    assert settings.kafka_bootstrap_servers == "127.0.0.1:9092"
    assert settings.spark_driver_host == "127.0.0.1"
    assert (settings.api_port, settings.dashboard_port, settings.airflow_port) == (8000, 8050, 8080)
    assert settings.spark_master == "local[2]"


def test_environment_overrides(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RETAIL_SPARK_MASTER", "spark://head:7077")
    monkeypatch.setenv("RETAIL_KAFKA_BOOTSTRAP_SERVERS", "k1:9092,k2:9092")
    monkeypatch.setenv("RETAIL_LAKE_ROOT", "s3a://shop/lake")
    settings = Settings()
    assert settings.spark_master == "spark://head:7077"
    assert settings.kafka_python_options()["bootstrap_servers"] == ["k1:9092", "k2:9092"]
    assert Lake(settings.lake_root, settings.checkpoint_root).bronze_events == "s3a://shop/lake/bronze/events"


def test_unknown_spark_master_is_rejected_with_its_name() -> None:
    with pytest.raises(ValidationError, match="spark_master"):
        Settings(spark_master="cluster-please")


def test_sasl_password_is_secret_and_reaches_the_jaas_config() -> None:
    settings = Settings(
        kafka_security_protocol="SASL_SSL",
        kafka_sasl_mechanism="PLAIN",
        kafka_sasl_username="shop",
        kafka_sasl_password="s3cret",
    )
    assert "s3cret" not in repr(settings)
    assert 'password="s3cret"' in settings.kafka_client_options()["sasl.jaas.config"]
    assert settings.kafka_python_options()["sasl_plain_password"] == "s3cret"


@pytest.mark.parametrize("name", TABLE_NAMES)
def test_every_table_lives_under_the_lake_root(name: str) -> None:
    assert Lake("/lake/", "/ck").table(name) == f"/lake/{name}"


@pytest.mark.parametrize("bad", ["nope", "bronze", "batch/sales_week"])
def test_unknown_table_names_are_refused(bad: str) -> None:
    with pytest.raises(ValueError, match="table name"):
        Lake("/lake", "/ck").table(bad)
