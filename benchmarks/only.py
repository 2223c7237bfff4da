#!/usr/bin/env python3
"""``sa1b download --only json`` against a full ``sa1b download``, over a 40 ms round trip.

Synthetic shards (``sa1b.cdn.synth``; ``--pairs`` sets how many jpg/json pairs each holds)
are served by nginx over HTTPS (a private CA made at start, HTTP/2 offered) behind
``benchmarks/pacer.py``: ``--delay-ms`` (20) each way and ``--rate`` (2M, as bench's
``https-paced-rtt``) per TCP connection. Two commands alternate ``--runs`` times, with
``sync`` and a fresh output folder before each run:

* ``full``: ``sa1b download LINKS -o OUT`` with sa1b's defaults (download and extract into
  the shard layout);
* ``only``: ``sa1b download LINKS -o OUT --only json`` (the shards' tar headers walked by
  range reads, only the JSON members fetched).

For each: wall seconds, CPU seconds (the tool's own rusage from ``os.wait4``, and the
``RUSAGE_CHILDREN`` delta), body bytes nginx sent (``$body_bytes_sent``; with the response
headers too: ``$bytes_sent``), requests nginx logged, and sa1b's summary line; medians.
After each ``only`` run every JSON member must be in ``OUT/<stem>/`` byte for byte, and no
JPEG; after each ``full`` run every member must be there with its size, and every JSON
byte for byte. Goals (``--check-goals`` exits 1 when one fails): ``only`` at least 5x
sooner than ``full`` (medians), and the bytes ``only`` fetched at most 1.3 x the JSON bytes
+ 512 per member header + the two end-of-archive blocks of each shard.

Run ``python benchmarks/only.py --help``; see benchmarks/README.md.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import platform
import re
import resource
import statistics
import sys
import tarfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))  # the bench package, beside this file

import bench
from bench import (
    BenchError,
    Pacer,
    log,
    parse_size,
    process_cpu_s,
    run_child,
    sa1b_has_ca_bundle,
    settled_bytes_sent,
    sync_and_clear,
)
from bench.options import add_shared_options
from harness.certs import make_certificates
from harness.nginx import NginxServer
from sa1b.cdn.synth import make_dataset

MB = 1_000_000
BLOCK = 512
KINDS = ("full", "only")
TIME_GOAL = 5.0  # only at least this many times sooner than full
BYTES_SLACK = 1.3  # bytes fetched <= this x JSON bytes + 512 x members + 1024 x shards
# The real dataset, for the projection: 1000 shards of ~10.5 GiB, ~11,200 pairs each,
# JSONs of ~63 KB on average; sa1b walks up to 256 shards at once (--max-connections).
REAL_SHARDS = 1000
REAL_SHARD_BYTES = int(10.5 * 2**30)
REAL_MEMBERS = 22_400
REAL_JSON_AVG = 63_000
REAL_AT_ONCE = 256
LINKS_GBIT = (1, 10)
MIN_STEPS = 100  # a shorter walk is too short for the projection
SUMMARY = re.compile(r"files done; fetched .*|\S+% of the .* the shards hold")


@dataclasses.dataclass(frozen=True, kw_only=True)
class Member:
    name: str  # as in the tar (the synthetic shards use the flat style: sa_<id>.<ext>)
    offset: int  # of its data in the shard
    size: int


@dataclasses.dataclass(frozen=True, kw_only=True)
class Shard:
    name: str
    path: Path
    size: int
    members: tuple[Member, ...]

    @property
    def stem(self) -> str:
        return self.name.removesuffix(".tar")

    @property
    def jsons(self) -> tuple[Member, ...]:
        return tuple(m for m in self.members if m.name.endswith(".json"))


def list_members(path: Path) -> tuple[Member, ...]:
    with tarfile.open(path, "r:") as archive:
        return tuple(
            Member(name=info.name, offset=info.offset_data, size=info.size)
            for info in archive
            if info.isreg()
        )


def prepare(args: argparse.Namespace) -> list[Shard]:
    pairs = "default" if args.pairs is None else str(args.pairs)
    directory = args.workdir / f"shards-{args.shards}x{args.shard_size}-pairs-{pairs}"
    log(f"generating (or reusing) {args.shards} shards in {directory}")
    started = time.monotonic()
    infos = make_dataset(
        directory,
        shard_indices=range(args.shards),
        shard_size=args.shard_size,
        seed=0,
        extras=False,
        pairs=args.pairs,
    )
    shards = [
        Shard(name=i.name, path=i.path, size=i.size, members=list_members(i.path)) for i in infos
    ]
    log(f"ready in {time.monotonic() - started:.1f} s")
    return shards


def read_at(path: Path, offset: int, size: int) -> bytes:
    with open(path, "rb") as handle:
        handle.seek(offset)
        return handle.read(size)


def verify(kind: str, out: Path, shards: list[Shard]) -> list[str]:
    """``only``: every JSON byte for byte, no JPEG; ``full``: every member with its size,
    every JSON byte for byte. Returns the problems (at most a few)."""
    problems: list[str] = []
    for shard in shards:
        folder = out / shard.stem
        for member in shard.members:
            target = folder / member.name
            is_json = member.name.endswith(".json")
            if kind == "only" and not is_json:
                if target.exists():
                    problems.append(f"{target}: fetched, though not a JSON")
                continue
            try:
                size = target.stat().st_size
            except OSError:
                problems.append(f"{target}: missing")
                continue
            if size != member.size:
                problems.append(f"{target}: {size} bytes, expected {member.size}")
            elif is_json and target.read_bytes() != read_at(shard.path, member.offset, size):
                problems.append(f"{target}: differs from the member in {shard.name}")
        if len(problems) > 5:
            break
    return problems[:6]


@dataclasses.dataclass(kw_only=True)
class Run:
    kind: str
    wall_s: float
    cpu_s: float  # the tool's user + sys (os.wait4 through bench's launcher)
    user_s: float
    sys_s: float
    children_cpu_s: float  # RUSAGE_CHILDREN delta around the run (launcher included)
    body_bytes: int  # nginx $body_bytes_sent
    response_bytes: int  # nginx $bytes_sent (headers too)
    requests: int  # requests nginx logged
    nginx_cpu_s: float
    pacer_cpu_s: float
    maxrss_mib: float
    summary: str  # sa1b's own summary lines
    load: float  # the 1-minute load average as the run started (others on the box?)


def one_run(
    kind: str,
    *,
    args: argparse.Namespace,
    server: NginxServer,
    pacer: Pacer,
    links: Path,
    ca: Path,
    shards: list[Shard],
    ca_option: bool,
) -> Run:
    out = args.workdir / f"out-{kind}"
    sync_and_clear(out)
    argv = [*args.sa1b, "download", str(links), "-o", str(out), "--quiet"]
    if ca_option:
        argv += ["--ca-bundle", str(ca)]
    argv += args.sa1b_args
    if kind == "only":
        argv += ["--only", "json", *args.only_args]
    server.clear_log()
    load = os.getloadavg()[0]
    logs = args.workdir / "logs"
    logs.mkdir(exist_ok=True)
    nginx_before = process_cpu_s(server.pid, with_children=True)
    pacer_before = pacer.cpu_s()
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    result = run_child(
        argv,
        log_path=logs / f"{kind}.log",
        timeout=args.timeout,
        env={"SSL_CERT_FILE": str(ca)},
    )
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    nginx_cpu = process_cpu_s(server.pid, with_children=True) - nginx_before
    pacer_cpu = pacer.cpu_s() - pacer_before
    output = Path(result.log_path).read_text(errors="replace")
    if result.exit_code != 0:
        raise BenchError(
            f"{kind} run failed (exit {result.exit_code}): {' '.join(argv)}\n"
            + bench.log_tail(result.log_path)
        )
    body = settled_bytes_sent(server, expect_at_least=1)
    problems = verify(kind, out, shards)
    if problems:
        raise BenchError(f"{kind} run: wrong output:\n  " + "\n  ".join(problems))
    if not args.keep_output:
        sync_and_clear(out)
    return Run(
        kind=kind,
        wall_s=result.wall_s,
        cpu_s=result.cpu_s,
        user_s=result.user_s,
        sys_s=result.sys_s,
        children_cpu_s=(after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime),
        body_bytes=body,
        response_bytes=server.response_bytes(),
        requests=len(server.log_entries()),
        nginx_cpu_s=nginx_cpu,
        pacer_cpu_s=pacer_cpu,
        maxrss_mib=result.maxrss_kib / 1024,
        summary=" | ".join(m.group(0) for m in SUMMARY.finditer(output)),
        load=load,
    )


# -- the report ----------------------------------------------------------------------------


def median(runs: list[Run], field: str) -> float:
    return statistics.median(float(getattr(run, field)) for run in runs)


@dataclasses.dataclass(frozen=True, kw_only=True)
class Dataset:
    shards: int
    shard_bytes: int  # all shards together
    members: int
    json_members: int
    json_bytes: int
    max_members: int  # in the shard with the most: its walk takes members + 2 requests

    @classmethod
    def of(cls, shards: list[Shard]) -> Dataset:
        return cls(
            shards=len(shards),
            shard_bytes=sum(s.size for s in shards),
            members=sum(len(s.members) for s in shards),
            json_members=sum(len(s.jsons) for s in shards),
            json_bytes=sum(m.size for s in shards for m in s.jsons),
            max_members=max(len(s.members) for s in shards),
        )

    @property
    def byte_bound(self) -> float:
        """1.3 x the JSON bytes + a header per member + two end-of-archive blocks a shard."""
        return BYTES_SLACK * self.json_bytes + BLOCK * self.members + 2 * BLOCK * self.shards


def describe(run: Run, data: Dataset) -> str:
    return (
        f"{run.wall_s:7.2f} s, CPU {run.cpu_s:6.2f} s (user {run.user_s:.2f}, sys "
        f"{run.sys_s:.2f}; children {run.children_cpu_s:6.2f}), "
        f"nginx {run.nginx_cpu_s:5.2f} s, pacer {run.pacer_cpu_s:5.2f} s, "
        f"RSS {run.maxrss_mib:5.0f} MiB; {run.requests} requests, "
        f"body {run.body_bytes:,} B ({run.body_bytes / data.shard_bytes:.4%} of the shards), "
        f"with headers {run.response_bytes:,} B; load before {run.load:.2f}"
    )


def report(
    runs: dict[str, list[Run]], data: Dataset, args: argparse.Namespace
) -> tuple[list[str], dict[str, Any]]:
    """The table, the goals and the projection; returns (lines, what --json-out keeps)."""
    lines = [
        "",
        f"dataset: {data.shards} shards, {data.shard_bytes:,} bytes "
        f"({data.shard_bytes / data.shards / 2**20:.1f} MiB each), {data.members} members "
        f"({data.members / data.shards:.1f} a shard), {data.json_members} JSON of "
        f"{data.json_bytes:,} bytes ({data.json_bytes / data.json_members:,.0f} on average, "
        f"{data.json_bytes / data.shard_bytes:.3%} of the shards)",
        f"path: HTTPS via pacer, {args.delay_ms:g} ms each way (RTT {2 * args.delay_ms:g} ms), "
        + (f"{args.rate / 2**20:g} MiB/s per TCP connection" if args.rate else "no cap")
        + f"; medians of {args.runs}",
        "",
        "run   wall s   CPU s  nginx CPU s  pacer CPU s  requests  body bytes        "
        "body/shards  with headers",
    ]
    for kind in KINDS:
        m = {field: median(runs[kind], field) for field in dataclasses.asdict(runs[kind][0])
             if field not in ("kind", "summary")}  # fmt: skip
        lines.append(
            f"{kind:4}  {m['wall_s']:6.2f}  {m['cpu_s']:6.2f}  {m['nginx_cpu_s']:11.2f}  "
            f"{m['pacer_cpu_s']:11.2f}  {m['requests']:8.0f}  {m['body_bytes']:16,.0f}  "
            f"{m['body_bytes'] / data.shard_bytes:11.4%}  {m['response_bytes']:,.0f}"
        )
    full_s, only_s = median(runs["full"], "wall_s"), median(runs["only"], "wall_s")
    ratio = full_s / only_s
    fetched = median(runs["only"], "body_bytes")
    requests = median(runs["only"], "requests")
    per_request = only_s / (data.max_members + 2)
    cpu_per_request = median(runs["only"], "cpu_s") / requests
    lines += [
        "",
        f"time: full / only = {full_s:.2f} / {only_s:.2f} s = {ratio:.2f}x "
        f"(goal >= {TIME_GOAL:g}x): {'PASS' if ratio >= TIME_GOAL else 'FAIL'}",
        f"bytes: only fetched {fetched:,.0f} body bytes <= {data.byte_bound:,.0f} "
        f"(1.3 x {data.json_bytes:,} JSON + 512 x {data.members} headers + 1024 x "
        f"{data.shards} shards): {'PASS' if fetched <= data.byte_bound else 'FAIL'} "
        f"({fetched / (data.json_bytes + BLOCK * data.members + 2 * BLOCK * data.shards):.3f}"
        " x the JSON, headers and end blocks)",
        f"only: {requests:.0f} requests ({requests / only_s:.0f}/s), "
        f"{per_request * 1000:.1f} ms per step of the longest walk "
        f"({data.max_members + 2} requests), sa1b CPU {cpu_per_request * 1e6:.0f} us a request",
    ]
    rtt = 2 * args.delay_ms / 1000
    at_once = min(data.shards, REAL_AT_ONCE)
    # A step of a walk is one round trip plus the time the transport spends on the other
    # walks' answers before it gets to this one: per request, serial cost c.
    serial = max(0.0, (per_request - rtt) / at_once)
    if data.max_members + 2 >= MIN_STEPS:
        lines += ["", *projection(rtt, serial)]
    else:  # sa1b's start-up (~0.4 s) would pass for a cost per request
        lines.append(f"(no projection: walks of fewer than {MIN_STEPS} steps; see --pairs)")
    verdicts = {"time": ratio >= TIME_GOAL, "bytes": fetched <= data.byte_bound}
    summary = {
        "full_s": full_s,
        "only_s": only_s,
        "ratio": ratio,
        "only_body_bytes": fetched,
        "byte_bound": data.byte_bound,
        "requests": requests,
        "seconds_per_walk_step": per_request,
        "sa1b_cpu_s_per_request": cpu_per_request,
        "serial_s_per_request": serial,
        "goals": verdicts,
    }
    return lines, summary


def projection(rtt: float, serial: float) -> list[str]:
    """The real dataset's walk, from the measured serial cost per request (see README)."""
    steps = REAL_MEMBERS + 2  # a header per member, two end-of-archive blocks
    waves = REAL_SHARDS / REAL_AT_ONCE
    fetched = REAL_SHARDS * (REAL_MEMBERS // 2 * REAL_JSON_AVG + BLOCK * REAL_MEMBERS + 2 * BLOCK)
    bound = waves * steps * rtt  # round trips alone
    step = rtt + REAL_AT_ONCE * serial
    walk = waves * steps * step
    lines = [
        f"projection for SA-1B ({REAL_SHARDS} shards x {REAL_MEMBERS} members, "
        f"{REAL_AT_ONCE} at once, RTT {rtt * 1000:.0f} ms, JSON {REAL_JSON_AVG:,} B on average: "
        f"{fetched / 1e9:,.0f} GB to fetch):",
        f"  serial cost per request measured: {serial * 1e6:.0f} us, so a step takes "
        f"{step * 1000:.0f} ms ({REAL_AT_ONCE / step:.0f} requests/s); the walk "
        f"{walk / 3600:.2f} h (round trips alone: {bound / 3600:.2f} h)",
    ]
    for gbit in LINKS_GBIT:
        link = gbit * 1e9 / 8
        full = REAL_SHARDS * REAL_SHARD_BYTES / link
        only = max(walk, fetched / link)
        lines.append(
            f"  {gbit:2} Gbit/s: full {full / 3600:5.2f} h, --only json {only / 3600:5.2f} h "
            f"({full / only:.1f}x); with no serial cost {max(bound, fetched / link) / 3600:.2f} h "
            f"({full / max(bound, fetched / link):.1f}x)"
        )
    return lines


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_shared_options(
        parser,
        shards=6,
        shard_size="170M",
        runs=3,
        warmup=1,
        workdir=Path(__file__).resolve().parent / "work" / "only",
        sa1b="this-python",
        timeout=1800.0,
        check_goals=True,
        json_out=True,
    )
    parser.add_argument(
        "--pairs",
        type=int,
        help="jpg/json pairs per shard (default: the generator's, at most 12; SA-1B has "
        "about one per MB)",
    )
    parser.add_argument(
        "--delay-ms", type=float, default=20.0, help="added each way (default 20: RTT 40 ms)"
    )
    parser.add_argument(
        "--rate",
        type=parse_size,
        default=parse_size("2M"),
        help="bytes/s per TCP connection (default 2M; 0: no cap)",
    )
    parser.add_argument("--only-args", type=str.split, default=[], help="for --only json alone")
    parser.add_argument("--keep-output", action="store_true", help="keep OUT after each run")
    args = parser.parse_args()
    args.workdir.mkdir(parents=True, exist_ok=True)
    try:
        return _main(args)
    except BenchError as error:
        log(f"error: {error}")
        return 1


def _main(args: argparse.Namespace) -> int:
    shards = prepare(args)
    data = Dataset.of(shards)
    certificates = make_certificates(args.workdir / "tls")
    ca = certificates.ca
    ca_option = sa1b_has_ca_bundle(args.sa1b)
    tls = (certificates.certificate, certificates.key)
    runs: dict[str, list[Run]] = {kind: [] for kind in KINDS}
    root = shards[0].path.parent
    logs = args.workdir / "logs"
    logs.mkdir(exist_ok=True)
    with (
        NginxServer(root=root, workdir=args.workdir / "nginx", tls=tls, http2=True) as server,
        Pacer(
            upstream_port=server.port,
            rate=args.rate,
            delay_ms=args.delay_ms,
            log_path=logs / "pacer.log",
        ) as pacer,
    ):
        links = args.workdir / "links.tsv"
        rows = [f"{s.name}\thttps://127.0.0.1:{pacer.port}/{s.name}" for s in shards]
        links.write_text("file_name\tcdn_link\n" + "\n".join(rows) + "\n")
        for number in range(-args.warmup, args.runs):
            for kind in KINDS:
                run = one_run(
                    kind,
                    args=args,
                    server=server,
                    pacer=pacer,
                    links=links,
                    ca=ca,
                    shards=shards,
                    ca_option=ca_option,
                )
                label = f"{number + 1}/{args.runs}" if number >= 0 else "warm-up"
                log(f"{kind} {label}: {describe(run, data)}")
                log(f"    sa1b: {run.summary}")
                if number >= 0:
                    runs[kind].append(run)
    lines, summary = report(runs, data, args)
    print("\n".join(lines), flush=True)
    if args.json_out:
        document = {
            "machine": {"host": platform.node(), "cpus": os.cpu_count()},
            "args": {k: str(v) for k, v in vars(args).items()},
            "dataset": dataclasses.asdict(data),
            "runs": {kind: [dataclasses.asdict(r) for r in runs[kind]] for kind in KINDS},
            "summary": summary,
        }
        args.json_out.write_text(json.dumps(document, indent=1))
    failed = [goal for goal, ok in summary["goals"].items() if not ok]
    return 1 if args.check_goals and failed else 0


if __name__ == "__main__":
    sys.exit(main())
