"""What the state store keeps of each shard walked by range reads (``--only``).

Per shard: the object's size and validators, where the walk goes on (its last
checkpoint, :attr:`sa1b.tarwalk.TarWalk.checkpoint`), whether it reached the end,
and what was published (``layout:kinds``, e.g. ``shard:json``). The catalog (every
member's name, data offset and size) is saved in parts, each the entries found since
the part before, so that a checkpoint costs the new entries only; a finished walk's
parts are folded into one. Everything a checkpoint names is on disk before it is
saved (the walker syncs its staging first).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import PurePosixPath

from sa1b.layout import RULES, shard_stem
from sa1b.store.state import StateStore, pack_members, unpack_members
from sa1b.tarwalk import Entry
from sa1b.versions import Validator


@dataclass(frozen=True, slots=True)
class WalkRecord:
    """One shard's walk as the store knows it."""

    size: int
    validator: Validator
    next: int
    complete: bool
    published: frozenset[str]
    """``layout:kind`` of every kind of member published, e.g. ``shard:json``."""
    entries: tuple[Entry, ...]

    def published_path(self, shard: str, entry: Entry) -> PurePosixPath | None:
        """Where the member was published in the output folder, if it was."""
        for layout, _, kind in (item.partition(":") for item in sorted(self.published)):
            if entry.name.lower().endswith(f".{kind}") and layout in RULES:
                return RULES[layout].place(entry.name, shard_stem(shard))
        return None

    def published_index(self, shard: str) -> list[tuple[str, int, int]]:
        """The published members as a member index: (path in the output folder, data
        offset in the tar, size), as extraction records one."""
        return [
            (str(path), entry.offset, entry.size)
            for entry in self.entries
            if (path := self.published_path(shard, entry)) is not None
        ]

    @property
    def kinds(self) -> frozenset[str]:
        """The kinds of member published (``json``, ``jpg``), in whatever layout."""
        return frozenset(item.partition(":")[2] for item in self.published)


@dataclass(frozen=True, slots=True)
class Checkpoint:
    """A walk's progress to save: the entries found since the last save, and where it
    goes on."""

    file_id: int
    next: int
    entries: tuple[Entry, ...]


def load_walk(store: StateStore, file_id: int) -> WalkRecord | None:
    """The walk of one shard, if it has begun."""
    return load_walks(store, file_id).get(file_id)


def load_walks(store: StateStore, file_id: int | None = None) -> dict[int, WalkRecord]:
    """Every walk the store knows (or ``file_id``'s alone), by file id."""
    where, params = ("WHERE file_id = ?", (file_id,)) if file_id is not None else ("", ())
    with store.transaction() as db:
        rows = db.execute(
            "SELECT file_id, size, etag, last_modified, next, complete, published FROM walks "
            + where,
            params,
        ).fetchall()
        parts: dict[int, list[Entry]] = {}
        for owner, blob in db.execute(
            f"SELECT file_id, members FROM walk_parts {where} ORDER BY file_id, upto", params
        ):
            parts.setdefault(owner, []).extend(Entry(*f) for f in unpack_members(blob))
    return {
        owner: WalkRecord(
            size,
            Validator(etag, last_modified),
            next_header,
            bool(complete),
            frozenset(filter(None, (published or "").split(","))),
            tuple(parts.get(owner, ())),
        )
        for owner, size, etag, last_modified, next_header, complete, published in rows
    }


def start_walk(store: StateStore, file_id: int, size: int, validator: Validator) -> None:
    """A walk of a new object (or a new version of it): whatever was known is void."""
    with store.transaction() as db:
        db.execute("DELETE FROM walk_parts WHERE file_id = ?", (file_id,))
        db.execute(
            "INSERT OR REPLACE INTO walks (file_id, size, etag, last_modified) VALUES (?, ?, ?, ?)",
            (file_id, size, validator.etag, validator.last_modified),
        )


def save_checkpoints(store: StateStore, checkpoints: Iterable[Checkpoint]) -> None:
    """Every walk's progress in one transaction (the caller synced the files first)."""
    with store.transaction() as db:
        for point in checkpoints:
            if point.entries:
                db.execute(
                    "INSERT OR REPLACE INTO walk_parts VALUES (?, ?, ?)",
                    (point.file_id, point.next, pack_members(_rows(point.entries))),
                )
            db.execute("UPDATE walks SET next = ? WHERE file_id = ?", (point.next, point.file_id))


def finish_walk(
    store: StateStore, file_id: int, entries: Sequence[Entry], published: Iterable[str]
) -> None:
    """The walk reached the end: its whole catalog as one part, and what is published."""
    with store.transaction() as db:
        db.execute("DELETE FROM walk_parts WHERE file_id = ?", (file_id,))
        db.execute(
            "INSERT INTO walk_parts VALUES (?, ?, ?)", (file_id, -1, pack_members(_rows(entries)))
        )
        db.execute(
            "UPDATE walks SET complete = 1, published = ? WHERE file_id = ?",
            (",".join(sorted(published)), file_id),
        )


def _rows(entries: Iterable[Entry]) -> list[tuple[str, int, int]]:
    return [(entry.name, entry.offset, entry.size) for entry in entries]


def forget_published(store: StateStore, file_id: int) -> None:
    """The shard's published members cannot be trusted (``sa1b verify --repair``): the
    next ``--only`` run fetches them again, by their ranges (the catalog stays)."""
    with store.transaction() as db:
        db.execute("UPDATE walks SET published = NULL WHERE file_id = ?", (file_id,))
