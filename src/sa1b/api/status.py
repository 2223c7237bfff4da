"""What an output folder holds, over every store in it, read while downloads run."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

from sa1b.api.stores import store_label, worker_of
from sa1b.ranges import RangeSet
from sa1b.records import FileRecord, RunRecord, furthest
from sa1b.split import WorkerPart
from sa1b.store.journal import Journal, Span, fold
from sa1b.store.paths import OutputPaths
from sa1b.store.resume import checkpoints
from sa1b.store.shards import ShardState, shard_state
from sa1b.store.state import StateStore, folder_stores, lock_holder
from sa1b.store.walks import WalkRecord, load_walks


@dataclass(frozen=True, slots=True)
class StoreStatus:
    """One store's records: the whole download's, or one worker's of a split one. The
    bytes a running or killed download wrote since its last commit (from its crash
    journal) are counted in."""

    worker: WorkerPart | None
    files: tuple[FileRecord, ...]
    last_run: RunRecord | None
    running: int | None = None
    """The process id of a download working with this store now, if any (0: unknown)."""
    walks: Mapping[str, WalkRecord] = field(default_factory=dict)
    """The shards walked by range reads (``--only``), by name."""

    @property
    def label(self) -> str:
        return store_label(self.worker)

    @property
    def shards(self) -> tuple[ShardState, ...]:
        """Each file's state, by this store alone."""
        return tuple(shard_state(record, self.walks.get(record.name)) for record in self.files)


@dataclass(frozen=True, slots=True)
class FolderStatus:
    """What an output folder holds, over every store in it (one per worker of a split
    download): each file as far as any store got with it, and each store apart."""

    stores: tuple[StoreStatus, ...]

    @property
    def files(self) -> tuple[FileRecord, ...]:
        """Each file once, by name: the furthest record of it in any store."""
        chosen = furthest(record for store in self.stores for record in store.files)
        return tuple(sorted(chosen.values(), key=lambda record: record.name))

    @property
    def walks(self) -> dict[str, WalkRecord]:
        """Each walked shard once: the furthest walk of it in any store."""
        found: dict[str, WalkRecord] = {}
        for store in self.stores:
            for name, walk in store.walks.items():
                known = found.get(name)
                if known is None or (walk.complete, walk.next) > (known.complete, known.next):
                    found[name] = walk
        return found

    @property
    def shards(self) -> tuple[ShardState, ...]:
        """Each file's state, by name: its furthest record with its furthest walk."""
        walks = self.walks
        return tuple(shard_state(record, walks.get(record.name)) for record in self.files)

    @property
    def last_run(self) -> RunRecord | None:
        runs = [store.last_run for store in self.stores if store.last_run is not None]
        return max(runs, key=lambda run: run.started_at, default=None)

    @property
    def running(self) -> int | None:
        """A process id of a download working in the folder now, if any (0: unknown)."""
        return next((s.running for s in self.stores if s.running is not None), None)

    @property
    def ok(self) -> bool:
        """No file failed or expired."""
        return all(shard.state not in ("failed", "expired") for shard in self.shards)


def status(out: Path, *, state: Path | None = None) -> FolderStatus:
    """Read an output folder's state (works while downloads are running): its own store
    and every worker's, or only the store in ``state`` when it lives elsewhere."""
    found = [OutputPaths.of(out, state)] if state is not None else folder_stores(out)
    return FolderStatus(tuple(_store_status(paths) for paths in found or [OutputPaths.of(out)]))


def _store_status(paths: OutputPaths) -> StoreStatus:
    with StateStore(paths.out, state=paths.state, lock=False, create=False) as store:
        records, last_run, walks = store.records(), store.last_run(), load_walks(store)
        saved = checkpoints(store)
    spans = Journal.recover(paths.journal)
    files = tuple(_with_checkpoints(_with_journal(records, spans), saved))
    walked = {r.name: walks[r.id] for r in records if r.id in walks}
    return StoreStatus(worker_of(paths), files, last_run, lock_holder(paths), walked)


def _with_checkpoints(
    records: Sequence[FileRecord], saved: Mapping[int, tuple[int, int | None]]
) -> list[FileRecord]:
    """Records of shards extracted with no tar (no bytes of a tar recorded) with the
    bytes below their extraction's checkpoint: what a rerun keeps of them."""

    def kept(record: FileRecord) -> RangeSet:
        generation, at = saved.get(record.id, (None, 0))
        if generation != record.generation or record.ranges or not record.size:
            return record.ranges
        below = record.size if at is None else at
        return RangeSet([(0, below)]) if below else record.ranges

    return [replace(record, ranges=kept(record)) for record in records]


def _with_journal(records: Sequence[FileRecord], spans: Sequence[Span]) -> list[FileRecord]:
    """Records with what a running or killed download wrote since its last commit."""
    return [
        replace(
            record,
            ranges=fold(
                record.ranges, spans, file_id=record.id, generation=record.generation, size=size
            ),
        )
        if (size := record.size) and record.status != "done"
        else record
        for record in records
    ]
