"""The refresh interval is never shorter than the slowest callback (twice it, for headroom)."""

from __future__ import annotations

import pytest

from contracts.settings import Settings
from serving_layer.dashboard import ids
from serving_layer.dashboard.app import create_app
from serving_layer.dashboard.pacing import CallbackTimings
from serving_layer.service import ServingLayer


def test_interval_widens_past_the_slowest_callback() -> None:
    timings = CallbackTimings(configured_seconds=2.0)
    assert timings.interval_ms() == 2000
    timings.record("sales", 0.4)
    assert timings.interval_ms() == 2000
    timings.record("health", 1.7)
    assert timings.interval_ms() == 3400
    assert timings.summary() == {"sales": 0.4, "health": 1.7}
    with pytest.raises(ValueError, match="configured_seconds"):
        CallbackTimings(0)


def test_app_builds_without_reading_anything(tmp_path) -> None:  # type: ignore[no-untyped-def]
    # the lake does not exist: building the app and its layout must not touch it (data is read in callbacks)
    app = create_app(ServingLayer(str(tmp_path / "no-lake")), Settings(_env_file=None, dashboard_refresh_seconds=3))
    page = app.layout()
    assert page.children[-1].id == ids.INTERVAL and page.children[-1].interval == 3000
    every_id = set()

    def walk(node) -> None:  # type: ignore[no-untyped-def]
        if getattr(node, "id", None):
            every_id.add(node.id)
        children = getattr(node, "children", None)
        for child in children if isinstance(children, list) else [children]:
            if hasattr(child, "to_plotly_json"):
                walk(child)

    walk(page)
    declared = {value for name, value in vars(ids).items() if name.isupper()}
    assert declared <= every_id
