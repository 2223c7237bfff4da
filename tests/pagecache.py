"""What the page cache holds of a file, for the tests of what sa1b lets go of."""

from __future__ import annotations

import ctypes
import mmap
import os
from pathlib import Path


def resident_pages(path: Path) -> int:
    """How many of the file's pages the page cache holds (``mincore`` of a mapping)."""
    size = path.stat().st_size
    if not size:
        return 0
    libc = ctypes.CDLL(None, use_errno=True)
    libc.mincore.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_char_p]
    vector = ctypes.create_string_buffer(-(-size // mmap.PAGESIZE))
    with path.open("rb") as file, mmap.mmap(file.fileno(), size, access=mmap.ACCESS_COPY) as view:
        anchor = ctypes.c_char.from_buffer(view)
        result = libc.mincore(ctypes.addressof(anchor), size, vector)
        del anchor  # the mapping cannot close while ctypes holds it
    if result != 0:
        raise OSError(ctypes.get_errno(), "mincore")
    return sum(byte & 1 for byte in vector.raw)


def drops_pages(folder: Path) -> bool:
    """Whether the filesystem of ``folder`` lets a synced file's pages go when asked
    (tmpfs keeps them: they are its storage)."""
    control = folder / "page-cache-control"
    control.write_bytes(os.urandom(1 << 20))
    fd = os.open(control, os.O_RDONLY)
    try:
        os.fsync(fd)
        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
    finally:
        os.close(fd)
    dropped = resident_pages(control) == 0
    control.unlink()
    return dropped
