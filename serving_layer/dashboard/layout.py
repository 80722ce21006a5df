"""The page: a function returning the component tree (no data is read here; callbacks fill every panel).

Reading order for an operations team: headline figures, live revenue, what sells and what runs out, then whether
the pipeline is healthy and how far provisional numbers were from final ones.
"""

from __future__ import annotations

from dash import dash_table, dcc, html

from serving_layer.dashboard import ids
from serving_layer.dashboard.figures import BATCH_COLOUR, SPEED_COLOUR

__all__ = ["DEFAULT_WINDOW", "WINDOW_CHOICES", "layout"]

WINDOW_CHOICES: dict[int, str] = {60: "last hour", 180: "last 3 hours", 720: "last 12 hours", 1440: "last 24 hours"}
DEFAULT_WINDOW = 180
_GRAPH_CONFIG = {"displayModeBar": False}
_GRAPH_STYLE = {"height": "300px"}


def _kpi(label: str, value_id: str, unit: str = "") -> html.Div:
    return html.Div(
        [
            html.Div(label, className="kpi-label"),
            html.Div([html.Span("…", id=value_id, className="kpi-value"), html.Span(unit, className="kpi-unit")]),
        ],
        className="kpi",
    )


def _panel(title: str, *children: object, extra: object = None) -> html.Section:
    header = [html.H2(title)] + ([extra] if extra is not None else [])
    return html.Section([html.Div(header, className="panel-head"), *children], className="panel")


def layout(currency: str, refresh_ms: int, default_window: int = DEFAULT_WINDOW) -> html.Div:
    """The whole page; ``refresh_ms`` is the starting refresh interval (callbacks may widen it)."""
    legend = html.Span(
        [
            html.Span("■ ", style={"color": BATCH_COLOUR}),
            "batch: final  ",
            html.Span("■ ", style={"color": SPEED_COLOUR}),
            "speed: provisional",
        ],
        className="legend",
    )
    return html.Div(
        [
            html.Header(
                [
                    html.H1("Shop operations · live sales"),
                    html.Div(
                        [
                            dcc.Dropdown(
                                id=ids.WINDOW,
                                options=[{"label": text, "value": minutes} for minutes, text in WINDOW_CHOICES.items()],
                                value=default_window,
                                clearable=False,
                                searchable=False,
                                className="window",
                            ),
                            html.Span("W: …", id=ids.HIGH_WATER_MARK, className="badge"),
                            html.Span("loading…", id=ids.LAST_REFRESH, className="muted"),
                        ],
                        className="header-tools",
                    ),
                ],
                className="top",
            ),
            html.Div(
                [
                    _kpi("Revenue in window", ids.REVENUE_TOTAL, f" {currency}"),
                    _kpi("Orders", ids.ORDERS_TOTAL),
                    _kpi("Units sold", ids.UNITS_TOTAL),
                    _kpi("Revenue, last 5 minutes", ids.TREND_NOW, f" {currency}"),
                    _kpi("Data freshness", ids.FRESHNESS),
                ],
                className="kpis",
            ),
            html.Div(
                [
                    _panel(
                        "Live revenue",
                        dcc.Graph(id=ids.REVENUE_GRAPH, config=_GRAPH_CONFIG, style=_GRAPH_STYLE),
                        dcc.Graph(id=ids.TREND_GRAPH, config=_GRAPH_CONFIG, style=_GRAPH_STYLE),
                        extra=legend,
                    ),
                    _panel(
                        "Stock",
                        html.Div(id=ids.ALERTS_LIST, className="alerts"),
                        html.Div(["Products below threshold: ", html.Strong("…", id=ids.LOW_STOCK_COUNT)]),
                        dash_table.DataTable(
                            id=ids.INVENTORY_TABLE,
                            columns=[
                                {"name": "product", "id": "product_id"},
                                {"name": "stock", "id": "stock", "type": "numeric"},
                                {"name": "threshold", "id": "threshold", "type": "numeric"},
                                {"name": "status", "id": "status"},
                                {"name": "last event", "id": "last_event_time"},
                            ],
                            data=[],
                            page_size=12,
                            sort_action="native",
                            style_as_list_view=True,
                            style_table={"overflowX": "auto"},
                            style_cell={"fontSize": 13, "padding": "4px 8px", "textAlign": "left"},
                            style_header={"fontWeight": "bold"},
                            style_data_conditional=[
                                {
                                    "if": {"filter_query": '{status} = "LOW"'},
                                    "backgroundColor": "#fde2e1",
                                    "color": "#a4161a",
                                    "fontWeight": "bold",
                                }
                            ],
                        ),
                    ),
                ],
                className="row two-one",
            ),
            html.Div(
                [
                    _panel(
                        "What sells", dcc.Graph(id=ids.TOP_PRODUCTS_GRAPH, config=_GRAPH_CONFIG, style=_GRAPH_STYLE)
                    ),
                    _panel("Pipeline health", html.Div(id=ids.HEALTH_PANEL, className="health")),
                    _panel(
                        "Reconciliation: speed vs batch, 24 h before W",
                        dcc.Graph(id=ids.RECONCILIATION_GRAPH, config=_GRAPH_CONFIG, style=_GRAPH_STYLE),
                        html.P(id=ids.RECONCILIATION_SUMMARY, className="muted"),
                    ),
                ],
                className="row three",
            ),
            dcc.Interval(id=ids.INTERVAL, interval=refresh_ms, n_intervals=0),
        ],
        className="page",
    )
