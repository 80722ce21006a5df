"""The demo's retailer's day (event_generator.retail_day), without Kafka: deterministic records in the event
contract, a diurnal shape, a flash sale, and a stock that only the planned product takes below the threshold."""

from __future__ import annotations

import json
from collections import Counter
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

import pytest

from contracts.events import EVENT_FIELDS, MAX_QUANTITY, EventType
from event_generator.generator import build_catalogue
from event_generator.retail_day import DayConfig, LivePlan, RetailDay, diurnal

TODAY = date(2026, 11, 26)
START = datetime(2026, 11, 26, 11, 5, 7, tzinfo=UTC)
SMALL = DayConfig(seed=7, yesterday_events=6000, live_seconds=120, peak_rate=8)


def _events(records) -> list[dict]:  # type: ignore[no-untyped-def]
    return [json.loads(record.value) for record in records]


def _time(event: dict) -> datetime:
    return datetime.fromisoformat(str(event["event_time"]).replace("Z", "+00:00"))


def _play(config: DayConfig = SMALL, **live_options):  # type: ignore[no-untyped-def]
    day = RetailDay(config, TODAY)
    yesterday = list(day.yesterday())
    live = list(day.live(START, **live_options))
    return day, yesterday, live


def test_same_seed_and_start_give_the_same_records() -> None:
    _, yesterday, live = _play()
    _, yesterday_again, live_again = _play()
    assert yesterday == yesterday_again and live == live_again
    _, other, _ = _play(DayConfig(seed=8, yesterday_events=6000, live_seconds=120, peak_rate=8))
    assert [r.value for r in other] != [r.value for r in yesterday]


def test_records_follow_the_event_contract() -> None:
    day, yesterday, live = _play()
    records = yesterday + [record for _, record in live]
    events = _events(records)
    assert len({e["event_id"] for e in events}) == len(events)  # unique ids, also across yesterday and today
    catalogue = {p.product_id: p for p in build_catalogue(SMALL.seed, SMALL.products)}
    for record, event in zip(records, events, strict=True):
        assert tuple(event) == EVENT_FIELDS
        assert record.key == str(event["product_id"]).encode()
        assert event["category"] == catalogue[event["product_id"]].category
        kind = EventType(event["event_type"])
        assert (event["user_id"] is None) == (kind is EventType.RESTOCK)
        if kind is EventType.PAGE_VIEW:
            assert event["quantity"] is None
        else:
            assert 1 <= int(event["quantity"]) <= MAX_QUANTITY
        if kind is EventType.PURCHASE:
            price = Decimal(str(event["unit_price"]))
            assert price == price.quantize(Decimal("0.01")) and 0 < price <= 1_000_000
            assert event["order_id"] and event["currency"] == "EUR"
        else:
            assert event["unit_price"] is None and event["order_id"] is None


def test_yesterday_is_one_day_in_event_time_order_with_opening_restocks_first() -> None:
    day, yesterday, _ = _play()
    events = _events(yesterday)
    assert len(events) == SMALL.yesterday_events + SMALL.products
    opening = events[: SMALL.products]
    assert {e["event_type"] for e in opening} == {"restock"}
    assert {e["product_id"] for e in opening} == {p.product_id for p in day.catalogue}
    times = [_time(e) for e in events]
    assert times == sorted(times)
    midnight = datetime(2026, 11, 25, tzinfo=UTC)
    assert midnight <= times[0] and times[-1] < midnight + timedelta(days=1)


def test_traffic_follows_the_day() -> None:
    _, yesterday, _ = _play()
    per_hour = Counter(_time(e).hour for e in _events(yesterday))
    assert per_hour[4] < per_hour[12] < per_hour[20]  # quiet night, lunch, evening peak
    assert per_hour[20] > 5 * per_hour[4]
    assert diurnal(20.0) == pytest.approx(1.0, abs=0.01) and diurnal(4.0) < 0.15
    day = RetailDay(SMALL, TODAY)
    evening, night = START.replace(hour=20), START.replace(hour=4)
    assert day.rate_at(evening, None, 0) > 5 * day.rate_at(night, None, 0)


def test_the_flash_sale_cuts_the_price_and_its_purchases_surge() -> None:
    day, yesterday, live = _play()
    sale = day.sale_product.product_id
    assert day.sale_price == (day.sale_product.unit_price * Decimal("0.6")).quantize(Decimal("0.01"))
    plan = day.plan
    assert plan is not None
    buys = [(offset, json.loads(r.value)) for offset, r in live]
    buys = [(o, e) for o, e in buys if e["event_type"] == "purchase" and e["product_id"] == sale]
    during = [e for o, e in buys if plan.sale_start <= o < plan.sale_end]
    outside = [e for o, e in buys if not plan.sale_start <= o < plan.sale_end]
    assert {Decimal(e["unit_price"]) for e in during} == {day.sale_price}
    assert {Decimal(e["unit_price"]) for e in outside} <= {day.sale_product.unit_price}
    sale_seconds = plan.sale_end - plan.sale_start
    assert len(during) / sale_seconds > 4 * max(len(outside), 1) / (plan.seconds - sale_seconds)
    # yesterday's sale hour and a half: the same price cut
    evening = [e for e in _events(yesterday) if e["event_type"] == "purchase" and e["product_id"] == sale]
    in_sale = [e for e in evening if 17 * 60 <= _time(e).hour * 60 + _time(e).minute < 18 * 60 + 30]
    assert in_sale and {Decimal(e["unit_price"]) for e in in_sale} == {day.sale_price}


