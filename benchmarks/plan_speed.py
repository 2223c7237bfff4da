#!/usr/bin/env python3
"""How long ``sa1b plan`` takes on a links file of 1000 rows, against the CDN stand-in.

The stand-in serves 1000 shard names (hard links to one synthetic file of ``--mib``
MiB, sizes differing by name would not change the requests) with signed URLs; ``sa1b
plan --json`` runs as a user would run it, with its default speed probe and without,
``--runs`` times each, alternating. Its byte total must equal the sum of the sizes
served; the goal (``--check-goals``) is under 10 s.

Run ``python benchmarks/plan_speed.py --help``; see benchmarks/README.md.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

from bench.options import add_shared_options
from sa1b.cdn.server import CDNServer
from sa1b.cdn.synth import make_dataset

GOAL_SECONDS = 10.0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=1000)
    parser.add_argument("--mib", type=int, default=1, help="MiB per file (default 1)")
    add_shared_options(
        parser, runs=3, workdir=Path(__file__).parent / "work" / "plan", check_goals=True
    )
    args = parser.parse_args()
    source = make_dataset(args.workdir / "one", shard_indices=[0], shard_size=args.mib << 20)[0]
    root = args.workdir / "served"
    root.mkdir(parents=True, exist_ok=True)
    for index in range(args.rows):
        name = root / f"sa_{index:06d}.tar"
        if not name.exists():
            os.link(source.path, name)
    expected = args.rows * source.size
    timings: dict[str, list[float]] = {
        "with its speed probe": [],
        "without (--probe-seconds 0)": [],
    }
    with CDNServer(root=root) as cdn:
        links = args.workdir / "links.tsv"
        cdn.write_links_file(links)
        for _ in range(args.runs):
            for label, extra in zip(timings, ([], ["--probe-seconds", "0"]), strict=True):
                command = [sys.executable, "-m", "sa1b", "plan", str(links), "--json",
                           "-o", str(args.workdir / "out"), *extra]  # fmt: skip
                started = time.monotonic()
                done = subprocess.run(command, capture_output=True, text=True, check=False)
                timings[label].append(time.monotonic() - started)
                total = json.loads(done.stdout)["total_bytes"]
                if total != expected:
                    raise SystemExit(f"plan's total is {total}, the files hold {expected}")
    print(f"sa1b plan on {args.rows} rows ({expected / 1e6:.0f} MB), median of {args.runs}:")
    failed = False
    for label, seconds in timings.items():
        median = statistics.median(seconds)
        print(f"  {label:28} {median:5.1f} s (total exact)")
        failed |= median >= GOAL_SECONDS
    return 1 if args.check_goals and failed else 0


if __name__ == "__main__":
    sys.exit(main())
