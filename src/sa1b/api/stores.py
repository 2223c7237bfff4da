"""The other stores of an output folder: whose they are, and whether a run may work
beside them (the workers of one split download may; any other pair may not)."""

from __future__ import annotations

import logging
from pathlib import Path

from sa1b.errors import StateError, StateLockedError
from sa1b.split import WorkerPart
from sa1b.store.paths import WORKERS, OutputPaths
from sa1b.store.resume import OtherRecord, load_packed_resume
from sa1b.store.state import StateStore, folder_stores, lock_holder

log = logging.getLogger(__name__)


def other_records(
    paths: OutputPaths, worker: WorkerPart | None, own_copy: Path | None
) -> dict[str, list[OtherRecord]]:
    """The records of the folder's other stores, by name; refuses to run beside a
    download whose files may be ours (the whole download beside a worker, or workers of
    different counts): two processes would write the same partial files."""
    others: dict[str, list[OtherRecord]] = {}
    ours = {paths.state.resolve(), *([own_copy.resolve()] if own_copy else [])}
    for other in folder_stores(paths.out):
        if other.state.resolve() in ours:
            continue
        holder = lock_holder(other)
        if holder is not None and _may_overlap(worker, other):
            raise StateLockedError(
                f"{paths.out}: {store_label(worker_of(other))} is downloading into this folder "
                f"(pid {holder or '?'})"
            )
        try:
            with StateStore(paths.out, state=other.state, lock=False, create=False) as store:
                for record in store.records():
                    checkpoint = load_packed_resume(store, record.id, record.generation)
                    others.setdefault(record.name, []).append(OtherRecord(record, checkpoint))
        except StateError as error:
            log.warning("%s; its records are not used", error.message)
    return others


def _may_overlap(worker: WorkerPart | None, other: OutputPaths) -> bool:
    """Whether ``other``'s run may take files of ours: other workers of one split never do."""
    theirs = worker_of(other)
    if worker is None or theirs is None:
        return True
    return theirs.count != worker.count or theirs.index == worker.index


def worker_of(paths: OutputPaths) -> WorkerPart | None:
    """The worker whose store ``paths`` holds (``.sa1b/workers/3-of-8``), if any."""
    if paths.state.parent.name != WORKERS:
        return None
    index, _, count = paths.state.name.partition("-of-")
    if not (index.isdigit() and count.isdigit()):
        return None
    return WorkerPart(int(index), int(count), "store")


def store_label(worker: WorkerPart | None) -> str:
    """``worker 3 of 8``, or ``the whole download`` for a store of no worker."""
    return worker.label if worker else "the whole download"
