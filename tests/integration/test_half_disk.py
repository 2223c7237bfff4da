"""A shard in flight takes its extracted size, not its tar plus its files.

Extracted as it streams (the default), a shard has no tar on disk at all
(:mod:`sa1b.engine.unpack`), and a stop resumes from its last checkpoint. A shard whose
partial tar holds bytes already (a run without extraction began it, as here, or a server
ignores Range) is extracted from that tar as it arrives, its tar freed behind the
extractor (:mod:`sa1b.holes`): a SIGKILL after holes were punched resumes from the saved
checkpoint with every member right."""

from __future__ import annotations

import errno
import filecmp
import os
import signal
import sqlite3
import subprocess
from collections.abc import Callable, Iterator, Sequence
from dataclasses import replace
from functools import partial
from pathlib import Path

import pytest

import sa1b
from sa1b.cdn.faults import Fault
from sa1b.cdn.server import CDNServer
from sa1b.cdn.synth import ShardInfo, make_dataset
from sa1b.config import ExtractOptions
from sa1b.store.paths import OutputPaths
from sa1b.store.state import StateStore
from tests.waiting import wait_for

from .conftest import LOOP_DEVICES, assert_extracted, loop_disk, run_cli, start_cli, tmpfs

MiB = 1024 * 1024
SHARD = 40 * MiB
needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="mounting a small tmpfs needs root")


ON_BIG_SHARD = pytest.mark.xdist_group("big-shard")
"""The tests on :func:`big_shard`, run in turn by one worker under pytest-xdist: it makes
the shard once (some 20 s under coverage on a loaded machine), not once a worker."""


@pytest.fixture(scope="module")
def big_shard(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[CDNServer, ShardInfo]]:
    """One 40 MiB shard of 160 pairs (members of about 128 KiB), served locally."""
    root = tmp_path_factory.mktemp("half-disk-cdn")
    (shard,) = make_dataset(root, shard_indices=[3], shard_size=SHARD, pairs=160, extras=False)
    with CDNServer(root=root) as server:
        yield server, shard


@ON_BIG_SHARD
@needs_root
def test_a_shard_and_its_files_fit_in_little_more_than_the_shard(
    big_shard: tuple[CDNServer, ShardInfo], tmp_path: Path
) -> None:
    cdn, shard = big_shard
    links = tmp_path / "links.tsv"
    cdn.write_links_file(links)
    # 1.15x the shard: its files, the store and the logs fit; its tar and its files do not.
    with tmpfs(tmp_path / "disk", 46) as disk:
        out = disk / "out"
        result = run_cli("download", links, "-o", out, "--tar-window", "4M", "--quiet")
        assert result.returncode == 0, result.output
        assert_extracted(out, [shard])
        with StateStore(out) as store:
            index = store.member_index(shard.name)
        assert index is not None and len(index) == 320  # every member, with its offset


@ON_BIG_SHARD
@needs_root
def test_the_whole_tar_beside_its_files_does_not_fit(
    big_shard: tuple[CDNServer, ShardInfo], tmp_path: Path
) -> None:
    """The same disk with the tar kept beside its files: the disk is full."""
    cdn, _ = big_shard
    links = tmp_path / "links.tsv"
    cdn.write_links_file(links)
    option = ["--keep-tars"]
    with tmpfs(tmp_path / "disk", 46) as disk:
        result = run_cli("download", links, "-o", disk / "out", *option, "--quiet")
        assert result.returncode == 2, result.output  # the plan says so before it starts
        result = run_cli("download", links, "-o", disk / "out", *option, "--no-space-check")
        assert result.returncode == 1, result.output
        assert "the disk is full" in result.output


@ON_BIG_SHARD
@needs_root
def test_a_disk_out_of_files_ends_the_run_with_one_line_and_keeps_the_checkpoint(
    big_shard: tuple[CDNServer, ShardInfo], tmp_path: Path
) -> None:
    """A member's file cannot be made (no inode left) while extracting with no tar: the
    run ends with the storage error's line and exit code, and a rerun with room goes on
    from the last checkpoint, every member right."""
    cdn, shard = big_shard
    links = tmp_path / "links.tsv"
    cdn.write_links_file(links)
    with tmpfs(tmp_path / "disk", 64, inodes=200) as disk:
        out = disk / "out"
        result = run_cli("download", links, "-o", out, "--tar-window", "4M")
        assert result.returncode == 1, result.output
        assert "cannot write a member: No space left on device" in result.output
        assert "Traceback" not in result.output
        checkpoint = _checkpoint(out)
        assert 0 < checkpoint < shard.size
        subprocess.run(["mount", "-o", "remount,nr_inodes=2000", disk], check=True)
        before = cdn.bytes_sent_total
        result = run_cli("download", links, "-o", out, "--tar-window", "4M", "--quiet")
        assert result.returncode == 0, result.output
        assert_extracted(out, [shard])
        assert cdn.bytes_sent_total - before <= shard.size - checkpoint + 1  # (+ its probe)


