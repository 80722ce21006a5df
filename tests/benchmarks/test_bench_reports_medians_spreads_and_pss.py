"""The pure parts of `make bench`: medians and spreads over repeats, headline numbers out of each benchmark's
JSON, the summary markdown, where the sections go in BENCHMARKS.md, and PSS out of /proc/<pid>/smaps_rollup."""

from __future__ import annotations

import math
import os

import pytest

from benchmarks.all import place_sections
from benchmarks.batch import growth_ratio
from benchmarks.memory import group_pss_kib, parse_pss_kib, summarise_samples
from benchmarks.summary import MARK_END, MARK_START, aggregate, batch_metrics, render_summary, speed_metrics, spread

SMAPS_ROLLUP = """\
55d4c7a1e000-7ffd6b1f3000 ---p 00000000 00:00 0                          [rollup]
Rss:              812344 kB
Pss:              401236 kB
Pss_Dirty:        350120 kB
Pss_Anon:         349800 kB
Pss_File:          51116 kB
Pss_Shmem:           320 kB
Shared_Clean:      98112 kB
Private_Dirty:    350000 kB
Swap:                  0 kB
SwapPss:               0 kB
"""


@pytest.mark.parametrize(
    ("values", "expected"),
    [
        ([3.0, 1.0, 2.0], {"median": 2.0, "min": 1.0, "max": 3.0, "n": 3}),
        ([4.0, 1.0], {"median": 2.5, "min": 1.0, "max": 4.0, "n": 2}),
        ([5.0, math.nan, 1.0, 3.0], {"median": 3.0, "min": 1.0, "max": 5.0, "n": 3}),  # nan = not measured
        ([1.0, math.inf, math.inf], {"median": math.inf, "min": 1.0, "max": math.inf, "n": 3}),  # inf = never
    ],
)
def test_spread_is_median_min_and_max_of_what_was_measured(values: list[float], expected: dict) -> None:
    assert spread(values) == expected


def test_spread_of_nothing_measured_is_nan_with_n_zero() -> None:
    result = spread([math.nan])
    assert result["n"] == 0 and math.isnan(result["median"])


def test_aggregate_takes_each_metric_over_the_runs_that_measured_it() -> None:
    table = aggregate([{"a": 1.0, "b": 10.0}, {"a": 3.0}, {"a": 2.0, "b": 30.0}])
    assert table["a"] == {"median": 2.0, "min": 1.0, "max": 3.0, "n": 3}
    assert table["b"] == {"median": 20.0, "min": 10.0, "max": 30.0, "n": 2}


def _speed_json(p95: float) -> dict:
    stats = {"n": 10, "never": 0, "p50": p95 / 2, "p95": p95, "p99": p95 * 1.5, "max": p95 * 2}
    return {
        "windows": [{"rate": 1000.0, "kafka_rate": 998.0, "latency": stats, "alerts_api": stats}],
        "drain": {"events_per_s_wall": 400.0, "events_per_s_batches": 700.0},
    }


def _batch_json(spark_s: float, nightly_s: float, grown_s: float) -> dict:
    def point(days: int, wall: float) -> dict:
        steps = {"recompute": {"seconds": wall / 3}, "publish": {"seconds": 1.0}}
        return {"lake": {"history_days": days}, "night": {"wall_s": wall, "steps": steps}}

    growth = [point(1, nightly_s), point(30, grown_s)]
    return {
        "spark": {"recompute_s": spark_s},
        "duckdb": {"compute_s": 10.0},
        "ratio": spark_s / 10.0,
        "nightly": growth[0],
        "growth": growth,
        "growth_ratio": growth_ratio(growth),
    }


def test_headline_numbers_come_out_of_the_benchmarks_json() -> None:
    speed = speed_metrics(_speed_json(0.8))
    assert speed["speed.1000.p95"] == 0.8 and speed["speed.1000.p99"] == pytest.approx(1.2)
    assert speed["speed.1000.alert_p95"] == 0.8 and speed["speed.drain.wall_eps"] == 400.0
    batch = batch_metrics(_batch_json(25.0, 40.0, 48.0))
    assert batch["batch.ratio"] == 2.5 and batch["batch.nightly_s"] == 40.0
    assert batch["batch.growth.30"] == 48.0 and batch["batch.growth_ratio"] == pytest.approx(1.2)
    assert batch["batch.nightly.recompute"] == pytest.approx(40.0 / 3)


def test_growth_ratio_is_longest_over_shortest_history() -> None:
    points = [{"lake": {"history_days": d}, "night": {"wall_s": w}} for d, w in ((30, 50.0), (1, 40.0), (10, 45.0))]
    assert growth_ratio(points) == pytest.approx(1.25)
    assert math.isnan(growth_ratio(points[:1]))


def _context() -> dict:
    machine = {
        "cpu": "Test CPU",
        "cores": 2,
        "memory_gib": 8.0,
        "os": "Debian",
        "kernel": "6.1",
        "java": "openjdk 17",
        "python": "3.11.7",
        "packages": {"pyspark": "4.2.0"},
    }
    load = {
        "load_before": "1.00 1.00 1.00",
        "load_after": "2.00 1.50 1.00",
        "machine_cores": 1.5,
        "ours_cores": 1.0,
        "others_cores": 0.5,
        "top_others": [("java", 0.4)],
    }
    return {
        "measured_at": "2026-11-26 12:00 UTC",
        "repeats": 3,
        "machine": machine,
        "plots": {"batch_growth": "docs/bench/batch_growth.png"},
        "runs": [{"benchmark": "batch", "repeat": 1, "ok": True, "seconds": 100.0, "load": load}],
        "notes": [],
    }


