#!/usr/bin/env python3
"""Compare ``sa1b download`` with aria2c and curl on synthetic SA-1B shards served by nginx.

Scenarios (``--scenario``, repeatable; default: all but ``kill-http``), HTTPS first:

* ``https``           nginx over TLS (private CA made at start, HTTP/2 offered), uncapped.
* ``https-paced``     the same behind ``benchmarks/pacer.py``: every TCP connection capped at
  ``--per-connection-rate`` (2 MiB/s) across all its requests.
* ``https-paced-rtt`` the same plus ``--delay-ms`` (20 ms) each way: a 40 ms round trip.
* ``kill``     HTTPS, nginx ``limit_rate 8m``; start the tool, SIGKILL it when about half the
  bytes are on disk, rerun the same command to completion; report bytes served by nginx / total
  data size and peak RSS; verify every file. Done for aria2c (``-c``) and sa1b.
* ``capped``   plain HTTP, nginx ``limit_rate 8m`` (8 MiB/s per request), N shards of ~170 MiB.
* ``uncapped`` plain HTTP, no rate limit, same shards.
* ``kill-http`` the kill scenario over plain HTTP (only when asked for).
* ``extract``  plain HTTP, capped; download *and extract* every shard into OUT/<shard_stem>/:
  aria2c (same flags) then one ``tar -xf`` per shard, against ``sa1b download`` with its
  default extraction (tars not kept). Also samples the disk space allocated under OUT every
  ~50 ms and reports the peak.

Tools: ``curl8`` (one curl per file, 8 at most at once: the machine's reference), ``aria2c``
as SA-1B guides configure it (-j4), ``aria2c-best`` (-j16), ``sa1b`` (default flags). All but
extract measure the download alone: sa1b runs there with ``--no-extract``.

For the throughput scenarios and extract the tools alternate (curl8, aria2c, aria2c-best, sa1b,
curl8, ...), ``--runs`` times each; before every run the page cache is synced and the previous
output deleted. Throughput is the median; CPU time (user+sys, including every process the tool
waited for) and peak RSS come from ``os.wait4`` on the child. Every output byte is checked
against the md5 of its source (for extract: of its source tar member); any mismatch (or a tool
failure) makes the script exit 1 after printing what it measured. A "goals" section checks
sa1b's medians against the targets in ``GOALS``; ``--check-goals`` makes a missed one exit 1.

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
import select
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
import urllib.parse
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path, PurePosixPath
from typing import Any

# The loopback servers (nginx, a private CA) live in the repository's ``harness`` package,
# outside the wheel: they are for tests and benchmarks, not for users.
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from harness import certs as _certs
from harness import nginx as _nginx
from harness.certs import make_certificates
from harness.nginx import NginxServer, find_nginx

MakeDataset = Callable[..., Sequence[Any]]


def _load_make_dataset() -> MakeDataset | None:
    """``sa1b.cdn.synth.make_dataset`` if it exists; else the random-content fallback is used."""
    try:
        synth = importlib.import_module("sa1b.cdn.synth")
    except Exception:  # missing, or broken mid-change: the random-content fallback is used
        return None
    found: MakeDataset | None = getattr(synth, "make_dataset", None)
    return found


make_dataset = _load_make_dataset()

TOOLS = ("curl8", "aria2c", "aria2c-best", "sa1b")  # also the order runs alternate in
CAP = "8m"
MB = 1_000_000  # throughput and CPU figures use decimal MB / GB
GB = 1_000_000_000
LINKS_HEADER = "file_name\tcdn_link"
HASH_CHUNK = 8 << 20
POLL_S = 0.02
DISK_SAMPLE_S = 0.05  # extract scenario: how often the space allocated under OUT is sampled
STATE_DIR = ".sa1b"  # sa1b's own bookkeeping folder in OUT (the only extra allowed)
IN_FLIGHT_SLACK = 1.2  # peak disk <= extracted + this x the bytes of the shards in flight


PACER = Path(__file__).resolve().parent / "pacer.py"
CURL_PARALLEL = 8  # curl8: at most this many curl processes at once
PROXY_VARIABLES = frozenset(
    ("http_proxy", "https_proxy", "all_proxy", "no_proxy", "ftp_proxy", "socks_proxy")
)


@dataclasses.dataclass(frozen=True, kw_only=True)
class Spec:
    """What a scenario serves, how, and which tools it can measure."""

    name: str
    kind: str  # "throughput", "kill" or "extract"
    tls: bool  # HTTPS (HTTP/2 offered too) or plain HTTP
    limit_rate: str | None  # nginx limit_rate (per request)
    paced: bool = False  # behind pacer.py, --per-connection-rate per TCP connection
    rtt: bool = False  # and --delay-ms each way
    tools: tuple[str, ...]  # the tools it can run
    default_tools: tuple[str, ...]  # those it runs without --tools


KILL_TOOLS = ("aria2c", "aria2c-best", "sa1b")
DEFAULT_PAIR = ("aria2c", "sa1b")
SPECS: dict[str, Spec] = {
    spec.name: spec
    for spec in (
        Spec(name="https", kind="throughput", tls=True, limit_rate=None, tools=TOOLS,
             default_tools=TOOLS),
        Spec(name="https-paced", kind="throughput", tls=True, limit_rate=None, paced=True,
             tools=TOOLS, default_tools=TOOLS),
        Spec(name="https-paced-rtt", kind="throughput", tls=True, limit_rate=None, paced=True,
             rtt=True, tools=TOOLS, default_tools=TOOLS),
        Spec(name="kill", kind="kill", tls=True, limit_rate=CAP, tools=KILL_TOOLS,
             default_tools=DEFAULT_PAIR),
        Spec(name="capped", kind="throughput", tls=False, limit_rate=CAP, tools=TOOLS,
             default_tools=DEFAULT_PAIR),
        Spec(name="uncapped", kind="throughput", tls=False, limit_rate=None, tools=TOOLS,
             default_tools=DEFAULT_PAIR),
        Spec(name="kill-http", kind="kill", tls=False, limit_rate=CAP, tools=KILL_TOOLS,
             default_tools=DEFAULT_PAIR),
        Spec(name="extract", kind="extract", tls=False, limit_rate=CAP, tools=DEFAULT_PAIR,
             default_tools=DEFAULT_PAIR),
    )
}  # fmt: skip
SCENARIOS = tuple(SPECS)  # table and run order: HTTPS first
DEFAULT_SCENARIOS = tuple(name for name in SCENARIOS if name != "kill-http")


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
    env: dict[str, str] = dataclasses.field(default_factory=dict)  # added to the environment


def aria2c_tool(
    binary: str,
    *,
    input_file: Path,
    outdir: Path,
    resume: bool,
    jobs: int = 4,
    ca: Path | None = None,
    name: str = "aria2c",
) -> Tool:
    """aria2c as SA-1B guides configure it (``-j4``; ``aria2c-best`` is the same with -j16)."""
    argv = [
        binary,
        "-x16",
        "-s16",
        f"-j{jobs}",
        "-k1M",
        "--file-allocation=falloc",
        "--auto-file-renaming=false",
        "--allow-overwrite=true",
        "--console-log-level=warn",
        "--summary-interval=0",
        "--download-result=hide",
    ]
    if ca is not None:
        argv.append(f"--ca-certificate={ca}")
    if resume:
        argv.append("-c")
    argv += ["-d", str(outdir), "-i", str(input_file)]
    return Tool(name=name, argv=argv, output_dir=lambda out: out)


def curl8_tool(xargs: str, curl: str, *, curl_list: Path, ca: Path | None) -> Tool:
    """One ``curl -o OUT/NAME URL`` per file, at most 8 at once: ``xargs -0 -P8 -n2``.

    xargs waits for every curl, so its rusage (from ``os.wait4``) includes theirs. HTTP/1.1,
    like aria2c and sa1b: it is the faster choice for curl here. Measured over HTTPS, 6 x 170 MiB,
    4 alternating runs, medians: HTTP/1.1 1244 MB/s at 1.12 CPU s/GB, curl's default (HTTP/2,
    offered by nginx) 1077 MB/s at 1.30; this row is the machine's limit, so the faster one.
    """
    argv = [xargs, "-0", "-P", str(CURL_PARALLEL), "-n", "2", "-a", str(curl_list), curl]
    argv += ["--silent", "--show-error", "--fail", "--http1.1"]
    if ca is not None:
        argv += ["--cacert", str(ca)]
    argv.append("-o")  # xargs appends OUT/NAME URL
    return Tool(name="curl8", argv=argv, output_dir=lambda out: out)


def sa1b_tool(
    command: list[str],
    *,
    links: Path,
    outdir: Path,
    extract: bool = False,
    extra: Sequence[str] = (),
    ca: Path | None = None,
    ca_bundle_option: bool = False,
) -> Tool:
    """``sa1b download``; without ``extract`` it runs with ``--no-extract`` (tars in OUT/tars/).

    With ``ca`` the private CA reaches sa1b through ``SSL_CERT_FILE`` (and ``--ca-bundle`` when
    its ``--help`` lists that option). ``extra`` (``--sa1b-args``) goes last.
    """
    argv = [*command, "download", str(links), "-o", str(outdir), "--quiet"]
    env: dict[str, str] = {}
    if ca is not None:
        env["SSL_CERT_FILE"] = str(ca)
        if ca_bundle_option:
            argv += ["--ca-bundle", str(ca)]
    if not extract:
        argv.append("--no-extract")
    argv += list(extra)
    if extract:
        return Tool(name="sa1b", argv=argv, output_dir=lambda out: out, env=env)
    return Tool(name="sa1b", argv=argv, output_dir=lambda out: out / "tars", env=env)


def tar_argv(tar: str, archive: Path, dest: Path) -> list[str]:
    """How a user extracts one shard: ``tar -xf SHARD -C OUT/<stem>``."""
    return [tar, "-xf", str(archive), "-C", str(dest)]


def url_for(base_url: str, name: str) -> str:
    return f"{base_url}/{urllib.parse.quote(name)}"


@dataclasses.dataclass(frozen=True, kw_only=True)
class Inputs:
    aria2c: Path  # aria2c -i file
    links: Path  # official-format links file for sa1b
    curl: Path  # NUL-separated OUT/NAME, URL pairs for xargs


def write_inputs(workdir: Path, base_url: str, shards: list[Shard], outdir: Path) -> Inputs:
    """Write the aria2c input file, the official-format links file and curl8's list."""
    aria_input = workdir / "aria2c-input.txt"
    aria_input.write_text(
        "".join(f"{url_for(base_url, s.name)}\n  out={s.name}\n" for s in shards),
        encoding="utf-8",
    )
    links = workdir / "sa1b_links.txt"
    rows = [LINKS_HEADER] + [f"{s.name}\t{url_for(base_url, s.name)}" for s in shards]
    links.write_bytes(("\n".join(rows) + "\n").encode("utf-8"))
    curl_list = workdir / "curl8-list.bin"
    curl_list.write_bytes(
        b"".join(f"{outdir / s.name}\0{url_for(base_url, s.name)}\0".encode() for s in shards)
    )
    return Inputs(aria2c=aria_input, links=links, curl=curl_list)


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


