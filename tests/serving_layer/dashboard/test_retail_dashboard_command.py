"""`retail dashboard` serves the page on the configured loopback port and nowhere else."""

from __future__ import annotations

import os
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

from tests.conftest import free_port


def test_retail_dashboard_serves_on_loopback_only(tmp_path: Path) -> None:
    port = free_port()
    env = {**os.environ, "RETAIL_LAKE_ROOT": str(tmp_path / "empty-lake"), "RETAIL_DASHBOARD_PORT": str(port)}
    server = subprocess.Popen(
        [sys.executable, "-m", "retail_cli.main", "dashboard"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=5) as response:
                    page = response.read().decode()
                break
            except (urllib.error.URLError, ConnectionError):
                if time.monotonic() > deadline or server.poll() is not None:
                    raise
                time.sleep(0.3)
        assert "Shop operations" in page  # the title; the panels fill in through callbacks
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/_dash-layout", timeout=10) as response:
            assert b"refresh-interval" in response.read()  # layout() ran on request, without any table
        listening = subprocess.run(["ss", "-ltnH", f"sport = :{port}"], capture_output=True, text=True).stdout
        assert {line.split()[3] for line in listening.splitlines() if line.strip()} == {f"127.0.0.1:{port}"}
    finally:
        server.terminate()
        try:
            server.wait(timeout=15)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()
