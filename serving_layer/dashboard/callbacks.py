"""The dashboard's callbacks: fetch through data.py on every tick of the interval, build figures with figures.py.

Three callbacks share one dcc.Interval: sales (revenue, trend, KPIs, top products), stock (inventory, alerts),
health (health panel, reconciliation, and the interval itself, widened past the slowest callback). Each one is a
plain function of the ServingLayer (``sales_outputs`` ...) wrapped by a registered callback, so benchmarks time
exactly what a refresh does.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from typing import Any

from dash import Dash, Input, Output, html

from serving_layer.dashboard import data, figures, ids
from serving_layer.dashboard.layout import DEFAULT_WINDOW, WINDOW_CHOICES
from serving_layer.dashboard.pacing import CallbackTimings
from serving_layer.errors import ServingError
from serving_layer.service import ServingLayer

__all__ = ["checked_window", "health_outputs", "register_callbacks", "sales_outputs", "stock_outputs"]

log = logging.getLogger("serving_layer.dashboard")


def _stamp(moment: datetime | None) -> str:
    return "none yet" if moment is None else moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC")


def checked_window(window: object) -> int:
    """The window a browser asked for if it is one of the page's choices, else the default: the value comes from
    the client, so a hand-made request (``window=10**9``, ``"x"``) must neither fail nor widen the query."""
    if isinstance(window, int) and not isinstance(window, bool) and window in WINDOW_CHOICES:
        return window
    return DEFAULT_WINDOW


def sales_outputs(serving: ServingLayer, window: object, currency: str) -> tuple[Any, ...]:
    """Revenue and trend figures, top products, the KPIs and the W badge for the last ``window`` minutes (one of
    WINDOW_CHOICES; anything else gets the default)."""
    window_data = data.sales_window(serving, serving.now(), checked_window(window))
    trend_now = window_data.trend["revenue"].iloc[-1] if not window_data.trend.empty else None
    return (
        figures.revenue_figure(
            window_data.minutes, window_data.high_water_mark, window_data.start, window_data.end, currency
        ),
        figures.trend_figure(window_data.trend, window_data.high_water_mark, currency, data.TREND_MINUTES),
        figures.top_products_figure(window_data.top_products, currency),
        # the exact sum as a plain decimal string: the browser test compares it to the cent
        str(window_data.revenue),
        f"{window_data.orders:,}",
        f"{window_data.units:,}",
        figures.money(trend_now),
        f"W: {_stamp(window_data.high_water_mark)}",
    )


def stock_outputs(serving: ServingLayer) -> tuple[Any, ...]:
    """Inventory rows (low stock first), the low-stock count and the alert list."""
    inventory = data.inventory(serving)
    alerts = data.alerts(serving)
    open_alerts = alerts[alerts["open"]] if not alerts.empty else alerts
    items = [
        html.Li(
            [html.Strong(f"{a.product_id} "), f"{a.kind.replace('_', ' ')}: stock {a.stock_at_open} "
             f"under {a.threshold} since {_stamp(a.opened_at.to_pydatetime())}"],
            className="alert-open",
        )
        for a in open_alerts.itertuples(index=False)
    ]  # fmt: skip
    resolved = len(alerts) - len(open_alerts)
    summary = html.Div(
        f"{len(open_alerts)} open alert(s), {resolved} resolved in the last 24 h",
        className="alert-summary bad" if len(open_alerts) else "alert-summary ok",
    )
    low = int(inventory["below_threshold"].sum()) if not inventory.empty else 0
    return figures.inventory_rows(inventory), str(low), [summary, html.Ul(items)]


def health_outputs(serving: ServingLayer, currency: str) -> tuple[Any, ...]:
    """The health rows, the freshness KPI (text and level), the reconciliation figure and its summary."""
    try:
        health = data.health(serving)
        report = data.reconciliation(serving, health["high_water_mark"])
    except ServingError as error:  # show the reason on the page instead of a dead panel
        log.error("health refresh failed: %s", error)
        health, report = {"last_batch_run": None}, None
    rows = [
        html.Div([html.Span(label, className="label"), html.Span(value, className="value")],
                 className=f"health-row {level}")
        for label, value, level in figures.health_items(health)
    ]  # fmt: skip
    fresh = health.get("freshness_seconds")
    summary = figures.reconciliation_summary(report, currency) if report is not None else "views unreadable"
    return (
        rows,
        "no data" if fresh is None else f"{fresh:,.0f} s",
        f"kpi-value {figures.freshness_level(fresh)}",
        figures.reconciliation_figure(report),
        summary,
    )


def register_callbacks(app: Dash, serving: ServingLayer, currency: str, timings: CallbackTimings) -> None:
    """Attach every callback of the page to ``app``."""

    @app.callback(
        Output(ids.REVENUE_GRAPH, "figure"),
        Output(ids.TREND_GRAPH, "figure"),
        Output(ids.TOP_PRODUCTS_GRAPH, "figure"),
        Output(ids.REVENUE_TOTAL, "children"),
        Output(ids.ORDERS_TOTAL, "children"),
        Output(ids.UNITS_TOTAL, "children"),
        Output(ids.TREND_NOW, "children"),
        Output(ids.HIGH_WATER_MARK, "children"),
        Input(ids.INTERVAL, "n_intervals"),
        Input(ids.WINDOW, "value"),
    )
    def refresh_sales(_ticks: int, window: object) -> tuple[Any, ...]:
        with timings.measure("sales"):
            return sales_outputs(serving, window, currency)

    @app.callback(
        Output(ids.INVENTORY_TABLE, "data"),
        Output(ids.LOW_STOCK_COUNT, "children"),
        Output(ids.ALERTS_LIST, "children"),
        Input(ids.INTERVAL, "n_intervals"),
    )
    def refresh_stock(_ticks: int) -> tuple[Any, ...]:
        with timings.measure("stock"):
            return stock_outputs(serving)

    @app.callback(
        Output(ids.HEALTH_PANEL, "children"),
        Output(ids.FRESHNESS, "children"),
        Output(ids.FRESHNESS, "className"),
        Output(ids.RECONCILIATION_GRAPH, "figure"),
        Output(ids.RECONCILIATION_SUMMARY, "children"),
        Output(ids.INTERVAL, "interval"),
        Output(ids.LAST_REFRESH, "children"),
        Input(ids.INTERVAL, "n_intervals"),
    )
    def refresh_health(_ticks: int) -> tuple[Any, ...]:
        with timings.measure("health"):
            outputs = health_outputs(serving, currency)
        interval = timings.interval_ms()
        refreshed = (
            f"refreshed {serving.now():%H:%M:%S} UTC · every {interval / 1000:.1f} s "
            f"(slowest callback {timings.slowest() * 1000:.0f} ms)"
        )
        return (*outputs, interval, refreshed)
