"""Every error a user can cause gives one clear line on stderr and a non-zero exit, never a traceback.

Runs the installed `retail` command with RETAIL_KAFKA_PORT on a free port where nothing listens.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import free_port

RETAIL = Path(sys.executable).with_name("retail")


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    root = tmp_path_factory.mktemp("retail_cli")
    clean = {k: v for k, v in os.environ.items() if not k.startswith("RETAIL_")}
    return {
        **clean,
        "RETAIL_KAFKA_PORT": str(free_port()),  # nothing listens there
        "RETAIL_KAFKA_CONTROLLER_PORT": str(free_port()),
        "RETAIL_KAFKA_DATA_DIR": str(root / "kafka"),
        "RETAIL_RUN_DIR": str(root / "run"),
        "RETAIL_LAKE_ROOT": str(root / "lake"),
        "RETAIL_CHECKPOINT_ROOT": str(root / "checkpoints"),
    }


def run(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(RETAIL), *args], env=env, capture_output=True, text=True, timeout=120)


@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        (["status"], "no Kafka broker answers"),
        (["produce", "--count", "5"], "no Kafka broker answers"),
        (["produce", "--rate", "-1"], "--rate"),
        (["produce", "--rate", "0"], "--rate"),
        (["produce", "--rate", "nan"], "--rate"),
        (["produce", "--rate", "1e400"], "--rate"),
        (["produce", "--duration", "0"], "--duration"),
        (["produce", "--duration", "-5"], "--duration"),
        (["produce", "--count", "0"], "--count"),
        (["produce", "--count", "-3"], "--count"),
        (["produce", "--count", "many"], "--count"),
        (["produce", "--late-ratio", "1.5"], "--late-ratio"),
        (["produce", "--duplicate-ratio", "-0.1"], "--duplicate-ratio"),
        (["produce", "--malformed-ratio", "2"], "--malformed-ratio"),
        (["produce", "--late-minutes", "1e20"], "--late-minutes"),
        (["produce", "--products", "0"], "--products"),
        (["produce", "--start", "not-a-date"], "--start"),
        (["produce", "--start", "1999-12-31T00:00:00Z"], "--start"),
        (["produce", "--start", "9999-12-31T23:59:59+00:00"], "--start"),
        (["stop", "speed"], "speed is not running"),
        (["stop", "api", "dashboard"], "api, dashboard are not running"),
        (["stop", "nothing"], "services must be among"),
        (["start", "nothing"], "invalid choice"),
        (["batch", "--date", "not-a-date"], "not-a-date"),
        (["batch", "--date", "0001-01-01"], "--date"),
        (["batch", "--date", "9999-12-31"], "--date"),
        (["batch", "--lookback-days", "-1"], "--lookback-days"),
        (["batch", "--lookback-days", "100000000"], "--lookback-days"),
        (["nosuch"], "invalid choice"),
        ([], "required"),
    ],
    ids=lambda value: " ".join(value) if isinstance(value, list) else None,
)
def test_a_user_error_is_one_line_on_stderr(env: dict[str, str], args: list[str], fragment: str) -> None:
    result = run(env, *args)
    assert result.returncode != 0
    assert "Traceback" not in result.stderr + result.stdout
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("retail") and fragment in lines[0]


def test_a_bad_setting_is_one_line(env: dict[str, str]) -> None:
    result = run({**env, "RETAIL_KAFKA_PORT": "not-a-port"}, "status")
    assert result.returncode != 0 and "Traceback" not in result.stderr
    assert len(result.stderr.splitlines()) == 1 and "kafka_port" in result.stderr


def test_stop_without_names_and_nothing_running_is_fine(env: dict[str, str]) -> None:
    result = run(env, "stop")  # `make down` relies on this
    assert result.returncode == 0 and result.stderr == ""
    assert "no background service was running" in result.stdout
