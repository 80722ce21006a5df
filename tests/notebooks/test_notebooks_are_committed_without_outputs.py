"""Notebooks are committed stripped (no outputs, no execution counts), and `make notebook` stays on loopback with a
token that never appears on the command line."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from infra.notebook import HOST, NOTEBOOK_DIR, lab_command, leftovers, login_token, main, notebook_port, strip

NOTEBOOKS = sorted(NOTEBOOK_DIR.glob("*.ipynb"))


def test_there_are_notebooks() -> None:
    assert NOTEBOOKS, f"no notebooks in {NOTEBOOK_DIR}"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_notebook_has_no_outputs_and_no_execution_counts(path: Path) -> None:
    found = leftovers(json.loads(path.read_text()))
    assert not found, f"{path.name}: {found}; run `.venv/bin/python -m infra.notebook strip` before committing"


def _executed_notebook() -> dict:
    return {
        "cells": [
            {"cell_type": "markdown", "id": "m", "metadata": {}, "source": ["# title"]},
            {
                "cell_type": "code",
                "id": "a",
                "metadata": {},
                "execution_count": 3,
                "outputs": [{"output_type": "stream", "name": "stdout", "text": ["revenue 12.00\n"]}],
                "source": ["print('revenue 12.00')"],
            },
            {"cell_type": "code", "id": "b", "metadata": {}, "execution_count": None, "outputs": [], "source": []},
        ],
        "metadata": {},
        "nbformat": 4,
        "nbformat_minor": 5,
    }


def test_check_fails_on_outputs_and_strip_removes_them(tmp_path: Path) -> None:
    path = tmp_path / "executed.ipynb"
    path.write_text(json.dumps(_executed_notebook()))
    assert leftovers(json.loads(path.read_text())) == ["cell 1: 1 output(s)", "cell 1: execution count 3"]
    assert main(["check", str(path)]) == 1

    assert strip(path) is True
    stripped = json.loads(path.read_text())
    assert leftovers(stripped) == []
    assert stripped["cells"][1]["source"] == ["print('revenue 12.00')"]  # code kept
    assert main(["check", str(path)]) == 0
    assert strip(path) is False


def test_lab_binds_loopback_on_the_configured_port_and_keeps_the_token_off_the_command_line() -> None:
    assert notebook_port({}) == 8888
    assert notebook_port({"RETAIL_NOTEBOOK_PORT": "9999"}) == 9999
    for bad in ("0", "70000", "http"):
        with pytest.raises(ValueError, match="RETAIL_NOTEBOOK_PORT"):
            notebook_port({"RETAIL_NOTEBOOK_PORT": bad})
    command = lab_command(9999)
    assert f"--ServerApp.ip={HOST}" in command and HOST == "127.0.0.1"
    assert "--ServerApp.port=9999" in command and "--ServerApp.port_retries=0" in command
    assert f"--ServerApp.root_dir={NOTEBOOK_DIR}" in command
    assert not any("token" in part.lower() for part in command)
    assert "--ServerApp.allow_root=True" not in command
    assert "--ServerApp.allow_root=True" in lab_command(9999, as_root=True)  # Jupyter refuses root otherwise


def test_token_is_the_configured_one_or_a_fresh_random_one() -> None:
    assert login_token({"RETAIL_NOTEBOOK_TOKEN": "given"}) == "given"
    generated = {login_token({}) for _ in range(3)} | {login_token({"RETAIL_NOTEBOOK_TOKEN": " "})}
    assert len(generated) == 4 and all(len(token) >= 40 for token in generated)
