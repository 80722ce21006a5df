"""What the dashboard shows, fetched from the ServingLayer's Python query functions as pandas DataFrames.

The dashboard runs in the same process as its ServingLayer (no HTTP hop): one Delta read path, its caches shared by
every callback. Nothing here builds figures or reads settings; callbacks call these functions on every refresh.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from serving_layer.service import ServingLayer
from serving_layer.views import TIMESTAMP, floor_to_grain, rolling_sums

__all__ = ["SalesWindow", "TREND_MINUTES", "alerts", "health", "inventory", "reconciliation", "sales_window"]

TREND_MINUTES = 5
RECONCILIATION_SPAN = timedelta(hours=24)


@dataclass(frozen=True)
class SalesWindow:
    """Merged minute sales of the last ``minutes`` minutes (the current minute included) and their trend."""

    start: datetime
    end: datetime
    high_water_mark: datetime | None
    minutes: pd.DataFrame  # bucket_start, revenue (Decimal), orders, units, distinct_users, source
    trend: pd.DataFrame  # bucket_start, revenue (Decimal), orders, units: sums over the trailing 5 minutes
    top_products: pd.DataFrame  # key, revenue (Decimal), orders, units: best first
    revenue: Decimal
    orders: int
    units: int


def sales_window(serving: ServingLayer, now: datetime, minutes: int, top: int = 10) -> SalesWindow:
    """Minute sales in [now's minute − minutes + 1, now's minute], the 5-minute trend and the top products."""
    end = floor_to_grain(now, "minute") + timedelta(minutes=1)
    start = end - timedelta(minutes=minutes)
    # the trend at the window's first minute needs the 4 minutes before it
    merged = serving.sales(start - timedelta(minutes=TREND_MINUTES - 1), end, "minute")
    trend = rolling_sums(merged.rows, start, end, window_minutes=TREND_MINUTES)
    shown = merged.rows.filter(pc.greater_equal(merged.rows["bucket_start"], pa.scalar(start, TIMESTAMP)))
    revenue = sum(shown["revenue"].to_pylist(), Decimal("0.00"))
    return SalesWindow(
        start=start,
        end=end,
        high_water_mark=merged.high_water_mark,
        minutes=shown.to_pandas(),
        trend=trend.to_pandas(),
        top_products=serving.top_products(start, end, limit=top).to_pandas(),
        revenue=revenue,
        orders=int(pc.sum(shown["orders"]).as_py() or 0),
        units=int(pc.sum(shown["units"]).as_py() or 0),
    )


def inventory(serving: ServingLayer) -> pd.DataFrame:
    """speed/inventory, low stock first."""
    return serving.inventory().to_pandas()


def alerts(serving: ServingLayer) -> pd.DataFrame:
    """Open alerts and those of the last 24 hours, open first."""
    return serving.alerts().to_pandas()


def health(serving: ServingLayer) -> dict[str, Any]:
    """The serving layer's health dictionary (see ServingLayer.health)."""
    return serving.health()


def reconciliation(serving: ServingLayer, high_water_mark: datetime | None) -> pd.DataFrame:
    """Speed vs batch per hour over the 24 hours before W (empty with no W)."""
    if high_water_mark is None:
        return serving.reconciliation(serving.now(), serving.now() + timedelta(hours=1)).to_pandas()
    return serving.reconciliation(high_water_mark - RECONCILIATION_SPAN, high_water_mark, "hour").to_pandas()
