"""Durability: written bytes reach the disk (``fdatasync``) before the store records
them, so the store never runs ahead of the disk; and descriptors close only when no
write can still be on its way to them. Once synced, the pages of a file the run does not
read again leave the page cache (:func:`sa1b.store.writeback.sync_files` says why)."""

from __future__ import annotations

import logging
import os
import sqlite3
import time

from sa1b.engine.run import Run
from sa1b.engine.tasks import Task
from sa1b.errors import StorageError
from sa1b.store.writeback import drop_cached, start_writeback

logger = logging.getLogger(__name__)


def commit(run: Run, *, transient: bool = True) -> None:
    """Make written bytes durable, then record them.

    With ``transient=False``, tars that will be deleted once extracted are left out:
    syncing them would write every shard to disk twice (tar, then files), and a killed
    run resumes them from the journal anyway.
    """
    with run.lock:
        pending = {}
        for task in run.tasks:
            if task.plan is None or task.fd is None or task.state in ("done", "opening"):
                continue  # an opening file: its restart or size may not be in the store yet
            if not transient and run.transient(task):
                continue
            spans = task.plan.written()
            if spans != task.recorded:
                # A duplicate, so that the publisher may close the task's own meanwhile.
                pending[task.id] = (task, os.dup(task.fd), task.generation, spans)
        dropping = {task.id for task, *_ in pending.values() if not run.read_again(task)}
    started = time.monotonic()
    try:
        for task, fd, _, _ in pending.values():
            os.fdatasync(fd)
            if task.id in dropping:
                drop_cached(fd)
        run.store.save_ranges({i: (gen, spans) for i, (_, _, gen, spans) in pending.items()})
        if pending:  # benchmarks/soak.py reads this: checkpoint time must stay flat for hours
            logger.debug(
                "commit: %d files synced and recorded in %.1f ms",
                len(pending),
                (time.monotonic() - started) * 1000,
            )
    except OSError as error:
        run.fatal = StorageError(f"cannot sync partial files: {error.strerror}")
        return
    except StorageError as error:  # the store's disk is full or failing
        run.fatal = error
        return
    finally:
        for _, fd, _, _ in pending.values():
            os.close(fd)
    with run.lock:
        for task, _, generation, spans in pending.values():
            if task.generation == generation:
                task.recorded = spans


def copy_state(run: Run) -> None:
    """Refresh the copy of the store that another machine may continue from (after a
    commit, so that the copy never runs ahead of the disk either)."""
    folder = run.config.state_copy
    if folder is None or run.fatal:
        return
    try:
        run.store.copy_to(folder)
    except StorageError as error:
        run.fatal = error
    except (OSError, sqlite3.Error) as error:
        run.fatal = StorageError(f"{folder}: cannot copy the state store there: {error}")


def start_writing_back(run: Run) -> None:
    """Let the disk work while the network does, so that syncs find little left."""
    with run.lock:
        fds = [
            os.dup(t.fd)
            for t in run.tasks
            if t.fd is not None and t.state == "active" and not run.transient(t)
        ]
    try:
        for fd in fds:
            start_writeback(fd)
    except OSError as error:
        run.fatal = StorageError(f"cannot write partial files: {error.strerror}")
    finally:
        for fd in fds:
            os.close(fd)


def close_file(task: Task) -> None:
    """Close a file's descriptor once no write can be between its check and its
    ``pwrite``: the number may be reused at once, by another file."""
    with task.writing:
        if task.fd is not None:
            os.close(task.fd)
            task.fd = None


def close_files(run: Run) -> None:
    with run.lock:
        for task in run.tasks:
            close_file(task)
