"""How many connections to keep open: grow while throughput grows, back off when pushed.

A CDN edge (or TCP over a long round trip) bounds what one connection carries, so
throughput is about connections times that bound, until the link, the CPU or the
server says stop. The :class:`Governor` finds that point the way TCP finds a
window. It starts at ``start`` connections and multiplies them by ``growth`` while
each step raises throughput by at least ``gain``; after a step that raised it in
proportion to the connections it added (each connection is capped, the limit is far),
by ``leap``, as TCP's slow start does. A step that brings nothing is taken back, and
the count held, trying once more after ``reprobe`` seconds (files end, links change).
A step is judged after ``window`` seconds, or after half of it once it has paid in
proportion.

A leap may overshoot: the count held can be up to ``leap`` times what the limit
needs (a link that 50 connections fill, from 8: 16, 64, then 128 taken back to 64),
never less. It does not step down to find a tighter count: requests in flight are
never cut, so a count lowered shows in throughput only seconds later, too late for a
window.

A sign that the server sheds load (429 or 503, a reset, a refused connect) cuts the
count by ``backoff`` and forbids growth for ``quiet`` seconds. It never passes
``ceiling``, and it only judges windows in which nearly every connection had work,
so a run's tail (fewer bytes left than connections) is not mistaken for a limit.

Pure: the event loop passes the clock and the byte count in.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True, kw_only=True)
class GovernorPolicy:
    """The governor's constants; ``adaptive=False`` keeps ``start`` connections always."""

    start: int = 32
    ceiling: int = 256
    minimum: int = 2
    adaptive: bool = True
    growth: float = 2.0
    leap: float = 4.0
    """The factor after a step that paid in proportion: where each connection is capped,
    32 connections reach 256 in two steps instead of three, and 0.6 s sooner."""
    proportional: float = 0.75
    """A step paid in proportion when throughput grew by at least this share of what the
    connections grew by: x4 connections (+300%) and at least +225% throughput."""
    gain: float = 1.1
    settle: float = 0.2
    """Seconds after a change before measuring: new connections need their handshakes."""
    window: float = 0.4
    backoff: float = 0.75
    quiet: float = 10.0
    reprobe: float = 20.0
    busy_share: float = 0.9
    """A window counts only if at least this share of the connections had work."""

    def __post_init__(self) -> None:
        if not 1 <= self.minimum <= self.start <= self.ceiling:
            raise ValueError("need 1 <= minimum <= start <= ceiling")
        if not 1 < self.growth <= self.leap or self.gain < 1 or not 0 < self.backoff < 1:
            raise ValueError("need 1 < growth <= leap, gain >= 1 and 0 < backoff < 1")

    @classmethod
    def fixed(cls, connections: int) -> GovernorPolicy:
        return cls(start=connections, ceiling=connections, minimum=1, adaptive=False)


class Governor:
    """The current connection target; :meth:`observe` on every tick of the loop."""

    def __init__(self, policy: GovernorPolicy, now: float) -> None:
        self.policy = policy
        self.target = policy.start
        self._previous = policy.start
        self._changed = now
        self._window_at: float | None = None
        self._window_bytes = 0
        self._baseline: float | None = None
        self._holding_since: float | None = None
        self._quiet_until = now
        self._pushed_at = -1e18
        self._leaping = False
        """The last step paid in proportion: the next one is a leap."""

    def observe(self, now: float, received: int, busy: int) -> int:
        """Account ``received`` (the run's byte count so far) with ``busy``
        connections at work; returns the target."""
        policy = self.policy
        if not policy.adaptive or now - self._changed < policy.settle:
            return self.target
        if self._window_at is None:
            self._window_at, self._window_bytes = now, received
            return self.target
        span = now - self._window_at
        rate = (received - self._window_bytes) / span
        if span < policy.window and not (span >= policy.window / 2 and self._paid_in_full(rate)):
            return self.target
        self._window_at, self._window_bytes = now, received
        if busy < policy.busy_share * self.target or now < self._quiet_until:
            return self.target
        if self._holding_since is not None:
            if now - self._holding_since >= policy.reprobe:
                self._holding_since = None
                self._baseline = rate
                self._grow(now)
            return self.target
        if self._baseline is None or rate >= self._baseline * policy.gain:
            self._leaping = self._paid_in_full(rate)
            self._baseline = rate
            self._grow(now)
        else:  # the last step brought nothing: take it back and hold
            self._set(self._previous, now)
            self._holding_since = now
            self._baseline = None
            self._leaping = False
        return self.target

    def _paid_in_full(self, rate: float) -> bool:
        """Whether the last step raised throughput in proportion to its connections."""
        if self._baseline is None:
            return False
        factor = self.target / self._previous
        return rate >= self._baseline * (1 + self.policy.proportional * (factor - 1))

    def pushback(self, now: float) -> None:
        """The server shed load: fewer connections, and no growth for a while.

        A burst of such signals (many connections refused at once) is one event.
        """
        policy = self.policy
        if not policy.adaptive or now - self._pushed_at < policy.settle + policy.window:
            return
        self._pushed_at = now
        self._set(max(policy.minimum, int(self.target * policy.backoff)), now)
        self._previous = self.target
        self._quiet_until = now + policy.quiet
        self._holding_since = None
        self._baseline = None
        self._leaping = False

    def _grow(self, now: float) -> None:
        policy = self.policy
        if self.target >= policy.ceiling:
            self._holding_since = now
            return
        self._previous = self.target
        factor = policy.leap if self._leaping else policy.growth
        grown = max(self.target + 1, round(self.target * factor))
        self._set(min(policy.ceiling, grown), now)

    def _set(self, target: int, now: float) -> None:
        self.target = target
        self._changed = now
        self._window_at = None