def _stock_history(records_with_offsets):  # type: ignore[no-untyped-def]
    """Restocks minus purchases per product, replayed in order: (offset, product, stock) after every change."""
    stock: Counter[str] = Counter()
    history = []
    for offset, record in records_with_offsets:
        if record.kind == "late":
            continue
        event = json.loads(record.value)
        if event["event_type"] == "restock":
            stock[event["product_id"]] += event["quantity"]
        elif event["event_type"] == "purchase":
            stock[event["product_id"]] -= event["quantity"]
        else:
            continue
        history.append((offset, event["product_id"], stock[event["product_id"]]))
    return history


def test_only_the_planned_product_sells_out_once_and_is_restocked() -> None:
    day, yesterday, live = _play()
    threshold = SMALL.threshold
    target = day.sell_out_product.product_id
    history = _stock_history([(None, r) for r in yesterday] + live)
    assert all(stock >= threshold for _, product, stock in history if product != target)
    below = [offset for offset, product, stock in history if product == target and stock < threshold]
    plan = day.plan
    assert plan is not None and below, "the planned product never sold out"
    assert plan.sell_out_start <= below[0] < plan.sell_out_end
    assert all(offset < plan.restock_at for offset in below)
    target_rows = [(offset, stock) for offset, product, stock in history if product == target]
    lowest = min(stock for _, stock in target_rows)
    assert 0 <= lowest < threshold  # sold out, never negative
    crossings = sum(
        1 for (_, before), (_, after) in zip(target_rows, target_rows[1:], strict=False) if before >= threshold > after
    )
    assert crossings == 1  # one alert
    assert target_rows[-1][1] >= threshold  # restocked: the alert resolves


def test_the_episodes_wait_for_the_lead_in() -> None:
    day, _, live = _play(lead_in=lambda offset: offset < 30.0)
    plan = day.plan
    assert plan is not None and 30.0 <= plan.begin < 31.0
    assert plan == LivePlan.for_duration(SMALL.live_seconds, begin=plan.begin)
    assert plan.end - 1 < live[-1][0] < plan.end
    sale = day.sale_product.product_id
    early = [json.loads(r.value) for offset, r in live if offset < plan.begin]
    assert early and not [e for e in early if e["product_id"] == sale and e["unit_price"] == str(day.sale_price)]
    assert all(r.kind != "late" for offset, r in live if offset < plan.begin)
    offsets = [offset for offset, _ in live]
    assert offsets == sorted(offsets)
    # event_time = start + offset, to the millisecond the wire format keeps
    gaps = [_time(json.loads(r.value)) - (START + timedelta(seconds=o)) for o, r in live if r.kind != "late"]
    assert all(abs(gap) < timedelta(milliseconds=1) for gap in gaps)


def _bought_in_sell_out(day: RetailDay, live) -> int:  # type: ignore[no-untyped-def]
    plan, target = day.plan, day.sell_out_product.product_id
    assert plan is not None
    events = [json.loads(r.value) for offset, r in live if plan.sell_out_start <= offset < plan.restock_at]
    return sum(e["quantity"] for e in events if e["product_id"] == target and e["event_type"] == "purchase")


def test_the_sell_out_starts_from_the_observed_stock() -> None:
    """A lake with earlier runs: the stock the speed layer serves wins over the generator's own count."""
    asked = []
    day = RetailDay(SMALL, TODAY)
    target = day.sell_out_product.product_id

    def observe() -> dict[str, tuple[int, datetime | None]]:
        asked.append(True)
        return {target: (400, None)}  # None: the observation includes everything generated so far

    live = list(day.live(START, observe_stock=observe))
    assert len(asked) == 2  # at the flash sale and at the sell-out
    assert _bought_in_sell_out(day, live) == 400 - 2


def test_a_lagging_observation_is_caught_up_with_what_came_after_it() -> None:
    """The speed layer serves the stock as of its newest applied event; what was generated after that is added,
    so the sell-out still ends at 2 units (an observer minutes behind would otherwise make the stock negative)."""
    day = RetailDay(SMALL, TODAY)
    target = day.sell_out_product.product_id

    def change(event: dict) -> int:
        return int(event["quantity"]) * (1 if event["event_type"] == "restock" else -1)

    moves = ("restock", "purchase")
    ours = [
        (_time(e), change(e))
        for e in _events(day.yesterday())
        if e["product_id"] == target and e["event_type"] in moves
    ]
    as_of = datetime(2026, 11, 25, 21, 0, tzinfo=UTC)  # the observer has applied yesterday up to 21:00 only
    seen = sum(delta for moment, delta in ours if moment <= as_of)
    # an earlier run left 500 units more than this day's own count
    live = list(day.live(START, observe_stock=lambda: {target: (seen + 500, as_of)}))
    stock = lowest = sum(delta for _, delta in ours) + 500
    for _, record in live:
        event = json.loads(record.value)
        if record.kind != "late" and event["product_id"] == target and event["event_type"] in moves:
            stock += change(event)
            lowest = min(lowest, stock)
    assert lowest == 2  # sold out as planned, never negative
    assert stock >= SMALL.threshold  # and restocked


def test_late_till_sales_belong_to_yesterday_evening() -> None:
    day, _, live = _play()
    late = [json.loads(r.value) for _, r in live if r.kind == "late"]
    assert len(late) == SMALL.late_purchases
    assert {e["event_type"] for e in late} == {"purchase"}
    midnight = datetime(2026, 11, 26, tzinfo=UTC)
    assert all(midnight - timedelta(hours=2) <= _time(e) < midnight for e in late)
    assert day.sell_out_product.product_id not in {e["product_id"] for e in late}


@pytest.mark.parametrize(
    "changes",
    [
        {"products": 1},
        {"live_seconds": 0},
        {"peak_rate": -1},
        {"opening_stock": 20},
        {"flash_sale_discount_percent": 0},
    ],
)
def test_impossible_days_are_refused(changes: dict) -> None:
    with pytest.raises(ValueError):
        DayConfig(**changes)
