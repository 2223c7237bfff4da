"""Start-up: match each link with what the store and the disk say, and fold in what a
killed run wrote after its last record. The decisions are :mod:`sa1b.reconcile`'s
(:func:`~sa1b.reconcile.reconcile` for a whole file); this module gathers their facts
and carries them out. An item with a body is prepared by its kind (a walk's by
:meth:`sa1b.engine.walk.Walks.prepare`, an upload's by :meth:`sa1b.engine.uploads.
Uploads.prepare`)."""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Sequence
from pathlib import Path

from sa1b.engine.publisher import dispose_tar
from sa1b.engine.run import Run
from sa1b.engine.tasks import Task
from sa1b.errors import LinkExpiredError
from sa1b.holes import hole_end
from sa1b.layout import whole_units
from sa1b.lifecycle import next_state
from sa1b.links import Link, object_key
from sa1b.progress import FINAL_STATES, FileOutcome
from sa1b.ranges import RangeSet
from sa1b.reconcile import DiskFacts, freed, reconcile, record_to_adopt
from sa1b.records import FileRecord
from sa1b.store.allocation import holes
from sa1b.store.journal import Span, fold
from sa1b.store.resume import load_packed_resume, save_resume

log = logging.getLogger(__name__)


def prepare(run: Run, link: Link) -> Task:
    """The task of ``link`` fetched whole: gather the facts, let :mod:`sa1b.reconcile`
    decide, do it. (An item with a body is prepared by its kind:
    :meth:`~sa1b.engine.bodies.Kind.prepare`.)"""
    config, store = run.config, run.store
    record = store.register(link.name, object_key(link.url))
    others = run.others.get(link.name, ())
    adopted = record_to_adopt(record, [other.record for other in others])
    if adopted is not None:
        log.info("%s: continuing from the record of another store of this folder", link.name)
        record = store.adopt(record.id, adopted)
        checkpoint = next(other.checkpoint for other in others if other.record is adopted)
        if checkpoint is not None:  # (a crash before this: start-up finds the holes)
            save_resume(store, record.id, record.generation, checkpoint)
    failures = config.failure_account()
    task = Task(link=link, id=record.id, generation=record.generation, failures=failures)
    task.drains = not run.extracts(task)
    final, partial = config.paths.final(link.name), config.paths.partial(link.name)
    extracted = record.extracted
    disk = DiskFacts(
        final_size=size_of(final),
        partial_size=size_of(partial),
        extraction_present=_extraction_present(config.out, link.name, extracted),
        checkpointed=_checkpointed(run, record),
    )
    expired = link.expires_at is not None and link.expires_at <= time.time()
    layout = config.extract.layout if config.extract else None
    action = reconcile(record, disk, extracts=run.extracts(task), layout=layout, expired=expired)
    if action.warning:
        log.warning("%s: %s", link.name, action.warning)
    if action.restart:
        task.generation = store.restart(record.id)
    size = None if action.restart else record.size
    if action.start == "extracted":
        if action.dispose_partial:  # a crash between record and clean-up
            dispose_tar(config, task.name)
        task.state, task.size = next_state(task.state, "found-done"), size
        task.outcome = FileOutcome(link.name, "done", size, "already extracted")
    elif action.start == "extract-kept-tar":
        os.replace(final, partial)
        store.set_status(record.id, "partial")
        task.size, task.validator = size, record.validator
        task.recorded = RangeSet([(0, disk.final_size or 0)])
    elif action.start == "on-disk":
        if action.mark_done:
            store.set_status(record.id, "done")
        task.state, task.size = next_state(task.state, "found-done"), size
        task.outcome = FileOutcome(link.name, "done", size, "already on disk")
    elif action.start == "resume":
        task.size, task.validator, task.recorded = size, record.validator, record.ranges
    elif action.start == "expired":
        # No request can succeed: say so now, keep every byte for a fresh links file.
        error = LinkExpiredError("the signed link expired before this run", name=link.name)
        store.set_status(record.id, "expired", error.message)
        task.state, task.halted, task.size = next_state(task.state, "found-expired"), True, size
        task.outcome = FileOutcome(link.name, "expired", size, error.message, error.hint)
    else:
        task.unrecorded_final = action.adopt_final
    return task


