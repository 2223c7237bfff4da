"""Reading a tar's member index by windows from each header (what ``sa1b.open`` does in a
bucket by ranged GETs): the same members as tarfile finds, and reads counted."""

from __future__ import annotations

import os
import tarfile
from pathlib import Path

import pytest

from sa1b.cdn.synth import make_shard
from sa1b.data.bucket import walk_headers
from sa1b.errors import CorruptArchiveError


@pytest.fixture(scope="module")
def shard(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("walk") / "sa_000003.tar"
    make_shard(path, shard_index=3, size=3 << 20, seed=5, pairs=20)
    return path


def reads_of(path: Path, window: int, *, cut: int = 0) -> tuple[int, list[tuple[int, int]]]:
    """How many reads the walk makes, and the members (data offset, size) it finds."""
    calls = 0
    size = path.stat().st_size
    with path.open("rb") as handle:

        def read(start: int, end: int) -> bytes:
            nonlocal calls
            calls += 1
            assert end - start >= min(window, size - start)  # a window, or to the end
            return os.pread(handle.fileno(), max(0, min(end, size - cut) - start), start)

        entries = walk_headers(read, path.name, size, window=window)
    return calls, [(entry.offset, entry.size) for entry in entries]


def members(path: Path) -> list[tuple[int, int]]:
    with tarfile.open(path) as archive:
        return [(m.offset_data, m.size) for m in archive if m.isfile()]


@pytest.mark.parametrize("window", [512, 4096, 64 << 10, 1 << 20, 1 << 30])
def test_every_window_finds_tarfiles_members(shard: Path, window: int) -> None:
    calls, found = reads_of(shard, window)
    assert found == members(shard)
    headers = len(members(shard)) + 2  # each member's, the first end block, the tail
    assert 1 <= calls <= headers
    if window == 512:
        assert calls == headers
    if window >= shard.stat().st_size:
        assert calls == 1


def test_larger_windows_never_cost_more_reads(shard: Path) -> None:
    counts = [reads_of(shard, window)[0] for window in (512, 64 << 10, 1 << 20, 1 << 30)]
    assert counts == sorted(counts, reverse=True)


def test_an_object_shorter_than_listed_is_an_error_not_a_loop(shard: Path) -> None:
    size = shard.stat().st_size
    with pytest.raises(CorruptArchiveError) as raised:
        reads_of(shard, 512, cut=size // 2)
    assert raised.value.message.endswith(f", not {size}")
