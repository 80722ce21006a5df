"""Property: any Kafka record is either quarantined with a known reason, or a valid event inside every bound of
the contract that passes the metric (both user modes) and the batch views without an error.

Hypothesis draws the records (arbitrary bytes, arbitrary JSON, and event-shaped JSON whose fields are valid,
at a boundary, or broken in a known way), and one Spark job per test parses all of them: records are
independent in the parser, so a failing record is its own minimal example (the assertion prints its bytes).
"""

from __future__ import annotations

import json
import string
from collections import defaultdict
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from pyspark.sql import functions as F

from batch_layer.transforms import (
    bronze_checks,
    build_view,
    daily_totals,
    deduplicate_events,
    reconciliation_diff,
    view_checks,
)
from contracts.events import MAX_QUANTITY, MAX_TEXT_LENGTH, MAX_UNIT_PRICE, MIN_EVENT_TIME, EventType
from contracts.metrics import sales_rollup
from contracts.parser import parse_kafka_records
from contracts.tables import BRONZE_COLUMNS
from tests.contracts.kafka_records import (
    ABSENT,
    WITH_QUANTITY,
    WITH_USER,
    Number,
    assert_valid_or_quarantined,
    iso,
    kafka_frame,
    parse,
    to_json,
    utc,
)

NOW = datetime.now(UTC)
CENT = Decimal("0.01")


def draw_examples(strategy: st.SearchStrategy[Any], count: int) -> list[Any]:
    """``count`` examples of ``strategy``, drawn up front so that one Spark job can check all of them."""
    examples: list[Any] = []

    @settings(
        max_examples=count,
        deadline=None,
        database=None,
        phases=[Phase.generate],
        suppress_health_check=list(HealthCheck),
    )
    @given(strategy)
    def collect(example: Any) -> None:
        examples.append(example)

    collect()
    return examples


# --- field values, each labelled with the reason it must cause (None: valid) ---------------------------------------
def _labelled(strategy: st.SearchStrategy[Any], reason: str | None) -> st.SearchStrategy[tuple[Any, str | None]]:
    return strategy.map(lambda value: (value, reason))


_json_scalars = st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20)
any_json = st.recursive(
    _json_scalars,
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4),
    max_leaves=12,
)
# RFC 8259 JSON only (json.dumps writes NaN/Infinity tokens, which are not JSON): for fields that must not matter
finite_json = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False) | st.text(max_size=20),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4),
    max_leaves=12,
)
_not_string = st.one_of(
    st.booleans(), st.integers(), st.lists(st.integers(), max_size=2), st.dictionaries(st.text(max_size=3), st.none())
)
_id_text = st.text(min_size=1, max_size=MAX_TEXT_LENGTH).filter(lambda text: text.strip(" ") != "")
_too_long = st.text(min_size=MAX_TEXT_LENGTH + 1, max_size=MAX_TEXT_LENGTH + 40).filter(
    lambda text: len(text.strip(" ")) > MAX_TEXT_LENGTH
)


def text_field(name: str, required: bool) -> st.SearchStrategy[tuple[Any, str | None]]:
    missing = f"missing_{name}" if required else None
    return st.one_of(
        _labelled(_id_text, None),
        _labelled(st.sampled_from(["", "   ", None, ABSENT]), missing),
        _labelled(_too_long, f"{name}_too_long"),
        _labelled(_not_string, f"bad_{name}"),
    )


# the deployment's currency (any case, padded, or none at all), another one, or a broken value
currencies = st.one_of(
    _labelled(st.sampled_from(["EUR", "eur", " Eur ", "", "   ", None, ABSENT]), None),
    _labelled(st.sampled_from(["JPY", "usd", "EURO", "€", "ЕUR"]), "foreign_currency"),
    _labelled(_too_long, "currency_too_long"),
    _labelled(_not_string, "bad_currency"),
)


def _moment(low: datetime, high: datetime) -> st.SearchStrategy[datetime]:
    return st.datetimes(min_value=low.replace(tzinfo=None), max_value=high.replace(tzinfo=None)).map(
        lambda moment: moment.replace(tzinfo=UTC)
    )


