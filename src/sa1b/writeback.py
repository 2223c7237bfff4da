"""Push written data to disk: ``sync_file_range`` to start early, ``syncfs`` to finish.

Durability needs ``fdatasync`` before a range is recorded and before a file is
published. Left alone, the kernel holds gigabytes of dirty pages and that final
``fdatasync`` waits for all of them at once; nudging writeback along while the
download runs lets the disk work in parallel with the network. Where the call is
missing (not Linux), this does nothing and only ``fdatasync`` remains.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
from collections.abc import Callable

SYNC_FILE_RANGE_WRITE = 2


def _load() -> Callable[[int], None]:
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
        call = libc.sync_file_range
    except (OSError, AttributeError):
        return lambda fd: None
    call.argtypes = [ctypes.c_int, ctypes.c_int64, ctypes.c_int64, ctypes.c_uint]
    call.restype = ctypes.c_int

    def start(fd: int) -> None:
        if call(fd, 0, 0, SYNC_FILE_RANGE_WRITE) != 0:
            errno = ctypes.get_errno()
            raise OSError(errno, os.strerror(errno))

    return start


start_writeback: Callable[[int], None] = _load()
"""``start_writeback(fd)``: queue the file's dirty pages for writing; returns at once."""


def _load_syncfs() -> Callable[[int], int] | None:
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
        call = libc.syncfs
    except (OSError, AttributeError):
        return None
    call.argtypes = [ctypes.c_int]
    call.restype = ctypes.c_int
    return call


_syncfs = _load_syncfs()


def sync_fs(path: os.PathLike[str] | str) -> None:
    """Make everything written on the filesystem holding ``path`` durable.

    One ``syncfs`` for thousands of extracted files instead of one ``fsync`` each;
    ``os.sync`` (every filesystem) where ``syncfs`` is missing.
    """
    if _syncfs is None:
        os.sync()
        return
    fd = os.open(path, os.O_RDONLY)
    try:
        if _syncfs(fd) != 0:
            errno = ctypes.get_errno()
            raise OSError(errno, os.strerror(errno))
    finally:
        os.close(fd)


def fsync_dir(path: os.PathLike[str] | str) -> None:
    """Make a rename or a new entry in folder ``path`` durable."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