def _freed(out: Path, shard: ShardInfo, *, paths: OutputPaths | None = None) -> bool:
    """Whether the shard's partial tar has had holes punched and a checkpoint saved (in
    the store of ``paths``: the folder's own by default)."""
    paths = paths or OutputPaths.of(out)
    try:
        blocks = os.stat(paths.partial(shard.name)).st_blocks * 512
        with sqlite3.connect(f"file:{paths.database}?mode=ro", uri=True) as db:
            row = db.execute("SELECT next FROM extractions").fetchone()
    except (OSError, sqlite3.Error):
        return False
    return row is not None and row[0] > 0 and blocks < shard.size - 4 * MiB


def _checkpoint(out: Path) -> int:
    """Where the extraction's saved checkpoint goes on from (0: none saved)."""
    try:
        with sqlite3.connect(f"file:{OutputPaths.of(out).database}?mode=ro", uri=True) as db:
            row = db.execute("SELECT next FROM extractions").fetchone()
    except sqlite3.Error:
        return 0
    return int(row[0]) if row is not None else 0


def _stop_when(
    args: Sequence[str | Path],
    condition: Callable[[], object],
    message: str,
    *,
    stop: signal.Signals = signal.SIGKILL,
    timeout: float = 60,
) -> None:
    """Run ``sa1b ARGS`` until ``condition`` holds, then send it ``stop`` and wait."""
    proc = start_cli(*args, "--quiet", stdout=subprocess.DEVNULL)
    try:
        wait_for(condition, timeout=timeout, message=message, process=proc)
    finally:
        proc.send_signal(stop)
        proc.communicate(timeout=60)  # (Ctrl-C: the run ends, its staged members kept)


def _kept(out: Path) -> int:
    """The bytes of the tar kept, by ``sa1b status`` (0 before its store is made)."""
    try:
        return sum(f.done_bytes for f in sa1b.status(out).files)
    except sa1b.SA1BError:
        return 0


def _begun_as_tar(
    links: Path, out: Path, *args: str | Path, at_least: int = 4 * MiB, rate: str = "8M"
) -> None:
    """A run without extraction fetches ``at_least`` bytes of the tar, then Ctrl-C: the
    shard's partial tar holds them, recorded, for an extracting run to go on from."""
    command = ["download", links, "-o", out, "--no-extract", "--max-rate", rate, *args]
    _stop_when(command, lambda: _kept(out) >= at_least, "bytes of the tar kept", stop=signal.SIGINT)


def _committed(paths: OutputPaths) -> bool:
    """Whether the store of ``paths`` has recorded ranges (the 15-s commit has come)."""
    try:
        with sqlite3.connect(f"file:{paths.database}?mode=ro", uri=True) as db:
            return bool(db.execute("SELECT COUNT(*) FROM ranges").fetchone()[0])
    except sqlite3.Error:
        return False


@ON_BIG_SHARD
@pytest.mark.parametrize("stop", [signal.SIGKILL, signal.SIGINT], ids=["kill", "ctrl-c"])
def test_a_stop_extracting_with_no_tar_resumes_from_the_checkpoint(
    big_shard: tuple[CDNServer, ShardInfo], tmp_path: Path, stop: signal.Signals
) -> None:
    """No tar on disk at any time; the rerun fetches the shard from the part of 8 MiB
    that holds the checkpoint, not from its start, and every member is right."""
    cdn, shard = big_shard
    links, out = tmp_path / "links.tsv", tmp_path / "out"
    cdn.write_links_file(links)
    args: list[str | Path] = ["download", links, "-o", out, "--tar-window", "2M"]
    _stop_when([*args, "--max-rate", "8M"], lambda: _checkpoint(out) >= 12 * MiB, "a checkpoint",
               stop=stop)  # fmt: skip
    partials = out / ".sa1b" / "partial"
    assert not partials.exists() or not list(partials.iterdir())  # no tar at all
    kept = _checkpoint(out)
    assert kept >= 12 * MiB
    before = cdn.bytes_sent_total
    result = run_cli(*args)
    assert result.returncode == 0, result.output
    assert_extracted(out, [shard])
    assert cdn.bytes_sent_total - before <= shard.size - kept + 1  # (+ its size probe)
    with StateStore(out) as store:
        index = store.member_index(shard.name)
    assert index is not None and len(index) == 320


