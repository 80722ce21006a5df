"""`make up` twice is harmless and `make down` leaves no process behind (a broker of its own, other ports)."""

from __future__ import annotations

import socket

import psutil
import pytest

from infra.kafka_broker import LocalKafka
from tests.conftest import free_port

pytestmark = pytest.mark.integration


def _port_open(port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(0.5)
        return sock.connect_ex(("127.0.0.1", port)) == 0


def test_start_twice_then_stop_leaves_nothing(settings, test_root) -> None:
    broker = LocalKafka(
        host="127.0.0.1",
        port=free_port(),
        controller_port=free_port(),
        data_dir=test_root / "kafka-lifecycle",
        jar_cache=settings.jar_cache,
        heap="256m",
    )
    first = broker.start()
    assert first > 0
    pid = broker.pid()
    group = {pid, *(child.pid for child in psutil.Process(pid).children(recursive=True))}
    assert broker.start() == 0.0  # already running: nothing new started
    assert broker.pid() == pid
    topics = broker.ensure_topics({"retail.events": 3, "retail.alerts": 1})
    assert (
        topics
        == broker.ensure_topics({"retail.events": 3, "retail.alerts": 1})
        == {"retail.events": 3, "retail.alerts": 1}
    )
    assert broker.status().ready

    assert broker.stop() is True
    assert not any(psutil.pid_exists(p) and psutil.Process(p).status() != psutil.STATUS_ZOMBIE for p in group)
    assert not _port_open(broker.port) and not _port_open(broker.controller_port)
    assert broker.stop() is False
    assert not broker.status().running
