"""JupyterLab for the notebooks in notebooks/, and keeping those notebooks free of outputs.

``make notebook`` syncs the ``notebook`` dependency group (JupyterLab) into the venv and runs
``python -m infra.notebook lab``:

- JupyterLab on 127.0.0.1, port ``RETAIL_NOTEBOOK_PORT`` (8888; no silent move to another port), no browser,
  root folder notebooks/, kernel = the venv's Python, so ``contracts`` imports and the ``RETAIL_*`` settings apply;
- a login token: ``RETAIL_NOTEBOOK_TOKEN``, or a fresh random one when unset. Jupyter gets it through
  ``JUPYTER_TOKEN`` (never on the command line, where ``ps`` shows it to every user) and it is printed once, as
  the login URL; it is not written to any file.

Notebooks are committed without outputs or execution counts (tests/notebooks checks every one of them)::

    python -m infra.notebook strip              # every notebook in notebooks/
    python -m infra.notebook check              # exit 1 and name the cells when one has outputs
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from contracts.settings import PROJECT_ROOT

__all__ = [
    "NOTEBOOK_DIR",
    "HOST",
    "DEFAULT_PORT",
    "notebook_port",
    "login_token",
    "lab_command",
    "login_url",
    "leftovers",
    "strip",
    "main",
]

NOTEBOOK_DIR = PROJECT_ROOT / "notebooks"
HOST = "127.0.0.1"
DEFAULT_PORT = 8888
PORT_ENV = "RETAIL_NOTEBOOK_PORT"
TOKEN_ENV = "RETAIL_NOTEBOOK_TOKEN"


def notebook_port(env: Mapping[str, str]) -> int:
    """The port from ``RETAIL_NOTEBOOK_PORT`` (default 8888); raises ValueError naming the variable otherwise."""
    text = env.get(PORT_ENV, "").strip() or str(DEFAULT_PORT)
    if not text.isdigit() or not 1 <= int(text) <= 65535:
        raise ValueError(f"{PORT_ENV} must be a port number between 1 and 65535, got {text!r}")
    return int(text)


def login_token(env: Mapping[str, str]) -> str:
    """``RETAIL_NOTEBOOK_TOKEN``, or a new random token (32 bytes, URL-safe) when it is unset or empty."""
    return env.get(TOKEN_ENV, "").strip() or secrets.token_urlsafe(32)


def lab_command(port: int, root: Path = NOTEBOOK_DIR, python: str = sys.executable, as_root: bool = False) -> list[str]:
    """The JupyterLab command line: loopback only, fixed port, no browser; the token is not part of it."""
    # Jupyter refuses to start as root unless told; containers and CI machines often run as root
    root_flag = ["--ServerApp.allow_root=True"] if as_root else []
    return [
        python,
        "-m",
        "jupyterlab",
        "--no-browser",
        f"--ServerApp.ip={HOST}",
        f"--ServerApp.port={port}",
        # the printed URL must be the one that works: fail on a busy port instead of moving to the next one
        "--ServerApp.port_retries=0",
        f"--ServerApp.root_dir={root}",
        *root_flag,
    ]


def login_url(port: int, token: str) -> str:
    return f"http://{HOST}:{port}/lab?token={token}"


def leftovers(notebook: Mapping[str, Any]) -> list[str]:
    """What a committed notebook must not carry: one line per code cell with outputs or an execution count."""
    found = []
    for index, cell in enumerate(notebook.get("cells", [])):
        if cell.get("cell_type") != "code":
            continue
        if cell.get("outputs"):
            found.append(f"cell {index}: {len(cell['outputs'])} output(s)")
        if cell.get("execution_count") is not None:
            found.append(f"cell {index}: execution count {cell['execution_count']}")
    return found


def strip(path: Path) -> bool:
    """Remove outputs and execution counts from the notebook at ``path`` in place; True when it changed."""
    notebook = json.loads(path.read_text())
    if not leftovers(notebook):
        return False
    for cell in notebook["cells"]:
        if cell.get("cell_type") == "code":
            cell["outputs"] = []
            cell["execution_count"] = None
    # the layout JupyterLab and nbformat write (one-space indent, trailing newline), so diffs stay small
    path.write_text(json.dumps(notebook, indent=1, ensure_ascii=False) + "\n")
    return True


def _notebooks(paths: Sequence[str]) -> list[Path]:
    return [Path(p) for p in paths] if paths else sorted(NOTEBOOK_DIR.glob("*.ipynb"))


def _lab() -> int:
    port = notebook_port(os.environ)
    token = login_token(os.environ)
    command = lab_command(port, as_root=os.geteuid() == 0)
    try:
        import jupyterlab  # noqa: F401 - only to give a useful message when the group is not synced
    except ImportError:
        print("JupyterLab is not in .venv: run `make notebook` (it syncs the notebook group)", file=sys.stderr)
        return 2
    print(f"JupyterLab for {NOTEBOOK_DIR} (Ctrl-C stops it). Log in at:\n  {login_url(port, token)}", flush=True)
    os.chdir(NOTEBOOK_DIR)
    # replace this process: Ctrl-C and signals go straight to Jupyter
    os.execve(command[0], command, {**os.environ, "JUPYTER_TOKEN": token})
    return 0  # not reached


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m infra.notebook", description=__doc__.split("\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("lab", help=f"JupyterLab on {HOST}:${PORT_ENV} (default {DEFAULT_PORT}) with a login token")
    for name, text in (("strip", "remove outputs and execution counts"), ("check", "fail if a notebook has any")):
        sub = commands.add_parser(name, help=f"{text} (default: every notebook in notebooks/)")
        sub.add_argument("paths", nargs="*")
    args = parser.parse_args(argv)
    if args.command == "lab":
        try:
            return _lab()
        except ValueError as error:
            print(f"make notebook: {error}", file=sys.stderr)
            return 2
    failed = False
    for path in _notebooks(args.paths):
        if args.command == "strip":
            print(f"{path}: {'stripped' if strip(path) else 'already clean'}")
            continue
        for line in leftovers(json.loads(path.read_text())):
            print(f"{path}: {line}", file=sys.stderr)
            failed = True
    if failed:
        print("strip them with: .venv/bin/python -m infra.notebook strip", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
