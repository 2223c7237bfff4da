"""What the state store keeps of each shard streamed into a multipart upload (``-o s3://``).

Per shard: the upload's id, the size and validators of the source it was begun for, and
its part size; per part, its number, ETag, size and SHA-256, saved only once UploadPart
succeeded (a part is never recorded before the bucket holds it; the bucket may hold a
part the store has not recorded yet, which start-up finds by ListParts); and where the
walk of its tar goes on (:class:`WalkPoint`), so that a rerun continues the walk without
the parts before it. The walk's catalog is saved in pieces, each the entries found since
the piece before, so that a save costs the new entries only. The rows go once the object
is complete (or its upload aborted).

:func:`recorded_uploads` reads the uploads a copy of a store records (the state copy in
the bucket, ``PREFIX/.sa1b/state.db``), read-only, for ``sa1b status`` and ``clean``.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from sa1b.store.state import StateStore, pack_members, unpack_members
from sa1b.tarwalk import Entry
from sa1b.versions import Validator


@dataclass(frozen=True, slots=True)
class StoredPart:
    """A part the bucket took: its number, ETag, size and SHA-256 (base64)."""

    number: int
    etag: str
    size: int
    sha256: str


@dataclass(frozen=True, slots=True)
class UploadRecord:
    """One shard's multipart upload as the store knows it."""

    upload_id: str
    size: int
    validator: Validator
    part_size: int
    parts: dict[int, StoredPart]
    """By number."""
    walk: WalkPoint | None = None
    """Where the walk of its tar goes on, if it began."""


@dataclass(frozen=True, slots=True)
class WalkPoint:
    """Where the walk of a shard being uploaded goes on (:attr:`sa1b.tarwalk.TarWalk.
    resume_point`): the offset of the header it reads next (the shard's size once the
    walk has ended), and every member before it."""

    next: int
    entries: tuple[Entry, ...]


@dataclass(frozen=True, slots=True)
class UploadStart:
    """An upload begun: its row to save (before any of its parts)."""

    file_id: int
    upload_id: str
    size: int
    validator: Validator
    part_size: int


@dataclass(frozen=True, slots=True)
class PartDone:
    """A part the bucket took: its row to save."""

    file_id: int
    part: StoredPart


@dataclass(frozen=True, slots=True)
class WalkReached:
    """A walk's progress to save: where it goes on, and the entries found since the
    last save."""

    file_id: int
    next: int
    entries: tuple[Entry, ...]


@dataclass(frozen=True, slots=True)
class UploadForgotten:
    """An upload of wrong data, aborted: its rows to drop."""

    file_id: int


def load_upload(store: StateStore, file_id: int) -> UploadRecord | None:
    with store.transaction() as db:
        row = db.execute(
            "SELECT upload_id, size, etag, last_modified, part_size FROM uploads WHERE file_id = ?",
            (file_id,),
        ).fetchone()
        if row is None:
            return None
        parts = db.execute(
            "SELECT number, etag, size, sha256 FROM upload_parts WHERE file_id = ?", (file_id,)
        ).fetchall()
        walked = db.execute(
            "SELECT upto, members FROM upload_walks WHERE file_id = ? ORDER BY upto", (file_id,)
        ).fetchall()
    upload_id, size, etag, last_modified, part_size = row
    walk = None
    if walked:
        entries = (Entry(*fields) for _, blob in walked for fields in unpack_members(blob))
        walk = WalkPoint(walked[-1][0], tuple(entries))
    return UploadRecord(
        upload_id,
        size,
        Validator(etag, last_modified),
        part_size,
        {n: StoredPart(n, tag, length, sha) for n, tag, length, sha in parts},
        walk,
    )


UploadChange = UploadStart | PartDone | WalkReached | UploadForgotten
"""A change to an upload's rows, to save in the order it happened."""


