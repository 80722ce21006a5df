"""Every notebook in notebooks/ runs top to bottom on a small real lake, in a kernel of the venv's own Python.

The lake is real Delta tables in the project's layouts: bronze as the speed layer partitions it, and the speed
minute rollups and the nightly batch views computed with the shared metric (``contracts.metrics.sales_rollup``)
and written by the serving tests' ``LakeBuilder`` (with a ``batch/runs`` row), which is much cheaper than a second
real batch run; the backfill notebook then runs the real batch job. The story: the nightly run of DAY saw the
on-time events; then the late ones (event time 90 minutes before their arrival) reached bronze. So speed and batch
agree to the cent (neither has the late events), the ad-hoc SQL over bronze sees them all, and the backfill adds
exactly their revenue. The notebooks run in name order (the backfill last, as in the story); the expected figures
come from plain Python (``tests.batch_layer.conftest.expected_views``), not from project code.

Each notebook starts its own kernel and Spark JVM; the backfill also pays for Great Expectations' start-up.
"""

from __future__ import annotations

import json
import os
import re
import sys
import time
from datetime import timedelta
from decimal import Decimal
from pathlib import Path

import pytest

from contracts.settings import PROJECT_ROOT, Settings
from contracts.tables import Lake
from tests.batch_layer.conftest import DAY, expected_views, generated_events, lake_settings, write_bronze

NOTEBOOKS = sorted((PROJECT_ROOT / "notebooks").glob("*.ipynb"))
KERNEL = "retail-lambda-tests"
DAY_END = DAY + timedelta(days=1)
TOTAL = (DAY, "total", "all")


@pytest.fixture(scope="module")
def notebook_lake(spark, settings: Settings, test_root: Path) -> tuple[Settings, dict[str, Decimal]]:  # type: ignore[no-untyped-def]
    """A lake where batch and speed hold DAY's on-time events and bronze also holds its late ones."""
    from tests.serving_layer.lake_builder import Event, LakeBuilder

    lake_config = lake_settings(settings, test_root, "notebooks")
    lake = Lake(lake_config.lake_root, lake_config.checkpoint_root)
    rows = generated_events(seed=17, count=240, start=DAY + timedelta(hours=8), rate=0.01)
    on_time = [row for row in rows if row["kind"] != "late"]
    late = [row for row in rows if row["kind"] == "late"]
    first_copies = {row["event_id"]: row for row in reversed(on_time)}
    events = [
        Event(
            *(row[c] for c in ("event_id", "event_type", "event_time", "user_id", "product_id", "category")),
            row["quantity"],
            row["unit_price"],
        )
        for row in first_copies.values()
    ]

    write_bronze(spark, lake.bronze_events, on_time)
    builder = LakeBuilder(spark, lake_config.lake_root)
    builder.merge_speed_minutes(events)
    builder.write_batch(events, "scheduled__2026-01-05", (DAY, DAY_END), high_water_mark=DAY_END)
    write_bronze(spark, lake.bronze_events, late)

    seen_by_batch = expected_views(on_time, DAY, DAY_END)["day"][TOTAL]
    everything = expected_views(rows, DAY, DAY_END)["day"][TOTAL]
    expected = {"nightly_revenue": seen_by_batch[0], "revenue": everything[0], "orders": Decimal(everything[1])}
    assert late and expected["revenue"] > expected["nightly_revenue"], "no late revenue: pick another seed"
    return lake_config, expected


