"""Writing into the page cache: every byte at its place, in slices that keep the kernel
off 2 MiB folios (:data:`sa1b.store.writeback.WRITE_SLICE`)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from sa1b.store import writeback
from sa1b.store.writeback import WRITE_SLICE, write_at


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
