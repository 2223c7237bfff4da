#!/usr/bin/env python3
"""Compare ``sa1b download`` with aria2c on synthetic SA-1B shards served by nginx on loopback.

Scenarios (``--scenario``, repeatable; default: all):

* ``capped``   nginx ``limit_rate 8m`` (8 MiB/s per connection), N shards of ~170 MiB.
* ``uncapped`` no rate limit, same shards.
* ``kill``     capped; start the tool, SIGKILL it when about half the bytes are on disk, rerun
  the same command to completion; report bytes served by nginx / total data size; verify
  every file. Done for aria2c (``-c``) and sa1b.
* ``extract``  capped; download *and extract* every shard into OUT/<shard_stem>/: aria2c (same
  flags) then one ``tar -xf`` per shard, against ``sa1b download`` with its default
  extraction (tars not kept). Also samples the disk space allocated under OUT every ~50 ms and
  reports the peak.

capped/uncapped/kill measure the download alone: sa1b runs there with ``--no-extract``.

For capped/uncapped/extract the tools alternate (aria2c, sa1b, aria2c, ...), ``--runs`` times
each; before every run the page cache is synced and the previous output deleted. Throughput is
the median; CPU time (user+sys) and peak RSS come from ``os.wait4`` on the child. Every output
byte is checked against the md5 of its source (for extract: of its source tar member); any
mismatch (or a tool failure) makes the script exit 1 after printing what it measured.

Run ``python benchmarks/bench.py --help``. See benchmarks/README.md.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import hashlib
import importlib
import json
import os
import platform
import random
import re
import resource
import shlex
import shutil
import signal
import stat
import statistics
import subprocess
import sys
import tarfile
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path, PurePosixPath
from typing import Any

try:
    from sa1b.cdn.nginx import NginxServer, find_nginx
except ImportError:  # running with a Python that does not have sa1b installed
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "src"))
    from sa1b.cdn.nginx import NginxServer, find_nginx

MakeDataset = Callable[..., Sequence[Any]]


def _load_make_dataset() -> MakeDataset | None:
    """``sa1b.cdn.synth.make_dataset`` if it exists; else the random-content fallback is used."""
    try:
        synth = importlib.import_module("sa1b.cdn.synth")
    except ImportError:
        return None
    found: MakeDataset | None = getattr(synth, "make_dataset", None)
    return found


make_dataset = _load_make_dataset()

SCENARIOS = ("capped", "uncapped", "kill", "extract")
TOOLS = ("aria2c", "sa1b")
CAP = "8m"
MB = 1_000_000  # throughput and CPU figures use decimal MB / GB
GB = 1_000_000_000
LINKS_HEADER = "file_name\tcdn_link"
HASH_CHUNK = 8 << 20
POLL_S = 0.02
DISK_SAMPLE_S = 0.05  # extract scenario: how often the space allocated under OUT is sampled
STATE_DIR = ".sa1b"  # sa1b's own bookkeeping folder in OUT (the only extra allowed)
IN_FLIGHT_SLACK = 1.2  # peak disk <= extracted + this x the bytes of the shards in flight


class BenchError(Exception):
    """A failure that makes the benchmark meaningless (exit 1)."""


# -- small helpers -------------------------------------------------------------------------------


def parse_size(text: str) -> int:
    """``170M`` -> 178257920 (binary suffixes K, M, G, T; optional ``iB``/``B``)."""
    match = re.fullmatch(r"\s*([0-9]+(?:\.[0-9]+)?)\s*([kKmMgGtT]?)(?:i?[bB])?\s*", text)
    if not match:
        raise argparse.ArgumentTypeError(f"not a size: {text!r} (try 170M, 1G, 4096)")
    number, unit = match.groups()
    factor = 1024 ** " KMGT".index(unit.upper() or " ")
    return int(float(number) * factor)


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def md5_of(path: Path) -> str:
    digest = hashlib.md5(usedforsecurity=False)
    buf = bytearray(HASH_CHUNK)
    view = memoryview(buf)
    with open(path, "rb", buffering=0) as handle:
        while n := handle.readinto(buf):
            digest.update(view[:n])
    return digest.hexdigest()


def data_bytes(path: Path) -> int:
    """Bytes actually written to ``path``: preallocated (unwritten) extents and holes excluded.

    Uses SEEK_DATA/SEEK_HOLE (ext4, xfs, btrfs, tmpfs report unwritten extents as holes unless
    the page cache holds data); falls back to the file size.
    """
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return 0
    try:
        size = os.fstat(fd).st_size
        total = offset = 0
        while offset < size:
            try:
                start = os.lseek(fd, offset, os.SEEK_DATA)
            except OSError:  # ENXIO: no data after offset
                break
            end = os.lseek(fd, start, os.SEEK_HOLE)
            total += end - start
            offset = end
        return total
    except OSError:
        return os.path.getsize(path)
    finally:
        os.close(fd)


def bytes_on_disk(directory: Path) -> int:
    total = 0
    for dirpath, _dirs, files in os.walk(directory):
        for name in files:
            total += data_bytes(Path(dirpath, name))
    return total


def allocated_bytes(directory: Path) -> int:
    """Disk space allocated to the files under ``directory``: sum of ``st_blocks * 512``.

    Preallocated space counts (it is taken from the disk), and so do ext4's delayed-allocation
    reservations. Files that vanish during the walk are skipped.
    """
    total = 0
    for dirpath, _dirs, files in os.walk(directory):
        for name in files:
            with contextlib.suppress(OSError):
                total += os.lstat(os.path.join(dirpath, name)).st_blocks * 512
    return total


class DiskSampler:
    """Samples ``allocated_bytes(directory)`` every ``interval`` s in a thread; keeps the peak."""

    def __init__(self, directory: Path, interval: float = DISK_SAMPLE_S) -> None:
        self.directory = directory
        self.interval = interval
        self.peak = 0
        self.samples = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="disk-sampler", daemon=True)

    def sample(self) -> None:
        self.peak = max(self.peak, allocated_bytes(self.directory))
        self.samples += 1

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            self.sample()

    def __enter__(self) -> DiskSampler:
        self.sample()
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self.sample()


def sync_and_clear(outdir: Path) -> None:
    """``sync``, delete the previous output, ``sync`` again; nothing else is dropped."""
    os.sync()
    shutil.rmtree(outdir, ignore_errors=True)
    os.sync()
    outdir.mkdir(parents=True)


def tool_version(argv: list[str]) -> str:
    try:
        done = subprocess.run(argv, capture_output=True, text=True, timeout=10, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return "unknown"
    text = (done.stdout or done.stderr).strip()
    return text.splitlines()[0] if text else "unknown"


# -- synthetic data ------------------------------------------------------------------------------


Members = dict[str, tuple[int, str]]  # normalised member name -> (size, md5)


@dataclasses.dataclass(frozen=True, kw_only=True)
class Shard:
    name: str
    path: Path
    size: int
    md5: str
    # Every regular member of the tar, keyed by normalised name (None: not a tar, e.g. the
    # random-content fallback). Hashed once and kept in the manifest.
    members: Members | None = dataclasses.field(default=None, compare=False)


def shard_stem(name: str) -> str:
    """``sa_000123.tar`` -> ``sa_000123``: the folder a shard is extracted into."""
    return name[:-4] if name.endswith(".tar") else name


def normalise_member(member: str, *, stem: str) -> str:
    """A member name as sa1b extracts it: ``./`` parts and an inner ``<stem>/`` folder removed."""
    parts = [part for part in member.split("/") if part not in ("", ".")]
    if parts and parts[0] == stem:
        parts = parts[1:]
    return "/".join(parts)


def hash_members(path: Path) -> Members:
    """md5 and size of every regular member of the tar at ``path``, by normalised name.

    A later member with the same normalised name replaces an earlier one, as ``tar -x`` does.
    Raises ``tarfile.TarError`` (or OSError) when ``path`` is not a readable tar.
    """
    stem = shard_stem(path.name)
    members: Members = {}
    with tarfile.open(path, "r:") as archive:
        for info in archive:
            if not info.isreg():
                continue
            handle = archive.extractfile(info)
            if handle is None:
                continue
            digest = hashlib.md5(usedforsecurity=False)
            while chunk := handle.read(HASH_CHUNK):
                digest.update(chunk)
            members[normalise_member(info.name, stem=stem)] = (info.size, digest.hexdigest())
    return members


def _fallback_dataset(directory: Path, *, count: int, shard_size: int, seed: int) -> list[Shard]:
    """Random-content files ``sa_%06d.tar`` (used only while sa1b.cdn.synth is missing)."""
    shards = []
    for index in range(count):
        path = directory / f"sa_{index:06d}.tar"
        rng = random.Random(seed * 1_000_003 + index)
        digest = hashlib.md5(usedforsecurity=False)
        with open(path, "wb") as handle:
            left = shard_size
            while left:
                block = rng.randbytes(min(left, HASH_CHUNK))
                handle.write(block)
                digest.update(block)
                left -= len(block)
        shards.append(Shard(name=path.name, path=path, size=shard_size, md5=digest.hexdigest()))
    return shards


def _manifest_entry(shard: Shard) -> dict[str, Any]:
    entry: dict[str, Any] = {"name": shard.name, "size": shard.size, "md5": shard.md5}
    if shard.members is not None:
        entry["members"] = {k: {"size": v[0], "md5": v[1]} for k, v in shard.members.items()}
    return entry


def _shard_from_entry(directory: Path, entry: dict[str, Any]) -> Shard:
    members: Members | None = None
    if isinstance(entry.get("members"), dict):
        members = {k: (int(v["size"]), str(v["md5"])) for k, v in entry["members"].items()}
    return Shard(
        name=entry["name"],
        path=directory / entry["name"],
        size=entry["size"],
        md5=entry["md5"],
        members=members,
    )


def _with_members(shards: list[Shard]) -> list[Shard]:
    """Hash the members of every shard that has not had it done (done once: see manifest)."""
    log("hashing the members of every shard (once; kept in the manifest)")
    started = time.monotonic()
    done = []
    for shard in shards:
        if shard.members is not None:
            done.append(shard)
            continue
        try:
            members = hash_members(shard.path)
        except (OSError, tarfile.TarError) as exc:
            raise BenchError(f"{shard.path}: cannot list its tar members: {exc}") from exc
        done.append(dataclasses.replace(shard, members=members))
    log(f"hashed in {time.monotonic() - started:.1f} s")
    return done


def prepare_shards(workdir: Path, *, count: int, shard_size: int, seed: int = 0) -> list[Shard]:
    """Generate (or reuse) the synthetic shards; md5s are computed once and kept in a manifest.

    With make_dataset the md5 of every tar member is computed once too and kept in the same
    manifest (the extract scenario checks each extracted file against it).
    """
    generator = "make_dataset" if make_dataset is not None else "fallback"
    directory = workdir / f"shards-{generator}-{count}x{shard_size}-seed{seed}"
    manifest_path = directory / "manifest.json"
    shards: list[Shard] | None = None
    if manifest_path.is_file():
        try:
            entries = json.loads(manifest_path.read_text())
            found = [_shard_from_entry(directory, e) for e in entries]
            if len(found) == count and all(
                s.path.is_file() and s.path.stat().st_size == s.size for s in found
            ):
                log(f"reusing {count} shards in {directory}")
                shards = found
        except (OSError, ValueError, KeyError, TypeError, AttributeError):
            pass
    if shards is None:
        shutil.rmtree(directory, ignore_errors=True)
        directory.mkdir(parents=True)
        log(f"generating {count} shards of ~{shard_size / MB:.0f} MB in {directory} ({generator})")
        started = time.monotonic()
        if make_dataset is not None:
            infos = make_dataset(
                directory,
                shard_indices=range(count),
                shard_size=shard_size,
                seed=seed,
                extras=False,
            )
            shards = [
                Shard(name=i.name, path=Path(i.path), size=int(i.size), md5=str(i.md5))
                for i in infos
            ]
        else:
            shards = _fallback_dataset(directory, count=count, shard_size=shard_size, seed=seed)
        for shard in shards:
            if shard.path.parent.resolve() != directory.resolve():
                raise BenchError(f"make_dataset put {shard.name} outside {directory}")
        log(f"generated in {time.monotonic() - started:.1f} s")
    elif generator == "fallback" or all(s.members is not None for s in shards):
        return shards
    if generator == "make_dataset":
        shards = _with_members(shards)
    manifest_path.write_text(json.dumps([_manifest_entry(s) for s in shards], indent=1))
    return shards


# -- the tools -----------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True, kw_only=True)
class Tool:
    name: str
    argv: list[str]
    output_dir: Callable[[Path], Path]  # outdir -> directory holding the finished files


def aria2c_tool(binary: str, *, input_file: Path, outdir: Path, resume: bool) -> Tool:
    argv = [
        binary,
        "-x16",
        "-s16",
        "-j4",
        "-k1M",
        "--file-allocation=falloc",
        "--auto-file-renaming=false",
        "--allow-overwrite=true",
        "--console-log-level=warn",
        "--summary-interval=0",
        "--download-result=hide",
    ]
    if resume:
        argv.append("-c")
    argv += ["-d", str(outdir), "-i", str(input_file)]
    return Tool(name="aria2c", argv=argv, output_dir=lambda out: out)


def sa1b_tool(command: list[str], *, links: Path, outdir: Path, extract: bool = False) -> Tool:
    """``sa1b download``; without ``extract`` it runs with ``--no-extract`` (tars in OUT/tars/)."""
    argv = [*command, "download", str(links), "-o", str(outdir), "--quiet"]
    if not extract:
        argv.append("--no-extract")
        return Tool(name="sa1b", argv=argv, output_dir=lambda out: out / "tars")
    return Tool(name="sa1b", argv=argv, output_dir=lambda out: out)


def tar_argv(tar: str, archive: Path, dest: Path) -> list[str]:
    """How a user extracts one shard: ``tar -xf SHARD -C OUT/<stem>``."""
    return [tar, "-xf", str(archive), "-C", str(dest)]


def write_inputs(workdir: Path, server: NginxServer, shards: list[Shard]) -> tuple[Path, Path]:
    """Write the aria2c input file and the official-format links file for this server."""
    aria_input = workdir / "aria2c-input.txt"
    aria_input.write_text(
        "".join(f"{server.url_for(s.name)}\n  out={s.name}\n" for s in shards), encoding="utf-8"
    )
    links = workdir / "sa1b_links.txt"
    rows = [LINKS_HEADER] + [f"{s.name}\t{server.url_for(s.name)}" for s in shards]
    links.write_bytes(("\n".join(rows) + "\n").encode("utf-8"))
    return aria_input, links


def default_sa1b_command() -> list[str] | None:
    beside = Path(sys.executable).parent / "sa1b"
    if beside.is_file() and os.access(beside, os.X_OK):
        return [str(beside)]
    found = shutil.which("sa1b")
    return [found] if found else None


# -- running and measuring -----------------------------------------------------------------------


@dataclasses.dataclass(kw_only=True)
class RunResult:
    tool: str
    exit_code: int
    wall_s: float
    user_s: float
    sys_s: float
    maxrss_kib: int
    children_cpu_s: float  # cross-check: RUSAGE_CHILDREN delta around the run
    killed: bool = False
    log_path: str = ""

    @property
    def cpu_s(self) -> float:
        return self.user_s + self.sys_s


# Linux copies a process's peak RSS into ru_maxrss of every child it forks or vforks (exec
# records the old address space's high-water mark), so a child of this script would report at
# least this script's own peak (~150 MB after hashing and generating shards). Tools are
# therefore started through a tiny `python -I -S` launcher (~9 MB) that forks the tool, reaps it
# with os.wait4 and writes the tool's own rusage to a report file.
_LAUNCHER = r"""
import os, sys, time
started = time.monotonic()
pid = os.fork()
if pid == 0:
    try:
        os.execvp(sys.argv[2], sys.argv[2:])
    except OSError as exc:
        os.write(2, ("cannot run %s: %s\n" % (sys.argv[2], exc)).encode())
    os._exit(127)