@ON_BIG_SHARD
def test_a_rerun_from_a_server_that_ignores_range_goes_on_as_a_whole_tar(
    big_shard: tuple[CDNServer, ShardInfo], tmp_path: Path
) -> None:
    """Killed extracting with no tar after a checkpoint; the rerun's server ignores
    Range: the shard is fetched as one whole tar, and its extraction goes on from the
    checkpoint with the members staged before it."""
    cdn, shard = big_shard
    links, out = tmp_path / "links.tsv", tmp_path / "out"
    cdn.write_links_file(links)
    args: list[str | Path] = ["download", links, "-o", out, "--tar-window", "2M"]
    _stop_when([*args, "--max-rate", "8M"], lambda: _checkpoint(out) > 0, "a checkpoint")
    cdn.add_fault(shard.name, Fault("ignore_range", times=1000))
    try:
        result = run_cli(*args, "--log-file", tmp_path / "log")
    finally:
        cdn.clear_faults()
    assert result.returncode == 0, result.output
    assert (
        "the server ignores Range; it is fetched as a whole tar" in (tmp_path / "log").read_text()
    )
    assert_extracted(out, [shard])
    with StateStore(out) as store:
        index = store.member_index(shard.name)
    assert index is not None and len(index) == 320


@ON_BIG_SHARD
@pytest.mark.parametrize("stop", [signal.SIGKILL, signal.SIGINT], ids=["kill", "ctrl-c"])
def test_a_stop_after_holes_were_punched_resumes_from_the_checkpoint(
    big_shard: tuple[CDNServer, ShardInfo], tmp_path: Path, stop: signal.Signals
) -> None:
    cdn, shard = big_shard
    links, out = tmp_path / "links.tsv", tmp_path / "out"
    cdn.write_links_file(links)
    _begun_as_tar(links, out)
    args: list[str | Path] = [
        "download",
        links,
        "-o",
        out,
        "--tar-window",
        "2M",
        "--max-rate",
        "8M",
    ]
    _stop_when(args, lambda: _freed(out, shard), "holes behind the extractor", stop=stop)
    # The bytes below the checkpoint are gone: only a resume from it can finish.
    result = run_cli(*args[:-2])
    assert result.returncode == 0, result.output
    assert_extracted(out, [shard])
    with StateStore(out) as store:
        index = store.member_index(shard.name)
    assert index is not None and len(index) == 320
    assert sorted(offset for _, offset, _ in index) == [offset for _, offset, _ in index]


@ON_BIG_SHARD
def test_a_whole_download_after_a_worker_killed_past_its_holes_resumes_the_extraction(
    big_shard: tuple[CDNServer, ShardInfo], tmp_path: Path
) -> None:
    """A worker of a split download is killed after holes were punched in its shard's
    tar; the whole download on one machine (another store) takes the shard on: it must
    go on from the worker's checkpoint, whose bytes below are gone, with every member
    right (not read the punched bytes as a damaged tar, not fetch the shard again)."""
    cdn, shard = big_shard
    links, out = tmp_path / "links.tsv", tmp_path / "out"
    cdn.write_links_file(links)
    window = ["--tar-window", "2M"]
    _begun_as_tar(links, out, "--shard-index", "0", "--shard-count", "1")
    split = ["--shard-index", "0", "--shard-count", "1", "--max-rate", "2M"]
    worker = OutputPaths.of(out, worker="0-of-1")
    _stop_when(
        ["download", links, "-o", out, *window, *split],
        lambda: _freed(out, shard, paths=worker) and _committed(worker),
        "holes behind the worker's extractor and its ranges in its store",
        timeout=90,
    )
    with StateStore(out, state=worker.state, lock=False, create=False) as store:
        recorded = sum(record.ranges.total for record in store.records())
    before = cdn.bytes_sent_total
    result = run_cli("download", links, "-o", out, *window)
    assert result.returncode == 0, result.output
    assert_extracted(out, [shard])
    # Nothing the worker recorded is fetched again, the freed bytes below its
    # checkpoint included: the extraction went on from there.
    assert cdn.bytes_sent_total - before <= shard.size - recorded


