"""sa1b onto a filesystem without fallocate (ext2) against ext4, side by side (root only).

Two loop devices, ext2 and ext4, each mounted from an image in ``--work``; the same
``--no-extract`` download over a local nginx (plain HTTP) runs onto each in turn,
``--runs`` times, alternating; each run's speed and the bytes its device was sent
(``/sys/block/loopN/stat``, after a sync) are printed, then the medians. Everything it
made is deleted at the end. ``--src`` runs another checkout's sa1b (e.g. the one before
this change) as a third contender::

    python benchmarks/sparse_fs.py --shards 8 --shard-size 64M --runs 5 --src old=/work/main/src
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

from bench.options import add_shared_options
from harness.nginx import NginxServer
from sa1b.cdn.synth import make_dataset

MiB = 1024 * 1024


def mount(image: Path, kind: str, size: int, folder: Path, *, direct_io: bool = False) -> str:
    """A ``kind`` filesystem of ``size`` bytes in ``image``, mounted at ``folder`` (made
    here) from a loop device, whose name is returned; with ``direct_io`` the device
    bypasses the page cache of the filesystem holding ``image``."""
    with open(image, "wb") as handle:
        handle.truncate(size)
    subprocess.run([f"mkfs.{kind}", "-q", "-F", image], check=True)
    options = ["--direct-io=on"] if direct_io else []
    device = subprocess.run(
        ["losetup", "--find", "--show", *options, image],
        check=True,
        capture_output=True,
        text=True,
    ).stdout.strip()
    folder.mkdir()
    subprocess.run(["mount", "-t", kind, device, folder], check=True)
    return device


def unmount(folder: Path, device: str) -> None:
    """Undo :func:`mount` (best effort: a benchmark's clean-up)."""
    subprocess.run(["umount", folder], check=False)
    subprocess.run(["losetup", "-d", device], check=False)


def sectors_written(device: str) -> int:
    return int(Path(f"/sys/block/{Path(device).name}/stat").read_text().split()[6])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_shared_options(
        parser, shards=8, shard_size="64M", runs=5, workdir=Path("/tmp/sa1b-sparse-fs")
    )
    parser.add_argument("--src", action="append", default=[], help="NAME=PATH of another sa1b")
    args = parser.parse_args()
    work: Path = args.workdir
    work.mkdir(parents=True)
    devices: dict[str, tuple[str, Path]] = {}
    here = str(Path(__file__).resolve().parents[1] / "src")
    sources = {"this": here, **dict(s.split("=", 1) for s in args.src)}
    try:
        shards = make_dataset(
            work / "src", shard_indices=range(args.shards), shard_size=args.shard_size, seed=1
        )
        total = sum(s.size for s in shards if s.name.endswith(".tar"))
        room = total * 2 + 256 * MiB
        for kind in ("ext2", "ext4"):
            devices[kind] = (mount(work / f"{kind}.img", kind, room, work / kind), work / kind)
        with NginxServer(root=work / "src", workdir=work / "nginx") as nginx:
            links = work / "links.txt"
            names = [s.name for s in shards if s.name.endswith(".tar")]
            links.write_text("".join(f"{nginx.url_for(n)}\n" for n in names))
            results: dict[str, list[tuple[float, float]]] = {}
            for run in range(args.runs):
                for label, src in sources.items():
                    for kind, (device, folder) in devices.items():
                        out = folder / "out"
                        shutil.rmtree(out, ignore_errors=True)
                        os.sync()
                        before = sectors_written(device)
                        began = time.monotonic()
                        subprocess.run(
                            [sys.executable, "-m", "sa1b", "download", "--no-extract", "-q",
                             links, "-o", out],
                            check=True, env={**os.environ, "PYTHONPATH": src},
                        )  # fmt: skip
                        seconds = time.monotonic() - began
                        os.sync()
                        ratio = (sectors_written(device) - before) * 512 / total
                        speed = total / MiB / seconds
                        results.setdefault(f"{label} {kind}", []).append((speed, ratio))
                        print(f"run {run} {label} {kind}: {speed:.0f} MiB/s, {ratio:.2f}x written")
            each = f"{args.shard_size / MiB:.0f} MiB"
            print(f"\n{args.shards} files of {each}, {args.runs} runs, medians:")
            for name, values in results.items():
                speed = statistics.median(v[0] for v in values)
                ratio = statistics.median(v[1] for v in values)
                print(f"  {name}: {speed:.0f} MiB/s, {ratio:.2f}x the files written to the device")
    finally:
        for device, folder in devices.values():
            unmount(folder, device)
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
