"""A crash journal: where each connection is, in shared memory that outlives a kill.

Recording ranges in SQLite needs an ``fdatasync`` first, so it happens about once a
second; at 500 MB/s a SIGKILL would then cost hundreds of MB. Instead each
connection also stores ``(file, generation, start, pos)`` after every write into a
memory-mapped file. Those stores live in the kernel's page cache: they survive the
death of the process (SIGKILL, a crash) but not of the machine. So the journal
records the boot it was written in, and a later run trusts it only within the same
boot, when every byte the dead process wrote is still in the page cache too. After
a reboot (power loss) it is ignored and SQLite's durable ranges alone count.
"""

from __future__ import annotations

import mmap
import os
import struct
import threading
import zlib
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from sa1b.ranges import RangeSet

_MAGIC = b"SA1BJNL1"
_HEADER = struct.Struct("<8s36s")
_SLOT = struct.Struct("<IIQQI")  # file id, generation, start, pos, crc32 of the first 24 bytes
_BODY = struct.Struct("<IIQQ")
_SLOT_SIZE = 32
_BOOT_ID = Path("/proc/sys/kernel/random/boot_id")


@dataclass(frozen=True, slots=True)
class Span:
    """Bytes ``[start, pos)`` of file ``file_id`` (at ``generation``) written before a crash."""

    file_id: int
    generation: int
    start: int
    pos: int


def fold(
    ranges: RangeSet, spans: Iterable[Span], *, file_id: int, generation: int, size: int
) -> RangeSet:
    """``ranges`` with the spans of one file at one generation added, clipped to its
    ``size``: what a killed run had written of it (a new set; pure)."""
    folded = ranges.copy()
    for span in spans:
        end = min(span.pos, size)
        if span.file_id == file_id and span.generation == generation and span.start < end:
            folded.add(span.start, end)
    return folded


def boot_id() -> bytes | None:
    try:
        return _BOOT_ID.read_bytes().strip()[:36].ljust(36, b" ")
    except OSError:
        return None


class Journal:
    """``slots`` fixed records, one per connection, in a memory-mapped file."""

    def __init__(self, path: Path, slots: int, *, ring: int = 8192) -> None:
        self.path = path
        self.slots = slots
        self.ring = ring
        self._next = 0
        self._lock = threading.Lock()
        self._boot = boot_id()
        size = _HEADER.size + 4 + (slots + ring) * _SLOT_SIZE
        self._fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        os.ftruncate(self._fd, size)
        self._map = mmap.mmap(self._fd, size)
        self._map[:] = bytes(size)
        _HEADER.pack_into(self._map, 0, _MAGIC, self._boot or b"")

    @staticmethod
    def recover(path: Path) -> list[Span]:
        """Spans a dead process left, if it died in this boot; else nothing."""
        current = boot_id()
        try:
            data = path.read_bytes()
        except OSError:
            return []
        if current is None or len(data) < _HEADER.size:
            return []
        magic, boot = _HEADER.unpack_from(data, 0)
        if magic != _MAGIC or boot != current:
            return []
        spans = []
        offset = _HEADER.size + 4
        while offset + _SLOT_SIZE <= len(data):
            file_id, generation, start, pos, crc = _SLOT.unpack_from(data, offset)
            body = data[offset : offset + _BODY.size]
            if file_id and pos > start and zlib.crc32(body) == crc:
                spans.append(Span(file_id, generation, start, pos))
            offset += _SLOT_SIZE
        return spans

    def write(self, slot: int, file_id: int, generation: int, start: int, pos: int) -> None:
        """Record that ``[start, pos)`` of the file is written (call after the write)."""
        offset = _HEADER.size + 4 + slot * _SLOT_SIZE
        body = _BODY.pack(file_id, generation, start, pos)
        _SLOT.pack_into(self._map, offset, file_id, generation, start, pos, zlib.crc32(body))

    def log(self, file_id: int, generation: int, start: int, pos: int) -> None:
        """Keep a finished segment's span until the store has surely recorded it.

        A connection's own slot moves on to its next segment at once; without this
        ring, a segment finished less than a commit interval before a kill would be
        fetched again. The ring is far larger than the segments one interval sees.
        """
        if not self.ring:
            raise ValueError("this journal has no ring")
        with self._lock:
            slot = self.slots + self._next % self.ring
            self._next += 1
        self.write(slot, file_id, generation, start, pos)

    def close(self) -> None:
        self._map.close()
        os.close(self._fd)
