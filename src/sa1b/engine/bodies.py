"""The seam between the engine and what the answers of an item feed.

The engine runs every item the same way: one :class:`~sa1b.engine.tasks.Task` under
the run's lock, one scheduler (:func:`sa1b.jobchoice.choose_job`), one account of failures
and one limit on restarts (:class:`sa1b.retry.FailureAccount`), the lifecycle table
(:mod:`sa1b.lifecycle`), one supervising loop, one publisher. What differs between
kinds of item is what the bytes of an answer feed (as urllib3 and httpx keep one
connection layer and vary only the body's handling):

- a range of a partial file: the engine's own kind, a whole file, whose state is the
  task's plan, descriptor and recorded ranges (:mod:`sa1b.engine.slots`);
- a tar walk (``--only``): :class:`sa1b.engine.walk.WalkBody`;
- next, a part of an object storage upload (issue 18).

A kind other than the whole file is a :class:`Body` on its task. The engine asks it
whether it has a request to make now, for that request, how far it got, whether all
of it is in, and, in the publisher's thread, to publish it. What every body of a kind
shares in a run (for walks, :class:`~sa1b.engine.walk.Walks`: a memory budget, the
records to save) is saved by the supervising loop at each tick, as it commits a file's
ranges.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Protocol

from sa1b.errors import SA1BError
from sa1b.net.curl import Request
from sa1b.records import Status

if TYPE_CHECKING:
    from sa1b.engine.tasks import Task


Ended = Callable[[SA1BError | None], None]
"""Called once a body's request is over, with what ended it (None: it went well)."""


class Claim(Protocol):
    """One request a body made under the run's lock, for a slot to send."""

    def request(self, ended: Ended) -> Request:
        """The request, whose receiver calls ``ended`` once its answer is over (the slot
        then gives the job back: a body's next request may depend on this answer)."""
        ...


class Body(Protocol):
    """An item's state and behaviour beyond a whole file's. Every method but
    :meth:`publish` and :meth:`record_status` is called under the run's lock."""

    @property
    def claimable(self) -> bool:
        """It has a request to make: :meth:`claim` returns it, unless every item of its
        kind is held back for now (the walks' memory budget is full)."""
        ...

    @property
    def progress(self) -> int:
        """Bytes it got through: what its account of failures weighs."""
        ...

    @property
    def done_bytes(self) -> int:
        """Bytes of the item shown as done in its progress."""
        ...

    @property
    def complete(self) -> bool:
        """Every byte it wants is in and written: it is ready to publish."""
        ...

    def claim(self, task: Task) -> Claim | None:
        """Its next request, now counted as in flight; None when it has none or is held
        back for now."""
        ...

    def publish(self, task: Task) -> str:
        """In the publisher's thread: put what it fetched into place and record it; the
        message says what (raises :class:`~sa1b.errors.ExtractionError` to reject it)."""
        ...

    def record_status(self, task: Task, status: Status, message: str | None) -> None:
        """In the disk worker: keep how the item ended in the store."""
        ...
