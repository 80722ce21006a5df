"""/api/health tells a running speed layer from one that stopped, failed or keeps crashing (rule + real driver)."""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import UTC, datetime, timedelta

import pytest

from contracts.settings import PROJECT_ROOT
from serving_layer.service import HEARTBEAT_STALE_AFTER, ServingLayer, speed_liveness
from tests.conftest import free_port

NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


def _beat(seconds_ago: float) -> dict:
    return {"query": "driver", "batch_id": -1, "timestamp": NOW - timedelta(seconds=seconds_ago), "error": None}


def _error(seconds_ago: float, query: str = "rollups") -> dict:
    return {"query": query, "batch_id": -1, "timestamp": NOW - timedelta(seconds=seconds_ago), "error": "boom"}


@pytest.mark.parametrize(
    ("rows", "state", "errors"),
    [
        ([], "unknown", 0),
        ([_beat(3)], "running", 0),
        ([_beat(HEARTBEAT_STALE_AFTER.total_seconds() + 5)], "stopped", 0),
        ([_beat(30), _error(10)], "failed", 1),
        ([_error(10)], "failed", 1),
        # crashed twice, restarted, now beating again: running, but the errors show
        ([_error(600), _error(300), _beat(2)], "running", 2),
        ([_error(7200), _beat(2)], "running", 0),
    ],
)
def test_liveness_rule(rows: list[dict], state: str, errors: int) -> None:
    liveness = speed_liveness(rows, NOW)
    assert liveness["state"] == state
    assert liveness["errors_last_hour"] == errors
    assert (liveness["last_error"] is not None) == any(row["error"] for row in rows)


def test_health_reports_a_speed_layer_that_failed_at_start(tmp_path) -> None:
    """A real `retail speed` that cannot reach Kafka exits non-zero; /api/health then says failed, with the error."""
    lake = tmp_path / "lake"
    env = {
        **os.environ,
        "RETAIL_KAFKA_BOOTSTRAP_SERVERS": f"127.0.0.1:{free_port()}",  # nothing listens there
        "RETAIL_LAKE_ROOT": str(lake),
        "RETAIL_CHECKPOINT_ROOT": str(tmp_path / "ck"),
    }
    result = subprocess.run(
        [sys.executable, "-m", "retail_cli.main", "speed"],
        cwd=PROJECT_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode != 0
    with ServingLayer(str(lake)) as serving:
        liveness = serving.health()["speed_layer"]
    assert liveness["state"] == "failed", liveness
    assert liveness["last_error"] and liveness["last_error"].startswith("driver:")
