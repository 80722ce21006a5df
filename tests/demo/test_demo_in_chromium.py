"""`retail demo` (what `make demo` runs after setup) end to end, watched in headless Chromium.

A short demo on free ports with every folder under a temporary directory: the broker, the speed layer, the API,
the dashboard, yesterday's burst, a live stream with its episodes, Airflow and one run of the batch DAG. The page
must show the sell-out product's low-stock alert open and then resolved, and after the batch run W, final (batch)
revenue for yesterday and provisional (speed) revenue for today, to the cent of what the demo produced, and the
reconciliation of the late till sales. Everything the demo started is stopped at the end, also on failure.
Screenshots: test-artifacts/demo-alert-open.png, test-artifacts/demo-after-batch.png.

This is also the suite's test of the batch DAG in Airflow (the one test that starts Airflow): the demo triggers
``retail_batch`` through Airflow's REST API like a user would, and the test checks every task succeeded, the run's
row in batch/runs, W at the end of the recomputed day, a login that is neither shown nor the default, and that
no process of the stack (Airflow, its spark-submit tasks, the broker, the speed layer, API, dashboard) ever
listens beyond loopback. The DAG's tasks also run on the Spark standalone cluster (tests/scale_out).

Slow by nature (Airflow, five spark-submits, a speed layer on two busy cores): about 6-25 minutes.
"""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import stat
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import pytest

from batch_layer.arguments import STEPS
from contracts.settings import PROJECT_ROOT
from event_generator.retail_day import DayConfig, RetailDay
from serving_layer.dashboard import ids
from tests.conftest import free_port
from tests.scale_out.conftest import ListenerSampler

pytestmark = [pytest.mark.browser, pytest.mark.airflow, pytest.mark.integration, pytest.mark.timeout(2700)]

ARTIFACTS = PROJECT_ROOT / "test-artifacts"
TASKS = tuple(step.replace("-", "_") for step in STEPS)  # the DAG's task ids
SEED = 11
YESTERDAY_EVENTS = 3000
LIVE_SECONDS = 120
PEAK_RATE = 6.0
_FIGURE = """
const graph = document.querySelector('#%s .js-plotly-plot');
if (!graph || !graph.data || !graph.layout) { return null; }
return {range: graph.layout.xaxis && graph.layout.xaxis.range,
        traces: graph.data.map(t => ({name: t.name, x: t.x || [], y: t.y || []}))};
"""


def demo_day_config() -> DayConfig:
    """The day the demo below plays (the test regenerates yesterday from it; test_demo_driver checks they agree)."""
    return DayConfig(seed=SEED, yesterday_events=YESTERDAY_EVENTS, live_seconds=LIVE_SECONDS, peak_rate=PEAK_RATE)


@dataclass
class RunningDemo:
    process: subprocess.Popen[bytes]
    log: Path
    env: dict[str, str]
    dashboard_url: str
    api_url: str
    ports: dict[str, int]

    def output(self) -> str:
        return self.log.read_text(errors="replace")


def _retail(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "retail_cli.main", *args], env=env, capture_output=True, text=True, timeout=300
    )


def _answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=3) as answer:
            return answer.status == 200
    except OSError:
        return False


def _port_free(port: int) -> bool:
    with socket.socket() as sock:
        return sock.connect_ex(("127.0.0.1", port)) != 0


