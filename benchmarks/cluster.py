#!/usr/bin/env python3
"""How ``sa1b download --engine ray`` scales with nodes, each node's link capped.

A Ray cluster on this machine (``ray.cluster_utils.Cluster``: a head that runs no task
and 1, 2 or 4 worker nodes of one CPU each, all on loopback) downloads synthetic shards
from nginx over HTTPS (a private CA). Each node's bandwidth is capped with ``--max-rate``
(one task per node at a time: ``--max-rate`` caps a task), as a node's own link would be.
The node counts alternate (1, 2, 4, 1, 2, 4, ...) ``--runs`` times; the figure is the
median wall time of the whole command, driver start-up included, and every output byte
is checked against its source. Scaling efficiency is the speed-up over one node divided
by the node count. ``--check-goals`` exits 1 if 2 nodes give less than 1.8x and 4 nodes
less than 3.4x the throughput of one.

Run ``python benchmarks/cluster.py --help``; see benchmarks/README.md.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from ray.cluster_utils import Cluster

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # the repository's harness

from bench.options import add_shared_options
from harness.certs import make_certificates
from harness.nginx import NginxServer
from sa1b.cdn.synth import ShardInfo, make_dataset

MiB = 1024 * 1024
NODE = {"num_cpus": 1, "node_ip_address": "127.0.0.1", "object_store_memory": 80 * MiB}
GOALS = {2: 1.8, 4: 3.4}
# Ray turns a loopback address into the machine's own one, where this cluster does not
# listen; this setting, which Ray reads, keeps the driver on loopback.
ON_LOOPBACK = {"RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0"}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_shared_options(
        parser,
        shards=32,  # 8 tasks of 4: with fewer, start-up weighs on 4 nodes (16: 3.1x)
        shard_size="48M",
        runs=3,
        workdir=Path(__file__).parent / "work" / "cluster",
        check_goals=True,
    )
    parser.add_argument("--rate", default="16M", help="--max-rate per node (default 16M)")
    parser.add_argument("--files", type=int, default=4, help="files per Ray task (default 4)")
    parser.add_argument("--nodes", default="1,2,4", help="node counts (default 1,2,4)")
    args = parser.parse_args()
    counts = [int(n) for n in args.nodes.split(",")]
    if 1 not in counts:
        parser.error("--nodes must include 1, the unit of the speed-ups")
    work: Path = args.workdir
    work.mkdir(parents=True, exist_ok=True)
    shards = make_dataset(
        work / "shards",
        shard_indices=range(args.shards),
        shard_size=args.shard_size,
        extras=False,
    )
    total = sum(shard.size for shard in shards)
    certificates = make_certificates(work / "tls")
    env = {**os.environ, **ON_LOOPBACK, "SSL_CERT_FILE": str(certificates.ca)}
    seconds: dict[int, list[float]] = {n: [] for n in counts}
    tls = (certificates.certificate, certificates.key)
    with NginxServer(root=work / "shards", workdir=work / "nginx", tls=tls) as nginx:
        links = work / "links.tsv"
        rows = [f"{shard.name}\t{nginx.url_for(shard.name)}" for shard in shards]
        links.write_text("file_name\tcdn_link\n" + "\n".join(rows) + "\n")
        print(
            f"{len(shards)} shards, {total / 1e6:.0f} MB; {args.rate}/s per node; "
            f"{args.files} files per task",
            flush=True,
        )
        for run in range(args.runs):
            for nodes in counts:
                taken = _one_run(nodes, links, args, env, shards)
                seconds[nodes].append(taken)
                print(
                    f"{nodes} node(s), run {run + 1}/{args.runs}: {taken:6.1f} s, "
                    f"{total / taken / 1e6:6.1f} MB/s",
                    flush=True,
                )
    return _report(seconds, total, counts, args.check_goals)


def _one_run(
    nodes: int, links: Path, args: argparse.Namespace, env: dict[str, str], shards: list[ShardInfo]
) -> float:
    out = args.workdir / "out"
    shutil.rmtree(out, ignore_errors=True)
    shutil.rmtree(Path(tempfile.gettempdir()) / "sa1b-state", ignore_errors=True)
    cluster = Cluster(initialize_head=True, head_node_args={**NODE, "num_cpus": 0})
    try:
        for _ in range(nodes):
            cluster.add_node(**NODE)
        cluster.wait_for_nodes()
        command = [
            sys.executable, "-m", "sa1b", "download", str(links), "-o", str(out), "-q",
            "--no-extract", "--engine", "ray", "--ray-address", cluster.address,
            "--files", str(args.files), "--max-rate", args.rate,
        ]  # fmt: skip
        started = time.monotonic()
        done = subprocess.run(command, env=env, capture_output=True, text=True, check=False)
        taken = time.monotonic() - started
    finally:
        cluster.shutdown()
    if done.returncode != 0:
        raise SystemExit(f"sa1b failed with {nodes} node(s):\n{done.stdout}{done.stderr}")
    for shard in shards:
        digest = hashlib.md5((out / "tars" / shard.name).read_bytes()).hexdigest()
        if digest != shard.md5:
            raise SystemExit(f"{shard.name} differs from its source ({nodes} node(s))")
    return taken


def _report(seconds: dict[int, list[float]], total: int, counts: list[int], check: bool) -> int:
    base = statistics.median(seconds[1])  # one node: the unit of the speed-ups
    print("\nnodes  median s   MB/s  speed-up  efficiency")
    failed = False
    for nodes in counts:
        median = statistics.median(seconds[nodes])
        speedup = base / median
        print(
            f"{nodes:5}  {median:8.1f}  {total / median / 1e6:5.1f}  {speedup:7.2f}x  "
            f"{speedup / nodes:9.0%}"
        )
        goal = GOALS.get(nodes)
        if goal is not None and speedup < goal:
            print(f"  FAIL  {nodes} nodes: {speedup:.2f}x < {goal}x")
            failed = True
    return 1 if check and failed else 0


if __name__ == "__main__":
    sys.exit(main())
