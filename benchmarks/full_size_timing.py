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
on a journaled filesystem do not pay. ``sync`` runs before each run. Everything is
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
) -> None:
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
    print(f"{kind}: {size / wall / 1e6:.0f} MB/s, {(user + system) / (size / 1e9):.2f} CPU s/GB"
          f" (user {user:.1f} s, sys {system:.1f} s)", flush=True)  # fmt: skip


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
    args = parser.parse_args()
    if any(kind.startswith("alt") for kind in args.runs) and args.alt_pythonpath is None:
        parser.error("alt runs need --alt-pythonpath")
    size = int(args.shard_size * 2**30)
    args.workdir.mkdir(parents=True, exist_ok=True)
    root = Path(tempfile.mkdtemp(prefix="full-size-timing-", dir=args.workdir))
    device = ""
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
                    _run(kind, aria2c.argv, dict(os.environ), size, args, then=untar)
                    continue
                tool = sa1b_tool([sys.executable, "-m", "sa1b"], links=inputs.links, outdir=out,
                                 ca=tls.ca, ca_bundle_option=True)  # fmt: skip
                _run(kind, tool.argv, {**os.environ, **tool.env}, size, args)
    finally:
        if device:
            unmount(root / "ext4", device)
        shutil.rmtree(root, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
