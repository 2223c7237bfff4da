"""Write data into the page cache and push it to disk: ``pwritev`` in slices,
``sync_file_range`` to start early, ``syncfs`` to finish, and ``POSIX_FADV_DONTNEED``
to let go of what a run does not read again once it is on disk (:func:`sync_files`);
or write it past the page cache, straight from memory to the disk (``O_DIRECT``:
:func:`open_member`, :func:`direct_length`, :func:`write_direct`).

Durability needs ``fdatasync`` before a range is recorded and before a file is
published. Left alone, the kernel holds gigabytes of dirty pages and that final
``fdatasync`` waits for all of them at once; nudging writeback along while the
download runs lets the disk work in parallel with the network. Where the call is
missing (not Linux), this does nothing and only ``fdatasync`` remains.
"""

from __future__ import annotations

import ctypes
import errno
import fcntl
import os
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path

SYNC_FILE_RANGE_WRITE = 2

Chunk = bytes | bytearray | memoryview

WRITE_SLICE = 256 * 1024
"""The most bytes one write call is given. The page cache sizes its folios by the write,
and a write of 2 MiB or more lets ext4 use 2 MiB folios (``FileHugePages`` grows), dear
on a VM whose free high-order pages go back to the host (the benchmark machine): 2 GiB
into new files cost its kernel 0.64-1.03 system seconds in writes of 128 KiB to 1 MiB,
1.4-9.4 in writes of 2 MiB (``benchmarks/page-cache-results.txt``). In a whole run,
members written up to a part (8 MiB) at a time made extraction 0.57-0.66x download-only
on 24 x 172 MB, 1 MiB at a time 0.72-0.74x, 256 KiB 0.81x (``benchmarks/README.md``)."""


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


def write_at(fd: int, chunks: Sequence[Chunk], offset: int) -> int:
    """Write ``chunks`` one after the other at ``offset`` in ``fd``, by ``pwritev``
    calls of :data:`WRITE_SLICE` bytes at most; returns how many bytes that was.

    A download's chunks are written as libcurl handed them over, with no copy into one
    buffer first (``benchmarks/governor-results.txt``)."""
    size = sum(map(len, chunks))
    if size <= WRITE_SLICE:  # a download's flush: one call, no views made
        return _write_all(fd, chunks, offset, size) if size else 0
    written = 0
    batch: list[Chunk] = []
    room = WRITE_SLICE
    for chunk in chunks:
        view = memoryview(chunk)
        while len(view) >= room:
            batch.append(view[:room])
            written += _write_all(fd, batch, offset + written, WRITE_SLICE)
            view, batch, room = view[room:], [], WRITE_SLICE
        if view:
            batch.append(view)
            room -= len(view)
    if batch:
        written += _write_all(fd, batch, offset + written, WRITE_SLICE - room)
    return written


def _write_all(fd: int, batch: Sequence[Chunk], offset: int, size: int) -> int:
    """``pwritev`` the ``size`` bytes of ``batch`` at ``offset``, to the last."""
    written = os.pwritev(fd, batch, offset)
    if written < size:  # short writes are rare: the rest as one buffer
        rest = memoryview(b"".join(batch))
        while written < size:
            written += os.pwrite(fd, rest[written:], offset + written)
    return size


DIRECT_BLOCK = 4096
"""What a member's direct writes end on, in the file, but at the member's end: a block
of the filesystem (4 KiB on every ext4 and xfs one but the rarest). The rest, less than a
block, goes through the page cache into a block of its own beyond the file's end, which
the kernel need not read first (a cached write into a block the disk holds half of must
read that block)."""


def open_member(path: Path, *, direct: bool) -> int:
    """Create the file ``path`` (it must not exist) to write; ``direct``: with
    ``O_DIRECT`` (see :func:`write_direct`)."""
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | (os.O_DIRECT if direct else 0)
    return os.open(path, flags, 0o644)


