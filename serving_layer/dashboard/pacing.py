"""Keep the refresh interval longer than the slowest callback, so no refresh is ever dropped half-way.

Every callback reports how long it took; the interval becomes max(configured, 2 × the slowest recent duration).
"""

from __future__ import annotations

import threading
import time
from collections import defaultdict, deque
from collections.abc import Iterator
from contextlib import contextmanager

__all__ = ["CallbackTimings"]


class CallbackTimings:
    """Recent durations per callback (thread-safe: Dash serves callbacks on several threads).

    Example::

        timings = CallbackTimings(configured_seconds=5)
        with timings.measure("sales"):
            ...
        timings.interval_ms()     # >= 5000, and >= twice the slowest recent callback
    """

    def __init__(self, configured_seconds: float, keep: int = 20, headroom: float = 2.0) -> None:
        if configured_seconds <= 0:
            raise ValueError(f"configured_seconds must be > 0, got {configured_seconds}")
        self.configured_seconds = configured_seconds
        self._headroom = headroom
        self._durations: defaultdict[str, deque[float]] = defaultdict(lambda: deque(maxlen=keep))
        self._lock = threading.Lock()

    def record(self, name: str, seconds: float) -> None:
        with self._lock:
            self._durations[name].append(seconds)

    @contextmanager
    def measure(self, name: str) -> Iterator[None]:
        started = time.perf_counter()
        try:
            yield
        finally:
            self.record(name, time.perf_counter() - started)

    def slowest(self) -> float:
        """The slowest recent duration of any callback, in seconds (0 before the first)."""
        with self._lock:
            return max((max(d) for d in self._durations.values() if d), default=0.0)

    def summary(self) -> dict[str, float]:
        """Slowest recent duration per callback, seconds."""
        with self._lock:
            return {name: max(d) for name, d in self._durations.items() if d}

    def interval_ms(self) -> int:
        """The refresh interval to use now, in milliseconds."""
        return int(round(1000 * max(self.configured_seconds, self._headroom * self.slowest())))
