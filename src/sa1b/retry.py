"""When to try again: an immutable policy, and one item's account of its failures.

Transient failures (:class:`~sa1b.errors.RetryableError`) are retried from the bytes
already on disk with capped exponential backoff and jitter; ``Retry-After``
wins when the server gives it. :class:`FailureAccount` counts the failures of one
item (a file, a walked shard), one per outage, and resets the count only on real
progress: at least the speed floor's worth of bytes since the item was last allowed
to try again. So a long download on a flaky link is never abandoned while it
progresses, and a dead one, one that only rewrites the same bytes, or one that
trickles a byte now and then is given up after ``attempts`` tries. Both are pure and
clock-free: the caller passes the time and the jitter.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from sa1b.errors import RetryableError, SA1BError, TransferError, UnstableSourceError
from sa1b.redaction import clean

MAX_CHANGES = 3
"""New versions of one item tolerated in a run, each a restart from byte 0: a real
replacement happens once; origins out of step flap for ever."""


@dataclass(frozen=True, slots=True, kw_only=True)
class RetryPolicy:
    """How many failures in a row to tolerate and how long to wait between them."""

    attempts: int = 8
    backoff: float = 0.5
    backoff_max: float = 30.0
    retry_after_max: float = 300.0

    def delay(self, error: TransferError, failures: int, *, jitter: float) -> float | None:
        """Seconds to wait before the next try, or None to give up.

        ``failures`` counts this one (1 for the first); ``jitter`` is uniform in
        [0, 1), passed in so that the decision stays a pure function.
        """
        if not isinstance(error, RetryableError) or failures >= self.attempts:
            return None
        if error.retry_after is not None:
            return min(error.retry_after, self.retry_after_max)
        ceiling = min(self.backoff_max, self.backoff * 2.0 ** min(failures - 1, 64))
        return ceiling * (0.5 + jitter / 2)


def waiting_reason(error: TransferError, delay: float) -> str:
    """Why a file waits ``delay`` seconds before its next try, for a person: the
    server's ``Retry-After`` (and the cap, when it asked for longer), or the failure."""
    asked = error.retry_after if isinstance(error, RetryableError) else None
    if asked is None:
        return clean(error.message, limit=200)  # it may quote the server
    capped = f" (waiting {delay:.0f} s, the most sa1b waits)" if asked > delay else ""
    return f"the server asked to retry after {asked:.0f} s{capped}"


@dataclass(frozen=True, slots=True)
class Verdict:
    """What to do after a failure: ``retry`` after ``delay`` seconds; nothing (``same
    outage``: a failure of one already counted); or ``give up``, adding ``note`` to
    the error's message."""

    action: Literal["retry", "same outage", "give up"]
    delay: float = 0.0
    note: str = ""


class FailureAccount:
    """The failures and version changes of one item during a run; the one place that
    decides whether it is tried again.

    Failures count per outage, not per connection: one that arrives while the item
    waits out the backoff of an earlier one is part of that outage (a blip that stalls
    16 connections at once is one). ``progress`` is a byte count the caller gives at
    each failure (bytes on disk, how far a walk got); it may fall back (a restart) and
    counts as progress only when it passes the most seen at any failure by the
    ``floor`` (bytes/s) over the time since the item could try again.
    """

    __slots__ = ("_best", "_since", "changes", "count", "floor", "not_before", "policy")

    def __init__(self, policy: RetryPolicy, *, floor: float) -> None:
        self.policy = policy
        self.floor = floor
        self.count = 0
        """Failures in a row (one per outage) without progress."""
        self.not_before = 0.0
        """No request before this (monotonic seconds): the item is backing off."""
        self.changes = 0
        """Times the item's version changed during this run."""
        self._best = 0
        self._since = 0.0

    def failed(self, error: SA1BError, *, progress: int, now: float, jitter: float) -> Verdict:
        """Count a failure at ``now`` (monotonic seconds); ``jitter`` is uniform in [0, 1)."""
        if not isinstance(error, RetryableError):
            return Verdict("give up")  # another try cannot help, however few there were
        if now < self.not_before:
            return Verdict("same outage")
        if self.count and progress - self._best >= max(1.0, self.floor * (now - self._since)):
            self.count = 0
        self._best = max(self._best, progress)
        self.count += 1
        delay = self.policy.delay(error, self.count, jitter=jitter)
        if delay is None:
            return Verdict("give up", note=f" (gave up after {self.count} attempts in a row)")
        self.not_before = self._since = now + delay
        return Verdict("retry", delay)

    def changed(self, name: str) -> UnstableSourceError | None:
        """Count a new version of the item ``name``: None while it may start over, else
        the error it is given up with."""
        self.changes += 1
        if self.changes <= MAX_CHANGES:
            return None
        message = (
            f"the file changed on the server {self.changes} times during this run "
            "(its ETag, Last-Modified or size keeps flapping)"
        )
        return UnstableSourceError(message, name=name)
