"""One item during a run (a file, or a shard walked member by member), owned by the
engine: every field is read and changed under the run's lock."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from sa1b.links import Link
from sa1b.progress import FileOutcome, FileState
from sa1b.ranges import RangeSet
from sa1b.retry import FailureAccount
from sa1b.segments import SegmentPlan
from sa1b.versions import Validator

if TYPE_CHECKING:
    from sa1b.engine.bodies import Body


@dataclass(eq=False)
class Task:
    """One item during the run. Mutable; guarded by the run's lock.

    The fields up to ``outcome`` are every item's; those after it, the plan, descriptor
    and ranges of a whole file's partial file. An item whose answers feed something
    else (a tar walk) carries that as its ``body`` (:mod:`sa1b.engine.bodies`).
    """

    link: Link
    id: int
    generation: int
    failures: FailureAccount
    state: FileState = "pending"
    size: int | None = None
    validator: Validator = field(default_factory=Validator)
    recorded: RangeSet = field(default_factory=RangeSet)
    plan: SegmentPlan | None = None
    fd: int | None = None
    single_stream: bool = False
    halted: bool = False
    connections: int = 0
    digest_failures: int = 0
    waiting_for: str = ""
    """Why the file waits until ``not_before`` (:func:`sa1b.retry.waiting_reason`)."""
    unrecorded_final: int | None = None
    """The size of a file under the final name that the store has no record of (its
    store was damaged or foreign, or deleted): adopted once the server's first answer
    confirms that size, then verified like any download; else fetched again."""
    outcome: FileOutcome | None = None
    body: Body | None = None
    """What its answers feed when not a range of its partial file (None: a whole file)."""
    preparations: int = 0
    """Jobs of the disk worker for this file not done yet: it is ``opening`` until none is."""
    drains: bool = False
    """Whether its download is its output, so that it may leave its place under
    ``--files`` once :attr:`draining` (not a tar extracted from the disk, which stays
    there until the shard is published)."""
    holding: int = 0
    """Answers holding bytes of this file in memory (it was not ready when they came):
    it stays ``opening`` until they are written, so no thief cuts a range whose bytes
    are in memory but not yet counted."""
    cannot_punch: bool = False
    """Its filesystem cannot free its tar behind extraction (:mod:`sa1b.holes`)."""
    writing: threading.Lock = field(default_factory=threading.Lock)
    """Held from a write's ownership check to the end of its ``pwrite`` (or a walk's
    staged piece's), and by whatever voids writes (a restart, closing the descriptor, a
    walk starting over): so the check and the write are one step, whichever thread
    writes."""

    @property
    def name(self) -> str:
        return self.link.name

    @property
    def not_before(self) -> float:
        """No request before this (monotonic seconds): the file is backing off."""
        return self.failures.not_before

    @property
    def claimable(self) -> bool:
        """A request a new connection may make now: free bytes to claim (a single stream
        allows one), or a body's next request."""
        if self.body is not None:
            return self.body.claimable
        plan = self.plan
        return bool(plan and plan.free and not (self.single_stream and plan.active))

    @property
    def draining(self) -> bool:
        """Its last requests are under way, with nothing left to claim or steal, and it
        :attr:`drains` (see :mod:`sa1b.jobchoice`); a single stream never is (it may
        run for long)."""
        plan = self.plan
        if not self.drains or self.state != "active" or self.single_stream or plan is None:
            return False
        return not plan.free and bool(plan.active) and not plan.stealable

    @property
    def stealable(self) -> int:
        """Bytes a steal could take now (see ``SegmentPlan.stealable``): never any of a
        single stream, whose plan's ``min_steal`` is larger than the file."""
        return self.plan.stealable if self.plan else 0

    @property
    def progress(self) -> int:
        """Bytes it got through, which its account of failures weighs: bytes on disk
        (bytes written again, a server without Range restarting its one stream, are
        none), or its body's progress."""
        if self.body is not None:
            return self.body.progress
        return self.plan.done_bytes() if self.plan else self.recorded.total

    @property
    def done_bytes(self) -> int:
        """Bytes shown as done in its progress."""
        if self.state == "done":
            return self.size or 0
        return self.body.done_bytes if self.body is not None else self.progress

    @property
    def complete(self) -> bool:
        """Every byte is in: it is ready to verify and publish."""
        if self.body is not None:
            return self.body.complete
        return self.plan is not None and self.plan.complete