def direct_length(size: int, at: int, length: int) -> int:
    """Of bytes ``[at, at + length)`` of a file of ``size`` bytes, how many (from ``at``)
    to write direct: those below its last whole :data:`DIRECT_BLOCK`."""
    return max(0, min(length, size // DIRECT_BLOCK * DIRECT_BLOCK - at))


def write_direct(fd: int, data: Chunk, offset: int) -> bool:
    """Write ``data`` at ``offset`` in ``fd``, opened with ``O_DIRECT``: from this memory
    to the disk, which holds them when this returns (and their file's size and blocks
    once synced, as ever). False where the kernel refuses (``EINVAL``: the memory, the
    offset or the length not aligned as this disk wants): ``fd`` writes through the page
    cache from now on (:func:`write_cached`), and the caller writes ``data`` again."""
    try:
        _write_all(fd, [data], offset, len(data))
    except OSError as error:
        if error.errno != errno.EINVAL:
            raise
        write_cached(fd)
        return False
    return True


def write_cached(fd: int) -> None:
    """Let ``fd``, opened with ``O_DIRECT``, write through the page cache from now on
    (``F_SETFL`` sets no flag of :func:`open_member`'s but ``O_DIRECT``, cleared here)."""
    fcntl.fcntl(fd, fcntl.F_SETFL, 0)


def start_writeback(fd: int) -> None:
    """Queue the file's dirty pages for writing; returns at once (nothing off Linux)."""
    if _sync_file_range is not None:
        _checked(_sync_file_range(fd, 0, 0, SYNC_FILE_RANGE_WRITE))


def drop_cached(fd: int) -> None:
    """Let the page cache go of the file's pages that are on disk (see
    :func:`sync_files`); dirty ones stay, their writeback started. Nothing off Linux."""
    if hasattr(os, "posix_fadvise"):  # not on macOS
        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)


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


def sync_files(
    files: Iterable[Path], folders: Iterable[Path], *, whole: bool = False, drop: bool = True
) -> None:
    """Make ``files`` (their bytes and size) and the entries of ``folders`` durable, and
    let the page cache drop the files' pages once they are on disk (not with ``drop``
    False: files written direct, which leave a block each in it at most).

    An ``fsync`` each, unless ``whole``: then one ``syncfs`` of their filesystem, where
    the caller knows it to be as strict (:mod:`sa1b.store.filesystems`) and that no
    other dirty file of its own there would be written for nothing. (Extraction from a
    partial tar syncs each file: a ``syncfs`` would also write out the partial tars of
    the shards in flight, which sa1b deletes once extracted and never syncs otherwise.)

    The files are extracted members, which no part of a run reads again: 11 TB passing
    through the page cache would only push out what the machine's other work reads, and
    the kernel would have to reclaim it all. Pages let go of once synced are written over
    by the next members instead. Measured on the benchmark machine (a VM whose free
    memory goes back to its host, so that a page used afresh likely costs a fault there):
    a 10.5 GiB shard extracted as it streams took 10.5-11.9 system seconds dropped,
    20.4-27.4 kept, at 595-636 MB/s against 362-443 (``benchmarks/rehearsal-results.txt``);
    8 GiB of 7 MiB files synced every 256 MiB, 2.0-3.4 system seconds dropped against
    4.0-5.4 kept (``benchmarks/page-cache-results.txt``).
    """
    files, folders = list(files), list(folders)
    if whole and (files or folders):
        sync_fs(files[0] if files else folders[0])
        for path in files if drop else ():
            _drop_path(path)
        return
    for path in files:
        _fsync_path(path, drop=drop)
    for path in folders:
        _fsync_path(path)


def _drop_path(path: Path) -> None:
    """Let the page cache go of the pages of the file at ``path`` (synced)."""
    fd = os.open(path, os.O_RDONLY)
    try:
        drop_cached(fd)
    finally:
        os.close(fd)


def fsync_dir(path: os.PathLike[str] | str) -> None:
    """Make a rename or a new entry in folder ``path`` durable."""
    _fsync_path(path)


def _fsync_path(path: os.PathLike[str] | str, *, drop: bool = False) -> None:
    """``fsync`` the file or folder at ``path`` (a folder: its entries); ``drop``: then
    let the page cache go of the file's pages (clean now: nothing is lost)."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
        if drop:
            drop_cached(fd)
    finally:
        os.close(fd)
