#!/usr/bin/env python3
"""The full-size rehearsal: ``sa1b download`` of synthetic 10.5 GiB shards at SA-1B's density.

One synthetic shard (``sa1b.cdn.synth.make_shard``, about 11,000 jpg/json pairs per 10.5 GiB as
in SA-1B) is made in ``--workdir`` and served by nginx over HTTPS (a private CA made at start,
HTTP/2 offered), straight or behind ``benchmarks/pacer.py`` (``--paced``: ``--rate`` per TCP
connection and ``--rtt-ms`` round trip). With ``--shards 2`` the second shard is the same
file under a second name (a symlink nginx follows): the bytes served are the same, the
download is a separate file, and the disk holds one source.

For each mode (``--mode``: download and extract, ``--no-extract``, or both) it runs:

* one clean run, measuring: time to first byte (process start until the first kept byte is on
  disk), speed, CPU s/GB, bytes nginx served / data, peak RSS (``VmHWM`` polled in /proc, and
  ``ru_maxrss`` from ``os.wait4``), peak space allocated in the output folder (sums of
  ``st_blocks``), the state store's and the crash journal's peak size, ``sa1b status``
  latency (run when the download passes 10%, 20%, ... 90%) and the store commits'
  ``fdatasync`` times (``strace -f --seccomp-bpf -e trace=fdatasync,fsync -T``: only those
  syscalls stop the process; ``--no-strace`` runs without);
* one SIGKILL run per ``--kill-at`` fraction of the bytes (kept bytes: in the partial file,
  or below the checkpoint of a shard extracted with no tar; polled every 0.2 s), then the
  same command again to completion; the waste is the bytes
  nginx served in both runs beyond the data, and beside it what was in flight in the
  sockets just before the kill (:class:`InFlight`), which the kill loses whatever sa1b
  recorded.

Every run is checked (extracted: every member there with its tar size, 32 sampled members
byte for byte; ``--no-extract``: size and 64 sampled MiB byte for byte). Before it starts
it refuses (one line, exit 2) when the workdir's filesystem cannot hold the source and the
output with ``--margin``; it deletes everything it wrote when done, on Ctrl-C or on failure.
The machine's load (``/proc/loadavg``) is recorded with every run.

    python benchmarks/rehearsal.py --workdir /tmp --shard-size 1G --kill-at 0.5
    python benchmarks/rehearsal.py --workdir /tmp --results benchmarks/rehearsal-results.txt

See benchmarks/README.md, "Full-size rehearsal".
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import os
import random
import re
import shutil
import signal
import sqlite3
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import NoReturn

sys.path.insert(0, str(Path(__file__).resolve().parent))  # the bench package, beside this file

from bench import (
    BenchError,
    Pacer,
    log,
    parse_size,
    run_child,
    sa1b_has_ca_bundle,
    settled_bytes_sent,
    sync_and_clear,
)
from bench.accounting import RunResult, child_env
from bench.common import GB, MB, allocated_bytes, data_bytes, print_report
from bench.corpus import Shard
from bench.options import PRIVATE_FOLDER_HELP, add_shared_options
from bench.tools import sa1b_tool, write_inputs
from harness.certs import make_certificates
from harness.nginx import NginxServer
from sa1b.cdn.synth import make_shard, shard_name
from sa1b.store.paths import OutputPaths

GIB = 1 << 30
REAL_SHARD = int(10.5 * GIB)
REAL_PAIRS = 11_000  # image/annotation pairs in a real shard
SAMPLE_S = 0.2  # progress and RSS
DISK_SAMPLE_S = 1.0  # walking ~22,000 files costs CPU: once a second
STATUS_AT = tuple(i / 10 for i in range(1, 10))
DURATION_RE = re.compile(r"<(\d+\.\d+)>\s*$")  # strace -T


def parse_fractions(text: str) -> tuple[float, ...]:
    try:
        values = tuple(float(part) for part in text.split(",") if part.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a list of fractions: {text!r}") from None
    if any(not 0 < v < 1 for v in values):
        raise argparse.ArgumentTypeError("every fraction must be between 0 and 1")
    return values


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        description=(__doc__ or "").split("\n\n")[0],
        epilog="See benchmarks/README.md, 'Full-size rehearsal'.",
    )
    add_shared_options(
        parser,
        shard_size=f"{REAL_SHARD >> 20}M",
        workdir=Path(tempfile.gettempdir()),
        workdir_help=PRIVATE_FOLDER_HELP,
        timeout=3600.0,
        results=True,
    )
    parser.add_argument(
        "--shards",
        type=int,
        choices=(1, 2),
        default=1,
        help="1, or 2: the second is the same file under another name",
    )
    parser.add_argument(
        "--pairs",
        type=int,
        default=None,
        help="jpg/json pairs per shard (default: SA-1B's density, 11,000 per 10.5 GiB)",
    )
    parser.add_argument("--mode", choices=("both", "extract", "no-extract"), default="both")
    parser.add_argument(
        "--paced",
        action="store_true",
        help="behind benchmarks/pacer.py: --rate per TCP connection, --rtt-ms",
    )
    parser.add_argument(
        "--rate",
        type=parse_size,
        default=2 << 20,
        help="with --paced: bytes/s per TCP connection (default: 2M)",
    )
    parser.add_argument(
        "--rtt-ms",
        type=float,
        default=40.0,
        help="with --paced: round trip in ms (default: %(default)s)",
    )
    parser.add_argument(
        "--kill-at",
        type=parse_fractions,
        default=(0.2, 0.5, 0.8),
        help="SIGKILL at these fractions of the bytes, one run each "
        "(default: 0.2,0.5,0.8; '' for none)",
    )
    parser.add_argument(
        "--margin",
        type=parse_size,
        default=4 * GIB,
        help="free space to leave on top of source and output (default: 4G)",
    )
    parser.add_argument(
        "--no-strace", action="store_true", help="do not time fdatasync/fsync with strace"
    )
    return parser


@dataclasses.dataclass(kw_only=True)
class Source:
    shards: list[Shard]
    members: dict[str, tuple[int, int]]  # member name -> (offset of its data, size)

    @property
    def total(self) -> int:
        return sum(s.size for s in self.shards)


def make_source(folder: Path, *, count: int, size: int, pairs: int) -> Source:
    """One shard made by make_shard; a second one is a symlink to it."""
    folder.mkdir()
    first = folder / shard_name(0)
    started = time.monotonic()
    info = make_shard(first, shard_index=0, size=size, seed=0, pairs=pairs)
    log(
        f"made {info.name}: {info.size / GIB:.2f} GiB, {pairs} pairs, "
        f"{time.monotonic() - started:.0f} s"
    )
    shards = [Shard(name=info.name, path=info.path, size=info.size, md5=info.md5)]
    for index in range(1, count):
        other = folder / shard_name(index)
        other.symlink_to(first.name)
        shards.append(Shard(name=other.name, path=other, size=info.size, md5=info.md5))
    with tarfile.open(first, "r:") as archive:
        members = {m.name: (m.offset_data, m.size) for m in archive if m.isreg()}
    return Source(shards=shards, members=members)


def needed_space(args: argparse.Namespace, extract: bool) -> int:
    """Source (one file) + the output at its peak: tar and extracted files side by side."""
    per_shard = args.shard_size * (2.1 if extract else 1.02)
    return int(args.shard_size + args.shards * per_shard + args.margin)


def refuse(message: str) -> NoReturn:
    print(f"rehearsal: {message}", file=sys.stderr)
    raise SystemExit(2)


def load() -> str:
    return "load average " + " ".join(Path("/proc/loadavg").read_text().split()[:3])


class Monitor:
    """Polled by run_child every 20 ms while sa1b runs: progress, first byte, RSS, disk,
    state sizes, `sa1b status` latency; says when to SIGKILL."""

    def __init__(
        self,
        *,
        out: Path,
        total: int,
        kill_at: float | None,
        status: list[str] | None,
        env: dict[str, str],
        ports: tuple[int, int] | None = None,
    ) -> None:
        self.paths = OutputPaths.of(out)
        self.out = out
        self.total = total
        self.kill_at = kill_at
        self.status = status
        self.env = env
        self.ports = ports
        self.in_flight_at_kill: InFlight | None = None
        """With ``ports`` (sa1b's and the server's): what was in flight just before the
        SIGKILL."""
        self.started = time.monotonic()
        self.first_byte_s: float | None = None
        self.progress = 0
        self.peak_rss_kib = 0
        self.peak_disk = 0
        self.peak_store = 0
        self.peak_journal = 0
        self.status_s: list[float] = []
        self.status_failures: list[str] = []
        self._next_sample = self._next_disk = 0.0
        self._status_left = list(STATUS_AT) if status else []
        self._kept_at_start = self.kept_bytes()  # a rerun's first byte is its first new one

    def kept_bytes(self) -> int:
        """What a rerun keeps: the bytes in partial and finished tars, and (a shard
        extracted with no tar) the bytes below its extraction's saved checkpoint."""
        kept = _checkpointed(self.paths.database)
        for folder in (self.paths.partials, self.paths.tars):
            for entry in _files(folder):
                kept += data_bytes(entry) if folder == self.paths.partials else entry.stat().st_size
        return kept

    def __call__(self) -> bool:
        now = time.monotonic()
        if self.first_byte_s is None and self.kept_bytes() > self._kept_at_start:
            self.first_byte_s = now - self.started
        if now >= self._next_sample:
            self._next_sample = now + SAMPLE_S
            self.progress = self.kept_bytes()
            self.peak_rss_kib = max(self.peak_rss_kib, _sa1b_hwm_kib(self.out))
            if self.kill_at is not None and self.progress >= self.kill_at * self.total:
                if self.ports is not None:
                    self.in_flight_at_kill = InFlight.now(*self.ports)
                return True
        if now >= self._next_disk:
            self._next_disk = now + DISK_SAMPLE_S
            self.sample_disk()
        if self._status_left and self.progress >= self._status_left[0] * self.total:
            while self._status_left and self.progress >= self._status_left[0] * self.total:
                self._status_left.pop(0)
            self.time_status()
        return False

    def sample_disk(self) -> None:
        self.peak_disk = max(self.peak_disk, allocated_bytes(self.out))
        self.peak_store = max(self.peak_store, store_bytes(self.paths))
        self.peak_journal = max(self.peak_journal, _size(self.paths.journal))

    def time_status(self) -> None:
        assert self.status is not None
        seconds, failure = timed_status(self.status, self.out, self.env)
        self.status_s.append(seconds)
        if failure:
            self.status_failures.append(failure)


