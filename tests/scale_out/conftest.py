"""Fixtures of the scale-out tests: Spark's standalone cluster and a 3-node Kafka cluster on free loopback ports,
each started and stopped by its fixture (by process group), and the exact reconciliation of the speed layer's
Delta tables with what the generator produced (the model is tests/speed_layer/test_crash_restart_exactly_once.py).
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import threading
from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator
from datetime import datetime
from decimal import Decimal
from pathlib import Path

import pytest
from deltalake import DeltaTable

from contracts.settings import PROJECT_ROOT, Settings
from contracts.tables import Lake
from event_generator.generator import GeneratedRecord
from tests.conftest import free_port

_PYTHON_BIN = str(Path(sys.executable).parent)


@pytest.fixture(scope="session")
def spark_cluster(settings: Settings, test_root: Path) -> Iterator[object]:
    """A Spark standalone master and two workers (1 core, 1g each) from pyspark's own classes."""
    from infra.spark_cluster import SparkStandalone

    cluster = SparkStandalone(
        host="127.0.0.1",
        master_port=free_port(),
        master_webui_port=free_port(),
        worker_ports=(free_port(), free_port()),
        worker_webui_ports=(free_port(), free_port()),
        data_dir=test_root / "spark-cluster",
        worker_cores=1,
        worker_memory="1g",
        daemon_memory="256m",
        jar_cache=settings.jar_cache,
    )
    seconds = cluster.start()
    print(f"\n[spark cluster fixture] {cluster.master_url} with 2 workers ready in {seconds:.1f}s")
    yield cluster
    stopped = cluster.stop()
    assert set(stopped) == {"master", "worker-1", "worker-2"}
    assert cluster.pids() == {}


def pipeline_env(settings: Settings, **overrides: str) -> dict[str, str]:
    """The environment of a `retail` subprocess: the run's RETAIL_* settings, the venv first on PATH."""
    env = {
        **os.environ,
        "PATH": f"{_PYTHON_BIN}{os.pathsep}{os.environ.get('PATH', '')}",
        "RETAIL_KAFKA_BOOTSTRAP_SERVERS": settings.kafka_bootstrap_servers,
        "RETAIL_EVENTS_TOPIC": settings.events_topic,
        "RETAIL_ALERTS_TOPIC": settings.alerts_topic,
        "RETAIL_SPEED_SALES_TOPIC": settings.speed_sales_topic,
        "RETAIL_SPEED_INVENTORY_TOPIC": settings.speed_inventory_topic,
        "RETAIL_LAKE_ROOT": settings.lake_root,
        "RETAIL_CHECKPOINT_ROOT": settings.checkpoint_root,
        "RETAIL_JAR_CACHE": str(settings.jar_cache),
        "RETAIL_SPARK_DRIVER_MEMORY": "1g",
        "GX_ANALYTICS_ENABLED": "false",
    }
    env.update(overrides)
    return env


_LOOPBACK = ("127.0.0.1", "::ffff:127.0.0.1", "::1")


class ListenerSampler(threading.Thread):
    """Samples ``ss -ltnp`` every ``every_s`` while it runs: every TCP listener of the process trees rooted at
    ``roots()`` (daemons, drivers and the executors their workers fork), as (address, port, pid, root pid)."""

    def __init__(self, roots: Callable[[], Iterable[int]], every_s: float = 1.0) -> None:
        super().__init__(daemon=True)
        self.roots, self.every_s = roots, every_s
        self.seen: set[tuple[str, int, int, int]] = set()
        self._stop_event = threading.Event()

    def _pids(self) -> dict[int, int]:
        import psutil

        pids: dict[int, int] = {}
        for root in self.roots():
            try:
                pids[root] = root
                pids.update((child.pid, root) for child in psutil.Process(root).children(recursive=True))
            except psutil.NoSuchProcess:
                continue
        return pids

    def sample(self) -> None:
        pids = self._pids()
        output = subprocess.run(["ss", "-ltnpH"], capture_output=True, text=True, check=True).stdout
        for line in output.splitlines():
            address, port = line.split()[3].rsplit(":", 1)
            for pid in (int(found) for found in re.findall(r"pid=(\d+)", line)):
                if pid in pids:
                    self.seen.add((address.strip("[]"), int(port), pid, pids[pid]))

    def run(self) -> None:
        while not self._stop_event.wait(self.every_s):
            self.sample()

    def stop(self) -> set[tuple[str, int, int, int]]:
        self._stop_event.set()
        self.join(timeout=30)
        self.sample()
        return self.seen

    def exposed(self) -> list[tuple[str, int, int, int]]:
        return sorted(entry for entry in self.seen if entry[0] not in _LOOPBACK)


