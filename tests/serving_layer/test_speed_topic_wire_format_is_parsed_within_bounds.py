"""One small message on a speed topic can neither stall serving nor break an answer later: revenue and times are
checked against their bounds before any conversion (exponent, date range), so a hostile value is skipped with its
reason, at once (the compacted topics replay it on every start)."""

from __future__ import annotations

import json
from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from serving_layer.speed_topics import _cents, _inventory_row, _micros, _Skip


def _inventory(**fields: object) -> bytes:
    return json.dumps({"product_id": "p-1", "stock": 5, **fields}).encode()


@pytest.mark.parametrize("revenue", ["1e999999999999", "1E400000", "-1e400000", "9" * 5000, "NaN", "Infinity"])
def test_a_revenue_past_decimal_18_2_is_skipped_before_any_conversion(revenue: str) -> None:
    # without the exponent check int() of 1e999999999999 would build a 10^12-digit integer: it never returns
    with pytest.raises(_Skip, match="bad_revenue"):
        _cents(revenue)
    with pytest.raises(_Skip, match="bad_revenue"):
        _cents(Decimal(revenue))


@given(st.decimals(allow_nan=True, allow_infinity=True) | st.text(max_size=40) | st.integers())
def test_any_revenue_is_cents_within_decimal_18_2_or_skipped(value: object) -> None:
    try:
        cents = _cents(value)
    except _Skip as skip:
        assert str(skip) == "bad_revenue"
        return
    assert cents is not None and -(10**18) < cents < 10**18
    assert Decimal(cents).scaleb(-2) == Decimal(str(value))


@pytest.mark.parametrize(
    "moment", ["9999-12-31T23:59:59-01:00", "0001-01-01T00:00:00+01:00", "1969-12-31T23:59:59Z", "9000-01-01T00:00Z"]
)
def test_a_time_outside_the_served_range_is_skipped(moment: str) -> None:
    with pytest.raises(_Skip, match="bad_last_event_time"):
        _inventory_row("p-1", _inventory(last_event_time=moment))


def test_times_inside_the_range_are_kept() -> None:
    assert _micros("1970-01-01T00:00:00Z", "t") == 0
    assert _micros("8999-12-31T23:59:59.999999+00:00", "t") is not None
    assert _inventory_row("p-1", _inventory(last_event_time="2026-12-07T10:00:00Z"))[4] is not None