def test_summary_shows_medians_with_spread_and_verdicts_on_the_medians() -> None:
    runs = [speed_metrics(_speed_json(p95)) for p95 in (0.8, 0.9, math.inf)]
    runs += [batch_metrics(_batch_json(s, n, g)) for s, n, g in ((25.0, 40.0, 48.0), (35.0, 70.0, 80.0))]
    text = render_summary(aggregate(runs), _context())
    assert text.startswith(MARK_START) and text.rstrip().endswith(MARK_END)
    assert "medians over 3 runs" in text
    # p95 runs: 0.8, 0.9, never -> median 0.9 meets the 1 s target; the spread shows the run that never served
    assert "| event→served p95 ≤ 1 s at 1,000 ev/s | 0.90 (0.80–never) | s | met |" in text
    # ratio runs 2.5 and 3.5 -> median 3.0: within 3x
    assert "| Spark recompute within 3x DuckDB | 3.00 (2.50–3.50) | x | met |" in text
    # nightly 40 and 70 -> median 55 < 60
    assert "nightly run of one small day < 60 s wall | 55.00 (40.00–70.00) | s | met |" in text
    # growth ratios 1.2 and 80/70 -> within 1.25
    assert "| flat growth" in text and "not measured" in text  # the serving target had no runs
    assert "**missed**" in text  # drain 400 ev/s < 50,000
    assert "![nightly wall time vs history](docs/bench/batch_growth.png)" in text
    assert "| batch | 1 | yes | 100 | 1.00 1.00 1.00 → 2.00 1.50 1.00 | 1.50 | 1.00 | 0.50 | java 0.40 |" in text


def test_summary_goes_under_the_title_and_sections_replace_their_namesakes() -> None:
    document = "# Benchmarks\n\n<!-- x:start -->\nold x\n<!-- x:end -->\n\n<!-- y:start -->\nkept y\n<!-- y:end -->\n"
    summary = f"{MARK_START}\nsummary 1\n{MARK_END}\n"
    new_x = "<!-- x:start -->\nnew x\n<!-- x:end -->\n"
    new_z = "<!-- z:start -->\nnew z\n<!-- z:end -->\n"
    text = place_sections(document, summary, [new_x, new_z])
    assert text.startswith(f"# Benchmarks\n\n{MARK_START}\nsummary 1\n{MARK_END}\n\n<!-- x:start -->\nnew x")
    assert "old x" not in text and "kept y" in text and text.rstrip().endswith("new z\n<!-- z:end -->")
    again = place_sections(text, f"{MARK_START}\nsummary 2\n{MARK_END}\n", [new_x])
    assert "summary 1" not in again and again.count(MARK_START) == 1 and again.count("<!-- x:start -->") == 1


def test_pss_is_read_from_smaps_rollup() -> None:
    assert parse_pss_kib(SMAPS_ROLLUP) == 401_236
    assert parse_pss_kib("") == 0  # a kernel thread has no mappings
    with pytest.raises(ValueError, match="Pss"):
        parse_pss_kib("Pss: lots kB\n")


def test_pss_is_summed_over_every_process_of_a_group() -> None:
    result = group_pss_kib({"tests": os.getpgid(0)}, read=lambda _pid: SMAPS_ROLLUP)
    # this process is in its own group, and every member counts with its own Pss
    assert result["tests"] >= 401_236 and result["tests"] % 401_236 == 0


def test_memory_samples_give_median_and_max_per_component_and_of_the_total() -> None:
    mib = 1024
    samples = [{"broker": 100 * mib, "api": 50 * mib}, {"broker": 300 * mib, "api": 70 * mib}, {"broker": 200 * mib}]
    result = summarise_samples(samples)
    assert result["broker"] == {"median_mib": 200.0, "max_mib": 300.0, "samples": 3}
    assert result["api"] == {"median_mib": 60.0, "max_mib": 70.0, "samples": 2}
    assert result["total"] == {"median_mib": 200.0, "max_mib": 370.0, "samples": 3}


def test_the_jvm_start_section_gives_medians_ranges_and_savings(tmp_path) -> None:  # type: ignore[no-untyped-def]
    from benchmarks import jvm_start
    from benchmarks.memory import write_section

    def runs(*cpu: float) -> list[dict]:
        return [{"ready_s": c / 2, "total_s": c, "cpu_s": c, "mapped": True} for c in cpu]

    spark = {True: runs(40, 44, 42), False: runs(60, 70, 65)}
    results = {"spark": spark, "kafka": {True: runs(5, 6, 7), False: runs(9)}}
    for run in results["kafka"][True] + results["kafka"][False]:
        del run["total_s"]
    section = jvm_start.render(results, {"cpu": "x", "cores": 2, "java": "17"}, "load 0.1")
    assert "| Spark driver | JVM CPU s | 42.0 (40.0-44.0) | 65.0 (60.0-70.0) | 23.0 |" in section
    assert "| Kafka broker | JVM CPU s | 6.0 (5.0-7.0) | 9.0 (9.0-9.0) | 3.0 |" in section
    assert "Kafka broker | s incl." not in section  # a broker has no Delta write
    report = tmp_path / "BENCHMARKS.md"
    report.write_text(f"# Benchmarks\n\nbefore\n{jvm_start.MARK_START}\nold\n{jvm_start.MARK_END}\nafter\n")
    write_section(report, section, jvm_start.MARK_START, jvm_start.MARK_END)
    text = report.read_text()
    assert "old" not in text and "before" in text and "after" in text and text.count(jvm_start.MARK_START) == 1
