"""The dashboard's thin shell: build the Dash app over one ServingLayer, then ``app.run(...)``.

Example::

    retail dashboard            # or: make dashboard  -> http://127.0.0.1:8050/
"""

from __future__ import annotations

import signal
import threading

from dash import Dash
from flask import Response, request

from contracts.settings import Settings
from serving_layer.auth import authorized, check_exposure, host_allowed
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
    token = check_exposure(settings, "dashboard")
    if not token:  # loopback only: requests must be addressed to loopback too (no DNS rebinding)

        @app.server.before_request
        def _require_loopback_host():  # type: ignore[no-untyped-def]
            if not host_allowed(request.headers.get("Host")):
                return Response("the Host header must name a loopback address\n", status=400)
            return None

    if token:

        @app.server.before_request
        def _require_login():  # type: ignore[no-untyped-def]
            if not authorized(request.headers.get("Authorization"), token, basic=True):
                return Response(
                    "login required (any user name; the password is RETAIL_SERVING_AUTH_TOKEN)\n",
                    status=401,
                    headers={"WWW-Authenticate": 'Basic realm="retail dashboard"'},
                )
            return None

    app.timings = timings  # type: ignore[attr-defined]  # read by benchmarks and tests
    return app


def run(settings: Settings) -> None:
    """Serve the dashboard on settings.bind_host:settings.dashboard_port until interrupted (SIGINT or SIGTERM).

    The ServingLayer (and its speed topic consumer thread) is closed on the way out.
    """
    check_exposure(settings, "dashboard")  # before anything starts: no listener beyond loopback without auth
    serving = ServingLayer.from_settings(settings)
    # Flask's development server has no SIGTERM handling: turn it into SystemExit so the finally below runs
    main = threading.current_thread() is threading.main_thread()
    previous = signal.signal(signal.SIGTERM, _exit_on_sigterm) if main else None
    try:
        app = create_app(serving, settings)
        print(
            f"dashboard on http://{settings.bind_host}:{settings.dashboard_port}/ (lake {settings.lake_root}, "
            f"speed source {settings.serving_speed_source})",
            flush=True,
        )
        app.run(host=settings.bind_host, port=settings.dashboard_port, debug=False)
    finally:
        if main:
            signal.signal(signal.SIGTERM, previous)
        serving.close()


def _exit_on_sigterm(_signum: int, _frame: object) -> None:
    raise SystemExit(0)
