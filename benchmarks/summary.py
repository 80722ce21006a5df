"""The pure part of `make bench`: headline numbers out of each benchmark's JSON, medians and spreads over repeats,
and the summary section of BENCHMARKS.md.

No I/O here: ``benchmarks.all`` runs the benchmarks and writes the files.

Example::

    runs = [speed_metrics(json.loads(text)) for text in texts]      # one dict of numbers per repeat
    table = aggregate(runs)                                         # {"speed.1000.p95": {"median": ..., ...}}
    markdown = render_summary(table, context)
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Mapping, Sequence
from typing import Any

from batch_layer.arguments import STEPS
from benchmarks.batch import FLAT_GROWTH, TARGET_NIGHTLY_S, TARGET_RATIO
from benchmarks.speed import TARGET_ALERT_P95_S, TARGET_DRAIN_EPS, TARGET_P95_1K_S, TARGET_P95_10K_S

__all__ = [
    "MARK_END",
    "MARK_START",
    "aggregate",
    "batch_metrics",
    "memory_metrics",
    "render_summary",
    "serve_metrics",
    "speed_metrics",
    "spread",
]

MARK_START, MARK_END = "<!-- bench-summary:start -->", "<!-- bench-summary:end -->"
TARGET_SERVE_P95_MS = 20.0
SERVE_HEADLINE = "merged minute, last 24 h, total (1,440 rows)"
BATCH_STEPS = STEPS


# --- numbers out of each benchmark's JSON --------------------------------------------------------------------
def _number(value: Any) -> float:
    if value is None:
        return math.nan
    return float(value)


def speed_metrics(result: Mapping[str, Any]) -> dict[str, float]:
    """Per offered rate: event→served p50/p95/p99 and alert→API p95 (s); the drain's events/s."""
    out: dict[str, float] = {}
    for window in result.get("windows", []):
        rate = f"{window['rate']:g}"
        for p in ("p50", "p95", "p99"):
            out[f"speed.{rate}.{p}"] = _number(window["latency"][p])
        out[f"speed.{rate}.alert_p95"] = _number(window["alerts_api"]["p95"])
        out[f"speed.{rate}.kafka_rate"] = _number(window["kafka_rate"])
    drain = result.get("drain") or {}
    if "events_per_s_wall" in drain:
        out["speed.drain.wall_eps"] = _number(drain["events_per_s_wall"])
        out["speed.drain.batches_eps"] = _number(drain["events_per_s_batches"])
    return out


def batch_metrics(result: Mapping[str, Any]) -> dict[str, float]:
    """Spark vs DuckDB seconds and their ratio, the nightly run (wall and per step), the growth curve."""
    out: dict[str, float] = {}
    if "spark" in result:
        out["batch.spark_s"] = _number(result["spark"]["recompute_s"])
        out["batch.duckdb_s"] = _number(result["duckdb"]["compute_s"])
        out["batch.ratio"] = _number(result["ratio"])
    if "nightly" in result:
        night = result["nightly"]["night"]
        out["batch.nightly_s"] = _number(night["wall_s"])
        for step in BATCH_STEPS:
            if step in night["steps"]:
                out[f"batch.nightly.{step}"] = _number(night["steps"][step].get("seconds"))
    for point in result.get("growth", []):
        out[f"batch.growth.{point['lake']['history_days']}"] = _number(point["night"]["wall_s"])
    if "growth_ratio" in result:
        out["batch.growth_ratio"] = _number(result["growth_ratio"])
    return out


def serve_metrics(result: Mapping[str, Any]) -> dict[str, float]:
    """p50 and p95 (ms) of every timed serving query."""
    out: dict[str, float] = {}
    for label, stats in result.get("queries", {}).items():
        out[f"serve.{label}.p50"] = _number(stats.get("p50"))
        out[f"serve.{label}.p95"] = _number(stats.get("p95"))
    return out


def memory_metrics(result: Mapping[str, Any]) -> dict[str, float]:
    """Median and max PSS (MiB) per component and of the total."""
    out: dict[str, float] = {}
    for name, stats in result.get("components", {}).items():
        out[f"memory.{name}.median"] = _number(stats["median_mib"])
        out[f"memory.{name}.max"] = _number(stats["max_mib"])
    return out


# --- over the repeats ----------------------------------------------------------------------------------------
def spread(values: Sequence[float]) -> dict[str, float]:
    """Median, min and max of the measured values (nan = not measured is left out; inf = never counts)."""
    measured = sorted(v for v in values if not math.isnan(v))
    if not measured:
        return {"median": math.nan, "min": math.nan, "max": math.nan, "n": 0}
    return {"median": statistics.median(measured), "min": measured[0], "max": measured[-1], "n": len(measured)}


def aggregate(runs: Sequence[Mapping[str, float]]) -> dict[str, dict[str, float]]:
    """Per metric, the spread over the runs that measured it."""
    keys = sorted({key for run in runs for key in run})
    return {key: spread([run[key] for run in runs if key in run]) for key in keys}


