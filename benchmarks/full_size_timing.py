#!/usr/bin/env python3
"""Where a full-size download's time goes: one synthetic shard (the rehearsal's), runs of
``sa1b download`` over HTTPS from nginx, in the order given.

Each run is one of:

- ``plain``: the download with ``--no-extract``, timed (MB/s, CPU s/GB split into user
  and system);
- ``extract``: the same, extracted into the default layout;
- ``spy`` and ``spy-extract``: ``plain`` and ``extract`` under ``py-spy record --threads
  --native`` (``--py-spy``), their raw samples written to ``--profile-dir``;
- ``timeline``: the same with its progress lines, each stamped with the seconds since start;
- ``alt`` and ``alt-extract``: ``plain`` and ``extract`` with ``PYTHONPATH`` set to
  ``--alt-pythonpath`` (another checkout's ``src``, for an A/B of one change);
- ``aria2c-tar``: aria2c as the bench runs it (``-x16 -s16 -j4``), then ``tar -xf``: the
  download and extraction most users run today, timed as one.

With ``--ext4-loop`` (root) every run writes onto a journaled ext4 on a loop device made
in the private folder (direct I/O to its image), not onto the workdir's own filesystem:
this machine's root filesystem is ext4 without a journal, where creating a file after
many were deleted costs about 0.5 ms of CPU (22 µs on a journaled ext4), which users
on a journaled filesystem do not pay. ``sync`` runs before each run. At the end, each
kind's medians, and issue 19's full-size goals from them where their runs were made
(``extract`` against ``plain`` and ``aria2c-tar``; ``--check-goals``: exit 1 if one
fails). Everything is
written in a private folder under ``--workdir`` and deleted at the end. The figures of
2026-12-06 are in ``benchmarks/rehearsal-results.txt``, later ones in
``benchmarks/README.md``. Example::

    python benchmarks/full_size_timing.py plain alt plain alt --alt-pythonpath /tmp/other/src
    python benchmarks/full_size_timing.py plain extract alt-extract extract alt-extract plain \
        --alt-pythonpath /tmp/other/src
    python benchmarks/full_size_timing.py --ext4-loop aria2c-tar extract plain extract plain
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import IO

from bench.tools import aria2c_tool, sa1b_tool, tar_argv, write_inputs
from harness.certs import make_certificates
from harness.nginx import NginxServer
from rehearsal import REAL_PAIRS, REAL_SHARD, make_source
from sparse_fs import mount, unmount

KINDS = ("plain", "extract", "spy", "spy-extract", "timeline", "alt", "alt-extract", "aria2c-tar")


def _stamped(stream: IO[str], start: float) -> None:
    for line in stream:
        print(f"{time.monotonic() - start:7.2f} s  {line.rstrip()}", flush=True)


def _run(
    kind: str,
    argv: list[str],
    env: dict[str, str],
    size: int,
    args: argparse.Namespace,
    *,
    then: Sequence[list[str]] = (),
) -> tuple[float, float]:
    if kind.startswith("spy"):
        profile = args.profile_dir / f"profile-{time.strftime('%H%M%S')}.txt"
        argv = [args.py_spy, "record", "--threads", "--native", "-r", "50", "-f", "raw",
                "-o", str(profile), "--", *argv]  # fmt: skip
    if kind.endswith("extract"):
        argv = [arg for arg in argv if arg != "--no-extract"]
    if kind.startswith("alt"):
        env = {**env, "PYTHONPATH": f"{args.alt_pythonpath}{os.pathsep}{env.get('PYTHONPATH', '')}"}
    subprocess.run(["sync"], check=True)
    start, before = time.monotonic(), os.times()
    if kind == "timeline":
        argv = [arg for arg in argv if arg != "--quiet"]
        proc = subprocess.Popen(argv, env=env, stderr=subprocess.PIPE, text=True)
        assert proc.stderr is not None
        pump = threading.Thread(target=_stamped, args=(proc.stderr, start))
        pump.start()
        proc.wait()
        pump.join()
        if proc.returncode:
            raise SystemExit(f"sa1b exited with {proc.returncode}")
    else:
        for command in (argv, *then):
            subprocess.run(command, env=env, check=True)
    wall, after = time.monotonic() - start, os.times()
    user = after.children_user - before.children_user
    system = after.children_system - before.children_system
    speed, cpu = size / wall / 1e6, (user + system) / (size / 1e9)
    print(f"{kind}: {speed:.0f} MB/s, {cpu:.2f} CPU s/GB"
          f" (user {user:.1f} s, sys {system:.1f} s)", flush=True)  # fmt: skip
    return speed, cpu


def summary(measured: Sequence[tuple[str, float, float]]) -> bool:
    """Print each kind's medians and issue 19's full-size goals where their runs were
    made (extraction against ``plain`` and ``aria2c-tar``); whether every goal held."""
    medians: dict[str, tuple[float, float]] = {}
    for kind in dict.fromkeys(kind for kind, _, _ in measured):
        runs = [(speed, cpu) for k, speed, cpu in measured if k == kind]
        medians[kind] = (
            statistics.median(s for s, _ in runs),
            statistics.median(c for _, c in runs),
        )
        print(f"median {kind} ({len(runs)} runs): {medians[kind][0]:.0f} MB/s, "
              f"{medians[kind][1]:.2f} CPU s/GB")  # fmt: skip
    if "extract" not in medians:
        return True
    speed, cpu = medians["extract"]
    goals = [(f"extract CPU s/GB <= 1.6: {cpu:.2f}", cpu <= 1.6)]
    if "plain" in medians:
        ratio = speed / medians["plain"][0]
        goals.append((f"extract MB/s >= 0.85 x plain: x{ratio:.2f}", ratio >= 0.85))
    if "aria2c-tar" in medians:
        ratio = speed / medians["aria2c-tar"][0]
        goals.append((f"extract MB/s >= 2 x aria2c-tar: x{ratio:.2f}", ratio >= 2))
    for text, held in goals:
        print(f"  {'PASS' if held else 'FAIL'}  {text}")
    return all(held for _, held in goals)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("runs", nargs="+", choices=KINDS, help="the runs, in order")
    parser.add_argument("--shard-size", type=float, default=REAL_SHARD / 2**30, help="GiB")
    parser.add_argument("--workdir", type=Path, default=Path(__file__).parent / "work")
    parser.add_argument("--py-spy", default="py-spy", help="the py-spy command (spy runs)")
    parser.add_argument("--profile-dir", type=Path, default=Path("."), help="spy runs' output")
    parser.add_argument("--alt-pythonpath", type=Path, help="alt runs' sa1b (a src folder)")
    parser.add_argument(
        "--ext4-loop", action="store_true", help="write onto a journaled ext4 loop device"
    )
    parser.add_argument(
        "--check-goals", action="store_true", help="exit 1 if a full-size goal fails"
    )
    args = parser.parse_args()
    if any(kind.startswith("alt") for kind in args.runs) and args.alt_pythonpath is None:
        parser.error("alt runs need --alt-pythonpath")
    size = int(args.shard_size * 2**30)
    args.workdir.mkdir(parents=True, exist_ok=True)
    root = Path(tempfile.mkdtemp(prefix="full-size-timing-", dir=args.workdir))
    device = ""
    measured: list[tuple[str, float, float]] = []
    try:
        pairs = max(1, round(size / REAL_SHARD * REAL_PAIRS))
        source = make_source(root / "src", count=1, size=size, pairs=pairs)
        tls = make_certificates(root / "tls")
        if args.ext4_loop:  # room for a shard's tar and its files (aria2c-tar keeps both)
            room = int(size * 2.3) + 2**30
            device = mount(root / "ext4.img", "ext4", room, root / "ext4", direct_io=True)
        with NginxServer(
            root=root / "src", workdir=root / "nginx", tls=(tls.certificate, tls.key), http2=True
        ) as server:
            out = root / ("ext4" if device else "") / "out"
            inputs = write_inputs(root, server.base_url, source.shards, out)
            for kind in args.runs:
                shutil.rmtree(out, ignore_errors=True)
                if kind == "aria2c-tar":
                    out.mkdir()
                    aria2c = aria2c_tool("aria2c", input_file=inputs.aria2c, outdir=out,
                                         resume=False, ca=tls.ca)  # fmt: skip
                    tars = [out / shard.name for shard in source.shards]
                    untar = [tar_argv("tar", tar, out) for tar in tars]
                    speed, cpu = _run(kind, aria2c.argv, dict(os.environ), size, args, then=untar)
                    measured.append((kind, speed, cpu))
                    continue
                tool = sa1b_tool([sys.executable, "-m", "sa1b"], links=inputs.links, outdir=out,
                                 ca=tls.ca, ca_bundle_option=True)  # fmt: skip
                speed, cpu = _run(kind, tool.argv, {**os.environ, **tool.env}, size, args)
                measured.append((kind, speed, cpu))
    finally:
        if device:
            unmount(root / "ext4", device)
        shutil.rmtree(root, ignore_errors=True)
    held = summary(measured)
    return 1 if args.check_goals and not held else 0


if __name__ == "__main__":
    raise SystemExit(main())
