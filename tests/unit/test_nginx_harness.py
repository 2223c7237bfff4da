"""The nginx test harness (harness.nginx) against a real nginx on loopback."""

from __future__ import annotations

import contextlib
import http.client
import os
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from harness import nginx as nginx_module
from harness.certs import (
    CertificateError,
    CertificatePaths,
    make_certificates,
)
from harness.nginx import (
    NginxError,
    NginxNotFoundError,
    NginxServer,
)
from tests.waiting import wait_for

# No skips: without nginx or openssl these tests fail, with the install hint
# (NGINX_NOT_FOUND_MESSAGE, OPENSSL_NOT_FOUND_MESSAGE), like every test that needs them.

MIB = 1 << 20


@pytest.fixture
def root(tmp_path: Path) -> Path:
    directory = tmp_path / "root"
    directory.mkdir()
    (directory / "small.bin").write_bytes(bytes(range(256)) * 4096)  # 1 MiB, known pattern
    return directory


@pytest.fixture
def server(root: Path) -> Iterator[NginxServer]:
    with NginxServer(root=root) as srv:
        yield srv


def get(
    srv: NginxServer,
    path: str,
    headers: dict[str, str] | None = None,
    *,
    context: ssl.SSLContext | None = None,
) -> tuple[int, dict[str, str], bytes]:
    """One GET to ``srv``; over TLS with ``context``."""
    conn = (
        http.client.HTTPSConnection("127.0.0.1", srv.port, timeout=30, context=context)
        if context is not None
        else http.client.HTTPConnection("127.0.0.1", srv.port, timeout=30)
    )
    try:
        conn.request("GET", path, headers=headers or {})
        response = conn.getresponse()
        body = response.read()
        return response.status, {k.lower(): v for k, v in response.getheaders()}, body
    finally:
        conn.close()


