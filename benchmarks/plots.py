"""PNG plots of `make bench`'s medians (matplotlib, Agg backend: no display needed).

Example::

    written = write_plots(aggregate(runs), Path("docs/bench"))    # {"speed_latency": Path(...), ...}
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402 - the backend must be chosen first

from benchmarks.batch import FLAT_GROWTH, TARGET_NIGHTLY_S  # noqa: E402
from benchmarks.speed import TARGET_P95_1K_S, TARGET_P95_10K_S  # noqa: E402

__all__ = ["write_plots"]

Table = Mapping[str, Mapping[str, float]]


def _finite(stats: Mapping[str, float] | None) -> bool:
    return bool(stats) and stats.get("n", 0) > 0 and math.isfinite(stats["median"])  # type: ignore[union-attr]


def _errors(points: list[Mapping[str, float]]) -> list[list[float]]:
    """Asymmetric error bars from the median to min and max (0 where one of them is not finite)."""
    low = [p["median"] - p["min"] if math.isfinite(p["min"]) else 0.0 for p in points]
    high = [p["max"] - p["median"] if math.isfinite(p["max"]) else 0.0 for p in points]
    return [low, high]


def speed_latency(table: Table, path: Path) -> bool:
    rates = sorted(
        {key.split(".")[1] for key in table if key.startswith("speed.") and key.endswith(".p95")} - {"drain"},
        key=float,
    )
    if not rates:
        return False
    figure, axes = plt.subplots(figsize=(7, 4.2))
    for percentile, marker in (("p50", "o"), ("p95", "s"), ("p99", "^")):
        points = [(float(r), table.get(f"speed.{r}.{percentile}")) for r in rates]
        shown = [(x, s) for x, s in points if _finite(s)]
        if shown:
            axes.errorbar(
                [x for x, _ in shown],
                [s["median"] for _, s in shown],
                yerr=_errors([s for _, s in shown]),
                marker=marker,
                capsize=4,
                label=f"{percentile} (median, min–max)",
            )
        never = [x for x, s in points if s and s.get("n") and math.isinf(s["median"])]
        for x in never:
            axes.annotate(f"{percentile} never", (x, 1.0), textcoords="offset points", xytext=(0, 5), fontsize=8)
    axes.axhline(TARGET_P95_1K_S, color="green", linestyle="--", linewidth=1, label="target p95 at 1,000/s")
    axes.axhline(TARGET_P95_10K_S, color="red", linestyle=":", linewidth=1, label="target p95 at 10,000/s")
    axes.set_xscale("log")
    axes.set_yscale("log")
    axes.set_xlabel("offered events/s")
    axes.set_ylabel("event→served latency, s")
    axes.set_title("Speed layer: event→served latency per rate")
    axes.legend(fontsize=8)
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)
    return True


def batch_growth(table: Table, path: Path) -> bool:
    points = sorted(
        (int(key.rsplit(".", 1)[1]), table[key])
        for key in table
        if key.startswith("batch.growth.") and key != "batch.growth_ratio"
    )
    points = [(days, stats) for days, stats in points if _finite(stats)]
    if not points:
        return False
    figure, axes = plt.subplots(figsize=(7, 4.2))
    axes.errorbar(
        [d for d, _ in points],
        [s["median"] for _, s in points],
        yerr=_errors([s for _, s in points]),
        marker="o",
        capsize=4,
        label="nightly run, wall (median, min–max)",
    )
    base = points[0][1]["median"]
    axes.axhline(
        base * FLAT_GROWTH, color="orange", linestyle="--", linewidth=1, label=f"flat: {FLAT_GROWTH}x shortest"
    )
    axes.axhline(TARGET_NIGHTLY_S, color="red", linestyle=":", linewidth=1, label=f"target {TARGET_NIGHTLY_S:g} s")
    axes.set_ylim(bottom=0)
    axes.set_xlabel("days of history in the lake")
    axes.set_ylabel("wall time, s")
    axes.set_title("Batch layer: one-day nightly run vs history")
    axes.legend(fontsize=8)
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)
    return True


def memory(table: Table, path: Path) -> bool:
    names = sorted(
        {key[len("memory.") : key.rfind(".")] for key in table if key.startswith("memory.")} - {"total"},
    )
    names = [name for name in names if _finite(table.get(f"memory.{name}.median"))]
    if not names:
        return False
    medians = [table[f"memory.{name}.median"]["median"] for name in names]
    peaks = [table.get(f"memory.{name}.max", {}).get("max", math.nan) for name in names]
    figure, axes = plt.subplots(figsize=(7, 4.2))
    positions = range(len(names))
    axes.barh([p + 0.2 for p in positions], medians, height=0.4, label="median PSS")
    axes.barh([p - 0.2 for p in positions], peaks, height=0.4, label="max PSS")
    axes.set_yticks(list(positions), names)
    axes.set_xlabel("MiB (PSS)")
    total = table.get("memory.total.median")
    title = "Memory of the running stack under load"
    if _finite(total):
        title += f" (total median {total['median']:,.0f} MiB)"  # type: ignore[index]
    axes.set_title(title, fontsize=10)
    axes.legend(fontsize=8)
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)
    return True


def write_plots(table: Table, folder: Path) -> dict[str, Path]:
    """Write every plot that has data into ``folder``; returns {name: path} of those written."""
    folder.mkdir(parents=True, exist_ok=True)
    written = {}
    for name, draw in (("speed_latency", speed_latency), ("batch_growth", batch_growth), ("memory", memory)):
        path = folder / f"{name}.png"
        if draw(table, path):
            written[name] = path
    return written
