"""End to end: the real ``sa1b`` process against the CDN stand-in."""

from __future__ import annotations

import re
import sqlite3
import time
from pathlib import Path

import pytest

from sa1b.cdn.faults import Fault
from sa1b.cdn.server import CDNServer
from sa1b.cdn.synth import ShardInfo, make_dataset
from sa1b.store.filesystems import direct_writes_suit
from sa1b.store.state import StateStore
from tests.pagecache import drops_pages, resident_pages

from .conftest import assert_identical, md5, run_cli


def test_downloads_every_shard_byte_for_byte(
    cdn: CDNServer, links: Path, shards: list[ShardInfo], tmp_path: Path
) -> None:
    out = tmp_path / "out"
    result = run_cli("download", "--no-extract", links, "-o", out)
    assert result.returncode == 0, result.output
    assert_identical(out, shards)
    assert "3/3 files done" in result.output
    # Extras are opt-in: the ids file is listed but not fetched.
    assert not (out / "sa_images_ids.txt").exists()
    # Nothing but final files under tars/, no partial left behind.
    assert sorted(p.name for p in (out / "tars").iterdir()) == sorted(s.name for s in shards)
    assert not list((out / ".sa1b" / "partial").iterdir())


@pytest.mark.parametrize("extract", [False, True])
def test_what_a_run_wrote_leaves_the_page_cache(
    cdn: CDNServer, links: Path, shards: list[ShardInfo], tmp_path: Path, extract: bool
) -> None:
    """Nothing in a run reads a tar it downloaded or a member it extracted again: once
    synced, their pages go (``sa1b.store.writeback.sync_files`` says why). Members
    written direct never were in the page cache, but their last partial block, which
    stays (a page a member: letting it go would cost three calls a member)."""
    if not drops_pages(tmp_path):
        pytest.skip(f"the filesystem of {tmp_path} keeps its pages whatever is asked (tmpfs)")
    out = tmp_path / "out"
    result = run_cli("download", *([] if extract else ["--no-extract"]), links, "-o", out)
    assert result.returncode == 0, result.output
    written = [p for p in out.rglob("*") if p.is_file() and ".sa1b" not in p.parts]
    assert len(written) >= len(shards)
    pages = [resident_pages(path) for path in written]  # before anything reads them
    if extract and direct_writes_suit(out):
        assert max(pages) <= 1, pages
        assert sum(pages) * 4096 < sum(p.stat().st_size for p in written) / 16
    else:
        assert sum(pages) == 0
    if not extract:
        assert_identical(out, shards)


def test_connections_are_kept_alive(cdn: CDNServer, links: Path, tmp_path: Path) -> None:
    result = run_cli(
        "download", "--no-extract", links, "-o", tmp_path / "out", "--connections", "2"
    )
    assert result.returncode == 0, result.output
    # Two connections, reused for every request (4 MiB or less each); before them, the
    # space check asked one byte of each file on connections of its own (3 here).
    assert len(cdn.requests) >= 5 + 3
    assert cdn.connections_total <= 2 + 3


def test_the_download_starts_from_the_sizes_the_space_check_learned(
    cdn: CDNServer, links: Path, shards: list[ShardInfo], tmp_path: Path
) -> None:
    # The space check asks one byte of each file; the size and ETag it learns are
    # recorded, so every request of the download already names the file's version.
    result = run_cli("download", "--no-extract", links, "-o", tmp_path / "out")
    assert result.returncode == 0, result.output
    assert_identical(tmp_path / "out", shards)
    for shard in shards:
        asked = [r for r in cdn.requests if r.name == shard.name]
        assert [r.range_header for r in asked if r.if_range is None] == ["bytes=0-0"]
        assert sum(r.bytes_sent for r in asked) == shard.size + 1