def child_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    """The environment tools run in: ours without proxy variables (every URL is loopback),
    plus ``extra``."""
    env = {k: v for k, v in os.environ.items() if k.lower() not in PROXY_VARIABLES}
    env.update(extra or {})
    return env


def _proc_stat(pid: int) -> list[str] | None:
    """Fields of /proc/PID/stat after the command name (state first), or None."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None


def _group_members(pgid: int) -> list[int]:
    members = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            fields = _proc_stat(int(entry))
            if fields is not None and int(fields[2]) == pgid:
                members.append(int(entry))
    return members


CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def process_cpu_s(pid: int | None, *, with_children: bool = False) -> float:
    """User + system CPU seconds of ``pid`` so far (and of its live children), from /proc."""
    if pid is None:
        return 0.0
    pids = [pid]
    if with_children:
        with contextlib.suppress(OSError, ValueError):
            text = Path(f"/proc/{pid}/task/{pid}/children").read_text()
            pids += [int(child) for child in text.split()]
    total = 0
    for one in pids:
        fields = _proc_stat(one)
        if fields is not None:
            total += int(fields[11]) + int(fields[12])  # utime, stime
    return total / CLOCK_TICKS


def run_child(
    argv: list[str],
    *,
    log_path: Path,
    timeout: float,
    stop_when: Callable[[], bool] | None = None,
    env: dict[str, str] | None = None,
) -> RunResult:
    """Run ``argv`` (through the launcher) and return its own rusage from ``os.wait4``.

    ``stop_when`` is polled while the tool runs; when it returns True every process of the
    group but the launcher gets SIGKILL, so that the launcher still reaps the tool and reports
    its rusage (the result then has ``killed=True``). ``env`` is added to :func:`child_env`.
    """
    report = log_path.with_suffix(".rusage")
    report.unlink(missing_ok=True)
    launcher = [sys.executable, "-I", "-S", "-c", _LAUNCHER, str(report), *argv]
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    with open(log_path, "wb") as out:
        started = time.monotonic()
        proc = subprocess.Popen(
            launcher,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=out,
            start_new_session=True,
            env=child_env(env),
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
                killed = True
                for member in _group_members(proc.pid):
                    if member != proc.pid:
                        with contextlib.suppress(ProcessLookupError):
                            os.kill(member, signal.SIGKILL)
                deadline = time.monotonic() + 10
                while True:  # the launcher reaps the tool and writes its report
                    pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
                    if pid:
                        break
                    if time.monotonic() > deadline:
                        os.killpg(proc.pid, signal.SIGKILL)
                        _, status, usage = os.wait4(proc.pid, 0)
                        break
                    time.sleep(0.005)
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
    try:
        fields = report.read_text().split()
        user, system, maxrss, tool_wall = (
            float(fields[0]),
            float(fields[1]),
            int(fields[2]),
            float(fields[3]),
        )
        if not killed:
            wall = tool_wall
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
    aria2c: str | None
    sa1b: list[str] | None
    failures: list[str]
    tools: dict[str, list[str]]  # scenario -> tools it runs, in TOOLS order
    tar: str | None = None
    curl: str | None = None
    xargs: str | None = None
    ca: Path | None = None  # the private CA (HTTPS scenarios)
    tls: tuple[Path, Path] | None = None  # nginx's certificate chain and key
    sa1b_ca_bundle: bool = False  # `sa1b download --help` lists --ca-bundle


class Pacer:
    """``benchmarks/pacer.py`` as a child process, relaying to ``upstream_port``."""

    def __init__(self, *, upstream_port: int, rate: int, delay_ms: float, log_path: Path) -> None:
        self.argv = [
            sys.executable,
            "-I",
            str(PACER),
            "--upstream",
            f"127.0.0.1:{upstream_port}",
            "--rate",
            str(rate),
            "--delay-ms",
            f"{delay_ms:g}",
        ]
        self.log_path = log_path
        self.port = 0
        self.proc: subprocess.Popen[bytes] | None = None

    def __enter__(self) -> Pacer:
        with open(self.log_path, "wb") as err:
            self.proc = subprocess.Popen(
                self.argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=err
            )
        assert self.proc.stdout is not None
        ready, _, _ = select.select([self.proc.stdout], [], [], 10.0)
        line = self.proc.stdout.readline() if ready else b""
        if not line.strip().isdigit():
            self.__exit__()
            raise BenchError(
                f"pacer did not start ({shlex.join(self.argv)}):\n{log_tail(str(self.log_path))}"
            )
        self.port = int(line)
        return self

    def cpu_s(self) -> float:
        return process_cpu_s(self.proc.pid if self.proc else None)

    def __exit__(self, *exc: object) -> None:
        proc, self.proc = self.proc, None
        if proc is None:
            return
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        if proc.stdout is not None:
            proc.stdout.close()


@dataclasses.dataclass(kw_only=True)
class Endpoint:
    """What the tools are pointed at in one scenario."""

    server: NginxServer
    base_url: str
    inputs: Inputs
    pacer: Pacer | None

    def cpu_s(self) -> tuple[float, float]:
        """CPU seconds so far of nginx (master and workers) and of the pacer."""
        return (
            process_cpu_s(self.server.pid, with_children=True),
            self.pacer.cpu_s() if self.pacer else 0.0,
        )


@contextlib.contextmanager
def serve(ctx: Context, spec: Spec, outdir: Path) -> Iterator[Endpoint]:
    """nginx for ``spec`` (TLS with HTTP/2 offered, rate limit), behind the pacer if paced."""
    tls = ctx.tls if spec.tls else None
    if spec.tls and tls is None:
        raise BenchError(f"{spec.name}: no certificate (openssl missing?)")
    shard_dir = ctx.shards[0].path.parent
    logs = ctx.workdir / "logs"
    logs.mkdir(exist_ok=True)
    with NginxServer(
        root=shard_dir,
        limit_rate=spec.limit_rate,
        workdir=ctx.workdir / "nginx",
        tls=tls,
        http2=tls is not None,
    ) as server:
        if not spec.paced:
            inputs = write_inputs(ctx.workdir, server.base_url, ctx.shards, outdir)
            yield Endpoint(server=server, base_url=server.base_url, inputs=inputs, pacer=None)
            return
        delay = ctx.args.delay_ms if spec.rtt else 0.0
        with Pacer(
            upstream_port=server.port,
            rate=ctx.args.per_connection_rate,
            delay_ms=delay,
            log_path=logs / f"{spec.name}-pacer.log",
        ) as pacer:
            base_url = f"{server.scheme}://127.0.0.1:{pacer.port}"
            inputs = write_inputs(ctx.workdir, base_url, ctx.shards, outdir)
            log(
                f"{spec.name}: pacer on port {pacer.port}, "
                f"{ctx.args.per_connection_rate / 2**20:g} MiB/s per TCP connection, "
                f"{delay:g} ms each way"
            )
            yield Endpoint(server=server, base_url=base_url, inputs=inputs, pacer=pacer)


def make_tool(
    ctx: Context, name: str, spec: Spec, inputs: Inputs, outdir: Path, *, resume: bool = False
) -> Tool:
    ca = ctx.ca if spec.tls else None
    if name in ("aria2c", "aria2c-best"):
        assert ctx.aria2c is not None
        return aria2c_tool(
            ctx.aria2c,
            input_file=inputs.aria2c,
            outdir=outdir,
            resume=resume,
            jobs=16 if name == "aria2c-best" else 4,
            ca=ca,
            name=name,
        )
    if name == "curl8":
        assert ctx.xargs is not None and ctx.curl is not None
        return curl8_tool(ctx.xargs, ctx.curl, curl_list=inputs.curl, ca=ca)
    if ctx.sa1b is None:
        raise BenchError("no sa1b executable (install the package or pass --sa1b CMD)")
    return sa1b_tool(
        ctx.sa1b,
        links=inputs.links,
        outdir=outdir,
        extra=ctx.args.sa1b_args,
        ca=ca,
        ca_bundle_option=ctx.sa1b_ca_bundle,
    )


def describe_run(
    ctx: Context, result: RunResult, sent: int, server_cpu: float, pacer_cpu: float, *, paced: bool
) -> str:
    gigabytes = ctx.total / GB
    text = (
        f"{ctx.total / result.wall_s / MB:7.1f} MB/s, {result.cpu_s / gigabytes:5.2f} CPU s/GB, "
        f"{result.maxrss_kib / 1024:6.1f} MB RSS, served/size {sent / ctx.total:.3f}; "
        f"nginx {server_cpu / gigabytes:4.2f}"
    )
    if paced:
        text += f", pacer {pacer_cpu / gigabytes:4.2f}"
    return text + " CPU s/GB"


def run_throughput(ctx: Context, spec: Spec) -> dict[str, Any]:
    scenario = spec.name
    tools = ctx.tools[scenario]
    outdir = ctx.workdir / "out"
    logs = ctx.workdir / "logs"
    results: dict[str, list[RunResult]] = {t: [] for t in tools}
    served: dict[str, list[int]] = {t: [] for t in tools}
    side_cpu: dict[str, list[tuple[float, float]]] = {t: [] for t in tools}
    broken: set[str] = set()
    with serve(ctx, spec, outdir) as endpoint:
        server = endpoint.server
        # The first run after a change of workload is often 20-40% slower here (the kernel
        # recycling the page cache of the previous output): one unmeasured run absorbs it,
        # made by the first tool other than curl8 (which is slow behind the pacer).
        warm_name = next((t for t in tools if t != "curl8"), tools[0])
        for warm in range(ctx.args.warmup):
            tool = make_tool(ctx, warm_name, spec, endpoint.inputs, outdir)
            sync_and_clear(outdir)
            result = run_child(
                tool.argv,
                log_path=logs / f"{scenario}-warmup-{warm + 1}.log",
                timeout=ctx.args.timeout,
                env=tool.env,
            )
            log(
                f"{scenario:8s} warm-up ({tool.name}): {ctx.total / result.wall_s / MB:7.1f} MB/s"
                f"{'' if result.exit_code == 0 else f', exit code {result.exit_code}'}"
            )
        for run in range(ctx.args.runs):
            for tool_name in tools:
                if tool_name in broken:
                    continue
                tool = make_tool(ctx, tool_name, spec, endpoint.inputs, outdir)
                sync_and_clear(outdir)
                server.clear_log()
                log_path = logs / f"{scenario}-{tool_name}-{run + 1}.log"
                server_before, pacer_before = endpoint.cpu_s()
                try:
                    result = run_child(
                        tool.argv, log_path=log_path, timeout=ctx.args.timeout, env=tool.env
                    )
                except BenchError as exc:  # timed out: this tool is out, the others go on
                    msg = f"{scenario}: {tool_name}: {exc}"
                    log("FAILED " + msg + "\n" + log_tail(str(log_path)))
                    ctx.failures.append(msg)
                    broken.add(tool_name)
                    continue
                server_after, pacer_after = endpoint.cpu_s()
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
                cpu = (server_after - server_before, pacer_after - pacer_before)
                side_cpu[tool_name].append(cpu)
                log(
                    f"{scenario:8s} {tool_name:11s} run {run + 1}/{ctx.args.runs}: "
                    + describe_run(ctx, result, sent, *cpu, paced=spec.paced)
                )
    sync_and_clear(outdir)
    return summarize(ctx, spec, results, served, side_cpu)


REFERENCES = ("aria2c", "aria2c-best", "curl8")  # sa1b is compared with each


def summarize(
    ctx: Context,
    spec: Spec,
    results: dict[str, list[RunResult]],
    served: dict[str, list[int]],
    side_cpu: dict[str, list[tuple[float, float]]],
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
            "nginx_cpu_s_per_gb_median": statistics.median(
                c[0] / (ctx.total / GB) for c in side_cpu[name]
            ),
            "runs": [
                {
                    **dataclasses.asdict(r),
                    "mb_s": ctx.total / r.wall_s / MB,
                    "cpu_s_per_gb": r.cpu_s / (ctx.total / GB),
                    "served_bytes": s,
                    "nginx_cpu_s": c[0],
                    "pacer_cpu_s": c[1] if spec.paced else None,
                }
                for r, s, c in zip(runs, served[name], side_cpu[name], strict=True)
            ],
        }
        if spec.paced:
            tools[name]["pacer_cpu_s_per_gb_median"] = statistics.median(
                c[1] / (ctx.total / GB) for c in side_cpu[name]
            )
    ratios: dict[str, dict[str, float]] = {}
    s = tools.get("sa1b")
    for ref in REFERENCES:
        r = tools.get(ref)
        if r and s and not r["failed"] and not s["failed"]:
            ratios[ref] = {
                "mb_s": s["mb_s_median"] / r["mb_s_median"],
                "cpu_s_per_gb": s["cpu_s_per_gb_median"] / r["cpu_s_per_gb_median"],
                "peak_rss_mb": s["peak_rss_mb"] / r["peak_rss_mb"],
            }
    return {
        "https": spec.tls,
        "limit_rate": spec.limit_rate,
        "per_connection_rate": ctx.args.per_connection_rate if spec.paced else None,
        "delay_ms_each_way": ctx.args.delay_ms if spec.rtt else 0.0,
        "tools": tools,
        "ratios_sa1b_over": ratios,
        "ratio_sa1b_over_aria2c": ratios.get("aria2c", {}),
    }


def run_kill(ctx: Context, spec: Spec) -> dict[str, Any]:
    outdir = ctx.workdir / "out"
    logs = ctx.workdir / "logs"
    threshold = int(ctx.total * ctx.args.kill_at)
    report: dict[str, Any] = {
        "https": spec.tls,
        "limit_rate": spec.limit_rate,
        "kill_at": ctx.args.kill_at,
        "tools": {},
    }
    with serve(ctx, spec, outdir) as endpoint:
        server = endpoint.server
        for tool_name in ctx.tools[spec.name]:
            tool = make_tool(ctx, tool_name, spec, endpoint.inputs, outdir, resume=True)
            sync_and_clear(outdir)
            server.clear_log()
            seen = {"bytes": 0}

            def half_on_disk(seen: dict[str, int] = seen) -> bool:
                seen["bytes"] = bytes_on_disk(outdir)
                return seen["bytes"] >= threshold

            try:
                first = run_child(
                    tool.argv,
                    log_path=logs / f"{spec.name}-{tool_name}-1.log",
                    timeout=ctx.args.timeout,
                    stop_when=half_on_disk,
                    env=tool.env,
                )
                second = (
                    run_child(
                        tool.argv,
                        log_path=logs / f"{spec.name}-{tool_name}-2.log",
                        timeout=ctx.args.timeout,
                        env=tool.env,
                    )
                    if first.killed
                    else None
                )
            except BenchError as exc:  # timed out: this tool is out, the others go on
                ctx.failures.append(f"{spec.name}: {tool_name}: {exc}")
                log(f"FAILED {spec.name}: {tool_name}: {exc}")
                report["tools"][tool_name] = {"killed": True, "timed_out": True, "peak_rss_mb": 0}
                continue
            entry: dict[str, Any] = {
                "killed": first.killed,
                "killed_after_s": first.wall_s,
                "bytes_on_disk_at_kill": seen["bytes"],
                "peak_rss_mb": first.maxrss_kib / 1024,
            }
            if second is None:
                how = "finished" if first.exit_code == 0 else f"failed (exit {first.exit_code})"
                msg = (
                    f"{spec.name}: {tool_name} {how} before {ctx.args.kill_at:.0%} of the bytes "
                    f"were on disk (command: {shlex.join(tool.argv)}; log: {first.log_path})"
                )
                log("FAILED " + msg + "\n" + log_tail(first.log_path))
                ctx.failures.append(msg)
                report["tools"][tool_name] = entry
                continue
            sent = settled_bytes_sent(server, expect_at_least=ctx.total)
            entry.update(
                rerun_exit_code=second.exit_code,
                rerun_s=second.wall_s,
                served_bytes=sent,
                total_bytes=ctx.total,
                served_over_size=sent / ctx.total,
                cpu_s=first.cpu_s + second.cpu_s,
                cpu_s_per_gb=(first.cpu_s + second.cpu_s) / (ctx.total / GB),
                peak_rss_mb=max(first.maxrss_kib, second.maxrss_kib) / 1024,
                runs=[dataclasses.asdict(first), dataclasses.asdict(second)],
            )
            if second.exit_code != 0:
                msg = (
                    f"{spec.name}: {tool_name} rerun exited with {second.exit_code} "
                    f"(command: {shlex.join(tool.argv)}; log: {second.log_path})"
                )
                log("FAILED " + msg + "\n" + log_tail(second.log_path))
                ctx.failures.append(msg)
            else:
                problems = verify_output(tool.output_dir(outdir), ctx.shards)
                entry["verified"] = not problems
                entry["problems"] = problems
                if problems:
                    msg = f"{spec.name}: {tool_name} wrote wrong data after resume: " + "; ".join(
                        problems
                    )
                    log("MISMATCH " + msg)
                    ctx.failures.append(msg)
            log(
                f"{spec.name:9s} {tool_name:11s}: killed at {seen['bytes'] / ctx.total:.0%} on "
                f"disk after {first.wall_s:.1f} s; rerun {second.wall_s:.1f} s; "
                f"served/size {sent / ctx.total:.3f}; peak RSS {entry['peak_rss_mb']:.1f} MB"
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
    ctx: Context, tool_name: str, *, inputs: Inputs, outdir: Path, tag: str
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
        assert ctx.aria2c is not None
        argv = aria2c_tool(ctx.aria2c, input_file=inputs.aria2c, outdir=outdir, resume=False).argv
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
    tool = sa1b_tool(
        ctx.sa1b, links=inputs.links, outdir=outdir, extract=True, extra=ctx.args.sa1b_args
    )
    argv = tool.argv
    result = run_child(argv, log_path=logs / f"{tag}-sa1b.log", timeout=ctx.args.timeout)
    result.tool = "sa1b"
    return result, [result], argv


def run_extract(ctx: Context, spec: Spec) -> dict[str, Any]:
    if any(s.members is None for s in ctx.shards):
        raise BenchError(
            "extract: the shards are not tars (sa1b.cdn.synth.make_dataset is missing, so the "
            "random-content fallback was used); nothing to extract"
        )
    outdir = ctx.workdir / "out"
    shard_names = {s.name for s in ctx.shards}
    allowed: dict[str, Callable[[str], bool]] = {
        # aria2c's downloads stay in OUT, as a user's `aria2c -d OUT` then `tar -x` leaves them
        "aria2c": lambda rel: rel in shard_names,
        # sa1b: its state folder and nothing else
        "sa1b": lambda rel: rel.split("/", 1)[0] == STATE_DIR,
    }
    tools = ctx.tools[spec.name]
    runs: dict[str, list[dict[str, Any]]] = {t: [] for t in tools}
    failed_runs: dict[str, list[dict[str, Any]]] = {t: [] for t in tools}
    broken: set[str] = set()

    def describe(result: RunResult, served: int, peak: int) -> str:
        return (
            f"{ctx.total / result.wall_s / MB:7.1f} MB/s, "
            f"{result.cpu_s / (ctx.total / GB):5.2f} CPU s/GB, "
            f"{result.maxrss_kib / 1024:6.1f} MB RSS, peak disk {peak / MB:6.0f} MB, "
            f"served/size {served / ctx.total:.3f}"
        )

    with serve(ctx, spec, outdir) as endpoint:
        server = endpoint.server
        for warm in range(ctx.args.warmup):
            tool_name = tools[0]
            sync_and_clear(outdir)
            try:
                result, _steps, _argv = run_extract_pipeline(
                    ctx,
                    tool_name,
                    inputs=endpoint.inputs,
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
            for tool_name in tools:
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
                            inputs=endpoint.inputs,
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


@dataclasses.dataclass(frozen=True, kw_only=True)
class Goal:
    """A target for sa1b, checked from one scenario's medians."""

    scenario: str
    text: str
    op: str  # ">=" or "<="
    target: float
    reference: str | None  # the tool sa1b is compared with (None: an absolute figure)
    metric: str  # "mb_s" or "cpu_s_per_gb" (ratios), "served_over_size" or "peak_rss_mb" (kill)