@pytest.fixture
def demo(tmp_path: Path) -> Iterator[RunningDemo]:
    ports = {
        name: free_port()
        for name in ("KAFKA_PORT", "KAFKA_CONTROLLER_PORT", "API_PORT", "DASHBOARD_PORT", "AIRFLOW_PORT")
    }
    env = {key: value for key, value in os.environ.items() if not key.startswith("RETAIL_")}
    env.update({f"RETAIL_{name}": str(port) for name, port in ports.items()})
    env.update(
        RETAIL_LAKE_ROOT=str(tmp_path / "lake"),
        RETAIL_CHECKPOINT_ROOT=str(tmp_path / "checkpoints"),
        RETAIL_KAFKA_DATA_DIR=str(tmp_path / "kafka"),
        RETAIL_RUN_DIR=str(tmp_path / "run"),
        RETAIL_AIRFLOW_HOME=str(tmp_path / "airflow"),
    )
    log = tmp_path / "demo.log"
    command = [sys.executable, "-m", "retail_cli.main", "demo", "--seed", str(SEED)]
    command += ["--yesterday-events", str(YESTERDAY_EVENTS), "--live-seconds", str(LIVE_SECONDS)]
    command += ["--peak-rate", str(PEAK_RATE), "--batch-timeout", "1800"]
    with log.open("wb") as out:
        process = subprocess.Popen(
            command, env=env, cwd=PROJECT_ROOT, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )
    running = RunningDemo(
        process=process,
        log=log,
        env=env,
        dashboard_url=f"http://127.0.0.1:{ports['DASHBOARD_PORT']}/",
        api_url=f"http://127.0.0.1:{ports['API_PORT']}",
        ports=ports,
    )
    try:
        yield running
    finally:
        if process.poll() is None:  # a failure mid-demo: SIGTERM makes the demo stop what it started
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=300)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()
        # after a normal run the services keep running until `make down`: the same commands here
        for args in (("stop",), ("airflow", "stop"), ("down",)):
            _retail(env, *args)
        print("\n[demo log]\n" + running.output()[-6000:])
    assert all(_port_free(port) for port in ports.values()), "a listener of the demo survived make down"
    assert not list((tmp_path / "run").glob("*.pid")) and not list((tmp_path / "airflow").glob("*.pid"))


def _wait(condition, timeout: float, what: str, demo: RunningDemo, every: float = 2.0):  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if demo.process.poll() is not None and demo.process.returncode != 0:
            pytest.fail(f"the demo exited {demo.process.returncode} while waiting for {what}:\n{demo.output()[-4000:]}")
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout:.0f} s waiting for {what}:\n{demo.output()[-4000:]}")
        time.sleep(every)


def _money(text: str) -> Decimal:
    return Decimal(text.replace(",", ""))


def _produced(output: str, bucket: str) -> Decimal:
    """Revenue of the purchases the demo says it produced (its own tally of what it sent)."""
    label = {"yesterday": "yesterday's purchases", "today": "today's purchases", "late": "late till sales of yesterday"}
    match = re.search(re.escape(label[bucket]) + r": ([\d,]+) = ([\d.]+) ", output)
    assert match, f"no '{label[bucket]}' line in the demo's output"
    return Decimal(match.group(2))


def _figure(browser) -> dict | None:  # type: ignore[no-untyped-def]
    return browser.driver.execute_script(_FIGURE % ids.REVENUE_GRAPH)


def _bar_sum(figure: dict, name: str) -> Decimal:
    traces = [t for t in figure["traces"] if t["name"] == name]
    return sum((Decimal(str(v)) for t in traces for v in t["y"]), Decimal("0.00")).quantize(Decimal("0.01"))


def _yesterday_revenue_from(start: datetime, day: RetailDay, late_sales: list[tuple[datetime, Decimal]]) -> Decimal:
    """Final revenue of yesterday's buckets from ``start`` on: the burst's purchases (regenerated from the seed)
    plus the late till sales in those buckets (they lie in 22:00-24:00 yesterday, so a 24-hour window that starts
    after 22:00 holds only some of them)."""
    total = Decimal("0.00")
    for record in day.yesterday():
        event = record.event or {}
        moment = datetime.fromisoformat(str(event["event_time"]).replace("Z", "+00:00"))
        if event["event_type"] == "purchase" and moment.replace(second=0, microsecond=0) >= start:
            total += int(event["quantity"]) * Decimal(str(event["unit_price"]))
    return total + sum((amount for moment, amount in late_sales if moment >= start), Decimal("0.00"))


