"""Preallocation: fallocate(2) itself; "not here" leaves the file sparse, never zero-filled."""

from __future__ import annotations

import ctypes
import errno
import os
from collections.abc import Callable
from pathlib import Path

import pytest

from sa1b.store import allocation


def answering(*codes: int) -> tuple[Callable[[int, int, int, int], int], list[int]]:
    """A stand-in for libc's ``fallocate`` failing with ``codes`` in turn, then succeeding."""
    calls: list[int] = []

    def fallocate(fd: int, mode: int, offset: int, length: int) -> int:
        calls.append(length)
        if len(calls) <= len(codes):
            ctypes.set_errno(codes[len(calls) - 1])
            return -1
        return 0

    return fallocate, calls


@pytest.mark.parametrize(
    ("codes", "allocated", "attempts"),
    [
        ((), True, 1),
        ((errno.EOPNOTSUPP,), False, 1),  # ext2, NFSv3, many FUSE filesystems
        ((errno.ENOSYS,), False, 1),
        ((errno.EINTR,), True, 2),  # a signal: asked again
    ],
    ids=["allocated", "unsupported", "no-syscall", "interrupted"],
)
def test_preallocate(
    monkeypatch: pytest.MonkeyPatch, codes: tuple[int, ...], allocated: bool, attempts: int
) -> None:
    fallocate, calls = answering(*codes)
    monkeypatch.setattr(allocation, "_fallocate", fallocate)
    assert allocation.preallocate(3, 10) is allocated
    assert calls == [10] * attempts


def test_a_full_disk_is_an_error(monkeypatch: pytest.MonkeyPatch) -> None:
    fallocate, _ = answering(errno.ENOSPC)
    monkeypatch.setattr(allocation, "_fallocate", fallocate)
    with pytest.raises(OSError, match="No space left") as raised:
        allocation.preallocate(3, 10)
    assert raised.value.errno == errno.ENOSPC


def test_nothing_to_allocate_or_no_way_to(monkeypatch: pytest.MonkeyPatch) -> None:
    fallocate, calls = answering()
    monkeypatch.setattr(allocation, "_fallocate", fallocate)
    assert allocation.preallocate(3, 0) is False
    monkeypatch.setattr(allocation, "_fallocate", None)  # a libc without it
    assert allocation.preallocate(3, 10) is False
    assert calls == []


def test_the_blocks_are_reserved(tmp_path: Path) -> None:
    fd = os.open(tmp_path / "file", os.O_RDWR | os.O_CREAT, 0o644)
    try:
        if not allocation.preallocate(fd, 1 << 20):
            pytest.skip("this filesystem cannot preallocate")
        stat = os.fstat(fd)
        assert stat.st_size == 1 << 20
        assert stat.st_blocks * 512 >= 1 << 20
    finally:
        os.close(fd)


def test_punch_hole_frees_the_blocks_and_keeps_the_size(tmp_path: Path) -> None:
    path = tmp_path / "tar.part"
    path.write_bytes(b"\x01" * (1 << 20))
    fd = os.open(path, os.O_RDWR)
    try:
        if not allocation.punch_hole(fd, 0, 1 << 19):
            pytest.skip("this filesystem cannot punch holes")
        assert os.pread(fd, 4, 0) == bytes(4) and os.pread(fd, 4, 1 << 19) == b"\x01" * 4
        assert os.fstat(fd).st_size == 1 << 20
        assert os.fstat(fd).st_blocks * 512 <= (1 << 19) + 65536
    finally:
        os.close(fd)


@pytest.mark.parametrize(
    ("codes", "punched"),
    [((), True), ((errno.EOPNOTSUPP,), False), ((errno.EINTR,), True)],
    ids=["punched", "unsupported", "interrupted"],
)
def test_punch_hole_where_the_filesystem_cannot(
    monkeypatch: pytest.MonkeyPatch, codes: tuple[int, ...], punched: bool
) -> None:
    fallocate, calls = answering(*codes)
    monkeypatch.setattr(allocation, "_fallocate", fallocate)
    assert allocation.punch_hole(3, 4096, 8192) is punched
    assert allocation.punch_hole(3, 4096, 0) is False  # nothing to free: not asked
    assert calls == [8192] * (1 + (errno.EINTR in codes))


def test_holes_are_where_the_file_has_no_blocks(tmp_path: Path) -> None:
    mib = 1 << 20
    path = tmp_path / "tar.part"
    path.write_bytes(b"\x01" * (4 * mib))
    fd = os.open(path, os.O_RDWR)
    try:
        assert allocation.holes(fd, 4 * mib) == []
        if not allocation.punch_hole(fd, mib, mib):
            pytest.skip("this filesystem cannot punch holes")
        os.truncate(fd, 6 * mib)  # a sparse tail: a hole up to the end
        assert allocation.holes(fd, 6 * mib) == [(mib, 2 * mib), (4 * mib, 6 * mib)]
        assert allocation.holes(fd, 3 * mib) == [(mib, 2 * mib)]  # clipped to the size
        assert allocation.holes(fd, 0) == []
    finally:
        os.close(fd)
