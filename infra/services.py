"""Long-running project processes (speed layer, API, dashboard) started in the background and stopped again.

Each service runs a `retail` subcommand in its own process group (so its JVM and workers stop with it), with a
PID file under ``<run_dir>`` and its output in ``<run_dir>/<name>.log``. ``make demo`` starts them, ``make down``
stops them, ``make status`` lists them.

Example::

    services = Services(Path("var/run"))
    services.start("speed")          # runs `retail speed` in the background
    services.stop_all()
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from infra.processes import pid_file_state, read_pid_file, stop_group, wait_gone, write_pid_file

__all__ = ["SERVICES", "Services", "last_error_line"]

# service name → `retail` subcommand
SERVICES: dict[str, tuple[str, ...]] = {
    "speed": ("speed",),
    "api": ("serve",),
    "dashboard": ("dashboard",),
}


_ERROR_MARKERS = ("Error", "Exception", "ERROR", "FATAL", "Traceback", "failed")


def last_error_line(log: Path, tail_bytes: int = 65536) -> str:
    """The last line of ``log`` that reads like an error (else its last non-empty line), trimmed to 300 chars."""
    try:
        with log.open("rb") as handle:
            handle.seek(max(0, log.stat().st_size - tail_bytes))
            lines = [line.strip() for line in handle.read().decode(errors="replace").splitlines() if line.strip()]
    except FileNotFoundError:
        return f"(no log at {log})"
    # stack frames ("at org.apache...", 'File "..."') are not the message; the line that names the error is
    messages = [line for line in lines if not line.startswith(("at ", "File ", "..."))]
    errors = [line for line in messages if any(marker in line for marker in _ERROR_MARKERS)]
    chosen = (errors or messages or ["(empty log)"])[-1]
    return chosen[:300]


@dataclass(frozen=True)
class Services:
    run_dir: Path

    def _pid_file(self, name: str) -> Path:
        return self.run_dir / f"{name}.pid"

    def log_file(self, name: str) -> Path:
        return self.run_dir / f"{name}.log"

    def pid(self, name: str) -> int | None:
        return read_pid_file(self._pid_file(name))

    def start(self, name: str) -> int:
        """Start service ``name`` unless it runs already; returns its PID."""
        if name not in SERVICES:
            raise ValueError(f"service must be one of {tuple(SERVICES)}, got {name!r}")
        running = self.pid(name)
        if running is not None:
            return running
        self.run_dir.mkdir(parents=True, exist_ok=True)
        process = subprocess.Popen(
            [sys.executable, "-m", "retail_cli.main", *SERVICES[name]],
            stdout=self.log_file(name).open("ab"),
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
        write_pid_file(self._pid_file(name), process.pid)
        return process.pid

    def stop(self, name: str, timeout_s: float = 30.0) -> bool:
        """Stop a service: SIGINT to its leader (graceful: queries stop between batches), then SIGKILL to the
        whole process group, so no JVM or worker survives. False if it was not running."""
        pid = self.pid(name)
        self._pid_file(name).unlink(missing_ok=True)
        if pid is None:
            return False
        # only the leader gets SIGINT: the JVM must outlive the Python driver's orderly shutdown
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGINT)
        wait_gone(pid, timeout_s, group=False)
        # whatever is left in its group (the leader if it hung, a JVM, Python workers) is killed
        stop_group(pid, 0.0, first=signal.SIGKILL)
        return True

    def stop_all(self) -> list[str]:
        return [name for name in SERVICES if self.stop(name)]

    def died(self) -> dict[str, str]:
        """Services whose PID file outlived the process (crashed or killed), with the last error line of the log.

        The PID file stays until `retail stop` or `retail start`, so `retail status` keeps reporting the death.
        """
        dead = {}
        for name in SERVICES:
            state, _ = pid_file_state(self._pid_file(name))
            if state == "dead":
                dead[name] = last_error_line(self.log_file(name))
        return dead

    def running(self) -> dict[str, int]:
        # reads without removing: a dead service's PID file stays for died() until stop or start
        states = {name: pid_file_state(self._pid_file(name)) for name in SERVICES}
        return {name: pid for name, (state, pid) in states.items() if state == "running" and pid is not None}