GOALS = (
    Goal(scenario="https", text="sa1b MB/s >= 1.6 x aria2c", op=">=", target=1.6,
         reference="aria2c", metric="mb_s"),
    Goal(scenario="https", text="sa1b MB/s >= 0.8 x curl8", op=">=", target=0.8,
         reference="curl8", metric="mb_s"),
    Goal(scenario="https", text="sa1b CPU s/GB <= 0.8 x aria2c", op="<=", target=0.8,
         reference="aria2c", metric="cpu_s_per_gb"),
    Goal(scenario="https-paced", text="sa1b MB/s >= 1.25 x aria2c-best", op=">=", target=1.25,
         reference="aria2c-best", metric="mb_s"),
    Goal(scenario="https-paced-rtt", text="sa1b MB/s >= 1.25 x aria2c-best", op=">=",
         target=1.25, reference="aria2c-best", metric="mb_s"),
    Goal(scenario="uncapped", text="sa1b MB/s >= 1.5 x aria2c", op=">=", target=1.5,
         reference="aria2c", metric="mb_s"),
    Goal(scenario="kill", text="sa1b bytes served <= 1.03 x data", op="<=", target=1.03,
         reference=None, metric="served_over_size"),
    Goal(scenario="kill", text="sa1b peak RSS <= 200 MB", op="<=", target=200.0,
         reference=None, metric="peak_rss_mb"),
)  # fmt: skip


