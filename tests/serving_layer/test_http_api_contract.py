"""The HTTP JSON API of DESIGN.md over the scenario lake: the contract's shape, exact money, clear 400s."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import urllib.error
import urllib.request

import pytest
from fastapi.testclient import TestClient

from serving_layer.api import create_app
from serving_layer.service import ServingLayer
from tests.conftest import free_port
from tests.serving_layer.lake_builder import LakeBuilder
from tests.serving_layer.scenario import NOW


@pytest.fixture(scope="module")
def client(scenario_lake: LakeBuilder) -> TestClient:
    return TestClient(
        base_url="http://127.0.0.1", app=create_app(ServingLayer(scenario_lake.lake.root, clock=lambda: NOW))
    )


def test_revenue_follows_the_contract(client: TestClient) -> None:
    answer = client.get(
        "/api/revenue", params={"start": "2026-01-05T23:58:00Z", "end": "2026-01-06T00:02:00Z", "grain": "minute"}
    )
    assert answer.status_code == 200
    assert answer.json() == {
        "high_water_mark": "2026-01-06T00:00:00Z",
        "low_water_mark": None,  # the scenario's run row predates L: batch for every bucket before W
        "rows": [
            {"bucket_start": "2026-01-05T23:58:00Z", "revenue": "100.00", "orders": 1, "units": 1,
             "distinct_users": 1, "source": "batch"},
            {"bucket_start": "2026-01-05T23:59:00Z", "revenue": "1.01", "orders": 1, "units": 1,
             "distinct_users": 1, "source": "batch"},
            {"bucket_start": "2026-01-06T00:00:00Z", "revenue": "7.50", "orders": 1, "units": 3,
             "distinct_users": 1, "source": "speed"},
            {"bucket_start": "2026-01-06T00:01:00Z", "revenue": "0.99", "orders": 1, "units": 1,
             "distinct_users": 1, "source": "speed"},
        ],
    }  # fmt: skip


@pytest.mark.parametrize(
    ("params", "expected"),
    [
        ({"grain": "hour", "product_id": "p-1"}, [("2026-01-05T22:00:00Z", "20.00"), ("2026-01-05T23:00:00Z", "1.01"),
                                                 ("2026-01-06T00:00:00Z", "0.99")]),
        ({"grain": "day", "category": "books"}, [("2026-01-05T00:00:00Z", "105.55"), ("2026-01-06T00:00:00Z", "7.50")]),
    ],
    ids=["product-hour", "category-day"],
)  # fmt: skip
def test_revenue_filters(client: TestClient, params: dict[str, str], expected: list[tuple[str, str]]) -> None:
    query = {"start": "2026-01-05T00:00:00Z", "end": "2026-01-07T00:00:00Z", **params}
    rows = client.get("/api/revenue", params=query).json()["rows"]
    assert [(r["bucket_start"], r["revenue"]) for r in rows if r["orders"]] == expected


@pytest.mark.parametrize(
    ("params", "fragment"),
    [
        ({"end": "2026-01-06T00:00:00Z"}, "'start' is required"),
        ({"start": "yesterday", "end": "2026-01-06T00:00:00Z"}, "must be an ISO-8601 time"),
        ({"start": "2026-01-06T00:00:00Z", "end": "2026-01-05T00:00:00Z"}, "start must be before end"),
        ({"start": "2026-01-05T00:00:00Z", "end": "2026-01-06T00:00:00Z", "grain": "week"}, "must be one of"),
        ({"start": "2026-01-05T00:00:00Z", "end": "2026-01-06T00:00:00Z", "product_id": "p", "category": "c"},
         "at most one of"),
        ({"start": "2026-01-05T00:00:00Z", "end": "2026-01-06T00:00:00Z", "product": "p-1"}, "unknown parameter"),
        ({"start": "2026-01-05T00:00:00Z", "end": "2026-01-06T00:00:00Z", "product_id": " "}, "must not be empty"),
        ({"start": "2025-01-01T00:00:00Z", "end": "2026-01-06T00:00:00Z"}, "at most 31 days"),
    ],
    ids=["no-start", "bad-iso", "reversed", "bad-grain", "two-filters", "unknown", "empty-key", "too-long"],
)  # fmt: skip
def test_bad_parameters_get_a_400_with_a_clear_message(client: TestClient, params: dict, fragment: str) -> None:
    answer = client.get("/api/revenue", params=params)
    assert answer.status_code == 400
    body = answer.json()
    assert body["error"] == "bad_request" and fragment in body["message"]
    assert "Traceback" not in answer.text


def test_inventory_alerts_and_health(client: TestClient) -> None:
    inventory = client.get("/api/inventory").json()
    assert inventory["low_stock"] == 1
    assert [(r["product_id"], r["stock"], r["below_threshold"]) for r in inventory["rows"]] == [
        ("p-1", 3, True),
        ("p-2", 50, False),
    ]
    alerts = client.get("/api/alerts").json()
    assert alerts["open"] == 1
    assert [(r["alert_id"], r["open"]) for r in alerts["rows"]] == [("a-open", True), ("a-recent", False)]
    health = client.get("/api/health").json()
    assert health["high_water_mark"] == "2026-01-06T00:00:00Z"
    assert health["newest_event_time"] == "2026-01-06T00:30:00Z"  # newest speed bucket (the 00:30 page view)
    assert health["freshness_seconds"] == 1800.0
    assert health["offsets_behind"] == 7  # the newest progress row (rollups, batch 2)
    assert health["queries"]["inventory"]["offsets_behind"] == 2
    assert health["last_batch_run"]["run_id"] == "run-2026-01-06"
    assert health["last_batch_run"]["status"] == "failed"


def test_unknown_path_is_json_404(client: TestClient) -> None:
    answer = client.get("/api/nothing")
    assert answer.status_code == 404 and answer.json()["error"] == "http_error"


def test_retail_serve_binds_loopback_and_answers(scenario_lake: LakeBuilder) -> None:
    port = free_port()
    env = {**os.environ, "RETAIL_LAKE_ROOT": scenario_lake.lake.root, "RETAIL_API_PORT": str(port)}
    server = subprocess.Popen(
        [sys.executable, "-m", "retail_cli.main", "serve"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        url = f"http://127.0.0.1:{port}/api/revenue?start=2026-01-05T00:00:00Z&end=2026-01-07T00:00:00Z&grain=day"
        deadline = time.monotonic() + 60
        while True:
            try:
                with urllib.request.urlopen(url, timeout=5) as response:
                    body = json.loads(response.read())
                break
            except (urllib.error.URLError, ConnectionError):
                if time.monotonic() > deadline or server.poll() is not None:
                    raise
                time.sleep(0.3)
        assert [(r["revenue"], r["source"]) for r in body["rows"]] == [("126.56", "batch"), ("8.49", "speed")]
        with pytest.raises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/api/revenue?start=x&end=y", timeout=5)
        assert refused.value.code == 400 and "ISO-8601" in json.loads(refused.value.read())["message"]
        listening = subprocess.run(["ss", "-ltnH", f"sport = :{port}"], capture_output=True, text=True).stdout
        local_addresses = {line.split()[3] for line in listening.splitlines() if line.strip()}
        assert local_addresses == {f"127.0.0.1:{port}"}
    finally:
        server.terminate()
        try:
            server.wait(timeout=15)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()
    assert server.returncode is not None


def test_sub_second_timestamps_keep_their_fraction() -> None:
    from datetime import UTC, datetime

    import pyarrow as pa

    from serving_layer.api import _records

    moments = [datetime(2026, 1, 5, 10, 0, 0, 269000, tzinfo=UTC), datetime(2026, 1, 5, 10, 0, 1, tzinfo=UTC), None]
    rows = _records(pa.table({"opened_at": pa.array(moments, pa.timestamp("us", tz="UTC"))}))
    assert rows[0]["opened_at"].startswith("2026-01-05T10:00:00.269")
    assert rows[1]["opened_at"].startswith("2026-01-05T10:00:01")
    assert rows[2]["opened_at"] is None
