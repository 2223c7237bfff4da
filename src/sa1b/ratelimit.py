"""A token bucket shared by every connection: the ``--max-rate`` cap."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable


class RateLimiter:
    """Lets ``rate`` bytes per second through on average, with bursts up to ``burst``."""

    def __init__(
        self,
        rate: float,
        *,
        burst: float | None = None,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], object] = time.sleep,
    ) -> None:
        if rate <= 0:
            raise ValueError("rate must be positive")
        self.rate = rate
        self.burst = burst if burst is not None else max(rate / 10, 64 * 1024)
        self._clock = clock
        self._sleep = sleep
        self._lock = threading.Lock()
        self._tokens = self.burst
        self._stamp = clock()

    def take(self, amount: int) -> None:
        """Account for ``amount`` bytes, sleeping as long as the cap requires."""
        with self._lock:
            now = self._clock()
            self._tokens = min(self.burst, self._tokens + (now - self._stamp) * self.rate)
            self._stamp = now
            self._tokens -= amount
            wait = -self._tokens / self.rate if self._tokens < 0 else 0.0
        if wait > 0:
            self._sleep(wait)
