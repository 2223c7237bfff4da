"""What a download's files take on the disk, counted as ``du`` counts it: allocated
blocks. A partial file is preallocated, so it takes its whole size before its bytes
arrive; ``sa1b status`` shows this beside the bytes fetched."""

from __future__ import annotations

import os
from pathlib import Path

from sa1b.records import FileRecord
from sa1b.store.paths import OutputPaths


def space_taken(paths: OutputPaths, record: FileRecord) -> int:
    """Bytes the file's partial file, staged members and published tar take. An extracted
    shard counts its tar's size, which its members and their tar headers come within a
    fraction of a percent of (stat'ing its 22,000 files would make ``status`` slow); a
    shard in flight counts what it has staged (only the shards in flight are walked)."""
    published = _blocks(paths.final(record.name))
    if record.extracted:
        return published + (record.size or 0) + _blocks(paths.partial(record.name))
    return published + in_flight_taken(paths, record.name)


def in_flight_taken(paths: OutputPaths, name: str) -> int:
    """Bytes a file being fetched takes already: its partial file, and the members of
    it staged so far (a shard extracted as it streams, resumed from a checkpoint)."""
    staged = sum(
        _blocks(Path(folder, member))
        for folder, _, members in os.walk(paths.staged(name))
        for member in members
    )
    return _blocks(paths.partial(name)) + staged


def _blocks(path: Path) -> int:
    """Bytes ``path`` takes on the disk (``st_blocks * 512``); 0 if it is not there."""
    try:
        return path.stat().st_blocks * 512
    except FileNotFoundError:
        return 0
