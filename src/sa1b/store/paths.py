"""Where everything of one output folder lives. Pure: path arithmetic only."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from sa1b.links import is_shard_name

WORK_DIR = ".sa1b"
"""In the output folder: partial files and staging, beside the files they become."""
WORKERS = "workers"
"""In ``WORK_DIR``: one state folder per worker of a split download (``0-of-8``)."""
STATE_DB = "state.db"
"""In a state folder: the SQLite store (:mod:`sa1b.store.state`); its copies have this
name too, and SQLite's companions (``-wal``, ``-shm``) add to it."""


@dataclass(frozen=True, slots=True)
class OutputPaths:
    """The places of one output folder.

    In ``out``: what is published (shard tars in ``tars/``, extras, extracted shards)
    and, in ``out/.sa1b/``, partial files and staging. Those stay beside the published
    files because publishing renames them into place, which only works on one
    filesystem. The state (the SQLite store, its lock and the crash journal) lives in
    ``state``: ``out/.sa1b/`` unless given, for example on a node's local disk when
    ``out`` is on a network filesystem, where SQLite's WAL and ``flock`` are unsafe.
    A worker of a split download (``--shard-index``) keeps its own store, by default in
    ``out/.sa1b/workers/<i>-of-<n>/``, where ``sa1b status`` finds every worker's.
    """

    out: Path
    state: Path

    @classmethod
    def of(cls, out: Path, state: Path | None = None, worker: str | None = None) -> OutputPaths:
        """The places for ``out``; ``worker`` (``0-of-8``) names a worker's own state."""
        if state is None:
            state = out / WORK_DIR / WORKERS / worker if worker else out / WORK_DIR
        return cls(out, state)

    def final(self, name: str) -> Path:
        """Where a verified file is published: shard tars (when kept) in ``tars/``,
        the other files of the links file (``--extras``) in the folder itself."""
        return self.tars / name if is_shard_name(name) else self.out / name

    @property
    def tars(self) -> Path:
        """Where shard tars are published, when they are kept."""
        return self.out / "tars"

    def partial(self, name: str) -> Path:
        """Where a file's bytes are written until it is verified."""
        return self.partials / f"{name}.part"

    @property
    def partials(self) -> Path:
        return self.out / WORK_DIR / "partial"

    @property
    def staging(self) -> Path:
        """Where shards are extracted before they are moved into place."""
        return self.out / WORK_DIR / "staging"

    def staged(self, name: str) -> Path:
        """The folder shard ``name`` is extracted into before its members move into place."""
        return self.staging / name

    @property
    def database(self) -> Path:
        return self.state / STATE_DB

    @property
    def lock(self) -> Path:
        return self.state / "lock"

    @property
    def journal(self) -> Path:
        return self.state / "journal"


def bucket_state(bucket: str, prefix: str, environ: Mapping[str, str], home: Path) -> Path:
    """Where the local state of an ``s3://BUCKET/PREFIX`` output lives when no
    ``--state-dir`` is given: ``${XDG_CACHE_HOME:-~/.cache}/sa1b/s3/<bucket>/<prefix or
    _>`` (the store, its lock and the journal; never a byte of a shard)."""
    cache = Path(environ["XDG_CACHE_HOME"]) if environ.get("XDG_CACHE_HOME") else home / ".cache"
    return cache / "sa1b" / "s3" / bucket / (prefix or "_")
