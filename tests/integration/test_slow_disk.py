"""A disk slower than the network: the real CLI against nginx on loopback (and Python's
``http.server``, which ignores ranges), writing onto an ext4 loop device throttled to
:data:`DISK_RATE` (the block layer's throttle on that device, cgroup v1 ``blkio`` or v2
``io.max``). Memory stays bounded, every byte is right, and the run goes no faster than
the disk.

Buffered writes are throttled only when the kernel writes them back, and the page cache
would otherwise take gigabytes of them first (20 % of memory by default): the loop
device's own dirty limit is set small and strict (``/sys/class/bdi/MAJ:MIN``, that device
only, nothing machine-wide), as a network or FUSE filesystem has, so that a ``write``
waits for the disk once :data:`DIRTY` bytes are waiting.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import shutil
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from harness.nginx import NginxServer
from sa1b.cdn.synth import ShardInfo, make_dataset

from .conftest import (
    LOOP_DEVICES,
    assert_extracted,
    extracted_path,
    member_bytes,
    python_http_server,
    start_cli,
)

DISK_RATE = 8 * 1024 * 1024
"""Bytes a second the throttled disk takes."""
DIRTY = 16 * 1024 * 1024
"""Bytes of the disk's writes the page cache may hold before a write waits."""
SHARDS, SHARD_SIZE = 12, 24 * 1024 * 1024
"""288 MiB: well over 300 MB of RSS, had a run kept in memory what the disk had no room for."""
PEAK_RSS = 300 * 1024 * 1024
MARGIN = 1.5
"""How much faster than the throttle a run may seem (the throttle's own bursts)."""

pytestmark = LOOP_DEVICES

V1_THROTTLE = Path("/sys/fs/cgroup/blkio/blkio.throttle.write_bps_device")
V2_ROOT = Path("/sys/fs/cgroup")


@pytest.fixture(scope="module")
def big_dataset(tmp_path_factory: pytest.TempPathFactory) -> Iterator[list[ShardInfo]]:
    root = tmp_path_factory.mktemp("slow-disk-cdn")
    try:
        yield make_dataset(
            root, shard_indices=range(SHARDS), shard_size=SHARD_SIZE, seed=7, extras=False
        )
    finally:
        shutil.rmtree(root)  # 288 MiB


