"""Crash test: SIGKILL the streaming driver and its JVM five times while events are produced; after every
restart from the checkpoint, bronze holds each produced event exactly once and the views equal the answers.

Four kills land in the window that matters (after the writes of a micro-batch of bronze, the two live queries and
the Delta copy, before Spark commits it to the checkpoint) through the job's test-only hook; one is an external
SIGKILL of both speed drivers at an arbitrary moment.
"""

from __future__ import annotations

import json
import signal
from pathlib import Path

import pytest

from contracts.tables import Lake
from speed_layer.sinks import CRASH_ENV
from tests.speed_layer.crash_helpers import (
    Producer,
    assert_exact_after_restart,
    driver_env,
    group_gone,
    isolated_settings,
    kill_group,
    start_driver,
    wait_for_bronze_growth,
)

pytestmark = pytest.mark.integration


def test_sigkills_on_every_write_path_neither_drop_nor_duplicate(kafka, settings, test_root) -> None:
    root = test_root / "crash"
    run_settings = isolated_settings(settings, root, "speed.crash")
    kafka.ensure_topics({run_settings.events_topic: 3, run_settings.alerts_topic: 1})
    lake = Lake(run_settings.lake_root, run_settings.checkpoint_root)
    env = driver_env(
        run_settings,
        RETAIL_SPEED_TRIGGER="1 second",
        RETAIL_SPEED_BRONZE_TRIGGER="2 seconds",
        RETAIL_SPEED_DURABLE_TRIGGER="2 seconds",
    )
    log = test_root / "crash-driver.log"
    producer = Producer(run_settings, rate=40)
    producer.start()
    kills = 0
    try:
        # the hook kills driver + JVM right after a micro-batch's writes (Delta for bronze and the Delta copy,
        # Kafka for the live queries), before Spark commits that batch to the checkpoint: the batch is replayed.
        # One driver runs all four queries here (one JVM start per kill, the copy not starved at nice +10); the
        # external kill below hits the default two-driver split
        for crash_at in ("bronze:2", "rollups:2", "inventory:2", "durable:2"):
            process = start_driver({**env, CRASH_ENV: crash_at}, log, "--part", "one")
            assert process.wait(timeout=400) == -signal.SIGKILL, log.read_text()[-3000:]
            assert group_gone(process.pid), "a JVM of the killed driver is still running"
            kills += 1
        # and an external SIGKILL of the whole process group at an arbitrary moment while data flows
        process = start_driver(env, log)
        rows_now = len(producer.sent) // 2
        wait_for_bronze_growth(lake.bronze_events, rows_now, process)
        kill_group(process)
        assert group_gone(process.pid)
        kills += 1
    finally:
        producer.stop_event.set()
        producer.join(timeout=60)
    assert kills == 5

    # drain everything produced, then compare with what was sent
    final = start_driver(env, log, "--available-now")
    assert final.wait(timeout=400) == 0, log.read_text()[-3000:]

    facts = assert_exact_after_restart(run_settings, lake, producer.sent)
    print(f"\n[crash test] {kills} kills, exact after restart: {facts}")
    # the driver's own session created the checkpoints: its stateful queries have one state partition each
    for query in ("rollups", "inventory"):
        offsets = [path for path in (Path(lake.checkpoint(query)) / "offsets").iterdir() if path.name.isdigit()]
        first = min(offsets, key=lambda path: int(path.name))
        metadata = json.loads(first.read_text().splitlines()[1])
        assert metadata["conf"]["spark.sql.shuffle.partitions"] == str(run_settings.speed_shuffle_partitions) == "1"
