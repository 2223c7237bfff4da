"""A damaged, foreign or contradicted state store: detected, never trusted, nothing lost.

Each test leaves the output folder as a real run left it (finished, or killed mid-way),
damages what the store says, and runs the CLI again: the files must come out
byte-identical, with a warning naming what was wrong, and only what cannot be vouched
for fetched again.
"""

from __future__ import annotations

import shutil
import signal
import sqlite3
from collections.abc import Callable
from pathlib import Path

import pytest

from sa1b.cdn.server import CDNServer
from sa1b.cdn.synth import ShardInfo
from sa1b.config import DownloadConfig
from sa1b.store.paths import WORK_DIR

from .conftest import assert_identical, extracted_path, member_bytes, run_cli
from .test_resume import _start, _wait_for_bytes

FIRST_REQUEST = DownloadConfig(out=Path()).first_request


@pytest.fixture
def links_slow(slow_cdn: CDNServer, tmp_path: Path) -> Path:
    path = tmp_path / "links.tsv"
    slow_cdn.write_links_file(path)
    return path


def _killed_midway(cdn: CDNServer, links: Path, out: Path, total: int) -> None:
    proc = _start(links, out, "--connections", "4")
    _wait_for_bytes(cdn, total // 2, proc)
    proc.send_signal(signal.SIGKILL)
    proc.communicate()


def _rerun(links: Path, out: Path) -> str:
    result = run_cli("download", "--no-extract", links, "-o", out)
    assert result.returncode == 0, result.output
    assert "Traceback" not in result.output
    return result.output


def test_damaged_store_after_a_finished_run_refetches_nothing(
    cdn: CDNServer, links: Path, shards: list[ShardInfo], tmp_path: Path
) -> None:
    out = tmp_path / "out"
    _rerun(links, out)
    total = cdn.bytes_sent_total
    ((out / WORK_DIR) / "state.db").write_bytes(b"\0garbage" * 4096)
    output = _rerun(links, out)
    assert "set aside as state.db.damaged" in output
    assert_identical(out, shards)
    # Each file cost one answer head (what the server pushed meanwhile is dropped unread):
    # its size vouched for the file on disk, which was then verified.
    assert "fetched 0 B" in output
    assert cdn.bytes_sent_total - total <= len(shards) * FIRST_REQUEST


def test_tars_on_disk_without_a_store_are_verified_and_extracted_not_fetched(
    cdn: CDNServer, links: Path, shards: list[ShardInfo], tmp_path: Path
) -> None:
    out = tmp_path / "out"
    _rerun(links, out)
    shutil.rmtree(out / WORK_DIR)  # the store deleted outright
    result = run_cli("download", links, "-o", out, "--keep-tars")
    assert result.returncode == 0, result.output
    assert "fetched 0 B" in result.output
    for shard in shards:
        for name, data in member_bytes(shard).items():
            assert extracted_path(out, shard.name, name, "shard").read_bytes() == data
    assert_identical(out, shards)


def test_store_copied_from_another_folder_is_not_trusted(
    slow_cdn: CDNServer, links_slow: Path, shards: list[ShardInfo], tmp_path: Path
) -> None:
    first, second = tmp_path / "first", tmp_path / "second"
    _killed_midway(slow_cdn, links_slow, first, sum(s.size for s in shards))
    shutil.copytree((first / WORK_DIR), (second / WORK_DIR))
    # The second folder's partial files are not the ones the copied records describe.
    for partial in ((second / WORK_DIR) / "partial").iterdir():
        size = partial.stat().st_size
        partial.write_bytes(b"\xee" * size)
    output = _rerun(links_slow, second)
    assert "written for another folder" in output and str(first) in output
    assert_identical(second, shards)
    _rerun(links_slow, first)  # the original folder still resumes from its own store
    assert_identical(first, shards)


def _cut_short(out: Path) -> str:
    db = (out / WORK_DIR) / "state.db"
    db.write_bytes(db.read_bytes()[:1000])
    for wal in (out / WORK_DIR).glob("state.db-*"):
        wal.unlink()
    # A cut inside the first page reads as an empty database: "lost its records".
    return "the state store is damaged|the state store has lost its records"


def _resize_a_partial(out: Path) -> str:
    partials = sorted(((out / WORK_DIR) / "partial").iterdir())
    with partials[0].open("r+b") as handle:
        handle.truncate(12345)
    return "the partial file is 12345 bytes"


def _impossible_range(out: Path) -> str:
    with sqlite3.connect((out / WORK_DIR) / "state.db") as db:
        (name,) = db.execute("SELECT name FROM files WHERE size IS NOT NULL LIMIT 1").fetchone()
        db.execute(
            "INSERT OR REPLACE INTO ranges SELECT id, 0, size + 1 FROM files WHERE name = ?",
            (name,),
        )
    return f"{name}: its record in the state store is inconsistent"


MID_DOWNLOAD_DAMAGE = {
    "store-cut-short": _cut_short,
    "partial-resized": _resize_a_partial,
    "record-impossible": _impossible_range,
}


@pytest.mark.parametrize("damage", MID_DOWNLOAD_DAMAGE.values(), ids=MID_DOWNLOAD_DAMAGE.keys())
def test_damage_after_a_kill_is_detected_and_only_the_untrusted_is_fetched_again(
    damage: Callable[[Path], str],
    slow_cdn: CDNServer,
    links_slow: Path,
    shards: list[ShardInfo],
    tmp_path: Path,
) -> None:
    out = tmp_path / "out"
    _killed_midway(slow_cdn, links_slow, out, sum(s.size for s in shards))
    said = damage(out)
    output = _rerun(links_slow, out)
    assert any(message in output for message in said.split("|")), output
    assert_identical(out, shards)
