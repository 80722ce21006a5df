"""The Airflow home holds a login and signing keys: only its owner can read it, and no log holds the password.

Checked without starting Airflow (the demo test checks the same of a home Airflow ran in:
tests/demo/test_demo_in_chromium.py)."""

from __future__ import annotations

import json
import stat
from pathlib import Path

from contracts.settings import Settings
from infra.airflow_local import LocalAirflow


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_a_new_home_is_private_and_its_password_generated_by_us(tmp_path: Path) -> None:
    airflow = LocalAirflow.from_settings(Settings(_env_file=None, airflow_home=tmp_path / "airflow"))
    airflow.env()  # the signing keys
    airflow.prepare_home()
    password = airflow.admin_password()
    assert len(password) >= 16 and password != "admin"
    assert _mode(airflow.home) == 0o700 and _mode(airflow.home / "logs") == 0o700
    assert _mode(airflow.passwords_file) == 0o600
    assert {_mode(path) for path in airflow.home.glob(".*secret*")} == {0o600}
    airflow.prepare_home()
    assert airflow.admin_password() == password  # kept across starts


def test_a_home_an_older_version_left_open_is_closed(tmp_path: Path) -> None:
    home = tmp_path / "airflow"
    (home / "logs").mkdir(parents=True)
    home.chmod(0o755)
    passwords = home / "simple_auth_manager_passwords.json.generated"
    passwords.write_text(json.dumps({"admin": "Xy7old-password"}))
    passwords.chmod(0o644)
    log = home / "logs" / "api-server.out"
    log.write_text("starting\nSimple auth manager | Password for user 'admin': Xy7old-password\nready\n")
    log.chmod(0o644)
    airflow = LocalAirflow.from_settings(Settings(_env_file=None, airflow_home=home))
    airflow.prepare_home()
    assert _mode(home) == 0o700 and _mode(passwords) == 0o600 and _mode(log) == 0o600
    assert airflow.admin_password() == "Xy7old-password"  # the existing login still works
    assert log.read_text() == "starting\nready\n"
