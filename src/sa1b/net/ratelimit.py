"""The ``--max-rate`` cap: one token bucket for every connection, pure.

The event loop takes tokens for each chunk of body it accepts; when the bucket
runs dry it pauses that transfer (libcurl stops reading its socket, so TCP pushes
back on the server) for as long as :meth:`RateLimiter.take` says.
"""

from __future__ import annotations


class RateLimiter:
    """Lets ``rate`` bytes per second through on average, with bursts up to ``burst``."""

    def __init__(self, rate: float, *, burst: float | None = None, now: float = 0.0) -> None:
        if rate <= 0:
            raise ValueError("rate must be positive")
        self.rate = rate
        self.burst = burst if burst is not None else max(rate / 10, 64 * 1024)
        self._tokens = self.burst
        self._stamp = now

    def take(self, amount: int, now: float) -> float:
        """Account for ``amount`` bytes received at ``now``; returns how many seconds
        the taker should now wait (0 while the bucket holds tokens)."""
        self._tokens = min(self.burst, self._tokens + (now - self._stamp) * self.rate)
        self._stamp = now
        self._tokens -= amount
        return -self._tokens / self.rate if self._tokens < 0 else 0.0
