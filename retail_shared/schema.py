"""The event contract of ../shared/DESIGN.md, in one place for the generator and both layers."""

from __future__ import annotations

from enum import StrEnum

from pyspark.sql.types import StringType, StructField, StructType

__all__ = [
    "SCHEMA_VERSION",
    "EventType",
    "EVENT_FIELDS",
    "RAW_EVENT_SCHEMA",
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


# the JSON fields of an event, in contract order
EVENT_FIELDS: tuple[str, ...] = (
    "schema_version",
    "event_id",
    "event_type",
    "event_time",
    "user_id",
    "product_id",
    "category",
    "quantity",
    "unit_price",
    "currency",
    "order_id",
)

# Every field is read as a string first: from_json keeps a JSON number's text for a string field, so a price
# like 19.99 arrives exactly as "19.99", and typing happens afterwards with functions that return null
# instead of raising (ANSI mode), which lets a bad value be classified rather than crash the query.
RAW_EVENT_SCHEMA = StructType([StructField(name, StringType(), nullable=True) for name in EVENT_FIELDS])
