"""Helpers of the contract tests: Kafka-shaped static DataFrames, event-shaped JSON, and the checks every parsed
record must pass (valid inside every bound of contracts.events, or quarantined with a known reason)."""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from contracts.events import (
    DEFAULT_CURRENCY,
    MAX_QUANTITY,
    MAX_TEXT_LENGTH,
    MAX_UNIT_PRICE,
    MIN_EVENT_TIME,
    TEXT_FIELDS,
    EventType,
)
from contracts.parser import REJECT_REASONS

KAFKA_SCHEMA = "key binary, value binary, topic string, partition int, offset bigint, timestamp timestamp"
ARRIVAL = datetime(2026, 1, 5, 12, 0, tzinfo=UTC)
WITH_QUANTITY = {EventType.ADD_TO_CART.value, EventType.PURCHASE.value, EventType.RESTOCK.value}
WITH_USER = {EventType.PAGE_VIEW.value, EventType.ADD_TO_CART.value, EventType.PURCHASE.value}


ABSENT = object()
"""A field value that removes the field from the event (``purchase(order_id=ABSENT)``)."""


class Number:
    """A JSON number written exactly as ``text`` (json.dumps cannot write a Decimal as a number)."""

    def __init__(self, text: str) -> None:
        self.text = text

    def __repr__(self) -> str:
        return f"Number({self.text!r})"


def to_json(document: Any) -> bytes:
    """json.dumps with Number placeholders replaced by their exact text (NaN/Infinity floats written as tokens)."""
    numbers: list[str] = []

    def swap(value: Any) -> Any:
        if isinstance(value, Number):
            numbers.append(value.text)
            return f"\u0000number-{len(numbers) - 1}\u0000"
        if isinstance(value, dict):
            return {key: swap(item) for key, item in value.items()}
        if isinstance(value, list):
            return [swap(item) for item in value]
        return value

    text = json.dumps(swap(document))
    for index, number in enumerate(numbers):
        text = text.replace(json.dumps(f"\u0000number-{index}\u0000"), number)
    return text.encode()


def kafka_frame(spark, values: Sequence[bytes | None]):  # type: ignore[no-untyped-def]
    """A static DataFrame in the Kafka source's column layout; offset = position in ``values``."""
    rows = [(b"k", value, "retail.events", index % 3, index, ARRIVAL) for index, value in enumerate(values)]
    return spark.createDataFrame(rows, KAFKA_SCHEMA)


def parse(spark, values: Sequence[bytes | None], **kwargs: Any) -> list[Any]:  # type: ignore[no-untyped-def]
    """parse_kafka_records over ``values``; the rows in input order (without raw bytes)."""
    from contracts.parser import parse_kafka_records

    parsed = parse_kafka_records(kafka_frame(spark, values), **kwargs).drop("raw_key", "raw_value")
    return sorted(parsed.collect(), key=lambda row: row.kafka_offset)


def contract_violations(row: Any, skew_s: int = 300) -> list[str]:
    """What is wrong with one parsed row: an unknown reason, or a valid row outside a bound of the contract."""
    if row.reject_reason is not None:
        return [] if row.reject_reason in REJECT_REASONS else [f"unknown reason {row.reject_reason!r}"]
    problems = []
    if row.event_type not in {e.value for e in EventType}:
        problems.append(f"event_type {row.event_type!r}")
    if row.event_time is None or not MIN_EVENT_TIME <= _utc(row.event_time) <= _utc(row.ingest_time) + timedelta(
        seconds=skew_s
    ):
        problems.append(f"event_time {row.event_time!r} outside [2000-01-01, ingest + skew]")
    elif row.event_date != _utc(row.event_time).date():
        problems.append(f"event_date {row.event_date} != date of {row.event_time}")
    for name in ("event_id", "product_id"):
        value = getattr(row, name)
        if not value or not value.strip(" "):
            problems.append(f"{name} blank")
    for name in TEXT_FIELDS:
        value = getattr(row, name)
        if value is not None and len(value) > MAX_TEXT_LENGTH:
            problems.append(f"{name} longer than {MAX_TEXT_LENGTH}")
    if row.event_type in WITH_USER and not row.user_id:
        problems.append("user_id missing")
    if row.event_type in WITH_QUANTITY:
        if row.quantity is None or not 1 <= row.quantity <= MAX_QUANTITY:
            problems.append(f"quantity {row.quantity!r}")
    elif row.quantity is not None:
        problems.append(f"quantity {row.quantity!r} on a {row.event_type}")
    if row.event_type == EventType.PURCHASE.value:
        price = row.unit_price
        if (
            not isinstance(price, Decimal)
            or not Decimal(0) <= price <= MAX_UNIT_PRICE
            or price != price.quantize(Decimal("0.01"))
        ):
            problems.append(f"unit_price {price!r}")
        if not row.order_id:
            problems.append("order_id missing")
        if row.currency != DEFAULT_CURRENCY:
            problems.append(f"currency {row.currency!r} is not the deployment's {DEFAULT_CURRENCY}")
    elif row.unit_price is not None:
        problems.append(f"unit_price {row.unit_price!r} on a {row.event_type}")
    return problems


def assert_valid_or_quarantined(values: Sequence[bytes | None], rows: Sequence[Any], skew_s: int = 300) -> None:
    """Every produced record comes out once, valid inside the contract or quarantined with a known reason."""
    assert len(rows) == len(values), f"{len(values)} records produced, {len(rows)} parsed"
    assert [row.kafka_offset for row in rows] == list(range(len(values)))
    valid = sum(1 for row in rows if row.reject_reason is None)
    quarantined = sum(1 for row in rows if row.reject_reason is not None)
    assert valid + quarantined == len(values)
    broken = {row.kafka_offset: problems for row in rows if (problems := contract_violations(row, skew_s))}
    assert not broken, "\n".join(f"{values[offset]!r}: {problems}" for offset, problems in list(broken.items())[:10])


def _utc(moment: datetime) -> datetime:
    # Spark returns naive datetimes in the session zone (UTC in this project)
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def utc(moment: datetime) -> datetime:
    return _utc(moment)


def iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


def purchase(**fields: Any) -> dict[str, Any]:
    """A valid purchase event (2 × 19.99), with ``fields`` replacing or (value ...) removing fields."""
    event: dict[str, Any] = {
        "schema_version": 1,
        "event_id": "e-1",
        "event_type": "purchase",
        "event_time": "2026-01-05T10:00:00Z",
        "user_id": "u-1",
        "product_id": "p-1",
        "category": "books",
        "quantity": 2,
        "unit_price": "19.99",
        "currency": "EUR",
        "order_id": "o-1",
    }
    event.update(fields)
    return {key: value for key, value in event.items() if value is not ABSENT}


def flatten(groups: Iterable[Iterable[Any]]) -> list[Any]:
    return [item for group in groups for item in group]
