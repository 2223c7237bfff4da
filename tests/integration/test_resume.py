"""Crash and resume through real signals on a real process."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

import pytest

from sa1b import api
from sa1b.cdn.faults import Fault
from sa1b.cdn.server import CDNServer
from sa1b.cdn.synth import ShardInfo
from sa1b.store.paths import OutputPaths
from sa1b.units import human_bytes
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
    assert result.returncode == 1  # files that cannot be fetched, not bad input
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


def _one_shard_partial(cdn: CDNServer, shards: list[ShardInfo], out: Path) -> int:
    """A run that leaves the second shard part-fetched (its size known), its link refused
    as expired; the bytes of it still to fetch: all but the first 2 MiB. One connection,
    so that the refusal comes right after the cut (with several, the others could fetch
    most of the shard first, on a loaded machine, and leave too little for a warning)."""
    links = out.parent / "first.tsv"
    cdn.write_links_file(links)
    cdn.add_fault(shards[1].name, Fault("cut", after=2 * MiB))
    cdn.add_fault(shards[1].name, Fault("forbidden"))
    first = run_cli(
        "download", "--no-extract", "--no-space-check", "--connections", "1", links, "-o", out
    )
    assert first.returncode == 1, first.output
    (left,) = [
        r.size - r.done_bytes for r in api.status(out).files if r.status != "done" and r.size
    ]
    assert left == shards[1].size - 2 * MiB
    return left


def test_the_expiry_warning_counts_known_sizes(
    cdn: CDNServer, shards: list[ShardInfo], tmp_path: Path
) -> None:
    """A rerun's forecast counts what is left of a file whose size is known, not 10.5 GiB
    a shard: at 1 MiB/s the few MiB left take seconds, and the links last 2 minutes."""
    out, links = tmp_path / "out", tmp_path / "links.tsv"
    _one_shard_partial(cdn, shards, out)
    cdn.write_links_file(links, expires_at=int(time.time()) + 120)
    rerun = run_cli("download", "--no-extract", links, "-o", out, "--max-rate", "1M")
    assert rerun.returncode == 0, rerun.output
    assert "links valid for 1m" in rerun.stderr and "start to expire" not in rerun.stderr
    assert_identical(out, shards)


def test_the_expiry_warning_takes_max_rate_when_slower(
    cdn: CDNServer, shards: list[ShardInfo], tmp_path: Path
) -> None:
    """At 10 KiB/s the same few MiB take minutes: the warning says so, at the cap's speed."""
    out, links = tmp_path / "out", tmp_path / "links.tsv"
    left = _one_shard_partial(cdn, shards, out)
    cdn.write_links_file(links, expires_at=int(time.time()) + 120)
    proc = start_cli("download", "--no-extract", links, "-o", out, "--max-rate", "10K")
    assert proc.stderr is not None
    try:
        warning = next(line for line in proc.stderr if "start to expire" in line)
    finally:
        proc.send_signal(signal.SIGINT)
        proc.communicate(timeout=30)
    expected = f"at 10.0 KiB/s (the --max-rate cap) the remaining {human_bytes(left)} need about"
    assert f"judging by the last run: {expected}" in warning, warning


def test_ctrl_c_at_any_point_of_a_rate_capped_download_ends_quietly_and_resumes(
    cdn: CDNServer, shards: list[ShardInfo], tmp_path: Path
) -> None:
    """Ctrl-C as the run starts and at several depths into it, on the same folder each
    time: every interrupt exits 130 with its one line (the transport is stopped and its
    thread has ended before the journal, the store and the files are closed), and a
    last run completes every shard byte for byte."""
    links = tmp_path / "links.tsv"
    cdn.write_links_file(links)
    out = tmp_path / "out"
    journal = OutputPaths.of(out).journal
    for depth in (None, 0, 64 * 1024, 512 * 1024, 2 * MiB, 3 * MiB):
        before = cdn.bytes_sent_total
        journal.unlink(missing_ok=True)  # a clean stop recorded all in the store; a new one is made
        proc = _start(links, out, "--max-rate", "2M")
        if depth is None:  # as the engine starts: its journal is made
            wait_for(journal.exists, timeout=60, message="the journal", process=proc)
        else:
            mark = before + depth
            sent = lambda mark=mark: cdn.bytes_sent_total > mark  # noqa: E731
            wait_for(sent, timeout=60, message=f"{depth} bytes sent", process=proc)
        proc.send_signal(signal.SIGINT)
        _, stderr = proc.communicate(timeout=60)
        assert proc.returncode == 130, (depth, stderr)
        assert "internal error" not in stderr and "Traceback" not in stderr, (depth, stderr)
        assert "run the same command to resume" in stderr
    result = run_cli("download", "--no-extract", links, "-o", out)
    assert result.returncode == 0, result.output
    assert_identical(out, shards)
