"""The event contract of docs/design.md, in one place for the generator and all layers (plain Python: the
serving layer imports it without a JVM)."""

from __future__ import annotations

from enum import StrEnum

__all__ = [
    "SCHEMA_VERSION",
    "EventType",
    "EVENT_FIELDS",
    "EVENT_FIELD_TYPES",
    "MONEY_PRECISION",
    "MONEY_SCALE",
    "MONEY_TYPE",
]

SCHEMA_VERSION = 1

# money is DECIMAL(18,2) everywhere, never float
MONEY_PRECISION = 18
MONEY_SCALE = 2
MONEY_TYPE = f"decimal({MONEY_PRECISION},{MONEY_SCALE})"


class EventType(StrEnum):
    PAGE_VIEW = "page_view"
    ADD_TO_CART = "add_to_cart"
    PURCHASE = "purchase"
    RESTOCK = "restock"


# The one list of an event's fields, in contract order, with the Spark type each has once parsed. The bronze
# table's columns (contracts.tables) and the parser's raw JSON schema are both derived from it.
EVENT_FIELD_TYPES: dict[str, str] = {
    "schema_version": "int",
    "event_id": "string",
    "event_type": "string",
    "event_time": "timestamp",
    "user_id": "string",
    "product_id": "string",
    "category": "string",
    "quantity": "int",
    "unit_price": MONEY_TYPE,
    "currency": "string",
    "order_id": "string",
}
EVENT_FIELDS: tuple[str, ...] = tuple(EVENT_FIELD_TYPES)