def test_second_run_fetches_nothing(cdn: CDNServer, links: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    assert run_cli("download", "--no-extract", links, "-o", out).returncode == 0
    cdn.clear_requests()
    again = run_cli("download", "--no-extract", links, "-o", out)
    assert again.returncode == 0, again.output
    assert cdn.bytes_sent_total == 0
    assert f"all 3 files are already done in {out}; nothing to download" in again.output
    one = run_cli("download", "--no-extract", links, "-o", out, "--shards", "1")
    assert f"sa_000001.tar is already done in {out}; nothing to download" in one.output
    assert "selected" not in again.output + one.output


def test_selects_by_shard_id_and_extras(
    cdn: CDNServer, links: Path, shards: list[ShardInfo], tmp_path: Path
) -> None:
    out = tmp_path / "out"
    result = run_cli(
        "download", "--no-extract", links, "-o", out, "--shards", "sa_000002,0", "--extras"
    )
    assert result.returncode == 0, result.output
    names = sorted(p.name for p in (out / "tars").iterdir())
    assert names == ["sa_000000.tar", "sa_000002.tar"]
    assert (out / "sa_images_ids.txt").is_file()  # extras beside the dataset, not in tars/


def test_status_reports_done_and_last_run(links: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    assert run_cli("download", "--no-extract", links, "-o", out, "--shards", "0-1").returncode == 0
    status = run_cli("status", out)
    assert status.returncode == 0
    assert re.search(r"sa_000000\.tar\s+done", status.output)
    assert "2 files: 2 done" in status.output
    assert "last run:" in status.output


def test_checksums_verified(shards: list[ShardInfo], links: Path, tmp_path: Path) -> None:
    sums = tmp_path / "md5sums.txt"
    sums.write_text("".join(f"{s.md5}  {s.name}\n" for s in shards))
    out = tmp_path / "out"
    result = run_cli("download", "--no-extract", links, "-o", out, "--checksums", sums)
    assert result.returncode == 0, result.output
    assert_identical(out, shards)


def test_checksum_mismatch_fails_after_clean_redownload(
    cdn: CDNServer, shards: list[ShardInfo], links: Path, tmp_path: Path
) -> None:
    sums = tmp_path / "md5sums.txt"
    sums.write_text(f"{'0' * 32}  sa_000001.tar\n{shards[0].md5}  sa_000000.tar\n")
    out = tmp_path / "out"
    result = run_cli(
        "download", "--no-extract", links, "-o", out, "--checksums", sums, "--shards", "0-1"
    )
    assert result.returncode == 1, result.output
    assert "sa_000001.tar" in result.output and "does not match" in result.output
    assert not (out / "tars" / "sa_000001.tar").exists()
    assert md5(out / "tars" / "sa_000000.tar") == shards[0].md5
    # Fetched twice: once, then once more cleanly before giving up.
    assert cdn.bytes_sent("sa_000001.tar") >= 2 * shards[1].size


def test_signatures_never_in_output_or_logs(cdn: CDNServer, links: Path, tmp_path: Path) -> None:
    cdn.add_fault("sa_000000.tar", Fault("status", status=503, times=2))
    cdn.add_fault("sa_000001.tar", Fault("forbidden", times=1000))
    log = tmp_path / "sa1b.log"
    out = tmp_path / "out"
    result = run_cli(
        "download", "--no-extract", links, "-o", out, "--log-file", log, "--log-level", "debug"
    )
    assert result.returncode == 1
    signatures = re.findall(r"oh=([^&\s]+)", links.read_text())
    assert signatures
    text = result.output + log.read_text()
    assert "retrying" in log.read_text()
    for signature in signatures:
        assert signature not in text
    assert "oh=" not in text and "oe=" not in text


def test_state_store_is_wal_sqlite(links: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    assert run_cli("download", "--no-extract", links, "-o", out, "--shards", "0").returncode == 0
    db = sqlite3.connect(out / ".sa1b" / "state.db")
    assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    (status,) = db.execute("SELECT status FROM files WHERE name = 'sa_000000.tar'").fetchone()
    assert status == "done"


def test_max_rate_caps_total_bandwidth(
    cdn: CDNServer, links: Path, shards: list[ShardInfo], tmp_path: Path
) -> None:
    out = tmp_path / "out"
    total = sum(s.size for s in shards)
    rate = 8 * 1024 * 1024
    started = time.monotonic()
    result = run_cli("download", "--no-extract", links, "-o", out, "--max-rate", "8M")
    elapsed = time.monotonic() - started
    assert result.returncode == 0, result.output
    assert_identical(out, shards)
    # The bucket lets a burst of rate/10 through at once; the rest waits its turn.
    assert elapsed >= (total - rate / 10) / rate * 0.95, elapsed


def test_many_small_files_are_each_published_and_recorded(tmp_path: Path) -> None:
    # Small files complete many at a time: the publisher takes them together (one
    # commit, one fsync of the folder); each must still end under its final name,
    # byte for byte, and recorded done with every byte.
    root = tmp_path / "cdn"
    shards = make_dataset(root, shard_indices=range(60), shard_size=64 * 1024, seed=3, extras=False)
    out = tmp_path / "out"
    with CDNServer(root=root) as server:
        links = tmp_path / "links.tsv"
        server.write_links_file(links)
        result = run_cli("download", "--no-extract", links, "-o", out, "--connections", "16")
    assert result.returncode == 0, result.output
    assert "60/60 files done" in result.output
    assert_identical(out, shards)
    assert not list((out / ".sa1b" / "partial").iterdir())
    with StateStore(out, lock=False, create=False) as store:
        records = {record.name: record for record in store.records()}
    for shard in shards:
        record = records[shard.name]
        assert (record.status, record.size) == ("done", shard.size), shard.name
        assert record.ranges.covers(0, shard.size), shard.name
