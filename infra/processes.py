"""Process-group helpers shared by everything that starts long-running processes (broker, services, Airflow), and
the free-port helper every temporary stack (tests, benchmarks, the JVM archive build) uses.

Each long-running process is started in its own session (``start_new_session=True``), so its PID is also its
process-group id and stopping the group takes down the JVMs and workers it forked.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import time
from pathlib import Path

__all__ = [
    "free_port",
    "alive",
    "group_alive",
    "signal_group",
    "wait_gone",
    "stop_group",
    "write_pid_file",
    "read_pid_file",
    "pid_file_state",
]


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now (the OS picks it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def alive(pid: int) -> bool:
    """True while ``pid`` runs; a zombie (exited, not yet reaped) counts as gone, and is reaped if it is ours."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    with contextlib.suppress(ChildProcessError):
        if os.waitpid(pid, os.WNOHANG)[0] == pid:
            return False
    with contextlib.suppress(OSError):
        if Path(f"/proc/{pid}/stat").read_text().split(") ")[-1].startswith("Z"):
            return False
    return True


def _start_ticks(pid: int) -> int | None:
    """The kernel's start time of ``pid`` (clock ticks since boot; /proc/<pid>/stat field 22), or None."""
    try:
        return int(Path(f"/proc/{pid}/stat").read_text().split(") ")[-1].split()[19])
    except (OSError, ValueError, IndexError):
        return None


def write_pid_file(path: Path, pid: int) -> None:
    """Record ``pid`` together with its start time, so a later reader can tell it from a recycled PID."""
    path.write_text(f"{pid} {_start_ticks(pid) or 0}\n")


def pid_file_state(path: Path) -> tuple[str, int | None]:
    """("running", pid) if the process recorded in ``path`` still runs, ("dead", pid) if it does not (the file
    outlived it: a crash, a kill or a reboot), ("absent", None) without a readable file. Changes nothing."""
    try:
        fields = path.read_text().split()
        pid = int(fields[0])
    except (FileNotFoundError, ValueError, IndexError):
        return "absent", None
    try:
        started = int(fields[1])
    except (ValueError, IndexError):
        return "dead", pid  # no start time recorded: cannot be told from a recycled PID
    if alive(pid) and _start_ticks(pid) == started:
        return "running", pid
    return "dead", pid


def read_pid_file(path: Path) -> int | None:
    """The PID recorded in ``path`` if that very process still runs; None (and the file removed) otherwise.

    A PID file outlives its process after a crash or a reboot, and the kernel reuses PIDs: signalling the number
    alone could hit a foreign process (as root, any process). The start time written with the PID must match.
    """
    state, pid = pid_file_state(path)
    if state == "running":
        return pid
    path.unlink(missing_ok=True)
    return None


def _any_in_group(pgid: int) -> bool:
    for stat in Path("/proc").glob("[0-9]*/stat"):
        with contextlib.suppress(OSError, ValueError, IndexError):
            fields = stat.read_text().split(") ")[-1].split()
            if int(fields[2]) == pgid and fields[0] != "Z":
                return True
    return False


def group_alive(pgid: int) -> bool:
    """True while any non-zombie process of group ``pgid`` runs."""
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return alive(pgid) or _any_in_group(pgid)


def signal_group(pgid: int, sig: signal.Signals) -> None:
    """Send ``sig`` to the group; a group that is already gone is fine."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, sig)


def wait_gone(pid: int, timeout_s: float, group: bool = True) -> bool:
    """Wait until the process (or its whole group) is gone; False if it still runs after ``timeout_s``."""
    check = group_alive if group else alive
    deadline = time.monotonic() + timeout_s
    while check(pid):
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.2)
    return True


def stop_group(pgid: int, grace_s: float, first: signal.Signals = signal.SIGTERM) -> None:
    """Stop a process group: ``first`` (SIGTERM by default), then SIGKILL after ``grace_s``; waits until gone."""
    signal_group(pgid, first)
    if not wait_gone(pgid, grace_s):
        signal_group(pgid, signal.SIGKILL)
        wait_gone(pgid, 10.0)