def _with_zone(moment: datetime, offset_minutes: int) -> str:
    from datetime import timezone

    local = moment.astimezone(timezone(timedelta(minutes=offset_minutes)))
    return local.isoformat().replace("+00:00", "Z")


_MICROSECOND = timedelta(microseconds=1)
_offsets = st.sampled_from([0, 60, -300, 330, 345, 840, -720])
event_times = st.one_of(
    _labelled(st.builds(_with_zone, _moment(MIN_EVENT_TIME, NOW - timedelta(minutes=1)), _offsets), None),
    _labelled(st.builds(_with_zone, _moment(datetime(1000, 1, 2, tzinfo=UTC), MIN_EVENT_TIME - _MICROSECOND),
                        _offsets), "event_time_too_early"),
    _labelled(st.builds(_with_zone, _moment(NOW + timedelta(days=2), datetime(9999, 12, 30, tzinfo=UTC)), _offsets),
              "event_time_in_future"),
    _labelled(_moment(MIN_EVENT_TIME, NOW).map(lambda m: m.replace(tzinfo=None).isoformat()), "bad_event_time"),
    _labelled(st.sampled_from(["yesterday", "", "2026-13-01T00:00:00Z", None, ABSENT, 1767607200, True]),
              "bad_event_time"),
)  # fmt: skip

_valid_price = st.decimals(min_value=0, max_value=MAX_UNIT_PRICE, places=2)
_over_price = st.decimals(min_value=MAX_UNIT_PRICE + CENT, max_value=Decimal(10) ** 30, places=2)
_sub_cent = st.builds(
    lambda units, places: Decimal(units).scaleb(-places),
    st.integers(min_value=1, max_value=10**12).filter(lambda n: n % 10 != 0),
    st.integers(min_value=3, max_value=20),
).filter(lambda price: price <= MAX_UNIT_PRICE)


def _as_json(price: Decimal, as_number: bool, trailing_zeros: int) -> Any:
    text = format(price, "f") + ("0" * trailing_zeros if "." in format(price, "f") else "")
    return Number(text) if as_number else text


def price_field(strategy: st.SearchStrategy[Decimal], reason: str | None) -> st.SearchStrategy[tuple[Any, str | None]]:
    return _labelled(st.builds(_as_json, strategy, st.booleans(), st.integers(0, 3)), reason)


unit_prices = st.one_of(
    price_field(_valid_price, None),
    price_field(st.sampled_from([Decimal(0), CENT, MAX_UNIT_PRICE, MAX_UNIT_PRICE - CENT]), None),
    price_field(_over_price, "unit_price_out_of_range"),
    price_field(st.sampled_from([MAX_UNIT_PRICE + CENT]), "unit_price_out_of_range"),
    price_field(_valid_price.filter(lambda p: p > 0).map(lambda p: -p), "negative_unit_price"),
    price_field(_sub_cent, "sub_cent_unit_price"),
    _labelled(st.sampled_from(["NaN", "Infinity", "-Infinity", "nan", "+inf"]), "non_finite_unit_price"),
    _labelled(st.sampled_from([Number("1e2"), Number("1.999e1"), "12,50", "", True, ABSENT, None, {"a": 1}]),
              "bad_unit_price"),
)  # fmt: skip

quantities = st.one_of(
    _labelled(st.integers(min_value=1, max_value=MAX_QUANTITY), None),
    _labelled(st.sampled_from([1, MAX_QUANTITY]), None),
    _labelled(st.integers(min_value=MAX_QUANTITY + 1, max_value=10**30), "quantity_out_of_range"),
    _labelled(st.integers(max_value=0, min_value=-(10**30)), "bad_quantity"),
    _labelled(st.sampled_from(["3", Number("3.5"), True, {"n": 1}, [1], None, ABSENT]), "bad_quantity"),
)
event_types = st.one_of(
    _labelled(st.sampled_from([e.value for e in EventType]), None),
    _labelled(st.sampled_from([" Purchase ", "PAGE_VIEW"]), None),
    _labelled(st.sampled_from(["refund", "", None, ABSENT, 7, ["purchase"]]), "unknown_event_type"),
)


