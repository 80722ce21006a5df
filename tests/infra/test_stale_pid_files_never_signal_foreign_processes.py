"""A PID file that outlived its process must never lead to signalling whatever process now holds that PID."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from contracts.settings import Settings
from infra.kafka_broker import LocalKafka
from infra.processes import alive, read_pid_file, write_pid_file
from infra.services import Services


@pytest.fixture
def foreign_process():
    """A process this project did not start (stands for whatever reused the PID)."""
    process = subprocess.Popen(["sleep", "300"], start_new_session=True)
    yield process
    process.kill()
    process.wait()


@pytest.mark.parametrize("content", ["{pid}", "{pid} 1", "{pid} not-a-number", ""])
def test_a_stale_pid_file_is_ignored_and_removed(tmp_path: Path, foreign_process, content: str) -> None:
    pid_file = tmp_path / "api.pid"
    pid_file.write_text(content.format(pid=foreign_process.pid))
    assert read_pid_file(pid_file) is None
    assert not pid_file.exists()
    assert alive(foreign_process.pid)


def test_stop_with_a_stale_pid_file_leaves_the_foreign_process_alone(tmp_path: Path, foreign_process) -> None:
    services = Services(tmp_path)
    (tmp_path / "api.pid").write_text(f"{foreign_process.pid} 1\n")  # right PID, wrong start time
    assert services.stop("api") is False
    broker = LocalKafka.from_settings(Settings(kafka_data_dir=tmp_path / "kafka"))
    broker.pid_file.parent.mkdir(parents=True)
    broker.pid_file.write_text(str(foreign_process.pid))  # the format of older versions: PID only
    assert broker.stop() is False
    assert foreign_process.poll() is None, "the foreign process was signalled"


def test_a_pid_file_of_a_live_process_is_read_back(tmp_path: Path, foreign_process) -> None:
    pid_file = tmp_path / "speed.pid"
    write_pid_file(pid_file, foreign_process.pid)
    assert read_pid_file(pid_file) == foreign_process.pid


def test_a_service_that_died_is_reported_with_its_last_error(tmp_path: Path) -> None:
    services = Services(tmp_path)
    crashed = subprocess.Popen(["sleep", "0.3"])
    write_pid_file(tmp_path / "speed.pid", crashed.pid)
    crashed.wait()
    services.log_file("speed").write_text(
        "speed layer running\n"
        "ERROR query rollups failed: [ARITHMETIC_OVERFLOW] Decimal overflow\n"
        '  File "speed_layer/job.py", line 3\n'
        "    at org.apache.spark.sql.Foo(Foo.scala:1)\n"
    )
    assert services.running() == {}
    assert services.died() == {"speed": "ERROR query rollups failed: [ARITHMETIC_OVERFLOW] Decimal overflow"}
    assert services.died(), "reporting a death does not forget it"
    assert services.stop("speed") is False
    assert services.died() == {}, "stop clears the record of the death"
