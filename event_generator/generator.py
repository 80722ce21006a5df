"""Deterministic generator of retail events following the event contract (the `retail produce` command).

A seed fixes everything: the catalogue, the users, the sequence of events and their event times (given a fixed
``start``), so a test can compute the exact expected answers from the same list it produced. Optional faults:
late events (event time moved back by N minutes), duplicates (the same event re-sent), and malformed records of
each kind the speed layer must quarantine.

Example::

    config = GeneratorConfig(seed=7, count=1000, start=datetime(2026, 1, 1, tzinfo=UTC))
    records = list(generate(config))           # pure: no Kafka involved
    summary = produce(records, settings, rate=500)
"""

from __future__ import annotations

import json
import random
import sys
import time
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal

from contracts.events import SCHEMA_VERSION, EventType
from contracts.settings import Settings
from infra.errors import BrokerError

__all__ = [
    "GeneratorConfig",
    "Product",
    "GeneratedRecord",
    "MALFORMED_KINDS",
    "build_catalogue",
    "generate",
    "produce",
]

CATEGORIES = ("books", "electronics", "garden", "kitchen", "toys", "sports", "beauty", "grocery")

# each kind of broken record the speed layer must route to quarantine with a reason
MALFORMED_KINDS: tuple[str, ...] = (
    "not_json",
    "missing_product_id",
    "unknown_event_type",
    "bad_event_time",
    "non_positive_quantity",
    "negative_price",
    "bad_price",
    "missing_event_id",
)

_EVENT_MIX = (
    (EventType.PAGE_VIEW, 0.70),
    (EventType.ADD_TO_CART, 0.15),
    (EventType.PURCHASE, 0.11),
    (EventType.RESTOCK, 0.04),
)


@dataclass(frozen=True)
class Product:
    product_id: str
    category: str
    unit_price: Decimal


@dataclass(frozen=True)
class GeneratorConfig:
    """What to generate. ``count`` events whose event times step evenly ``1/rate`` seconds from ``start``."""

    seed: int = 42
    count: int = 10_000
    rate: float = 1000.0
    start: datetime | None = None
    products: int = 50
    users: int = 1000
    late_ratio: float = 0.0
    late_minutes: float = 10.0
    duplicate_ratio: float = 0.0
    malformed_ratio: float = 0.0
    currency: str = "EUR"

    def __post_init__(self) -> None:
        if self.count < 0:
            raise ValueError(f"count must be >= 0, got {self.count}")
        if self.rate <= 0:
            raise ValueError(f"rate must be > 0 events/s, got {self.rate}")
        if self.products < 1 or self.users < 1:
            raise ValueError(f"products and users must be >= 1, got {self.products} and {self.users}")
        for name in ("late_ratio", "duplicate_ratio", "malformed_ratio"):
            value = getattr(self, name)
            if not 0.0 <= value <= 1.0:
                raise ValueError(f"{name} must be between 0 and 1, got {value}")
        if self.start is not None and self.start.tzinfo is None:
            raise ValueError("start must be timezone-aware (UTC), got a naive datetime")


@dataclass(frozen=True)
class GeneratedRecord:
    """One Kafka record: key, value bytes, and what it is (``valid``, ``duplicate``, ``late`` or a malformed kind)."""

    key: bytes
    value: bytes
    kind: str
    event: dict[str, object] | None = field(default=None, compare=False)


def build_catalogue(seed: int, products: int) -> list[Product]:
    """The product catalogue for a seed: ids p0001.., a category each, a price between 1.00 and 500.00."""
    rng = random.Random(f"catalogue-{seed}")
    return [
        Product(
            product_id=f"p{index:04d}",
            category=CATEGORIES[index % len(CATEGORIES)],
            unit_price=Decimal(rng.randint(100, 50_000)) / 100,
        )
        for index in range(1, products + 1)
    ]


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _event(
    rng: random.Random, index: int, config: GeneratorConfig, catalogue: list[Product], moment: datetime
) -> dict[str, object]:
    roll = rng.random()
    cumulative = 0.0
    event_type = _EVENT_MIX[-1][0]
    for candidate, weight in _EVENT_MIX:
        cumulative += weight
        if roll < cumulative:
            event_type = candidate
            break
    product = catalogue[rng.randrange(len(catalogue))]
    user = None if event_type is EventType.RESTOCK else f"u{rng.randrange(config.users):05d}"
    event: dict[str, object] = {
        "schema_version": SCHEMA_VERSION,
        "event_id": f"e-{config.seed}-{index:09d}",
        "event_type": str(event_type),
        "event_time": _iso(moment),
        "user_id": user,
        "product_id": product.product_id,
        "category": product.category,
        "quantity": None,
        "unit_price": None,
        "currency": None,
        "order_id": None,
    }
    if event_type is EventType.ADD_TO_CART:
        event["quantity"] = rng.randint(1, 3)
    elif event_type is EventType.PURCHASE:
        event["quantity"] = rng.randint(1, 3)
        event["unit_price"] = str(product.unit_price)  # a decimal string: money stays exact on the wire
        event["currency"] = config.currency
        event["order_id"] = f"o-{config.seed}-{index:09d}"
    elif event_type is EventType.RESTOCK:
        event["quantity"] = rng.randint(20, 60)
    return event