def evaluate_goals(results: dict[str, Any]) -> list[dict[str, Any]]:
    """PASS, FAIL or n/a (not measured) for every goal; a failed sa1b run is a FAIL."""
    verdicts = []
    for goal in GOALS:
        verdict: dict[str, Any] = {**dataclasses.asdict(goal), "measured": None}
        data = results.get(goal.scenario)
        tools = data["tools"] if data else {}
        sa1b = tools.get("sa1b")
        reference = tools.get(goal.reference) if goal.reference else None
        value: float | None = None
        if data is None:
            verdict.update(status="n/a", note="scenario not run")
        elif sa1b is None:
            verdict.update(status="n/a", note="sa1b not run")
        elif goal.reference is not None and reference is None:
            verdict.update(status="n/a", note=f"{goal.reference} not run")
        elif sa1b.get("failed") or (goal.reference is None and goal.metric not in sa1b):
            verdict.update(status="FAIL", note="sa1b failed")
        elif reference is not None and reference.get("failed"):
            verdict.update(status="n/a", note=f"{goal.reference} failed")
        else:
            if goal.reference is None:
                value = float(sa1b[goal.metric])
            else:
                value = float(data["ratios_sa1b_over"][goal.reference][goal.metric])
            passed = value >= goal.target if goal.op == ">=" else value <= goal.target
            verdict.update(status="PASS" if passed else "FAIL", measured=value, note="")
        verdicts.append(verdict)
    return verdicts