def process_exists(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:  # a zombie still answers kill(0)
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def children_of(pid: int) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            found.append(int(entry.name))
    return found


# -- without nginx -------------------------------------------------------------------------------


def test_missing_binary_names_the_package(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setattr(shutil, "which", lambda _name: None)
    monkeypatch.setattr(nginx_module, "_NGINX_FALLBACK_PATHS", ())
    with pytest.raises(NginxNotFoundError) as info:
        NginxServer(root=tmp_path).start()
    assert str(info.value) == (
        "nginx not found: install Debian's nginx-light (apt-get install nginx-light)"
    )
    assert isinstance(info.value, FileNotFoundError)


@pytest.mark.parametrize("rate", ["8m; evil", "", "8 m", "-1", "8mb"])
def test_limit_rate_is_validated(tmp_path: Path, rate: str) -> None:
    with pytest.raises(ValueError, match="limit_rate"):
        NginxServer(root=tmp_path, limit_rate=rate)


def test_root_with_dollar_is_refused(tmp_path: Path) -> None:
    root = tmp_path / "a$b"
    root.mkdir()
    with pytest.raises(ValueError, match=r"\$"):
        NginxServer(root=root)


def test_config_contents(tmp_path: Path) -> None:
    srv = NginxServer(root=tmp_path, limit_rate="8m", workdir=tmp_path / "prefix")
    srv._prefix = tmp_path / "prefix"
    conf = srv._render_config(4321)
    assert "listen 127.0.0.1:4321;" in conf
    assert "limit_rate 8m;" in conf
    assert "max_ranges 1;" in conf
    assert "sendfile on;" in conf
    assert "tcp_nopush on;" in conf
    assert "keepalive_requests 100000;" in conf
    assert "daemon" not in conf  # given on the command line
    assert ("user root;" in conf) == (os.geteuid() == 0)
    assert str(tmp_path / "prefix") in conf
    unlimited = NginxServer(root=tmp_path)
    unlimited._prefix = tmp_path / "prefix"
    assert "limit_rate" not in unlimited._render_config(4321)


def test_accessors_before_start(tmp_path: Path) -> None:
    srv = NginxServer(root=tmp_path)
    with pytest.raises(NginxError):
        _ = srv.base_url
    assert not srv.running
    srv.stop()  # harmless


# -- with nginx ----------------------------------------------------------------------------------


def test_serves_range_requests(server: NginxServer, root: Path) -> None:
    data = (root / "small.bin").read_bytes()
    assert server.base_url == f"http://127.0.0.1:{server.port}"
    assert server.url_for("small.bin") == f"{server.base_url}/small.bin"

    status, headers, body = get(server, "/small.bin", {"Range": "bytes=1000-1999"})
    assert status == 206
    assert body == data[1000:2000]
    assert headers["content-range"] == f"bytes 1000-1999/{len(data)}"
    assert headers["content-length"] == "1000"
    assert headers["etag"].startswith('"')

    status, _, body = get(server, "/small.bin", {"Range": f"bytes={len(data) - 10}-"})
    assert status == 206
    assert body == data[-10:]

    status, _, body = get(server, "/small.bin")
    assert status == 200
    assert body == data

    status, _, _ = get(server, "/missing.tar")
    assert status == 404


def test_if_range_and_single_range_only(server: NginxServer, root: Path) -> None:
    data = (root / "small.bin").read_bytes()
    _, headers, _ = get(server, "/small.bin", {"Range": "bytes=0-0"})
    etag = headers["etag"]
    status, _, body = get(server, "/small.bin", {"Range": "bytes=5-9", "If-Range": etag})
    assert (status, body) == (206, data[5:10])
    status, _, body = get(server, "/small.bin", {"Range": "bytes=5-9", "If-Range": '"other"'})
    assert (status, body) == (200, data)
    # max_ranges 1: a multi-range request is answered with the whole file
    status, _, body = get(server, "/small.bin", {"Range": "bytes=0-1,10-11"})
    assert (status, body) == (200, data)


def test_bytes_sent_counts_per_file_and_total(root: Path) -> None:
    (root / "other.bin").write_bytes(b"x" * 5000)
    with NginxServer(root=root) as srv:
        assert srv.bytes_sent() == 0
        get(srv, "/small.bin", {"Range": "bytes=0-99"})
        get(srv, "/small.bin", {"Range": "bytes=100-299"})
        get(srv, "/other.bin")
        get(srv, "/nothing-here")
        wait_for(lambda: len(srv.log_entries()) == 4, timeout=30, message="four requests logged")
        assert srv.bytes_sent("small.bin") == 300
        assert srv.bytes_sent("other.bin") == 5000
        assert srv.bytes_sent("absent.bin") == 0
        nothing = srv.bytes_sent("nothing-here")  # the 404 page's body
        assert srv.bytes_sent() == 5300 + nothing
        entries = srv.log_entries()
        assert [e.status for e in entries] == [206, 206, 200, 404]
        assert entries[0].range == "bytes=0-99"
        assert entries[2].range == ""
        # $bytes_sent adds the response headers (a status line and a few headers at least)
        assert all(100 < e.bytes_sent - e.body_bytes_sent < 1000 for e in entries)
        assert srv.response_bytes("small.bin") == entries[0].bytes_sent + entries[1].bytes_sent
        assert srv.response_bytes() == sum(e.bytes_sent for e in entries)
        srv.clear_log()
        assert srv.bytes_sent() == 0
        get(srv, "/other.bin", {"Range": "bytes=0-9"})
        wait_for(lambda: srv.bytes_sent() == 10, timeout=30, message="ten bytes logged")
    # the log survives stop() even though the temporary prefix is gone
    assert srv.bytes_sent("other.bin") == 10


def test_bytes_sent_counts_an_aborted_transfer(root: Path) -> None:
    (root / "big.bin").write_bytes(os.urandom(16 * MIB))
    with NginxServer(root=root, limit_rate="4m") as srv:
        conn = http.client.HTTPConnection("127.0.0.1", srv.port, timeout=30)
        conn.request("GET", "/big.bin")
        response = conn.getresponse()
        response.read(MIB)
        conn.close()  # drop the connection mid-body
        wait_for(
            lambda: len(srv.log_entries()) == 1, timeout=30, message="the aborted request logged"
        )
        sent = srv.bytes_sent("big.bin")
        assert MIB <= sent < 16 * MIB


def test_limit_rate_caps_one_connection(root: Path) -> None:
    size = 16 * MIB
    (root / "big.bin").write_bytes(os.urandom(size))
    with NginxServer(root=root, limit_rate="8m") as srv:
        conn = http.client.HTTPConnection("127.0.0.1", srv.port, timeout=60)
        try:
            started = time.monotonic()
            conn.request("GET", "/big.bin")
            response = conn.getresponse()
            received = len(response.read())
            elapsed = time.monotonic() - started
        finally:
            conn.close()
    assert received == size
    rate = size / elapsed
    cap = 8 * MIB
    # socket buffers let a little more through than the cap; nothing near loopback speed (no
    # lower bound: how fast a loaded machine reads is the benchmarks' business)
    assert rate < 1.3 * cap, f"{rate / MIB:.1f} MiB/s against an 8 MiB/s cap"


def test_stop_leaves_no_process(root: Path, tmp_path: Path) -> None:
    prefix = tmp_path / "prefix"
    srv = NginxServer(root=root, workdir=prefix)
    srv.start()
    try:
        master = srv.pid
        assert master is not None
        assert srv.running
        # The port answers once the master listens; its workers may come a moment later.
        workers = wait_for(
            lambda: children_of(master), timeout=30, message="a worker process of nginx"
        )
        assert int((prefix / "nginx.pid").read_text()) == master
    finally:
        srv.stop()
    assert not srv.running
    for pid in [master, *workers]:
        assert not process_exists(pid), f"nginx process {pid} survived stop()"
    with pytest.raises(ProcessLookupError):
        os.killpg(master, 0)
    assert prefix.is_dir()  # a given workdir is kept (logs stay readable)
    srv.stop()  # idempotent


#: Starts nginx, says the master's pid, then waits to be killed.
_STARTER = """
import sys, time
from pathlib import Path
from harness.nginx import NginxServer
server = NginxServer(root=Path(sys.argv[1]), workdir=Path(sys.argv[2]))
server.start()
print(server.pid, flush=True)
time.sleep(600)
"""


def test_nginx_stops_when_the_process_that_started_it_is_killed(root: Path, tmp_path: Path) -> None:
    with subprocess.Popen(
        [sys.executable, "-c", _STARTER, str(root), str(tmp_path / "prefix")],
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)},
    ) as starter:
        try:
            assert starter.stdout is not None
            master = int(starter.stdout.readline())
            workers = wait_for(
                lambda: children_of(master), timeout=30, message="a worker process of nginx"
            )
        finally:
            starter.kill()  # SIGKILL: no teardown runs in it
    try:
        wait_for(
            lambda: not any(process_exists(pid) for pid in [master, *workers]),
            timeout=30,
            message="nginx's master and workers gone after the starter was killed",
        )
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(master, signal.SIGKILL)


