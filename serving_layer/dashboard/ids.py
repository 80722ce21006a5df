"""Every component id of the dashboard, in one place (layout, callbacks and browser tests import these)."""

from __future__ import annotations

INTERVAL = "refresh-interval"
WINDOW = "window-minutes"
LAST_REFRESH = "last-refresh"
HIGH_WATER_MARK = "high-water-mark"

REVENUE_TOTAL = "revenue-total"
ORDERS_TOTAL = "orders-total"
UNITS_TOTAL = "units-total"
TREND_NOW = "trend-now"
FRESHNESS = "freshness"

REVENUE_GRAPH = "revenue-graph"
TREND_GRAPH = "trend-graph"
TOP_PRODUCTS_GRAPH = "top-products-graph"

INVENTORY_TABLE = "inventory-table"
LOW_STOCK_COUNT = "low-stock-count"
ALERTS_LIST = "alerts-list"

HEALTH_PANEL = "health-panel"
RECONCILIATION_GRAPH = "reconciliation-graph"
RECONCILIATION_SUMMARY = "reconciliation-summary"
