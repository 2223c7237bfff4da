"""When to try again: an immutable policy and the decision, pure and clock-free.

Transient failures (:class:`~sa1b.errors.RetryableError`) are retried from the bytes
already on disk with capped exponential backoff and jitter; ``Retry-After``
wins when the server gives it. The count of failures is per file, one per outage,
and is reset when the file has more bytes on disk than at any earlier failure, so a
long download on a flaky link is never abandoned while it progresses, and a dead one
(or one that only ever rewrites the same bytes) is given up after ``attempts`` tries.
"""

from __future__ import annotations

from dataclasses import dataclass

from sa1b.errors import RetryableError, TransferError
from sa1b.redaction import clean


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
