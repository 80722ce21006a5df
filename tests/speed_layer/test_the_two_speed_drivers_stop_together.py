"""`retail speed --part split` runs two drivers (bronze and the live queries, and the Delta copy in a
lower-priority child): neither may outlive the other. A copy driver that dies stops the first one with an error
exit; Ctrl-C on the first one stops both gracefully; no JVM is left behind either way."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import pytest

from tests.speed_layer.crash_helpers import driver_env, group_gone, isolated_settings, start_driver

pytestmark = pytest.mark.integration


def _copy_driver(parent_pid: int, log: Path, starts: int, timeout_s: float = 240) -> int:
    """PID of the `retail speed --part copy` child of ``parent_pid``, once ``log`` shows ``starts`` copy starts."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if log.read_text(errors="replace").count("speed layer running (copy)") < starts:
            time.sleep(1)
            continue
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit():
                continue
            try:
                stat = (entry / "stat").read_text()
                argv = (entry / "cmdline").read_bytes().split(b"\0")
            except OSError:
                continue
            ppid = int(stat.rsplit(")", 1)[1].split()[1])
            if ppid == parent_pid and b"--part" in argv and b"copy" in argv:
                return int(entry.name)
        time.sleep(1)
    raise AssertionError(f"no running copy driver under {parent_pid}:\n{log.read_text()[-3000:]}")


def _niceness(pid: int) -> int:
    return int((Path("/proc") / str(pid) / "stat").read_text().rsplit(")", 1)[1].split()[16])


def test_a_dead_copy_driver_stops_the_first_one_and_ctrl_c_stops_both(kafka, settings, test_root) -> None:
    root = test_root / "two-drivers"
    run_settings = isolated_settings(settings, root, "speed.two")
    kafka.ensure_topics({run_settings.events_topic: 3, run_settings.alerts_topic: 1})
    env = driver_env(run_settings, RETAIL_SPEED_COPY_NICENESS="7")
    log = root / "driver.log"
    root.mkdir(parents=True, exist_ok=True)

    # the copy driver dies (SIGKILL, no clean-up): the first driver notices, stops its queries and exits with 1
    live = start_driver(env, log, "--part", "split")
    copy = _copy_driver(live.pid, log, starts=1)
    assert _niceness(copy) - _niceness(live.pid) == 7
    os.kill(copy, signal.SIGKILL)
    assert live.wait(timeout=180) == 1, log.read_text()[-3000:]
    assert "the copy driver (the Delta copy) exited with code -9" in log.read_text()
    assert group_gone(live.pid), "a JVM of the two drivers is still running"

    # Ctrl-C on the first driver (SIGINT to it alone, as `retail stop speed` sends): both stop, exit code 0
    live = start_driver(env, log, "--part", "split")
    copy = _copy_driver(live.pid, log, starts=2)
    os.kill(live.pid, signal.SIGINT)
    assert live.wait(timeout=240) == 0, log.read_text()[-3000:]
    with pytest.raises(ProcessLookupError):
        os.kill(copy, 0)
    assert group_gone(live.pid), "a JVM of the two drivers is still running"