def _late_sales(lake_root: str) -> list[tuple[datetime, Decimal]]:
    """(minute, revenue) of each late till sale in bronze (the generator names them ``<tag>-late-NNN``)."""
    from deltalake import DeltaTable

    rows = DeltaTable(f"{lake_root}/bronze/events").to_pyarrow_table(
        columns=["event_id", "event_type", "event_time", "quantity", "unit_price"]
    )
    sales = {}
    for row in rows.to_pylist():
        if "-late-" in row["event_id"] and row["event_type"] == "purchase":
            minute = row["event_time"].astimezone(UTC).replace(second=0, microsecond=0)
            sales[row["event_id"]] = (minute, row["quantity"] * row["unit_price"])
    return list(sales.values())


def _batch_runs(lake_root: str) -> list[dict]:
    from deltalake import DeltaTable

    return DeltaTable(f"{lake_root}/batch/runs").to_pyarrow_table().to_pylist()


def _check_airflow(demo: RunningDemo, output: str, today) -> None:  # type: ignore[no-untyped-def]
    """The DAG run the demo triggered through the REST API: every task succeeded, its one row in batch/runs, W at
    the end of the recomputed day; the login is generated and `retail airflow status` names its file only."""
    match = re.search(r"BATCH SUCCESS: dag run (\S+) in \d+ s \((.*)\)", output)
    assert match, output[-4000:]
    run_id, tasks = match.group(1), match.group(2)
    assert tasks == ", ".join(f"{task}=success" for task in TASKS), tasks
    runs = _batch_runs(demo.env["RETAIL_LAKE_ROOT"])
    assert [(run["run_id"], run["status"]) for run in runs] == [(run_id, "succeeded")]
    assert runs[0]["interval_end"].date() == today  # the recomputed day ends at today's midnight: W
    reports = Path(demo.env["RETAIL_LAKE_ROOT"]) / "batch" / "reports"
    assert [path.parent.name for path in reports.glob("*/maintain.json")] == [path.name for path in reports.iterdir()]
    home = Path(demo.env["RETAIL_AIRFLOW_HOME"])
    password = json.loads((home / "simple_auth_manager_passwords.json.generated").read_text())["admin"]
    assert password and password != "admin"
    # the home Airflow ran in (database, logs, task logs of the run) is its owner's only; no log holds the password
    assert stat.S_IMODE(home.stat().st_mode) == 0o700
    private = [home / "simple_auth_manager_passwords.json.generated", home / "airflow.db", *home.glob(".*secret*")]
    for path in [*private, *(home / "logs").rglob("*")]:
        assert stat.S_IMODE(path.stat().st_mode) & 0o077 == 0, f"{path} is readable by others"
        if path.is_file() and path.parent != home:
            assert password not in path.read_text(errors="replace"), f"{path} holds the admin password"
    status = _retail(demo.env, "airflow", "status")
    assert "running" in status.stdout or "pid" in status.stdout, status.stdout + status.stderr
    assert "simple_auth_manager_passwords.json.generated" in status.stdout
    assert password not in status.stdout + status.stderr


