"""The CDN stand-in over loopback, driven with http.client."""

from __future__ import annotations

import http.client
import random
import socket
import ssl
import struct
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol
from urllib.parse import urlsplit

import pytest

from harness.certs import CertificatePaths
from sa1b.cdn import CDNServer, Fault
from tests.scripted import server_context
from tests.waiting import wait_for

BIG = "sa_000000.tar"
SMALL = "sa_000001.tar"
IDS = "sa_images_ids.txt"
T0 = 1_700_000_000.0


Conns = list[http.client.HTTPConnection]


@dataclass
class FakeClock:
    now: float = T0

    def __call__(self) -> float:
        return self.now


@dataclass
class Reply:
    status: int
    headers: http.client.HTTPMessage
    body: bytes


@pytest.fixture(scope="module")
def root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("cdn")
    rng = random.Random(0)
    (root / BIG).write_bytes(rng.randbytes(300_000))
    (root / SMALL).write_bytes(rng.randbytes(50_000))
    (root / IDS).write_text("1\n2\n")
    (root / f"{BIG}.params").write_text("{}")
    (root / ".sa_000002.tar.123.tmp").write_bytes(b"partial")
    return root


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def server(root: Path, clock: FakeClock) -> Iterator[CDNServer]:
    with CDNServer(root=root, clock=clock) as server:
        yield server


@pytest.fixture
def connections() -> Iterator[Conns]:
    opened: Conns = []
    yield opened
    for conn in opened:
        conn.close()


def _connect(server: CDNServer, opened: Conns) -> http.client.HTTPConnection:
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=5)
    opened.append(conn)
    return conn


def _target(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.path}?{parts.query}"


def fetch(
    conn: http.client.HTTPConnection,
    url: str,
    *,
    method: str = "GET",
    headers: dict[str, str] | None = None,
) -> Reply:
    conn.request(method, _target(url), headers=headers or {})
    response = conn.getresponse()
    return Reply(response.status, response.headers, response.read())


class Get(Protocol):
    def __call__(self, name: str, method: str = "GET", **headers: str) -> Reply: ...


@pytest.fixture
def get(server: CDNServer, connections: Conns) -> Get:
    """A GET/HEAD helper bound to the server, one new connection per call."""

    def call(name: str, method: str = "GET", **headers: str) -> Reply:
        conn = _connect(server, connections)
        return fetch(conn, server.url_for(name), method=method, headers=headers)

    return call


def data(root: Path, name: str = BIG) -> bytes:
    return (root / name).read_bytes()


# -- plain answers -------------------------------------------------------------------------


def test_full_get_and_head(server: CDNServer, root: Path, get: Get) -> None:
    reply = get(BIG)
    assert reply.status == 200
    assert reply.body == data(root)
    assert reply.headers["Content-Length"] == "300000"
    assert reply.headers["Accept-Ranges"] == "bytes"
    assert reply.headers["Content-Type"] == "application/x-tar"
    etag = reply.headers["ETag"]
    assert etag.startswith('"') and etag.endswith('"') and len(etag) == 34
    assert reply.headers["Last-Modified"].endswith(" GMT")
    head = get(BIG, "HEAD")
    assert head.status == 200 and head.body == b""
    assert head.headers["Content-Length"] == "300000" and head.headers["ETag"] == etag
    assert server.bytes_sent(BIG) == 300_000 == server.bytes_sent_total


@pytest.mark.parametrize(
    ("header", "first", "last"),
    [
        ("bytes=0-99", 0, 99),
        ("bytes=1000-", 1000, 299_999),
        ("bytes=299990-400000", 299_990, 299_999),
        ("bytes=-16", 299_984, 299_999),
    ],
)
def test_single_ranges(get: Get, root: Path, header: str, first: int, last: int) -> None:
    reply = get(BIG, Range=header)
    assert reply.status == 206
    assert reply.headers["Content-Range"] == f"bytes {first}-{last}/300000"
    assert reply.headers["Content-Length"] == str(last - first + 1)
    assert reply.body == data(root)[first : last + 1]


def test_unsatisfiable_range(get: Get) -> None:
    reply = get(BIG, Range="bytes=300000-")
    assert reply.status == 416
    assert reply.headers["Content-Range"] == "bytes */300000"


