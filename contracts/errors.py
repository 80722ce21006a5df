"""The project's exception hierarchy: one base class, one subclass per concern."""

from __future__ import annotations

__all__ = ["RetailError", "ConfigError", "SetupError", "ContractError"]


class RetailError(Exception):
    """Base class of every error this project raises on purpose."""


class ConfigError(RetailError):
    """A setting has a value the pipeline cannot use (the message names the setting)."""


class SetupError(RetailError):
    """Something `make setup` should have installed is missing (a jar, Java, the venv)."""


class ContractError(RetailError):
    """An argument does not fit the event contract (docs/design.md)."""