@dataclasses.dataclass(frozen=True)
class InFlight:
    """Bytes in the kernel between the server and sa1b at one moment, which the server
    counts as sent and a SIGKILL loses (with what a pacer between holds)."""

    unread: int
    """Received by sa1b's sockets and not read by it yet (their Recv-Q)."""
    unacknowledged: int
    """Handed to the server's sockets and not acknowledged yet (their Send-Q)."""
    connections: int
    """sa1b's connections."""

    @classmethod
    def now(cls, client_port: int, server_port: int) -> InFlight:
        """From ``ss``: sa1b's sockets are those to ``client_port`` (the server's, or a
        pacer's), the server's those on ``server_port``."""
        listed = subprocess.run(
            ["ss", "-tnH", "state", "established"], capture_output=True, text=True, check=True
        ).stdout
        unread = unacknowledged = connections = 0
        for line in listed.splitlines():
            recv_q, send_q, local, peer = line.split()[:4]
            if peer.endswith(f":{client_port}"):
                unread += int(recv_q)
                connections += 1
            if local.endswith(f":{server_port}"):
                unacknowledged += int(send_q)
        return cls(unread, unacknowledged, connections)

    def __str__(self) -> str:
        return (
            f"{(self.unread + self.unacknowledged) / MB:.0f} MB ({self.unread / MB:.0f} unread"
            f" by sa1b, {self.unacknowledged / MB:.0f} unacknowledged;"
            f" {self.connections} connections)"
        )


