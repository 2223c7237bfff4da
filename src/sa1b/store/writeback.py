"""Write data into the page cache and push it to disk: ``pwrite`` in slices,
``sync_file_range`` to start early, ``syncfs`` to finish.

Durability needs ``fdatasync`` before a range is recorded and before a file is
published. Left alone, the kernel holds gigabytes of dirty pages and that final
``fdatasync`` waits for all of them at once; nudging writeback along while the
download runs lets the disk work in parallel with the network. Where the call is
missing (not Linux), this does nothing and only ``fdatasync`` remains.
"""

from __future__ import annotations

import ctypes
import os
from collections.abc import Callable, Iterable
from pathlib import Path

SYNC_FILE_RANGE_WRITE = 2

WRITE_SLICE = 256 * 1024
"""The most bytes one ``pwrite`` is given. The page cache sizes its folios by the write:
on the benchmark machine (a VM whose free high-order pages go back to the host), one
GB into new files took the kernel's copy about 0.4 system seconds in writes of 128-512
KiB, 1 in writes of 1 MiB and 1.5-3 in writes of 2 MiB and more, which ext4 puts in
2 MiB folios (``FileHugePages`` grows). Members written whole (up to a part, 8 MiB)
made extraction 0.57-0.66x download-only on 24 x 172 MB (``benchmarks/README.md``)."""


def libc_function(name: str, argtypes: list[type]) -> Callable[..., int] | None:
    """A libc function through ctypes, or None where this libc lacks it."""
    try:
        # The process's own symbols, libc's among them: no search (find_library would
        # run ldconfig, which costs more than the rest of the start-up).
        libc = ctypes.CDLL(None, use_errno=True)
        function = getattr(libc, name)
    except (OSError, AttributeError):
        return None
    function.argtypes = argtypes
    function.restype = ctypes.c_int
    return function  # type: ignore[no-any-return]


def _checked(result: int) -> None:
    if result != 0:
        errno = ctypes.get_errno()
        raise OSError(errno, os.strerror(errno))


_sync_file_range = libc_function(
    "sync_file_range", [ctypes.c_int, ctypes.c_int64, ctypes.c_int64, ctypes.c_uint]
)
_syncfs = libc_function("syncfs", [ctypes.c_int])


def write_at(fd: int, data: bytes | memoryview, offset: int) -> None:
    """Write all of ``data`` at ``offset`` in ``fd``, :data:`WRITE_SLICE` bytes at most
    a call."""
    view = memoryview(data)
    while view:
        written = os.pwrite(fd, view[:WRITE_SLICE], offset)
        view, offset = view[written:], offset + written


def start_writeback(fd: int) -> None:
    """Queue the file's dirty pages for writing; returns at once (nothing off Linux)."""
    if _sync_file_range is not None:
        _checked(_sync_file_range(fd, 0, 0, SYNC_FILE_RANGE_WRITE))


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
        _checked(_syncfs(fd))
    finally:
        os.close(fd)


def sync_files(files: Iterable[Path], folders: Iterable[Path]) -> None:
    """Make ``files`` (their bytes and size) and the entries of ``folders`` durable.

    For the files one process just wrote, instead of a ``syncfs``: that would also write
    out every other dirty file on the filesystem, such as the partial tars of the other
    shards in flight, which sa1b deletes once extracted and never syncs otherwise.
    """
    for path in (*files, *folders):
        _fsync_path(path)


def fsync_dir(path: os.PathLike[str] | str) -> None:
    """Make a rename or a new entry in folder ``path`` durable."""
    _fsync_path(path)


def _fsync_path(path: os.PathLike[str] | str) -> None:
    """``fsync`` the file or folder at ``path`` (a folder: its entries)."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
