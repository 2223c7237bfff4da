#!/usr/bin/env python3
"""The soak: ``sa1b download`` for half an hour or more, over hundreds of shards, with faults.

Resources a long download uses per file (descriptors, threads, memory, store rows, commit
work) must not grow with the number of files done. This runs sa1b for ``--minutes``
(default 30) against the project's CDN stand-in (``sa1b.cdn.server.CDNServer``) over HTTPS,
as Meta's CDN is (a private CA made at start; the stand-in, not nginx, because its signed
links expire and its faults are scripted per request). It serves ``--names`` shard names
(default 500: ``sa_000000.tar`` ...), each a symlink to one of ``--distinct`` synthetic
shards (``bench.corpus.prepare_shards``), so hundreds of files cost the disk a few sources.

* **Faults**: every ``--fault-every`` seconds (default 10) the next fault of ``FAULTS`` is
  queued for whichever file asks next (once the previous one was used): a cut after some
  bytes (FIN, then RST), a 503 with ``Retry-After``, a 429 with ``Retry-After``, a 5 s stall,
  a trickle (one byte a second until the client gives up on it).
* **Expiry**: the links file's links expire ``--link-minutes`` (default 12) after it was
  written. A run that ends with expired links (exit 1) gets a fresh links file (new
  signatures, the same objects), listing the files still to do, and is run again, as a user
  would; one that ends otherwise with exit 1 (a file given up) is run again as it is.
* **Disk**: extraction is on (per-file work is what leaks). Each shard's folder, once it is
  complete (seen on two samples in a row), is checked (every member's size and md5 against
  its source tar) and deleted. When every name is done (exit 0), OUT is deleted and the next
  pass starts in a new OUT. Before starting it refuses (exit 2) when the disk has less free
  than the sources, ``--files`` shards in flight twice over, and ``--margin``.
* **Samples**, every ``--sample-every`` seconds (default 5): the sa1b process's RSS, open
  descriptors (``/proc/PID/fd``), threads; the state store's and the journal's size; the
  commits' durations since the last sample (the engine's DEBUG line ``commit: N files
  synced and recorded in X ms``, from ``--log-file``); bytes the CDN served; faults used.
  Every ``--status-every`` seconds (default 30) ``sa1b status OUT`` is timed.
* **Report**: a table per minute, each run of sa1b (how long, RSS and descriptors at its
  start and end, its RSS slope), and the verdict (``TOLERANCE``): after ``--warmup`` minutes,
  the median of the last window against the median of the first (each a third of what
  follows the warm-up, at most 10 minutes) for RSS, descriptors other than sockets, threads
  and commit time relative to a 1 MiB fdatasync probed beside OUT; and RSS inside each run
  of ``LONG_RUN_S`` or more (a rerun resets a leak). Flat when every ratio is within its
  tolerance; otherwise the report says what grew, and the script exits 1.

sa1b runs with ``--max-rate`` (default 20M: bytes/s) so that the soak proves flatness, not
speed, and leaves the machine's other cores alone.

    python benchmarks/soak.py --minutes 30 --results benchmarks/soak-results.txt
    python benchmarks/soak.py --minutes 3 --names 60 --link-minutes 1

See benchmarks/README.md, "Soak".
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import os
import re
import resource
import shutil
import signal
import ssl
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))  # the bench package, beside this file

from bench import BenchError, log, parse_size, run_child
from bench.accounting import child_env, verify_extracted
from bench.common import MB, print_report
from bench.corpus import Shard, prepare_shards
from bench.options import PRIVATE_FOLDER_HELP, add_shared_options
from bench.tools import sa1b_tool
from harness.certs import make_certificates
from rehearsal import _size, load, proc_status, refuse, sa1b_pids, store_bytes, timed_status
from sa1b.cdn.faults import Fault
from sa1b.cdn.server import CDNServer
from sa1b.cdn.synth import shard_name
from sa1b.layout import shard_stem
from sa1b.store.paths import OutputPaths

GIB = 1 << 30
COMMIT_RE = re.compile(r"commit: (\d+) files synced and recorded in ([\d.]+) ms")
FAULTS = (
    Fault("cut", after=1 << 20),
    Fault("status", status=503, retry_after=1),
    Fault("cut", after=256 << 10, mode="rst"),
    Fault("throttle", retry_after=2),
    Fault("stall", after=64 << 10, seconds=5),
    Fault("trickle", after=128 << 10, seconds=1),
)
TOLERANCE = {
    # last window's median / first window's median, at most. RSS: a leak of 10% in 20 minutes
    # is about 10 MB at sa1b's size and would be hundreds of MB in a day. Descriptors other
    # than sockets (files: per-file work) and threads: a step of a few (one more file in
    # flight) is not a leak; 25%. Sockets are left out: sa1b adapts its connections (64 at a
    # run's start, 4-8 once it settles under --max-rate), so they follow the runs' ages.
    # Commit time: relative to the disk's own fdatasync of PROBE_BYTES measured beside it
    # (other work on a shared disk moves both); 2x.
    "rss": 1.10,
    "files": 1.25,
    "threads": 1.25,
    "commit": 2.0,
    # Inside one run of sa1b (reruns reset what a leak built up): the median RSS of its last
    # third against its first third after its first minute, for runs of 5 minutes or more.
    "rss-in-run": 1.05,
}
PROBE_BYTES = 1 << 20
LONG_RUN_S = 300.0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        description=(__doc__ or "").split("\n\n")[0],
        epilog="See benchmarks/README.md, 'Soak'.",
    )
    parser.add_argument(
        "--minutes", type=float, default=30.0, help="how long (default: %(default)s)"
    )
    parser.add_argument(
        "--warmup",
        type=float,
        default=None,
        help="minutes left out of the verdict (default: 3, or a tenth of a run under 30)",
    )
    add_shared_options(
        parser,
        shard_size="32M",
        workdir=Path(tempfile.gettempdir()),
        workdir_help=PRIVATE_FOLDER_HELP,
        results=True,
    )
    parser.add_argument("--names", type=int, default=500, help="shard names served (max 1000)")
    parser.add_argument("--distinct", type=int, default=8, help="distinct source shards")
    parser.add_argument(
        "--max-rate", default="20M", help="sa1b's --max-rate, bytes/s (default: %(default)s)"
    )
    parser.add_argument("--files", type=int, default=8, help="sa1b's --files (default: 8)")
    parser.add_argument(
        "--link-minutes",
        type=float,
        default=12.0,
        help="links expire this long after each links file is written (default: %(default)s)",
    )
    parser.add_argument(
        "--fault-every", type=float, default=10.0, help="seconds between faults (0: none)"
    )
    parser.add_argument("--sample-every", type=float, default=5.0, help="seconds (default: 5)")
    parser.add_argument("--status-every", type=float, default=30.0, help="seconds (default: 30)")
    parser.add_argument(
        "--margin",
        type=parse_size,
        default=2 * GIB,
        help="free space to leave on top of what the soak needs (default: 2G)",
    )
    return parser


@dataclasses.dataclass(kw_only=True)
class Sample:
    at: float  # seconds since the soak began
    run: int  # which run of sa1b (0 when none was found)
    rss_kib: int
    fds: int
    sockets: int  # of fds
    threads: int
    store: int
    journal: int
    served: int  # bytes the CDN sent so far
    faults: int  # faults used so far
    checked: int  # shards checked (and deleted) so far
    commits_ms: list[float]  # commits that synced a file, since the previous sample
    probe_ms: float = 0.0  # the disk's own: PROBE_BYTES written and fdatasync'ed beside OUT
    status_s: float | None = None


def process_tree(pids: Sequence[int]) -> list[int]:
    """``pids`` and their descendants."""
    found: list[int] = []
    todo = list(pids)
    while todo:
        pid = todo.pop()
        found.append(pid)
        for task in _listdir(Path(f"/proc/{pid}/task")):
            with contextlib.suppress(OSError, ValueError):
                text = Path(f"/proc/{pid}/task/{task}/children").read_text()
                todo += [int(child) for child in text.split()]
    return found


def _listdir(folder: Path) -> list[str]:
    try:
        return os.listdir(folder)
    except OSError:
        return []


def outside(folder: str) -> Callable[[str], bool]:
    """For verify_extracted: the paths in OUT that are not in ``folder`` are not checked."""
    return lambda rel: not rel.startswith(folder + "/")


def served_names(count: int) -> list[str]:
    return [shard_name(i) for i in range(count)]


def serve_folder(folder: Path, sources: list[Shard], count: int) -> dict[str, Shard]:
    """``count`` shard names in ``folder``, each a symlink to a source in turn; returns
    each name's shard (its source's size, md5 and members)."""
    folder.mkdir()
    shards = {}
    for index, name in enumerate(served_names(count)):
        source = sources[index % len(sources)]
        (folder / name).symlink_to(source.path)
        shards[name] = dataclasses.replace(source, name=name, path=folder / name)
    return shards


@dataclasses.dataclass(frozen=True)
class RunRecord:
    index: int
    begun: float  # seconds since the soak began
    ended: float
    maxrss_kib: int
    cpu_s: float
    how: str  # "exit N" or "stopped at the end"


@dataclasses.dataclass(kw_only=True)
class Soak:
    """One soak: the server, the sa1b runs, the sampling (polled by ``run_child``)."""

    args: argparse.Namespace
    root: Path
    server: CDNServer
    shards: dict[str, Shard]
    sa1b: list[str]
    ca: Path
    started: float = dataclasses.field(default_factory=time.monotonic)
    samples: list[Sample] = dataclasses.field(default_factory=list)
    runs: list[RunRecord] = dataclasses.field(default_factory=list)
    passes: int = 0
    checked: int = 0
    problems: list[str] = dataclasses.field(default_factory=list)
    status_failures: list[str] = dataclasses.field(default_factory=list)
    faults_added: int = 0
    expiries: int = 0
    cpu_before: float = dataclasses.field(
        default_factory=lambda: sum(resource.getrusage(resource.RUSAGE_SELF)[:2])
    )

    def __post_init__(self) -> None:
        self.out = self.root / "out-0"
        self.todo = set(self.shards)
        self.seen: set[str] = set()  # shard folders seen complete once (checked on the next)
        self.run_index = 0
        self.log_offset = 0
        self.next_sample = self.next_status = self.next_fault = 0.0
        self.links = self.root / "sa1b_links.txt"
        self.expires_at = 0.0

    def probe_disk(self) -> float:
        """Milliseconds to write PROBE_BYTES and fdatasync them, on OUT's disk."""
        started = time.monotonic()
        fd = os.open(self.root / "disk-probe", os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        try:
            os.write(fd, os.urandom(PROBE_BYTES))
            os.fdatasync(fd)
        finally:
            os.close(fd)
        return (time.monotonic() - started) * 1000

    @property
    def elapsed(self) -> float:
        return time.monotonic() - self.started

    def sa1b_log(self) -> Path:
        return self.root / "logs" / f"sa1b-{self.run_index}.log"

    def fresh_links(self) -> None:
        """A links file with new signatures for the files still to do, as Meta's page
        gives a user who comes back for one."""
        self.expires_at = time.time() + self.args.link_minutes * 60
        names = sorted(self.todo)
        self.server.write_links_file(self.links, names, expires_at=int(self.expires_at))

    def run_all(self) -> None:
        deadline = self.args.minutes * 60
        self.fresh_links()
        failures_in_a_row = 0
        while self.elapsed < deadline:
            self.run_index += 1
            self.log_offset = 0
            tool = sa1b_tool(
                self.sa1b,
                links=self.links,
                outdir=self.out,
                extract=True,
                ca=self.ca,
                extra=[
                    "--max-rate",
                    self.args.max_rate,
                    "--files",
                    str(self.args.files),
                    "--log-file",
                    str(self.sa1b_log()),
                    "--log-level",
                    "debug",
                ],
            )
            begun = self.elapsed
            checked_before = self.checked
            result = run_child(
                tool.argv,
                log_path=self.root / "logs" / f"run-{self.run_index}.out",
                timeout=deadline - begun + 600,
                stop_when=lambda: self.poll() or self.elapsed >= deadline,
                env=tool.env,
            )
            self.read_commits()
            how = "stopped at the end" if result.killed else f"exit {result.exit_code}"
            self.runs.append(
                RunRecord(self.run_index, begun, self.elapsed, result.maxrss_kib, result.cpu_s, how)
            )
            if result.killed:
                break
            self.check_finished(everything=True)
            if result.exit_code == 0:
                self.next_pass()
                failures_in_a_row = 0
                continue
            text = Path(result.log_path).read_text(errors="replace")
            if result.exit_code != 1:
                raise BenchError(f"sa1b exited with {result.exit_code}:\n{text[-2000:]}")
            if time.time() >= self.expires_at:
                self.expiries += 1
                self.fresh_links()
            failures_in_a_row = 0 if self.checked > checked_before else failures_in_a_row + 1
            if failures_in_a_row >= 3:
                raise BenchError(f"three runs in a row did nothing:\n{text[-2000:]}")

    def next_pass(self) -> None:
        """Every name done: a new OUT, every name to do again."""
        shutil.rmtree(self.out)
        self.passes += 1
        self.out = self.root / f"out-{self.passes}"
        self.todo = set(self.shards)
        self.seen.clear()
        if time.time() >= self.expires_at:
            self.fresh_links()
        else:  # the same links, still valid, for every name
            self.server.write_links_file(
                self.links, sorted(self.todo), expires_at=int(self.expires_at)
            )

    # -- polled every 20 ms while sa1b runs ---------------------------------------------

    def poll(self) -> bool:
        now = self.elapsed
        if self.args.fault_every and now >= self.next_fault:
            self.next_fault = now + self.args.fault_every
            if self.server.pending_faults() == 0:
                self.server.add_fault("*", FAULTS[self.faults_added % len(FAULTS)])
                self.faults_added += 1
        if now >= self.next_sample:
            self.next_sample = now + self.args.sample_every
            self.sample(timed=now >= self.next_status)
            if now >= self.next_status:
                self.next_status = now + self.args.status_every
            self.check_finished(everything=False)
        return False

    def sample(self, *, timed: bool) -> None:
        pids = sa1b_pids(self.out)
        tree = process_tree(pids)
        rss = threads = fds = sockets = 0
        for pid in tree:
            fields = proc_status(pid)
            rss += fields.get("VmRSS", 0)
            threads += fields.get("Threads", 0)
            for fd in _listdir(Path(f"/proc/{pid}/fd")):
                fds += 1
                with contextlib.suppress(OSError):
                    sockets += os.readlink(f"/proc/{pid}/fd/{fd}").startswith("socket:")
        status_s = None
        if timed and pids and OutputPaths.of(self.out).state.is_dir():
            # exit 1: a file failed or expired (a fault, the links): a status all the same
            status_s, failure = timed_status(self.sa1b, self.out, child_env(), ok=(0, 1))
            if failure:
                self.status_failures.append(failure)
        paths = OutputPaths.of(self.out)
        self.samples.append(
            Sample(
                at=self.elapsed,
                run=self.run_index if pids else 0,
                rss_kib=rss,
                fds=fds,
                sockets=sockets,
                threads=threads,
                store=store_bytes(paths),
                journal=_size(paths.journal),
                served=self.server.bytes_sent_total,
                faults=self.faults_added - self.server.pending_faults(),
                checked=self.checked,
                commits_ms=self.read_commits(),
                probe_ms=self.probe_disk(),
                status_s=status_s,
            )
        )

    def read_commits(self) -> list[float]:
        """Durations of the commits logged since the last call (that synced a file)."""
        try:
            with open(self.sa1b_log(), "rb") as handle:
                handle.seek(self.log_offset)
                data = handle.read()
        except OSError:
            return []
        complete = data.rfind(b"\n") + 1  # a line being written is read next time
        self.log_offset += complete
        text = data[:complete].decode(errors="replace")
        return [float(ms) for n, ms in COMMIT_RE.findall(text) if int(n) > 0]

    def check_finished(self, *, everything: bool) -> None:
        """Check, then delete, the shard folders that are complete: seen on an earlier
        sample (the rename that publishes a folder is then long recorded), or all of them
        once sa1b has exited."""
        for name in sorted(self.todo):
            folder = self.out / shard_stem(name)
            if not folder.is_dir():
                continue
            if not everything and name not in self.seen:
                self.seen.add(name)
                continue
            problems, _ = verify_extracted(
                self.out, [self.shards[name]], allowed=outside(shard_stem(name))
            )
            if problems:
                self.problems += problems
                raise BenchError(f"{name}: wrong output: {problems}")
            shutil.rmtree(folder)
            self.todo.discard(name)
            self.checked += 1


# -- the report ---------------------------------------------------------------------------


def _median(values: Sequence[float]) -> float:
    return statistics.median(values) if values else 0.0


def per_minute(samples: list[Sample]) -> list[str]:
    rows = [
        "| min | RSS MB med/max | fds med/max (sockets max) | threads | store KiB | journal KiB "
        "| commits: n, p50/max ms | disk probe p50 ms | status s | MB served | shards checked "
        "| faults |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    by_minute: dict[int, list[Sample]] = {}
    for sample in samples:
        by_minute.setdefault(int(sample.at // 60), []).append(sample)
    previous: Sample | None = None
    for minute, group in sorted(by_minute.items()):
        live = [s for s in group if s.run] or group
        commits = [ms for s in group for ms in s.commits_ms]
        statuses = [s.status_s for s in group if s.status_s is not None]
        last = group[-1]
        served = last.served - (previous.served if previous else 0)
        checked = last.checked - (previous.checked if previous else 0)
        faults = last.faults - (previous.faults if previous else 0)
        rows.append(
            f"| {minute} | {_median([s.rss_kib for s in live]) / 1024:.0f}"
            f"/{max(s.rss_kib for s in live) / 1024:.0f}"
            f" | {_median([s.fds for s in live]):.0f}/{max(s.fds for s in live)}"
            f" ({max(s.sockets for s in live)})"
            f" | {max(s.threads for s in live)}"
            f" | {max(s.store for s in group) / 1024:.0f}"
            f" | {max(s.journal for s in group) / 1024:.0f}"
            f" | {len(commits)}, {_median(commits):.1f}/{max(commits, default=0):.1f}"
            f" | {_median([s.probe_ms for s in group]):.1f}"
            f" | {max(statuses, default=0):.2f}"
            f" | {served / MB:.0f} | {checked} | {faults} |"
        )
        previous = last
    return rows


@dataclasses.dataclass(frozen=True)
class Ratio:
    name: str
    first: float
    last: float
    tolerance: float

    measured: bool = True  # False: a window had no value (no commit in it)

    @property
    def ratio(self) -> float:
        return self.last / self.first if self.first else float("inf") if self.last else 1.0

    @property
    def flat(self) -> bool:
        return not self.measured or self.ratio <= self.tolerance


def windows(samples: list[Sample], warmup_s: float) -> tuple[list[Sample], list[Sample]]:
    """The first and the last window after the warm-up: a third of what follows it each,
    at most 10 minutes; only samples taken while sa1b ran."""
    after = [s for s in samples if s.at >= warmup_s and s.run]
    if len(after) < 2:
        return after, after
    span = min(600.0, (after[-1].at - after[0].at) / 3)
    first = [s for s in after if s.at <= after[0].at + span] or after[:1]
    last = [s for s in after if s.at >= after[-1].at - span] or after[-1:]
    return first, last


def verdict(samples: list[Sample], warmup_s: float) -> list[Ratio]:
    first, last = windows(samples, warmup_s)

    def ratio(name: str, value: Callable[[Sample], float]) -> Ratio:
        return Ratio(
            name,
            _median([value(s) for s in first]),
            _median([value(s) for s in last]),
            TOLERANCE[name],
        )

    commits_first = [ms for s in first for ms in s.commits_ms]
    commits_last = [ms for s in last for ms in s.commits_ms]
    disk_first = _median([s.probe_ms for s in first]) or 1.0
    disk_last = _median([s.probe_ms for s in last]) or 1.0
    ratios = [
        ratio("rss", lambda s: s.rss_kib),
        ratio("files", lambda s: s.fds - s.sockets),
        ratio("threads", lambda s: s.threads),
        Ratio(
            "commit",
            _median(commits_first) / disk_first,
            _median(commits_last) / disk_last,
            TOLERANCE["commit"],
            measured=bool(commits_first and commits_last),
        ),
    ]
    in_runs = [in_run_growth(samples, run) for run in sorted({s.run for s in samples if s.run})]
    judged = [r for r in in_runs if r is not None]
    worst = max(judged, key=lambda r: r.ratio, default=None)
    ratios.append(worst or Ratio("rss-in-run", 0, 0, TOLERANCE["rss-in-run"], measured=False))
    return ratios


def in_run_growth(samples: list[Sample], run: int) -> Ratio | None:
    """RSS in the last third of one run against its first third after its first minute;
    None for a run shorter than LONG_RUN_S."""
    mine = [s for s in samples if s.run == run]
    if not mine or mine[-1].at - mine[0].at < LONG_RUN_S:
        return None
    settled = [s for s in mine if s.at >= mine[0].at + 60]
    span = (settled[-1].at - settled[0].at) / 3
    first = [s.rss_kib for s in settled if s.at <= settled[0].at + span]
    last = [s.rss_kib for s in settled if s.at >= settled[-1].at - span]
    return Ratio(f"rss-in-run {run}", _median(first), _median(last), TOLERANCE["rss-in-run"])


def slope_per_hour(points: list[tuple[float, float]]) -> float:
    """Least-squares slope of (seconds, value), per hour."""
    if len(points) < 2:
        return 0.0
    mean_t = statistics.fmean(t for t, _ in points)
    mean_v = statistics.fmean(v for _, v in points)
    spread = sum((t - mean_t) ** 2 for t, _ in points)
    if not spread:
        return 0.0
    return sum((t - mean_t) * (v - mean_v) for t, v in points) / spread * 3600


def describe_verdict(samples: list[Sample], warmup_s: float) -> tuple[bool, list[str]]:
    ratios = verdict(samples, warmup_s)
    after = [s for s in samples if s.at >= warmup_s and s.run]
    rss_slope = slope_per_hour([(s.at, s.rss_kib / 1024) for s in after])
    fds_slope = slope_per_hour([(s.at, s.fds) for s in after])
    first, last = windows(samples, warmup_s)
    lines = [
        f"verdict (after {warmup_s / 60:g} min of warm-up; first window {len(first)} samples"
        f" from {first[0].at / 60 if first else 0:.1f} min, last {len(last)} samples to"
        f" {last[-1].at / 60 if last else 0:.1f} min; medians, last / first):"
    ]
    unit = {"rss": " MB", "files": "", "threads": "", "commit": " x the disk probe"}
    for r in ratios:
        if not r.measured:
            lines.append(f"  {r.name}: not judged (none in a window, or no run long enough)")
            continue
        kind = r.name.split(" ")[0]
        scale = 1 / 1024 if kind.startswith("rss") else 1
        lines.append(
            f"  {r.name}: {r.first * scale:.2f} -> {r.last * scale:.2f}"
            f"{unit.get(kind, ' MB')} = {r.ratio:.3f}x (tolerance {r.tolerance:g}x):"
            f" {'flat' if r.flat else 'GROWS'}"
        )
    commits = (
        [ms for s in first for ms in s.commits_ms],
        [ms for s in last for ms in s.commits_ms],
    )
    probes = ([s.probe_ms for s in first], [s.probe_ms for s in last])
    lines.append(
        f"  (commit medians {_median(commits[0]):.1f} -> {_median(commits[1]):.1f} ms; the"
        f" disk's own {PROBE_BYTES >> 20} MiB fdatasync {_median(probes[0]):.1f} ->"
        f" {_median(probes[1]):.1f} ms)"
    )
    lines.append(
        f"  trend after warm-up (least squares): RSS {rss_slope:+.1f} MB/h,"
        f" descriptors {fds_slope:+.1f}/h"
    )
    flat = all(r.flat for r in ratios) and len(after) >= 2
    if len(after) < 2:
        lines.append("  too few samples after the warm-up to judge")
    lines.append(f"  FLAT: {'yes' if flat else 'NO'}")
    return flat, lines


def describe_runs(soak: Soak) -> list[str]:
    lines = ["runs of sa1b (RSS MB and fds at the first and last sample of each):"]
    for run in soak.runs:
        mine = [s for s in soak.samples if s.run == run.index]
        if mine:
            ends = (
                f"RSS {mine[0].rss_kib / 1024:.0f} -> {mine[-1].rss_kib / 1024:.0f},"
                f" fds {mine[0].fds} -> {mine[-1].fds} (sockets {mine[0].sockets} ->"
                f" {mine[-1].sockets}), threads {mine[0].threads} ->"
                f" {mine[-1].threads}"
            )
        else:
            ends = "no sample"
        settled = [s for s in mine if mine and s.at >= mine[0].at + 60]
        slope = slope_per_hour([(s.at, s.rss_kib / 1024) for s in settled])
        shards = settled[-1].checked - settled[0].checked if len(settled) > 1 else 0
        growth = slope * (settled[-1].at - settled[0].at) / 3600 if len(settled) > 1 else 0.0
        per_shard = f", {growth * 1024 / shards:+.1f} KiB per shard checked" if shards else ""
        lines.append(
            f"  run {run.index}: {run.begun / 60:.1f}-{run.ended / 60:.1f} min, {run.how}; {ends};"
            f" peak RSS {run.maxrss_kib / 1024:.0f} MB (ru_maxrss), {run.cpu_s:.0f} CPU s;"
            f" RSS after its first minute {slope:+.1f} MB/h{per_shard}"
        )
    return lines


def report(soak: Soak, warmup_s: float) -> tuple[bool, list[str]]:
    samples = soak.samples
    commits = [ms for s in samples for ms in s.commits_ms]
    statuses = [s.status_s for s in samples if s.status_s is not None]
    served = samples[-1].served if samples else 0
    sa1b_cpu = sum(run.cpu_s for run in soak.runs)
    own = resource.getrusage(resource.RUSAGE_SELF)
    own_cpu = own.ru_utime + own.ru_stime - soak.cpu_before
    wall = max(soak.elapsed, 1.0)
    lines = [
        f"{len(samples)} samples over {soak.elapsed / 60:.1f} min; {len(soak.runs)} runs of"
        f" sa1b, {soak.expiries} fresh links files after expiry, {soak.passes} full passes;"
        f" {soak.checked} shards checked and deleted; {served / MB:.0f} MB served;"
        f" {samples[-1].faults if samples else 0} faults used; {load()} at the end",
        f"commits that synced a file: {len(commits)}, median {_median(commits):.1f} ms,"
        f" max {max(commits, default=0):.1f} ms; status: {len(statuses)} timed, median"
        f" {_median(statuses):.2f} s, max {max(statuses, default=0):.2f} s"
        + (f"; failures: {soak.status_failures[:3]}" if soak.status_failures else ""),
        f"CPU: sa1b {sa1b_cpu:.0f} s ({sa1b_cpu / wall:.2f} of a core on average), this"
        f" script (the CDN stand-in's TLS, the checks, the sampling) {own_cpu:.0f} s"
        f" ({own_cpu / wall:.2f} of a core)",
        "",
        *per_minute(samples),
        "",
        *describe_runs(soak),
    ]
    flat, verdict_lines = describe_verdict(samples, warmup_s)
    return flat, [*lines, *verdict_lines]


def needed_space(args: argparse.Namespace) -> int:
    """The sources, then ``--files`` shards in flight as tar and files at once, twice over
    (a folder waits for its check), and the margin."""
    return int(args.distinct * args.shard_size + 4 * args.files * args.shard_size + args.margin)


def server_context(tls_folder: Path) -> tuple[ssl.SSLContext, Path]:
    paths = make_certificates(tls_folder)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(paths.certificate, paths.key)
    return context, paths.ca


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if not 1 <= args.names <= 1000 or not 1 <= args.distinct <= args.names:
        refuse("--names must be 1 to 1000, --distinct 1 to --names")
    warmup = args.warmup if args.warmup is not None else min(3.0, args.minutes / 10)
    workdir = args.workdir.resolve()
    if not workdir.is_dir():
        refuse(f"{workdir}: no such folder (--workdir)")
    stat = os.statvfs(workdir)
    free = stat.f_bavail * stat.f_frsize
    need = needed_space(args)
    if free < need:
        refuse(
            f"{workdir} has {free / GIB:.1f} GiB free, this soak needs {need / GIB:.1f} GiB"
            f" (sources, shards in flight, --margin); free space or use --workdir"
        )
    root = Path(tempfile.mkdtemp(prefix="sa1b-soak-", dir=workdir))
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    lines = [
        f"# soak {time.strftime('%Y-%m-%d %H:%M:%S', time.gmtime())} UTC: {args.minutes:g} min,"
        f" {args.names} shard names over {args.distinct} sources of"
        f" {args.shard_size / MB:.0f} MB, HTTPS from the CDN stand-in, extraction on,"
        f" --max-rate {args.max_rate}, --files {args.files}; links expire after"
        f" {args.link_minutes:g} min; a fault every {args.fault_every:g} s; {os.cpu_count()}"
        f" cores, {load()}; {free / GIB:.0f} GiB free before",
        "# command: " + " ".join(sys.argv),
    ]
    log(lines[0])
    flat = False
    try:
        (root / "logs").mkdir()
        sources = prepare_shards(root, count=args.distinct, shard_size=args.shard_size)
        shards = serve_folder(root / "served", sources, args.names)
        context, ca = server_context(root / "tls")
        with CDNServer(root=root / "served", tls=context) as server:
            soak = Soak(
                args=args,
                root=root,
                server=server,
                shards=shards,
                sa1b=[sys.executable, "-m", "sa1b"],
                ca=ca,
            )
            try:
                soak.run_all()
            finally:
                flat, body = report(soak, warmup * 60)
                lines += body
    except BenchError as error:
        lines.append(f"FAILED: {error}")
        log(f"FAILED: {error}")
        return 1
    except KeyboardInterrupt:
        log("interrupted; deleting what was written")
        return 130
    finally:
        shutil.rmtree(root, ignore_errors=True)
        print_report(lines, args.results)
    return 0 if flat else 1


if __name__ == "__main__":
    raise SystemExit(main())
