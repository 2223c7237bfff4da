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
- a part of a multipart upload (``-o s3://``): :class:`sa1b.engine.upload.UploadBody`, and
  a part of a tar made from a shard (``--layout wds`` into a bucket) that several ranged
  requests fill: :class:`sa1b.engine.repack.RepackBody`; both are streamed bodies
  (:mod:`sa1b.engine.streamed`: parts gathered in memory and read in order) whose sink
  is the bucket;
- a shard extracted with no tar on disk (the default extraction): a streamed body whose
  sink is its staging folder, :class:`sa1b.engine.unpack.UnpackBody`.

A kind other than the whole file is a :class:`Body` on its task. The engine asks it
whether it has a request to make now, for that request, how far it got, whether all
of it is in, and, in the publisher's thread, to publish it. What every body of a kind
shares in a run is its :class:`Kind` (:class:`~sa1b.engine.walk.Walks`,
:class:`~sa1b.engine.uploads.Uploads`, :class:`~sa1b.engine.unpack.Unpacks`: a memory
budget, the records to save), which the supervising loop saves at each tick, as it commits
a file's ranges. A run's items are of one kind, but for the shards extracted with no tar,
beside which the whole files of the same run (extras, shards that need a tar) keep the
engine's own path.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Protocol

from sa1b.errors import SA1BError
from sa1b.links import Link
from sa1b.net.curl import Request
from sa1b.net.governor import GovernorPolicy
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


class Kind(Protocol):
    """What every body of one kind shares in a run, as the supervisor sees it."""

    tick_now: threading.Event
    """Set when the supervising loop is to save now rather than at its next tick."""
    settle: Callable[[Task], None]
    """Hears of a task whose body may have become complete (set by the engine)."""
    ready_queue: bool
    """Whether the scheduler keeps the items that may have a request to make
    (:mod:`sa1b.engine.ready`) rather than reading every item for each request: for
    walks (hundreds of shards, one small request each), not for uploads (a few shards,
    whose claims also wait for memory given back, which no request's end announces)."""
    whole_files: bool
    """Whether some of its items are whole files on the engine's own path (a shard
    extracted with no tar leaves one with a partial tar, or from a server that ignores
    Range, to it): the engine then keeps partial files and extractors for them."""

    def prepare(self, link: Link) -> Task:
        """The task of ``link``, its body made from what the store (and the output) say."""
        ...

    def at_once(self, slots: int) -> int:
        """Items in flight at once (``max_files``) with ``slots`` connections."""
        ...

    def policy(self) -> GovernorPolicy:
        """How many connections (:mod:`sa1b.net.governor`)."""
        ...

    def save(self) -> None:
        """Save what the bodies reached (from the supervising loop at each tick, and at
        the end); raises :class:`~sa1b.errors.SA1BError` or OSError if it cannot."""
        ...

    def close(self) -> None:
        """After the last save: let go of threads and clients."""
        ...

    def walked(self, tasks: Sequence[Task]) -> int | None:
        """With ``--only``: the sizes of the shards walked (None for other kinds)."""
        ...
