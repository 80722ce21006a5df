"""Safe by default: every socket this project's processes listen on is bound to 127.0.0.1 (or ::1)."""

from __future__ import annotations

import os
import re
import subprocess

import psutil
import pytest

pytestmark = pytest.mark.integration

_LOOPBACK = ("127.0.0.1", "::ffff:127.0.0.1", "::1")


def _project_pids(broker_pid: int) -> set[int]:
    pids = {broker_pid, os.getpid()}
    for root in (broker_pid, os.getpid()):
        pids.update(child.pid for child in psutil.Process(root).children(recursive=True))
    return pids


def _listeners() -> list[tuple[str, int]]:
    """(local address, pid) for every TCP listener ``ss -ltnp`` shows, IPv4 and IPv6."""
    output = subprocess.run(["ss", "-ltnpH"], capture_output=True, text=True, check=True).stdout
    found = []
    for line in output.splitlines():
        columns = line.split()
        local = columns[3]
        address = local.rsplit(":", 1)[0].strip("[]")
        found.extend((address, int(pid)) for pid in re.findall(r"pid=(\d+)", line))
    return found


def test_broker_and_spark_listen_on_loopback_only(kafka, spark) -> None:
    spark.range(10).count()  # make sure the driver's block manager and RPC endpoints are up
    pids = _project_pids(kafka.pid())
    ours = [(address, pid) for address, pid in _listeners() if pid in pids]
    assert ours, "expected to see the broker's and Spark's listeners"
    exposed = [(address, pid) for address, pid in ours if address not in _LOOPBACK]
    assert not exposed, f"listeners not on loopback: {exposed}"
    broker_ports = {address for address, pid in ours if pid == kafka.pid()}
    assert broker_ports <= set(_LOOPBACK)