@pytest.fixture(scope="module")
def big_nginx(
    big_dataset: list[ShardInfo], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[NginxServer]:
    with NginxServer(
        root=big_dataset[0].path.parent, workdir=tmp_path_factory.mktemp("nginx")
    ) as server:
        yield server


class Throttle:
    """Where the throttle is set: the cgroup the CLI must run in (None: every writer)."""

    def __init__(self, mountpoint: Path, device: str, cgroup: Path | None) -> None:
        self.mountpoint, self.device, self.cgroup = mountpoint, device, cgroup

    def join(self) -> None:  # in the child, before exec: its writes are charged here
        if self.cgroup is not None:
            (self.cgroup / "cgroup.procs").write_text(str(os.getpid()))


@contextlib.contextmanager
def throttled_disk(folder: Path, rate: int) -> Iterator[Throttle]:
    """An ext4 loop device mounted at ``folder``, its writes throttled to ``rate`` bytes a
    second; skips the test where this machine cannot do it."""
    if os.geteuid() != 0:
        pytest.skip("throttling a loop device needs root")
    image = folder.with_suffix(".img")
    with image.open("wb") as handle:
        handle.truncate(1024 * 1024 * 1024)
    folder.mkdir()
    undo: list[tuple[Path, str]] = []  # what to put back: a value to write, or an action
    try:
        try:
            subprocess.run(["mkfs.ext4", "-q", "-F", image], check=True, capture_output=True)
            subprocess.run(["mount", "-o", "loop", image, folder], check=True, capture_output=True)
        except (OSError, subprocess.CalledProcessError) as error:
            pytest.skip(f"cannot mount an ext4 loop device here: {error}")
        undo.append((folder, "umount"))
        source = subprocess.run(
            ["findmnt", "-no", "MAJ:MIN", folder], check=True, capture_output=True, text=True
        )
        device = source.stdout.strip()
        throttle = Throttle(folder, device, _throttle(device, rate, undo))
        bdi = Path("/sys/class/bdi") / device
        if not (bdi / "max_bytes").exists():
            pytest.skip("no per-device dirty limit (/sys/class/bdi/*/max_bytes, Linux 6.2)")
        for name in ("max_ratio", "strict_limit"):
            undo.append((bdi / name, (bdi / name).read_text().strip()))
        (bdi / "strict_limit").write_text("1")
        (bdi / "max_bytes").write_text(str(DIRTY))
        yield throttle
    finally:
        for target, value in reversed(undo):
            with contextlib.suppress(OSError, subprocess.CalledProcessError):
                if value == "umount":
                    subprocess.run(["umount", target], check=True)
                elif value == "rmdir":
                    target.rmdir()
                else:
                    target.write_text(value)
        image.unlink(missing_ok=True)


def _throttle(device: str, rate: int, undo: list[tuple[Path, str]]) -> Path | None:
    """Throttle writes to ``device``: for everyone with cgroup v1 (writeback is charged to
    the root there), or in a cgroup of the test's own with v2; the cgroup, if any."""
    try:
        if V1_THROTTLE.exists():
            V1_THROTTLE.write_text(f"{device} {rate}")
            undo.append((V1_THROTTLE, f"{device} 0"))
            return None
        if not {"io", "memory"} <= set((V2_ROOT / "cgroup.controllers").read_text().split()):
            pytest.skip("neither cgroup v1 blkio nor v2 io and memory (writeback needs both)")
        (V2_ROOT / "cgroup.subtree_control").write_text("+io +memory")
        cgroup = V2_ROOT / f"sa1b-slow-disk-{os.getpid()}"
        cgroup.mkdir()
        undo.append((cgroup, "rmdir"))
        (cgroup / "io.max").write_text(f"{device} wbps={rate}")
        return cgroup
    except OSError as error:
        pytest.skip(f"cannot throttle {device}: {error}")


class MemoryWatch:
    """Polls a process's resident memory while it runs, keeping the peak."""

    def __init__(self, pid: int) -> None:
        self.pid, self.peak, self.samples = pid, 0, 0
        self._thread = threading.Thread(target=self._poll, daemon=True)
        self._thread.start()

    def _poll(self) -> None:
        status = Path(f"/proc/{self.pid}/status")
        while True:
            try:
                text = status.read_text()
            except OSError:
                return  # it has ended
            for line in text.splitlines():
                if line.startswith("VmRSS:"):
                    self.peak = max(self.peak, int(line.split()[1]) * 1024)
                    self.samples += 1
            time.sleep(0.02)  # a sampling period, asserted on nothing

    def join(self) -> None:
        self._thread.join()


def run_throttled(throttle: Throttle, *args: str | os.PathLike[str]) -> tuple[int, str, float, int]:
    """Run ``sa1b ARGS``: its exit code, output, seconds and peak RSS."""
    began = time.monotonic()
    process = start_cli(*args, preexec_fn=throttle.join)
    watch = MemoryWatch(process.pid)
    try:
        stdout, stderr = process.communicate(timeout=600)
    except subprocess.TimeoutExpired:
        process.kill()  # or the disk could not be unmounted
        process.wait()
        raise
    seconds = time.monotonic() - began
    watch.join()
    assert watch.samples > 10, "the run was sampled throughout"
    return process.returncode, stdout + stderr, seconds, watch.peak


def md5_of(path: Path) -> str:
    digest = hashlib.md5()
    with path.open("rb") as handle:
        while block := handle.read(1 << 20):
            digest.update(block)
    return digest.hexdigest()


def assert_paced_by_disk(written: int, seconds: float) -> None:
    """The run went no faster than the disk takes bytes (plus what the page cache holds)."""
    assert seconds >= (written - DIRTY) / (MARGIN * DISK_RATE), (
        f"{written / seconds / 1e6:.1f} MB/s onto a disk of {DISK_RATE / 1e6:.1f} MB/s"
    )


def url_list(base: str, shards: list[ShardInfo], path: Path) -> Path:
    path.write_text("".join(f"{base}/{shard.name}\n" for shard in shards))
    return path


def test_a_download_onto_a_slow_disk_keeps_memory_bounded_and_every_byte(
    big_nginx: NginxServer, big_dataset: list[ShardInfo], tmp_path: Path
) -> None:
    links = url_list(big_nginx.base_url, big_dataset, tmp_path / "urls.txt")
    with throttled_disk(tmp_path / "disk", DISK_RATE) as disk:
        out = disk.mountpoint / "out"
        code, output, seconds, peak = run_throttled(
            disk, "download", links, "-o", out, "--no-extract"
        )
        assert code == 0, output
        assert peak <= PEAK_RSS, f"peak RSS {peak / 1e6:.0f} MB"
        for shard in big_dataset:
            assert md5_of(out / "tars" / shard.name) == shard.md5, shard.name
        assert_paced_by_disk(sum(s.size for s in big_dataset), seconds)


def test_a_download_extracted_onto_a_slow_disk_keeps_every_member(
    big_nginx: NginxServer, big_dataset: list[ShardInfo], tmp_path: Path
) -> None:
    shards = big_dataset[:4]  # the disk takes each byte once: its member (no tar)
    links = url_list(big_nginx.base_url, shards, tmp_path / "urls.txt")
    with throttled_disk(tmp_path / "disk", DISK_RATE) as disk:
        out = disk.mountpoint / "out"
        code, output, seconds, peak = run_throttled(disk, "download", links, "-o", out)
        assert code == 0, output
        assert peak <= PEAK_RSS, f"peak RSS {peak / 1e6:.0f} MB"
        assert_extracted(out, shards)
        assert_paced_by_disk(sum(s.size for s in shards), seconds)


def assert_only_jpg_onto_a_slow_disk(base: str, shards: list[ShardInfo], tmp_path: Path) -> None:
    links = url_list(base, shards, tmp_path / "urls.txt")
    with throttled_disk(tmp_path / "disk", DISK_RATE) as disk:
        out = disk.mountpoint / "out"
        code, output, seconds, peak = run_throttled(
            disk, "download", links, "-o", out, "--only", "jpg"
        )
        assert code == 0, output
        assert peak <= PEAK_RSS, f"peak RSS {peak / 1e6:.0f} MB"
        written = 0
        for shard in shards:
            for name, data in member_bytes(shard).items():
                if name.endswith(".jpg"):
                    assert extracted_path(out, shard.name, name, "shard").read_bytes() == data
                    written += len(data)
        assert_paced_by_disk(written, seconds)


def test_only_jpg_onto_a_slow_disk_keeps_memory_bounded_and_every_member(
    big_nginx: NginxServer, big_dataset: list[ShardInfo], tmp_path: Path
) -> None:
    assert_only_jpg_onto_a_slow_disk(big_nginx.base_url, big_dataset, tmp_path)


def test_only_jpg_from_a_server_without_ranges_onto_a_slow_disk_keeps_memory_bounded(
    big_dataset: list[ShardInfo], tmp_path: Path
) -> None:
    """Each shard comes as one stream, which no request bounds: it waits for the disk."""
    with python_http_server(big_dataset[0].path.parent) as base:
        assert_only_jpg_onto_a_slow_disk(base, big_dataset, tmp_path)
