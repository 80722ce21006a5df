"""Property: any query string to the HTTP API gets 200, or 400 with a JSON message; never a 500.

Hypothesis draws query strings over the scenario lake: well-formed and extreme ISO times (year 1 and 9999, zones
up to ±23:59, fractions, naive), garbage, repeated and unknown parameters, percent-encoded bytes that are no UTF-8.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from urllib.parse import quote

import pytest
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from serving_layer.api import create_app
from serving_layer.service import ServingLayer
from tests.serving_layer.lake_builder import LakeBuilder
from tests.serving_layer.scenario import NOW

ENDPOINTS = ("/api/revenue", "/api/alerts", "/api/inventory", "/api/health")


@pytest.fixture(scope="module")
def client(scenario_lake: LakeBuilder) -> TestClient:
    return TestClient(
        base_url="http://127.0.0.1",
        app=create_app(ServingLayer(scenario_lake.lake.root, clock=lambda: NOW)),
        raise_server_exceptions=False,
    )


def _iso(moment: datetime, offset_minutes: int, fraction: bool) -> str:
    from datetime import timezone

    try:
        local = moment.astimezone(timezone(timedelta(minutes=offset_minutes)))
    except OverflowError:
        local = moment
    text = local.isoformat(timespec="microseconds" if fraction else "seconds")
    return text.replace("+00:00", "Z")


_moments = st.one_of(
    st.datetimes(timezones=st.just(UTC)),  # anywhere in 0001..9999
    st.sampled_from([datetime.min.replace(tzinfo=UTC), datetime.max.replace(tzinfo=UTC)]),
    st.datetimes(min_value=datetime(2026, 1, 4), max_value=datetime(2026, 1, 8)).map(lambda m: m.replace(tzinfo=UTC)),
)
times = st.one_of(
    st.builds(_iso, _moments, st.integers(-(24 * 60 - 1), 24 * 60 - 1), st.booleans()),
    _moments.map(lambda m: m.replace(tzinfo=None).isoformat()),  # naive: read as UTC
    st.sampled_from(["", " ", "yesterday", "2026-01-05", "0001-01-01", "9999-12-31", "2026-01-05T10:00:00+24:00",
                     "2026-02-30T00:00:00Z", "9999-12-31T23:59:59.999999-23:59", "0001-01-01T00:00:00+23:59"]),
    st.text(max_size=30),
)  # fmt: skip
values = st.one_of(times, st.sampled_from(["minute", "hour", "day", "week", "MINUTE", "p-1", "books", " "]))
names = st.sampled_from(["start", "end", "grain", "product_id", "category", "x", "start[]", ""])


@st.composite
def query_strings(draw: st.DrawFn) -> str:
    pairs = draw(st.lists(st.tuples(names, values), max_size=6))
    if draw(st.booleans()):  # the common shape: a start and an end, maybe a grain
        pairs = [("start", draw(times)), ("end", draw(times)), *pairs[:2]]
    parts = [f"{quote(name, safe='')}={quote(value, safe='')}" for name, value in pairs]
    if draw(st.integers(0, 9)) == 0:
        parts.append(draw(st.sampled_from(["%FF%FE=%80", "start=%ZZ", "&&", "=x", "start"])))
    return "&".join(parts)


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(path=st.sampled_from(ENDPOINTS), query=query_strings())
def test_any_query_gets_200_or_a_400_with_a_json_message(client: TestClient, path: str, query: str) -> None:
    answer = client.get(f"{path}?{query}")
    assert answer.status_code in (200, 400), (answer.status_code, answer.text[:300])
    body = answer.json()
    if answer.status_code == 400:
        assert body["error"] == "bad_request" and body["message"], body
    assert "Traceback" not in answer.text


@pytest.mark.parametrize(
    ("query", "status"),
    [
        ("start=1970-01-01T00:00:00Z&end=1970-01-02T00:00:00Z", 200),
        ("start=8999-12-31T00:00:00Z&end=8999-12-31T23:59:59.999999Z&grain=day", 200),
        ("start=8999-12-31T00:00:00%2B14:00&end=8999-12-31T09:00:00-14:00&grain=day", 200),
        ("start=8999-12-31T00:00:00Z&end=8999-12-31T23:59:59-14:00&grain=day", 400),
        ("start=1969-12-31T23:59:59.999999Z&end=1970-01-02T00:00:00Z", 400),
        ("start=8999-12-31T00:00:00Z&end=9000-01-01T00:00:00Z&grain=day", 400),
        ("start=0001-01-01T00:00:00Z&end=0001-01-02T00:00:00Z", 400),
        ("start=0001-01-01T00:00:00%2B23:59&end=0001-01-02T00:00:00Z", 400),
        ("start=9999-12-30T00:00:00Z&end=9999-12-31T23:59:59.999999-23:59&grain=day", 400),
    ],
)
def test_extreme_dates_are_answered_or_refused_never_an_error(client: TestClient, query: str, status: int) -> None:
    answer = client.get(f"/api/revenue?{query}")
    assert answer.status_code == status, answer.text
    if status == 400:
        assert "must be" in answer.json()["message"]
