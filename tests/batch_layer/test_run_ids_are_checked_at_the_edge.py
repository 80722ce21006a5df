"""A run id names folders of the lake (batch/reports/<id>, batch/_staging/<id>), so it is checked where it enters:
`retail batch --run-id ..` is refused before anything runs and deletes nothing, and whatever id passes the check
gives a path that stays inside its folder."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from batch_layer.arguments import checked_run_id
from batch_layer.store import _safe

RETAIL = Path(sys.executable).with_name("retail")


@pytest.mark.parametrize("bad", ["..", ".", "", "../runs", "a/b", "/abs", ".hidden", "x" * 201, "ru n", "é"])
def test_a_run_id_that_could_leave_its_folder_is_refused(bad: str) -> None:
    with pytest.raises(ValueError, match="invalid run id"):
        checked_run_id(bad)
    with pytest.raises(ValueError, match="invalid run id"):
        _safe(bad)


@pytest.mark.parametrize(
    "good", ["manual__2026-01-05T02:00:00+00:00", "scheduled__2026-01-06T02:00:00+00:00", "nightly-1", "a..b"]
)
def test_airflow_run_ids_pass(good: str) -> None:
    assert checked_run_id(good) == good


@given(st.text(max_size=60))
def test_any_accepted_id_is_one_path_component_inside_its_folder(text: str) -> None:
    try:
        checked_run_id(text)
    except ValueError:
        return
    name = _safe(text)
    assert "/" not in name and name not in (".", "..") and not name.startswith(".")
    folder = Path("/lake/batch/reports")
    assert (folder / name).resolve().parent == folder


def test_retail_batch_refuses_dot_dot_and_deletes_nothing(tmp_path: Path) -> None:
    runs = tmp_path / "lake" / "batch" / "runs"
    runs.mkdir(parents=True)
    (runs / "keep.txt").write_text("the batch layer's run history")
    env = {k: v for k, v in os.environ.items() if not k.startswith("RETAIL_")}
    env["RETAIL_LAKE_ROOT"] = str(tmp_path / "lake")
    result = subprocess.run(
        [str(RETAIL), "batch", "--date", "2026-01-05", "--run-id", ".."],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 2, result.stdout + result.stderr
    assert "invalid run id '..'" in result.stderr and "Traceback" not in result.stderr
    assert (runs / "keep.txt").read_text() == "the batch layer's run history"