def store_bytes(paths: OutputPaths) -> int:
    """The state store's size: the SQLite file, its WAL and its shared memory."""
    return sum(_size(paths.state / f"state.db{s}") for s in ("", "-wal", "-shm"))


def timed_status(
    sa1b: list[str], out: Path, env: dict[str, str], *, ok: tuple[int, ...] = (0,)
) -> tuple[float, str | None]:
    """How long ``sa1b status OUT`` took, and what went wrong (None: it exited with one
    of ``ok``; it exits 1 when a file failed or expired)."""
    started = time.monotonic()
    done = subprocess.run(
        [*sa1b, "status", str(out)],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
        check=False,
    )
    seconds = time.monotonic() - started
    if done.returncode not in ok:
        return seconds, f"exit {done.returncode}: {done.stderr.strip()[-200:]}"
    return seconds, None


def _checkpointed(database: Path) -> int:
    """The bytes below the extractions' saved checkpoints (a read-only look at the store)."""
    try:
        with contextlib.closing(sqlite3.connect(f"file:{database}?mode=ro", uri=True)) as db:
            row = db.execute("SELECT SUM(next) FROM extractions WHERE next > 0").fetchone()
    except sqlite3.Error:
        return 0
    return int(row[0] or 0)


def _files(folder: Path) -> Iterator[Path]:
    try:
        yield from (entry for entry in folder.iterdir() if entry.is_file())
    except OSError:
        return