_, status, usage = os.wait4(pid, 0)
wall = time.monotonic() - started
with open(sys.argv[1], "w") as report:
    report.write("%r %r %d %r\n" % (usage.ru_utime, usage.ru_stime, usage.ru_maxrss, wall))
code = os.waitstatus_to_exitcode(status)
os._exit(code if code >= 0 else 128 - code)
"""


def run_child(
    argv: list[str],
    *,
    log_path: Path,
    timeout: float,
    stop_when: Callable[[], bool] | None = None,
) -> RunResult:
    """Run ``argv`` (through the launcher) and return its own rusage from ``os.wait4``.

    ``stop_when`` is polled while the tool runs; when it returns True the whole process group
    gets SIGKILL (the result then has ``killed=True`` and the launcher's rusage).
    """
    report = log_path.with_suffix(".rusage")
    report.unlink(missing_ok=True)
    launcher = [sys.executable, "-I", "-S", "-c", _LAUNCHER, str(report), *argv]
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    with open(log_path, "wb") as out:
        started = time.monotonic()
        proc = subprocess.Popen(
            launcher, stdin=subprocess.DEVNULL, stdout=out, stderr=out, start_new_session=True
        )
    killed = False
    try:
        while True:
            pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
            if pid:
                break
            if time.monotonic() - started > timeout:
                os.killpg(proc.pid, signal.SIGKILL)
                os.wait4(proc.pid, 0)
                raise BenchError(
                    f"{shlex.join(argv[:2])} ... did not finish within {timeout:.0f} s "
                    f"(log: {log_path})"
                )
            if stop_when is not None and stop_when():
                os.killpg(proc.pid, signal.SIGKILL)
                killed = True
                _, status, usage = os.wait4(proc.pid, 0)
                break
            time.sleep(POLL_S)
    except BaseException:
        with contextlib.suppress(ProcessLookupError, ChildProcessError):
            os.killpg(proc.pid, signal.SIGKILL)
            os.wait4(proc.pid, 0)
        raise
    wall = time.monotonic() - started
    proc.returncode = os.waitstatus_to_exitcode(status)  # reaped by wait4: tell Popen
    # Descendants the tool left behind belong to the run too: none may outlive it.
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGKILL)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    children_cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    user, system, maxrss = usage.ru_utime, usage.ru_stime, usage.ru_maxrss
    if not killed:
        try:
            fields = report.read_text().split()
            user, system, maxrss, wall = (
                float(fields[0]),
                float(fields[1]),
                int(fields[2]),
                float(fields[3]),
            )
        except (OSError, ValueError, IndexError):
            pass  # launcher killed or broken: keep its own (less exact) figures
    return RunResult(
        tool=Path(argv[0]).name,
        exit_code=proc.returncode,
        wall_s=wall,
        user_s=user,
        sys_s=system,
        maxrss_kib=maxrss,
        children_cpu_s=children_cpu,
        killed=killed,
        log_path=str(log_path),
    )


def log_tail(path: str, lines: int = 15) -> str:
    try:
        text = Path(path).read_text(encoding="utf-8", errors="replace")
    except OSError:
        return ""
    return "\n".join("    | " + line for line in text.splitlines()[-lines:])


def verify_output(directory: Path, shards: list[Shard]) -> list[str]:
    """Every shard present, right size, right md5; returns the list of problems."""
    problems = []
    for shard in shards:
        path = directory / shard.name
        if not path.is_file():
            problems.append(f"{shard.name}: missing in {directory}")
            continue
        size = path.stat().st_size
        if size != shard.size:
            problems.append(f"{shard.name}: {size} bytes, expected {shard.size}")
            continue
        got = md5_of(path)
        if got != shard.md5:
            problems.append(f"{shard.name}: md5 {got}, expected {shard.md5}")
    return problems


def _walk_entries(root: Path) -> tuple[dict[str, os.stat_result], list[str]]:
    """Every non-directory entry under ``root`` (relative POSIX path -> lstat) and every empty
    directory. Symlinks are entries, never followed."""
    entries: dict[str, os.stat_result] = {}
    empty_dirs: list[str] = []
    stack = [root]
    while stack:
        folder = stack.pop()
        try:
            children = list(os.scandir(folder))
        except OSError:
            continue
        if not children and folder != root:
            empty_dirs.append(folder.relative_to(root).as_posix())
        for child in children:
            path = Path(child.path)
            try:
                st = child.stat(follow_symlinks=False)
            except OSError:
                continue
            if stat.S_ISDIR(st.st_mode):
                stack.append(path)
            else:
                entries[path.relative_to(root).as_posix()] = st
    return entries, empty_dirs


def _summarise_problems(problems: list[str], limit: int = 8) -> list[str]:
    if len(problems) <= limit:
        return problems
    return [*problems[:limit], f"... and {len(problems) - limit} more"]


def verify_extracted(
    outdir: Path, shards: list[Shard], *, allowed: Callable[[str], bool]
) -> tuple[list[str], list[str]]:
    """Every member of every shard at ``OUT/<stem>/<normalised name>``, a regular file with the
    source member's size and md5, and no other file under OUT unless ``allowed(relative path)``.

    Returns (problems, warnings); an empty directory left behind is only a warning.
    """
    entries, empty_dirs = _walk_entries(outdir)
    problems: list[str] = []
    expected: set[str] = set()
    for shard in shards:
        assert shard.members is not None
        stem = shard_stem(shard.name)
        for name, (size, md5) in sorted(shard.members.items()):
            rel = PurePosixPath(stem, name).as_posix()
            expected.add(rel)
            st = entries.get(rel)
            if st is None:
                problems.append(f"{rel}: missing")
            elif not stat.S_ISREG(st.st_mode):
                problems.append(f"{rel}: not a regular file (mode {stat.filemode(st.st_mode)})")
            elif st.st_size != size:
                problems.append(f"{rel}: {st.st_size} bytes, expected {size}")
            else:
                got = md5_of(outdir / rel)
                if got != md5:
                    problems.append(f"{rel}: md5 {got}, expected {md5}")
    extra = sorted(rel for rel in entries if rel not in expected and not allowed(rel))
    problems += [f"{rel}: unexpected file in {outdir}" for rel in extra]
    warnings = [
        f"{rel}/: empty folder left in {outdir}" for rel in sorted(empty_dirs) if not allowed(rel)
    ]
    return _summarise_problems(problems), warnings


def settled_bytes_sent(server: NginxServer, *, expect_at_least: int, patience: float = 3.0) -> int:
    """nginx logs a request when it ends; wait briefly for aborted ones to be logged."""
    deadline = time.monotonic() + patience
    last = server.bytes_sent()
    stable_since = time.monotonic()
    while time.monotonic() < deadline:
        time.sleep(0.1)
        now = server.bytes_sent()
        if now != last:
            last, stable_since = now, time.monotonic()
        elif last >= expect_at_least and time.monotonic() - stable_since >= 0.3:
            break
    return last


# -- scenarios -----------------------------------------------------------------------------------


@dataclasses.dataclass(kw_only=True)
class Context:
    args: argparse.Namespace
    workdir: Path
    shards: list[Shard]
    total: int
    aria2c: str
    sa1b: list[str] | None
    failures: list[str]
    tar: str | None = None


def run_throughput(ctx: Context, scenario: str) -> dict[str, Any]:
    limit = CAP if scenario == "capped" else None
    outdir = ctx.workdir / "out"
    logs = ctx.workdir / "logs"
    logs.mkdir(exist_ok=True)
    shard_dir = ctx.shards[0].path.parent
    results: dict[str, list[RunResult]] = {t: [] for t in ctx.args.tools}
    served: dict[str, list[int]] = {t: [] for t in ctx.args.tools}
    broken: set[str] = set()
    with NginxServer(root=shard_dir, limit_rate=limit, workdir=ctx.workdir / "nginx") as server:
        aria_input, links = write_inputs(ctx.workdir, server, ctx.shards)
        # The first run after a change of workload is often 20-40% slower here (the kernel
        # recycling the page cache of the previous output): one unmeasured run absorbs it.
        for warm in range(ctx.args.warmup):
            tool = make_tool(
                ctx, ctx.args.tools[0], aria_input=aria_input, links=links, outdir=outdir
            )
            sync_and_clear(outdir)
            result = run_child(
                tool.argv,
                log_path=logs / f"{scenario}-warmup-{warm + 1}.log",
                timeout=ctx.args.timeout,
            )
            log(
                f"{scenario:8s} warm-up ({tool.name}): {ctx.total / result.wall_s / MB:7.1f} MB/s"
                f"{'' if result.exit_code == 0 else f', exit code {result.exit_code}'}"
            )
        for run in range(ctx.args.runs):
            for tool_name in ctx.args.tools:
                if tool_name in broken:
                    continue
                tool = make_tool(ctx, tool_name, aria_input=aria_input, links=links, outdir=outdir)
                sync_and_clear(outdir)
                server.clear_log()
                log_path = logs / f"{scenario}-{tool_name}-{run + 1}.log"
                result = run_child(tool.argv, log_path=log_path, timeout=ctx.args.timeout)
                result.tool = tool_name
                sent = settled_bytes_sent(server, expect_at_least=ctx.total)
                if result.exit_code != 0:
                    msg = (
                        f"{scenario}: {tool_name} exited with {result.exit_code} "
                        f"(command: {shlex.join(tool.argv)}; log: {log_path})"
                    )
                    log("FAILED " + msg + "\n" + log_tail(str(log_path)))
                    ctx.failures.append(msg)
                    broken.add(tool_name)
                    continue
                problems = verify_output(tool.output_dir(outdir), ctx.shards)
                if problems:
                    msg = f"{scenario}: {tool_name} run {run + 1} wrote wrong data: " + "; ".join(
                        problems
                    )
                    log("MISMATCH " + msg)
                    ctx.failures.append(msg)
                    broken.add(tool_name)
                    continue
                results[tool_name].append(result)
                served[tool_name].append(sent)
                log(
                    f"{scenario:8s} {tool_name:7s} run {run + 1}/{ctx.args.runs}: "
                    f"{ctx.total / result.wall_s / MB:7.1f} MB/s, "
                    f"{result.cpu_s / (ctx.total / GB):5.2f} CPU s/GB, "
                    f"{result.maxrss_kib / 1024:6.1f} MB RSS, served/size {sent / ctx.total:.3f}"
                )
    sync_and_clear(outdir)
    return summarize(ctx, scenario, limit, results, served)


def summarize(
    ctx: Context,
    scenario: str,
    limit: str | None,
    results: dict[str, list[RunResult]],
    served: dict[str, list[int]],
) -> dict[str, Any]:
    tools: dict[str, Any] = {}
    for name, runs in results.items():
        if not runs:
            tools[name] = {"runs": [], "failed": True}
            continue
        speeds = [ctx.total / r.wall_s / MB for r in runs]
        cpu = [r.cpu_s / (ctx.total / GB) for r in runs]
        tools[name] = {
            "failed": False,
            "mb_s_median": statistics.median(speeds),
            "cpu_s_per_gb_median": statistics.median(cpu),
            "peak_rss_mb": max(r.maxrss_kib for r in runs) / 1024,
            "served_over_size_median": statistics.median(s / ctx.total for s in served[name]),
            "runs": [
                {
                    **dataclasses.asdict(r),
                    "mb_s": ctx.total / r.wall_s / MB,
                    "cpu_s_per_gb": r.cpu_s / (ctx.total / GB),
                    "served_bytes": s,
                }
                for r, s in zip(runs, served[name], strict=True)
            ],
        }
    ratio: dict[str, float] = {}
    a, s = tools.get("aria2c"), tools.get("sa1b")
    if a and s and not a["failed"] and not s["failed"]:
        ratio = {
            "mb_s": s["mb_s_median"] / a["mb_s_median"],
            "cpu_s_per_gb": s["cpu_s_per_gb_median"] / a["cpu_s_per_gb_median"],
            "peak_rss_mb": s["peak_rss_mb"] / a["peak_rss_mb"],
        }
    return {"limit_rate": limit, "tools": tools, "ratio_sa1b_over_aria2c": ratio}


def make_tool(ctx: Context, name: str, *, aria_input: Path, links: Path, outdir: Path) -> Tool:
    if name == "aria2c":
        return aria2c_tool(ctx.aria2c, input_file=aria_input, outdir=outdir, resume=False)
    if ctx.sa1b is None:
        raise BenchError("no sa1b executable (install the package or pass --sa1b CMD)")
    return sa1b_tool(ctx.sa1b, links=links, outdir=outdir)


def run_kill(ctx: Context) -> dict[str, Any]:
    outdir = ctx.workdir / "out"
    logs = ctx.workdir / "logs"
    logs.mkdir(exist_ok=True)
    shard_dir = ctx.shards[0].path.parent
    threshold = int(ctx.total * ctx.args.kill_at)
    report: dict[str, Any] = {"limit_rate": CAP, "kill_at": ctx.args.kill_at, "tools": {}}
    with NginxServer(root=shard_dir, limit_rate=CAP, workdir=ctx.workdir / "nginx") as server:
        aria_input, links = write_inputs(ctx.workdir, server, ctx.shards)
        for tool_name in ctx.args.tools:
            if tool_name == "aria2c":
                tool = aria2c_tool(ctx.aria2c, input_file=aria_input, outdir=outdir, resume=True)
            else:
                tool = make_tool(ctx, tool_name, aria_input=aria_input, links=links, outdir=outdir)
            sync_and_clear(outdir)
            server.clear_log()
            seen = {"bytes": 0}

            def half_on_disk(seen: dict[str, int] = seen) -> bool:
                seen["bytes"] = bytes_on_disk(outdir)
                return seen["bytes"] >= threshold

            first = run_child(
                tool.argv,
                log_path=logs / f"kill-{tool_name}-1.log",
                timeout=ctx.args.timeout,
                stop_when=half_on_disk,
            )
            entry: dict[str, Any] = {
                "killed": first.killed,
                "killed_after_s": first.wall_s,
                "bytes_on_disk_at_kill": seen["bytes"],
            }
            if not first.killed:
                how = "finished" if first.exit_code == 0 else f"failed (exit {first.exit_code})"
                msg = (
                    f"kill: {tool_name} {how} before {ctx.args.kill_at:.0%} of the bytes were "
                    f"on disk (command: {shlex.join(tool.argv)}; log: {first.log_path})"
                )
                log("FAILED " + msg + "\n" + log_tail(first.log_path))
                ctx.failures.append(msg)
                report["tools"][tool_name] = entry
                continue
            second = run_child(
                tool.argv, log_path=logs / f"kill-{tool_name}-2.log", timeout=ctx.args.timeout
            )
            sent = settled_bytes_sent(server, expect_at_least=ctx.total)
            entry.update(
                rerun_exit_code=second.exit_code,
                rerun_s=second.wall_s,
                served_bytes=sent,
                total_bytes=ctx.total,
                served_over_size=sent / ctx.total,
                cpu_s=first.cpu_s + second.cpu_s,
            )
            if second.exit_code != 0:
                msg = (
                    f"kill: {tool_name} rerun exited with {second.exit_code} "
                    f"(command: {shlex.join(tool.argv)}; log: {second.log_path})"
                )
                log("FAILED " + msg + "\n" + log_tail(second.log_path))
                ctx.failures.append(msg)
            else:
                problems = verify_output(tool.output_dir(outdir), ctx.shards)
                entry["verified"] = not problems
                entry["problems"] = problems
                if problems:
                    msg = f"kill: {tool_name} wrote wrong data after resume: " + "; ".join(problems)
                    log("MISMATCH " + msg)
                    ctx.failures.append(msg)
            log(
                f"kill     {tool_name:7s}: killed at {seen['bytes'] / ctx.total:.0%} on disk "
                f"after {first.wall_s:.1f} s; rerun {second.wall_s:.1f} s; "
                f"served/size {sent / ctx.total:.3f}"
            )
            report["tools"][tool_name] = entry
    sync_and_clear(outdir)
    return report


EXTRACT_LABELS = {"aria2c": "aria2c+tar", "sa1b": "sa1b"}


def combine_steps(label: str, steps: list[RunResult]) -> RunResult:
    """One result for a pipeline of processes run one after the other: wall and CPU add up
    (wall as each launcher measured it, fork to reap), peak RSS is the largest."""
    failed = next((r for r in steps if r.exit_code != 0), None)
    return RunResult(
        tool=label,
        exit_code=failed.exit_code if failed else 0,
        wall_s=sum(r.wall_s for r in steps),
        user_s=sum(r.user_s for r in steps),
        sys_s=sum(r.sys_s for r in steps),
        maxrss_kib=max(r.maxrss_kib for r in steps),
        children_cpu_s=sum(r.children_cpu_s for r in steps),
        log_path=(failed or steps[0]).log_path,
    )


def run_extract_pipeline(
    ctx: Context, tool_name: str, *, aria_input: Path, links: Path, outdir: Path, tag: str
) -> tuple[RunResult, list[RunResult], list[str]]:
    """Run one tool's whole download-and-extract pipeline into ``outdir``.

    aria2c: aria2c (capped-scenario flags) into OUT, then, once it is done, one
    ``tar -xf OUT/NAME -C OUT/<stem>`` per shard, in order (the tars stay). sa1b: one
    ``sa1b download LINKS -o OUT --quiet`` (extraction on, tars not kept).
    Returns (combined result, each process's result, argv of the last process run).
    Raises BenchError when a process outlives ``--timeout``.
    """
    logs = ctx.workdir / "logs"
    if tool_name == "aria2c":
        argv = aria2c_tool(ctx.aria2c, input_file=aria_input, outdir=outdir, resume=False).argv
        steps = [run_child(argv, log_path=logs / f"{tag}-aria2c.log", timeout=ctx.args.timeout)]
        if steps[0].exit_code == 0:
            assert ctx.tar is not None
            for shard in ctx.shards:
                stem = shard_stem(shard.name)
                dest = outdir / stem
                dest.mkdir(exist_ok=True)  # what `mkdir -p` before `tar -C` does
                argv = tar_argv(ctx.tar, outdir / shard.name, dest)
                step = run_child(
                    argv, log_path=logs / f"{tag}-tar-{stem}.log", timeout=ctx.args.timeout
                )
                steps.append(step)
                if step.exit_code != 0:
                    break
        return combine_steps(EXTRACT_LABELS[tool_name], steps), steps, argv
    if ctx.sa1b is None:
        raise BenchError("no sa1b executable (install the package or pass --sa1b CMD)")
    argv = sa1b_tool(ctx.sa1b, links=links, outdir=outdir, extract=True).argv
    result = run_child(argv, log_path=logs / f"{tag}-sa1b.log", timeout=ctx.args.timeout)
    result.tool = "sa1b"
    return result, [result], argv


def run_extract(ctx: Context) -> dict[str, Any]:
    if any(s.members is None for s in ctx.shards):
        raise BenchError(
            "extract: the shards are not tars (sa1b.cdn.synth.make_dataset is missing, so the "
            "random-content fallback was used); nothing to extract"
        )
    outdir = ctx.workdir / "out"
    logs = ctx.workdir / "logs"
    logs.mkdir(exist_ok=True)
    shard_dir = ctx.shards[0].path.parent
    shard_names = {s.name for s in ctx.shards}
    allowed: dict[str, Callable[[str], bool]] = {
        # aria2c's downloads stay in OUT, as a user's `aria2c -d OUT` then `tar -x` leaves them
        "aria2c": lambda rel: rel in shard_names,
        # sa1b: its state folder and nothing else
        "sa1b": lambda rel: rel.split("/", 1)[0] == STATE_DIR,
    }
    runs: dict[str, list[dict[str, Any]]] = {t: [] for t in ctx.args.tools}
    failed_runs: dict[str, list[dict[str, Any]]] = {t: [] for t in ctx.args.tools}
    broken: set[str] = set()

    def describe(result: RunResult, served: int, peak: int) -> str:
        return (
            f"{ctx.total / result.wall_s / MB:7.1f} MB/s, "
            f"{result.cpu_s / (ctx.total / GB):5.2f} CPU s/GB, "
            f"{result.maxrss_kib / 1024:6.1f} MB RSS, peak disk {peak / MB:6.0f} MB, "
            f"served/size {served / ctx.total:.3f}"
        )

    with NginxServer(root=shard_dir, limit_rate=CAP, workdir=ctx.workdir / "nginx") as server:
        aria_input, links = write_inputs(ctx.workdir, server, ctx.shards)
        for warm in range(ctx.args.warmup):
            tool_name = ctx.args.tools[0]
            sync_and_clear(outdir)
            try:
                result, _steps, _argv = run_extract_pipeline(
                    ctx,
                    tool_name,
                    aria_input=aria_input,
                    links=links,
                    outdir=outdir,
                    tag=f"extract-warmup-{warm + 1}",
                )
            except BenchError as exc:
                log(f"extract  warm-up ({EXTRACT_LABELS[tool_name]}): {exc}")
                continue
            log(
                f"extract  warm-up ({EXTRACT_LABELS[tool_name]}): "
                f"{ctx.total / result.wall_s / MB:7.1f} MB/s"
                f"{'' if result.exit_code == 0 else f', exit code {result.exit_code}'}"
            )
        for run in range(ctx.args.runs):
            for tool_name in ctx.args.tools:
                if tool_name in broken:
                    continue
                label = EXTRACT_LABELS[tool_name]
                sync_and_clear(outdir)
                server.clear_log()
                tag = f"extract-{run + 1}"
                try:
                    started = time.monotonic()
                    with DiskSampler(outdir) as disk:
                        result, steps, argv = run_extract_pipeline(
                            ctx,
                            tool_name,
                            aria_input=aria_input,
                            links=links,
                            outdir=outdir,
                            tag=tag,
                        )
                    outer_wall = time.monotonic() - started
                except BenchError as exc:
                    msg = f"extract: {label} run {run + 1}: {exc}"
                    log("FAILED " + msg)
                    ctx.failures.append(msg)
                    broken.add(tool_name)
                    continue
                sent = settled_bytes_sent(server, expect_at_least=ctx.total)
                record: dict[str, Any] = {
                    **dataclasses.asdict(result),
                    "mb_s": ctx.total / result.wall_s / MB,
                    "cpu_s_per_gb": result.cpu_s / (ctx.total / GB),
                    "outer_wall_s": outer_wall,
                    "served_bytes": sent,
                    "peak_disk_bytes": disk.peak,
                    "final_disk_bytes": allocated_bytes(outdir),
                    "disk_samples": disk.samples,
                    "steps": [{**dataclasses.asdict(r)} for r in steps],
                }
                if result.exit_code != 0:
                    msg = (
                        f"extract: {label} run {run + 1} exited with {result.exit_code} "
                        f"(command: {shlex.join(argv)}; log: {result.log_path})"
                    )
                    log("FAILED " + msg + "\n" + log_tail(result.log_path))
                    ctx.failures.append(msg)
                    failed_runs[tool_name].append({**record, "problems": [msg]})
                    broken.add(tool_name)
                    continue
                problems, warnings = verify_extracted(
                    outdir, ctx.shards, allowed=allowed[tool_name]
                )
                record["warnings"] = warnings
                for warning in warnings:
                    log(f"warning: extract: {label}: {warning}")
                if problems:
                    msg = (
                        f"extract: {label} run {run + 1} ({describe(result, sent, disk.peak)}) "
                        "left wrong output: " + "; ".join(problems)
                    )
                    log("MISMATCH " + msg)
                    ctx.failures.append(msg)
                    failed_runs[tool_name].append({**record, "problems": problems})
                    broken.add(tool_name)
                    continue
                runs[tool_name].append(record)
                log(
                    f"extract  {label:10s} run {run + 1}/{ctx.args.runs}: "
                    + describe(result, sent, disk.peak)
                )
    sync_and_clear(outdir)
    return summarize_extract(ctx, runs, failed_runs)


def summarize_extract(
    ctx: Context,
    runs: dict[str, list[dict[str, Any]]],
    failed_runs: dict[str, list[dict[str, Any]]],
) -> dict[str, Any]:
    extracted = sum(size for s in ctx.shards for size, _md5 in (s.members or {}).values())
    tools: dict[str, Any] = {}
    for tool_name, done in runs.items():
        label = EXTRACT_LABELS[tool_name]
        entry: dict[str, Any] = {
            "failed": not done,
            "runs": done,
            "failed_runs": failed_runs[tool_name],
        }
        if done:
            entry.update(
                mb_s_median=statistics.median(r["mb_s"] for r in done),
                cpu_s_per_gb_median=statistics.median(r["cpu_s_per_gb"] for r in done),
                peak_rss_mb=max(r["maxrss_kib"] for r in done) / 1024,
                peak_disk_mb=max(r["peak_disk_bytes"] for r in done) / MB,
                served_over_size_median=statistics.median(
                    r["served_bytes"] / ctx.total for r in done
                ),
            )
        if tool_name == "sa1b":
            # All shards are in flight at once; the tars are not kept.
            entry["shards_in_flight"] = len(ctx.shards)
            bound = extracted + IN_FLIGHT_SLACK * ctx.total
        else:
            # aria2c -j4 has four in flight, but every tar stays until the end.
            entry["shards_in_flight"] = min(4, len(ctx.shards))
            bound = extracted + ctx.total
        entry["disk_bound_mb"] = bound / MB
        if done:
            entry["peak_disk_within_bound"] = entry["peak_disk_mb"] <= entry["disk_bound_mb"]
        tools[label] = entry
    ratio: dict[str, float] = {}
    a, s = tools.get("aria2c+tar"), tools.get("sa1b")
    if a and s and not a["failed"] and not s["failed"]:
        ratio = {
            "mb_s": s["mb_s_median"] / a["mb_s_median"],
            "cpu_s_per_gb": s["cpu_s_per_gb_median"] / a["cpu_s_per_gb_median"],
            "peak_rss_mb": s["peak_rss_mb"] / a["peak_rss_mb"],
            "peak_disk_mb": s["peak_disk_mb"] / a["peak_disk_mb"],
        }
    return {
        "limit_rate": CAP,
        "shards_bytes": ctx.total,
        "extracted_bytes": extracted,
        "members": sum(len(s.members or {}) for s in ctx.shards),
        "in_flight_slack": IN_FLIGHT_SLACK,
        "tools": tools,
        "ratio_sa1b_over_aria2c_tar": ratio,
    }


# -- output --------------------------------------------------------------------------------------


def render_table(results: dict[str, Any]) -> str:
    head = ("scenario", "tool", "MB/s", "CPU s/GB", "peak RSS MB", "peak disk MB", "sa1b/aria2c")
    rows: list[tuple[str, ...]] = [head]
    for scenario in ("capped", "uncapped"):
        if scenario not in results:
            continue
        data = results[scenario]
        ratio = data["ratio_sa1b_over_aria2c"]
        for tool, t in data["tools"].items():
            if t["failed"]:
                rows.append((scenario, tool, "FAILED", "-", "-", "-", "-"))
                continue
            rel = ""
            if tool == "sa1b" and ratio:
                rel = f"x{ratio['mb_s']:.2f} speed, x{ratio['cpu_s_per_gb']:.2f} CPU"
            rows.append(
                (
                    scenario,
                    tool,
                    f"{t['mb_s_median']:.0f}",
                    f"{t['cpu_s_per_gb_median']:.2f}",
                    f"{t['peak_rss_mb']:.1f}",
                    "",
                    rel,
                )
            )
    if "extract" in results:
        data = results["extract"]
        ratio = data["ratio_sa1b_over_aria2c_tar"]
        for tool, t in data["tools"].items():
            if t["failed"]:
                rows.append(("extract", tool, "FAILED", "-", "-", "-", "-"))
                continue
            rel = ""
            if tool == "sa1b" and ratio:
                rel = (
                    f"x{ratio['mb_s']:.2f} speed, x{ratio['cpu_s_per_gb']:.2f} CPU, "
                    f"x{ratio['peak_disk_mb']:.2f} disk"
                )
            rows.append(
                (
                    "extract",
                    tool,
                    f"{t['mb_s_median']:.0f}",
                    f"{t['cpu_s_per_gb_median']:.2f}",
                    f"{t['peak_rss_mb']:.1f}",
                    f"{t['peak_disk_mb']:.0f}",
                    rel,
                )
            )
    widths = [max(len(r[i]) for r in rows) for i in range(len(head))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    if "kill" in results:
        lines.append("")
        lines.append("kill (SIGKILL at ~half, then rerun): bytes served by nginx / data size")
        for tool, t in results["kill"]["tools"].items():
            if not t.get("killed"):
                lines.append(f"  {tool:7s} not killed (finished too early)")
            elif "served_over_size" not in t:
                lines.append(f"  {tool:7s} FAILED")
            else:
                ok = "verified" if t.get("verified") else "NOT VERIFIED"
                lines.append(
                    f"  {tool:7s} {t['served_over_size']:.3f}  "
                    f"(killed at {t['bytes_on_disk_at_kill'] / t['total_bytes']:.0%}, "
                    f"rerun {t['rerun_s']:.1f} s, {ok})"
                )
    if "extract" in results:
        data = results["extract"]
        extracted, shards = data["extracted_bytes"] / MB, data["shards_bytes"] / MB
        lines.append("")
        lines.append(
            f"extract: shards {shards:.0f} MB in all, extracted files {extracted:.0f} MB "
            f"({data['members']} members); peak disk use without --keep-tars should be "
            f"<= extracted + {data['in_flight_slack']:g} x the shards in flight"
        )
        for tool, t in data["tools"].items():
            if t["failed"]:
                lines.append(f"  {tool:10s} FAILED")
            elif tool == "sa1b":
                verdict = "ok" if t["peak_disk_within_bound"] else "OVER"
                lines.append(
                    f"  {tool:10s} peak {t['peak_disk_mb']:.0f} MB; bound with all "
                    f"{t['shards_in_flight']} shards in flight: {extracted:.0f} + "
                    f"{data['in_flight_slack']:g} x {shards:.0f} = {t['disk_bound_mb']:.0f} MB "
                    f"({verdict})"
                )
            else:
                lines.append(
                    f"  {tool:10s} peak {t['peak_disk_mb']:.0f} MB; keeps every tar: "
                    f"extracted + shards = {t['disk_bound_mb']:.0f} MB"
                )
    return "\n".join(lines)


def machine_info(aria2c: str) -> dict[str, Any]:
    nginx = "unknown"
    with contextlib.suppress(Exception):
        done = subprocess.run([find_nginx(), "-v"], capture_output=True, text=True, check=False)
        nginx = done.stderr.strip()
    return {
        "cpus": os.cpu_count(),
        "kernel": platform.release(),
        "python": platform.python_version(),
        "nginx": nginx,
        "aria2c": tool_version([aria2c, "--version"]),
    }


# -- CLI -----------------------------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="bench.py",
        description=(
            "Benchmark `sa1b download` against aria2c on synthetic SA-1B shards served by a "
            "private nginx on 127.0.0.1."
        ),
    )
    parser.add_argument(
        "--scenario",
        action="append",
        choices=(*SCENARIOS, "all"),
        help="scenario to run (repeatable; default: all)",
    )
    parser.add_argument(
        "--shards", type=int, default=6, help="number of synthetic shards (default: 6)"
    )
    parser.add_argument(
        "--shard-size",
        type=parse_size,
        default=parse_size("170M"),
        help="bytes per shard, K/M/G are binary (default: 170M)",
    )
    parser.add_argument("--runs", type=int, default=3, help="measured runs per tool (default: 3)")
    parser.add_argument(
        "--workdir",
        type=Path,
        default=Path(__file__).resolve().parent / "work",
        help="scratch dir; generated shards are kept here between invocations "
        "(default: benchmarks/work)",
    )
    parser.add_argument(
        "--tools",
        default=",".join(TOOLS),
        help="comma-separated tools to run (default: aria2c,sa1b)",
    )
    parser.add_argument(
        "--sa1b",
        metavar="CMD",
        help="command that runs the sa1b CLI, split like a shell would "
        "(default: bin/sa1b next to this Python, else sa1b on PATH)",
    )
    parser.add_argument("--aria2c", default="aria2c", help="aria2c binary (default: aria2c)")
    parser.add_argument(
        "--kill-at",
        type=float,
        default=0.5,
        help="kill scenario: SIGKILL when this fraction of the data is on disk (default: 0.5)",
    )
    parser.add_argument(
        "--timeout",
        type=float,
        default=300.0,
        help="give up on a tool run after this many seconds (default: 300)",
    )
    parser.add_argument(
        "--warmup",
        type=int,
        default=1,
        help="unmeasured runs of the first tool before capped/uncapped/extract (default: 1)",
    )
    parser.add_argument("--json-out", type=Path, help="also write all results as JSON to this file")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    chosen = args.scenario or ["all"]
    scenarios = [s for s in SCENARIOS if s in chosen or "all" in chosen]
    args.tools = [t.strip() for t in args.tools.split(",") if t.strip()]
    if not args.tools or any(t not in TOOLS for t in args.tools):
        print(f"bench.py: --tools must be a subset of {','.join(TOOLS)}", file=sys.stderr)
        return 2
    if args.shards < 1 or args.runs < 1 or args.shard_size < 1 or args.warmup < 0:
        print("bench.py: --shards, --runs, --shard-size must be > 0", file=sys.stderr)
        return 2
    if not 0 < args.kill_at < 1:
        print("bench.py: --kill-at must be between 0 and 1", file=sys.stderr)
        return 2
    tar: str | None = None
    if "extract" in scenarios and "aria2c" in args.tools:
        tar = shutil.which("tar")
        if tar is None:
            print("bench.py: the extract scenario needs tar on PATH", file=sys.stderr)
            return 2

    aria2c = shutil.which(args.aria2c) if "aria2c" in args.tools else args.aria2c
    if aria2c is None:
        print(f"bench.py: aria2c not found ({args.aria2c}): apt-get install aria2", file=sys.stderr)
        return 2
    sa1b: list[str] | None = None
    if "sa1b" in args.tools:
        sa1b = shlex.split(args.sa1b) if args.sa1b else default_sa1b_command()
        if not sa1b:
            print(
                "bench.py: no sa1b executable next to this Python nor on PATH; install the "
                "package (pip install -e .), pass --sa1b CMD, or use --tools aria2c",
                file=sys.stderr,
            )
            return 2
        if shutil.which(sa1b[0]) is None:
            print(
                f"bench.py: --sa1b: cannot run {sa1b[0]!r} (not found or not executable)",
                file=sys.stderr,
            )
            return 2
    try:
        find_nginx()
    except FileNotFoundError as exc:
        print(f"bench.py: {exc}", file=sys.stderr)
        return 2

    workdir: Path = args.workdir.resolve()
    workdir.mkdir(parents=True, exist_ok=True)
    try:
        shards = prepare_shards(workdir, count=args.shards, shard_size=args.shard_size)
    except BenchError as exc:
        print(f"bench.py: {exc}", file=sys.stderr)
        return 1
    total = sum(s.size for s in shards)
    ctx = Context(
        args=args,
        workdir=workdir,
        shards=shards,
        total=total,
        aria2c=aria2c,
        sa1b=sa1b,
        failures=[],
        tar=tar,
    )
    results: dict[str, Any] = {}
    started = time.monotonic()
    try:
        for scenario in scenarios:
            log(f"== {scenario}: {len(shards)} shards, {total / MB:.0f} MB in all")
            try:
                if scenario == "kill":
                    results[scenario] = run_kill(ctx)
                elif scenario == "extract":
                    results[scenario] = run_extract(ctx)
                else:
                    results[scenario] = run_throughput(ctx, scenario)
            except BenchError as exc:  # this scenario is lost; the others still run
                ctx.failures.append(str(exc))
                log(f"ERROR {exc}")
    except KeyboardInterrupt:
        log("interrupted")
        return 130

    print(render_table(results))
    if args.json_out:
        document = {
            "machine": machine_info(aria2c),
            "params": {
                "shards": len(shards),
                "shard_size": args.shard_size,
                "total_bytes": total,
                "runs": args.runs,
                "tools": args.tools,
                "generator": "make_dataset" if make_dataset is not None else "fallback",
                "aria2c_argv": aria2c_tool(
                    aria2c, input_file=Path("INPUT"), outdir=Path("OUTDIR"), resume=False
                ).argv,
                "sa1b_argv": (
                    sa1b_tool(sa1b, links=Path("LINKS"), outdir=Path("OUTDIR")).argv
                    if sa1b
                    else None
                ),
                "sa1b_extract_argv": (
                    sa1b_tool(sa1b, links=Path("LINKS"), outdir=Path("OUTDIR"), extract=True).argv
                    if sa1b
                    else None
                ),
                "tar_argv": tar_argv(tar, Path("OUTDIR/NAME"), Path("OUTDIR/STEM"))
                if tar
                else None,
                "elapsed_s": time.monotonic() - started,
            },
            "results": results,
            "failures": ctx.failures,
        }
        args.json_out.parent.mkdir(parents=True, exist_ok=True)
        args.json_out.write_text(json.dumps(document, indent=2) + "\n")
    if ctx.failures:
        print("\nFAILURES:", file=sys.stderr)
        for failure in ctx.failures:
            print(f"  - {failure}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