def test_if_range(get: Get, root: Path) -> None:
    first = get(BIG, Range="bytes=0-9")
    etag, modified = first.headers["ETag"], first.headers["Last-Modified"]
    assert get(BIG, Range="bytes=10-19", **{"If-Range": etag}).status == 206
    assert get(BIG, Range="bytes=10-19", **{"If-Range": modified}).status == 206
    for stale in ('"0000"', f"W/{etag}", "Mon, 01 Jan 2001 00:00:00 GMT"):
        reply = get(BIG, Range="bytes=10-19", **{"If-Range": stale})
        assert reply.status == 200, stale
        assert reply.body == data(root)  # the whole body, never the range


def test_expired_and_tampered_links(
    server: CDNServer, clock: FakeClock, connections: Conns
) -> None:
    conn = _connect(server, connections)
    url = server.url_for(BIG, expires_at=int(T0) + 10)
    assert fetch(conn, url, method="HEAD").status == 200
    clock.now = T0 + 10
    reply = fetch(conn, url)
    assert (reply.status, reply.body) == (403, b"URL signature expired")
    fresh = server.url_for(BIG)  # default: 30 days from the clock
    assert f"oe={int(clock.now) + 30 * 86400:08X}" in fresh
    assert fetch(conn, fresh, headers={"Range": "bytes=0-0"}).status == 206
    tampered = fresh.replace("oh=00_", "oh=00_f")
    reply = fetch(conn, tampered)
    assert (reply.status, reply.body) == (403, b"URL signature mismatch")
    unsigned = fresh.partition("?")[0]
    assert fetch(conn, unsigned).status == 403


def test_missing_and_hidden_files_are_404(get: Get) -> None:
    assert get("sa_000999.tar").status == 404
    assert get(f"{BIG}.params").status == 404
    assert get(".sa_000002.tar.123.tmp").status == 404
    assert get(IDS).body == b"1\n2\n"


def test_file_added_after_start_is_served(server: CDNServer, root: Path, get: Get) -> None:
    late = root / "sa_000042.tar"
    late.write_bytes(b"late")
    try:
        assert get("sa_000042.tar").body == b"late"
    finally:
        late.unlink()


def test_keep_alive_reuses_one_connection(server: CDNServer, connections: Conns) -> None:
    conn = _connect(server, connections)
    statuses = []
    for name, method, headers in [
        (BIG, "GET", {"Range": "bytes=0-9"}),
        (SMALL, "HEAD", {}),
        ("sa_000999.tar", "GET", {}),
        (SMALL, "GET", {}),
        (BIG, "GET", {"Range": "bytes=999999-"}),
    ]:
        statuses.append(fetch(conn, server.url_for(name), method=method, headers=headers).status)
        sock = conn.sock
        assert sock is not None
    assert statuses == [206, 200, 404, 200, 416]
    assert conn.sock is sock
    assert server.connections_total == 1


def test_request_log_never_holds_the_query(server: CDNServer, get: Get) -> None:
    get(BIG, Range="bytes=5-9", **{"If-Range": '"x"'})
    get(SMALL, "HEAD")
    records = server.requests
    assert [(r.name, r.method, r.status, r.bytes_sent) for r in records] == [
        (BIG, "GET", 200, 300_000),
        (SMALL, "HEAD", 200, 0),
    ]
    assert records[0].range_header == "bytes=5-9" and records[0].if_range == '"x"'
    text = repr(records)
    assert "oh=" not in text and "oe=" not in text and "/m1/" not in text
    server.clear_requests()
    assert server.requests == [] and server.bytes_sent_total == 0


# -- faults --------------------------------------------------------------------------------


def _stream(server: CDNServer, opened: Conns, name: str = BIG) -> http.client.HTTPResponse:
    conn = _connect(server, opened)
    conn.request("GET", _target(server.url_for(name)))
    return conn.getresponse()


def test_cut_fin_truncates_then_recovers(server: CDNServer, connections: Conns, get: Get) -> None:
    server.add_fault(BIG, Fault("cut", after=1000))
    response = _stream(server, connections)
    assert response.status == 200 and response.headers["Content-Length"] == "300000"
    with pytest.raises(http.client.IncompleteRead) as info:
        response.read()
    assert len(info.value.partial) == 1000
    assert server.bytes_sent(BIG) == 1000
    assert get(BIG).status == 200 and server.pending_faults() == 0


