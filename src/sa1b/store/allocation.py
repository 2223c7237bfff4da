"""Reserve a partial file's blocks up front, or leave it sparse where the disk cannot.

``fallocate(2)`` itself, never ``posix_fallocate``: where a filesystem cannot allocate
(ext2, NFSv3, many FUSE filesystems) glibc's ``posix_fallocate`` writes zeros over the
whole file instead, doubling what the disk writes and taking as long as the download
of the file's first bytes. ``fallocate(2)`` says ``EOPNOTSUPP`` there, and the file
stays sparse: its blocks are allocated as its bytes arrive.
"""

from __future__ import annotations

import ctypes
import errno
import os

from sa1b.store.writeback import libc_function

_fallocate = libc_function(
    "fallocate", [ctypes.c_int, ctypes.c_int, ctypes.c_int64, ctypes.c_int64]
)
UNSUPPORTED = (errno.EOPNOTSUPP, errno.ENOSYS)
"""``fallocate`` errors that mean "not on this filesystem" (the file stays sparse)."""


def preallocate(fd: int, size: int) -> bool:
    """Reserve ``size`` bytes of blocks for ``fd`` (a full disk shows at once, the file
    does not fragment); False where the filesystem (or the libc) cannot, and the file
    stays sparse. Raises :class:`OSError` for anything else (``ENOSPC``)."""
    return _fallocate_or_not(fd, 0, 0, size)


def reserve(fd: int, size: int) -> bool:
    """Reserve blocks for the first ``size`` bytes of ``fd`` without changing its size
    (``FALLOC_FL_KEEP_SIZE``: the size still says what was written); False where the
    filesystem (or the libc) cannot. Raises :class:`OSError` for anything else."""
    return _fallocate_or_not(fd, KEEP_SIZE, 0, size)


KEEP_SIZE = 0x01
"""``FALLOC_FL_KEEP_SIZE`` (linux/falloc.h)."""

PUNCH_HOLE = 0x02 | KEEP_SIZE
"""``FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE`` (linux/falloc.h): free the blocks of a
range, the file keeps its size and reads zeros there."""


def punch_hole(fd: int, offset: int, length: int) -> bool:
    """Give the blocks of ``[offset, offset + length)`` back to the filesystem; False
    where it (or the libc) cannot (the bytes then stay: no space is freed, nothing is
    wrong). Raises :class:`OSError` for anything else."""
    return _fallocate_or_not(fd, PUNCH_HOLE, offset, length)


def holes(fd: int, size: int) -> list[tuple[int, int]]:
    """The holes of ``[0, size)`` of ``fd``: ranges with no blocks, which read as zeros
    (punched behind an extraction, or never written where the file is sparse). Where
    the filesystem cannot say (no ``SEEK_HOLE``), none."""
    found: list[tuple[int, int]] = []
    offset = 0
    while offset < size:
        try:
            hole = os.lseek(fd, offset, os.SEEK_HOLE)
        except OSError as error:
            if error.errno in (errno.ENXIO, errno.EINVAL, *UNSUPPORTED):
                break  # past the end, or a filesystem that keeps no holes
            raise
        if hole >= size:
            break
        try:
            data = os.lseek(fd, hole, os.SEEK_DATA)
        except OSError as error:
            if error.errno != errno.ENXIO:  # ENXIO: a hole up to the end
                raise
            data = size
        found.append((hole, min(data, size)))
        offset = data
    return found


def _fallocate_or_not(fd: int, mode: int, offset: int, length: int) -> bool:
    if _fallocate is None or length <= 0:
        return False
    while _fallocate(fd, mode, offset, length) != 0:
        code = ctypes.get_errno()
        if code in UNSUPPORTED:
            return False
        if code != errno.EINTR:
            raise OSError(code, os.strerror(code))
    return True
