"""`make bench`: every benchmark, several times, medians and spreads into BENCHMARKS.md, plus plots.

Runs ``--repeats`` times (REPEATS, default 3) each benchmark named by ``--only`` (default all four), each run a
subprocess writing its own JSON (``--json``) and markdown into a scratch folder:

- ``speed``: ``python -m benchmarks.speed`` (event→served p50/p95/p99 per rate, alert latency, backlog drain);
- ``batch``: ``python -m benchmarks.batch all --reuse`` (Spark vs DuckDB over the generated 10M events, the nightly
  run, the growth curve; the generated bronze table is built once and shared by the repeats);
- ``serve``: ``python -m benchmarks.serving`` (merged queries, HTTP, dashboard refresh; its lake is built once);
- ``memory``: ``python -m benchmarks.memory`` (PSS of the whole running stack under a modest load).

Then it writes, into ``--output`` (BENCHMARKS.md): a summary section at the top (targets with verdicts on the
medians, every headline number as median (min–max), the machine, the load average before/after each run and the
CPU other processes used) and, below it, each benchmark's own section from its last successful run; and PNG plots
into ``--plots`` (docs/bench), referenced from the summary. ``--json PATH`` keeps every run's numbers.

Extra arguments go to a benchmark with ``--speed-args``, ``--batch-args``, ``--serve-args``, ``--memory-args``
(one string each, split like a shell would). A smoke run with tiny sizes::

    python -m benchmarks.all --repeats 1 --output /tmp/bench/BENCHMARKS.md --plots /tmp/bench/plots \\
        --speed-args "--rates 200 --duration 5 --warmup 3 --drain-events 2000" \\
        --batch-args "--events 20000 --days 1 --nightly-events 2000 --growth-days 1,3 --root /tmp/bench/batch" \\
        --serve-args "--repeat 5" --memory-args "--seconds 16 --warmup 5 --rate 5"
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from benchmarks.machine import OtherLoad, describe
from benchmarks.summary import (
    MARK_END,
    MARK_START,
    aggregate,
    batch_metrics,
    memory_metrics,
    render_summary,
    serve_metrics,
    speed_metrics,
)
from contracts.settings import PROJECT_ROOT

__all__ = ["main", "place_sections"]

BENCHMARKS = ("speed", "batch", "serve", "memory")
# benchmark -> (module and fixed arguments, its markdown option, the markers of the sections it writes)
_COMMANDS: dict[str, tuple[list[str], str, list[tuple[str, str]]]] = {
    "speed": (["benchmarks.speed"], "--out", [("<!-- bench-speed:start -->", "<!-- bench-speed:end -->")]),
    "batch": (
        ["benchmarks.batch", "all", "--reuse"],
        "--output",
        [
            ("<!-- batch-bench:begin -->", "<!-- batch-bench:end -->"),
            ("<!-- batch-nightly:begin -->", "<!-- batch-nightly:end -->"),
            ("<!-- batch-growth:begin -->", "<!-- batch-growth:end -->"),
        ],
    ),
    "serve": (["benchmarks.serving"], "--output", [("<!-- bench-serve:start -->", "<!-- bench-serve:end -->")]),
    "memory": (["benchmarks.memory"], "--output", [("<!-- bench-memory:start -->", "<!-- bench-memory:end -->")]),
}
_METRICS: dict[str, Callable[[Mapping[str, Any]], dict[str, float]]] = {
    "speed": speed_metrics,
    "batch": batch_metrics,
    "serve": serve_metrics,
    "memory": memory_metrics,
}


def _log(message: str) -> None:
    print(f"[bench {datetime.now(UTC):%H:%M:%S}] {message}", flush=True)


def _block(text: str, start: str, end: str) -> str | None:
    if start not in text or end not in text:
        return None
    return start + text.split(start, 1)[1].split(end, 1)[0] + end


def place_sections(document: str, summary: str, sections: Sequence[str]) -> str:
    """``document`` with the summary block right under its title and each section replacing its namesake (found
    by its first line, the start marker) or appended; everything else is kept as it was."""
    text = document if document.strip() else "# Benchmarks\n"
    start, end = MARK_START, MARK_END
    if start in text and end in text:
        head, rest = text.split(start, 1)
        text = head + summary.rstrip("\n") + rest.split(end, 1)[1]
    else:
        lines = text.split("\n", 1)
        title, body = (lines[0], lines[1] if len(lines) > 1 else "") if lines[0].startswith("# ") else ("", text)
        text = (title + "\n\n" if title else "") + summary.rstrip("\n") + "\n\n" + body.lstrip("\n")
    for section in sections:
        begin = section.split("\n", 1)[0]
        finish = section.rstrip("\n").rsplit("\n", 1)[-1]
        if begin in text and finish in text:
            head, rest = text.split(begin, 1)
            text = head + section.rstrip("\n") + rest.split(finish, 1)[1]
        else:
            text = text.rstrip("\n") + "\n\n" + section.rstrip("\n") + "\n"
    return text


def run_one(name: str, repeat: int, work: Path, extra: Sequence[str]) -> dict[str, Any]:
    """One run of one benchmark as a subprocess; returns its JSON, markdown, time and the load around it."""
    module, md_option, _ = _COMMANDS[name]
    json_path, md_path = work / f"{name}-{repeat}.json", work / f"{name}-{repeat}.md"
    argv = [sys.executable, "-m", *module, md_option, str(md_path), "--json", str(json_path), *extra]
    _log(f"{name} run {repeat}: {' '.join(argv[2:])}")
    began = time.monotonic()
    with OtherLoad() as load, (work / f"{name}-{repeat}.log").open("wb") as log:
        code = subprocess.run(argv, cwd=PROJECT_ROOT, stdout=log, stderr=subprocess.STDOUT, check=False).returncode
    seconds = time.monotonic() - began
    result = json.loads(json_path.read_text()) if json_path.exists() else None
    ok = code == 0 and result is not None
    around = load.result()
    if result is not None and name == "memory":
        # the stack's services outlive the `retail` commands that started them, so only the memory benchmark
        # itself knows which processes are its own
        around = result.get("load", around)
    _log(f"{name} run {repeat}: {'done' if ok else f'FAILED (exit {code}, log {log.name})'} in {seconds:.0f}s")
    return {
        "benchmark": name,
        "repeat": repeat,
        "ok": ok,
        "exit_code": code,
        "seconds": seconds,
        "load": around,
        "result": result,
        "markdown": md_path.read_text() if md_path.exists() else "",
        "log": str(work / f"{name}-{repeat}.log"),
    }


def _only(text: str) -> list[str]:
    names = [name.strip() for name in text.split(",") if name.strip()]
    unknown = [name for name in names if name not in BENCHMARKS]
    if unknown or not names:
        raise argparse.ArgumentTypeError(f"--only takes names among {', '.join(BENCHMARKS)}, got {text!r}")
    return names


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.all", description=__doc__.splitlines()[0])
    parser.add_argument(
        "--repeats", type=int, default=int(os.environ.get("REPEATS", "3")), help="runs of each (REPEATS, 3)"
    )
    parser.add_argument("--only", type=_only, default=list(BENCHMARKS), help="e.g. speed,batch,serve,memory")
    parser.add_argument("--output", type=Path, default=PROJECT_ROOT / "BENCHMARKS.md", help="the report")
    parser.add_argument("--plots", type=Path, default=PROJECT_ROOT / "docs" / "bench", help="folder of the PNGs")
    parser.add_argument("--json", type=Path, default=None, help="also write every run's numbers as JSON here")
    parser.add_argument("--work", type=Path, default=None, help="scratch folder (default: a temporary one)")
    for name in BENCHMARKS:
        parser.add_argument(f"--{name}-args", default="", help=f"extra arguments of the {name} benchmark")
    args = parser.parse_args(argv)
    if args.repeats < 1:
        parser.error("--repeats must be at least 1")
    work = args.work or Path(tempfile.mkdtemp(prefix="bench-all-"))
    work.mkdir(parents=True, exist_ok=True)
    _log(f"benchmarks {', '.join(args.only)}, {args.repeats} run(s) each; scratch folder {work}")
    machine = describe()
    runs: list[dict[str, Any]] = []
    for repeat in range(1, args.repeats + 1):
        for name in args.only:
            extra = shlex.split(getattr(args, f"{name}_args"))
            runs.append(run_one(name, repeat, work, extra))

    metrics = [_METRICS[run["benchmark"]](run["result"]) for run in runs if run["ok"]]
    table = aggregate(metrics)
    plots = {}
    for plot, path in write_plots_safely(table, args.plots).items():
        plots[plot] = os.path.relpath(path, args.output.resolve().parent)
    notes = []
    for run in runs:
        if not run["ok"]:
            notes.append(
                f"{run['benchmark']} run {run['repeat']} failed (exit {run['exit_code']}); it is left out of the "
                "medians."
            )
    for name in args.only:
        extra = getattr(args, f"{name}_args")
        if extra:
            notes.append(f"{name} ran with `{extra}` (not its defaults).")
    context = {
        "measured_at": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "repeats": args.repeats,
        "machine": machine,
        "plots": plots,
        "runs": [{key: run[key] for key in ("benchmark", "repeat", "ok", "seconds", "load")} for run in runs],
        "notes": notes,
    }
    summary = render_summary(table, context)
    sections = []
    for name in args.only:
        last = next((run for run in reversed(runs) if run["benchmark"] == name and run["ok"]), None)
        if last is None:
            continue
        for start, end in _COMMANDS[name][2]:
            block = _block(last["markdown"], start, end)
            if block:
                sections.append(block + "\n")
    document = args.output.read_text() if args.output.exists() else ""
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(place_sections(document, summary, sections))
    _log(f"{args.output} written" + (f"; plots in {args.plots}" if plots else ""))
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        payload = {**context, "summary": table, "runs": [{k: v for k, v in r.items() if k != "markdown"} for r in runs]}
        args.json.write_text(json.dumps(payload, indent=2, default=str))
    print(summary)
    return 0 if all(run["ok"] for run in runs) else 1


def write_plots_safely(table: Mapping[str, Mapping[str, float]], folder: Path) -> dict[str, Path]:
    """The plots (benchmarks.plots); a plotting error is reported and leaves the report without plots."""
    try:
        from benchmarks.plots import write_plots

        return write_plots(table, folder)
    except Exception as error:  # noqa: BLE001 - the numbers matter more than the pictures
        _log(f"plots not written: {type(error).__name__}: {error}")
        return {}


if __name__ == "__main__":
    raise SystemExit(main())
