"""Writing into the page cache: every byte of every chunk at its place, in slices that
keep the kernel off 2 MiB folios (:data:`sa1b.store.writeback.WRITE_SLICE`); and past
it, direct, but a member's last block."""

from __future__ import annotations

import fcntl
import mmap
import os
from pathlib import Path

import pytest

from sa1b.store import writeback
from sa1b.store.filesystems import DIRECT_FILESYSTEMS, filesystem_type
from sa1b.store.writeback import (
    DIRECT_BLOCK,
    WRITE_SLICE,
    direct_length,
    open_member,
    sync_files,
    write_at,
    write_cached,
    write_direct,
)
from tests.pagecache import drops_pages, resident_pages


@pytest.mark.parametrize(
    "sizes",
    [
        [],
        [0],
        [1],
        [WRITE_SLICE],
        [WRITE_SLICE + 1],
        [3 * WRITE_SLICE + 77],
        [16384] * 9,
        [7, WRITE_SLICE - 7, 5, 0, 2 * WRITE_SLICE],
    ],
)
def test_write_at_puts_every_byte_in_place_a_slice_at_a_time(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, sizes: list[int]
) -> None:
    chunks = [os.urandom(size) for size in sizes]
    data = b"".join(chunks)
    path = tmp_path / "member"
    path.write_bytes(b"\xff" * 10)
    calls: list[int] = []
    pwritev = os.pwritev

    def recorded(fd: int, buffers: list[memoryview], offset: int) -> int:
        calls.append(sum(map(len, buffers)))
        return pwritev(fd, buffers, offset)

    monkeypatch.setattr(writeback.os, "pwritev", recorded)
    fd = os.open(path, os.O_WRONLY)
    try:
        assert write_at(fd, chunks, 7) == len(data)
    finally:
        os.close(fd)
    length = len(data)
    assert path.read_bytes() == b"\xff" * 7 + data + (b"\xff" * (3 - length) if length < 3 else b"")
    assert all(0 < size <= WRITE_SLICE for size in calls)
    assert sum(calls) == length
    assert len(calls) == -(-length // WRITE_SLICE)  # as few calls as the slices allow


def test_write_at_goes_on_after_a_short_write(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    chunks = [os.urandom(5000), bytearray(os.urandom(6000))]
    pwritev, pwrite = os.pwritev, os.pwrite
    monkeypatch.setattr(writeback.os, "pwritev", lambda fd, bufs, at: pwritev(fd, bufs[:1], at) - 3)
    monkeypatch.setattr(writeback.os, "pwrite", lambda fd, chunk, at: pwrite(fd, chunk[:999], at))
    path = tmp_path / "member"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT)
    try:
        assert write_at(fd, chunks, 0) == 11000
    finally:
        os.close(fd)
    assert path.read_bytes() == b"".join(chunks)


@pytest.mark.parametrize("whole", [False, True])
def test_synced_members_leave_the_page_cache(tmp_path: Path, whole: bool) -> None:
    """Members are never read again in a run: once synced, their pages go (dirty pages
    would stay: gone, they were written, by an fsync each or by one syncfs)."""
    if not drops_pages(tmp_path):
        pytest.skip(f"the filesystem of {tmp_path} keeps its pages whatever is asked (tmpfs)")
    members = [tmp_path / name for name in ("a.jpg", "a.json", "b.jpg")]
    for path in members:
        path.write_bytes(os.urandom(1 << 20))
    assert all(resident_pages(path) for path in members)  # written: in the page cache
    sync_files(members, [tmp_path], whole=whole)
    assert [resident_pages(path) for path in members] == [0, 0, 0]


@pytest.mark.parametrize(
    ("size", "at", "length", "direct"),
    [
        (10_000, 0, 10_000, 8192),  # a member in one piece: all but its last, partial block
        (8192, 0, 8192, 8192),  # whole blocks: all of it
        (4095, 0, 4095, 0),  # less than a block: none
        (10_000, 0, 6144, 6144),  # a first piece (its part ends there): all of it
        (10_000, 6144, 3856, 2048),  # the rest: up to the last whole block
        (10_000, 9000, 1000, 0),  # a rest inside the last block: none
        (20_000, 4096, 4096, 4096),  # a piece between two others
    ],
)
def test_a_member_goes_direct_but_its_last_partial_block(
    size: int, at: int, length: int, direct: int
) -> None:
    assert direct_length(size, at, length) == direct


def direct_folder(folder: Path) -> Path:
    if filesystem_type(folder) not in DIRECT_FILESYSTEMS:
        pytest.skip(f"{folder} is not on a filesystem sa1b writes direct to")
    return folder


def test_a_member_written_direct_leaves_a_block_at_most_in_the_page_cache(
    tmp_path: Path,
) -> None:
    size = 3 * DIRECT_BLOCK + 100
    memory = mmap.mmap(-1, 4 * DIRECT_BLOCK, flags=mmap.MAP_PRIVATE)  # pages: aligned
    memory[:size] = data = os.urandom(size)
    path = direct_folder(tmp_path) / "member"
    fd = open_member(path, direct=True)
    try:
        cut = direct_length(size, 0, size)
        with memoryview(memory) as view:
            assert write_direct(fd, view[:cut], 0)
            write_cached(fd)
            write_at(fd, [view[cut:size]], cut)
    finally:
        os.close(fd)
    assert resident_pages(path) <= 1  # the last block's; a cached write leaves all 4
    assert path.read_bytes() == data


def test_a_direct_write_the_disk_refuses_writes_nothing_and_the_file_goes_on_cached(
    tmp_path: Path,
) -> None:
    data = bytearray(os.urandom(2 * DIRECT_BLOCK + 1))
    path = direct_folder(tmp_path) / "member"
    fd = open_member(path, direct=True)
    try:
        with memoryview(data) as view:
            assert not write_direct(fd, view[1:], 0)  # memory on no disk's boundary
            assert os.fstat(fd).st_size == 0
            assert not fcntl.fcntl(fd, fcntl.F_GETFL) & os.O_DIRECT
            write_at(fd, [view[1:]], 0)
    finally:
        os.close(fd)
    assert path.read_bytes() == data[1:]
