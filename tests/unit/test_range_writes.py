"""A disk that fails an answer's write is a :class:`StorageError` naming the file."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from sa1b.engine.slots import write_answer
from sa1b.errors import StorageError


def test_a_failing_disk_names_the_file(tmp_path: Path) -> None:
    fd = os.open(tmp_path / "part", os.O_RDONLY | os.O_CREAT)
    try:
        with pytest.raises(StorageError, match=r"^sa_000000\.tar: cannot write: Bad file"):
            write_answer(fd, [b"x"], 0, name="sa_000000.tar")
    finally:
        os.close(fd)
