"""Which job a free connection takes next. Pure: it reads files, it changes nothing.

In order of preference:

1. **Claim** free bytes of a file already in flight (its lowest free range), so files
   finish one after another rather than all crawling together;
2. **Open** the next pending file, while fewer than ``max_files`` are in flight (from
   their first byte until they are published: a file being verified still holds its
   tar, so ``max_files`` bounds the tars on the disk, which ``sa1b plan`` counts on).
   A file that is *draining* (every byte it needs is requested, its last requests are
   under way, and it keeps no tar on the disk beyond its output) leaves its place to the
   next one: files started together end together, and without this the connections they
   free would wait for the last of them (24 files over connections capped at 2 MiB/s
   with 40 ms of round trip: two waits of about 0.5 s in a run of 11 s, gone with this;
   ``benchmarks/governor-results.txt``). At most ``max_files`` places are left so: at
   most twice ``max_files`` files are in flight;
3. **Steal** half of the largest range not yet requested on another connection, so no
   file crawls to its end on one connection; only a range worth it counts (see
   :meth:`sa1b.segments.SegmentPlan.steal`), so a small file stays on one connection
   and a free connection opens the next file rather than split it;
4. **Wait**: nothing to do now (``None``).

A file takes part only when it is ready: not finished, not halted, not backing off
after a failure, and below the connections allowed per file. A file fetched as one
stream (a server without Range) offers nothing to claim while its stream runs, and
nothing to steal ever. The table of cases is in ``tests/unit/test_jobchoice.py``.

A walking run applies the same rule to a few candidates rather than to every item
(:mod:`sa1b.engine.ready`); it then counts the items in flight itself.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal, Protocol

from sa1b.progress import FINAL_STATES, FileState


class Schedulable(Protocol):
    """What scheduling reads of a file (:class:`sa1b.engine.tasks.Task` is one)."""

    @property
    def state(self) -> FileState: ...

    @property
    def not_before(self) -> float:
        """No request before this time (monotonic seconds): it is backing off."""
        ...

    @property
    def halted(self) -> bool: ...

    @property
    def connections(self) -> int:
        """Connections working on it now."""
        ...

    @property
    def claimable(self) -> bool:
        """It has free bytes a new connection may claim now."""
        ...

    @property
    def stealable(self) -> int:
        """Bytes of its largest range not yet requested, when worth a steal (0: none)."""
        ...

    @property
    def draining(self) -> bool:
        """In flight with nothing left to claim or steal, its last requests under way, and
        no tar of its own on the disk beyond its output: it leaves its place under
        ``max_files``."""
        ...


@dataclass(frozen=True, slots=True)
class Job:
    """Work for a free connection: ``kind`` on the file at ``index``."""

    kind: Literal["claim", "open", "steal"]
    index: int


def choose_job(
    files: Sequence[Schedulable],
    *,
    now: float,
    per_file: int,
    max_files: int,
    start: int = 0,
    in_flight: int | None = None,
) -> Job | None:
    """The job a free connection takes next, or None to wait (see the module docstring).

    ``start``: every file before it is finished (see :func:`first_unfinished`), so a
    long run does not read again the files it is done with. ``in_flight``: the files in
    flight, when ``files`` are only some candidates (walked shards, which never drain);
    else counted in ``files``.
    """
    ready: list[int] = []
    counted = draining = 0
    for index in range(start, len(files)):
        file = files[index]
        state = file.state
        if state in FINAL_STATES:
            continue
        counted += state in ("opening", "active", "verifying")
        draining += file.draining
        if file.halted or file.not_before > now or file.connections >= per_file:
            continue
        if state == "active" and file.claimable:
            return Job("claim", index)  # the first such file: no need to read further
        ready.append(index)
    places_taken = (counted if in_flight is None else in_flight) - min(draining, max_files)
    if places_taken < max_files:
        for index in ready:
            if files[index].state == "pending":
                return Job("open", index)
    victims = [i for i in ready if files[i].state == "active" and files[i].stealable > 0]
    if victims:
        return Job("steal", max(victims, key=lambda i: files[i].stealable))
    return None


def first_unfinished(files: Sequence[Schedulable], start: int = 0) -> int:
    """The index of the first file from ``start`` on that is not finished (a finished
    file stays so: its state is final), or ``len(files)``."""
    while start < len(files) and files[start].state in FINAL_STATES:
        start += 1
    return start
