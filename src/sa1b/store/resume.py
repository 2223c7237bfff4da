"""Where a shard's extraction goes on after a crash: its last saved checkpoint.

The extractor of a shard whose tar is freed behind it (:mod:`sa1b.holes`) saves, now
and then, the tar offset of a member boundary with the catalog and the member index
before it, once every member before it is staged and synced; the bytes below it may be
punched only after. A checkpoint belongs to one generation of the file: a restart of
the file (a new version, a corrupt archive) voids it (:meth:`StateStore.restart`
deletes it, and one of another generation is never loaded); recording the shard as
extracted deletes it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import PurePosixPath
from typing import Protocol

from sa1b.records import FileRecord
from sa1b.store.state import MemberPacker, StateStore, unpack_members
from sa1b.tarwalk import Entry


@dataclass(frozen=True, slots=True)
class Resume:
    """A saved checkpoint: the walk goes on at ``next`` with ``entries`` before it; the
    ``members`` (path in staging, data offset, size) are staged and synced. ``next`` is
    None when the walk had ended (every member is staged: publishing was under way)."""

    next: int | None
    entries: tuple[Entry, ...]
    members: tuple[tuple[str, int, int], ...]


@dataclass(frozen=True, slots=True)
class PackedResume:
    """A checkpoint as it is saved: :class:`Resume` with its rows packed
    (:func:`~sa1b.store.state.pack_members`)."""

    next: int | None
    entries: bytes
    members: bytes

    def unpacked(self) -> Resume:
        return Resume(
            self.next,
            tuple(Entry(*entry) for entry in unpack_members(self.entries)),
            tuple(unpack_members(self.members)),
        )


class Staged(Protocol):
    """A member staged (:class:`sa1b.extract.shard.Member`): where it went, where its
    data lies in the tar."""

    @property
    def path(self) -> PurePosixPath: ...
    @property
    def offset(self) -> int: ...
    @property
    def size(self) -> int: ...


class Ledger:
    """A shard's checkpoints as its walk goes on: the catalog and the staged members
    only grow (parallel lists, in the tar's order), so each row is packed once, by the
    first checkpoint that names it."""

    def __init__(self, resume: Resume | None = None) -> None:
        self._entries, self._members = MemberPacker(), MemberPacker()
        self.count = 0
        """The rows packed so far."""
        if resume is not None:
            self._entries.add((entry.name, entry.offset, entry.size) for entry in resume.entries)
            self._members.add(resume.members)
            self.count = len(resume.members)

    def checkpoint(
        self, at: int | None, entries: Sequence[Entry], members: Sequence[Staged], count: int
    ) -> PackedResume:
        """The checkpoint at ``at`` with the first ``count`` of ``entries`` and
        ``members`` before it (those before :attr:`count` are the ones packed already)."""
        new = range(self.count, count)
        self._entries.add((entries[i].name, entries[i].offset, entries[i].size) for i in new)
        self._members.add((str(members[i].path), members[i].offset, members[i].size) for i in new)
        self.count = count
        return PackedResume(at, self._entries.packed(), self._members.packed())


@dataclass(frozen=True, slots=True)
class OtherRecord:
    """Another store's record of a file (a split download's worker), with its
    extraction's saved checkpoint: a run that continues from the record goes on from
    the checkpoint too, since the tar below it may be freed."""

    record: FileRecord
    checkpoint: PackedResume | None = None


def save_resume(store: StateStore, file_id: int, generation: int, checkpoint: PackedResume) -> None:
    """Save the checkpoint (the caller synced the staged members it names first)."""
    with store.transaction() as db:
        db.execute(
            "INSERT OR REPLACE INTO extractions VALUES (?, ?, ?, ?, ?)",
            (
                file_id,
                generation,
                -1 if checkpoint.next is None else checkpoint.next,
                checkpoint.entries,
                checkpoint.members,
            ),
        )


def load_packed_resume(store: StateStore, file_id: int, generation: int) -> PackedResume | None:
    """The file's checkpoint at ``generation``, if one was saved."""
    with store.transaction() as db:
        row = db.execute(
            "SELECT next, entries, members FROM extractions WHERE file_id = ? AND generation = ?",
            (file_id, generation),
        ).fetchone()
    if row is None:
        return None
    next_header, entries, members = row
    return PackedResume(None if next_header < 0 else next_header, entries, members)


def load_resume(store: StateStore, file_id: int, generation: int) -> Resume | None:
    """The file's checkpoint at ``generation``, unpacked, if one was saved."""
    checkpoint = load_packed_resume(store, file_id, generation)
    return None if checkpoint is None else checkpoint.unpacked()


def checkpoints(store: StateStore) -> dict[int, tuple[int, int | None]]:
    """Every file's saved checkpoints: (generation, where it goes on from; None: every
    member staged), by file id."""
    with store.transaction() as db:
        rows = db.execute("SELECT file_id, generation, next FROM extractions").fetchall()
    return {file_id: (generation, None if at < 0 else at) for file_id, generation, at in rows}
