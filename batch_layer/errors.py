"""Errors of the batch layer (all subclasses of the project's RetailError)."""

from __future__ import annotations

from contracts.errors import RetailError

__all__ = ["BatchError", "ValidationFailed"]


class BatchError(RetailError):
    """A batch run cannot go on (missing input, a step run out of order, a bad argument)."""


class ValidationFailed(BatchError):
    """A data-quality suite failed: the run stops and the high-water mark stays where it was."""

    def __init__(self, suite: str, report_uri: str, failed: list[str]) -> None:
        self.suite = suite
        self.report_uri = report_uri
        self.failed = failed
        super().__init__(f"validation suite {suite!r} failed ({', '.join(failed)}); report: {report_uri}")