def _malformed(rng: random.Random, kind: str, event: dict[str, object]) -> bytes:
    broken = dict(event)
    if kind == "not_json":
        return b'{"event_id": "' + str(event["event_id"]).encode() + b'", "event_type": '  # truncated JSON
    if kind == "missing_product_id":
        broken["product_id"] = None
    elif kind == "unknown_event_type":
        broken["event_type"] = "refund_maybe"
    elif kind == "bad_event_time":
        broken["event_time"] = "yesterday at noon"
    elif kind == "non_positive_quantity":
        broken.update(
            event_type="purchase",
            quantity=rng.choice((0, -2)),
            unit_price="9.99",
            currency="EUR",
            order_id=f"o-bad-{event['event_id']}",
        )
    elif kind == "negative_price":
        broken.update(
            event_type="purchase",
            quantity=1,
            unit_price="-5.00",
            currency="EUR",
            order_id=f"o-bad-{event['event_id']}",
        )
    elif kind == "bad_price":
        broken.update(
            event_type="purchase",
            quantity=1,
            unit_price="12,50",
            currency="EUR",
            order_id=f"o-bad-{event['event_id']}",
        )
    elif kind == "missing_event_id":
        broken["event_id"] = None
    else:
        raise ValueError(f"kind must be one of {MALFORMED_KINDS}, got {kind!r}")
    return json.dumps(broken, separators=(",", ":")).encode()


def generate(config: GeneratorConfig) -> Iterator[GeneratedRecord]:
    """Yield ``config.count`` records (plus the duplicates asked for), deterministic for a seed and start."""
    rng = random.Random(config.seed)
    catalogue = build_catalogue(config.seed, config.products)
    start = config.start or datetime.now(UTC)
    step = timedelta(seconds=1.0 / config.rate)
    malformed_turn = 0
    for index in range(config.count):
        moment = start + step * index
        kind = "valid"
        if config.late_ratio and rng.random() < config.late_ratio:
            moment -= timedelta(minutes=config.late_minutes)
            kind = "late"
        event = _event(rng, index, config, catalogue, moment)
        key = str(event["product_id"]).encode()
        if config.malformed_ratio and rng.random() < config.malformed_ratio:
            bad_kind = MALFORMED_KINDS[malformed_turn % len(MALFORMED_KINDS)]  # every kind shows up in turn
            malformed_turn += 1
            yield GeneratedRecord(key=key, value=_malformed(rng, bad_kind, event), kind=bad_kind)
            continue
        value = json.dumps(event, separators=(",", ":")).encode()
        yield GeneratedRecord(key=key, value=value, kind=kind, event=event)
        if config.duplicate_ratio and rng.random() < config.duplicate_ratio:
            yield GeneratedRecord(key=key, value=value, kind="duplicate", event=event)


def produce(
    records: Iterable[GeneratedRecord],
    settings: Settings,
    rate: float | None = None,
    topic: str | None = None,
    progress_every_s: float = 5.0,
    out=sys.stderr,  # noqa: ANN001 - any text stream
) -> Counter[str]:
    """Send records to Kafka (acks=all, idempotent, key = product_id), paced at ``rate`` records/s when given.

    Returns how many records of each kind were acknowledged by the broker. With acks=all a record is acknowledged
    once every in-sync replica has it (at least min.insync.replicas on a cluster), and the idempotent producer
    (producer id + sequence numbers) makes the broker drop a retried batch it already wrote, so a broker that
    dies mid-send costs neither a record nor a duplicate.
    """
    from kafka import KafkaProducer

    producer = KafkaProducer(
        **settings.kafka_python_options(),
        acks="all",
        # explicit: a conflicting option then raises instead of silently switching idempotence off
        enable_idempotence=True,
        linger_ms=5,
        batch_size=256 * 1024,
        compression_type=None,
        retries=2**31 - 1,
        max_in_flight_requests_per_connection=1,  # with retries: keeps each partition in send order
    )
    target = topic or settings.events_topic
    counts: Counter[str] = Counter()
    failures: list[Exception] = []
    started = time.monotonic()
    last_report = started
    try:
        for sent, record in enumerate(records, start=1):
            future = producer.send(target, key=record.key, value=record.value)
            future.add_errback(failures.append)
            counts[record.kind] += 1
            if rate:
                ahead = sent / rate - (time.monotonic() - started)
                if ahead > 0.002:
                    time.sleep(ahead)
            now = time.monotonic()
            if now - last_report >= progress_every_s:
                print(f"produced {sent:,} records ({sent / (now - started):,.0f}/s)", file=out, flush=True)
                last_report = now
        producer.flush()
    finally:
        producer.close()
    if failures:
        raise BrokerError(f"{len(failures)} of {sum(counts.values())} records were not acknowledged: {failures[0]!r}")
    elapsed = time.monotonic() - started
    total = sum(counts.values())
    print(
        f"produced {total:,} records to {target} in {elapsed:.1f}s ({total / max(elapsed, 1e-9):,.0f}/s): "
        + ", ".join(f"{kind}={count}" for kind, count in sorted(counts.items())),
        file=out,
        flush=True,
    )
    return counts