def _size(path: Path) -> int:
    try:
        return path.stat().st_size
    except OSError:
        return 0


def sa1b_pids(out: Path) -> list[int]:
    """The ``python -m sa1b download ... -o OUT`` processes (other people's downloads on a
    shared machine are not ours)."""
    pids = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            cmdline = Path(f"/proc/{entry}/cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if cmdline[1:4] == [b"-m", b"sa1b", b"download"] and os.fsencode(out) in cmdline:
            pids.append(int(entry))
    return pids


def proc_status(pid: int) -> dict[str, int]:
    """The numeric fields of /proc/PID/status (kB for sizes: ``VmRSS``, ``VmHWM``;
    ``Threads``); empty once the process is gone."""
    fields = {}
    try:
        text = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return {}
    for line in text.splitlines():
        key, _, value = line.partition(":")
        parts = value.split()
        if parts and parts[0].isdigit():
            fields[key] = int(parts[0])
    return fields


def _sa1b_hwm_kib(out: Path) -> int:
    """The largest VmHWM among the sa1b downloads into ``out``."""
    return max((proc_status(pid).get("VmHWM", 0) for pid in sa1b_pids(out)), default=0)


def sync_times(path: Path) -> dict[str, list[float]]:
    """Durations of fdatasync/fsync in an ``strace -f -y -T`` log: "store" for the state
    store and the journal, "data" for the rest (partial files, extracted members). A call
    another thread's line interrupted is split into "<unfinished ...>" and "resumed>"."""
    times: dict[str, list[float]] = {"store": [], "data": []}
    pending: dict[str, str] = {}
    try:
        lines = path.read_text(errors="replace").splitlines()
    except OSError:
        return times
    for line in lines:
        pid = line.split(" ", 1)[0]
        if "fdatasync(" in line or "fsync(" in line:
            kind = "store" if "state.db" in line or "/journal>" in line else "data"
            if line.endswith("<unfinished ...>"):
                pending[pid] = kind
                continue
        elif "sync resumed>" in line:
            kind = pending.pop(pid, "data")
        else:
            continue
        if match := DURATION_RE.search(line):
            times[kind].append(float(match.group(1)))
    return times


def describe_times(times: list[float], *, unit: float) -> str:
    """``N calls, median, p99, max, sum``, in seconds (unit 1) or milliseconds (unit 1e-3)."""
    if not times:
        return "none"
    ordered = sorted(times)
    suffix = "s" if unit == 1.0 else "ms"
    p99 = ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]
    return (
        f"{len(ordered)} calls, median {statistics.median(ordered) / unit:.2f} {suffix},"
        f" p99 {p99 / unit:.2f} {suffix}, max {ordered[-1] / unit:.2f} {suffix},"
        f" {sum(ordered):.1f} s in all"
    )


def verify(out: Path, source: Source, *, extract: bool) -> list[str]:
    """Extracted: every member with its size, 32 sampled byte for byte; tars: size and 64
    sampled MiB byte for byte."""
    problems: list[str] = []
    rng = random.Random(0)
    for shard in source.shards:
        src = shard.path.resolve()
        if not extract:
            tar = out / "tars" / shard.name
            if _size(tar) != shard.size:
                problems.append(f"{tar}: {_size(tar)} bytes, expected {shard.size}")
                continue
            offsets = [rng.randrange(0, max(1, shard.size - MB)) for _ in range(64)]
            if any(_read(tar, o, MB) != _read(src, o, MB) for o in offsets):
                problems.append(f"{tar}: differs from the source")
            continue
        folder = out / shard.name.removesuffix(".tar")
        for name, (_offset, size) in source.members.items():
            if _size(folder / name) != size:
                problems.append(f"{folder / name}: {_size(folder / name)} bytes, expected {size}")
        for name in rng.sample(sorted(source.members), min(32, len(source.members))):
            offset, size = source.members[name]
            if _read(folder / name, 0, size) != _read(src, offset, size):
                problems.append(f"{folder / name}: differs from its member")
    return problems[:8]


