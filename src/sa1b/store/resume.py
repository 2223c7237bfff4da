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

from dataclasses import dataclass

from sa1b.records import FileRecord
from sa1b.store.state import StateStore, pack_members, unpack_members
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
class OtherRecord:
    """Another store's record of a file (a split download's worker), with its
    extraction's saved checkpoint: a run that continues from the record goes on from
    the checkpoint too, since the tar below it may be freed."""

    record: FileRecord
    checkpoint: Resume | None = None


def save_resume(store: StateStore, file_id: int, generation: int, resume: Resume) -> None:
    """Save the checkpoint (the caller synced the staged members it names first)."""
    entries = [(entry.name, entry.offset, entry.size) for entry in resume.entries]
    with store.transaction() as db:
        db.execute(
            "INSERT OR REPLACE INTO extractions VALUES (?, ?, ?, ?, ?)",
            (
                file_id,
                generation,
                -1 if resume.next is None else resume.next,
                pack_members(entries),
                pack_members(resume.members),
            ),
        )


def load_resume(store: StateStore, file_id: int, generation: int) -> Resume | None:
    """The file's checkpoint at ``generation``, if one was saved."""
    with store.transaction() as db:
        row = db.execute(
            "SELECT next, entries, members FROM extractions WHERE file_id = ? AND generation = ?",
            (file_id, generation),
        ).fetchone()
    if row is None:
        return None
    next_header, entries, members = row
    return Resume(
        None if next_header < 0 else next_header,
        tuple(Entry(*entry) for entry in unpack_members(entries)),
        tuple(unpack_members(members)),
    )


def checkpoints(store: StateStore) -> dict[int, tuple[int, int | None]]:
    """Every file's saved checkpoints: (generation, where it goes on from; None: every
    member staged), by file id."""
    with store.transaction() as db:
        rows = db.execute("SELECT file_id, generation, next FROM extractions").fetchall()
    return {file_id: (generation, None if at < 0 else at) for file_id, generation, at in rows}
