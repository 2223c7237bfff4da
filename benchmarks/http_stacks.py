"""Which HTTP stack should carry the bulk bytes? Measure, side by side, in one run.

Every candidate does the same job as the sa1b engine: N threads, each fetching one
file with one ranged GET from nginx on loopback and writing it with ``pwrite`` into a
preallocated file. Reported: MB/s and CPU seconds per GB of this process, median of
``--runs`` runs, candidates alternating. Candidates that are not installed are
skipped (``pip install urllib3 httpx``).

    python benchmarks/http_stacks.py --shards 6 --shard-size 170M --runs 3
"""

from __future__ import annotations

import argparse
import http.client
import os
import resource
import shutil
import socket
import statistics
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from urllib.parse import urlsplit

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from sa1b.cdn.nginx import NginxServer
from sa1b.cdn.synth import make_dataset
from sa1b.cli.units import parse_size
from sa1b.http import HTTPClient, Timeouts

BUFFER = 256 * 1024
Fetch = Callable[[str, int, int], None]  # url, file descriptor, size


def fetch_http_client(url: str, fd: int, size: int) -> None:
    parts = urlsplit(url)
    conn = http.client.HTTPConnection(parts.hostname or "", parts.port, timeout=30)
    conn.request("GET", parts.path, headers={"Range": f"bytes=0-{size - 1}"})
    response = conn.getresponse()
    view = memoryview(bytearray(BUFFER))
    offset = 0
    while n := response.readinto(view):
        os.pwrite(fd, view[:n], offset)
        offset += n
    conn.close()


def fetch_urllib3(url: str, fd: int, size: int) -> None:
    import urllib3

    http = urllib3.PoolManager()
    response = http.request(
        "GET", url, headers={"Range": f"bytes=0-{size - 1}"}, preload_content=False
    )
    view = memoryview(bytearray(BUFFER))
    offset = 0
    while n := response.readinto(view):
        os.pwrite(fd, view[:n], offset)
        offset += n
    response.release_conn()


def fetch_httpx(url: str, fd: int, size: int) -> None:
    import httpx

    with (
        httpx.Client() as client,
        client.stream("GET", url, headers={"Range": f"bytes=0-{size - 1}"}) as response,
    ):
        offset = 0
        for chunk in response.iter_raw(BUFFER):
            os.pwrite(fd, chunk, offset)
            offset += len(chunk)


def fetch_sa1b(url: str, fd: int, size: int) -> None:
    client = HTTPClient(timeouts=Timeouts())
    response = client.get(url, {"Range": f"bytes=0-{size - 1}"})
    view = memoryview(bytearray(BUFFER))
    offset = 0
    while n := response.readinto(view):
        os.pwrite(fd, view[:n], offset)
        offset += n
    client.close()


def fetch_raw_recv(url: str, fd: int, size: int) -> None:
    """Plain recv_into (no MSG_WAITALL): what a select/poll loop would do."""
    parts = urlsplit(url)
    sock = socket.create_connection((parts.hostname or "", parts.port or 80))
    request = f"GET {parts.path} HTTP/1.1\r\nHost: {parts.netloc}\r\n"
    sock.sendall(f"{request}Range: bytes=0-{size - 1}\r\n\r\n".encode())
    head = b""
    while b"\r\n\r\n" not in head:
        head += sock.recv(65536)
    body = head.split(b"\r\n\r\n", 1)[1]
    os.pwrite(fd, body, 0)
    offset = len(body)
    view = memoryview(bytearray(BUFFER))
    while offset < size and (n := sock.recv_into(view)):
        os.pwrite(fd, view[:n], offset)
        offset += n
    sock.close()


CANDIDATES: dict[str, Fetch] = {
    "sa1b (recv_into MSG_WAITALL)": fetch_sa1b,
    "http.client readinto": fetch_http_client,
    "raw recv_into": fetch_raw_recv,
    "urllib3 readinto": fetch_urllib3,
    "httpx iter_raw": fetch_httpx,
}


def run_once(fetch: Fetch, urls: list[str], sizes: list[int], out: Path) -> tuple[float, float]:
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True)
    os.sync()
    fds = []
    for i, size in enumerate(sizes):
        fd = os.open(out / f"f{i}", os.O_RDWR | os.O_CREAT, 0o644)
        os.posix_fallocate(fd, 0, size)
        fds.append(fd)
    threads = [
        threading.Thread(target=fetch, args=(url, fd, size))
        for url, fd, size in zip(urls, fds, sizes, strict=True)
    ]
    before = resource.getrusage(resource.RUSAGE_SELF)
    started = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    elapsed = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_SELF)
    for fd in fds:
        os.close(fd)
    total = sum(sizes)
    for i, size in enumerate(sizes):
        if (out / f"f{i}").stat().st_size != size:
            raise SystemExit(f"wrong size from {fetch.__name__}")
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return total / elapsed / 1e6, cpu / (total / 1e9)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shards", type=int, default=6)
    parser.add_argument("--shard-size", default="170M")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--workdir", type=Path, default=Path("benchmarks/work"))
    args = parser.parse_args()
    size = parse_size(args.shard_size)
    data = args.workdir / f"stacks-{args.shards}x{size}"
    infos = make_dataset(data, shard_indices=range(args.shards), shard_size=size, extras=False)
    available: dict[str, Fetch] = {}
    for name, fetch in CANDIDATES.items():
        module = {"urllib3 readinto": "urllib3", "httpx iter_raw": "httpx"}.get(name)
        try:
            if module:
                __import__(module)
        except ImportError:
            print(f"skipping {name}: not installed")
            continue
        available[name] = fetch
    results: dict[str, list[tuple[float, float]]] = {name: [] for name in available}
    with NginxServer(root=data, workdir=args.workdir / "stacks-nginx") as nginx:
        urls = [nginx.url_for(info.name) for info in infos]
        sizes = [info.size for info in infos]
        for _ in range(args.runs):
            for name, fetch in available.items():
                results[name].append(run_once(fetch, urls, sizes, args.workdir / "stacks-out"))
    shutil.rmtree(args.workdir / "stacks-out", ignore_errors=True)
    print(f"{len(infos)} files x {size / 1e6:.0f} MB, one connection each, medians of {args.runs}")
    print(f"{'stack':32} {'MB/s':>8} {'CPU s/GB':>9}")
    for name, rows in results.items():
        speed = statistics.median(r[0] for r in rows)
        cpu = statistics.median(r[1] for r in rows)
        print(f"{name:32} {speed:8.0f} {cpu:9.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