@pytest.fixture()
def kernel_env(notebook_lake, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:  # type: ignore[no-untyped-def]
    """The environment a kernel inherits: this test's lake and day, a kernel spec of this interpreter, own dirs."""
    lake_config, _ = notebook_lake
    for name in list(os.environ):
        # a developer's RETAIL_* (another lake, a cluster master) and this process's Spark gateway must not leak
        if name.startswith("RETAIL_") or name.startswith("PYSPARK_GATEWAY") or name == "MPLBACKEND":
            monkeypatch.delenv(name)
    monkeypatch.setenv("RETAIL_LAKE_ROOT", lake_config.lake_root)
    monkeypatch.setenv("RETAIL_CHECKPOINT_ROOT", lake_config.checkpoint_root)
    monkeypatch.setenv("RETAIL_NOTEBOOK_DATE", f"{DAY:%Y-%m-%d}")
    monkeypatch.setenv("RETAIL_SPARK_DRIVER_MEMORY", "1g")
    # a handful of rows: one task per shuffle and snapshot stage is plenty, and cheaper on a busy 2-core machine
    monkeypatch.setenv("RETAIL_SPARK_SHUFFLE_PARTITIONS", "1")
    monkeypatch.setenv("GX_ANALYTICS_ENABLED", "false")
    kernels = tmp_path / "jupyter" / "kernels" / KERNEL
    kernels.mkdir(parents=True)
    spec = {
        "argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
        "display_name": "retail-lambda tests",
        "language": "python",
    }
    (kernels / "kernel.json").write_text(json.dumps(spec))
    # JUPYTER_PATH comes before the user's own kernel specs: the kernel is this venv's Python, whatever is installed
    monkeypatch.setenv("JUPYTER_PATH", str(tmp_path / "jupyter"))
    monkeypatch.setenv("JUPYTER_RUNTIME_DIR", str(tmp_path / "runtime"))
    monkeypatch.setenv("IPYTHONDIR", str(tmp_path / "ipython"))
    workdir = tmp_path / "cwd"
    workdir.mkdir()
    return workdir


def execute(path: Path, workdir: Path):  # type: ignore[no-untyped-def]
    """Run the notebook at ``path`` in a fresh kernel; returns the executed notebook (the file is not touched)."""
    import nbformat
    from nbclient import NotebookClient

    notebook = nbformat.read(path, as_version=4)
    client = NotebookClient(
        notebook,
        kernel_name=KERNEL,
        timeout=300,
        startup_timeout=120,
        resources={"metadata": {"path": str(workdir)}},
    )
    client.execute()
    return notebook


def text_of(notebook) -> str:  # type: ignore[no-untyped-def]
    parts = []
    for cell in notebook.cells:
        for output in cell.get("outputs", []):
            if output["output_type"] == "stream":
                parts.append(output["text"])
            elif output["output_type"] in ("execute_result", "display_data"):
                parts.append(output.get("data", {}).get("text/plain", ""))
    return "".join(parts)


def money(pattern: str, text: str) -> Decimal:
    match = re.search(pattern, text)
    assert match, f"no line matching {pattern!r} in the notebook's output:\n{text[-3000:]}"
    return Decimal(match.group(1))


def check_explore(text: str, notebook, expected: dict[str, Decimal]) -> None:  # type: ignore[no-untyped-def]
    matches = re.findall(r"^(\S+)\s+schema matches the contract: (\w+)$", text, re.MULTILINE)
    assert {"bronze/events", "speed/sales_minute", "batch/sales_day", "batch/runs"} <= {name for name, _ in matches}
    assert all(same == "True" for _, same in matches), matches
    counts = [int(n) for n in re.findall(r"^bronze/events version \d+: (\d+) rows$", text, re.MULTILINE)]
    assert counts == sorted(counts) and counts[-1] > counts[0], counts
    assert "(same as versionAsOf: True)" in text


def check_reconcile(text: str, notebook, expected: dict[str, Decimal]) -> None:  # type: ignore[no-untyped-def]
    nightly = expected["nightly_revenue"]
    assert money(r"batch revenue (-?[\d.]+) EUR", text) == nightly
    assert money(r"speed revenue (-?[\d.]+) EUR", text) == nightly
    assert money(r"reconciliation difference \(speed - batch\): (-?[\d.]+) EUR", text) == Decimal("0.00")
    assert re.search(r"; 0 of \d+ minutes differ", text), text[-2000:]
    images = [
        output for cell in notebook.cells for output in cell.get("outputs", []) if "image/png" in output.get("data", {})
    ]
    assert len(images) == 1, "the reconciliation plot is missing"


def check_adhoc_sql(text: str, notebook, expected: dict[str, Decimal]) -> None:  # type: ignore[no-untyped-def]
    assert money(r"\d{4}-\d\d-\d\d: revenue (-?[\d.]+) EUR", text) == expected["revenue"]
    assert money(r"EUR, (\d+) orders", text) == expected["orders"]


def check_backfill(text: str, notebook, expected: dict[str, Decimal]) -> None:  # type: ignore[no-untyped-def]
    assert money(r"revenue before (-?[\d.]+) EUR", text) == expected["nightly_revenue"]
    assert money(r"after (-?[\d.]+) EUR \(version", text) == expected["revenue"]
    change = expected["revenue"] - expected["nightly_revenue"]
    assert money(r"backfill revenue change: (-?[\d.]+) EUR", text) == change
    assert re.search(r"bronze commits since the last successful run of \S+: [1-9]", text), text[-2000:]


CHECKS = {
    "01_explore_lake.ipynb": check_explore,
    "02_reconcile_speed_and_batch.ipynb": check_reconcile,
    "03_adhoc_sql_on_bronze.ipynb": check_adhoc_sql,
    "04_backfill_a_past_day.ipynb": check_backfill,
}


def test_every_notebook_has_a_check() -> None:
    assert sorted(CHECKS) == [path.name for path in NOTEBOOKS]


@pytest.mark.timeout(420)
@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_notebook_runs_on_a_real_lake_and_shows_the_expected_figures(path: Path, notebook_lake, kernel_env) -> None:  # type: ignore[no-untyped-def]
    _, expected = notebook_lake
    began = time.monotonic()
    notebook = execute(path, kernel_env)
    print(f"\n[notebooks] {path.name} ran in {time.monotonic() - began:.1f}s")
    CHECKS[path.name](text_of(notebook), notebook, expected)
