#!/usr/bin/env python3
"""What a GB written into the page cache costs the kernel, by the size of each ``pwrite``.

The question behind ``sa1b.store.writeback.WRITE_SLICE`` and the member files' reserved
blocks (``sa1b.store.allocation.reserve``): the same bytes, written into new files of
``--file-size`` (extraction's members) or into files whose blocks were reserved first,
``--write`` KiB a call, from a ring of 8 MiB buffers filled long before (parts that
waited in memory, as a streamed shard's do) or from one block that stays in the CPU's
cache (the transport's). Each variant writes ``--total`` GiB; the variants alternate,
``--rounds`` times, and each line says the process's system and user seconds. The files
are deleted after each variant. With ``--sync``, each variant syncs its files every
256 MiB, as extraction's checkpoints do, and is run twice: its pages kept in the page
cache (``fsync``) and let go of (:func:`sa1b.store.writeback.sync_files`). Example (the
figures in
``benchmarks/README.md`` and ``benchmarks/page-cache-results.txt``)::

    python benchmarks/page_cache_writes.py --write 128,256,1024,2048 --rounds 2
    python benchmarks/page_cache_writes.py --write 256 --total 8 --rounds 2 --sync
"""

from __future__ import annotations

import argparse
import itertools
import os
import resource
import shutil
import tempfile
import time
from pathlib import Path

from sa1b.store.allocation import reserve as reserve_blocks
from sa1b.store.writeback import sync_files

PART = 8 << 20
RING = 16
SYNC_EVERY = 256 << 20


def _sync(files: list[Path], folder: Path, *, drop: bool) -> None:
    if drop:
        sync_files(files, [folder])
        return
    for path in (*files, folder):
        fd = os.open(path, os.O_RDONLY)
        os.fsync(fd)
        os.close(fd)


def _write(
    folder: Path, *, total: int, file_size: int, write: int, cold: bool, reserve: bool, sync: str
) -> tuple[float, float, float]:
    block = os.urandom(write)
    ring = [bytearray(PART) for _ in range(RING)] if cold else []
    before, start = resource.getrusage(resource.RUSAGE_SELF), time.perf_counter()
    written = synced = 0
    unsynced: list[Path] = []
    for number in itertools.count():
        if written >= total:
            break
        if sync and written - synced >= SYNC_EVERY:
            _sync(unsynced, folder, drop=sync == "dropped")
            unsynced, synced = [], written
        unsynced.append(folder / f"f{number}")
        fd = os.open(unsynced[-1], os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        if reserve:
            reserve_blocks(fd, file_size)
        offset = 0
        while offset < file_size:
            data: bytes | memoryview = block
            if cold:  # fill a buffer half a ring ahead; write from one filled long ago
                part, at = divmod(written, PART)
                memoryview(ring[(part + RING // 2) % RING])[at : at + write] = block[: PART - at]
                data = memoryview(ring[part % RING])[at : at + write]
            os.pwrite(fd, data, offset)
            offset += len(data)
            written += len(data)
        os.close(fd)
    seconds, after = time.perf_counter() - start, resource.getrusage(resource.RUSAGE_SELF)
    for name in os.listdir(folder):
        os.unlink(folder / name)
    return (
        written / seconds / 1e6,
        after.ru_stime - before.ru_stime,
        after.ru_utime - before.ru_utime,
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--write", default="128,256,1024,2048", help="KiB per pwrite, a list")
    parser.add_argument("--file-size", type=int, default=7, help="MiB per file (default 7)")
    parser.add_argument("--total", type=float, default=3.0, help="GiB per variant")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--workdir", type=Path, default=Path(__file__).parent / "work")
    parser.add_argument("--sync", action="store_true", help="sync every 256 MiB, kept or dropped")
    args = parser.parse_args()
    args.workdir.mkdir(parents=True, exist_ok=True)
    folder = Path(tempfile.mkdtemp(prefix="page-cache-", dir=args.workdir))
    sizes = [int(kib) << 10 for kib in args.write.split(",")]
    syncs = ("kept", "dropped") if args.sync else ("",)
    variants = [
        (w, cold, reserve, sync)
        for w in sizes
        for cold in (True, False)
        for reserve in (False, True)
        for sync in syncs
    ]
    try:
        for _ in range(args.rounds):
            for write, cold, reserve, sync in variants:
                speed, system, user = _write(
                    folder, total=int(args.total * 2**30), file_size=args.file_size << 20,
                    write=write, cold=cold, reserve=reserve, sync=sync,
                )  # fmt: skip
                source = "ring of parts" if cold else "cached block"
                files = "reserved files" if reserve else "new files"
                files += f", synced, {sync}" if sync else ""
                figures = f"{speed:6.0f} MB/s, sys {system:5.2f} s, user {user:5.2f} s"
                label = f"{write >> 10:5d} KiB writes, {source:13s}, {files:30s}"
                print(f"{label}: {figures}", flush=True)
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
