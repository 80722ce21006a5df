"""Spark's own standalone cluster on this machine: one master and N workers from the pyspark package.

``make spark-cluster`` / ``make spark-cluster-down`` (``retail cluster spark up|down|status``) go through
:class:`SparkStandalone`. The daemons are Spark's classes ``org.apache.spark.deploy.master.Master`` and
``org.apache.spark.deploy.worker.Worker`` started with pyspark's ``bin/spark-class`` (the pip wheel ships no
``sbin/start-master.sh``), each in its own process group with a PID file and a log under ``data_dir``:

- every listener binds ``host`` (127.0.0.1): the master's RPC and web UI, each worker's RPC and web UI, and,
  through ``SPARK_LOCAL_IP`` in the workers' environment, the executors they launch; the master's REST
  submission server (unauthenticated) is switched off;
- small by default: 2 workers with 1 core and 1g each, master and worker JVMs with a 256m heap.

The pipeline runs on it by settings only: ``RETAIL_SPARK_MASTER=spark://127.0.0.1:7077`` (and the Airflow
connection ``AIRFLOW_CONN_RETAIL_SPARK`` with that host for the nightly DAG). docs/scale-out.md.

Example::

    cluster = SparkStandalone.from_settings(Settings())
    cluster.start()              # idempotent; waits until every worker has registered with the master
    cluster.master_url           # "spark://127.0.0.1:7077"
    cluster.stop()               # workers, then the master; no JVM left behind
"""

from __future__ import annotations

import json
import os
import subprocess
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from contracts.errors import RetailError
from contracts.jvm import share_options, spark_archive, spark_home
from contracts.settings import Settings
from infra.processes import read_pid_file, stop_group, write_pid_file

__all__ = ["SparkStandalone", "SparkClusterError", "spark_home"]  # spark_home: from contracts.jvm

_MASTER_CLASS = "org.apache.spark.deploy.master.Master"
_WORKER_CLASS = "org.apache.spark.deploy.worker.Worker"


class SparkClusterError(RetailError):
    """The local Spark standalone cluster could not be started or did not come up."""


