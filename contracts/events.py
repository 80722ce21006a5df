"""The event contract of docs/design.md, in one place for the generator and all layers (plain Python: the
serving layer imports it without a JVM)."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from enum import StrEnum

__all__ = [
    "SCHEMA_VERSION",
    "EventType",
    "EVENT_FIELDS",
    "EVENT_FIELD_TYPES",
    "MONEY_PRECISION",
    "MONEY_SCALE",
    "MONEY_TYPE",
    "MAX_QUANTITY",
    "MAX_UNIT_PRICE",
    "MAX_LINE_REVENUE",
    "MAX_MONEY",
    "MIN_EVENT_TIME",
    "DEFAULT_MAX_EVENT_TIME_SKEW_SECONDS",
    "MAX_EVENT_TIME_SKEW_SECONDS",
    "MAX_TEXT_LENGTH",
    "TEXT_FIELDS",
    "MAX_RECORD_BYTES",
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


# --- Bounded domains ------------------------------------------------------------------------------------------
# Every numeric and time field has limits chosen so that no later expression can overflow (docs/design.md,
# "Event contract"). The arithmetic:
#
#   line revenue = quantity × unit_price <= 10,000 × 1,000,000.00 = 10^10 (11 integer digits);
#   DECIMAL(18,2) holds up to 10^16 - 0.01, so one line always fits. The product itself is computed as
#   DECIMAL(10,0) × DECIMAL(18,2) = DECIMAL(29,2), which no int quantity and no DECIMAL(18,2) price overflows.
#
#   bucket revenue: Spark sums DECIMAL(18,2) into DECIMAL(28,2); that sum would need more than 10^18 maximal
#   lines to overflow (at 10^6 purchases/s, 30,000 years), so the sum itself never overflows. Narrowing it to
#   the tables' DECIMAL(18,2) holds 999,999 maximal lines per bucket: about 16,600 maximal purchases per second
#   on one key for a whole minute, 277 per second for an hour, only 11.5 per second for a whole day. No finite
#   rate bound can be promised, so the narrowing is a try_cast (contracts.metrics): an overflowing bucket gets a
#   NULL revenue instead of an exception, and the batch view suite (revenue not null) refuses to publish it.
#
#   bucket units = sum(quantity) into bigint (max 9.2 × 10^18): even 10^9 maximal lines per second for a whole
#   day give 8.64 × 10^13 lines × 10^4 = 8.64 × 10^17 units, a tenth of the bigint max; orders = count(*).
#
#   event_time in [2000-01-01T00:00:00Z, ingest time + skew]: bucket arithmetic (window starts, dates) stays far
#   inside Spark's timestamp range, and a record from the future cannot drag the speed layer's watermark ahead.
MAX_QUANTITY = 10_000
"""Largest quantity of one add_to_cart, purchase or restock (quantities are integers in [1, MAX_QUANTITY])."""
MAX_UNIT_PRICE = Decimal("1000000.00")
"""Largest unit_price of a purchase (prices are decimals in [0.00, MAX_UNIT_PRICE] with at most 2 places)."""
MAX_LINE_REVENUE = MAX_QUANTITY * MAX_UNIT_PRICE
"""Largest revenue of one purchase line: 10^10."""
MAX_MONEY = Decimal(10 ** (MONEY_PRECISION - MONEY_SCALE)) - Decimal(1).scaleb(-MONEY_SCALE)
"""Largest value of DECIMAL(18,2): 9,999,999,999,999,999.99."""
MIN_EVENT_TIME = datetime(2000, 1, 1, tzinfo=UTC)
"""Earliest event_time accepted."""
DEFAULT_MAX_EVENT_TIME_SKEW_SECONDS = 300
"""How far past the ingest time an event_time may lie (producer clock skew), by default."""
MAX_EVENT_TIME_SKEW_SECONDS = 86_400
"""Largest skew a deployment may configure (one day)."""
MAX_TEXT_LENGTH = 128
"""Longest id, category or currency accepted, in characters (after trimming)."""
TEXT_FIELDS: tuple[str, ...] = ("event_id", "user_id", "product_id", "category", "currency", "order_id")
"""The free-text fields: each must be a JSON string of at most MAX_TEXT_LENGTH characters."""
DEFAULT_CURRENCY = "EUR"
"""The deployment's one currency unless RETAIL_CURRENCY says otherwise: every view and label is in it."""
CURRENCY_PATTERN = r"^[A-Z]{3}$"
"""What RETAIL_CURRENCY must look like (an ISO 4217 code)."""
MAX_RECORD_BYTES = 64 * 1024
"""Largest Kafka record value accepted (bytes); larger ones are quarantined unparsed."""