def test_temporary_prefix_is_removed(root: Path) -> None:
    with NginxServer(root=root) as srv:
        prefix = srv.prefix
        assert (prefix / "nginx.conf").is_file()
    assert not prefix.exists()


def test_explicit_port_and_port_in_use(root: Path) -> None:
    with NginxServer(root=root) as first:
        port = first.port
        with pytest.raises(NginxError, match="Address already in use"):
            NginxServer(root=root, port=port).start()
    with NginxServer(root=root, port=port) as second:
        assert second.port == port
        assert get(second, "/small.bin", {"Range": "bytes=0-3"})[0] == 206


def test_start_twice_is_an_error(server: NginxServer) -> None:
    with pytest.raises(NginxError, match="already running"):
        server.start()


def test_names_are_quoted_in_urls(root: Path) -> None:
    (root / "with space.txt").write_bytes(b"hello")
    with NginxServer(root=root) as srv:
        url = srv.url_for("with space.txt")
        assert url.endswith("/with%20space.txt")
        status, _, body = get(srv, "/with%20space.txt")
        assert (status, body) == (200, b"hello")
        wait_for(
            lambda: srv.bytes_sent("with space.txt") == 5, timeout=30, message="the request logged"
        )


# -- TLS -----------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def certs(tmp_path_factory: pytest.TempPathFactory) -> CertificatePaths:
    return make_certificates(tmp_path_factory.mktemp("tls"))


def negotiated_alpn(srv: NginxServer, context: ssl.SSLContext, host: str = "127.0.0.1") -> str:
    context.set_alpn_protocols(["h2", "http/1.1"])
    with (
        socket.create_connection(("127.0.0.1", srv.port), timeout=10) as raw,
        context.wrap_socket(raw, server_hostname=host) as tls,
    ):
        return tls.selected_alpn_protocol() or ""


def test_tls_config_contents(tmp_path: Path) -> None:
    cert, key = tmp_path / "server.pem", tmp_path / "server.key"
    srv = NginxServer(root=tmp_path, tls=(cert, key), http2=True)
    srv._prefix = tmp_path / "prefix"
    conf = srv._render_config(4321)
    assert "listen 127.0.0.1:4321 ssl http2;" in conf
    assert f'ssl_certificate "{cert}";' in conf
    assert f'ssl_certificate_key "{key}";' in conf
    assert "ssl_protocols TLSv1.2 TLSv1.3;" in conf
    assert "ssl_session_cache shared:SSL:10m;" in conf
    assert "ssl_buffer_size" not in conf
    assert "sendfile on;" in conf
    h1 = NginxServer(root=tmp_path, tls=(cert, key))
    h1._prefix = tmp_path / "prefix"
    assert "listen 127.0.0.1:4321 ssl;" in h1._render_config(4321)
    plain = NginxServer(root=tmp_path)
    plain._prefix = tmp_path / "prefix"
    assert "ssl" not in plain._render_config(4321)


