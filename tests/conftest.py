"""Shared fixtures: one Spark session and one real Kafka broker per test run, on free loopback ports.

The broker is the project's own LocalKafka (the same code as `make up`), started in a temporary folder and
stopped at the end of the session, so tests never touch a developer's running stack.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from contracts.settings import Settings
from infra.processes import free_port  # re-exported: the tests import it from here


@pytest.fixture(scope="session")
def test_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("retail")


@pytest.fixture(scope="session")
def settings(test_root: Path) -> Settings:
    """Settings for the test run: temporary lake, checkpoints and broker data; free ports; defaults otherwise."""
    return Settings(
        _env_file=None,
        kafka_port=free_port(),
        kafka_controller_port=free_port(),
        kafka_data_dir=test_root / "kafka",
        lake_root=str(test_root / "lake"),
        checkpoint_root=str(test_root / "checkpoints"),
        api_port=free_port(),
        dashboard_port=free_port(),
    )


@pytest.fixture(scope="session")
def spark(settings: Settings):  # type: ignore[no-untyped-def]
    from contracts.spark import build_spark_session

    session = build_spark_session(settings, app_name="retail-tests")
    yield session
    session.stop()


@pytest.fixture(scope="session")
def kafka(settings: Settings) -> Iterator[object]:
    """A real single-node Apache Kafka broker (KRaft) with the project's topics, for the whole session."""
    from infra.kafka_broker import LocalKafka

    broker = LocalKafka.from_settings(settings)
    seconds = broker.start()
    print(f"\n[kafka fixture] broker ready on {broker.address} in {seconds:.1f}s")
    broker.ensure_topics(
        {settings.events_topic: settings.events_partitions, settings.alerts_topic: settings.alerts_partitions}
    )
    yield broker
    broker.stop()


def pytest_setup_options():  # type: ignore[no-untyped-def]
    """Chrome options for dash[testing]'s dash_duo: Debian's headless Chromium, safe in containers and CI."""
    from selenium.webdriver.chrome.options import Options

    options = Options()
    options.binary_location = "/usr/bin/chromium"
    for flag in (
        "--headless=new",
        "--no-sandbox",
        "--disable-dev-shm-usage",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--window-size=1440,1100",
    ):
        options.add_argument(flag)
    return options
