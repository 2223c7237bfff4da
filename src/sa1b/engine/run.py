"""What every part of one run shares: the files, the lock over them, the stop."""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

from sa1b.config import DownloadConfig
from sa1b.engine.tasks import Task
from sa1b.errors import SA1BError, StorageError
from sa1b.holes import punches
from sa1b.store.resume import OtherRecord
from sa1b.store.state import StateStore


@dataclass(eq=False)
class Run:
    """One run's shared state. ``lock`` guards every task's fields and ``stopping``;
    ``stopped`` is set with ``stopping``, for threads that wait on it."""

    config: DownloadConfig
    store: StateStore
    tasks: list[Task] = field(default_factory=list)
    lock: threading.RLock = field(default_factory=threading.RLock)
    stopped: threading.Event = field(default_factory=threading.Event)
    stopping: bool = False
    fatal: SA1BError | None = None
    """The error that ends the whole run (a full disk, an internal error)."""
    others: Mapping[str, Sequence[OtherRecord]] = field(default_factory=dict)
    """By name, the records of the folder's other stores (a split download's workers),
    for start-up to continue from (:func:`sa1b.reconcile.record_to_adopt`)."""

    def extracts(self, task: Task) -> bool:
        """Shards (``sa_NNNNNN.tar``) are extracted unless told not to; extras never."""
        return self.config.extract is not None and task.link.shard_id is not None

    def frees(self, task: Task) -> bool:
        """Whether ``task``'s tar is freed behind its extraction (:mod:`sa1b.holes`)."""
        extract = self.config.extract
        return (
            self.extracts(task)
            and extract is not None
            and punches(
                digest=task.name in self.config.checksums,
                keep_tars=extract.keep_tars,
                layout=extract.layout,
            )
        )

    def transient(self, task: Task) -> bool:
        """A tar deleted once extracted: its bytes need not reach the disk soon."""
        extract = self.config.extract
        return self.extracts(task) and extract is not None and not extract.keep_tars

    def read_again(self, task: Task) -> bool:
        """Whether this run reads ``task``'s file once written: to extract it (a tar
        extracted as it arrives) or to check its checksum. Other files leave the page
        cache as they are synced (:func:`sa1b.store.writeback.drop_cached`)."""
        return self.extracts(task) or task.name in self.config.checksums

    def saving(self, save: Callable[[], None]) -> None:
        """Call ``save``: a disk or a store that cannot take it ends the run (its first
        error kept), as a failed commit does."""
        try:
            save()
        except SA1BError as error:
            self.fatal = self.fatal or error
        except OSError as error:
            message = f"{error.filename or 'the state'}: cannot save: {error.strerror}"
            self.fatal = self.fatal or StorageError(message)

    def stop(self) -> None:
        with self.lock:
            self.stopping = True
            self.stopped.set()
