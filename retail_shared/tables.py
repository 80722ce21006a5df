"""Where every Delta table and checkpoint lives, under the lake root (names fixed by ../shared/DESIGN.md)."""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["TABLE_NAMES", "Lake"]

TABLE_NAMES: tuple[str, ...] = (
    "bronze/events",
    "bronze/quarantine",
    "speed/sales_minute",
    "speed/inventory",
    "speed/alerts",
    "speed/progress",
    "batch/sales_minute",
    "batch/sales_hour",
    "batch/sales_day",
    "batch/runs",
)


def _join(root: str, name: str) -> str:
    # lake roots may be URIs (s3a://bucket/prefix), so join as strings, not pathlib paths
    return f"{root.rstrip('/')}/{name}"


@dataclass(frozen=True)
class Lake:
    """Table and checkpoint locations derived from two roots.

    Example::

        lake = Lake(root="var/lake", checkpoints="var/checkpoints")
        lake.bronze_events            # 'var/lake/bronze/events'
        lake.checkpoint("bronze")     # 'var/checkpoints/bronze'
    """

    root: str
    checkpoints: str

    def table(self, name: str) -> str:
        """Location of the table called ``name`` (one of TABLE_NAMES)."""
        if name not in TABLE_NAMES:
            raise ValueError(f"table name must be one of {TABLE_NAMES}, got {name!r}")
        return _join(self.root, name)

    def checkpoint(self, query: str) -> str:
        """Checkpoint folder of the streaming query called ``query``."""
        if not query or "/" in query:
            raise ValueError(f"query must be a non-empty name without '/', got {query!r}")
        return _join(self.checkpoints, query)

    @property
    def bronze_events(self) -> str:
        return self.table("bronze/events")

    @property
    def bronze_quarantine(self) -> str:
        return self.table("bronze/quarantine")