def _read(path: Path, offset: int, length: int) -> bytes:
    try:
        with open(path, "rb") as handle:
            handle.seek(offset)
            return handle.read(length)
    except OSError:
        return b""


@dataclasses.dataclass(kw_only=True)
class Bench:
    args: argparse.Namespace
    root: Path
    source: Source
    server: NginxServer
    client_port: int
    """The port sa1b connects to: the server's, or the pacer's."""
    sa1b: list[str]
    ca: Path
    ca_bundle: bool
    lines: list[str]

    def run(self, argv: list[str], env: dict[str, str], label: str, monitor: Monitor) -> RunResult:
        logs = self.root / "logs"
        result = run_child(
            argv,
            log_path=logs / f"{label}.log",
            timeout=self.args.timeout,
            stop_when=monitor,
            env=env,
        )
        monitor.sample_disk()
        if not result.killed and result.exit_code != 0:
            tail = (logs / f"{label}.log").read_text(errors="replace")[-2000:]
            raise BenchError(f"{label}: sa1b exited with {result.exit_code}:\n{tail}")
        return result

    def mode(self, extract: bool, inputs_links: Path) -> None:
        out = self.root / "out"
        total = self.source.total
        tool = sa1b_tool(
            self.sa1b,
            links=inputs_links,
            outdir=out,
            extract=extract,
            ca=self.ca,
            ca_bundle_option=self.ca_bundle,
        )
        env = tool.env
        name = "extract" if extract else "no-extract"
        strace = None if self.args.no_strace else shutil.which("strace")
        trace = self.root / "logs" / f"{name}-syncs.txt"
        argv = tool.argv
        if strace:
            argv = [
                strace,
                "-f",
                "-qq",
                "--seccomp-bpf",
                "-e",
                "trace=fdatasync,fsync",
                "-e",
                "signal=none",
                "-T",
                "-y",
                "-o",
                str(trace),
                *tool.argv,
            ]
        sync_and_clear(out)
        self.server.clear_log()
        before = load()
        monitor = Monitor(out=out, total=total, kill_at=None, status=self.sa1b, env=child_env(env))
        result = self.run(argv, env, f"{name}-clean", monitor)
        served = settled_bytes_sent(self.server, expect_at_least=total)
        problems = verify(out, self.source, extract=extract)
        syncs = sync_times(trace) if strace else {}
        self.emit(
            f"{name}: clean run ({before} before, {load()} after)\n"
            f"  first byte {monitor.first_byte_s or 0:.2f} s, {total / result.wall_s / MB:.0f} MB/s"
            f" ({result.wall_s:.1f} s), {result.cpu_s / (total / GB):.2f} CPU s/GB"
            f"{' (sa1b and strace)' if strace else ''}, served/data {served / total:.4f}\n"
            f"  peak RSS {monitor.peak_rss_kib / 1024:.0f} MB polled"
            f" ({result.maxrss_kib / 1024:.0f} MB ru_maxrss), peak disk in OUT"
            f" {monitor.peak_disk / GIB:.2f} GiB ({monitor.peak_disk / total:.2f}x data),"
            f" store {monitor.peak_store / 1024:.0f} KiB, journal"
            f" {monitor.peak_journal / 1024:.0f} KiB (peaks)\n"
            f"  status: {describe_times(monitor.status_s, unit=1.0)}"
            + (f"; failures: {monitor.status_failures}" if monitor.status_failures else "")
            + "".join(
                f"\n  fdatasync/fsync of {kind}: {describe_times(times, unit=1e-3)}"
                for kind, times in syncs.items()
            )
            + (f"\n  WRONG OUTPUT: {problems}" if problems else "\n  output checked")
        )
        if problems:
            raise BenchError(f"{name}: wrong output")
        for fraction in self.args.kill_at:
            sync_and_clear(out)
            self.server.clear_log()
            before = load()
            killer = Monitor(
                out=out,
                total=total,
                kill_at=fraction,
                status=None,
                env=env,
                ports=(self.client_port, self.server.port),
            )
            first = self.run(tool.argv, env, f"{name}-kill-{fraction:g}", killer)
            at_kill = killer.progress
            rerun = Monitor(out=out, total=total, kill_at=None, status=None, env=env)
            second = self.run(tool.argv, env, f"{name}-rerun-{fraction:g}", rerun)
            served = settled_bytes_sent(self.server, expect_at_least=total)
            problems = verify(out, self.source, extract=extract)
            self.emit(
                f"{name}: SIGKILL at {fraction:.0%} ({before}): killed"
                f" {'yes' if first.killed else 'NO (finished first)'} at"
                f" {at_kill / total:.1%} kept after {first.wall_s:.1f} s; rerun"
                f" {second.wall_s:.1f} s, first byte {rerun.first_byte_s or 0:.2f} s;"
                f" served/data {served / total:.4f}, waste {(served - total) / MB:.0f} MB"
                f" ({(served - total) / total:.2%}),"
                f" in the sockets just before the kill {killer.in_flight_at_kill or 'unknown'};"
                f" peak RSS {max(killer.peak_rss_kib, rerun.peak_rss_kib) / 1024:.0f} MB polled"
                f" ({max(first.maxrss_kib, second.maxrss_kib) / 1024:.0f} MB ru_maxrss);"
                + (f" WRONG OUTPUT: {problems}" if problems else " output checked")
            )
            if problems:
                raise BenchError(f"{name}: wrong output after a kill")
        sync_and_clear(out)

    def emit(self, text: str) -> None:
        log(text)
        self.lines.append(text)


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    modes = [args.mode == "extract"] if args.mode != "both" else [False, True]
    pairs = args.pairs or max(1, round(args.shard_size / REAL_SHARD * REAL_PAIRS))
    workdir = args.workdir.resolve()
    if not workdir.is_dir():
        refuse(f"{workdir}: no such folder (--workdir)")
    need = max(needed_space(args, extract) for extract in modes)
    stat = os.statvfs(workdir)
    free = stat.f_bavail * stat.f_frsize
    if free < need:
        refuse(
            f"{workdir} has {free / GIB:.1f} GiB free, this run needs {need / GIB:.1f} GiB"
            f" (source, output at its peak, --margin); free space or use --workdir"
        )
    root = Path(tempfile.mkdtemp(prefix="sa1b-rehearsal-", dir=workdir))
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    lines = [
        f"# rehearsal {time.strftime('%Y-%m-%d %H:%M:%S', time.gmtime())} UTC:"
        f" {args.shards} shard(s) of {args.shard_size / GIB:.2f} GiB, {pairs} pairs each,"
        f" HTTPS through nginx"
        + (
            f" behind the pacer ({args.rate / 2**20:g} MiB/s per connection, {args.rtt_ms:g} ms"
            f" RTT)"
            if args.paced
            else ""
        )
        + f"; {os.cpu_count()} cores, {load()}; {free / GIB:.0f} GiB free before",
        "# command: " + " ".join(sys.argv),
    ]
    log(lines[0])
    try:
        (root / "logs").mkdir()
        source = make_source(root / "src", count=args.shards, size=args.shard_size, pairs=pairs)
        tls = make_certificates(root / "tls")
        sa1b = [sys.executable, "-m", "sa1b"]
        with contextlib.ExitStack() as stack:
            server = stack.enter_context(
                NginxServer(
                    root=root / "src",
                    workdir=root / "nginx",
                    tls=(tls.certificate, tls.key),
                    http2=True,
                )
            )
            base = server.base_url
            if args.paced:
                pacer = stack.enter_context(
                    Pacer(
                        upstream_port=server.port,
                        rate=args.rate,
                        delay_ms=args.rtt_ms / 2,
                        log_path=root / "logs" / "pacer.log",
                    )
                )
                base = f"https://127.0.0.1:{pacer.port}"
            inputs = write_inputs(root, base, source.shards, root / "out")
            bench = Bench(
                args=args,
                root=root,
                source=source,
                server=server,
                client_port=int(base.rpartition(":")[2]),
                sa1b=sa1b,
                ca=tls.ca,
                ca_bundle=sa1b_has_ca_bundle(sa1b),
                lines=lines,
            )
            for extract in modes:
                bench.mode(extract, inputs.links)
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
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