def test_cut_rst_resets(server: CDNServer, connections: Conns) -> None:
    server.add_fault(BIG, Fault("cut", after=5000, mode="rst"))
    response = _stream(server, connections)
    received = 0
    with pytest.raises(ConnectionResetError):
        while chunk := response.read1(65536):
            received += len(chunk)
    assert received <= 5000


def test_stall_holds_then_closes(server: CDNServer, connections: Conns) -> None:
    server.add_fault(BIG, Fault("stall", after=2000, seconds=0.3))
    response = _stream(server, connections)
    started = time.monotonic()
    with pytest.raises(http.client.IncompleteRead) as info:
        response.read()
    assert time.monotonic() - started >= 0.25
    assert len(info.value.partial) == 2000


def test_trickle_sends_one_byte_at_a_time_after_the_first(
    server: CDNServer, connections: Conns
) -> None:
    server.add_fault(BIG, Fault("trickle", after=1000, seconds=0.05))
    response = _stream(server, connections)
    assert response.status == 200 and response.headers["Content-Length"] == "300000"
    started = time.monotonic()
    assert len(response.read(1003)) == 1003
    assert time.monotonic() - started >= 0.1  # three bytes after the first thousand
    assert server.bytes_sent(BIG) < 100_000  # never the rest at once


@pytest.mark.parametrize(
    ("fault", "status", "body"),
    [
        (Fault("status", status=503), 503, b"503 Service Unavailable\n"),
        (Fault("status", status=503, retry_after=1), 503, b"503 Service Unavailable\n"),
        (Fault("status", status=408), 408, b"408 Request Timeout\n"),
        (Fault("forbidden"), 403, b"URL signature expired"),
        (Fault("not_found"), 404, b"Not Found"),
        (Fault("throttle", retry_after=2.5), 429, b"Too Many Requests\n"),
    ],
)
def test_status_faults_then_normal(
    server: CDNServer, get: Get, fault: Fault, status: int, body: bytes
) -> None:
    server.add_fault(BIG, fault)
    reply = get(BIG)
    assert (reply.status, reply.body) == (status, body)
    if fault.kind == "throttle":
        assert reply.headers["Retry-After"] == "2.5"
    else:
        expected = None if fault.retry_after is None else f"{fault.retry_after:g}"
        assert reply.headers["Retry-After"] == expected
    assert get(BIG).status == 200


def test_ignore_range(server: CDNServer, root: Path, get: Get) -> None:
    server.add_fault(BIG, Fault("ignore_range"))
    reply = get(BIG, Range="bytes=100-199")
    assert reply.status == 200 and "Content-Range" not in reply.headers
    assert reply.body == data(root)
    assert get(BIG, Range="bytes=100-199").status == 206


def test_wrong_range(server: CDNServer, root: Path, get: Get) -> None:
    server.add_fault(BIG, Fault("wrong_range"))
    reply = get(BIG, Range="bytes=10000-10999")
    assert reply.status == 206
    assert reply.headers["Content-Range"] == "bytes 14096-15095/300000"
    assert reply.body == data(root)[14096:15096]


def test_change_etag_makes_old_validator_stale(server: CDNServer, root: Path, get: Get) -> None:
    old = get(BIG, Range="bytes=0-9").headers
    server.add_fault(BIG, Fault("change_etag"))
    reply = get(BIG, Range="bytes=10-19", **{"If-Range": old["ETag"]})
    assert reply.status == 200 and reply.body == data(root)
    new = reply.headers
    assert new["ETag"] != old["ETag"] and new["Last-Modified"] != old["Last-Modified"]
    # The change persists and the new validator works.
    assert get(BIG, Range="bytes=10-19", **{"If-Range": new["ETag"]}).status == 206
    assert get(BIG, Range="bytes=10-19", **{"If-Range": old["Last-Modified"]}).status == 200


def test_any_file_faults_times_and_head(server: CDNServer, get: Get) -> None:
    server.add_fault("*", Fault("status", status=500, times=2))
    server.add_fault(SMALL, Fault("cut", after=10))
    assert get(IDS).status == 500
    assert get(SMALL, "HEAD").status == 500  # HEAD takes status faults, not the cut
    assert get(IDS).status == 200
    assert server.pending_faults() == 1
    server.clear_faults()
    assert get(SMALL).status == 200


def test_client_going_away_mid_body_is_harmless(
    server: CDNServer, connections: Conns, get: Get
) -> None:
    response = _stream(server, connections)
    response.read(10)
    connections[-1].close()
    assert get(SMALL).status == 200
    wait_for(lambda: len(server.requests) >= 2, timeout=30, message="both requests logged")
    assert sorted((r.name, r.status) for r in server.requests) == [(BIG, 200), (SMALL, 200)]


