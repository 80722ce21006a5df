"""`retail start` / `retail stop`: a background service runs in its own process group and stops completely."""

from __future__ import annotations

import json
import time
import urllib.request

import psutil
import pytest

from infra.services import Services
from tests.conftest import free_port


def test_api_service_starts_answers_and_stops_without_leftovers(tmp_path, monkeypatch) -> None:
    port = free_port()
    monkeypatch.setenv("RETAIL_API_PORT", str(port))
    monkeypatch.setenv("RETAIL_LAKE_ROOT", str(tmp_path / "lake"))
    services = Services(tmp_path / "run")
    pid = services.start("api")
    assert services.start("api") == pid  # already running: not started twice
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/health", timeout=2) as answer:
                    health = json.loads(answer.read())
                break
            except OSError:
                if time.monotonic() > deadline:
                    pytest.fail("api did not answer: " + services.log_file("api").read_text()[-2000:])
                time.sleep(0.5)
        assert health["high_water_mark"] is None
        assert services.running() == {"api": pid}
        group = {pid, *(child.pid for child in psutil.Process(pid).children(recursive=True))}
    finally:
        assert services.stop("api") is True
    assert not any(psutil.pid_exists(p) and psutil.Process(p).status() != psutil.STATUS_ZOMBIE for p in group)
    assert services.running() == {} and services.stop("api") is False