def test_demo_shows_final_and_provisional_revenue_an_alert_that_opens_and_resolves_and_w(
    demo: RunningDemo,
    dash_br,  # type: ignore[no-untyped-def]
) -> None:
    ARTIFACTS.mkdir(exist_ok=True)
    began = time.monotonic()
    # every listener of the stack the demo starts (its children: broker, services, Airflow and the spark-submits
    # of the DAG's tasks), sampled every 2 s while the demo runs
    listeners = ListenerSampler(lambda: [demo.process.pid] if demo.process.poll() is None else [], every_s=2.0)
    listeners.start()
    today = datetime.now(UTC).date()
    day = RetailDay(demo_day_config(), today)
    product = day.sell_out_product.product_id

    _wait(lambda: _answers(demo.dashboard_url), 300, "the dashboard to answer", demo)
    browser = dash_br
    browser.driver.set_window_size(1440, 1300)
    browser.driver.get(demo.dashboard_url)
    browser.wait_for_element(f"#{ids.WINDOW}", timeout=60)
    browser.select_dcc_dropdown(f"#{ids.WINDOW}", value="last 24 hours")

    # the sell-out: the alert opens on the page (episodes begin once the speed layer serves live numbers) ...
    alerts = f"#{ids.ALERTS_LIST}"
    browser.wait_for_contains_text(alerts, "1 open alert(s)", timeout=900)
    browser.wait_for_contains_text(alerts, product, timeout=30)
    browser.driver.save_screenshot(str(ARTIFACTS / "demo-alert-open.png"))
    opened = time.monotonic() - began
    # ... and resolves after the restock
    browser.wait_for_contains_text(alerts, "0 open alert(s), 1 resolved", timeout=600)
    resolved = time.monotonic() - began

    # the demo returns once the batch run is over; the services keep running until `make down`. Meanwhile the page
    # is closed: its refresh every second (Chromium and the dashboard's callbacks) takes about 40 % of a core that
    # the batch's spark-submits need on two cores
    browser.driver.get("about:blank")
    _wait(lambda: demo.process.poll() is not None, 2400, "the demo to finish (the batch run)", demo, every=5)
    output = demo.output()
    assert demo.process.returncode == 0, output[-4000:]
    assert "BATCH SUCCESS" in output and "W = " in output
    finished = time.monotonic() - began
    listeners.stop()
    assert not listeners.exposed(), f"the demo's processes listen beyond loopback: {listeners.exposed()}"
    seen_ports = {port for _, port, _, _ in listeners.seen}
    assert {demo.ports["AIRFLOW_PORT"], demo.ports["KAFKA_PORT"], demo.ports["API_PORT"]} <= seen_ports, seen_ports
    _check_airflow(demo, output, today)
    browser.driver.get(demo.dashboard_url)
    browser.wait_for_element(f"#{ids.WINDOW}", timeout=60)
    browser.select_dcc_dropdown(f"#{ids.WINDOW}", value="last 24 hours")

    # W on the page: yesterday is final up to today's midnight
    browser.wait_for_text_to_equal(f"#{ids.HIGH_WATER_MARK}", f"W: {today:%Y-%m-%d} 00:00 UTC", timeout=120)

    # provisional: every purchase of today's live stream, to the cent; final: yesterday's purchases in the window
    # plus the late till sales that only the batch counted
    today_revenue, late = _produced(output, "today"), _produced(output, "late")
    assert today_revenue > 0 and late > 0
    late_sales = _late_sales(demo.env["RETAIL_LAKE_ROOT"])
    assert sum((amount for _, amount in late_sales), Decimal("0.00")) == late  # bronze holds what the demo sent

    def both_sides() -> dict | None:
        figure = _figure(browser)
        if not figure or not figure["range"]:
            return None
        start = datetime.fromisoformat(str(figure["range"][0]).replace(" ", "T")).replace(tzinfo=UTC)
        expected = (_yesterday_revenue_from(start, day, late_sales), today_revenue)
        got = (_bar_sum(figure, "batch (final)"), _bar_sum(figure, "speed (provisional)"))
        return figure if got == expected else None

    _wait(both_sides, 120, "final and provisional revenue on the page to match what the demo produced", demo)
    # the reconciliation compares yesterday's hours: the speed layer missed exactly the late till sales
    summary = f"#{ids.RECONCILIATION_SUMMARY}"
    browser.wait_for_contains_text(summary, "buckets compared", timeout=60)
    browser.wait_for_contains_text(summary, f"a difference of -{late:,}", timeout=60)
    browser.driver.save_screenshot(str(ARTIFACTS / "demo-after-batch.png"))
    print(
        f"\n[demo test] alert open on the page after {opened:.0f} s, resolved after {resolved:.0f} s, "
        f"demo finished (batch run over) after {finished:.0f} s"
    )
    assert browser.get_logs() == [], "the browser console reported errors"
