"""The dashboard's thin shell: build the Dash app over one ServingLayer, then ``app.run(...)``.

Example::

    retail dashboard            # or: make dashboard  -> http://127.0.0.1:8050/
"""

from __future__ import annotations

from dash import Dash

from contracts.settings import Settings
from serving_layer.dashboard.callbacks import register_callbacks
from serving_layer.dashboard.layout import layout
from serving_layer.dashboard.pacing import CallbackTimings
from serving_layer.service import ServingLayer

__all__ = ["create_app", "run"]


def create_app(serving: ServingLayer, settings: Settings) -> Dash:
    """The dashboard over ``serving``; nothing is read until the browser's first callback."""
    timings = CallbackTimings(settings.dashboard_refresh_seconds)
    app = Dash(__name__, title="Shop operations · live sales", update_title=None)
    # a function, so every page load gets a fresh tree (and the current interval) instead of one frozen at import
    app.layout = lambda: layout(settings.currency, timings.interval_ms())
    register_callbacks(app, serving, settings.currency, timings)
    app.timings = timings  # type: ignore[attr-defined]  # read by benchmarks and tests
    return app


def run(settings: Settings) -> None:
    """Serve the dashboard on settings.bind_host:settings.dashboard_port until interrupted."""
    app = create_app(ServingLayer.from_settings(settings), settings)
    print(
        f"dashboard on http://{settings.bind_host}:{settings.dashboard_port}/ (lake {settings.lake_root})", flush=True
    )
    app.run(host=settings.bind_host, port=settings.dashboard_port, debug=False)
