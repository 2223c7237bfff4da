"""The items of a walking run (``--only``) that may have a request to make now, so that a
free connection's choice reads a few items rather than every one.

:func:`sa1b.jobchoice.choose_job` is the one rule of which item a free connection takes.
Read over every item, it looks at each item in flight for each request: little for a
few whole files of gigabytes (and stealing needs them all), but a walk makes one small
request at a time per shard while hundreds of shards walk at once (256 shards: 31,232
requests, each of which read the 256 walks). So the scheduler of a walking run keeps the
items that may have become claimable, and applies the rule to the first of them (by
index, as the rule reads them) and to the next pending item:

- an item is offered when it begins, when a request of it ends and when its backoff is
  over: nothing else gives a walk a request to make (the walks' memory budget holds
  every walk back at once: :meth:`~sa1b.engine.walk.WalkBody.claim` refuses, and the
  item stays offered);
- an offered item the rule passes over has nothing to do now: it is forgotten until its
  next such event (one backing off, until its backoff is over);
- a walk never goes back to ``pending``, and having made no request it never backs off
  there: the pending items are taken in order;
- the items in flight are those begun and not finished, looked at again once one ended.
"""

from __future__ import annotations

import heapq
from collections.abc import Sequence

from sa1b.jobchoice import Job, Schedulable, choose_job
from sa1b.progress import FINAL_STATES


class ReadyItems:
    """A walking run's items that may be claimable, and its pending and in-flight ones.
    Guarded by the run's lock."""

    def __init__(self, items: Sequence[Schedulable]) -> None:
        self.items = items
        self._index = {item: index for index, item in enumerate(items)}
        self._offered: list[int] = []
        """The indices of the items offered (a heap: the lowest first)."""
        self._queued: set[int] = set()
        """The same, to offer each once."""
        self._later: list[tuple[float, int]] = []
        """Items passed over while backing off, by the end of their backoff (a heap)."""
        self._pending = 0
        """Every item before this index has begun (or ended at start-up)."""
        self._flying: list[Schedulable] = []
        """Items begun, finished ones among them until the next count."""
        self._ended = 0

    def offer(self, item: Schedulable) -> None:
        """``item`` may have a request to make now (a request of it ended)."""
        index = self._index[item]
        if index not in self._queued:
            self._queued.add(index)
            heapq.heappush(self._offered, index)

    def begun(self, item: Schedulable) -> None:
        """The pending ``item`` was opened: it is in flight, with a request to make."""
        self._flying.append(item)
        self.offer(item)

    def choose(self, *, now: float, per_file: int, max_files: int, ended: int) -> Job | None:
        """The job a free connection takes next (the index is the item's), or None to
        wait. ``ended``: how many items have ended in this run, finished or halted."""
        items = self.items
        while self._later and self._later[0][0] <= now:
            self.offer(items[heapq.heappop(self._later)[1]])
        pending = self._next_pending()
        in_flight = self._in_flight(ended)
        while True:
            first = self._offered[:1]
            candidates = first + pending
            job = choose_job(
                [items[index] for index in candidates],
                now=now,
                per_file=per_file,
                max_files=max_files,
                in_flight=in_flight,
            )
            if first and (job is None or job.index != 0):
                self._forget(now)  # the rule passed over it: it has nothing to do now
                continue
            return None if job is None else Job(job.kind, candidates[job.index])

    def _forget(self, now: float) -> None:
        index = heapq.heappop(self._offered)
        self._queued.discard(index)
        not_before = self.items[index].not_before
        if not_before > now:
            heapq.heappush(self._later, (not_before, index))

    def _next_pending(self) -> list[int]:
        """The first pending item not halted (a list of at most one index)."""
        items, index = self.items, self._pending
        while index < len(items) and (items[index].state != "pending" or items[index].halted):
            index += 1
        self._pending = index
        return [index] if index < len(items) else []

    def _in_flight(self, ended: int) -> int:
        if ended != self._ended:
            self._ended = ended
            self._flying = [item for item in self._flying if item.state not in FINAL_STATES]
        return len(self._flying)
