"""What the state store keeps of the member map of a shard repacked into a bucket
(``--layout wds``, ``--only json`` into ``s3://``; :mod:`sa1b.repack`).

Per shard: the size and validators of the source the map is of, and where its walk of
the headers goes on (the shard's size once it ended); the members found, saved in
pieces (each the members found since the piece before, so a save costs the new ones
only), with the mtime each header gives (the new tar's headers keep it). The map
outlives the upload that uses it (an upload begun or dropped leaves it), so a rerun cuts
the same parts again; it goes once the object is complete, or when the source changes.
"""

from __future__ import annotations

import zlib
from collections.abc import Iterable
from dataclasses import dataclass

from sa1b.repack import Mapped
from sa1b.store.state import StateStore
from sa1b.versions import Validator


@dataclass(frozen=True, slots=True)
class MapRecord:
    """One shard's member map as the store knows it."""

    size: int
    validator: Validator
    next: int
    members: tuple[Mapped, ...]

    @property
    def complete(self) -> bool:
        return self.next >= self.size


@dataclass(frozen=True, slots=True)
class MapStart:
    """A map of a new source (or a new version of it) begun: whatever was known is void."""

    file_id: int
    size: int
    validator: Validator


@dataclass(frozen=True, slots=True)
class MapReached:
    """A map's progress to save: where its walk goes on, the members found since."""

    file_id: int
    next: int
    members: tuple[Mapped, ...]


@dataclass(frozen=True, slots=True)
class MapForgotten:
    """A map of no use any more (its object complete, or its source changed)."""

    file_id: int


MapChange = MapStart | MapReached | MapForgotten


def load_map(store: StateStore, file_id: int) -> MapRecord | None:
    with store.transaction() as db:
        row = db.execute(
            "SELECT size, etag, last_modified, next FROM repack_maps WHERE file_id = ?",
            (file_id,),
        ).fetchone()
        blobs = db.execute(
            "SELECT members FROM repack_map_parts WHERE file_id = ? ORDER BY upto", (file_id,)
        ).fetchall()
    if row is None:
        return None
    size, etag, last_modified, next_header = row
    members = tuple(member for (blob,) in blobs for member in _unpack(blob))
    return MapRecord(size, Validator(etag, last_modified), next_header, members)


def save_maps(store: StateStore, records: Iterable[MapChange]) -> None:
    """The maps' changes, in the order they happened, in one transaction."""
    folded = _folded(records)
    if not folded:
        return
    with store.transaction() as db:
        for record in folded:
            if isinstance(record, MapReached):
                if record.members:
                    db.execute(
                        "INSERT OR REPLACE INTO repack_map_parts VALUES (?, ?, ?)",
                        (record.file_id, record.next, _pack(record.members)),
                    )
                db.execute(
                    "UPDATE repack_maps SET next = ? WHERE file_id = ?",
                    (record.next, record.file_id),
                )
                continue
            db.execute("DELETE FROM repack_map_parts WHERE file_id = ?", (record.file_id,))
            db.execute("DELETE FROM repack_maps WHERE file_id = ?", (record.file_id,))
            if isinstance(record, MapStart):
                validator = record.validator
                db.execute(
                    "INSERT INTO repack_maps VALUES (?, ?, ?, ?, 0)",
                    (record.file_id, record.size, validator.etag, validator.last_modified),
                )


def _folded(records: Iterable[MapChange]) -> list[MapChange]:
    """The records with each run of a map's progress (nothing else of its file between)
    folded into one: a map reports after every header, a save keeps one piece a file."""
    folded: list[MapChange] = []
    gathered: dict[int, list[Mapped]] = {}  # a run's place in ``folded``: its members
    runs: dict[int, int] = {}  # file id -> the place of its run going on
    for record in records:
        at = runs.get(record.file_id)
        if isinstance(record, MapReached) and at is not None:
            gathered[at].extend(record.members)
            folded[at] = record
            continue
        if isinstance(record, MapReached):
            runs[record.file_id] = len(folded)
            gathered[len(folded)] = list(record.members)
        else:
            runs.pop(record.file_id, None)
        folded.append(record)
    for at, members in gathered.items():
        reached = folded[at]
        assert isinstance(reached, MapReached)
        folded[at] = MapReached(reached.file_id, reached.next, tuple(members))
    return folded


def _pack(members: Iterable[Mapped]) -> bytes:
    lines = "".join(f"{m.name}\t{m.offset}\t{m.size}\t{m.mtime}\n" for m in members)
    return zlib.compress(lines.encode())


def _unpack(blob: bytes) -> list[Mapped]:
    rows = [line.split("\t") for line in zlib.decompress(blob).decode().splitlines()]
    return [Mapped(name, int(at), int(size), int(mtime)) for name, at, size, mtime in rows]
