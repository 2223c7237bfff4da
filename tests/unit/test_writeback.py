"""Writing into the page cache: every byte at its place, in slices that keep the kernel
off 2 MiB folios (:data:`sa1b.store.writeback.WRITE_SLICE`)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from sa1b.store import writeback
from sa1b.store.writeback import WRITE_SLICE, sync_files, write_at
from tests.pagecache import drops_pages, resident_pages


@pytest.mark.parametrize("length", [0, 1, WRITE_SLICE, WRITE_SLICE + 1, 3 * WRITE_SLICE + 77])
def test_write_at_puts_every_byte_in_place_a_slice_at_a_time(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, length: int
) -> None:
    data = os.urandom(length)
    path = tmp_path / "member"
    path.write_bytes(b"\xff" * 10)
    calls: list[int] = []
    pwrite = os.pwrite

    def recorded(fd: int, chunk: bytes, offset: int) -> int:
        calls.append(len(chunk))
        return pwrite(fd, chunk, offset)

    monkeypatch.setattr(writeback.os, "pwrite", recorded)
    fd = os.open(path, os.O_WRONLY)
    try:
        write_at(fd, memoryview(data), 7)
    finally:
        os.close(fd)
    assert path.read_bytes() == b"\xff" * 7 + data + (b"\xff" * (3 - length) if length < 3 else b"")
    assert all(0 < size <= WRITE_SLICE for size in calls)
    assert sum(calls) == length


def test_write_at_goes_on_after_a_short_write(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    data = os.urandom(5000)
    pwrite = os.pwrite
    monkeypatch.setattr(writeback.os, "pwrite", lambda fd, chunk, at: pwrite(fd, chunk[:999], at))
    path = tmp_path / "member"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT)
    try:
        write_at(fd, data, 0)
    finally:
        os.close(fd)
    assert path.read_bytes() == data


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
