"""``sa1b status``: what a folder holds, counted as a rerun will count it; live while a
download runs; exit 1 when a file failed or expired."""

from __future__ import annotations

import re
import signal
import subprocess
from pathlib import Path

import pytest

from sa1b import api
from sa1b.cdn.faults import Fault
from sa1b.cdn.server import CDNServer
from sa1b.cdn.synth import ShardInfo, make_dataset
from sa1b.units import human_bytes
from tests.waiting import wait_for

from .conftest import Result, run_cli, start_cli
from .test_resume import _start, _wait_for_bytes


@pytest.fixture
def slow_links(slow_cdn: CDNServer, tmp_path: Path) -> Path:
    path = tmp_path / "links.tsv"
    slow_cdn.write_links_file(path)
    return path


@pytest.mark.parametrize("extract", [False, True], ids=["tars", "extracting"])
def test_status_after_a_sigkill_counts_what_a_rerun_keeps(
    slow_cdn: CDNServer, slow_links: Path, shards: list[ShardInfo], tmp_path: Path, extract: bool
) -> None:
    out, total = tmp_path / "out", sum(s.size for s in shards)
    proc = start_cli("download", slow_links, "-o", out) if extract else _start(slow_links, out)
    _wait_for_bytes(slow_cdn, total // 2, proc)
    proc.send_signal(signal.SIGKILL)
    proc.communicate()

    shown = run_cli("status", out)
    assert shown.returncode == 0, shown.output
    assert "partial" in shown.output and "a download is running" not in shown.output
    kept = sum(record.done_bytes for record in api.status(out).files)

    args = ("download", slow_links, "-o", out) + (() if extract else ("--no-extract",))
    rerun = run_cli(*args)
    assert rerun.returncode == 0, rerun.output
    last_run = api.status(out).last_run
    assert last_run is not None
    really_kept = total - last_run.bytes
    assert abs(kept - really_kept) <= 0.05 * really_kept, (kept, really_kept)


def test_on_disk_counts_the_members_a_streamed_shard_has_staged(tmp_path: Path) -> None:
    """A shard extracted as it streams has no tar on disk: the space it takes is the
    members it has staged, which status counts as ``du`` does. The shard is 64 MiB, four
    parts: its first members are staged while the rest still arrives."""
    (shard,) = make_dataset(tmp_path / "cdn", shard_indices=[0], shard_size=64 * 1024 * 1024,
                            seed=7, extras=False)  # fmt: skip
    out, staging = tmp_path / "out", tmp_path / "out" / ".sa1b" / "staging"
    with CDNServer(root=shard.path.parent, rate_per_connection=1024 * 1024) as server:
        links = tmp_path / "links.tsv"
        server.write_links_file(links)
        proc = start_cli("download", links, "-o", out, "--connections", "4")
        wait_for(lambda: any(p.is_file() for p in staging.rglob("*")), timeout=60,
                 message="a member staged")  # fmt: skip
        proc.send_signal(signal.SIGINT)
        proc.communicate(timeout=30)
    assert proc.returncode == 130

    shown = run_cli("status", out)
    assert shown.returncode == 0, shown.output
    staged = [p for p in staging.rglob("*") if p.is_file()]
    assert staged  # kept for the rerun
    taken = sum(p.stat().st_blocks * 512 for p in staged)
    tally = shown.stdout.splitlines()[-2]
    assert tally.endswith(f", {human_bytes(taken)} on disk"), (tally, human_bytes(taken))


def test_status_during_a_run_says_so_and_shows_progress(
    slow_cdn: CDNServer, slow_links: Path, shards: list[ShardInfo], tmp_path: Path
) -> None:
    out, total = tmp_path / "out", sum(s.size for s in shards)
    proc = _start(slow_links, out, "--connections", "2")  # 3 MiB/s: still running at status

    def progress_shown() -> Result | None:
        shown = run_cli("status", out)
        fetched = re.search(r"([\d.]+) MiB fetched", shown.output)
        return shown if fetched and float(fetched.group(1)) > 1.0 else None

    try:
        _wait_for_bytes(slow_cdn, total // 3, proc)
        shown = wait_for(progress_shown, timeout=60, message="over 1 MiB fetched", process=proc)
    finally:
        proc.send_signal(signal.SIGINT)
        proc.communicate(timeout=30)
    assert f"a download is running in {out} (pid {proc.pid})" in shown.output


def test_status_exits_1_when_a_file_failed(
    cdn: CDNServer, links: Path, shards: list[ShardInfo], tmp_path: Path
) -> None:
    out = tmp_path / "out"
    cdn.add_fault(shards[0].name, Fault("not_found", times=100))
    assert run_cli("download", "--no-extract", links, "-o", out).returncode == 1
    shown = run_cli("status", out)
    assert shown.returncode == 1
    assert "1 failed" in shown.output


def test_on_disk_is_what_du_counts_and_fetched_what_arrived(
    slow_cdn: CDNServer, slow_links: Path, shards: list[ShardInfo], tmp_path: Path
) -> None:
    """A partial download: its partial files are preallocated whole, so the space they
    take (``du``, ``st_blocks * 512``) is more than the bytes fetched; status shows both."""
    out, total = tmp_path / "out", sum(s.size for s in shards)
    proc = _start(slow_links, out, "--connections", "3")
    _wait_for_bytes(slow_cdn, total // 2, proc)
    proc.send_signal(signal.SIGINT)
    proc.communicate(timeout=30)
    assert proc.returncode == 130

    shown = run_cli("status", out)
    assert shown.returncode == 0, shown.output
    files = [f for f in (out / "tars", out / ".sa1b" / "partial") if f.is_dir()]
    taken = sum(p.stat().st_blocks * 512 for folder in files for p in folder.glob("*"))
    du = subprocess.run(
        ["du", "-s", "--block-size=1", "--total", *map(str, files)],
        capture_output=True,
        text=True,
        check=True,
    )
    assert int(du.stdout.splitlines()[-1].split()[0]) - taken <= 2 * 4096  # the folders
    fetched = sum(record.done_bytes for record in api.status(out).files)
    assert fetched < taken  # preallocated: a partial file takes its whole size at once
    tally = shown.stdout.splitlines()[-2]
    assert tally.endswith(f"; {human_bytes(fetched)} fetched, {human_bytes(taken)} on disk")
