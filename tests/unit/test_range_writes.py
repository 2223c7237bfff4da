"""An answer's kept chunks reach the file in order, at their offset, by one ``pwritev``
(:func:`sa1b.engine.slots.write_at`), and a short write goes on where it stopped."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from sa1b.engine import slots
from sa1b.engine.slots import write_at
from sa1b.errors import StorageError


def _written(path: Path, chunks: list[bytes], at: int) -> int:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT)
    try:
        return write_at(fd, chunks, at, name="sa_000000.tar")
    finally:
        os.close(fd)


def test_chunks_land_in_order_at_their_offset(tmp_path: Path) -> None:
    path = tmp_path / "part"
    path.write_bytes(b"\xff" * 8)
    chunks = [os.urandom(16384), b"", os.urandom(7), bytearray(os.urandom(70000))]
    assert _written(path, chunks, 5) == 16384 + 7 + 70000
    assert path.read_bytes() == b"\xff" * 5 + b"".join(chunks)


def test_a_short_write_goes_on_where_it_stopped(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    pwritev, pwrite = os.pwritev, os.pwrite
    monkeypatch.setattr(slots.os, "pwritev", lambda fd, bufs, at: pwritev(fd, bufs[:1], at) - 3)
    monkeypatch.setattr(slots.os, "pwrite", lambda fd, data, at: pwrite(fd, data[:999], at))
    chunks = [os.urandom(5000), os.urandom(6000)]
    path = tmp_path / "part"
    assert _written(path, chunks, 0) == 11000
    assert path.read_bytes() == b"".join(chunks)


def test_a_failing_disk_names_the_file(tmp_path: Path) -> None:
    fd = os.open(tmp_path / "part", os.O_RDONLY | os.O_CREAT)
    try:
        with pytest.raises(StorageError, match=r"sa_000000\.tar: cannot write"):
            write_at(fd, [b"x"], 0, name="sa_000000.tar")
    finally:
        os.close(fd)
