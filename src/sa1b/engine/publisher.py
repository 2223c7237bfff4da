"""Verify complete files and publish them, in a thread of their own.

A file whose every byte is in is checked (size; the digest from ``--checksums``,
computed here or, for an extracted shard, by its extractor in the same pass) and only
then published: renamed to ``OUT/tars/<name>``, or, for a shard, its staged files
moved into the layout and the shard recorded as extracted, its tar kept or deleted;
an item with a body (a walked shard) is published by its body (its staged members
moved into the layout, its walk recorded).
The :class:`Publisher` decides; the engine (a :class:`TaskControl`) owns the task's
state and is told the verdict.
"""

from __future__ import annotations

import functools
import logging
import os
import queue
import threading
from collections.abc import Callable
from typing import Protocol

from sa1b.checksums import hash_file
from sa1b.config import DownloadConfig
from sa1b.engine.tasks import Task
from sa1b.errors import (
    ChecksumMismatchError,
    ExtractionError,
    FatalTransferError,
    SA1BError,
    SizeMismatchError,
    StateError,
    StorageError,
)
from sa1b.extract.extractors import Extractors
from sa1b.extract.shard import ExtractReport, publish
from sa1b.layout import archive_of
from sa1b.ranges import RangeSet
from sa1b.store.state import StateStore
from sa1b.store.writeback import drop_cached, fsync_dir

log = logging.getLogger(__name__)


class TaskControl(Protocol):
    """What the publisher may do to a task; the engine does it under its lock."""

    def reject(self, task: Task, error: SA1BError) -> None:
        """The file failed verification or extraction: it ends ``failed`` (a corrupt
        archive is voided, so that a rerun fetches it again)."""
        ...

    def redownload(self, task: Task, reason: str) -> None:
        """Fetch the file once more from scratch (a checksum mismatch), saying why."""
        ...

    def done(self, task: Task, message: str | None) -> None:
        """The file is published and recorded; ``message`` says how (files extracted)."""
        ...

    def abort(self, error: SA1BError) -> None:
        """End the whole run (the output folder cannot be written)."""
        ...


