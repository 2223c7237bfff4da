"""The state store: one SQLite database (WAL) in the output folder.

It records, per file, the size and validators of the first answer, the byte ranges
that are durably on disk, and the outcome; and, per run, what it fetched and how
fast. The engine writes ranges only after ``fdatasync`` of the partial file, so the
store is never ahead of the disk. A lock file keeps a second process out.
"""

from __future__ import annotations

import fcntl
import os
import sqlite3
import threading
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from sa1b.errors import StateError, StateLockedError
from sa1b.ranges import RangeSet
from sa1b.responses import Validator

Status = Literal["pending", "partial", "done", "failed", "expired"]
STATE_DIR = ".sa1b"
SCHEMA_VERSION = 1

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS files (
    id INTEGER PRIMARY KEY,
    name TEXT NOT NULL UNIQUE,
    object_key TEXT NOT NULL,
    size INTEGER,
    etag TEXT,
    last_modified TEXT,
    generation INTEGER NOT NULL DEFAULT 0,
    status TEXT NOT NULL DEFAULT 'pending',
    error TEXT,
    extracted TEXT,
    updated_at REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS ranges (
    file_id INTEGER NOT NULL REFERENCES files(id),
    start INTEGER NOT NULL,
    end INTEGER NOT NULL,
    PRIMARY KEY (file_id, start)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS runs (
    id INTEGER PRIMARY KEY,
    started_at REAL NOT NULL,
    finished_at REAL,
    bytes INTEGER NOT NULL DEFAULT 0,
    outcome TEXT
);
"""


@dataclass(frozen=True, slots=True)
class FileRecord:
    """What the store knows of one file."""

    id: int
    name: str
    object_key: str
    size: int | None
    validator: Validator
    generation: int
    status: Status
    error: str | None
    ranges: RangeSet
    extracted: str | None = None
    """The layout the shard was extracted into, once all of it is in place."""

    @property
    def done_bytes(self) -> int:
        return self.size if self.status == "done" and self.size else self.ranges.total


@dataclass(frozen=True, slots=True)
class RunRecord:
    """One run of ``sa1b download``: when, how many bytes, and how it ended."""

    id: int
    started_at: float
    finished_at: float | None
    bytes: int
    outcome: str | None

    @property
    def speed(self) -> float | None:
        """Mean bytes per second, once the run has finished."""
        if self.finished_at is None or self.finished_at <= self.started_at:
            return None
        return self.bytes / (self.finished_at - self.started_at)


def state_dir(out: Path) -> Path:
    return out / STATE_DIR


class StateStore:
    """The output folder's SQLite store. Thread-safe; hold it with ``with``."""

    def __init__(self, out: Path, *, lock: bool = True, create: bool = True) -> None:
        self.out = out
        directory = state_dir(out)
        path = directory / "state.db"
        if not create and not path.exists():
            raise StateError(
                f"{out}: no sa1b state here", hint="pass the folder given to sa1b download -o"
            )
        directory.mkdir(parents=True, exist_ok=True)
        self._lock_fd: int | None = self._take_lock(directory) if lock else None
        self._mutex = threading.Lock()
        try:
            self._db = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=FULL")
            self._db.execute("PRAGMA busy_timeout=5000")
            self._db.executescript(_SCHEMA)
            columns = {row[1] for row in self._db.execute("PRAGMA table_info(files)")}
            if "extracted" not in columns:  # a store written before extraction existed
                self._db.execute("ALTER TABLE files ADD COLUMN extracted TEXT")
            self._db.execute(
                "INSERT OR IGNORE INTO meta VALUES ('schema', ?)", (str(SCHEMA_VERSION),)
            )
        except sqlite3.Error as error:
            self.close()
            raise StateError(f"{path}: cannot open the state store: {error}") from error

    def _take_lock(self, directory: Path) -> int:
        fd = os.open(directory / "lock", os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 32, 0).decode(errors="replace").strip() or "?"
            os.close(fd)
            raise StateLockedError(
                f"{self.out}: another sa1b process (pid {holder}) is using this folder"
            ) from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        return fd

    def close(self) -> None:
        db = getattr(self, "_db", None)
        if db is not None:
            db.close()
            self._db = None  # type: ignore[assignment]
        if self._lock_fd is not None:
            os.close(self._lock_fd)
            self._lock_fd = None

    def __enter__(self) -> StateStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _write(self, sql: str, params: Iterable[object] = ()) -> sqlite3.Cursor:
        with self._mutex:
            return self._db.execute(sql, tuple(params))

    # -- files --------------------------------------------------------------

    def register(self, name: str, object_key: str) -> FileRecord:
        """Make sure ``name`` has a row; return it."""
        self._write(
            "INSERT INTO files (name, object_key, updated_at) VALUES (?, ?, ?) "
            "ON CONFLICT(name) DO UPDATE SET object_key = excluded.object_key",
            (name, object_key, time.time()),
        )
        record = self.get(name)
        assert record is not None
        return record

    def get(self, name: str) -> FileRecord | None:
        records = self._records("WHERE name = ?", (name,))
        return records[0] if records else None

    def records(self) -> list[FileRecord]:
        return self._records("", ())

    def _records(self, where: str, params: tuple[object, ...]) -> list[FileRecord]:
        with self._mutex:
            rows = self._db.execute(
                "SELECT id, name, object_key, size, etag, last_modified, generation, status, "
                f"error, extracted FROM files {where} ORDER BY name",
                params,
            ).fetchall()
            spans: dict[int, RangeSet] = {}
            for file_id, start, end in self._db.execute(
                "SELECT file_id, start, end FROM ranges ORDER BY file_id, start"
            ):
                spans.setdefault(file_id, RangeSet()).add(start, end)
        return [
            FileRecord(
                id=row[0],
                name=row[1],
                object_key=row[2],
                size=row[3],
                validator=Validator(row[4], row[5]),
                generation=row[6],
                status=row[7],
                error=row[8],
                ranges=spans.get(row[0], RangeSet()),
                extracted=row[9],
            )
            for row in rows
        ]

    def set_identity(self, file_id: int, size: int, validator: Validator) -> None:
        """Record the size and validators of the file's first answer."""
        self._write(
            "UPDATE files SET size = ?, etag = ?, last_modified = ?, status = 'partial', "
            "error = NULL, updated_at = ? WHERE id = ?",
            (size, validator.etag, validator.last_modified, time.time(), file_id),
        )

    def restart(self, file_id: int) -> int:
        """Void every byte of a file (its object changed); return the new generation."""
        with self._mutex, self._db:
            self._db.execute("BEGIN IMMEDIATE")
            self._db.execute("DELETE FROM ranges WHERE file_id = ?", (file_id,))
            self._db.execute(
                "UPDATE files SET size = NULL, etag = NULL, last_modified = NULL, "
                "generation = generation + 1, status = 'pending', updated_at = ? WHERE id = ?",
                (time.time(), file_id),
            )
            row = self._db.execute(
                "SELECT generation FROM files WHERE id = ?", (file_id,)
            ).fetchone()
        return int(row[0])

    def set_extracted(self, file_id: int, layout: str | None) -> None:
        """Record that the shard is extracted into ``layout`` (after it is all in place)."""
        self._write(
            "UPDATE files SET extracted = ?, updated_at = ? WHERE id = ?",
            (layout, time.time(), file_id),
        )

    def set_status(self, file_id: int, status: Status, error: str | None = None) -> None:
        self._write(
            "UPDATE files SET status = ?, error = ?, updated_at = ? WHERE id = ?",
            (status, error, time.time(), file_id),
        )

    def save_ranges(self, ranges: Mapping[int, tuple[int, RangeSet]]) -> None:
        """Replace the recorded ranges of several files in one transaction.

        ``ranges`` maps file id to (generation, ranges); a file whose generation has
        moved on meanwhile (restarted) is skipped. Call only after the bytes are
        durably on disk.
        """
        if not ranges:
            return
        with self._mutex, self._db:
            self._db.execute("BEGIN IMMEDIATE")
            for file_id, (generation, spans) in ranges.items():
                row = self._db.execute(
                    "SELECT generation FROM files WHERE id = ?", (file_id,)
                ).fetchone()
                if row is None or row[0] != generation:
                    continue
                self._db.execute("DELETE FROM ranges WHERE file_id = ?", (file_id,))
                self._db.executemany(
                    "INSERT INTO ranges (file_id, start, end) VALUES (?, ?, ?)",
                    [(file_id, s, e) for s, e in spans],
                )

    # -- runs ---------------------------------------------------------------

    def start_run(self) -> int:
        cursor = self._write("INSERT INTO runs (started_at) VALUES (?)", (time.time(),))
        assert cursor.lastrowid is not None
        return cursor.lastrowid

    def finish_run(self, run_id: int, *, fetched: int, outcome: str) -> None:
        self._write(
            "UPDATE runs SET finished_at = ?, bytes = ?, outcome = ? WHERE id = ?",
            (time.time(), fetched, outcome, run_id),
        )

    def last_run(self) -> RunRecord | None:
        with self._mutex:
            row = self._db.execute(
                "SELECT id, started_at, finished_at, bytes, outcome FROM runs "
                "WHERE finished_at IS NOT NULL ORDER BY id DESC LIMIT 1"
            ).fetchone()
        return RunRecord(*row) if row else None
