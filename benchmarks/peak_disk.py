"""The disk one shard takes at its peak while it downloads and extracts (root only).

One synthetic shard at SA-1B's density (about 1 MiB per image/annotation pair) is served
by a local nginx (plain HTTP) and downloaded with extraction onto an ext4 loop device
made for the purpose; a thread samples the device's used blocks (``statvfs``) every
20 ms. Prints, for each contender, the peak over the shard's size and the time taken.
``--src`` adds another checkout's sa1b (e.g. the one before a change). Everything it made
is deleted at the end::

    python benchmarks/peak_disk.py --shard-size 2G --src before=/work/main/src
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

from bench.options import add_shared_options
from harness.nginx import NginxServer
from sa1b.cdn.synth import make_dataset
from sparse_fs import mount

MiB = 1024 * 1024


def used(folder: Path) -> int:
    stat = os.statvfs(folder)
    return (stat.f_blocks - stat.f_bfree) * stat.f_frsize


def peak_while(folder: Path, command: list[str | Path], env: dict[str, str]) -> tuple[int, float]:
    """Run ``command``; the most bytes used on ``folder``'s filesystem meanwhile, and
    the seconds it took."""
    base, peak, done = used(folder), 0, threading.Event()

    def sample() -> None:
        nonlocal peak
        while not done.wait(0.02):
            peak = max(peak, used(folder) - base)

    sampler = threading.Thread(target=sample)
    sampler.start()
    began = time.monotonic()
    try:
        subprocess.run(command, check=True, env=env)
    finally:
        done.set()
        sampler.join()
    return peak, time.monotonic() - began


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_shared_options(parser, shard_size="2G", workdir=Path("/tmp/sa1b-peak-disk"))
    parser.add_argument("--src", action="append", default=[], help="NAME=PATH of another sa1b")
    args = parser.parse_args()
    work: Path = args.workdir
    work.mkdir(parents=True)
    here = str(Path(__file__).resolve().parents[1] / "src")
    sources = {"this": here, **dict(s.split("=", 1) for s in args.src)}
    device = ""
    disk = work / "disk"
    try:
        size = args.shard_size
        (shard,) = make_dataset(
            work / "src", shard_indices=[0], shard_size=size, pairs=size // MiB, extras=False
        )
        device = mount(work / "ext4.img", "ext4", 3 * shard.size + 512 * MiB, disk)
        with NginxServer(root=work / "src", workdir=work / "nginx") as nginx:
            links = work / "links.txt"
            links.write_text(f"{nginx.url_for(shard.name)}\n")
            for label, src in sources.items():
                out = disk / "out"
                command = [sys.executable, "-m", "sa1b", "download", "-q", links, "-o", out]
                env = {**os.environ, "PYTHONPATH": src}
                peak, seconds = peak_while(disk, command, env)
                print(
                    f"{label}: peak {peak / MiB:.0f} MiB = {peak / shard.size:.2f}x the shard "
                    f"({shard.size / MiB:.0f} MiB), {seconds:.1f} s"
                )
                shutil.rmtree(out)
    finally:
        if disk.is_mount():
            subprocess.run(["umount", disk], check=False)
        if device:
            subprocess.run(["losetup", "-d", device], check=False)
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
