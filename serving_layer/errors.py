"""Exceptions of the serving layer (subclasses of the project's RetailError)."""

from __future__ import annotations

from contracts.errors import RetailError

__all__ = ["ServingError", "BadRequest", "ViewUnreadable"]


class ServingError(RetailError):
    """Base class of every error the serving layer raises on purpose."""


class BadRequest(ServingError, ValueError):
    """A query parameter is missing or malformed; the message names the parameter and what was expected."""


class ViewUnreadable(ServingError):
    """A Delta view exists but cannot be read (protocol, schema); the message names the table."""
