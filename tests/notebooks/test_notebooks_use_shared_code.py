"""Notebooks stay runnable code: every code cell compiles and metrics come from contracts.metrics."""

from __future__ import annotations

import json

import pytest

from contracts.settings import PROJECT_ROOT

NOTEBOOKS = sorted((PROJECT_ROOT / "notebooks").glob("*.ipynb"))


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_code_cells_compile_and_use_the_shared_metric(path) -> None:
    cells = json.loads(path.read_text())["cells"]
    code = ["".join(cell["source"]) for cell in cells if cell["cell_type"] == "code"]
    for index, source in enumerate(code):
        compile(source, f"{path.name}[{index}]", "exec")
    joined = "\n".join(code)
    assert "build_spark_session" in joined
    assert '* F.col("unit_price")' not in joined  # no restated revenue formula
