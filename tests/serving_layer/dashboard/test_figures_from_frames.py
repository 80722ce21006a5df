"""Figures and panel values are pure functions of DataFrames: checked here without a browser."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pandas as pd
import pytest

from serving_layer.dashboard import figures

T0 = datetime(2026, 1, 5, 10, tzinfo=UTC)


def minutes_frame() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "bucket_start": [T0, T0 + timedelta(minutes=1), T0 + timedelta(minutes=2)],
            "revenue": [Decimal("1.10"), Decimal("2.20"), Decimal("3.30")],
            "orders": [1, 2, 3],
            "source": ["batch", "batch", "speed"],
        }
    )


def test_revenue_figure_has_one_trace_per_source_in_distinct_colours() -> None:
    figure = figures.revenue_figure(minutes_frame(), T0 + timedelta(minutes=2), T0, T0 + timedelta(hours=1), "EUR")
    assert [(t.name, t.marker.color, list(t.y)) for t in figure.data] == [
        ("batch (final)", figures.BATCH_COLOUR, [1.1, 2.2]),
        ("speed (provisional)", figures.SPEED_COLOUR, [3.3]),
    ]
    assert figure.data[1].customdata[0][0] == "3.30"  # hover shows the exact decimal
    assert any(a.text == "W: batch | speed" for a in figure.layout.annotations)


def test_empty_frames_give_a_message_not_an_error() -> None:
    empty = pd.DataFrame(columns=["bucket_start", "revenue", "orders", "source"])
    assert "no sales" in figures.revenue_figure(empty, None, T0, T0, "EUR").layout.annotations[0].text
    assert figures.reconciliation_figure(None).layout.annotations[0].text.startswith("nothing to compare")
    assert figures.reconciliation_summary(pd.DataFrame(), "EUR").startswith("No bucket")


def test_reconciliation_summary_is_exact() -> None:
    report = pd.DataFrame(
        {
            "batch_revenue": [Decimal("100.00"), Decimal("50.00")],
            "speed_revenue": [Decimal("90.00"), Decimal("50.00")],
            "revenue_diff_pct": [-10.0, 0.0],
        }
    )
    text = figures.reconciliation_summary(report, "EUR")
    assert "2 buckets compared" in text and "140.00 EUR" in text and "150.00 EUR" in text
    assert "-10.00 EUR (-6.67 %)" in text and "largest bucket gap 10.00 %" in text


@pytest.mark.parametrize(("seconds", "level"), [(None, "bad"), (5, "ok"), (59.9, "ok"), (60, "warn"), (300, "bad")])
def test_freshness_levels(seconds: float | None, level: str) -> None:
    assert figures.freshness_level(seconds) == level


def test_health_items_flag_a_failed_batch_run_and_missing_w() -> None:
    items = figures.health_items(
        {
            "newest_event_time": T0,
            "freshness_seconds": 12.0,
            "offsets_behind": 0,
            "last_batch_run": {"run_id": "r1", "status": "failed", "finished_at": T0},
            "high_water_mark": None,
        }
    )
    levels = {label: level for label, _, level in items}
    assert levels["Newest event"] == "ok" and levels["Consumer lag"] == "ok"
    assert levels["Last batch run"] == "bad" and levels["High-water mark W"] == "warn"
    assert {label: text for label, text, _ in items}["Low mark L"] == "–"  # unknown


def test_money_and_inventory_rows() -> None:
    assert figures.money(Decimal("1234.5")) == "1,234.50"
    assert figures.money(None) == "–"
    frame = pd.DataFrame(
        {"product_id": ["p-1"], "stock": [3], "threshold": [10], "below_threshold": [True],
         "last_event_time": [pd.Timestamp(T0)]}
    )  # fmt: skip
    assert figures.inventory_rows(frame) == [
        {"product_id": "p-1", "stock": 3, "threshold": 10, "status": "LOW", "last_event_time": "10:00:00"}
    ]


@pytest.mark.parametrize(
    ("state", "errors", "level"),
    [("running", 0, "ok"), ("running", 2, "warn"), ("stopped", 0, "bad"), ("failed", 1, "bad"), ("unknown", 0, "warn")],
)
def test_health_items_show_the_speed_layer_state(state: str, errors: int, level: str) -> None:
    speed = {
        "state": state,
        "last_error": "rollups: boom" if errors else None,
        "last_error_at": T0,
        "errors_last_hour": errors,
    }
    items = {label: (text, lvl) for label, text, lvl in figures.health_items({"speed_layer": speed})}
    text, got = items["Speed layer"]
    assert got == level
    assert (state.upper() in text) if state != "running" else text.startswith("running")
    assert ("boom" in text) == bool(errors)


@pytest.mark.parametrize("hostile", [10**9, -1, 0, 61, "180", "x", None, True, 180.5, [180], {"a": 1}])
def test_a_window_from_the_client_is_one_of_the_page_choices(hostile: object) -> None:
    from serving_layer.dashboard.callbacks import checked_window
    from serving_layer.dashboard.layout import DEFAULT_WINDOW, WINDOW_CHOICES

    assert checked_window(hostile) == DEFAULT_WINDOW
    assert all(checked_window(choice) == choice for choice in WINDOW_CHOICES)
