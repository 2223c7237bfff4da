"""When a request is given up as stalled: a head deadline and a speed floor, pure.

libcurl's own low-speed check knows nothing of a head that drips in one byte a
second, nor of a transfer that sa1b itself paused for ``--max-rate``; so each
request has a :class:`Watchdog` that the event loop consults a few times a second,
with the clock passed in.
"""

from __future__ import annotations

from sa1b.net.options import Timeouts


class Watchdog:
    """Judges one request: its head must be complete within ``timeouts.head`` of the
    start, and its body must bring at least ``timeouts.floor`` bytes/s, measured over
    windows of ``timeouts.read`` seconds (and at least one byte per window)."""

    __slots__ = ("_answered", "_mark_bytes", "_mark_time", "started", "timeouts")

    def __init__(self, timeouts: Timeouts, now: float) -> None:
        self.timeouts = timeouts
        self.started = now
        self._answered = False
        self._mark_time = now
        self._mark_bytes = 0

    def check(self, now: float, *, answered: bool, received: int) -> str | None:
        """Why the request is stalled, or None while it is healthy.

        ``answered`` tells whether the response head is complete; ``received``
        counts the body bytes so far.
        """
        timeouts = self.timeouts
        if not answered:
            if now - self.started > timeouts.head:
                return f"no complete response head within {timeouts.head:g} s"
            return None
        if not self._answered:  # the head just arrived: the body's first window starts
            self._answered = True
            self.rest(now, received)
            return None
        elapsed = now - self._mark_time
        if elapsed < timeouts.read:
            return None
        got = received - self._mark_bytes
        if got == 0 or got < timeouts.floor * elapsed:
            return f"{got} bytes in {elapsed:.0f} s, below the floor of {timeouts.floor:g} B/s"
        self.rest(now, received)
        return None

    def rest(self, now: float, received: int) -> None:
        """Start a new window now (after the head, or a pause for ``--max-rate``)."""
        self._mark_time = now
        self._mark_bytes = received
