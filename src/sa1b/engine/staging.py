"""Write the wanted members of walked shards into their staging folders, off the
transport's thread, in batches.

Creating a file costs about a millisecond on some disks (measured on the benchmark
machine), and the walk creates one per member, a thousand and more a second: in the
transport's thread that alone capped the walk at 1,600 requests a second
(``benchmarks/only.py``). A job per piece on a thread pool cost as much again in
wake-ups (``strace``: 14 futex calls a request). So the transport only queues each
piece's job, and the run's thread, at each tick, hands the whole queue to a few
writer threads in equal batches and waits for them: every piece queued before a
checkpoint is written before the checkpoint is saved.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

from sa1b.store.writeback import write_at
from sa1b.tarwalk import Piece

WRITERS = 4
"""Threads creating and writing staged members: file creation waits on the disk's
journal, and a few at once overlap those waits."""

Job = Callable[[], None]


class Stager:
    """Runs the jobs that write staged members, a batch at a time."""

    def __init__(self, *, writers: int = WRITERS) -> None:
        self.writers = writers
        self._pool = ThreadPoolExecutor(writers, thread_name_prefix="sa1b-stage")
        self._running: list[Future[None]] = []

    def run(self, jobs: Sequence[Job]) -> None:
        """Run ``jobs`` on the writer threads, in equal shares; return when all have run,
        and every job of an earlier call too (one a Ctrl-C interrupted may still run)."""
        if jobs:
            share = -(-len(jobs) // self.writers)
            batches = [jobs[k : k + share] for k in range(0, len(jobs), share)]
            self._running += [self._pool.submit(_run_all, batch) for batch in batches]
        while self._running:
            self._running[0].result()
            self._running.pop(0)

    def close(self) -> None:
        self._pool.shutdown(wait=True)


def _run_all(jobs: Sequence[Job]) -> None:
    for job in jobs:
        job()


def stage_piece(path: Path, piece: Piece) -> None:
    """Write one piece at its place in ``path`` (created, never truncated: a member's
    pieces may be written in any order)."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT, 0o644)
    except FileNotFoundError:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT, 0o644)
    try:
        write_at(fd, [piece.data], piece.at)
    finally:
        os.close(fd)