# --- markdown ------------------------------------------------------------------------------------------------
def fmt(value: float, digits: int = 2) -> str:
    if math.isinf(value):
        return "never"
    if math.isnan(value):
        return "–"
    return f"{value:,.{digits}f}"


def cell(stats: Mapping[str, float] | None, digits: int = 2) -> str:
    """``median (min–max)``; just the median for one run."""
    if not stats or not stats.get("n"):
        return "–"
    if stats["n"] == 1 or stats["min"] == stats["max"]:
        return fmt(stats["median"], digits)
    return f"{fmt(stats['median'], digits)} ({fmt(stats['min'], digits)}–{fmt(stats['max'], digits)})"


def _verdict(stats: Mapping[str, float] | None, ok: Any) -> str:
    if not stats or not stats.get("n"):
        return "not measured"
    return "met" if ok(stats["median"]) else "**missed**"


def _rates(table: Mapping[str, Any]) -> list[str]:
    rates = {key.split(".")[1] for key in table if key.startswith("speed.") and key.endswith(".p95")}
    return sorted((r for r in rates if r != "drain"), key=float)


def targets(table: Mapping[str, Mapping[str, float]]) -> list[tuple[str, Mapping[str, float] | None, str, str]]:
    """(target, its statistics, unit, verdict on the median) for every target of the issues."""
    rows: list[tuple[str, Mapping[str, float] | None, str, str]] = []

    def add(label: str, key: str, unit: str, ok: Any) -> None:
        stats = table.get(key)
        rows.append((label, stats, unit, _verdict(stats, ok)))

    add(
        f"event→served p95 ≤ {TARGET_P95_1K_S:g} s at 1,000 ev/s", "speed.1000.p95", "s", lambda v: v <= TARGET_P95_1K_S
    )
    add(
        f"event→served p95 ≤ {TARGET_P95_10K_S:g} s at 10,000 ev/s",
        "speed.10000.p95",
        "s",
        lambda v: v <= TARGET_P95_10K_S,
    )
    for rate in _rates(table):
        add(
            f"alert p95 ≤ {TARGET_ALERT_P95_S:g} s at {float(rate):,.0f} ev/s",
            f"speed.{rate}.alert_p95",
            "s",
            lambda v: v <= TARGET_ALERT_P95_S,
        )
    add(
        f"drain ≥ {TARGET_DRAIN_EPS:,.0f} events/s (wall incl. start-up)",
        "speed.drain.wall_eps",
        "ev/s",
        lambda v: v >= TARGET_DRAIN_EPS,
    )
    add(f"Spark recompute within {TARGET_RATIO:g}x DuckDB", "batch.ratio", "x", lambda v: v <= TARGET_RATIO)
    add(
        f"nightly run of one small day < {TARGET_NIGHTLY_S:g} s wall",
        "batch.nightly_s",
        "s",
        lambda v: v < TARGET_NIGHTLY_S,
    )
    add(
        f"flat growth: longest history's nightly wall ≤ {FLAT_GROWTH:g}x the shortest's",
        "batch.growth_ratio",
        "x",
        lambda v: v <= FLAT_GROWTH,
    )
    add(
        f"merged query p95 ≤ {TARGET_SERVE_P95_MS:g} ms (minute, last 24 h)",
        f"serve.{SERVE_HEADLINE}.p95",
        "ms",
        lambda v: v <= TARGET_SERVE_P95_MS,
    )
    return rows


def _machine_line(machine: Mapping[str, Any]) -> str:
    packages = ", ".join(f"{name} {version}" for name, version in machine.get("packages", {}).items())
    return (
        f"{machine['cpu']}, {machine['cores']} cores, {machine['memory_gib']} GiB RAM, {machine['os']}, Linux "
        f"{machine['kernel']}; {machine['java']}; Python {machine['python']}; {packages}."
    )