def save_uploads(store: StateStore, records: Iterable[UploadChange]) -> None:
    """Uploads begun, parts taken and walks' progress, in the order they happened, in
    one transaction; an upload begun gives its file its size and validators (status
    ``partial``)."""
    with store.transaction() as db:
        for record in coalesced(records):
            if isinstance(record, UploadForgotten):
                _forget(db, record.file_id)
            elif isinstance(record, WalkReached):
                members = [(e.name, e.offset, e.size) for e in record.entries]
                db.execute(
                    "INSERT OR REPLACE INTO upload_walks VALUES (?, ?, ?)",
                    (record.file_id, record.next, pack_members(members)),
                )
            elif isinstance(record, UploadStart):
                _forget(db, record.file_id)
                validator = record.validator
                db.execute(
                    "UPDATE files SET size = ?, etag = ?, last_modified = ?, status = 'partial', "
                    "error = NULL, updated_at = ? WHERE id = ?",
                    (record.size, validator.etag, validator.last_modified, time.time(),
                     record.file_id),
                )  # fmt: skip
                db.execute(
                    "INSERT OR REPLACE INTO uploads VALUES (?, ?, ?, ?, ?, ?)",
                    (
                        record.file_id,
                        record.upload_id,
                        record.size,
                        record.validator.etag,
                        record.validator.last_modified,
                        record.part_size,
                    ),
                )
            else:
                part = record.part
                db.execute(
                    "INSERT OR REPLACE INTO upload_parts VALUES (?, ?, ?, ?, ?)",
                    (record.file_id, part.number, part.etag, part.size, part.sha256),
                )


def finish_upload(store: StateStore, file_id: int, *, done: bool = True) -> None:
    """The upload is complete (``done``: the file is recorded done with it), or aborted
    or gone: its rows are void."""
    with store.transaction() as db:
        _forget(db, file_id)
        if done:
            db.execute(
                "UPDATE files SET status = 'done', error = NULL, updated_at = ? WHERE id = ?",
                (time.time(), file_id),
            )


def coalesced(records: Iterable[UploadChange]) -> list[UploadChange]:
    """The records with each run of a walk's progress (no upload of its file begun or
    forgotten between) folded into one: a walk reports after every part, a save keeps
    one piece of catalog per file."""
    folded: list[UploadChange] = []
    walking: dict[int, int] = {}  # file id -> where its progress so far is in ``folded``
    for record in records:
        at = walking.get(record.file_id)
        if isinstance(record, WalkReached) and at is not None:
            before = folded[at]
            assert isinstance(before, WalkReached)
            folded[at] = WalkReached(record.file_id, record.next, before.entries + record.entries)
            continue
        if isinstance(record, WalkReached):
            walking[record.file_id] = len(folded)
        elif not isinstance(record, PartDone):
            walking.pop(record.file_id, None)
        folded.append(record)
    return folded


def _forget(db: sqlite3.Connection, file_id: int) -> None:
    db.execute("DELETE FROM upload_walks WHERE file_id = ?", (file_id,))
    db.execute("DELETE FROM upload_parts WHERE file_id = ?", (file_id,))
    db.execute("DELETE FROM uploads WHERE file_id = ?", (file_id,))


@dataclass(frozen=True, slots=True)
class RecordedUpload:
    """The upload a store records for a file: its id, and its file's size and part size
    (its part plan)."""

    upload_id: str
    size: int
    part_size: int


def recorded_uploads(database: Path) -> dict[str, RecordedUpload]:
    """The uploads the store at ``database`` records, by file name; opened read-only
    (a copy from the bucket: nothing of it is changed)."""
    uri = f"{database.resolve().as_uri()}?mode=ro"
    with contextlib.closing(sqlite3.connect(uri, uri=True)) as db:
        rows = db.execute(
            "SELECT files.name, uploads.upload_id, uploads.size, uploads.part_size "
            "FROM uploads JOIN files ON files.id = uploads.file_id"
        ).fetchall()
    return {
        name: RecordedUpload(str(upload_id), size, part) for name, upload_id, size, part in rows
    }


def seed_from_copy(database: Path, data: bytes) -> None:
    """Start a local store from the state copy another machine put in the bucket (no
    local state here): written whole, then unbound from that machine's folder, which
    this one is not (its partial files' records would otherwise be voided)."""
    database.parent.mkdir(parents=True, exist_ok=True)
    fresh = database.with_name(f"{database.name}.seed")
    fresh.write_bytes(data)
    with contextlib.closing(sqlite3.connect(fresh)) as db, db:
        db.execute("DELETE FROM meta WHERE key IN ('folder', 'folder_id')")
    os.replace(fresh, database)