@st.composite
def event_records(draw: st.DrawFn) -> tuple[bytes, set[str]]:
    """An event-shaped record and the reasons it may get (empty: it must be valid)."""
    fields: dict[str, tuple[Any, str | None]] = {
        "schema_version": draw(st.one_of(_labelled(st.just(1), None),
                                         _labelled(st.sampled_from([2, "x", None]), "unsupported_schema_version"))),
        "event_type": draw(event_types),
        "event_time": draw(event_times),
        "event_id": draw(text_field("event_id", required=True)),
        "product_id": draw(text_field("product_id", required=True)),
        "user_id": draw(text_field("user_id", required=True)),
        "category": draw(text_field("category", required=False)),
        "quantity": draw(quantities),
        "unit_price": draw(unit_prices),
        "currency": draw(currencies),
        "order_id": draw(text_field("order_id", required=True)),
    }  # fmt: skip
    # mostly valid fields, so that many records are valid and reach the metric
    for name in list(fields):
        if draw(st.integers(0, 9)) < 9 and fields[name][1] is not None:
            fields[name] = (_VALID[name], None)
    event_type_value, _ = fields["event_type"]
    kind = event_type_value.strip(" ").lower() if isinstance(event_type_value, str) else None
    applies = {
        "user_id": kind in WITH_USER,
        "quantity": kind in WITH_QUANTITY,
        "unit_price": kind == EventType.PURCHASE.value,
        "currency": kind == EventType.PURCHASE.value,
        "order_id": kind == EventType.PURCHASE.value,
    }
    reasons = set()
    for name, (_, reason) in fields.items():
        if reason is None:
            continue
        if name == "user_id" and reason.startswith("missing_") and not applies["user_id"]:
            continue  # a restock needs no user; a wrong type or a long one is still refused
        if name != "user_id" and not applies.get(name, True):
            continue
        reasons.add(reason)
    event = {name: value for name, (value, _) in fields.items() if value is not ABSENT}
    extra = draw(st.dictionaries(st.text(max_size=6).map(lambda key: f"x_{key}"), finite_json, max_size=2))
    return to_json({**event, **extra}), reasons


_VALID: dict[str, Any] = {
    "schema_version": 1,
    "event_type": "purchase",
    "event_time": "2026-01-05T10:00:00Z",
    "event_id": "e-1",
    "product_id": "p-1",
    "user_id": "u-1",
    "category": "books",
    "quantity": 2,
    "unit_price": "19.99",
    "currency": "EUR",
    "order_id": "o-1",
}


def _contract_keys() -> st.SearchStrategy[str]:
    return st.sampled_from(list(_VALID)) | st.text(alphabet=string.ascii_lowercase + "_", max_size=12)


arbitrary_objects = st.dictionaries(_contract_keys(), any_json, max_size=11).map(to_json)
arbitrary_values = st.one_of(
    st.binary(max_size=300),
    any_json.map(lambda document: json.dumps(document).encode()),
    arbitrary_objects,
    st.none(),
)


def test_arbitrary_bytes_and_json_are_valid_within_bounds_or_quarantined(spark) -> None:  # type: ignore[no-untyped-def]
    values = draw_examples(arbitrary_values, 1500)
    rows = parse(spark, values)
    assert_valid_or_quarantined(values, rows)
    assert any(row.reject_reason == "not_json" for row in rows)


def test_event_shaped_records_get_exactly_the_reason_of_their_broken_field(spark) -> None:  # type: ignore[no-untyped-def]
    drawn = draw_examples(event_records(), 1500)
    values = [value for value, _ in drawn]
    rows = parse(spark, values)
    assert_valid_or_quarantined(values, rows)
    wrong = [
        (value, sorted(reasons), row.reject_reason)
        for (value, reasons), row in zip(drawn, rows, strict=True)
        if (row.reject_reason is None) != (not reasons) or (reasons and row.reject_reason not in reasons)
    ]
    assert not wrong, "\n".join(f"{value!r}: expected one of {expected or 'valid'}, got {got}" for value, expected, got
                                in wrong[:10])  # fmt: skip
    valid = sum(1 for row in rows if row.reject_reason is None)
    assert valid > 300 and len(rows) - valid > 300  # both sides are exercised


