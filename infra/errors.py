"""Errors of the local stack (all subclasses of the project's RetailError)."""

from __future__ import annotations

from contracts.errors import RetailError

__all__ = ["BrokerError", "AirflowServiceError"]


class BrokerError(RetailError):
    """The Kafka broker could not be started, reached or stopped, or did not acknowledge a record."""


class AirflowServiceError(RetailError):
    """The local Airflow services could not be started, reached or stopped."""