def _holes(path: Path, size: int | None) -> RangeSet:
    """The holes of the partial file at ``path`` within its ``size``; none without one."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return RangeSet()
    try:
        return RangeSet(holes(fd, size or 0))
    finally:
        os.close(fd)


def _checkpoint_end(run: Run, task: Task) -> int:
    """Where this run's extraction of ``task`` goes on from its saved checkpoint: the
    bytes below it are never read again (0 when it starts at the beginning)."""
    if not run.frees(task):
        return 0  # this run reads the whole tar (see sa1b.holes)
    saved = load_packed_resume(run.store, task.id, task.generation)
    if saved is None:
        return 0
    return task.size or 0 if saved.next is None else hole_end(saved.next)


def _checkpointed(run: Run, record: FileRecord) -> bool:
    """Whether a saved checkpoint of its extraction names members staged: asked of the
    store only for a record :func:`~sa1b.reconcile.reconcile` could take for a shard
    extracted with no tar (sized, no bytes of a tar recorded), not of every file."""
    if record.ranges or record.size is None:
        return False
    saved = load_packed_resume(run.store, record.id, record.generation)
    return saved is not None and saved.next is not None


def size_of(path: Path) -> int | None:
    """The size of the file at ``path``, or None when there is none."""
    try:
        return path.stat().st_size
    except OSError:
        return None


def _extraction_present(out: Path, name: str, layout: str | None) -> bool:
    """Whether a recorded extraction is still there: one of its folders at least, or
    its tar (``wds``); a ``flat`` extraction has none of its own, and is taken as present."""
    units = whole_units(layout, name) if layout else ()
    return not units or any((out / unit).exists() for unit in units)


def recover(run: Run, spans: Sequence[Span]) -> None:
    """Fold in what a killed run wrote after its last durable record: synced, then
    recorded, so that the store never runs ahead of the disk."""
    touched: list[Task] = []
    for task in run.tasks:
        if task.body is not None or task.size is None or task.state in FINAL_STATES:
            continue  # the journal notes writes into partial files only
        folded = fold(
            task.recorded, spans, file_id=task.id, generation=task.generation, size=task.size
        )
        if folded != task.recorded:
            task.recorded = folded
            touched.append(task)
    if touched:
        for task in touched:
            fd = os.open(run.config.paths.partial(task.name), os.O_RDWR)
            try:
                os.fdatasync(fd)
            finally:
                os.close(fd)
        run.store.save_ranges({t.id: (t.generation, t.recorded) for t in touched})
        log.info("recovered unrecorded progress of %d file(s) from the journal", len(touched))
    _forget_freed(run)


def _forget_freed(run: Run) -> None:
    """Unrecord the bytes freed behind an extraction that this run does not go on from
    (:func:`sa1b.reconcile.freed`): they are fetched again, never read as zeros."""
    forgotten: list[Task] = []
    for task in run.tasks:
        if task.body is not None or not task.recorded or task.state in FINAL_STATES:
            continue
        holes = _holes(run.config.paths.partial(task.name), task.size)
        lost = freed(task.recorded, holes, keep_below=_checkpoint_end(run, task))
        if lost:
            log.warning(
                "%s: %d recorded bytes of its tar were freed behind an extraction this run "
                "does not go on from (another store's, or other options); fetching them again",
                task.name,
                lost.total,
            )
            for start, end in lost:
                task.recorded.remove(start, end)
            forgotten.append(task)
    run.store.save_ranges({t.id: (t.generation, t.recorded) for t in forgotten})