@ON_BIG_SHARD
def test_a_rerun_that_keeps_the_tar_fetches_again_what_was_freed_behind_the_extraction(
    big_shard: tuple[CDNServer, ShardInfo], tmp_path: Path
) -> None:
    """Killed after holes were punched; the rerun asks for the tar as well
    (``--keep-tars``), so its extraction reads the whole tar: the freed bytes are
    fetched again, never read as zeros (which look like a damaged tar)."""
    cdn, shard = big_shard
    links, out = tmp_path / "links.tsv", tmp_path / "out"
    cdn.write_links_file(links)
    args: list[str | Path] = ["download", links, "-o", out, "--tar-window", "2M"]
    _begun_as_tar(links, out)
    _stop_when([*args, "--max-rate", "8M"], lambda: _freed(out, shard), "holes")
    result = run_cli(*args, "--keep-tars")
    assert result.returncode == 0, result.output
    assert "freed behind an extraction this run does not go on from" in result.output
    assert_extracted(out, [shard])
    assert filecmp.cmp(out / "tars" / shard.name, shard.path, shallow=False)


def test_a_new_version_after_holes_voids_the_checkpoint(tmp_path: Path) -> None:
    """Killed after holes were punched; the server then has another shard under the
    name: the rerun starts it over (a checkpoint of the old bytes is never resumed)."""
    served, other = tmp_path / "served", tmp_path / "other"
    shape = partial(make_dataset, shard_indices=[5], shard_size=16 * MiB, pairs=64, extras=False)
    (old,), (new,) = shape(served, seed=1), shape(other, seed=2)
    links, out = tmp_path / "links.tsv", tmp_path / "out"
    with CDNServer(root=served) as cdn:
        cdn.write_links_file(links)
        args: list[str | Path] = ["download", links, "-o", out, "--tar-window", "1M"]
        # Slowly: the killed run must not have every byte of the old version (a rerun
        # would then rightly publish it without asking the server).
        _begun_as_tar(links, out, at_least=MiB, rate="2M")
        _stop_when([*args, "--max-rate", "2M"], lambda: _freed(out, old), "holes")
        os.replace(new.path, old.path)
        result = run_cli(*args)
    assert result.returncode == 0, result.output
    assert_extracted(out, [replace(new, path=old.path)])


@LOOP_DEVICES
def test_a_filesystem_that_cannot_punch_holes_keeps_the_tar(
    links: Path, shards: list[ShardInfo], tmp_path: Path
) -> None:
    """ext2 has no ``FALLOC_FL_PUNCH_HOLE``: checkpoints are saved, nothing is freed,
    every member is right."""
    with loop_disk(tmp_path / "ext2", 96, "ext2") as (mountpoint, _):
        out = mountpoint / "out"
        _begun_as_tar(links, out, at_least=MiB)
        result = run_cli("download", links, "-o", out, "--tar-window", "1M")
        assert result.returncode == 0, result.output
        assert "cannot free" not in result.output  # not a failure: a documented fallback
        assert_extracted(out, shards)


def test_a_failing_hole_punch_is_a_warning_not_a_failure(
    links: Path,
    shards: list[ShardInfo],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Any other error from ``fallocate`` (an I/O error): the tar keeps its blocks, the
    shard is extracted all the same, and the log says why the disk was not freed."""
    calls: list[int] = []

    def failing(fd: int, offset: int, length: int) -> bool:
        calls.append(length)
        raise OSError(errno.EIO, os.strerror(errno.EIO))

    monkeypatch.setattr("sa1b.engine.files.punch_hole", failing)
    out = tmp_path / "out"
    _begun_as_tar(links, out, at_least=MiB)
    config = sa1b.DownloadConfig(out=out, extract=ExtractOptions(tar_window=MiB))
    result = sa1b.download(sa1b.read_links(links), config)
    assert result.ok, result
    assert_extracted(out, shards)
    assert len(calls) == len(shards)  # tried once per shard, then left alone
    assert "cannot free its tar behind extraction" in caplog.text