def render_goals(verdicts: list[dict[str, Any]]) -> str:
    lines = ["goals (sa1b, from the medians above):"]
    for v in verdicts:
        if v["measured"] is None:
            measured = f"({v['note']})"
        elif v["reference"] is None:
            measured = (
                f"{v['measured']:.3f}"
                if v["metric"] == "served_over_size"
                else (f"{v['measured']:.1f} MB")
            )
        else:
            measured = f"x{v['measured']:.2f}"
        lines.append(f"  {v['status']:4s}  {v['scenario']:15s}  {v['text']:34s}  {measured}")
    return "\n".join(lines)


TABLE_COLUMNS = (
    "scenario",
    "tool",
    "MB/s",
    "CPU s/GB",
    "peak RSS MB",
    "served/size",
    "peak disk MB",
    "sa1b/aria2c",
    "sa1b/aria2c-best",
    "sa1b/curl8",
)


def _ratio_cell(ratio: dict[str, float] | None) -> str:
    if not ratio:
        return ""
    return f"x{ratio['mb_s']:.2f} (CPU x{ratio['cpu_s_per_gb']:.2f})"


def _table_rows(results: dict[str, Any]) -> list[dict[str, str]]:
    rows: list[dict[str, str]] = []
    for scenario in SCENARIOS:
        if scenario not in results:
            continue
        spec, data = SPECS[scenario], results[scenario]
        for tool, t in data["tools"].items():
            row = {"scenario": scenario, "tool": tool}
            rows.append(row)
            if spec.kind == "kill":
                row["MB/s"] = "-"
                if "served_over_size" in t:
                    row["served/size"] = f"{t['served_over_size']:.3f}"
                    row["CPU s/GB"] = f"{t['cpu_s_per_gb']:.2f}"
                else:
                    row["served/size"] = "FAILED" if t.get("killed") else "not killed"
                row["peak RSS MB"] = f"{t['peak_rss_mb']:.1f}"
                continue
            if t["failed"]:
                row["MB/s"] = "FAILED"
                continue
            row.update(
                {
                    "MB/s": f"{t['mb_s_median']:.0f}",
                    "CPU s/GB": f"{t['cpu_s_per_gb_median']:.2f}",
                    "peak RSS MB": f"{t['peak_rss_mb']:.1f}",
                    "served/size": f"{t['served_over_size_median']:.3f}",
                }
            )
            if spec.kind == "extract":
                row["peak disk MB"] = f"{t['peak_disk_mb']:.0f}"
                ratio = data["ratio_sa1b_over_aria2c_tar"]
                if tool == "sa1b" and ratio:
                    row["sa1b/aria2c"] = f"{_ratio_cell(ratio)}, disk x{ratio['peak_disk_mb']:.2f}"
            elif tool == "sa1b":
                for ref in REFERENCES:
                    row[f"sa1b/{ref}"] = _ratio_cell(data["ratios_sa1b_over"].get(ref))
    return rows


