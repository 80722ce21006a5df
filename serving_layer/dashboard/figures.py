"""Figures and display values built by pure functions from DataFrames (tested without a browser).

Colours: batch (final, validated) rows are dark blue, speed (provisional) rows orange, everywhere.
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Any

import pandas as pd
import plotly.graph_objects as go

from contracts.tables import RUN_SUCCEEDED

__all__ = [
    "BATCH_COLOUR",
    "SPEED_COLOUR",
    "freshness_level",
    "health_items",
    "inventory_rows",
    "money",
    "reconciliation_figure",
    "reconciliation_summary",
    "revenue_figure",
    "top_products_figure",
    "trend_figure",
]

BATCH_COLOUR = "#1f3b73"
SPEED_COLOUR = "#f28e2b"
_LAYOUT: dict[str, Any] = {
    "margin": {"l": 52, "r": 52, "t": 44, "b": 36},
    "plot_bgcolor": "white",
    "paper_bgcolor": "white",
    "legend": {"orientation": "h", "y": 1.02, "yanchor": "bottom", "x": 1, "xanchor": "right", "traceorder": "normal"},
    "font": {"size": 12},
    "title": {"x": 0, "xanchor": "left", "font": {"size": 13}},
    "height": 300,
}


def money(amount: Decimal | None) -> str:
    """A decimal amount with thousands separators and exactly two places: 1234.5 -> '1,234.50'."""
    if amount is None:
        return "–"
    return f"{Decimal(amount).quantize(Decimal('0.01')):,}"


def _empty(title: str, message: str) -> go.Figure:
    figure = go.Figure(layout={**_LAYOUT, "title": {**_LAYOUT["title"], "text": title}})
    figure.add_annotation(text=message, showarrow=False, x=0.5, y=0.5, xref="paper", yref="paper")
    figure.update_xaxes(visible=False)
    figure.update_yaxes(visible=False)
    return figure


def _w_marker(figure: go.Figure, high_water_mark: datetime | None, start: datetime, end: datetime) -> None:
    if high_water_mark is None or not (start <= high_water_mark <= end):
        return
    figure.add_shape(
        type="line", x0=high_water_mark, x1=high_water_mark, y0=0, y1=1, yref="paper", line={"dash": "dot"}
    )
    figure.add_annotation(
        x=high_water_mark, y=1, yref="paper", text="W: batch | speed", showarrow=False, yanchor="bottom"
    )


def revenue_figure(
    minutes: pd.DataFrame, high_water_mark: datetime | None, start: datetime, end: datetime, currency: str
) -> go.Figure:
    """Revenue per minute as bars, one trace per source: batch (final) and speed (provisional).

    Args:
        minutes: bucket_start, revenue (Decimal), orders, source; one row per minute with sales.
    """
    title = f"Revenue per minute ({currency})"
    if minutes.empty:
        figure = _empty(title, "no sales in this window yet")
        figure.update_xaxes(visible=True, range=[start, end])
        return figure
    figure = go.Figure(layout={**_LAYOUT, "title": {**_LAYOUT["title"], "text": title}, "barmode": "stack"})
    traces = (("batch", "batch (final)", BATCH_COLOUR), ("speed", "speed (provisional)", SPEED_COLOUR))
    for source, name, colour in traces:
        rows = minutes[minutes["source"] == source]
        figure.add_bar(
            x=rows["bucket_start"],
            y=[float(v) for v in rows["revenue"]],
            name=name,
            marker_color=colour,
            customdata=[[str(v), int(o)] for v, o in zip(rows["revenue"], rows["orders"], strict=True)],
            hovertemplate="%{x|%H:%M} UTC<br>%{customdata[0]} " + currency + "<br>%{customdata[1]} orders",
        )
    figure.update_xaxes(range=[start, end], showgrid=False)
    figure.update_yaxes(rangemode="tozero", gridcolor="#eee")
    _w_marker(figure, high_water_mark, start, end)
    return figure


def trend_figure(trend: pd.DataFrame, high_water_mark: datetime | None, currency: str, window: int = 5) -> go.Figure:
    """The rolling ``window``-minute revenue, one point per minute (batch and speed minutes alike)."""
    title = f"{window}-minute revenue trend (rolling sum over minute buckets)"
    if trend.empty:
        return _empty(title, "no data")
    figure = go.Figure(layout={**_LAYOUT, "title": {**_LAYOUT["title"], "text": title}})
    figure.add_scatter(
        x=trend["bucket_start"],
        y=[float(v) for v in trend["revenue"]],
        name=f"revenue, last {window} min ({currency})",
        mode="lines",
        line={"color": BATCH_COLOUR, "width": 2, "shape": "hv"},
        fill="tozeroy",
        fillcolor="rgba(31, 59, 115, 0.12)",
    )
    figure.update_layout(yaxis={"rangemode": "tozero", "gridcolor": "#eee", "title": {"text": currency}})
    start, end = trend["bucket_start"].iloc[0], trend["bucket_start"].iloc[-1]
    _w_marker(figure, high_water_mark, start, end)
    return figure


def top_products_figure(products: pd.DataFrame, currency: str) -> go.Figure:
    """Products by revenue in the window, best at the top."""
    title = "Top products by revenue"
    if products.empty:
        return _empty(title, "no sales in this window yet")
    ordered = products.iloc[::-1]
    figure = go.Figure(layout={**_LAYOUT, "title": {**_LAYOUT["title"], "text": title}, "showlegend": False})
    figure.add_bar(
        x=[float(v) for v in ordered["revenue"]],
        y=ordered["key"],
        orientation="h",
        marker_color=BATCH_COLOUR,
        text=[f"{money(v)} · {int(u)} units" for v, u in zip(ordered["revenue"], ordered["units"], strict=True)],
        textposition="auto",
        hovertemplate="%{y}: %{text}<extra></extra>",
    )
    figure.update_xaxes(title_text=currency, gridcolor="#eee")
    return figure


def reconciliation_figure(report: pd.DataFrame | None) -> go.Figure:
    """Per bucket, how far the provisional speed figures were from the final batch figures (percent)."""
    title = "speed − batch, % per bucket"
    if report is None or report.empty:
        return _empty(title, "nothing to compare yet: no bucket before W that both layers hold")
    figure = go.Figure(layout={**_LAYOUT, "title": {**_LAYOUT["title"], "text": title}, "barmode": "group"})
    figure.add_bar(
        x=report["bucket_start"],
        y=report["revenue_diff_pct"],
        name="revenue",
        marker_color=SPEED_COLOUR,
        customdata=[[str(d)] for d in report["revenue_diff"]],
        hovertemplate="%{x|%d %b %H:%M}<br>%{y:.2f}% (%{customdata[0]})",
    )
    figure.add_bar(x=report["bucket_start"], y=report["users_diff_pct"], name="distinct users", marker_color="#76b7b2")
    figure.update_yaxes(ticksuffix="%", zeroline=True, zerolinecolor="#999", gridcolor="#eee")
    return figure


def reconciliation_summary(report: pd.DataFrame, currency: str) -> str:
    """One sentence: buckets compared, speed and batch revenue totals and their difference."""
    if report.empty:
        return "No bucket before W is held by both layers yet."
    batch = sum(report["batch_revenue"], Decimal("0.00"))
    speed = sum(report["speed_revenue"], Decimal("0.00"))
    diff = speed - batch
    pct = f" ({diff / batch * 100:+.2f} %)" if batch else ""
    worst = report["revenue_diff_pct"].abs().max()
    worst_text = f"; largest bucket gap {worst:.2f} %" if pd.notna(worst) else ""
    return (
        f"{len(report)} buckets compared: speed said {money(speed)} {currency}, batch settled at "
        f"{money(batch)} {currency}, a difference of {money(diff)} {currency}{pct}{worst_text}."
    )


def freshness_level(seconds: float | None) -> str:
    """'ok' under a minute, 'warn' under five, 'bad' beyond (or with no data)."""
    if seconds is None:
        return "bad"
    return "ok" if seconds < 60 else "warn" if seconds < 300 else "bad"


def _ago(seconds: float | None) -> str:
    if seconds is None:
        return "no data"
    if seconds < 120:
        return f"{seconds:.0f} s ago"
    if seconds < 7200:
        return f"{seconds / 60:.0f} min ago"
    return f"{seconds / 3600:.1f} h ago"


def _when(moment: datetime | None) -> str:
    return "–" if moment is None else moment.strftime("%Y-%m-%d %H:%M:%S UTC")


def health_items(health: dict[str, Any]) -> list[tuple[str, str, str]]:
    """(label, value, level) rows of the health panel; level is 'ok', 'warn' or 'bad'."""
    fresh = health.get("freshness_seconds")
    behind = health.get("offsets_behind")
    run = health.get("last_batch_run") or {}
    status = str(run.get("status") or "none")
    run_level = "ok" if status.lower() == RUN_SUCCEEDED else "warn" if not run else "bad"
    speed = health.get("speed_layer") or {}
    speed_state = str(speed.get("state") or "unknown")
    speed_text = speed_state.upper() if speed_state != "running" else "running"
    if speed.get("last_error") and (speed_state != "running" or speed.get("errors_last_hour")):
        speed_text += f" (last error {_when(speed.get('last_error_at'))}: {str(speed['last_error'])[:160]})"
    speed_level = {"running": "ok", "unknown": "warn"}.get(speed_state, "bad")
    if speed_state == "running" and speed.get("errors_last_hour"):
        speed_level = "warn"
    return [
        ("Speed layer", speed_text, speed_level),
        ("Newest event", f"{_when(health.get('newest_event_time'))} ({_ago(fresh)})", freshness_level(fresh)),
        (
            "Consumer lag",
            "unknown" if behind is None else f"{behind:,} offsets behind",
            "warn" if behind is None else "ok" if behind < 1000 else "warn" if behind < 100_000 else "bad",
        ),
        ("Speed watermark", _when(health.get("speed_watermark")), "ok"),
        ("Last speed commit", _when(health.get("speed_last_update")), "ok"),
        (
            "Last batch run",
            f"{run.get('run_id', '–')}: {status}" + (f" at {_when(run.get('finished_at'))}" if run else ""),
            run_level,
        ),
        ("High-water mark W", _when(health.get("high_water_mark")), "ok" if health.get("high_water_mark") else "warn"),
        ("Low mark L", _when(health.get("low_water_mark")), "ok"),
    ]


def inventory_rows(inventory: pd.DataFrame) -> list[dict[str, Any]]:
    """Rows for the inventory DataTable (strings and ints only)."""
    return [
        {
            "product_id": row.product_id,
            "stock": int(row.stock),
            "threshold": int(row.threshold),
            "status": "LOW" if row.below_threshold else "ok",
            "last_event_time": "–" if pd.isna(row.last_event_time) else f"{row.last_event_time:%H:%M:%S}",
        }
        for row in inventory.itertuples(index=False)
    ]
