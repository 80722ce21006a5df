"""The demo driver's options and the settings it gives Airflow, without starting anything."""

from __future__ import annotations

import io
from datetime import UTC, date, datetime

import pytest

from contracts.settings import Settings
from infra.demo import Demo, DemoOptions, airflow_settings
from tests.demo.test_demo_in_chromium import LIVE_SECONDS, PEAK_RATE, SEED, YESTERDAY_EVENTS, demo_day_config


@pytest.mark.parametrize(
    "changes",
    [{"live_seconds": 5}, {"yesterday_events": -1}, {"peak_rate": 0}, {"batch_timeout_s": 0}],
)
def test_impossible_options_are_refused(changes: dict) -> None:
    with pytest.raises(ValueError):
        DemoOptions(**changes)


def test_airflow_neither_catches_up_nor_schedules_before_tomorrow_unless_asked(monkeypatch) -> None:  # type: ignore[no-untyped-def]
    now = datetime(2026, 11, 26, 11, 0, tzinfo=UTC)
    chosen = airflow_settings(Settings(_env_file=None), now)
    assert (chosen.batch_catchup, chosen.batch_start_date) == (False, date(2026, 11, 26))
    monkeypatch.setenv("RETAIL_BATCH_CATCHUP", "true")
    monkeypatch.setenv("RETAIL_BATCH_START_DATE", "2026-11-01")
    kept = airflow_settings(Settings(_env_file=None), now)
    assert (kept.batch_catchup, kept.batch_start_date) == (True, date(2026, 11, 1))


def test_the_browser_test_regenerates_the_day_the_demo_plays() -> None:
    options = DemoOptions(seed=SEED, yesterday_events=YESTERDAY_EVENTS, live_seconds=LIVE_SECONDS, peak_rate=PEAK_RATE)
    demo = Demo(Settings(_env_file=None), options, out=io.StringIO())
    assert demo.day.config == demo_day_config()
    assert demo.day.today == datetime.now(UTC).date()