def render_table(results: dict[str, Any]) -> str:
    rows = _table_rows(results)
    columns = [c for c in TABLE_COLUMNS if c in ("scenario", "tool") or any(r.get(c) for r in rows)]
    cells = [columns] + [[r.get(c, "") for c in columns] for r in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(columns))]
    lines = [
        "  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip() for row in cells
    ]
    lines.insert(1, "  ".join("-" * w for w in widths))
    for scenario in SCENARIOS:
        data = results.get(scenario)
        if data is None or SPECS[scenario].kind != "throughput":
            continue
        side = [
            f"{tool} {t['nginx_cpu_s_per_gb_median']:.2f}"
            + (f"/{t['pacer_cpu_s_per_gb_median']:.2f}" if "pacer_cpu_s_per_gb_median" in t else "")
            for tool, t in data["tools"].items()
            if not t["failed"]
        ]
        if side:
            what = "nginx/pacer" if SPECS[scenario].paced else "nginx"
            lines.append(f"{scenario}: {what} CPU s/GB during each tool's runs: " + ", ".join(side))
    for scenario in ("kill", "kill-http"):
        if scenario not in results:
            continue
        scheme = "HTTPS" if SPECS[scenario].tls else "plain HTTP"
        lines.append("")
        lines.append(
            f"{scenario} ({scheme}, SIGKILL at ~half, then rerun): "
            "bytes served by nginx / data size"
        )
        for tool, t in results[scenario]["tools"].items():
            if not t.get("killed"):
                lines.append(f"  {tool:11s} not killed (finished too early)")
            elif "served_over_size" not in t:
                lines.append(f"  {tool:11s} FAILED")
            else:
                ok = "verified" if t.get("verified") else "NOT VERIFIED"
                lines.append(
                    f"  {tool:11s} {t['served_over_size']:.3f}  "
                    f"(killed at {t['bytes_on_disk_at_kill'] / t['total_bytes']:.0%}, "
                    f"rerun {t['rerun_s']:.1f} s, peak RSS {t['peak_rss_mb']:.1f} MB, {ok})"
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


def machine_info(ctx: Context) -> dict[str, Any]:
    nginx = "unknown"
    with contextlib.suppress(Exception):
        done = subprocess.run([find_nginx(), "-v"], capture_output=True, text=True, check=False)
        nginx = done.stderr.strip()
    return {
        "cpus": os.cpu_count(),
        "kernel": platform.release(),
        "python": platform.python_version(),
        "nginx": nginx,
        "aria2c": tool_version([ctx.aria2c, "--version"]) if ctx.aria2c else None,
        "curl": tool_version([ctx.curl, "--version"]) if ctx.curl else None,
        "openssl": tool_version(["openssl", "version"]),
    }


# -- CLI -----------------------------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="bench.py",
        description=(
            "Benchmark `sa1b download` against curl and aria2c on synthetic SA-1B shards served "
            "by a private nginx on 127.0.0.1, over HTTPS (uncapped, capped per TCP connection, "
            "with a long RTT) and plain HTTP."
        ),
    )
    parser.add_argument(
        "--scenario",
        action="append",
        choices=(*SCENARIOS, "all"),
        help="scenario to run (repeatable; default: all = every scenario but kill-http)",
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
        help=f"comma-separated tools to run, among {','.join(TOOLS)} (default: all four in the "
        "HTTPS throughput scenarios, aria2c,sa1b elsewhere); each scenario runs those it can",
    )
    parser.add_argument(
        "--sa1b",
        metavar="CMD",
        help="command that runs the sa1b CLI, split like a shell would "
        "(default: bin/sa1b next to this Python, else sa1b on PATH)",
    )
    parser.add_argument(
        "--sa1b-args",
        default="",
        metavar="ARGS",
        help="extra arguments for every `sa1b download`, split like a shell would, e.g. "
        '"--connections 128"',
    )
    parser.add_argument("--aria2c", default="aria2c", help="aria2c binary (default: aria2c)")
    parser.add_argument("--curl", default="curl", help="curl binary for curl8 (default: curl)")
    parser.add_argument(
        "--per-connection-rate",
        type=parse_size,
        default=parse_size("2M"),
        metavar="RATE",
        help="https-paced*: bytes/s per TCP connection, K/M/G binary (default: 2M)",
    )
    parser.add_argument(
        "--delay-ms",
        type=float,
        default=20.0,
        help="https-paced-rtt: added latency each way; RTT = 2 x this (default: 20)",
    )
    parser.add_argument(
        "--kill-at",
        type=float,
        default=0.5,
        help="kill scenarios: SIGKILL when this fraction of the data is on disk (default: 0.5)",
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
        help="unmeasured runs before each throughput/extract scenario (default: 1)",
    )
    parser.add_argument(
        "--check-goals",
        action="store_true",
        help="exit 1 when a goal fails (without it the goals are only reported)",
    )
    parser.add_argument("--json-out", type=Path, help="also write all results as JSON to this file")
    return parser


