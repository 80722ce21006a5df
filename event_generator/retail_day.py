"""A retailer's day for the demo (`retail demo`, `make demo`): diurnal traffic, a flash sale, and a product that
sells out and is restocked.

Two parts, both with the event shape, catalogue and producer of ``event_generator.generator``:

- **yesterday** (UTC): a compressed day. Every product gets a generous opening restock at 00:00 (so no product
  starts at stock 0 and raises a noise alert), then ``yesterday_events`` events spread over the 24 hours with
  the diurnal shape (quiet night, lunch bump, evening peak) and a flash sale from 17:00 to 18:30, in event-time
  order: meant to be produced in one burst before the live stream.
- **live** ("today"): events with event_time = now, at ``peak_rate`` times the diurnal factor of the current
  hour, for ``live_seconds``. The episodes sit at fixed fractions of the live duration (:class:`LivePlan`):
  late till sales from yesterday evening arrive, a flash sale (price cut, the sale product's purchases surge),
  the sell-out product is bought down below the low-stock threshold (an alert opens) and, after a while sold
  out, restocked (the alert resolves).

Inventory is restocks minus purchases per product (as the speed layer computes it). The generator keeps the same
count while it generates: an ordinary purchase never takes a product below a safety level (the warehouse
restocks it first), so only the planned product sells out. A caller that knows the real stock (a lake with
earlier runs) passes ``observe_stock``; it is asked when the flash sale and the sell-out begin.

Deterministic: the same config, day, live start and observed stock give the same records.

Example::

    day = RetailDay(DayConfig(seed=42, live_seconds=300), today=date(2026, 11, 26))
    burst = list(day.yesterday())                      # opening restocks + 30,000 events of 2026-11-25
    for offset, record in day.live(datetime.now(UTC)):  # send each record `offset` seconds after the start
        ...
"""

from __future__ import annotations

import itertools
import json
import math
import random
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from decimal import ROUND_HALF_UP, Decimal

from contracts.events import MAX_QUANTITY, SCHEMA_VERSION, EventType
from event_generator.generator import GeneratedRecord, Product, build_catalogue

__all__ = ["DayConfig", "LivePlan", "RetailDay", "diurnal", "day_phase"]

# event mix of ordinary traffic, and of traffic about the flash-sale product while the sale runs
_MIX = (
    (EventType.PAGE_VIEW, 0.70),
    (EventType.ADD_TO_CART, 0.15),
    (EventType.PURCHASE, 0.13),
    (EventType.RESTOCK, 0.02),
)
_SALE_MIX = ((EventType.PAGE_VIEW, 0.50), (EventType.ADD_TO_CART, 0.20), (EventType.PURCHASE, 0.30))
_SALE_SHARE = 0.25  # share of all events about the sale product while it runs
_SALE_TRAFFIC = 1.5  # traffic multiplier while the sale runs
_YESTERDAY_SALE_HOURS = (17.0, 18.5)
_SOLD_OUT_LEVEL = 2  # the sell-out leaves this many units
_REPLENISH = 300  # what the warehouse sends when an ordinary product runs low
_REORDER_POINT = 800  # ordinary deliveries go to products with less stock than this


def _bump(hour: float, centre: float, width: float) -> float:
    distance = abs(hour - centre) % 24
    distance = min(distance, 24 - distance)
    return math.exp(-((distance / width) ** 2))


def _raw_diurnal(hour: float) -> float:
    return 0.06 + 0.25 * _bump(hour, 9.0, 1.5) + 0.5 * _bump(hour, 12.5, 2.0) + 0.95 * _bump(hour, 20.0, 2.5)


_DIURNAL_MAX = max(_raw_diurnal(minute / 60) for minute in range(24 * 60))


def diurnal(hour: float) -> float:
    """Relative traffic at an hour of the UTC day, in (0, 1]: a quiet night, a morning rise, a lunch bump and
    the evening peak around 20:00 (1.0)."""
    return _raw_diurnal(hour % 24) / _DIURNAL_MAX


def day_phase(hour: float) -> str:
    """A word for the part of the day (for progress lines)."""
    hour %= 24
    if hour < 6:
        return "night"
    if hour < 11:
        return "morning"
    if hour < 15:
        return "lunch"
    if hour < 18:
        return "afternoon"
    if hour < 22.5:
        return "evening peak"
    return "late evening"