@dataclass(frozen=True)
class SparkStandalone:
    """A master and ``len(worker_ports)`` workers whose PID files, logs and work folders live in ``data_dir``."""

    host: str
    master_port: int
    master_webui_port: int
    worker_ports: tuple[int, ...]
    worker_webui_ports: tuple[int, ...]
    data_dir: Path
    worker_cores: int = 1
    worker_memory: str = "1g"
    daemon_memory: str = "256m"
    # where `make setup` keeps the class-data archive the daemons start with (none there: they start without)
    jar_cache: Path | None = None

    @classmethod
    def from_settings(cls, settings: Settings) -> SparkStandalone:
        count = settings.spark_cluster_workers
        return cls(
            host=settings.spark_cluster_host,
            master_port=settings.spark_cluster_master_port,
            master_webui_port=settings.spark_cluster_master_webui_port,
            worker_ports=tuple(settings.spark_cluster_worker_port + i for i in range(count)),
            worker_webui_ports=tuple(settings.spark_cluster_worker_webui_port + i for i in range(count)),
            data_dir=settings.spark_cluster_dir,
            worker_cores=settings.spark_cluster_worker_cores,
            worker_memory=settings.spark_cluster_worker_memory,
            daemon_memory=settings.spark_cluster_daemon_memory,
            jar_cache=settings.jar_cache,
        )

    # --- names and files --------------------------------------------------------------------------------
    @property
    def master_url(self) -> str:
        return f"spark://{self.host}:{self.master_port}"

    @property
    def webui_url(self) -> str:
        return f"http://{self.host}:{self.master_webui_port}"

    @property
    def daemons(self) -> list[str]:
        return ["master", *(f"worker-{i}" for i in range(1, len(self.worker_ports) + 1))]

    def pid_file(self, daemon: str) -> Path:
        return self.data_dir / f"{daemon}.pid"

    def log_file(self, daemon: str) -> Path:
        return self.data_dir / "logs" / f"{daemon}.log"

    def work_dir(self, worker: int) -> Path:
        """Where worker ``worker`` (1-based) keeps each application's jars and executor stdout/stderr."""
        return self.data_dir / "work" / f"worker-{worker}"

    def pids(self) -> dict[str, int]:
        """The daemons that run now (daemon name → PID)."""
        return {name: pid for name in self.daemons if (pid := read_pid_file(self.pid_file(name))) is not None}

    # --- processes ----------------------------------------------------------------------------------------
    def _env(self) -> dict[str, str]:
        home = spark_home()
        archive = spark_archive(self.jar_cache) if self.jar_cache else None
        return {
            **os.environ,
            "SPARK_HOME": str(home),
            # every Spark socket on this host binds here; the executors inherit it from their worker
            "SPARK_LOCAL_IP": self.host,
            "SPARK_DAEMON_MEMORY": self.daemon_memory,
            # no REST submission endpoint (it accepts unauthenticated job submissions)
            "SPARK_MASTER_OPTS": "-Dspark.master.rest.enabled=false",
            # the class-data archive of Spark JVMs (contracts/jvm.py): the daemons start faster too
            "SPARK_DAEMON_JAVA_OPTS": " ".join(share_options(archive)),
            # an empty conf folder of our own: a spark-defaults.conf elsewhere on the machine never leaks in
            "SPARK_CONF_DIR": str(self.data_dir / "conf"),
            "SPARK_LOG_DIR": str(self.data_dir / "logs"),
        }

    def _command(self, daemon: str) -> list[str]:
        spark_class = str(spark_home() / "bin" / "spark-class")
        if daemon == "master":
            return [
                spark_class,
                _MASTER_CLASS,
                "--host",
                self.host,
                "--port",
                str(self.master_port),
                "--webui-port",
                str(self.master_webui_port),
            ]
        index = int(daemon.removeprefix("worker-"))
        return [
            spark_class,
            _WORKER_CLASS,
            "--host",
            self.host,
            "--port",
            str(self.worker_ports[index - 1]),
            "--webui-port",
            str(self.worker_webui_ports[index - 1]),
            "--cores",
            str(self.worker_cores),
            "--memory",
            self.worker_memory,
            "--work-dir",
            str(self.work_dir(index)),
            self.master_url,
        ]

    def _launch(self, daemon: str) -> subprocess.Popen[bytes]:
        for folder in (self.data_dir / "logs", self.data_dir / "conf"):
            folder.mkdir(parents=True, exist_ok=True)
        with self.log_file(daemon).open("ab") as log:
            # own session = own process group: spark-class execs the JVM, so the PID is the JVM's
            process = subprocess.Popen(
                self._command(daemon),
                env=self._env(),
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
            )
        write_pid_file(self.pid_file(daemon), process.pid)
        return process

    def start(self, timeout_s: float = 120.0) -> float:
        """Start the master and the workers that do not run; wait until every worker is ALIVE at the master.

        Returns the seconds it took (0.0 when everything ran already).
        """
        started = time.monotonic()
        launched: dict[str, subprocess.Popen[bytes]] = {}
        try:
            if read_pid_file(self.pid_file("master")) is None:
                launched["master"] = self._launch("master")
            self._wait(lambda state: state is not None, "the master to answer", timeout_s, launched)
            for daemon in self.daemons[1:]:
                if read_pid_file(self.pid_file(daemon)) is None:
                    launched[daemon] = self._launch(daemon)
            self._wait(
                lambda state: state is not None and state["alive_workers"] >= len(self.worker_ports),
                f"{len(self.worker_ports)} workers to register",
                timeout_s - (time.monotonic() - started),
                launched,
            )
        except SparkClusterError:
            self.stop()
            raise
        return time.monotonic() - started if launched else 0.0

    def _wait(self, ready: Any, what: str, timeout_s: float, launched: dict[str, subprocess.Popen[bytes]]) -> None:
        deadline = time.monotonic() + max(timeout_s, 1.0)
        while time.monotonic() < deadline:
            for daemon, process in launched.items():
                if process.poll() is not None:
                    raise SparkClusterError(
                        f"Spark {daemon} exited with code {process.returncode}; see {self.log_file(daemon)}:\n"
                        + _tail(self.log_file(daemon))
                    )
            if ready(self.master_state()):
                return
            time.sleep(0.5)
        raise SparkClusterError(f"timed out after {timeout_s:.0f}s waiting for {what}; logs in {self.data_dir}/logs")

    def stop(self, grace_s: float = 20.0) -> list[str]:
        """Stop the workers (and the executors they run), then the master; returns the daemons that ran."""
        stopped = []
        for daemon in [*self.daemons[1:], "master"]:
            pid = read_pid_file(self.pid_file(daemon))
            if pid is not None:
                stop_group(pid, grace_s)
                stopped.append(daemon)
            self.pid_file(daemon).unlink(missing_ok=True)
        return stopped

    # --- state --------------------------------------------------------------------------------------------
    def master_state(self) -> dict[str, Any] | None:
        """The master's own view (its web UI's JSON): status, alive workers, cores, running applications."""
        try:
            with urllib.request.urlopen(f"{self.webui_url}/json/", timeout=2) as response:
                state = json.load(response)
        except (OSError, ValueError):
            return None
        workers = [worker for worker in state.get("workers", []) if worker.get("state") == "ALIVE"]
        return {
            "status": state.get("status"),
            "alive_workers": len(workers),
            "cores": sum(int(worker.get("cores", 0)) for worker in workers),
            "memory_mb": sum(int(worker.get("memory", 0)) for worker in workers),
            "active_apps": [app.get("name") for app in state.get("activeapps", [])],
            "completed_apps": [app.get("name") for app in state.get("completedapps", [])],
        }

    def describe(self) -> str:
        pids = self.pids()
        if not pids:
            return f"spark cluster: stopped (would run {self.master_url} with {len(self.worker_ports)} workers)"
        state = self.master_state()
        daemons = ", ".join(f"{name} pid {pid}" for name, pid in pids.items())
        if state is None:
            return f"spark cluster: {daemons}; master not answering on {self.webui_url}"
        apps = ", ".join(state["active_apps"]) or "none"
        return (
            f"spark cluster: {state['status']} at {self.master_url} (web UI {self.webui_url}), "
            f"{state['alive_workers']} workers alive, {state['cores']} cores, {state['memory_mb']} MB; "
            f"running apps: {apps}; {daemons}; logs in {self.data_dir / 'logs'}"
        )


def _tail(path: Path, lines: int = 20) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except FileNotFoundError:
        return "(no output)"
