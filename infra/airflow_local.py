"""Run Apache Airflow 3 locally for the batch DAG: api-server, scheduler and dag-processor on 127.0.0.1.

What ``make airflow`` / ``make airflow-down`` / ``make down`` and the Airflow test fixtures all go through:

- metadata in SQLite under ``$AIRFLOW_HOME`` (``var/airflow`` by default), LocalExecutor, parallelism 4,
  no example DAGs, the project's ``dags/`` folder;
- every listener on ``RETAIL_BIND_HOST`` (127.0.0.1): the api-server via ``AIRFLOW__API__HOST``; the scheduler
  runs with ``--skip-serve-logs`` because its log server would bind 0.0.0.0:8793;
- login required (simple auth manager, user ``admin``); the password is generated here (not by Airflow, which would
  print it into the api-server's log) into ``$AIRFLOW_HOME/simple_auth_manager_passwords.json.generated`` (0600)
  and :meth:`LocalAirflow.admin_password` reads it; the home is 0700 and every service runs with umask 077, so
  the database, the logs and the secrets are the owner's only;
- the Spark connection as an environment variable ``AIRFLOW_CONN_RETAIL_SPARK`` (master = RETAIL_SPARK_MASTER,
  ``local[2]`` by default) unless one is already set, so a cluster is one variable away;
- the caller's RETAIL_* settings are handed to every service, so spark-submit jobs see the same lake;
- each service in its own process group with a PID file; stop = SIGTERM to the group, then SIGKILL.

Example::

    airflow = LocalAirflow.from_settings(Settings())
    airflow.start()                  # idempotent
    token = airflow.token()          # POST /auth/token with the generated admin password
    airflow.stop()
"""

from __future__ import annotations

import json
import os
import secrets
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import SecretStr

from contracts.settings import PROJECT_ROOT, Settings
from infra.errors import AirflowServiceError
from infra.processes import group_alive, read_pid_file, signal_group, write_pid_file

__all__ = ["LocalAirflow", "SERVICES", "settings_env"]

SERVICES: dict[str, list[str]] = {
    "api-server": ["api-server"],
    "scheduler": ["scheduler", "--skip-serve-logs"],
    "dag-processor": ["dag-processor"],
}
_BIN = Path(sys.executable).parent
_UMASK = 0o077