@dataclass(frozen=True)
class DayConfig:
    """What the day looks like. Rates are events per second of the live stream at the busiest hour."""

    seed: int = 42
    products: int = 50
    users: int = 2000
    yesterday_events: int = 30_000
    live_seconds: float = 300.0
    peak_rate: float = 10.0
    opening_stock: int = 1_000
    sell_out_opening_stock: int = 250
    threshold: int = 10
    flash_sale_discount_percent: int = 40
    sell_out_restock: int = 150
    late_purchases: int = 24
    currency: str = "EUR"

    def __post_init__(self) -> None:
        if self.products < 2:
            raise ValueError(f"products must be >= 2 (a sale product and a sell-out product), got {self.products}")
        if self.users < 1 or self.yesterday_events < 0 or self.late_purchases < 0:
            raise ValueError("users must be >= 1, yesterday_events and late_purchases >= 0")
        if self.live_seconds <= 0 or self.peak_rate <= 0:
            raise ValueError(f"live_seconds and peak_rate must be > 0, got {self.live_seconds}, {self.peak_rate}")
        if not 0 < self.flash_sale_discount_percent < 100:
            raise ValueError(f"flash_sale_discount_percent must be in (0, 100), got {self.flash_sale_discount_percent}")
        safety = 3 * self.threshold + 20
        if min(self.opening_stock, self.sell_out_opening_stock) < safety or self.sell_out_restock < self.threshold:
            raise ValueError(
                f"opening_stock and sell_out_opening_stock must be at least {safety} (3 x threshold + 20), "
                f"sell_out_restock at least the threshold"
            )


@dataclass(frozen=True)
class LivePlan:
    """When the live stream's episodes happen, in seconds after its start: fixed fractions of ``seconds``,
    counted from ``begin`` (the end of the lead-in)."""

    seconds: float
    begin: float
    late_sales_at: float
    sale_start: float
    sale_end: float
    sell_out_start: float
    sell_out_end: float
    restock_at: float

    @classmethod
    def for_duration(cls, seconds: float, begin: float = 0.0) -> LivePlan:
        return cls(
            seconds=seconds,
            begin=begin,
            late_sales_at=begin + 0.10 * seconds,
            sale_start=begin + 0.15 * seconds,
            sale_end=begin + 0.45 * seconds,
            sell_out_start=begin + 0.40 * seconds,
            sell_out_end=begin + 0.55 * seconds,
            restock_at=begin + 0.75 * seconds,
        )

    @property
    def end(self) -> float:
        return self.begin + self.seconds

    def phase(self, offset: float) -> str:
        """What is going on at ``offset`` seconds (for progress lines)."""
        if offset < self.begin:
            return "lead-in"
        parts = []
        if self.sale_start <= offset < self.sale_end:
            parts.append("flash sale")
        if self.sell_out_start <= offset < self.sell_out_end:
            parts.append("sell-out running")
        elif self.sell_out_end <= offset < self.restock_at:
            parts.append("sold out")
        elif offset >= self.restock_at:
            parts.append("restocked")
        return ", ".join(parts) or "ordinary trading"


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _largest_remainder(weights: list[float], total: int) -> list[int]:
    """``total`` split over ``weights`` proportionally, in whole numbers that sum to ``total`` exactly."""
    scale = total / sum(weights)
    shares = [weight * scale for weight in weights]
    counts = [int(share) for share in shares]
    by_remainder = sorted(range(len(weights)), key=lambda i: (counts[i] - shares[i], i))
    for i in by_remainder[: total - sum(counts)]:
        counts[i] += 1
    return counts