def start_retail(args: list[str], env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    """Start ``retail ARGS`` in its own process group; output appended to ``log``."""
    with log.open("ab") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "retail_cli.main", *args],
            cwd=PROJECT_ROOT,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )


def run_retail(args: list[str], env: dict[str, str], log: Path, timeout_s: float = 1200) -> int:
    """Run ``retail ARGS`` to completion in its own process group; output appended to ``log``."""
    from infra.processes import group_alive, stop_group

    process = start_retail(args, env, log)
    try:
        return process.wait(timeout=timeout_s)
    finally:
        # a timeout, pytest-timeout or Ctrl-C must not leave the JVM running against fixtures being torn down
        if process.poll() is None or group_alive(process.pid):
            stop_group(process.pid, 10)


def expected_revenue_per_minute(records: Iterable[GeneratedRecord]) -> dict[datetime, Decimal]:
    """Revenue per event-time minute over the unique valid events, in Decimal (re-sent ids counted once)."""
    unique = {record.event["event_id"]: record.event for record in records if record.event is not None}
    revenue: dict[datetime, Decimal] = defaultdict(lambda: Decimal("0.00"))
    for event in unique.values():
        minute = datetime.fromisoformat(str(event["event_time"]).replace("Z", "+00:00")).replace(
            second=0, microsecond=0
        )
        revenue[minute] += Decimal("0.00")
        if event["event_type"] == "purchase":
            revenue[minute] += int(event["quantity"]) * Decimal(str(event["unit_price"]))  # type: ignore[call-overload]
    return dict(revenue)


def assert_speed_tables_reconcile(
    lake: Lake, produced: list[GeneratedRecord], storage_options: dict[str, str] | None = None
) -> dict[str, int]:
    """bronze/events holds one row per produced valid record (re-sends included), quarantine one per malformed
    record, and speed/sales_minute's total revenue per minute equals the produced events' exactly.

    The tables are read with delta-rs (no JVM); ``storage_options`` reach it for a lake on S3.
    """

    def table(path: str) -> DeltaTable:
        return DeltaTable(path, storage_options=storage_options)

    valid = [record.event for record in produced if record.event is not None]
    malformed = [record for record in produced if record.event is None]
    bronze = table(lake.bronze_events).to_pandas(columns=["event_id", "kafka_partition", "kafka_offset"])
    assert len(bronze) == len(valid), f"bronze has {len(bronze)} rows for {len(valid)} produced valid records"
    assert bronze[["kafka_partition", "kafka_offset"]].drop_duplicates().shape[0] == len(valid)
    assert sorted(bronze.event_id) == sorted(str(event["event_id"]) for event in valid)
    quarantine = table(lake.bronze_quarantine).to_pandas(columns=["reject_reason"])
    assert len(quarantine) == len(malformed)

    views = table(lake.table("speed/sales_minute")).to_pandas()
    total = views[views.dimension == "total"]
    got = {row.bucket_start.to_pydatetime(): Decimal(str(row.revenue)) for row in total.itertuples()}
    expected = expected_revenue_per_minute(produced)
    assert got == expected
    return {"valid": len(valid), "malformed": len(malformed), "minutes": len(expected)}
