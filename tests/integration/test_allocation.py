"""Allocation never stalls the download, and never writes the data twice.

A partial file is sized and allocated by the disk worker, not by the transport's
thread: while one file's allocation takes its time, every other file's bytes keep
arriving. Where the filesystem cannot allocate (ext2 here; NFSv3 and many FUSE
filesystems alike), the file is written sparse: the disk sees its bytes once, not
a file of zeros first.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

import sa1b
from harness.nginx import NginxServer
from sa1b.cdn.synth import ShardInfo
from sa1b.progress import FileOutcome, FileProgress, Snapshot
from sa1b.store.allocation import preallocate

from .conftest import LOOP_DEVICES, assert_identical, loop_disk, run_cli

MiB = 1024 * 1024
SECTOR = 512


class Watcher:
    """A progress listener whose snapshots a test can wait on."""

    def __init__(self) -> None:
        self.changed = threading.Condition()
        self.last: Snapshot | None = None
        self.updates = 0

    def update(self, snapshot: Snapshot) -> None:
        with self.changed:
            self.last, self.updates = snapshot, self.updates + 1
            self.changed.notify_all()

    def finished(self, outcome: FileOutcome) -> None:
        pass

    def file(self, name: str) -> FileProgress:
        assert self.last is not None
        return next(f for f in self.last.files if f.name == name)

    def wait(self, seen: str, predicate: Callable[[Watcher], bool], timeout: float = 60) -> None:
        with self.changed:
            met = self.changed.wait_for(lambda: self.last is not None and predicate(self), timeout)
        assert met, f"never saw {seen}: {self.last}"


@pytest.fixture
def paced_nginx(shards: list[ShardInfo], tmp_path: Path) -> Iterator[NginxServer]:
    """nginx at 512 kB/s a request: a file is in flight for a few seconds."""
    with NginxServer(
        root=shards[0].path.parent, workdir=tmp_path / "nginx", limit_rate="512k"
    ) as server:
        yield server


def test_other_files_keep_arriving_while_one_is_allocated(
    paced_nginx: NginxServer,
    shards: list[ShardInfo],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    slow, other = pair = shards[:2]
    allocating, allocated = threading.Event(), threading.Event()

    def slow_disk(fd: int, size: int) -> bool:
        """Allocating ``slow`` takes until the test has seen what it waits for."""
        if os.readlink(f"/proc/self/fd/{fd}").endswith(f"/{slow.name}.part"):
            allocating.set()
            allocated.wait(120)
        return preallocate(fd, size)

    monkeypatch.setattr("sa1b.engine.files.preallocate", slow_disk)
    links = tmp_path / "links.txt"
    links.write_text("".join(f"{paced_nginx.url_for(s.name)}\n" for s in pair))
    out, watcher = tmp_path / "out", Watcher()
    config = sa1b.DownloadConfig(out=out, extract=None, connections=4)
    results: list[sa1b.DownloadResult] = []
    run = threading.Thread(
        target=lambda: results.append(
            sa1b.download(sa1b.read_links(links), config, listener=watcher)
        )
    )
    run.start()
    try:
        assert allocating.wait(60), f"{slow.name} was never allocated"
        updates = watcher.updates
        watcher.wait(f"progress while {slow.name} is allocated", lambda w: w.updates > updates)
        before = watcher.file(other.name).done
        watcher.wait(
            f"{other.name} growing while {slow.name} is allocated",
            lambda w: w.file(other.name).done >= before + MiB // 2,
        )
        assert watcher.file(slow.name).state == "opening"  # its allocation is still running
    finally:
        allocated.set()
        run.join(120)
    assert results and results[0].ok, results
    assert_identical(out, pair)


def _loop_stat(device: str) -> int:
    """Sectors written to ``device`` (``/dev/loopN``) since it was set up."""
    fields = Path(f"/sys/block/{Path(device).name}/stat").read_text().split()
    return int(fields[6])


@LOOP_DEVICES
def test_a_filesystem_without_fallocate_is_written_once(
    nginx: NginxServer, shards: list[ShardInfo], tmp_path: Path
) -> None:
    links = tmp_path / "links.txt"
    links.write_text("".join(f"{nginx.url_for(s.name)}\n" for s in shards))
    with loop_disk(tmp_path / "ext2", 64, "ext2") as (mountpoint, device):
        os.sync()
        before = _loop_stat(device)
        result = run_cli("download", "--no-extract", links, "-o", mountpoint / "out")
        assert result.returncode == 0, result.output
        os.sync()
        written = (_loop_stat(device) - before) * SECTOR
        assert_identical(mountpoint / "out", shards)
    size = sum(s.size for s in shards)
    assert written <= 1.1 * size, f"{written / size:.2f}x the files' size written to the disk"