class RetailDay:
    """The records of yesterday and of the live stream for one ``today`` (UTC), and the stock they imply."""

    def __init__(self, config: DayConfig, today: date) -> None:
        self.config = config
        self.today = today
        self.yesterday_date = today - timedelta(days=1)
        self.catalogue: list[Product] = build_catalogue(config.seed, config.products)
        rng = random.Random(f"retail-day-{config.seed}")
        ranking = list(range(len(self.catalogue)))
        rng.shuffle(ranking)
        # popularity: a long tail (Zipf-like) over a seeded ranking of the catalogue
        weights = [0.0] * len(self.catalogue)
        for rank, index in enumerate(ranking, start=1):
            weights[index] = 1.0 / rank**0.8
        self._cumulative = list(itertools.accumulate(weights))
        # the sale product is a best seller; the one that sells out a less popular item with a small stock
        self.sale_product = self.catalogue[ranking[1]]
        self.sell_out_product = self.catalogue[ranking[max(1, min(len(ranking) // 3, len(ranking) - 1))]]
        if self.sell_out_product is self.sale_product:
            self.sell_out_product = self.catalogue[ranking[0]]
        discount = Decimal(100 - config.flash_sale_discount_percent) / 100
        self.sale_price = max(
            Decimal("0.01"), (self.sale_product.unit_price * discount).quantize(Decimal("0.01"), ROUND_HALF_UP)
        )
        self.stock: dict[str, int] = {}
        # every stock change per product in event-time order: (event time, +restock / -purchase)
        self._changes: dict[str, list[tuple[datetime, int]]] = {}
        self._yesterday_stock: dict[str, int] | None = None
        self._yesterday_changes: dict[str, list[tuple[datetime, int]]] = {}
        self.plan: LivePlan | None = None  # the live stream's plan, once its lead-in is over

    # --- one event ------------------------------------------------------------------------------
    def _record(
        self,
        event_id: str,
        event_type: EventType,
        moment: datetime,
        product: Product,
        user: str | None = None,
        quantity: int | None = None,
        price: Decimal | None = None,
        kind: str = "valid",
        apply: bool = True,
    ) -> GeneratedRecord:
        event: dict[str, object] = {
            "schema_version": SCHEMA_VERSION,
            "event_id": event_id,
            "event_type": str(event_type),
            "event_time": _iso(moment),
            "user_id": user,
            "product_id": product.product_id,
            "category": product.category,
            "quantity": quantity,
            "unit_price": None,
            "currency": None,
            "order_id": None,
        }
        if event_type is EventType.PURCHASE:
            event["unit_price"] = str(price if price is not None else product.unit_price)
            event["currency"] = self.config.currency
            event["order_id"] = f"o-{event_id}"
        if apply and event_type in (EventType.RESTOCK, EventType.PURCHASE):
            delta = int(quantity or 0) if event_type is EventType.RESTOCK else -int(quantity or 0)
            self.stock[product.product_id] = self.stock.get(product.product_id, 0) + delta
            # the wire keeps milliseconds: so does the log, to compare with the speed layer's last_event_time
            at = moment.replace(microsecond=moment.microsecond // 1000 * 1000)
            self._changes.setdefault(product.product_id, []).append((at, delta))
        value = json.dumps(event, separators=(",", ":")).encode()
        return GeneratedRecord(key=product.product_id.encode(), value=value, kind=kind, event=event)

    def _user(self, rng: random.Random) -> str:
        return f"u{rng.randrange(self.config.users):05d}"

    def _pick(self, rng: random.Random, mix: tuple[tuple[EventType, float], ...]) -> EventType:
        roll = rng.random() * sum(weight for _, weight in mix)
        for event_type, weight in mix:
            roll -= weight
            if roll < 0:
                return event_type
        return mix[-1][0]

    def _safety_level(self) -> int:
        return 3 * self.config.threshold + 20

    def _ordinary(
        self, rng: random.Random, event_id: str, moment: datetime, on_sale: bool, purchasable: Callable[[str], int]
    ) -> GeneratedRecord:
        """One event of ordinary traffic. ``purchasable(product_id)`` is how many units may be bought now."""
        if on_sale and rng.random() < _SALE_SHARE:
            product, event_type = self.sale_product, self._pick(rng, _SALE_MIX)
        else:
            product = rng.choices(self.catalogue, cum_weights=self._cumulative)[0]
            event_type = self._pick(rng, _MIX)
        user = self._user(rng)
        if event_type is EventType.PAGE_VIEW:
            return self._record(event_id, event_type, moment, product, user)
        if event_type is EventType.ADD_TO_CART:
            return self._record(event_id, event_type, moment, product, user, rng.randint(1, 3))
        if event_type is EventType.RESTOCK:
            # deliveries go to products below their reorder point; the sell-out product's are part of the plan
            if product is self.sell_out_product or self.stock.get(product.product_id, 0) >= _REORDER_POINT:
                return self._record(event_id, EventType.PAGE_VIEW, moment, product, user)
            return self._record(event_id, event_type, moment, product, None, rng.randint(20, 60))
        quantity = rng.randint(1, 3)
        allowed = purchasable(product.product_id)
        if quantity > allowed:
            if product is self.sell_out_product:  # sold out: shoppers look, cannot buy
                return self._record(event_id, EventType.PAGE_VIEW, moment, product, user)
            # the warehouse restocks a product that runs low before anyone could take it under the threshold
            return self._record(event_id, EventType.RESTOCK, moment, product, None, _REPLENISH)
        price = self.sale_price if on_sale and product is self.sale_product else product.unit_price
        return self._record(event_id, EventType.PURCHASE, moment, product, user, quantity, price)

    def _above_safety(self, product_id: str) -> int:
        return self.stock.get(product_id, 0) - self._safety_level()

    # --- yesterday ------------------------------------------------------------------------------
    def yesterday(self) -> Iterator[GeneratedRecord]:
        """Opening restocks at 00:00, then ``yesterday_events`` events over the day in event-time order."""
        config = self.config
        rng = random.Random(f"yesterday-{config.seed}-{self.yesterday_date.isoformat()}")
        self.stock, self._changes = {}, {}
        midnight = datetime.combine(self.yesterday_date, time(0), tzinfo=UTC)
        tag = f"d{config.seed}-{self.yesterday_date:%Y%m%d}"
        for product in self.catalogue:
            opening = config.sell_out_opening_stock if product is self.sell_out_product else config.opening_stock
            yield self._record(f"{tag}-open-{product.product_id}", EventType.RESTOCK, midnight, product, None, opening)
        sale_from, sale_to = (int(hour * 60) for hour in _YESTERDAY_SALE_HOURS)
        weights = [
            diurnal(minute / 60) * (_SALE_TRAFFIC if sale_from <= minute < sale_to else 1.0) for minute in range(1440)
        ]
        index = 0
        for minute, count in enumerate(_largest_remainder(weights, config.yesterday_events)):
            on_sale = sale_from <= minute < sale_to
            for j in range(count):
                second = (j + rng.random()) * 60.0 / count
                moment = midnight + timedelta(minutes=minute, milliseconds=int(second * 1000))
                yield self._ordinary(rng, f"{tag}-{index:06d}", moment, on_sale, self._above_safety)
                index += 1
        self._yesterday_stock = dict(self.stock)
        self._yesterday_changes = {product: list(changes) for product, changes in self._changes.items()}

    def stock_after_yesterday(self) -> dict[str, int]:
        """Stock per product at the end of yesterday (generating yesterday once if it has not been)."""
        if self._yesterday_stock is None:
            for _ in self.yesterday():
                pass
        assert self._yesterday_stock is not None
        return dict(self._yesterday_stock)

    # --- live -----------------------------------------------------------------------------------
    def rate_at(self, moment: datetime, plan: LivePlan | None, offset: float) -> float:
        """Live events per second at ``moment`` (``offset`` seconds into the stream; no plan: the lead-in)."""
        hour = moment.hour + moment.minute / 60 + moment.second / 3600
        boost = _SALE_TRAFFIC if plan is not None and plan.sale_start <= offset < plan.sale_end else 1.0
        return self.config.peak_rate * diurnal(hour) * boost

    def schedule(self, start: datetime, plan: LivePlan, offset: float = 0.0) -> list[float]:
        """Offsets (seconds after ``start``) of the ordinary events from ``offset`` to the plan's end, at the
        diurnal rate."""
        offsets = []
        while offset < plan.end:
            offsets.append(offset)
            offset += 1.0 / self.rate_at(start + timedelta(seconds=offset), plan, offset)
        return offsets

    def live(
        self,
        start: datetime,
        observe_stock: Callable[[], Mapping[str, tuple[int, datetime | None]]] | None = None,
        lead_in: Callable[[float], bool] | None = None,
    ) -> Iterator[tuple[float, GeneratedRecord]]:
        """(offset in seconds after ``start``, record) of the live stream, in offset order; event_time is
        ``start + offset``.

        ``lead_in(offset)`` (optional): while it answers True, only ordinary trading; the episodes of the plan
        (``self.plan``, set then) start at the first offset where it answers False, and the stream ends
        ``live_seconds`` after that. The demo holds the episodes until the speed layer serves live numbers, so
        they happen on screen. ``observe_stock`` (optional) returns the real stock per product with the event time
        of the newest event it includes (None: everything so far); it is called when the flash sale and when the
        sell-out begin, and overrides the generator's own count for the products it names, plus the changes
        generated after that event time (so a lagging observer is caught up)."""
        if start.tzinfo is None:
            raise ValueError("start must be timezone-aware (UTC)")
        config = self.config
        self.plan = None
        self.stock = self.stock_after_yesterday()
        self._changes = {product: list(changes) for product, changes in self._yesterday_changes.items()}
        rng = random.Random(f"live-{config.seed}-{start.isoformat()}")
        tag = f"d{config.seed}-{start.astimezone(UTC):%Y%m%dT%H%M%S}"
        index, offset = 0, 0.0
        while lead_in is not None and lead_in(offset):
            moment = start + timedelta(seconds=offset)
            yield offset, self._ordinary(rng, f"{tag}-{index:06d}", moment, False, self._above_safety)
            index += 1
            offset += 1.0 / self.rate_at(moment, None, offset)
        plan = self.plan = LivePlan.for_duration(config.live_seconds, begin=offset)
        target = self.sell_out_product.product_id
        late_sent = sale_seen = sell_out_seen = restocked = False
        offsets = self.schedule(start, plan, offset)
        drain_slots = sum(1 for o in offsets if plan.sell_out_start <= o < plan.sell_out_end)

        def purchasable(product_id: str) -> int:
            # the sell-out product: above the safety level before the sell-out, down to the sold-out level during
            # it, nothing from its end until the restock; every other product: above the safety level
            if product_id != target or not sell_out_seen or restocked:
                return self._above_safety(product_id)
            return self.stock.get(product_id, 0) - _SOLD_OUT_LEVEL if offset < plan.sell_out_end else 0

        def resync() -> None:
            if observe_stock is None:
                return
            observed = observe_stock()
            for product in self.catalogue:
                if product.product_id in observed:
                    stock, as_of = observed[product.product_id]
                    self.stock[product.product_id] = self._catch_up(product.product_id, int(stock), as_of)

        first = index  # the lead-in's events came first
        for index, offset in enumerate(offsets, start=first):
            moment = start + timedelta(seconds=offset)
            if not late_sent and offset >= plan.late_sales_at:
                late_sent = True
                yield from ((offset, record) for record in self._late_sales(rng, tag))
            if not sale_seen and offset >= plan.sale_start:
                sale_seen = True
                resync()
            if not sell_out_seen and offset >= plan.sell_out_start:
                sell_out_seen = True
                resync()
            if not restocked and offset >= plan.restock_at:
                restocked = True
                yield offset, self._record(
                    f"{tag}-restock-{target}", EventType.RESTOCK, moment, self.sell_out_product, None,
                    config.sell_out_restock,
                )  # fmt: skip
            event_id = f"{tag}-{index:06d}"
            if sell_out_seen and offset < plan.sell_out_end:
                # the rush: enough purchases of the sell-out product, spread over the window, to leave
                # _SOLD_OUT_LEVEL units; the last slot of the window takes whatever is left
                need = self.stock.get(target, 0) - _SOLD_OUT_LEVEL
                drain_slots -= 1
                if need > 0:
                    purchases_needed = math.ceil(need / 6)
                    if drain_slots <= 0 or rng.random() < min(1.0, purchases_needed / (drain_slots + 1)):
                        quantity = min(need if drain_slots <= 0 else rng.randint(2, 10), need, MAX_QUANTITY)
                        yield (
                            offset,
                            self._record(
                                event_id, EventType.PURCHASE, moment, self.sell_out_product, self._user(rng), quantity
                            ),
                        )
                        continue
            on_sale = plan.sale_start <= offset < plan.sale_end
            yield offset, self._ordinary(rng, event_id, moment, on_sale, purchasable)

    def _catch_up(self, product_id: str, stock: int, as_of: datetime | None) -> int:
        """An observed stock that includes the product's events up to ``as_of`` (its newest event time), plus the
        changes generated after it that the observer has not applied yet (the speed layer lags a little)."""
        if as_of is None:
            return stock
        unseen = 0
        for moment, delta in reversed(self._changes.get(product_id, [])):
            if moment <= as_of:
                break
            unseen += delta
        return stock + unseen

    def _late_sales(self, rng: random.Random, tag: str) -> Iterator[GeneratedRecord]:
        """Till sales of yesterday evening (22:00-24:00) that a shop's offline tills send only now: late for the
        speed layer, counted by the batch. They do not move the stock the generator keeps (the speed layer drops
        them from its inventory once its watermark has passed them)."""
        evening = datetime.combine(self.today, time(0), tzinfo=UTC) - timedelta(hours=2)
        others = [p for p in self.catalogue if p is not self.sell_out_product]
        count = self.config.late_purchases
        for k in range(count):
            product = rng.choice(others)
            moment = evening + timedelta(seconds=(k + rng.random()) * 7200 / max(count, 1))
            yield self._record(
                f"{tag}-late-{k:03d}", EventType.PURCHASE, moment, product, self._user(rng), rng.randint(1, 2),
                kind="late", apply=False,
            )  # fmt: skip
