"""The project's exception hierarchy: one base class, one subclass per concern."""

from __future__ import annotations

__all__ = ["RetailError", "ConfigError", "SetupError"]


class RetailError(Exception):
    """Base class of every error this project raises on purpose."""


class ConfigError(RetailError):
    """A setting has a value the pipeline cannot use (the message names the setting)."""


class SetupError(RetailError):
    """Something `make setup` should have installed is missing (a jar, Java, the venv)."""