def _usage_error(message: str) -> int:
    print(f"bench.py: {message}", file=sys.stderr)
    return 2


def sa1b_has_ca_bundle(command: list[str]) -> bool:
    """Whether `sa1b download --help` lists --ca-bundle."""
    try:
        done = subprocess.run(
            [*command, "download", "--help"],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
            env=child_env(),
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        log(f"warning: `sa1b download --help` did not run: {exc}")
        return False
    if done.returncode != 0:
        log(
            f"warning: `sa1b download --help` exited with {done.returncode}: "
            + (done.stderr.strip().splitlines() or [""])[-1]
        )
    return "--ca-bundle" in done.stdout


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    chosen = args.scenario or ["all"]
    scenarios = [
        s for s in SCENARIOS if s in chosen or ("all" in chosen and s in DEFAULT_SCENARIOS)
    ]
    wanted: list[str] | None = None
    if args.tools is not None:
        wanted = [t.strip() for t in args.tools.split(",") if t.strip()]
        if not wanted or any(t not in TOOLS for t in wanted):
            return _usage_error(f"--tools must be a subset of {','.join(TOOLS)}")
    if args.shards < 1 or args.runs < 1 or args.shard_size < 1 or args.warmup < 0:
        return _usage_error("--shards, --runs, --shard-size must be > 0")
    if not 0 < args.kill_at < 1:
        return _usage_error("--kill-at must be between 0 and 1")
    if args.per_connection_rate < 1 or args.delay_ms < 0:
        return _usage_error("--per-connection-rate must be > 0 and --delay-ms >= 0")
    try:
        args.sa1b_args = shlex.split(args.sa1b_args)
    except ValueError as exc:
        return _usage_error(f"--sa1b-args: {exc}")
    tools_for: dict[str, list[str]] = {}
    for name in scenarios:
        spec = SPECS[name]
        pick = spec.default_tools if wanted is None else wanted
        tools_for[name] = [t for t in TOOLS if t in pick and t in spec.tools]
        if not tools_for[name]:
            log(f"{name}: none of the tools asked for runs in this scenario; skipped")
    scenarios = [s for s in scenarios if tools_for[s]]
    used = {t for s in scenarios for t in tools_for[s]}
    if not scenarios:
        return _usage_error("nothing to run")

    tar: str | None = None
    if "extract" in scenarios and "aria2c" in tools_for["extract"]:
        tar = shutil.which("tar")
        if tar is None:
            return _usage_error("the extract scenario needs tar on PATH")
    aria2c: str | None = None
    if used & {"aria2c", "aria2c-best"}:
        aria2c = shutil.which(args.aria2c)
        if aria2c is None:
            return _usage_error(f"aria2c not found ({args.aria2c}): apt-get install aria2")
    curl = xargs = None
    if "curl8" in used:
        curl, xargs = shutil.which(args.curl), shutil.which("xargs")
        if curl is None or xargs is None:
            return _usage_error("curl8 needs curl and xargs on PATH (apt-get install curl)")
    sa1b: list[str] | None = None
    if "sa1b" in used:
        sa1b = shlex.split(args.sa1b) if args.sa1b else default_sa1b_command()
        if not sa1b:
            return _usage_error(
                "no sa1b executable next to this Python nor on PATH; install the package "
                "(pip install -e .), pass --sa1b CMD, or use --tools without sa1b"
            )
        if shutil.which(sa1b[0]) is None:
            return _usage_error(f"--sa1b: cannot run {sa1b[0]!r} (not found or not executable)")
    try:
        find_nginx()
    except FileNotFoundError as exc:
        return _usage_error(str(exc))

    workdir: Path = args.workdir.resolve()
    workdir.mkdir(parents=True, exist_ok=True)
    (workdir / "logs").mkdir(exist_ok=True)
    ca: Path | None = None
    tls: tuple[Path, Path] | None = None
    sa1b_ca_bundle = False
    if any(SPECS[s].tls for s in scenarios):
        try:
            paths = make_certificates(workdir / "tls")
        except (_certs.CertificateError, OSError) as exc:
            return _usage_error(f"cannot make the private CA: {exc}")
        ca, tls = paths.ca, (paths.certificate, paths.key)
        log(f"private CA: {ca}")
        if sa1b is not None and any(SPECS[s].tls and "sa1b" in tools_for[s] for s in scenarios):
            sa1b_ca_bundle = sa1b_has_ca_bundle(sa1b)
            log(
                "sa1b gets the CA through SSL_CERT_FILE"
                + (" and --ca-bundle" if sa1b_ca_bundle else " (no --ca-bundle option)")
            )
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
        tools=tools_for,
        tar=tar,
        curl=curl,
        xargs=xargs,
        ca=ca,
        tls=tls,
        sa1b_ca_bundle=sa1b_ca_bundle,
    )
    results: dict[str, Any] = {}
    started = time.monotonic()
    try:
        for scenario in scenarios:
            spec = SPECS[scenario]
            log(
                f"== {scenario}: {len(shards)} shards, {total / MB:.0f} MB in all; "
                f"{', '.join(tools_for[scenario])}"
            )
            try:
                if spec.kind == "kill":
                    results[scenario] = run_kill(ctx, spec)
                elif spec.kind == "extract":
                    results[scenario] = run_extract(ctx, spec)
                else:
                    results[scenario] = run_throughput(ctx, spec)
            except (BenchError, _nginx.NginxError) as exc:  # lost; the others still run
                ctx.failures.append(f"{scenario}: {exc}")
                log(f"ERROR {scenario}: {exc}")
    except KeyboardInterrupt:
        log("interrupted")
        return 130

    verdicts = evaluate_goals(results)
    print(render_table(results))
    print()
    print(render_goals(verdicts))
    if args.json_out:
        sample_inputs = Inputs(aria2c=Path("INPUT"), links=Path("LINKS"), curl=Path("CURL_LIST"))
        sample_spec = SPECS["https"]
        document: dict[str, Any] = {
            "machine": machine_info(ctx),
            "params": {
                "shards": len(shards),
                "shard_size": args.shard_size,
                "total_bytes": total,
                "runs": args.runs,
                "warmup": args.warmup,
                "scenarios": scenarios,
                "tools": tools_for,
                "per_connection_rate": args.per_connection_rate,
                "delay_ms": args.delay_ms,
                "generator": "make_dataset" if make_dataset is not None else "fallback",
                "ca": str(ca) if ca else None,
                "sa1b_ca_bundle_option": sa1b_ca_bundle,
                "pacer_argv": [
                    sys.executable,
                    "-I",
                    str(PACER),
                    "--upstream",
                    "127.0.0.1:NGINX_PORT",
                    "--rate",
                    str(args.per_connection_rate),
                    "--delay-ms",
                    "0 or DELAY_MS",
                ],
                "argv_https": {
                    name: dataclasses.asdict(
                        make_tool(ctx, name, sample_spec, sample_inputs, Path("OUTDIR"))
                    )
                    for name in TOOLS
                    if name in used
                },
                "tar_argv": tar_argv(tar, Path("OUTDIR/NAME"), Path("OUTDIR/STEM"))
                if tar
                else None,
                "elapsed_s": time.monotonic() - started,
            },
            "results": results,
            "goals": verdicts,
            "failures": ctx.failures,
        }
        for entry in document["params"]["argv_https"].values():
            entry.pop("output_dir", None)
        args.json_out.parent.mkdir(parents=True, exist_ok=True)
        args.json_out.write_text(json.dumps(document, indent=2, default=str) + "\n")
    status = 0
    if ctx.failures:
        print("\nFAILURES:", file=sys.stderr)
        for failure in ctx.failures:
            print(f"  - {failure}", file=sys.stderr)
        status = 1
    if args.check_goals and any(v["status"] == "FAIL" for v in verdicts):
        print("\ngoals failed (--check-goals)", file=sys.stderr)
        status = 1
    return status


if __name__ == "__main__":
    sys.exit(main())
