"""Members written direct (``O_DIRECT``: from the parts' memory to the disk, past the
page cache) onto a local disk's filesystem, and through the page cache once the disk
refuses: every byte right either way. The real CLI, onto ext4 and xfs on real loop
devices."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from sa1b.cdn.server import CDNServer
from sa1b.cdn.synth import ShardInfo, make_dataset

from .conftest import LOOP_DEVICES, assert_extracted, loop_disk, run_cli

MiB = 1024 * 1024


@pytest.fixture(scope="module")
def cdn_shard(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[CDNServer, ShardInfo]]:
    """One shard of 20 MiB: two parts of a streamed extraction (16 MiB and 4 MiB), so that
    a member is cut across them; 24 pairs of members, none a whole number of blocks."""
    root = tmp_path_factory.mktemp("direct-cdn")
    (shard,) = make_dataset(root, shard_indices=[5], shard_size=20 * MiB, pairs=24, extras=False)
    with CDNServer(root=root) as server:
        yield server, shard


def links_to(cdn: CDNServer, tmp_path: Path) -> Path:
    links = tmp_path / "links.tsv"
    cdn.write_links_file(links)
    return links


def extract_onto(disk: Path, cdn_shard: tuple[CDNServer, ShardInfo], tmp_path: Path) -> str:
    """Download and extract the shard into ``disk``; every member checked; the log."""
    cdn, shard = cdn_shard
    log, out = tmp_path / "sa1b.log", disk / "out"
    links = links_to(cdn, tmp_path)
    result = run_cli(
        "download", links, "-o", out, "--quiet", "--log-file", log, "--log-level", "debug"
    )
    assert result.returncode == 0, result.output
    assert_extracted(out, [shard])
    return log.read_text()


@LOOP_DEVICES
@pytest.mark.parametrize(("kind", "mib"), [("ext4", 96), ("xfs", 320)])
def test_members_are_written_direct_onto_a_local_disk(
    kind: str, mib: int, cdn_shard: tuple[CDNServer, ShardInfo], tmp_path: Path
) -> None:
    with loop_disk(tmp_path / kind, mib, kind) as (disk, _):
        log = extract_onto(disk, cdn_shard, tmp_path)
    assert "members are written direct" in log
    assert "refuses direct writes" not in log


@LOOP_DEVICES
def test_a_disk_that_refuses_direct_writes_gets_every_member_through_the_page_cache(
    cdn_shard: tuple[CDNServer, ShardInfo], tmp_path: Path
) -> None:
    # 4 KiB sectors: a direct write must start on a 4 KiB boundary, in memory and in the
    # file, where a member's bytes start on a 512-byte one (a tar's blocks).
    with loop_disk(tmp_path / "ext4", 96, "ext4", sector_size=4096) as (disk, _):
        log = extract_onto(disk, cdn_shard, tmp_path)
    assert "members are written direct" in log
    assert "refuses direct writes; members are written through the page cache" in log


@LOOP_DEVICES
def test_a_full_disk_stops_a_run_writing_direct_with_a_plain_message(
    cdn_shard: tuple[CDNServer, ShardInfo], tmp_path: Path
) -> None:
    links = links_to(cdn_shard[0], tmp_path)
    with loop_disk(tmp_path / "ext4", 16, "ext4") as (disk, _):  # about 10 MiB free
        out = disk / "out"
        # --no-space-check: the run is meant to meet the full disk, not be refused before it.
        result = run_cli("download", links, "-o", out, "--quiet", "--no-space-check")
        published = [
            p for p in out.rglob("*") if p.is_file() and ".sa1b" not in p.relative_to(out).parts
        ]
    assert result.returncode == 1, result.output
    assert "cannot write a member: No space left on device" in result.output
    assert "Traceback" not in result.output
    assert published == []  # nothing of the shard is published
