"""The run's blocking work, off the transport's thread: the transport never waits.

Opening a partial file, sizing and allocating it (``ftruncate``, ``fallocate``: long
on a slow or remote disk), the store's writes that follow a decision (a restart, a
file's size and validators, its end; each a SQLite commit with ``synchronous=FULL``)
and the start of an extraction thread all block. The transport's thread decides and
changes the run's state in memory at once, then hands the blocking part here: while
it runs, every other file's bytes keep arriving. A few threads, one queue per file:
the jobs of one file reach the disk in the order they were decided (a restart before
the new size, the new size before the file's end), and one file's slow allocation
does not hold up another's.
"""

from __future__ import annotations

import logging
import queue
import threading
from collections import deque
from collections.abc import Callable, Hashable

from sa1b.engine.background import TICK, Background
from sa1b.errors import SA1BError, StorageError

log = logging.getLogger(__name__)

Job = Callable[[], None]
THREADS = 4


class DiskWorker:
    """Runs submitted jobs, those of one key one after another; an error ends the run
    (``abort``)."""

    def __init__(self, abort: Callable[[SA1BError], None], *, threads: int = THREADS) -> None:
        self.abort = abort
        self._lock = threading.Condition()
        self._pending: dict[Hashable, deque[Job]] = {}
        """By key, the jobs not done yet; the first of each is queued or running."""
        self._ready: queue.Queue[Hashable | None] = queue.Queue()
        self._threads = [Background(self._run, name=f"sa1b-disk-{k}") for k in range(threads)]

    def start(self) -> None:
        for thread in self._threads:
            thread.start()

    def submit(self, key: Hashable, job: Job) -> None:
        """Run ``job`` after every job of ``key`` submitted before it (returns at once)."""
        with self._lock:
            jobs = self._pending.get(key)
            if jobs is None:
                self._pending[key] = deque([job])
                self._ready.put(key)
            else:
                jobs.append(job)

    def close(self) -> None:
        """Finish every job (those the jobs submit too), then stop. A Ctrl-C meanwhile
        (a second one: the run is ending already) does not cut the wait short: the
        store and the files the jobs write to are closed once this returns."""
        while True:
            try:
                with self._lock:
                    if self._lock.wait_for(lambda: not self._pending, TICK):
                        break
            except KeyboardInterrupt:
                continue
        for _ in self._threads:
            self._ready.put(None)
        for thread in self._threads:
            thread.join()

    def _run(self) -> None:
        while (key := self._ready.get()) is not None:
            with self._lock:
                job = self._pending[key][0]
            self._do(job)
            with self._lock:
                jobs = self._pending[key]
                jobs.popleft()
                if jobs:
                    self._ready.put(key)
                else:
                    del self._pending[key]
                    self._lock.notify_all()

    def _do(self, job: Job) -> None:
        try:
            job()
        except SA1BError as error:  # a full disk, a store that cannot be written
            self.abort(error)
        except OSError as error:
            self.abort(StorageError(f"cannot write the output folder: {error}"))
        except Exception as error:  # a bug: end the run loudly rather than hang it
            log.exception("internal error in the disk worker")
            self.abort(StorageError(f"internal error: {error!r}"))