class Publisher:
    """The publisher thread: takes complete tasks, verifies, publishes, reports."""

    def __init__(
        self,
        config: DownloadConfig,
        store: StateStore,
        control: TaskControl,
        *,
        extractors: Extractors | None,
    ) -> None:
        self.config = config
        self.store = store
        self.control = control
        self.extractors = extractors
        self._queue: queue.Queue[Task | None] = queue.Queue()
        self._thread = threading.Thread(target=self._run, name="sa1b-publish", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def submit(self, task: Task) -> None:
        """Queue a task whose bytes are all in (its state is ``verifying``)."""
        self._queue.put(task)

    @property
    def idle(self) -> bool:
        return self._queue.empty()

    def close(self) -> None:
        """Finish what is queued, then stop."""
        self._queue.put(None)
        self._thread.join()

    def _run(self) -> None:
        while True:
            batch = self._take()
            files = [task for task in batch if task is not None and self._whole(task)]
            for task in batch:
                if task is None:
                    continue
                if task.body is not None:
                    self._guarded(task.name, functools.partial(self._publish_body, task))
                elif self._extracts(task):
                    self._guarded(task.name, functools.partial(self._publish_extracted, task))
            if files:
                label = files[0].name if len(files) == 1 else f"{len(files)} files"
                self._guarded(label, functools.partial(self._publish_files, files))
            if None in batch:
                return

    def _take(self) -> list[Task | None]:
        """Every task queued now (waiting for the first): files that complete together
        share one commit and one fsync of their folder."""
        batch = [self._queue.get()]
        while True:
            try:
                batch.append(self._queue.get_nowait())
            except queue.Empty:
                return batch

    def _whole(self, task: Task) -> bool:
        """A file published as it is (renamed into place), in a batch."""
        return task.body is None and not self._extracts(task)

    def _extracts(self, task: Task) -> bool:
        return self.extractors is not None and task.link.shard_id is not None

    def _guarded(self, label: str, work: Callable[[], None]) -> None:
        """Run one publication; any failure ends the run with one line naming ``label``."""
        try:
            work()
        except (StateError, OSError) as error:
            self.control.abort(StorageError(f"{label}: cannot publish: {error}"))
        except SA1BError as error:  # e.g. the state store's disk is full
            self.control.abort(error)
        except Exception as error:  # a bug: end the run loudly rather than hang it
            log.exception("%s: internal error while publishing", label)
            self.control.abort(StorageError(f"{label}: internal error: {error!r}"))

    def _publish_body(self, task: Task) -> None:
        """An item with a body (a walked shard, an upload) puts what it fetched into
        place itself."""
        assert task.body is not None
        try:
            message = task.body.publish(task)
        except FatalTransferError as error:  # a name another shard holds (flat), wrong data
            self.control.reject(task, error)
            return
        self.control.done(task, message)

    def _publish_files(self, tasks: list[Task]) -> None:
        """Verify complete partial files, rename them into place, then record them done.

        Files queued together are published together: one commit of their ranges, their
        renames, one fsync of each folder, one commit of their status. Each file still
        goes through the same order as when alone (synced, verified, ranges, rename,
        status), so a crash anywhere leaves every file in a state a single publication
        could have left it in.
        """
        verified = [task for task in tasks if self._verify(task)]
        if not verified:
            return
        # Complete ranges first (the bytes are synced): a crash between rename and status
        # then finds a complete, renamed file and knows it is done.
        self.store.save_ranges({task.id: (task.generation, whole(task)) for task in verified})
        folders = set()
        for task in verified:
            final = self.config.paths.final(task.name)
            final.parent.mkdir(exist_ok=True)
            os.replace(self.config.paths.partial(task.name), final)
            folders.add(final.parent)
        for folder in folders:
            fsync_dir(folder)
        self.store.set_statuses([task.id for task in verified], "done")
        for task in verified:
            self.control.done(task, None)

    def _verify(self, task: Task) -> bool:
        """Sync a complete partial file and check its size and digest; a file that fails
        is rejected or fetched again (and ``False`` returned)."""
        assert task.size is not None
        fd = os.open(self.config.paths.partial(task.name), os.O_RDONLY)
        try:
            os.fdatasync(fd)
            actual = os.fstat(fd).st_size
            if actual != task.size:
                message = f"{actual} bytes on disk, server announced {task.size}"
                self.control.reject(task, SizeMismatchError(message, name=task.name))
                return False
            expected = self.config.checksums.get(task.name)
            if expected is None:
                drop_cached(fd)  # synced, never read again in this run
            else:
                digest = hash_file(fd, expected.algorithm)
                if digest != expected.hexdigest:
                    self._digest_mismatch(task, expected.algorithm, digest)
                    return False
        finally:
            os.close(fd)
        return True

    def _publish_extracted(self, task: Task) -> None:
        """Collect the shard's extraction, check it, move it into place, record it."""
        assert self.extractors is not None and self.config.extract is not None
        assert task.size is not None
        actual = self.config.paths.partial(task.name).stat().st_size
        result = self.extractors.result(task.name, task.generation)
        if actual != task.size:
            message = f"{actual} bytes on disk, server announced {task.size}"
            self.control.reject(task, SizeMismatchError(message, name=task.name))
            return
        if not isinstance(result, ExtractReport):
            self.control.reject(
                task, result or ExtractionError("extraction did not run", shard=task.name)
            )
            return
        expected = self.config.checksums.get(task.name)
        if expected is not None and result.digest != expected.hexdigest:
            self._digest_mismatch(task, expected.algorithm, result.digest or "?")
            return
        for warning in result.warnings:
            log.warning("%s", warning)
        layout = self.config.extract.layout
        staging = self.extractors.staging(task.name)
        try:
            publish(result, staging=staging, out=self.config.out, layout=layout)
        except ExtractionError as error:  # a name clash, or a staged member lost
            self.control.reject(task, error)
            return
        index = [(str(m.path), m.offset, m.size) for m in result.index]
        self.store.set_extracted(task.id, layout, index)
        self.store.save_ranges({task.id: (task.generation, whole(task))})
        dispose_tar(self.config, task.name)
        self.store.set_status(task.id, "done")
        archive = archive_of(layout, task.name)
        into = f"into {archive}" if archive else "extracted"
        self.control.done(task, f"{len(result.members)} files {into}")

    def _digest_mismatch(self, task: Task, algorithm: str, digest: str) -> None:
        """Download once more from scratch; a second mismatch is the source's fault."""
        task.digest_failures += 1
        if task.digest_failures > 1:
            message = (
                f"{algorithm} {digest} does not match the checksums file, after a clean re-download"
            )
            self.control.reject(task, ChecksumMismatchError(message, name=task.name))
            return
        self.control.redownload(task, f"its {algorithm} does not match the checksums file")


def whole(task: Task) -> RangeSet:
    """Every byte of a file of known size."""
    assert task.size is not None
    return RangeSet([(0, task.size)])


def dispose_tar(config: DownloadConfig, name: str) -> None:
    """After extraction: keep the tar under its final name, or delete it."""
    partial = config.paths.partial(name)
    if config.extract is not None and config.extract.keep_tars:
        final = config.paths.final(name)
        final.parent.mkdir(exist_ok=True)
        os.replace(partial, final)
        fsync_dir(final.parent)
    else:
        partial.unlink(missing_ok=True)