# --- valid records through the metric and the batch views ----------------------------------------------------------
def _valid_events() -> st.SearchStrategy[bytes]:
    """Valid events near the bounds: few minutes, few keys, extreme quantities and prices, so sums pile up."""
    return st.builds(
        lambda event_type, minute, second, product, user, quantity, price, as_number, index: to_json({
            **_VALID,
            "event_type": event_type,
            "event_id": f"e-{index}",
            "event_time": iso(datetime(2026, 1, 5, 23, 58, tzinfo=UTC) + timedelta(minutes=minute, seconds=second)),
            "product_id": product,
            "category": product[:1],
            "user_id": user,
            "quantity": quantity,
            "unit_price": Number(format(price, "f")) if as_number else format(price, "f"),
        }),
        st.sampled_from([e.value for e in EventType]),
        st.integers(0, 3),
        st.integers(0, 59),
        st.sampled_from(["a1", "a2", "b1", "é" * MAX_TEXT_LENGTH]),
        st.sampled_from(["u1", "u2", "u3", "u" * MAX_TEXT_LENGTH]),
        st.sampled_from([1, MAX_QUANTITY]) | st.integers(1, MAX_QUANTITY),
        st.sampled_from([Decimal(0), CENT, MAX_UNIT_PRICE]) | _valid_price,
        st.booleans(),
        st.integers(0, 400),  # event ids repeat: re-sent events
    )  # fmt: skip


def test_valid_records_pass_the_metric_and_the_batch_views_and_add_up(spark) -> None:  # type: ignore[no-untyped-def]
    values = draw_examples(_valid_events(), 600) + [value for value, _ in draw_examples(event_records(), 300)]
    parsed = parse_kafka_records(kafka_frame(spark, values)).cache()
    try:
        bronze = parsed.where("reject_reason IS NULL").select(*BRONZE_COLUMNS).cache()
        rows = bronze.collect()
        assert len(rows) > 500
        # both user modes of the shared metric, minute grain: the speed layer's and the batch layer's
        for users in ("exact", "sketch"):
            rolled = sales_rollup(bronze.dropDuplicates(["event_id"]), grain="minute", users=users)
            assert rolled.where("revenue IS NULL OR orders IS NULL OR units IS NULL").count() == 0
        # the batch views over the same rows: deduplicated, three grains, checks and reconciliation all pass
        start, end = MIN_EVENT_TIME, NOW + timedelta(days=1)
        events = deduplicate_events(bronze, start, end).cache()
        views = {grain: build_view(events, grain, "run", NOW).cache() for grain in ("minute", "hour", "day")}
        diffs = reconciliation_diff(views, daily_totals(events)).collect()
        assert diffs and all(
            (d.revenue_diff, d.orders_diff, d.units_diff, d.users_diff) == (0, 0, 0, 0) for d in diffs
        ), [d for d in diffs if d.revenue_diff or d.orders_diff or d.units_diff or d.users_diff][:5]
        assert view_checks(views).where("NOT bucket_ok").count() == 0
        flags = ("quantity_ok", "user_ok", "price_ok", "not_in_future", "event_date_ok")
        gate = bronze_checks(bronze, datetime.now(UTC), 300)
        assert gate.where(" OR ".join(f"NOT {flag}" for flag in flags)).count() == 0  # the batch gate agrees
        # and the exact totals are what plain Python makes of the same valid rows
        expected: dict[str, Decimal] = defaultdict(Decimal)
        for row in {r.event_id: r for r in sorted(rows, key=_first_copy, reverse=True)}.values():
            if row.event_type == EventType.PURCHASE.value:
                expected[row.category or "unknown"] += row.quantity * row.unit_price
        day_categories = views["day"].where("dimension = 'category'").groupBy("key")
        got = {r.key: r.revenue for r in day_categories.agg(F.sum("revenue").alias("revenue")).collect()}
        assert {k: v for k, v in got.items() if v} == {k: v for k, v in expected.items() if v}
        for view in views.values():
            view.unpersist()
        events.unpersist()
        bronze.unpersist()
    finally:
        parsed.unpersist()


def _first_copy(row: Any) -> tuple[Any, ...]:
    return (utc(row.ingest_time), utc(row.kafka_timestamp), row.kafka_topic, row.kafka_partition, row.kafka_offset)
