"""Every limit of the event contract: the value just inside passes, the value just outside gets its own reason.

One Spark job parses every case; the table below is the contract's boundary in one place (docs/design.md).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from contracts.events import MAX_QUANTITY, MAX_RECORD_BYTES, MAX_TEXT_LENGTH, MIN_EVENT_TIME, TEXT_FIELDS
from contracts.parser import REJECT_REASONS, parse_kafka_records
from tests.contracts.kafka_records import (
    ABSENT,
    Number,
    assert_valid_or_quarantined,
    iso,
    kafka_frame,
    parse,
    purchase,
    to_json,
)

NOW = datetime.now(UTC)


def _padded_to(size: int) -> bytes:
    """A valid purchase whose JSON is exactly ``size`` bytes (an unknown field carries the padding)."""
    bare = len(to_json(purchase(x_pad="")))
    value = to_json(purchase(x_pad="x" * (size - bare)))
    assert len(value) == size
    return value


# (case id, record value, expected reason or None for valid)
# the verdict on a long but otherwise fine value of each text field (a currency must also be the deployment's)
_TEXT_OK: dict[str, str | None] = {name: None for name in TEXT_FIELDS} | {"currency": "foreign_currency"}
CASES: list[tuple[str, bytes | None, str | None]] = [
    ("valid purchase", to_json(purchase()), None),
    # --- the record ---------------------------------------------------------------------------------------------
    ("value of exactly the size limit", _padded_to(MAX_RECORD_BYTES), None),
    ("value one byte over the size limit", _padded_to(MAX_RECORD_BYTES + 1), "record_too_large"),
    ("null value (tombstone)", None, "not_json"),
    ("truncated JSON", b'{"event_id": "e', "not_json"),
    ("a JSON array", b"[1, 2]", "not_json"),
    ("duplicate keys", b'{"event_id": "a", "event_id": "b"}', "not_json"),
    ("a NaN token", to_json(purchase(unit_price=float("nan"))), "not_json"),
    ("invalid UTF-8", b'{"event_id": "\xff\xfe"}', "unsupported_schema_version"),
    ("schema_version 2", to_json(purchase(schema_version=2)), "unsupported_schema_version"),
    # --- quantity: a JSON integer in [1, MAX_QUANTITY] -------------------------------------------------------------
    ("quantity 1", to_json(purchase(quantity=1)), None),
    ("quantity 0", to_json(purchase(quantity=0)), "bad_quantity"),
    ("quantity -1", to_json(purchase(quantity=-1)), "bad_quantity"),
    ("quantity at the limit", to_json(purchase(quantity=MAX_QUANTITY)), None),
    ("quantity over the limit", to_json(purchase(quantity=MAX_QUANTITY + 1)), "quantity_out_of_range"),
    ("quantity past int", to_json(purchase(quantity=2**31)), "quantity_out_of_range"),
    ("quantity past decimal(38)", to_json(purchase(quantity=10**40)), "quantity_out_of_range"),
    ("quantity 1e5", to_json(purchase(quantity=Number("1e5"))), "quantity_out_of_range"),
    ("quantity written 3.0", to_json(purchase(quantity=Number("3.0"))), None),
    ("quantity 3.5", to_json(purchase(quantity=Number("3.5"))), "bad_quantity"),
    ("quantity as a string", to_json(purchase(quantity="3")), "bad_quantity"),
    ("quantity true", to_json(purchase(quantity=True)), "bad_quantity"),
    ("quantity an object", to_json(purchase(quantity={"n": 3})), "bad_quantity"),
    ("quantity 1e2", to_json(purchase(quantity=Number("1e2"))), "bad_quantity"),
    ("quantity missing", to_json(purchase(quantity=ABSENT)), "bad_quantity"),
    # --- unit_price: a decimal in [0.00, 1,000,000.00] with at most 2 places --------------------------------------
    ("price 0.00", to_json(purchase(unit_price="0.00")), None),
    ("price -0.00", to_json(purchase(unit_price="-0.00")), None),
    ("price -0.01", to_json(purchase(unit_price="-0.01")), "negative_unit_price"),
    ("price at the limit", to_json(purchase(unit_price="1000000.00")), None),
    ("price at the limit, a number", to_json(purchase(unit_price=Number("1000000.00"))), None),
    ("price a cent over", to_json(purchase(unit_price="1000000.01")), "unit_price_out_of_range"),
    ("price a cent over, a number", to_json(purchase(unit_price=Number("1000000.01"))), "unit_price_out_of_range"),
    ("price past DECIMAL(18,2)", to_json(purchase(unit_price="100000000000000000.00")), "unit_price_out_of_range"),
    ("price with 40 digits", to_json(purchase(unit_price=Number("9" * 40))), "unit_price_out_of_range"),
    ("price 2 places", to_json(purchase(unit_price="0.01")), None),
    ("price trailing zeros", to_json(purchase(unit_price=Number("19.9900000"))), None),
    ("price 3 places", to_json(purchase(unit_price="1.005")), "sub_cent_unit_price"),
    ("price 3 places, a number", to_json(purchase(unit_price=Number("1.005"))), "sub_cent_unit_price"),
    ("price 14 places", to_json(purchase(unit_price="19.99000000000001")), "sub_cent_unit_price"),
    ("price NaN", to_json(purchase(unit_price="NaN")), "non_finite_unit_price"),
    ("price Infinity", to_json(purchase(unit_price="Infinity")), "non_finite_unit_price"),
    ("price -Infinity", to_json(purchase(unit_price="-Infinity")), "non_finite_unit_price"),
    ("price 1e2 (exponent)", to_json(purchase(unit_price=Number("1e2"))), "bad_unit_price"),
    ("price 1e400", to_json(purchase(unit_price=Number("1e400"))), "unit_price_out_of_range"),
    ("price -1e400", to_json(purchase(unit_price=Number("-1e400"))), "negative_unit_price"),
    ("price with a comma", to_json(purchase(unit_price="12,50")), "bad_unit_price"),
    ("price true", to_json(purchase(unit_price=True)), "bad_unit_price"),
    ("price an object", to_json(purchase(unit_price={"amount": "1.00"})), "bad_unit_price"),
    ("price missing", to_json(purchase(unit_price=ABSENT)), "bad_unit_price"),
    ("price empty", to_json(purchase(unit_price=" ")), "bad_unit_price"),
    ("page view ignores a price", to_json(purchase(event_type="page_view", unit_price="1e400")), None),
    # --- event_time: in [2000-01-01T00:00:00Z, ingest time + skew] --------------------------------------------------
    ("time at the lower limit", to_json(purchase(event_time="2000-01-01T00:00:00Z")), None),
    ("time a microsecond early", to_json(purchase(event_time="1999-12-31T23:59:59.999999Z")), "event_time_too_early"),
    ("time early by its zone", to_json(purchase(event_time="2000-01-01T00:30:00+01:00")), "event_time_too_early"),
    ("time in year 1", to_json(purchase(event_time="0001-01-01T00:00:00Z")), "event_time_too_early"),
    ("time inside the skew", to_json(purchase(event_time=iso(NOW + timedelta(seconds=120)))), None),
    # NOW is taken when the module is collected, maybe many minutes before this runs: only what is far enough
    # ahead stays ahead of the ingest time (a suite of an hour still keeps 2 days in the future)
    ("time past the skew", to_json(purchase(event_time=iso(NOW + timedelta(days=2)))), "event_time_in_future"),
    ("time in year 9999", to_json(purchase(event_time="9999-12-31T23:59:59Z")), "event_time_in_future"),
    ("time without zone", to_json(purchase(event_time="2026-01-05T10:00:00")), "bad_event_time"),
    ("time a number", to_json(purchase(event_time=1767607200)), "bad_event_time"),
    ("time month 13", to_json(purchase(event_time="2026-13-01T00:00:00Z")), "bad_event_time"),
    # --- text fields --------------------------------------------------------------------------------------------
    ("event_id blank", to_json(purchase(event_id="  ")), "missing_event_id"),
    ("product_id missing", to_json(purchase(product_id=ABSENT)), "missing_product_id"),
    ("user_id null", to_json(purchase(user_id=None)), "missing_user_id"),
    ("restock without user", to_json(purchase(event_type="restock", user_id=None, unit_price=ABSENT)), None),
    ("order_id missing", to_json(purchase(order_id=ABSENT)), "missing_order_id"),
    ("category and currency absent", to_json(purchase(category=ABSENT, currency=None)), None),
    ("currency blank", to_json(purchase(currency="  ")), None),
    ("currency in lower case, padded", to_json(purchase(currency=" eur ")), None),
    ("currency JPY", to_json(purchase(currency="JPY")), "foreign_currency"),
    ("currency EURO", to_json(purchase(currency="EURO")), "foreign_currency"),
    ("page view in JPY", to_json(purchase(event_type="page_view", quantity=ABSENT, currency="JPY")), None),
    ("event_type unknown", to_json(purchase(event_type="refund")), "unknown_event_type"),
    ("event_type padded upper case", to_json(purchase(event_type=" PURCHASE ")), None),
    # a currency at the limit is valid text, but not the deployment's currency
    *[(f"{name} at the length limit", to_json(purchase(**{name: "é" * MAX_TEXT_LENGTH})), _TEXT_OK[name])
      for name in TEXT_FIELDS],
    *[
        (f"{name} one character over", to_json(purchase(**{name: "é" * (MAX_TEXT_LENGTH + 1)})), f"{name}_too_long")
        for name in TEXT_FIELDS
    ],
    *[(f"{name} padded to the limit", to_json(purchase(**{name: f"  {'a' * MAX_TEXT_LENGTH}  "})), _TEXT_OK[name])
      for name in TEXT_FIELDS],
    *[(f"{name} a number", to_json(purchase(**{name: 42})), f"bad_{name}") for name in TEXT_FIELDS],
    *[(f"{name} an array", to_json(purchase(**{name: ["a"]})), f"bad_{name}") for name in TEXT_FIELDS],
]  # fmt: skip


@pytest.fixture(scope="module")
def parsed(spark) -> list[Any]:  # type: ignore[no-untyped-def]
    return parse(spark, [value for _, value, _ in CASES])


def test_each_value_just_inside_a_limit_is_valid_and_just_outside_gets_its_reason(parsed: list[Any]) -> None:
    got = {case: row.reject_reason for (case, _, _), row in zip(CASES, parsed, strict=True)}
    expected = {case: reason for case, _, reason in CASES}
    assert got == expected
    assert_valid_or_quarantined([value for _, value, _ in CASES], parsed)


def test_every_reason_code_is_documented_and_reachable(parsed: list[Any]) -> None:
    reached = {row.reject_reason for row in parsed} - {None}
    assert reached == set(REJECT_REASONS)
    from contracts.settings import PROJECT_ROOT

    design = (PROJECT_ROOT / "docs" / "design.md").read_text()
    assert not [code for code in REJECT_REASONS if f"`{code}`" not in design]


def test_valid_values_keep_their_exact_value(parsed: list[Any]) -> None:
    rows = {case: row for (case, _, _), row in zip(CASES, parsed, strict=True)}
    assert str(rows["price trailing zeros"].unit_price) == "19.99"
    assert str(rows["price at the limit, a number"].unit_price) == "1000000.00"
    assert str(rows["price -0.00"].unit_price) == "0.00"
    assert rows["quantity written 3.0"].quantity == 3
    assert rows["event_type padded upper case"].event_type == "purchase"
    assert rows["product_id padded to the limit"].product_id == "a" * MAX_TEXT_LENGTH
    assert rows["time at the lower limit"].event_time.replace(tzinfo=UTC) == MIN_EVENT_TIME
    assert rows["page view ignores a price"].unit_price is None
    assert rows["category and currency absent"].currency == "EUR"  # the deployment's currency
    assert rows["currency blank"].currency == "EUR"
    assert rows["currency in lower case, padded"].currency == "EUR"
    assert rows["page view in JPY"].currency is None  # only a purchase carries money


def test_the_currency_is_an_argument_and_a_purchase_in_another_is_quarantined(spark) -> None:  # type: ignore[no-untyped-def]
    values = [to_json(purchase(currency="JPY")), to_json(purchase(currency="EUR")), to_json(purchase(currency=None))]
    assert [(r.reject_reason, r.currency) for r in parse(spark, values)] == [
        ("foreign_currency", "JPY"),
        (None, "EUR"),
        (None, "EUR"),
    ]
    in_yen = parse(spark, values, currency="JPY")  # after a config change (and a replay of the quarantine)
    expected = [(None, "JPY"), ("foreign_currency", "EUR"), (None, "JPY")]
    assert [(r.reject_reason, r.currency) for r in in_yen] == expected
    with pytest.raises(ValueError, match="currency must be three capital letters"):
        parse_kafka_records(kafka_frame(spark, values[:1]), currency="eur")


def test_the_clock_skew_is_an_argument(spark) -> None:  # type: ignore[no-untyped-def]
    half_hour_ahead = to_json(purchase(event_time=iso(datetime.now(UTC) + timedelta(minutes=30))))
    assert [r.reject_reason for r in parse(spark, [half_hour_ahead])] == ["event_time_in_future"]
    assert [r.reject_reason for r in parse(spark, [half_hour_ahead], max_event_time_skew_seconds=3600)] == [None]
    records = kafka_frame(spark, [half_hour_ahead])
    for bad in (-1, 86_401, 1.5, True, "300"):
        with pytest.raises(ValueError, match="max_event_time_skew_seconds"):
            parse_kafka_records(records, max_event_time_skew_seconds=bad)  # type: ignore[arg-type]