def test_http2_needs_tls(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="http2 needs tls"):
        NginxServer(root=tmp_path, http2=True)


def test_make_certificates_refuses_bad_input(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="host"):
        make_certificates(tmp_path, hosts=("bad host",))
    with pytest.raises(ValueError, match="days"):
        make_certificates(tmp_path, days=0)
    with pytest.raises(CertificateError, match="could not run"):
        make_certificates(tmp_path, openssl=str(tmp_path / "no-such-openssl"))


def test_make_certificates_files(certs: CertificatePaths) -> None:
    assert certs.ca.read_text().startswith("-----BEGIN CERTIFICATE-----")
    assert certs.certificate.read_text().startswith("-----BEGIN CERTIFICATE-----")
    assert "PRIVATE KEY" in certs.key.read_text()
    assert certs.key.stat().st_mode & 0o077 == 0
    assert sorted(p.name for p in certs.ca.parent.iterdir()) == [
        "ca.pem",
        "server.key",
        "server.pem",
    ]  # the CA key is gone


def test_tls_missing_certificate_file(root: Path, tmp_path: Path) -> None:
    srv = NginxServer(root=root, tls=(tmp_path / "absent.pem", tmp_path / "absent.key"))
    with pytest.raises(FileNotFoundError, match=r"absent\.pem"):
        srv.start()


def test_tls_serves_ranges_to_a_client_that_trusts_the_ca(
    root: Path, certs: CertificatePaths
) -> None:
    data = (root / "small.bin").read_bytes()
    context = ssl.create_default_context(cafile=str(certs.ca))
    with NginxServer(root=root, tls=(certs.certificate, certs.key), http2=True) as srv:
        assert srv.scheme == "https"
        assert srv.base_url == f"https://127.0.0.1:{srv.port}"
        assert srv.url_for("small.bin") == f"{srv.base_url}/small.bin"
        ranged = {"Range": "bytes=1000-1999"}
        status, headers, body = get(srv, "/small.bin", ranged, context=context)
        assert (status, body) == (206, data[1000:2000])
        assert headers["content-range"] == f"bytes 1000-1999/{len(data)}"
        status, _, body = get(srv, "/small.bin", context=context)
        assert (status, body) == (200, data)
        wait_for(
            lambda: srv.bytes_sent("small.bin") == 1000 + len(data),
            timeout=30,
            message="both requests logged",
        )
        # the certificate is valid for localhost too
        assert negotiated_alpn(srv, ssl.create_default_context(cafile=str(certs.ca)), "localhost")


def test_tls_client_without_the_ca_is_refused(root: Path, certs: CertificatePaths) -> None:
    with NginxServer(root=root, tls=(certs.certificate, certs.key)) as srv:
        stranger = ssl.create_default_context()  # the system's CAs only
        with pytest.raises(ssl.SSLCertVerificationError, match="certificate verify failed"):
            get(srv, "/small.bin", {"Range": "bytes=0-9"}, context=stranger)
        # trusting the CA is not enough for a name the certificate does not carry
        trusting = ssl.create_default_context(cafile=str(certs.ca))
        with pytest.raises(ssl.SSLCertVerificationError, match="mismatch"):
            negotiated_alpn(srv, trusting, "example.com")
        # and a plain-HTTP client gets no file
        status, _, body = get(srv, "/small.bin")
        assert status == 400
        assert b"HTTPS" in body


@pytest.mark.parametrize("http2", [True, False])
def test_http2_is_offered_through_alpn_only_when_asked(
    root: Path, certs: CertificatePaths, http2: bool
) -> None:
    with NginxServer(root=root, tls=(certs.certificate, certs.key), http2=http2) as srv:
        offering_h2 = ssl.create_default_context(cafile=str(certs.ca))
        assert negotiated_alpn(srv, offering_h2) == ("h2" if http2 else "http/1.1")
        # an HTTP/1.1 client (no ALPN) is still served
        no_alpn = ssl.create_default_context(cafile=str(certs.ca))
        status, _, body = get(srv, "/small.bin", {"Range": "bytes=0-3"}, context=no_alpn)
        assert (status, body) == (206, bytes(range(4)))