def test_reset_by_client_is_not_printed(
    server: CDNServer, get: Get, capfd: pytest.CaptureFixture[str]
) -> None:
    raw = socket.create_connection(("127.0.0.1", server.port))
    raw.sendall(b"GET /m1/v/t6/x HTTP/1.1\r\nHost: x\r\n")  # headers never finished
    raw.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    raw.close()
    assert get(SMALL).status == 200
    server.stop()  # joins the thread that met the reset: whatever it printed is out by now
    assert capfd.readouterr().err == ""


def test_rate_cap_paces_bodies(root: Path, connections: Conns) -> None:
    with CDNServer(root=root, rate_per_connection=1_000_000) as server:
        conn = _connect(server, connections)
        started = time.monotonic()
        reply = fetch(conn, server.url_for(BIG))
        elapsed = time.monotonic() - started
    assert reply.body == data(root)
    assert elapsed >= 0.25  # 300 kB at 1 MB/s (no upper bound: speed is the benchmarks' job)


def test_stop_ends_idle_keep_alive_connections(root: Path, connections: Conns) -> None:
    server = CDNServer(root=root)
    server.start()
    conn = _connect(server, connections)
    url = server.url_for(SMALL)
    assert fetch(conn, url).status == 200
    server.stop()
    with pytest.raises(OSError):  # the idle connection was ended, not left to its thread
        fetch(conn, url)


# -- links files ---------------------------------------------------------------------------


@pytest.mark.parametrize("style", ["official", "crlf", "spaces", "noheader", "urls"])
def test_links_file_styles(
    server: CDNServer, tmp_path: Path, connections: Conns, style: str
) -> None:
    out = tmp_path / "links.txt"
    server.write_links_file(out, style=style)  # type: ignore[arg-type]
    raw = out.read_bytes()
    assert raw.endswith(b"\n")
    assert (b"\r\n" in raw) is (style == "crlf")
    lines = raw.decode().splitlines()
    if style in ("official", "crlf"):
        assert lines.pop(0) == "file_name\tcdn_link"
    if style == "urls":
        urls = lines
    else:
        sep = " " if style == "spaces" else "\t"
        rows = [line.split(sep) for line in lines]
        assert sorted(name for name, _ in rows) == [BIG, SMALL, IDS]
        urls = [url for _, url in rows]
    assert len(urls) == 3 and all("?_nc_gid&ccb=10-5&oh=00_" in u for u in urls)
    conn = _connect(server, connections)
    assert {fetch(conn, u, method="HEAD").status for u in urls} == {200}


def test_links_file_with_names_and_expiry(
    server: CDNServer, tmp_path: Path, clock: FakeClock
) -> None:
    out = tmp_path / "links.tsv"
    server.write_links_file(out, [SMALL, BIG], expires_at=int(T0) + 60)
    lines = out.read_text().splitlines()
    assert [line.split("\t")[0] for line in lines[1:]] == [SMALL, BIG]
    assert all(f"oe={int(T0) + 60:08X}" in line for line in lines[1:])


# -- HTTPS ---------------------------------------------------------------------------------


def test_https_serves_ranges_and_acts_out_cuts(root: Path, certificates: CertificatePaths) -> None:
    client = ssl.create_default_context(cafile=str(certificates.ca))
    with CDNServer(root=root, tls=server_context(certificates)) as server:
        url = server.url_for(BIG)
        assert url.startswith(f"https://127.0.0.1:{server.port}/")
        conn = http.client.HTTPSConnection("127.0.0.1", server.port, timeout=5, context=client)
        try:
            reply = fetch(conn, url, headers={"Range": "bytes=1000-200999"})
            assert reply.status == 206 and reply.body == data(root)[1000:201000]
            server.add_fault(BIG, Fault("cut", after=4000))
            conn.request("GET", _target(url))
            response = conn.getresponse()
            with pytest.raises((http.client.IncompleteRead, ssl.SSLError)):
                response.read()
            assert server.bytes_sent(BIG) == 200_000 + 4000
        finally:
            conn.close()
        with socket.create_connection(("127.0.0.1", server.port), timeout=5) as plain:
            plain.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")  # no TLS: no answer
            assert not plain.recv(100).startswith(b"HTTP/")
