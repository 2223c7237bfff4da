"""Crash and resume through real signals on a real process."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

import pytest

from sa1b.cdn.server import CDNServer
from sa1b.cdn.synth import ShardInfo
from tests.waiting import wait_for

from .conftest import assert_identical, run_cli, start_cli

MiB = 1024 * 1024


def _start(links: Path, out: Path, *extra: str) -> subprocess.Popen[str]:
    return start_cli("download", "--no-extract", links, "-o", out, *extra)


def _wait_for_bytes(cdn: CDNServer, target: int, proc: subprocess.Popen[str]) -> None:
    wait_for(
        lambda: cdn.bytes_sent_total >= target,
        timeout=60,
        message="the download to progress",
        process=proc,
    )


@pytest.mark.parametrize("connections", ["8", "2"])
def test_sigkill_midway_then_resume_refetches_almost_nothing(
    slow_cdn: CDNServer, shards: list[ShardInfo], tmp_path: Path, connections: str
) -> None:
    links = tmp_path / "links.tsv"
    slow_cdn.write_links_file(links)
    out = tmp_path / "out"
    total = sum(s.size for s in shards)
    proc = _start(links, out, "--connections", connections)
    _wait_for_bytes(slow_cdn, total // 2, proc)
    proc.send_signal(signal.SIGKILL)
    proc.communicate()
    assert proc.returncode == -signal.SIGKILL
    first = slow_cdn.bytes_sent_total
    assert first < total

    result = run_cli("download", "--no-extract", links, "-o", out, "--connections", connections)
    assert result.returncode == 0, result.output
    assert_identical(out, shards)
    fetched = slow_cdn.bytes_sent_total
    # Bytes in flight at the kill (socket buffers) are lost, nothing more.
    assert fetched <= total * 1.05 + int(connections) * 256 * 1024, (fetched, total)


def test_sigint_saves_state_and_exits_130(
    slow_cdn: CDNServer, shards: list[ShardInfo], tmp_path: Path
) -> None:
    links = tmp_path / "links.tsv"
    slow_cdn.write_links_file(links)
    out = tmp_path / "out"
    total = sum(s.size for s in shards)
    proc = _start(links, out, "--connections", "6")
    _wait_for_bytes(slow_cdn, total // 3, proc)
    proc.send_signal(signal.SIGINT)
    _, stderr = proc.communicate(timeout=30)
    assert proc.returncode == 130, stderr
    assert "run the same command to resume" in stderr
    sent = slow_cdn.bytes_sent_total
    status = run_cli("status", out)
    assert "partial" in status.output

    result = run_cli("download", "--no-extract", links, "-o", out)
    assert result.returncode == 0, result.output
    assert_identical(out, shards)
    assert sent < total
    assert slow_cdn.bytes_sent_total <= total + 6 * 256 * 1024


def test_sigterm_is_an_interrupt_too(
    slow_cdn: CDNServer, shards: list[ShardInfo], tmp_path: Path
) -> None:
    links = tmp_path / "links.tsv"
    slow_cdn.write_links_file(links)
    out = tmp_path / "out"
    proc = _start(links, out, "--connections", "4")
    _wait_for_bytes(slow_cdn, 2 * MiB, proc)
    proc.send_signal(signal.SIGTERM)
    proc.communicate(timeout=30)
    assert proc.returncode == 130


def test_second_process_on_same_folder_is_refused(
    slow_cdn: CDNServer, shards: list[ShardInfo], tmp_path: Path
) -> None:
    links = tmp_path / "links.tsv"
    slow_cdn.write_links_file(links)
    out = tmp_path / "out"
    proc = _start(links, out, "--connections", "2")
    try:
        _wait_for_bytes(slow_cdn, MiB, proc)
        second = run_cli("download", "--no-extract", links, "-o", out)
        assert second.returncode == 2
        assert "another sa1b process" in second.output
        assert str(proc.pid) in second.output
    finally:
        proc.send_signal(signal.SIGINT)
        proc.communicate(timeout=30)
    result = run_cli("download", "--no-extract", links, "-o", out)
    assert result.returncode == 0, result.output
    assert_identical(out, shards)


def test_expired_links_refused_up_front_then_fresh_links_work(
    cdn: CDNServer, shards: list[ShardInfo], tmp_path: Path
) -> None:
    stale = tmp_path / "stale.tsv"
    cdn.write_links_file(stale, expires_at=int(time.time()) - 3600)
    out = tmp_path / "out"
    result = run_cli("download", "--no-extract", stale, "-o", out)
    assert result.returncode == 2
    assert "all 3 links still needed have expired" in result.output
    assert "fresh links file" in result.output
    one = run_cli("download", "--no-extract", stale, "-o", out, "--shards", "0")
    assert "the link still needed has expired (sa_000000.tar)" in one.output, one.output
    assert cdn.bytes_sent_total == 0
    fresh = tmp_path / "fresh.tsv"
    cdn.write_links_file(fresh)
    result = run_cli("download", "--no-extract", fresh, "-o", out)
    assert result.returncode == 0, result.output
    assert_identical(out, shards)
    # Expired links for files already done are no obstacle.
    again = run_cli("download", "--no-extract", stale, "-o", out)
    assert again.returncode == 0, again.output


def test_links_valid_time_is_announced(cdn: CDNServer, tmp_path: Path) -> None:
    links = tmp_path / "links.tsv"
    cdn.write_links_file(links, expires_at=int(time.time()) + 3 * 86400 + 600)
    result = run_cli("download", "--no-extract", links, "-o", tmp_path / "out", "--shards", "0")
    assert result.returncode == 0
    assert "links valid for 3d00h more" in result.output


def test_killed_run_with_pid_reuse_free_journal_after_reboot_is_ignored(
    tmp_path: Path,
) -> None:
    """A journal from another boot must never be trusted."""
    from sa1b.store.journal import Journal

    path = tmp_path / "journal"
    journal = Journal(path, slots=2)
    journal.write(0, file_id=1, generation=0, start=0, pos=100)
    journal.close()
    assert Journal.recover(path)
    data = bytearray(path.read_bytes())
    data[8:44] = b"0" * 36  # another boot id
    path.write_bytes(bytes(data))
    assert Journal.recover(path) == []
    assert os.path.exists(path)


def test_one_expired_row_is_reported_and_the_others_are_fetched(
    cdn: CDNServer, shards: list[ShardInfo], tmp_path: Path
) -> None:
    links, out = tmp_path / "links.tsv", tmp_path / "out"
    cdn.write_links_file(links)
    stale = tmp_path / "stale.tsv"
    cdn.write_links_file(stale, names=[shards[0].name], expires_at=int(time.time()) - 60)
    rows = links.read_text().splitlines()
    stale_row = stale.read_text().splitlines()[-1]
    links.write_text("\n".join(stale_row if r.startswith(shards[0].name) else r for r in rows))
    result = run_cli("download", "--no-extract", links, "-o", out)
    assert result.returncode == 1, result.output
    assert "1 of the links still needed has expired (sa_000000.tar)" in result.output
    assert f"{shards[0].name}  expired" in result.output
    assert_identical(out, shards[1:])
    assert all(r.name != shards[0].name for r in cdn.requests)


def test_state_kept_apart_from_the_output_folder_resumes_after_a_kill(
    slow_cdn: CDNServer, shards: list[ShardInfo], tmp_path: Path
) -> None:
    """A cluster node keeps its store on local disk (``--state-dir``) beside a shared OUT."""
    links, out, state = tmp_path / "links.tsv", tmp_path / "shared" / "out", tmp_path / "local"
    slow_cdn.write_links_file(links)
    proc = _start(links, out, "--state-dir", str(state))
    _wait_for_bytes(slow_cdn, sum(s.size for s in shards) // 2, proc)
    proc.send_signal(signal.SIGKILL)
    proc.communicate()
    assert (state / "state.db").is_file() and (state / "journal").is_file()
    assert not (out / ".sa1b" / "state.db").exists()
    shown = run_cli("status", out, "--state-dir", state)
    assert shown.returncode == 0 and "partial" in shown.output, shown.output
    result = run_cli("download", "--no-extract", links, "-o", out, "--state-dir", state)
    assert result.returncode == 0, result.output
    assert_identical(out, shards)
    assert "3 files: 3 done" in run_cli("status", out, "--state-dir", state).output