def _write_private(path: Path, text: str) -> None:
    """Write ``text`` to ``path``, readable and writable by its owner only, from the first byte on."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with open(fd, "w") as out:
        out.write(text)
    path.chmod(0o600)


def settings_env(settings: Settings) -> dict[str, str]:
    """The settings as RETAIL_* environment variables (secrets included: the services need them)."""
    env: dict[str, str] = {}
    for name in Settings.model_fields:
        value = getattr(settings, name)
        if value is None:
            continue
        if isinstance(value, SecretStr):
            value = value.get_secret_value()
        elif isinstance(value, bool):
            value = str(value).lower()
        elif isinstance(value, dict):
            value = json.dumps(value)  # pydantic-settings reads complex values as JSON
        env[f"RETAIL_{name.upper()}"] = str(value)
    return env


@dataclass(frozen=True)
class LocalAirflow:
    """The three Airflow services of one AIRFLOW_HOME."""

    home: Path
    host: str
    port: int
    settings_env: dict[str, str] = field(default_factory=dict)
    spark_master: str = "local[2]"
    conn_id: str = "retail_spark"
    parallelism: int = 4
    dags_folder: Path = PROJECT_ROOT / "dags"

    @classmethod
    def from_settings(cls, settings: Settings) -> LocalAirflow:
        return cls(
            home=Path(settings.airflow_home).resolve(),
            host=settings.bind_host,
            port=settings.airflow_port,
            settings_env=settings_env(settings),
            spark_master=settings.spark_master,
            conn_id=settings.airflow_spark_conn_id,
            parallelism=settings.airflow_parallelism,
        )

    # --- configuration --------------------------------------------------------------------------
    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def passwords_file(self) -> Path:
        return self.home / "simple_auth_manager_passwords.json.generated"

    def _secret(self, name: str) -> str:
        # the api-server and the scheduler must sign and check task tokens with the same key: keep it on disk
        path = self.home / f".{name}"
        if not path.exists():
            self._private_folders()
            _write_private(path, secrets.token_urlsafe(32))
        return path.read_text().strip()

    def _private_folders(self) -> None:
        for folder in (self.home, self.home / "logs"):
            folder.mkdir(mode=0o700, parents=True, exist_ok=True)
            folder.chmod(0o700)

    def prepare_home(self) -> None:
        """The home only its owner can enter (0700), the admin password generated here into a 0600 file, and what
        an older version left readable closed: logs 0600, and the line with the password that Airflow printed into
        the api-server's log when it generated the password itself removed."""
        self._private_folders()
        try:
            known = json.loads(self.passwords_file.read_text())
        except (OSError, ValueError):
            known = {}
        if not isinstance(known, dict) or not known.get("admin"):
            # Airflow's simple auth manager prints a password only when it generates one: with ours in the file
            # it generates none, so no log ever holds it
            _write_private(self.passwords_file, json.dumps({"admin": secrets.token_urlsafe(16)}) + "\n")
        self.passwords_file.chmod(0o600)
        for log in (self.home / "logs").glob("*.out"):
            log.chmod(0o600)
            text = log.read_text(errors="replace")
            if "Password for user" in text:
                kept = [line for line in text.splitlines(keepends=True) if "Password for user" not in line]
                _write_private(log, "".join(kept))

    def env(self) -> dict[str, str]:
        """The environment every Airflow command of this home runs with."""
        env = {**os.environ, **self.settings_env}
        env.update(
            {
                "AIRFLOW_HOME": str(self.home),
                "AIRFLOW__CORE__DAGS_FOLDER": str(self.dags_folder),
                "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
                "AIRFLOW__CORE__EXECUTOR": "LocalExecutor",
                "AIRFLOW__CORE__PARALLELISM": str(self.parallelism),
                "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": "admin:admin",
                "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"{self.url}/execution/",
                "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{self.home / 'airflow.db'}",
                "AIRFLOW__API__HOST": self.host,
                "AIRFLOW__API__PORT": str(self.port),
                "AIRFLOW__API__BASE_URL": self.url,
                "AIRFLOW__API__SECRET_KEY": self._secret("api_secret_key"),
                "AIRFLOW__API_AUTH__JWT_SECRET": self._secret("jwt_secret"),
                "AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL": "30",
                "AIRFLOW__SCHEDULER__ENABLE_HEALTH_CHECK": "False",
                # task logs: Airflow sets their modes itself (0775 / 0664 by default), whatever the umask
                "AIRFLOW__LOGGING__FILE_TASK_HANDLER_NEW_FOLDER_PERMISSIONS": "0o700",
                "AIRFLOW__LOGGING__FILE_TASK_HANDLER_NEW_FILE_PERMISSIONS": "0o600",
                "GX_ANALYTICS_ENABLED": "false",
                "PYSPARK_PYTHON": sys.executable,
                "PYSPARK_DRIVER_PYTHON": sys.executable,
                # spark-submit and airflow from the project's venv, whatever PATH the caller had
                "PATH": f"{_BIN}{os.pathsep}{os.environ.get('PATH', '')}",
            }
        )
        conn_var = f"AIRFLOW_CONN_{self.conn_id.upper()}"
        env.setdefault(
            conn_var,
            json.dumps({"conn_type": "spark", "host": self.spark_master, "extra": {"spark-binary": "spark-submit"}}),
        )
        return env

    def airflow(self, *args: str, timeout: float = 600, check: bool = True) -> subprocess.CompletedProcess[str]:
        """Run one ``airflow`` CLI command against this home and wait for it."""
        self._private_folders()
        result = subprocess.run(
            [str(_BIN / "airflow"), *args],
            env=self.env(),
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
            umask=_UMASK,
        )
        if check and result.returncode != 0:
            tail = "\n".join((result.stdout + result.stderr).strip().splitlines()[-30:])
            raise AirflowServiceError(f"`airflow {' '.join(args)}` exited {result.returncode}:\n{tail}")
        return result

    def migrate(self) -> None:
        """Create or upgrade the SQLite metadata database (idempotent)."""
        self.airflow("db", "migrate")

    # --- processes ------------------------------------------------------------------------------
    def _pid_file(self, service: str) -> Path:
        return self.home / f"{service}.pid"

    def log_file(self, service: str) -> Path:
        return self.home / "logs" / f"{service}.out"

    def pids(self) -> dict[str, int]:
        """Services of this home that are running, by name."""
        running = {}
        for service in SERVICES:
            pid = read_pid_file(self._pid_file(service))
            if pid is not None:
                running[service] = pid
        return running

    def start(self, timeout_s: float = 180) -> float:
        """Migrate, start the services that are not running, wait until the API answers; returns seconds waited."""
        began = time.monotonic()
        running = self.pids()
        self.prepare_home()
        if len(running) < len(SERVICES):
            self.migrate()
        env = self.env()
        for service, args in SERVICES.items():
            if service in running:
                continue
            log_fd = os.open(self.log_file(service), os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
            with open(log_fd, "ab") as log:
                process = subprocess.Popen(
                    [str(_BIN / "airflow"), *args],
                    env=env,
                    stdin=subprocess.DEVNULL,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,  # its own process group: stop() ends every child with it
                    cwd=self.home,
                    umask=_UMASK,  # the database, logs and files Airflow writes: its owner's only
                )
            write_pid_file(self._pid_file(service), process.pid)
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.healthy():
                return time.monotonic() - began
            dead = [name for name in SERVICES if name not in self.pids()]
            if dead:
                self.stop()
                raise AirflowServiceError(f"Airflow {', '.join(dead)} exited at start; see {self.log_file(dead[0])}")
            time.sleep(1.0)
        self.stop()
        raise AirflowServiceError(f"Airflow API did not answer on {self.url} within {timeout_s:.0f}s")

    def stop(self, grace_s: float = 20) -> list[str]:
        """Stop every service of this home by process group (SIGTERM, then SIGKILL); returns what was stopped."""
        running = self.pids()
        for pid in running.values():
            signal_group(pid, signal.SIGTERM)
        deadline = time.monotonic() + grace_s
        while time.monotonic() < deadline and any(group_alive(pid) for pid in running.values()):
            time.sleep(0.3)
        for pid in running.values():
            if group_alive(pid):
                signal_group(pid, signal.SIGKILL)
        for service in running:
            self._pid_file(service).unlink(missing_ok=True)
        return sorted(running)

    # --- API ------------------------------------------------------------------------------------
    def healthy(self) -> bool:
        try:
            with urllib.request.urlopen(f"{self.url}/api/v2/monitor/health", timeout=3) as response:
                return response.status == 200
        except (urllib.error.URLError, OSError):
            return False

    def admin_password(self) -> str:
        """The generated password of user ``admin`` (never admin/admin)."""
        if not self.passwords_file.exists():
            raise AirflowServiceError(f"no generated password yet in {self.passwords_file}: start Airflow first")
        return str(json.loads(self.passwords_file.read_text())["admin"])

    def request(self, method: str, path: str, body: Any = None, token: str | None = None) -> Any:
        """One JSON request to the REST API; returns the decoded answer."""
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(f"{self.url}{path}", data=data, method=method)
        request.add_header("Content-Type", "application/json")
        if token:
            request.add_header("Authorization", f"Bearer {token}")
        try:
            with urllib.request.urlopen(request, timeout=30) as response:
                text = response.read().decode()
        except urllib.error.HTTPError as error:
            raise AirflowServiceError(f"{method} {path} -> {error.code}: {error.read().decode()[:500]}") from error
        return json.loads(text) if text else None

    def token(self) -> str:
        """A bearer token for user admin (POST /auth/token)."""
        answer = self.request("POST", "/auth/token", {"username": "admin", "password": self.admin_password()})
        return str(answer["access_token"])
