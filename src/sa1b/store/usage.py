"""What a download's files take on the disk, counted as ``du`` counts it: allocated
blocks. A partial file is preallocated, so it takes its whole size before its bytes
arrive; ``sa1b status`` shows this beside the bytes fetched."""

from __future__ import annotations

from sa1b.records import FileRecord
from sa1b.store.paths import OutputPaths


def space_taken(paths: OutputPaths, record: FileRecord) -> int:
    """Bytes the file's partial file and published tar take (``st_blocks * 512``); an
    extracted shard counts its tar's size, which its members and their tar headers
    come within a fraction of a percent of (stat'ing its 22,000 files would make
    ``status`` slow)."""
    taken = (record.size or 0) if record.extracted else 0
    for path in (paths.partial(record.name), paths.final(record.name)):
        try:
            taken += path.stat().st_blocks * 512
        except FileNotFoundError:
            continue
    return taken
