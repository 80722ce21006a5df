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

from infra.processes import read_pid_file, stop_group, wait_gone, write_pid_file

__all__ = ["SERVICES", "Services"]

# service name → `retail` subcommand
SERVICES: dict[str, tuple[str, ...]] = {
    "speed": ("speed",),
    "api": ("serve",),
    "dashboard": ("dashboard",),
}


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

    def running(self) -> dict[str, int]:
        return {name: pid for name in SERVICES if (pid := self.pid(name)) is not None}
