"""Write the wanted members of walked shards into their staging folders, off the
transport's thread.

Creating a file costs about a millisecond on some disks (measured on the benchmark
machine), and the walk creates one per member, a thousand and more a second: in the
transport's thread that alone capped the walk at 1,600 requests a second
(``benchmarks/only.py``). So each complete piece of a member is handed to a few
writer threads here, and :meth:`Stager.flush` waits for every piece handed over so
far, which the run calls before it syncs the staging folder and saves a checkpoint
that names those members.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor, wait
from pathlib import Path

from sa1b.tarwalk import Piece

WRITERS = 4
"""Threads creating and writing staged members: file creation waits on the disk's
journal, and a few at once overlap those waits."""


class Stager:
    """Runs the jobs that write staged members, on a few threads of its own."""

    def __init__(self, *, writers: int = WRITERS) -> None:
        self._pool = ThreadPoolExecutor(writers, thread_name_prefix="sa1b-stage")
        self._lock = threading.Lock()
        self._pending: list[Future[None]] = []

    def submit(self, job: Callable[[], None]) -> None:
        future = self._pool.submit(job)
        with self._lock:
            self._pending.append(future)

    def flush(self) -> None:
        """Return once every job submitted before this call has run."""
        with self._lock:
            pending, self._pending = self._pending, []
        wait(pending)

    def close(self) -> None:
        self._pool.shutdown(wait=True)


def stage_piece(path: Path, piece: Piece) -> None:
    """Write one piece at its place in ``path`` (created, never truncated: a member's
    pieces may be written in any order)."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT, 0o644)
    except FileNotFoundError:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT, 0o644)
    try:
        os.pwrite(fd, piece.data, piece.at)
    finally:
        os.close(fd)
