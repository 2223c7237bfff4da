"""The state store: one SQLite database (WAL) in the output folder.

It records, per file, the size and validators of the first answer, the byte ranges
that are durably on disk, and the outcome; and, per run, what it fetched and how
fast. The engine writes ranges only after ``fdatasync`` of the partial file, so the
store is never ahead of the disk. A lock file keeps a second process out.
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import sqlite3
import threading
import time
import zlib
from collections.abc import Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

from sa1b.errors import (
    NewerStateError,
    NoStateError,
    OutputFolderError,
    StateError,
    StateLockedError,
    StorageError,
)
from sa1b.ranges import RangeSet
from sa1b.records import FileRecord, RunRecord, Status
from sa1b.redaction import clean
from sa1b.store.paths import STATE_DB, WORK_DIR, WORKERS, OutputPaths
from sa1b.store.writeback import fsync_dir
from sa1b.versions import Validator

log = logging.getLogger(__name__)

LOCK_PATIENCE = 0.5
"""Seconds to wait for the folder's lock: ``sa1b status`` holds it for an instant."""
SCHEMA_VERSION = 1
"""The layout of the store's tables. A store of a higher version was written by a newer
sa1b and is refused (:class:`NewerStateError`), never read or changed: its records might
mean something this version does not know. A change that older versions can still read
keeps the number."""

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
CREATE TABLE IF NOT EXISTS indexes (
    file_id INTEGER PRIMARY KEY REFERENCES files(id),
    members BLOB NOT NULL
);
CREATE TABLE IF NOT EXISTS walks (
    file_id INTEGER PRIMARY KEY REFERENCES files(id),
    size INTEGER NOT NULL,
    etag TEXT,
    last_modified TEXT,
    next INTEGER NOT NULL DEFAULT 0,
    complete INTEGER NOT NULL DEFAULT 0,
    published TEXT
);
CREATE TABLE IF NOT EXISTS walk_parts (
    file_id INTEGER NOT NULL REFERENCES files(id),
    upto INTEGER NOT NULL,
    members BLOB NOT NULL,
    PRIMARY KEY (file_id, upto)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS uploads (
    file_id INTEGER PRIMARY KEY REFERENCES files(id),
    upload_id TEXT NOT NULL,
    size INTEGER NOT NULL,
    etag TEXT,
    last_modified TEXT,
    part_size INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS upload_parts (
    file_id INTEGER NOT NULL REFERENCES files(id),
    number INTEGER NOT NULL,
    etag TEXT NOT NULL,
    size INTEGER NOT NULL,
    sha256 TEXT NOT NULL,
    PRIMARY KEY (file_id, number)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS upload_walks (
    file_id INTEGER NOT NULL REFERENCES files(id),
    upto INTEGER NOT NULL,
    members BLOB NOT NULL,
    PRIMARY KEY (file_id, upto)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS repack_maps (
    file_id INTEGER PRIMARY KEY REFERENCES files(id),
    size INTEGER NOT NULL,
    etag TEXT,
    last_modified TEXT,
    next INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS repack_map_parts (
    file_id INTEGER NOT NULL REFERENCES files(id),
    upto INTEGER NOT NULL,
    members BLOB NOT NULL,
    PRIMARY KEY (file_id, upto)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS extractions (
    file_id INTEGER PRIMARY KEY REFERENCES files(id),
    generation INTEGER NOT NULL,
    next INTEGER NOT NULL,
    entries BLOB NOT NULL,
    members BLOB NOT NULL
);
CREATE TABLE IF NOT EXISTS runs (
    id INTEGER PRIMARY KEY,
    started_at REAL NOT NULL,
    finished_at REAL,
    bytes INTEGER NOT NULL DEFAULT 0,
    outcome TEXT
);
"""


def lock_holder(paths: OutputPaths) -> int | None:
    """The pid of the sa1b process working in the folder now (0 if unreadable), else None."""
    try:
        fd = os.open(paths.lock, os.O_RDONLY)
    except OSError:
        return None
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except BlockingIOError:
        text = os.pread(fd, 32, 0).decode(errors="replace").strip()
        return int(text) if text.isdigit() else 0
    finally:
        os.close(fd)  # (releases the shared lock, if taken)
    return None


def folder_stores(out: Path, state: Path | None = None) -> list[OutputPaths]:
    """The stores of an output folder that exist: its own, then each worker's; only the
    one in ``state`` when the store lives elsewhere (``--state-dir``)."""
    if state is not None:
        given = OutputPaths.of(out, state)
        return [given] if given.database.exists() else []
    own = OutputPaths.of(out)
    found = [own] if own.database.exists() else []
    workers = out / WORK_DIR / WORKERS
    if workers.is_dir():
        found += [
            OutputPaths(out, folder)
            for folder in sorted(workers.iterdir())
            if (folder / STATE_DB).is_file()
        ]
    return found


class _Damaged(sqlite3.DatabaseError):
    """``quick_check`` found the database inconsistent."""


def _is_damage(error: sqlite3.Error) -> bool:
    """Damage to the file itself, not a busy, full or read-only disk (which a repair
    would make worse: the records would be thrown away for nothing)."""
    code = getattr(error, "sqlite_errorcode", None)
    damaged = {sqlite3.SQLITE_CORRUPT, sqlite3.SQLITE_NOTADB}
    return isinstance(error, _Damaged) or (code is not None and code & 0xFF in damaged)


def _connect(path: Path, partials: Path) -> sqlite3.Connection:
    """The store's database, checked (``quick_check``) and with its schema."""
    existed = path.exists()
    db = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
    try:
        db.execute("PRAGMA journal_mode=WAL")
        db.execute("PRAGMA synchronous=FULL")
        db.execute("PRAGMA busy_timeout=5000")
        (verdict,) = db.execute("PRAGMA quick_check").fetchone()
        if verdict != "ok":
            raise _Damaged(f"quick_check: {str(verdict)[:80]}")
        new = db.execute("SELECT 1 FROM sqlite_master WHERE name = 'meta'").fetchone() is None
        if new and existed and partials.is_dir() and any(partials.iterdir()):
            # A database cut within its first page reads as an empty one: say so. (A
            # store made new beside other workers' partial files has lost nothing.)
            log.warning(
                "%s: the state store has lost its records (partial files exist); they are "
                "not trusted: files on disk are re-verified, partial ones fetched again",
                path,
            )
        db.executescript(_SCHEMA)
        columns = {row[1] for row in db.execute("PRAGMA table_info(files)")}
        if "extracted" not in columns:  # a store written before extraction existed
            db.execute("ALTER TABLE files ADD COLUMN extracted TEXT")
        db.execute("INSERT OR IGNORE INTO meta VALUES ('schema', ?)", (str(SCHEMA_VERSION),))
        _check_version(db, path)
    except BaseException:
        db.close()
        raise
    return db


def _check_version(db: sqlite3.Connection, path: Path) -> None:
    """Refuse a store written by a newer sa1b (see :data:`SCHEMA_VERSION`)."""
    (value,) = db.execute("SELECT value FROM meta WHERE key = 'schema'").fetchone()
    if not str(value).isdigit():
        raise _Damaged(f"schema version {clean(str(value))[:20]!r}")
    if int(value) > SCHEMA_VERSION:
        raise NewerStateError(
            f"{path}: written by a newer sa1b (store version {int(value)}; this one "
            f"reads up to {SCHEMA_VERSION})"
        )


def _set_aside(path: Path, error: sqlite3.Error) -> None:
    """Keep a damaged database for inspection (the latest one), out of the way."""
    aside = path.with_name(f"{STATE_DB}.damaged")
    for suffix in ("", "-wal", "-shm"):
        aside.with_name(aside.name + suffix).unlink(missing_ok=True)
    for suffix in ("", "-wal", "-shm"):
        source = path.with_name(path.name + suffix)
        if source.exists():
            os.replace(source, aside.with_name(aside.name + suffix))
    log.warning(
        "%s: the state store is damaged (%s); set aside as %s. Files on disk are "
        "re-verified, partial ones fetched again",
        path,
        error,
        aside.name,
    )


def _lock_folder(paths: OutputPaths) -> int:
    """Take the folder's lock (waiting briefly: a status may hold it for an instant)."""
    out = paths.out
    fd = os.open(paths.lock, os.O_RDWR | os.O_CREAT, 0o644)
    deadline = time.monotonic() + LOCK_PATIENCE
    while True:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            break
        except BlockingIOError:
            if time.monotonic() < deadline:
                time.sleep(0.02)
                continue
            holder = os.pread(fd, 32, 0).decode(errors="replace").strip() or "?"
            os.close(fd)
            raise StateLockedError(
                f"{out}: another sa1b process (pid {holder}) is using this folder"
            ) from None
    os.ftruncate(fd, 0)
    os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
    return fd


def _open(paths: OutputPaths, *, repair: bool) -> sqlite3.Connection:
    """The store's database; with ``repair`` (its owner), a damaged one is set aside and
    a fresh one started."""
    try:
        return _connect(paths.database, paths.partials)
    except sqlite3.Error as error:
        if not _is_damage(error):
            raise
        if not repair:  # a reader (status) leaves the repair to the next download
            raise StateError(
                f"{paths.database}: the state store is damaged ({error})",
                hint="the next sa1b download into this folder sets it aside and "
                "re-verifies every file",
            ) from error
        _set_aside(paths.database, error)
        return _connect(paths.database, paths.partials)


def _claim(db: sqlite3.Connection, out: Path) -> str | None:
    """Bind the store to ``out``; the folder it was written for, if another.

    The folder is the same when its path or its identity (device and inode) is: a
    folder renamed in place keeps its store. A store copied or moved to another disk
    keeps its finished files, which start-up checks against the disk anyway, but its
    records of partial files describe files it cannot vouch for.
    """
    stat = out.stat()
    here = {"folder": os.path.abspath(out), "folder_id": f"{stat.st_dev}:{stat.st_ino}"}
    known = dict(db.execute("SELECT key, value FROM meta").fetchall())
    other = "folder" in known and all(known.get(key) != value for key, value in here.items())
    db.executemany("INSERT OR REPLACE INTO meta VALUES (?, ?)", list(here.items()))
    return str(known["folder"]) if other else None


def _record(row: tuple[Any, ...], ranges: RangeSet) -> FileRecord:
    """A ``files`` row (in the order :meth:`StateStore._records` selects) as a record."""
    file_id, name, key, size, etag, last_modified, generation, status, error, extracted = row
    return FileRecord(
        id=file_id,
        name=name,
        object_key=key,
        size=size,
        validator=Validator(etag, last_modified),
        generation=generation,
        status=status,
        error=error,
        ranges=ranges,
        extracted=extracted,
    )


@contextlib.contextmanager
def _storing(path: Path) -> Iterator[None]:
    """A full or failing disk under the store is the disk's problem, said as such (a
    :class:`StorageError`), not an internal error."""
    try:
        yield
    except sqlite3.OperationalError as error:
        code = (getattr(error, "sqlite_errorcode", 0) or 0) & 0xFF
        if code == sqlite3.SQLITE_FULL:
            raise StorageError(f"{path}: the disk is full") from None
        if code == sqlite3.SQLITE_IOERR:
            raise StorageError(f"{path}: cannot write the state store ({error})") from None
        raise


def _copy(db: sqlite3.Connection, folder: Path) -> None:
    """Copy ``db`` to ``folder/state.db``, replacing the last copy at once: a reader never
    sees half a copy."""
    folder.mkdir(parents=True, exist_ok=True)
    fresh = folder / f"{STATE_DB}.new"
    fresh.unlink(missing_ok=True)
    with _storing(fresh), contextlib.closing(sqlite3.connect(fresh)) as copy:
        db.backup(copy)
        copy.execute("PRAGMA journal_mode=DELETE")  # one file, readable anywhere
    with open(fresh, "rb") as handle:
        os.fsync(handle.fileno())
    for leftover in (f"{STATE_DB}-wal", f"{STATE_DB}-shm"):  # a reader's, of the last copy
        (folder / leftover).unlink(missing_ok=True)
    os.replace(fresh, folder / STATE_DB)
    fsync_dir(folder)


def pack_members(index: Iterable[tuple[str, int, int]]) -> bytes:
    """A shard's member index as compressed ``path<TAB>offset<TAB>size`` lines (22,000
    members of a shard take about 100 KB)."""
    packer = MemberPacker()
    packer.add(index)
    return packer.packed()


class MemberPacker:
    """:func:`pack_members` of an index that grows: each row is formatted and compressed
    once, however often the whole is packed (a shard's checkpoints pack their index
    42 times as it grows to 22,000 rows: each time from scratch, that cost 1.2-1.6 CPU
    seconds a shard, 0.08 this way)."""

    def __init__(self) -> None:
        self._deflate = zlib.compressobj()
        self._out: list[bytes] = []

    def add(self, rows: Iterable[tuple[str, int, int]]) -> None:
        text = "".join(f"{p}\t{o}\t{n}\n" for p, o, n in rows)
        self._out.append(self._deflate.compress(text.encode()))

    def packed(self) -> bytes:
        """Every row added so far, as one blob (the stream goes on after it)."""
        self._out = [b"".join(self._out)]
        return self._out[0] + self._deflate.copy().flush()


def unpack_members(blob: bytes) -> list[tuple[str, int, int]]:
    rows = [line.split("\t") for line in zlib.decompress(blob).decode().splitlines()]
    return [(path, int(offset), int(size)) for path, offset, size in rows]


class StateStore:
    """The output folder's SQLite store. Thread-safe; hold it with ``with``."""

    def __init__(
        self, out: Path, *, state: Path | None = None, lock: bool = True, create: bool = True
    ) -> None:
        """Open (or create) the store of ``out``, kept in ``state`` (default ``out/.sa1b``,
        see :class:`~sa1b.store.paths.OutputPaths`).

        The owner (``lock=True``, a download) repairs what it finds: a damaged database
        is set aside as ``state.db.damaged`` and a fresh one started; the store of
        another folder keeps its finished files (checked against the disk like any) but
        not its partial ones, whose files it cannot vouch for.
        """
        self.out = out
        self.paths = paths = OutputPaths.of(out, state)
        self.path = paths.database
        if not create and not self.path.exists():
            raise no_state(out)
        self._lock_fd: int | None = None
        if lock:
            try:
                paths.state.mkdir(parents=True, exist_ok=True)
                self._lock_fd = _lock_folder(paths)
            except OSError as error:
                raise OutputFolderError(f"{out}: cannot write here ({error.strerror})") from None
        self._mutex = threading.Lock()
        self._connection: sqlite3.Connection | None = None
        try:
            self._connection = _open(paths, repair=lock)
            if lock and (other := _claim(self._db, out)) is not None:
                log.warning(
                    "%s: the state store was written for another folder (%s): finished "
                    "files are checked on disk as always; partial files are not trusted "
                    "and are fetched again",
                    out,
                    other,
                )
                self.forget_partial_files()
        except (sqlite3.Error, OSError) as error:
            self.close()
            raise StateError(f"{self.path}: cannot open the state store: {error}") from error
        except BaseException:
            self.close()
            raise

    @property
    def _db(self) -> sqlite3.Connection:
        assert self._connection is not None, "the state store is closed"
        return self._connection

    def close(self) -> None:
        """Close the database and release the folder (idempotent)."""
        if self._connection is not None:
            self._connection.close()
            self._connection = None
        if self._lock_fd is not None:
            os.close(self._lock_fd)
            self._lock_fd = None

    def __enter__(self) -> StateStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @contextlib.contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """The database, for statements that commit together (here and in
        :mod:`sa1b.store.walks`)."""
        with self._mutex, _storing(self.path), self._db:
            self._db.execute("BEGIN IMMEDIATE")
            yield self._db

    def _write(self, sql: str, params: Iterable[object] = ()) -> sqlite3.Cursor:
        with self._mutex, _storing(self.path):
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
        return [_record(row, spans.get(row[0], RangeSet())) for row in rows]

    def set_identity(self, file_id: int, size: int, validator: Validator) -> None:
        """Record the size and validators of the file's first answer."""
        self._write(
            "UPDATE files SET size = ?, etag = ?, last_modified = ?, status = 'partial', "
            "error = NULL, updated_at = ? WHERE id = ?",
            (size, validator.etag, validator.last_modified, time.time(), file_id),
        )

    def set_sizes(self, sizes: Sequence[tuple[str, str, int, Validator]]) -> None:
        """Record what the server said of files before their download (name, object
        key, size, validators), in one transaction: each registered, its size and
        validators kept where the store knows no size yet (the download starts from
        them, as from any recorded size; its first answer checks them)."""
        now = time.time()
        with self.transaction():
            self._db.executemany(
                "INSERT INTO files (name, object_key, updated_at) VALUES (?, ?, ?) "
                "ON CONFLICT(name) DO UPDATE SET object_key = excluded.object_key",
                [(name, key, now) for name, key, _, _ in sizes],
            )
            self._db.executemany(
                "UPDATE files SET size = ?, etag = ?, last_modified = ?, updated_at = ? "
                "WHERE name = ? AND size IS NULL",
                [(size, v.etag, v.last_modified, now, name) for name, _, size, v in sizes],
            )

    def restart(self, file_id: int) -> int:
        """Void every byte of a file (its object changed); return the new generation."""
        with self.transaction():
            self._db.execute("DELETE FROM ranges WHERE file_id = ?", (file_id,))
            self._db.execute("DELETE FROM indexes WHERE file_id = ?", (file_id,))
            self._db.execute("DELETE FROM extractions WHERE file_id = ?", (file_id,))
            self._db.execute(
                "UPDATE files SET size = NULL, etag = NULL, last_modified = NULL, "
                "generation = generation + 1, status = 'pending', error = NULL, "
                "extracted = NULL, updated_at = ? WHERE id = ?",
                (time.time(), file_id),
            )
            row = self._db.execute(
                "SELECT generation FROM files WHERE id = ?", (file_id,)
            ).fetchone()
        return int(row[0])

    def forget_partial_files(self) -> None:
        """Void the records of every file not finished (sizes, validators, ranges): their
        partial files cannot be vouched for. Generations move on, so journal spans are
        void too; finished files keep their records (start-up checks them on disk)."""
        with self.transaction():
            self._db.execute(
                "DELETE FROM ranges WHERE file_id IN (SELECT id FROM files WHERE status != 'done')"
            )
            self._db.execute(
                "UPDATE files SET size = NULL, etag = NULL, last_modified = NULL, "
                "generation = generation + 1, status = 'pending', error = NULL, "
                "extracted = NULL, updated_at = ? WHERE status != 'done'",
                (time.time(),),
            )
            self._db.execute("DELETE FROM walks WHERE complete = 0")  # its staging too

    def copy_to(self, folder: Path) -> None:
        """Write a consistent copy of the store to ``folder/state.db`` (see :func:`_copy`)."""
        with self._mutex:
            _copy(self._db, folder)

    def adopt(self, file_id: int, source: FileRecord) -> FileRecord:
        """Take over another store's record of the same file (a worker's): its size,
        validators, status, extraction and ranges, under a new generation of ours."""
        with self.transaction():
            self._db.execute("DELETE FROM ranges WHERE file_id = ?", (file_id,))
            validator, now = source.validator, time.time()
            self._db.execute(
                "UPDATE files SET size = ?, etag = ?, last_modified = ?, status = ?, "
                "error = NULL, extracted = ?, generation = generation + 1, updated_at = ? "
                "WHERE id = ?",
                (source.size, validator.etag, validator.last_modified, source.status,
                 source.extracted, now, file_id),
            )  # fmt: skip
            spans = [(file_id, start, end) for start, end in source.ranges]
            self._db.executemany("INSERT INTO ranges (file_id, start, end) VALUES (?, ?, ?)", spans)
        adopted = self.get(source.name)
        assert adopted is not None
        return adopted

    def set_extracted(
        self, file_id: int, layout: str | None, index: Sequence[tuple[str, int, int]] = ()
    ) -> None:
        """Record that the shard is extracted into ``layout`` (after it is all in place),
        with its members (path in the output folder, data offset in the tar, size)."""
        with self._mutex, _storing(self.path), self._db:
            self._db.execute(
                "UPDATE files SET extracted = ?, updated_at = ? WHERE id = ?",
                (layout, time.time(), file_id),
            )
            self._db.execute(
                "INSERT OR REPLACE INTO indexes VALUES (?, ?)", (file_id, pack_members(index))
            )
            self._db.execute("DELETE FROM extractions WHERE file_id = ?", (file_id,))

    def member_index(self, name: str) -> list[tuple[str, int, int]] | None:
        """The members of an extracted shard, as recorded when it was extracted."""
        with self._mutex:
            row = self._db.execute(
                "SELECT members FROM indexes JOIN files ON files.id = file_id WHERE name = ?",
                (name,),
            ).fetchone()
        return None if row is None else unpack_members(row[0])

    def set_status(self, file_id: int, status: Status, error: str | None = None) -> None:
        """Record a file's status; ``error`` is stored cleaned (it may quote a server)."""
        self._write(
            "UPDATE files SET status = ?, error = ?, updated_at = ? WHERE id = ?",
            (status, None if error is None else clean(error, limit=500), time.time(), file_id),
        )

    def set_statuses(self, file_ids: Sequence[int], status: Status) -> None:
        """Record one status for several files in one transaction."""
        now = time.time()
        with self.transaction():
            self._db.executemany(
                "UPDATE files SET status = ?, error = NULL, updated_at = ? WHERE id = ?",
                [(status, now, file_id) for file_id in file_ids],
            )

    def save_ranges(self, ranges: Mapping[int, tuple[int, RangeSet]]) -> None:
        """Replace the recorded ranges of several files in one transaction.

        ``ranges`` maps file id to (generation, ranges); a file whose generation has
        moved on meanwhile (restarted) is skipped. Call only after the bytes are
        durably on disk.
        """
        if not ranges:
            return
        with self.transaction():
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


def require_stores(out: Path, state: Path | None = None) -> list[OutputPaths]:
    """:func:`folder_stores`, or :class:`NoStateError` when there is none."""
    found = folder_stores(out, state)
    if not found:
        raise no_state(out)
    return found


def no_state(out: Path) -> NoStateError:
    """The error for a folder with no store: one that does not exist is named as such."""
    return NoStateError(
        f"{out}: no such folder" if not out.is_dir() else f"{out}: no sa1b state here"
    )
