#!/usr/bin/env python3
"""Why sa1b's transport is built as it is: the choices, measured side by side.

Serves ``--files`` random files from a private nginx over HTTPS (a private CA, ``http2``
offered; ``--plain`` for HTTP) and fetches them with pycurl in several ways, each in a child
process (so its CPU time is its own), alternating, median of ``--runs``:

* ``one-loop``   one multi handle driven by epoll + ``socket_action`` from one thread, a
                 connection per transfer (HTTP/1.1), body chunks gathered into 128 KiB
                 blocks before each ``pwrite``: what sa1b does;
* ``per-chunk``  the same, but one ``pwrite`` for every chunk libcurl hands over;
* ``two-loops``  two threads, each with a multi handle and half of the transfers;
* ``http2``      one multi handle multiplexing every transfer over one HTTP/2 connection.

    .venv/bin/python benchmarks/transport_choices.py --runs 3

Every file is checked against its source after each run.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import os
import select
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import pycurl

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # the repository's harness

from harness.certs import make_certificates
from harness.nginx import NginxServer

VARIANTS = ("one-loop", "per-chunk", "two-loops", "http2")
BLOCK = 128 * 1024
MB = 1_000_000


class Job:
    """One static range of one file, and where its bytes go."""

    def __init__(self, variant: str, fd: int, start: int, end: int) -> None:
        self.variant, self.fd, self.offset, self.end = variant, fd, start, end
        self.buffer = bytearray()

    def write(self, data: bytes) -> None:
        if self.variant == "per-chunk":
            os.pwrite(self.fd, data, self.offset)
            self.offset += len(data)
            return
        self.buffer += data
        if len(self.buffer) >= BLOCK:
            self.flush()

    def flush(self) -> None:
        os.pwrite(self.fd, self.buffer, self.offset)
        self.offset += len(self.buffer)
        self.buffer.clear()


def run_loop(variant: str, base: str, jobs: list[tuple[str, Job]], ca: str) -> None:
    """Drive ``jobs`` to their end with one multi handle, epoll and ``socket_action``."""
    multi = pycurl.CurlMulti()
    multi.setopt(pycurl.M_PIPELINING, 2 if variant == "http2" else 0)
    poller = select.epoll()
    timer = [0.0]

    def on_socket(what: int, fd: int, _multi: object, _data: object) -> None:
        if what == pycurl.POLL_REMOVE:
            with contextlib.suppress(OSError):
                poller.unregister(fd)
            return
        mask = select.EPOLLIN if what & pycurl.POLL_IN else 0
        mask |= select.EPOLLOUT if what & pycurl.POLL_OUT else 0
        try:
            poller.modify(fd, mask)
        except FileNotFoundError:
            poller.register(fd, mask)

    def on_timer(milliseconds: int) -> None:
        timer[0] = -1.0 if milliseconds < 0 else milliseconds / 1000

    multi.setopt(pycurl.M_SOCKETFUNCTION, on_socket)
    multi.setopt(pycurl.M_TIMERFUNCTION, on_timer)
    by_handle: dict[int, tuple[pycurl.Curl, Job]] = {}
    for name, job in jobs:
        easy = pycurl.Curl()
        easy.setopt(pycurl.URL, f"{base}/{name}")
        easy.setopt(pycurl.CAINFO, ca)
        easy.setopt(pycurl.HTTPHEADER, [f"Range: bytes={job.offset}-{job.end - 1}"])
        two = variant == "http2"
        easy.setopt(
            pycurl.HTTP_VERSION,
            pycurl.CURL_HTTP_VERSION_2_0 if two else pycurl.CURL_HTTP_VERSION_1_1,
        )
        easy.setopt(pycurl.BUFFERSIZE, 512 * 1024 if base.startswith("http:") else 64 * 1024)
        easy.setopt(pycurl.WRITEFUNCTION, job.write)
        multi.add_handle(easy)
        by_handle[id(easy)] = (easy, job)
    left = len(by_handle)
    while left:
        wait = 0.1 if timer[0] < 0 else min(timer[0], 0.1)
        events = poller.poll(wait)
        for fd, event in events:
            mask = pycurl.CSELECT_IN if event & select.EPOLLIN else 0
            mask |= pycurl.CSELECT_OUT if event & select.EPOLLOUT else 0
            multi.socket_action(fd, mask)
        if not events:
            multi.socket_action(pycurl.SOCKET_TIMEOUT, 0)
        queued = 1
        while queued:
            queued, done, failed = multi.info_read()
            if failed:
                raise SystemExit(f"a transfer failed: {failed[0][1:]}")
            for easy in done:
                by_handle[id(easy)][1].flush()
                left -= 1
    for easy, _ in by_handle.values():
        multi.remove_handle(easy)
        easy.close()
    multi.close()


def child(args: argparse.Namespace) -> None:
    """One measured fetch (``--child``): every file in ``--ranges`` static ranges."""
    out, size = Path(args.out), args.size
    jobs: list[tuple[str, Job]] = []
    for name in args.names.split(","):
        fd = os.open(out / name, os.O_RDWR | os.O_CREAT | os.O_TRUNC, 0o644)
        os.posix_fallocate(fd, 0, size)
        step = size // args.ranges
        for k in range(args.ranges):
            end = size if k == args.ranges - 1 else (k + 1) * step
            jobs.append((name, Job(args.child, fd, k * step, end)))
    groups = [jobs[0::2], jobs[1::2]] if args.child == "two-loops" else [jobs]
    threads = [
        threading.Thread(target=run_loop, args=(args.child, args.base, g, args.ca)) for g in groups
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()


def measure(
    variant: str, *, base: str, names: list[str], size: int, out: Path, ca: Path
) -> tuple[float, float]:
    """Run one child; its wall time and CPU seconds."""
    subprocess.run(["sync"], check=True)
    for stale in out.iterdir():
        stale.unlink()
    argv = [
        sys.executable,
        __file__,
        "--child",
        variant,
        "--base",
        base,
        "--names",
        ",".join(names),
        "--size",
        str(size),
        "--out",
        str(out),
        "--ca",
        str(ca),
        "--ranges",
        "8",
    ]
    began = time.monotonic()
    process = subprocess.Popen(argv)
    _, status, usage = os.wait4(process.pid, 0)
    wall = time.monotonic() - began
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"{variant} failed")
    return wall, usage.ru_utime + usage.ru_stime


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--files", type=int, default=6)
    parser.add_argument("--size", type=int, default=170 * 1024 * 1024)
    parser.add_argument("--plain", action="store_true", help="plain HTTP instead of HTTPS")
    parser.add_argument("--child", choices=VARIANTS, help=argparse.SUPPRESS)
    for hidden in ("--base", "--names", "--out", "--ca"):
        parser.add_argument(hidden, help=argparse.SUPPRESS)
    parser.add_argument("--ranges", type=int, default=8, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args)
        return 0
    with tempfile.TemporaryDirectory(prefix="sa1b-transport-") as scratch:
        work = Path(scratch)
        (work / "data").mkdir()
        (work / "out").mkdir()
        names = [f"f{i}.bin" for i in range(args.files)]
        digests = {}
        for name in names:
            data = os.urandom(args.size)
            (work / "data" / name).write_bytes(data)
            digests[name] = hashlib.md5(data).hexdigest()
        certs = make_certificates(work / "tls")
        tls = None if args.plain else (certs.certificate, certs.key)
        variants = [v for v in VARIANTS if not (args.plain and v == "http2")]
        results: dict[str, list[tuple[float, float]]] = {v: [] for v in variants}
        with NginxServer(root=work / "data", tls=tls, http2=not args.plain) as server:
            total = args.files * args.size
            for run in range(args.runs):
                for variant in variants:
                    wall, cpu = measure(
                        variant,
                        base=server.base_url,
                        names=names,
                        size=args.size,
                        out=work / "out",
                        ca=certs.ca,
                    )
                    for name in names:
                        got = hashlib.md5((work / "out" / name).read_bytes()).hexdigest()
                        if got != digests[name]:
                            raise SystemExit(f"{variant}: {name} differs from its source")
                    results[variant].append((total / wall / MB, cpu / (total / 1e9)))
                    print(
                        f"run {run + 1} {variant:10s} {total / wall / MB:7.0f} MB/s "
                        f"{cpu / (total / 1e9):5.2f} CPU s/GB",
                        file=sys.stderr,
                    )
        print(f"\n{'variant':10s} {'MB/s':>7s} {'CPU s/GB':>9s}")
        for variant, rows in results.items():
            speed = statistics.median(r[0] for r in rows)
            cpu = statistics.median(r[1] for r in rows)
            print(f"{variant:10s} {speed:7.0f} {cpu:9.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