def render_summary(table: Mapping[str, Mapping[str, float]], context: Mapping[str, Any]) -> str:
    """The summary section: targets, then each benchmark's medians (min–max over the runs), plots, load.

    ``context``: measured_at, repeats, machine (benchmarks.machine.describe()), plots ({name: relative path}),
    runs ([{"benchmark", "repeat", "ok", "seconds", "load": OtherLoad.result()}]), notes ([str]).
    """
    plots: Mapping[str, str] = context.get("plots", {})
    repeats = context["repeats"]
    out = [
        MARK_START,
        f"## Summary: `make bench` (medians over {repeats} run{'s' if repeats != 1 else ''})",
        "",
        f"Measured {context['measured_at']} on {_machine_line(context['machine'])}",
        "",
        f"Every benchmark ran {repeats} time(s); each figure is the median over the runs, with the spread "
        "(min–max) in brackets when the runs differ. Expensive set-up is shared between repeats, every repeat "
        "re-measures: the batch benchmark's generated bronze table (`--reuse`) and the serving benchmark's lake "
        "are built once; the speed and memory benchmarks start a fresh stack (broker, speed layer, API, ...) in a "
        "temporary folder each time. The sections after this one are the last run's details. "
        "Verdicts are on the medians. This section and the plots are written by `make bench`.",
        "",
        "### Targets",
        "",
        "| target | median (min–max) | unit | verdict |",
        "|---|---:|---|---|",
    ]
    for label, stats, unit, verdict in targets(table):
        digits = 0 if unit == "ev/s" else 2
        out.append(f"| {label} | {cell(stats, digits)} | {unit} | {verdict} |")

    rates = _rates(table)
    if rates:
        out += [
            "",
            "### Speed layer: event→served and alert latency (s)",
            "",
            "| offered ev/s | in Kafka ev/s | p50 | p95 | p99 | alert→API p95 |",
            "|---:|---:|---:|---:|---:|---:|",
        ]
        for rate in rates:
            row = [table.get(f"speed.{rate}.{m}") for m in ("kafka_rate", "p50", "p95", "p99", "alert_p95")]
            out.append(f"| {float(rate):,.0f} | {cell(row[0], 0)} | " + " | ".join(cell(s) for s in row[1:]) + " |")
        if "speed.drain.wall_eps" in table:
            out += [
                "",
                f"Backlog drain: {cell(table['speed.drain.wall_eps'], 0)} events/s wall incl. start-up, "
                f"{cell(table.get('speed.drain.batches_eps'), 0)} events/s over the micro-batches.",
            ]
        if "speed_latency" in plots:
            out += ["", f"![event→served latency per rate]({plots['speed_latency']})"]

    batch_keys = [key for key in table if key.startswith("batch.")]
    if batch_keys:
        out += ["", "### Batch layer (s)", "", "| measurement | median (min–max) |", "|---|---:|"]
        labels = {
            "batch.spark_s": "Spark recompute (timed part)",
            "batch.duckdb_s": "DuckDB, same views (timed part)",
            "batch.ratio": "ratio Spark / DuckDB (x)",
            "batch.nightly_s": "nightly run of one small day, wall",
            **{f"batch.nightly.{step}": f"  nightly step {step}" for step in BATCH_STEPS},
            "batch.growth_ratio": "growth: longest / shortest history (x)",
        }
        for key, label in labels.items():
            if key in table:
                out.append(f"| {label} | {cell(table[key])} |")
        growth = sorted((int(key.rsplit(".", 1)[1]), key) for key in batch_keys if key.startswith("batch.growth."))
        for days, key in growth:
            if key != "batch.growth_ratio":
                out.append(f"| nightly wall over {days} day(s) of history | {cell(table[key])} |")
        if "batch_growth" in plots:
            out += ["", f"![nightly wall time vs history]({plots['batch_growth']})"]

    serve = sorted({key[len("serve.") : key.rfind(".")] for key in table if key.startswith("serve.")})
    if serve:
        out += ["", "### Serving layer (ms)", "", "| query | p50 | p95 |", "|---|---:|---:|"]
        for label in serve:
            out.append(
                f"| {label} | {cell(table.get(f'serve.{label}.p50'))} | {cell(table.get(f'serve.{label}.p95'))} |"
            )

    components = sorted(
        {key[len("memory.") : key.rfind(".")] for key in table if key.startswith("memory.")},
        key=lambda name: (name == "total", name),
    )
    if components:
        out += [
            "",
            "### Memory of the running stack under load (PSS, MiB)",
            "",
            "| component | median of samples | max of samples |",
            "|---|---:|---:|",
        ]
        for name in components:
            label = f"**{name}**" if name == "total" else name
            median, peak = table.get(f"memory.{name}.median"), table.get(f"memory.{name}.max")
            out.append(f"| {label} | {cell(median, 0)} | {cell(peak, 0)} |")
        if "memory" in plots:
            out += ["", f"![PSS per component]({plots['memory']})"]

    runs = context.get("runs", [])
    if runs:
        out += [
            "",
            "### What else ran",
            "",
            "Load average before → after each run, and the cores busy on average during it: the machine, this "
            "benchmark (its whole process tree) and every other process, with the busiest other commands.",
            "",
            "| benchmark | run | ok | seconds | load before → after | machine cores | ours | others | busiest others |",
            "|---|---:|---|---:|---|---:|---:|---:|---|",
        ]
        for run in runs:
            load = run.get("load", {})
            top = ", ".join(f"{name} {cores:.2f}" for name, cores in load.get("top_others", [])[:3])
            out.append(
                f"| {run['benchmark']} | {run['repeat']} | {'yes' if run['ok'] else '**no**'} | "
                f"{run['seconds']:.0f} | {load.get('load_before', '?')} → {load.get('load_after', '?')} | "
                f"{load.get('machine_cores', math.nan):.2f} | {load.get('ours_cores', math.nan):.2f} | "
                f"{load.get('others_cores', math.nan):.2f} | {top or '–'} |"
            )
    notes = context.get("notes", [])
    if notes:
        out += ["", *[f"- {note}" for note in notes]]
    out.append(MARK_END)
    return "\n".join(out) + "\n"
