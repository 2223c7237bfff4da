"""Extraction where the kernel cannot copy between files (some network filesystems)."""

from __future__ import annotations

import errno
import os
import tarfile
from pathlib import Path

import pytest

from sa1b.extract import shard as extract
from sa1b.extract.shard import extract_shard
from sa1b.layout import Layout
from tests.wdstar import wds_tar

MTIME = 1_680_566_400


def _tar(path: Path, members: dict[str, bytes]) -> None:
    with tarfile.open(path, "w", format=tarfile.USTAR_FORMAT) as archive:
        for name, data in members.items():
            source = path.parent / f"src-{name}"
            source.write_bytes(data)
            os.utime(source, (MTIME, MTIME))
            archive.add(source, arcname=name)


@pytest.mark.parametrize("layout", ["shard", "wds"])
@pytest.mark.parametrize("fail_after", [0, 1])
def test_falls_back_to_copying_through_memory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, fail_after: int, layout: Layout
) -> None:
    members = {
        "sa_1.jpg": os.urandom(9 * 1024 * 1024 + 7),  # more than one copy chunk
        "sa_1.json": b"{}" * 1000,
        "sa_2.jpg": os.urandom(3000),
        "sa_2.json": b"{}",
    }
    shard = tmp_path / "sa_000001.tar"
    _tar(shard, members)
    calls = 0
    real = os.copy_file_range

    def refusing(*args: int) -> int:
        nonlocal calls
        calls += 1
        if calls > fail_after:
            raise OSError(errno.EXDEV, "Invalid cross-device link")
        return real(*args)

    monkeypatch.setattr(extract.os, "copy_file_range", refusing)
    fd = os.open(shard, os.O_RDONLY)
    try:
        report = extract_shard(
            fd,
            shard.stat().st_size,
            shard="sa_000001.tar",
            staging=tmp_path / "staging",
            layout=layout,
            wait=lambda end: None,
        )
    finally:
        os.close(fd)
    assert calls == fail_after + 1  # one refusal, then never asked again
    if layout == "wds":  # a refusal mid-member goes on where that member began
        written = (tmp_path / "staging" / "wds" / "sa_000001.tar").read_bytes()
        assert written == wds_tar(members.items(), mtime=MTIME)
    else:
        for name, data in members.items():
            assert (tmp_path / "staging" / "sa_000001" / name).read_bytes() == data
    assert len(report.members) == 4


def test_other_copy_errors_are_not_swallowed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    shard = tmp_path / "sa_000001.tar"
    _tar(shard, {"sa_1.jpg": b"x" * 5000, "sa_1.json": b"{}"})

    def broken(*args: int) -> int:
        raise OSError(errno.EIO, "Input/output error")

    monkeypatch.setattr(extract.os, "copy_file_range", broken)
    fd = os.open(shard, os.O_RDONLY)
    try:
        with pytest.raises(OSError, match="Input/output"):
            extract_shard(
                fd,
                shard.stat().st_size,
                shard="sa_000001.tar",
                staging=tmp_path / "staging",
                layout="shard",
                wait=lambda end: None,
            )
    finally:
        os.close(fd)
