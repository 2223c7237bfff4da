"""A full disk stops the run at once, with a plain message, keeping what is done."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from sa1b.cdn.synth import ShardInfo

from .conftest import assert_identical, run_cli, tmpfs

MiB = 1024 * 1024


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A 14 MiB tmpfs: room for two 6 MiB shards, not three."""
    with tmpfs(tmp_path / "small", 14) as mountpoint:
        yield mountpoint


@pytest.mark.skipif(os.geteuid() != 0, reason="mounting a small tmpfs needs root")
def test_disk_full_stops_with_a_plain_message(
    small_disk: Path, links: Path, shards: list[ShardInfo]
) -> None:
    out = small_disk / "out"
    # --no-space-check: the run is meant to meet the full disk, not be refused before it.
    args = ("--files", "1", "--connections", "2", "--no-space-check")
    result = run_cli("download", "--no-extract", links, "-o", out, *args)
    assert result.returncode == 1, result.output
    assert "No space left on device" in result.output
    assert "free some space" in result.output
    assert "Traceback" not in result.output
    done = [s for s in shards if (out / "tars" / s.name).exists()]
    assert done, "the shards that fitted are kept"
    assert_identical(out, done)
