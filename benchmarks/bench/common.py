"""Constants, the scenario table, the one error and small helpers of the benchmark."""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import hashlib
import os
import shutil
import subprocess
import sys
import threading
from pathlib import Path

from sa1b import units

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


PACER = Path(__file__).resolve().parents[1] / "pacer.py"
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
    download_only: bool = False  # extract: sa1b --no-extract alternates with the others too


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
        Spec(name="https-extract", kind="extract", tls=True, limit_rate=None, tools=DEFAULT_PAIR,
             default_tools=DEFAULT_PAIR, download_only=True),
    )
}  # fmt: skip
SCENARIOS = tuple(SPECS)  # table and run order: HTTPS first
DEFAULT_SCENARIOS = tuple(name for name in SCENARIOS if name != "kill-http")


class BenchError(Exception):
    """A failure that makes the benchmark meaningless (exit 1)."""


# -- small helpers -------------------------------------------------------------------------------


def parse_size(text: str) -> int:
    """``170M`` -> 178257920, as sa1b reads sizes (:func:`sa1b.units.parse_size`)."""
    try:
        return units.parse_size(text)
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error)) from None


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def print_report(lines: list[str], results: Path | None) -> None:
    """Print a report, and append it to ``results`` when given (``--results``)."""
    text = "\n".join(lines) + "\n"
    print(text, end="")
    if results is not None:
        with open(results, "a", encoding="utf-8") as handle:
            handle.write(text + "\n")


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
