"""The run's blocking work, in order, in a thread of its own: the transport never waits.

Opening a partial file, sizing and allocating it (``ftruncate``, ``fallocate``: long
on a slow or remote disk), the store's writes that follow a decision (a restart, a
file's size and validators, its end; each a SQLite commit with ``synchronous=FULL``)
and the start of an extraction thread all block. The transport's thread decides and
changes the run's state in memory at once, then hands the blocking part here: while
it runs, every other file's bytes keep arriving. One thread, one queue: the jobs of a
file reach the disk in the order they were decided (a restart before the new size,
the new size before the file's end).
"""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Callable

from sa1b.errors import SA1BError, StorageError

log = logging.getLogger(__name__)

Job = Callable[[], None]


class DiskWorker:
    """Runs submitted jobs one after another; an error ends the run (``abort``)."""

    def __init__(self, abort: Callable[[SA1BError], None]) -> None:
        self.abort = abort
        self._queue: queue.Queue[Job | None] = queue.Queue()
        self._thread = threading.Thread(target=self._run, name="sa1b-disk", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def submit(self, job: Job) -> None:
        """Run ``job`` after every job submitted before it (returns at once)."""
        self._queue.put(job)

    def close(self) -> None:
        """Finish what is queued, then stop."""
        self._queue.put(None)
        self._thread.join()

    def _run(self) -> None:
        while (job := self._queue.get()) is not None:
            try:
                job()
            except SA1BError as error:  # a full disk, a store that cannot be written
                self.abort(error)
            except OSError as error:
                self.abort(StorageError(f"cannot write the output folder: {error}"))
            except Exception as error:  # a bug: end the run loudly rather than hang it
                log.exception("internal error in the disk worker")
                self.abort(StorageError(f"internal error: {error!r}"))
