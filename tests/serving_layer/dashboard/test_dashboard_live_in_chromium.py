"""The dashboard in real headless Chromium on real Delta tables: the merged revenue figure, then a new purchase.

The page reads batch rows before W and speed rows after it; the test checks the revenue total (the exact decimal
shown next to the graph, and the sum of the graph's own bars) and that it moves when a purchase arrives.
It runs twice: with purchases MERGEd into the speed view the way the speed layer writes them (no broker), and,
marked integration, produced to the real Kafka broker and processed by the real speed layer (available_now).
Screenshots go to test-artifacts/ (gitignored).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest
from deltalake import DeltaTable

from contracts.settings import PROJECT_ROOT, Settings
from serving_layer.dashboard import ids
from serving_layer.dashboard.app import create_app
from serving_layer.service import ServingLayer
from tests.conftest import free_port
from tests.serving_layer.lake_builder import Event, LakeBuilder, purchase, view

pytestmark = pytest.mark.browser

ARTIFACTS = PROJECT_ROOT / "test-artifacts"
_GRAPH_BARS = """
const graph = document.querySelector('#%s .js-plotly-plot');
if (!graph || !graph.data) { return null; }
return graph.data.map(trace => ({name: trace.name, colour: trace.marker && trace.marker.color, y: trace.y || []}));
"""


class Shop:
    """Two hours of sales ending now; W one to two hours back; the speed layer missed one late purchase."""

    def __init__(self, now: datetime) -> None:
        self.now = now
        self.w = now.replace(minute=0, second=0, microsecond=0) - timedelta(hours=1)
        products = [("p-01", "toys"), ("p-02", "books"), ("p-03", "garden"), ("p-04", "toys")]
        self.events: list[Event] = []
        for n, minutes_ago in enumerate(range(120, 2, -7)):
            product, category = products[n % len(products)]
            moment = now - timedelta(minutes=minutes_ago, seconds=n % 50)
            self.events.append(purchase(n, moment, f"u{n % 9}", product, category, 1 + n % 3, f"{3 + n}.{n % 100:02d}"))
            self.events.append(view(1000 + n, moment, f"u{(n + 4) % 11}", product, category))
        before_w = [e for e in self.events if e.event_time < self.w]
        self.late = purchase(5000, before_w[-1].event_time, "u-late", "p-02", "books", 1, "42.00")
        self.speed_events = list(self.events)
        self.batch_events = [*before_w, self.late]

    def revenue_after(self, start: datetime) -> Decimal:
        """Revenue the page should show from ``start`` on: batch figures before W, speed figures from W."""
        batch = sum((e.quantity * e.unit_price for e in self.batch_events if start <= e.event_time < self.w
                     and e.event_type == "purchase"), Decimal("0.00"))  # fmt: skip
        speed = sum((e.quantity * e.unit_price for e in self.speed_events if e.event_time >= self.w
                     and e.event_type == "purchase"), Decimal("0.00"))  # fmt: skip
        return batch + speed


class DeltaMergeChannel:
    """Speed rows arrive as the speed layer's rollup query writes them: the recomputed minute buckets MERGEd into
    speed/sales_minute (update mode: changed buckets replace their rows). Needs no broker."""

    def __init__(self, builder: LakeBuilder) -> None:
        self.builder = builder
        self.sent: list[Event] = []

    def send(self, events: list[Event]) -> None:
        self.sent += events
        self.builder.merge_speed_minutes(self.sent)


class KafkaSpeedLayerChannel:
    """Speed rows arrive the real way: events produced to Kafka, then the speed layer runs once (available_now)."""

    def __init__(self, spark, settings: Settings) -> None:  # type: ignore[no-untyped-def]
        self.spark = spark
        self.settings = settings

    def send(self, events: list[Event]) -> None:
        from event_generator.generator import GeneratedRecord, produce
        from speed_layer.job import SpeedLayer

        produce([GeneratedRecord(e.product_id.encode(), json.dumps(_contract(e)).encode(), "valid") for e in events],
                self.settings)  # fmt: skip
        SpeedLayer(self.spark, self.settings, available_now=True).drain()


def _contract(event: Event) -> dict[str, object]:
    is_purchase = event.event_type == "purchase"
    return {
        "schema_version": 1,
        "event_id": event.event_id,
        "event_type": event.event_type,
        "event_time": event.event_time.isoformat().replace("+00:00", "Z"),
        "user_id": event.user_id,
        "product_id": event.product_id,
        "category": event.category,
        "quantity": event.quantity,
        "unit_price": str(event.unit_price) if is_purchase else None,
        "currency": "EUR" if is_purchase else None,
        "order_id": f"o-{event.event_id}" if is_purchase else None,
    }


@pytest.fixture(params=["delta", pytest.param("kafka", marks=pytest.mark.integration)])
def channel(request, spark, settings: Settings, test_root: Path):  # type: ignore[no-untyped-def]
    """How purchases reach the speed view: "delta" (a MERGE written like the speed layer's, no broker) or
    "kafka" (the real broker and the real speed layer). The test body is the same for both."""
    lake_root = str(test_root / f"dashboard_{request.param}" / "lake")
    builder = LakeBuilder(spark, lake_root)
    if request.param == "delta":
        return builder, DeltaMergeChannel(builder)
    kafka = request.getfixturevalue("kafka")
    run_settings = settings.model_copy(
        update={
            "events_topic": "dashboard.events",
            "alerts_topic": "dashboard.alerts",
            "speed_sales_topic": "dashboard.speed.sales",
            "speed_inventory_topic": "dashboard.speed.inventory",
            "lake_root": lake_root,
            "checkpoint_root": str(test_root / "dashboard_kafka" / "checkpoints"),
            "speed_watermark": "3 hours",  # the shop's first events are two hours old
        }
    )
    kafka.ensure_topics({run_settings.events_topic: 3, run_settings.alerts_topic: 1})
    return builder, KafkaSpeedLayerChannel(spark, run_settings)


@pytest.fixture
def shop_lake(channel) -> tuple[Shop, LakeBuilder, object]:  # type: ignore[no-untyped-def]
    builder, speed = channel
    shop = Shop(datetime.now(UTC))
    if isinstance(speed, DeltaMergeChannel):
        # the broker-free channel has no inventory query: give the stock panel rows of its own
        builder.overwrite(
            "speed/inventory",
            [
                {"product_id": p, "stock": stock, "threshold": 10, "below_threshold": stock < 10,
                 "last_event_time": shop.now, "updated_at": shop.now}
                for p, stock in (("p-01", 4), ("p-02", 25), ("p-03", 60), ("p-04", 9))
            ],
        )  # fmt: skip
        builder.overwrite(
            "speed/alerts",
            [
                {"alert_id": f"low-{p}", "product_id": p, "kind": "low_stock", "stock_at_open": 9, "threshold": 10,
                 "opened_at": shop.now - timedelta(minutes=20), "resolved_at": None}
                for p in ("p-01", "p-04")
            ],
        )  # fmt: skip
    speed.send(shop.speed_events)
    builder.write_batch(shop.batch_events, "run-dashboard", (shop.w - timedelta(days=1), shop.w), shop.w)
    return shop, builder, speed


@pytest.fixture
def deliver_purchase(shop_lake) -> Callable[[Event], None]:  # type: ignore[no-untyped-def]
    """Deliver one new purchase through the test's channel (see ``channel``)."""
    shop, _, speed = shop_lake

    def deliver(event: Event) -> None:
        shop.speed_events.append(event)
        speed.send([event])

    return deliver


def _graph_total(dash_duo) -> Decimal | None:  # type: ignore[no-untyped-def]
    traces = dash_duo.driver.execute_script(_GRAPH_BARS % ids.REVENUE_GRAPH)
    if not traces:
        return None
    return sum((Decimal(str(v)) for t in traces for v in t["y"]), Decimal("0.00")).quantize(Decimal("0.01"))


def _wait_for_graph_total(dash_duo, expected: Decimal, timeout: float = 30) -> None:  # type: ignore[no-untyped-def]
    from dash.testing.wait import until

    until(lambda: _graph_total(dash_duo) == expected, timeout=timeout)


def test_dashboard_shows_merged_revenue_and_follows_a_new_purchase(
    dash_duo,
    shop_lake,
    deliver_purchase,
    settings: Settings,  # type: ignore[no-untyped-def]
) -> None:
    shop, builder, speed = shop_lake
    shot = f"dashboard-{'kafka' if isinstance(speed, KafkaSpeedLayerChannel) else 'delta'}"
    ARTIFACTS.mkdir(exist_ok=True)
    app = create_app(ServingLayer(builder.lake.root), settings.model_copy(update={"dashboard_refresh_seconds": 2.0}))
    dash_duo.start_server(app, port=free_port())
    dash_duo.driver.set_window_size(1440, 1300)  # the whole page in the screenshots

    window_start = shop.now.replace(second=0, microsecond=0) + timedelta(minutes=1) - timedelta(minutes=180)
    expected = shop.revenue_after(window_start)
    dash_duo.wait_for_text_to_equal(f"#{ids.REVENUE_TOTAL}", str(expected), timeout=60)
    _wait_for_graph_total(dash_duo, expected)
    traces = dash_duo.driver.execute_script(_GRAPH_BARS % ids.REVENUE_GRAPH)
    assert [(t["name"], t["colour"]) for t in traces] == [
        ("batch (final)", "#1f3b73"),
        ("speed (provisional)", "#f28e2b"),
    ]
    assert all(len(t["y"]) > 0 for t in traces)  # both sides of W are on screen
    low_stock = DeltaTable(builder.lake.table("speed/inventory")).to_pandas()["below_threshold"].sum()
    assert low_stock >= 1
    dash_duo.wait_for_text_to_equal(f"#{ids.LOW_STOCK_COUNT}", str(low_stock), timeout=30)
    dash_duo.wait_for_contains_text(f"#{ids.RECONCILIATION_SUMMARY}", "buckets compared", timeout=30)
    dash_duo.driver.save_screenshot(str(ARTIFACTS / f"{shot}-before-purchase.png"))

    new_purchase = purchase(9000, datetime.now(UTC), "u-new", "p-03", "garden", 2, "19.99")
    deliver_purchase(new_purchase)
    dash_duo.wait_for_text_to_equal(f"#{ids.REVENUE_TOTAL}", str(expected + Decimal("39.98")), timeout=60)
    _wait_for_graph_total(dash_duo, expected + Decimal("39.98"))
    dash_duo.driver.save_screenshot(str(ARTIFACTS / f"{shot}-after-purchase.png"))
    assert dash_duo.get_logs() == [], "the browser console reported errors"
