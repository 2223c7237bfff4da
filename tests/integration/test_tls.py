"""HTTPS: certificates are always verified; a verified server works end to end."""

from __future__ import annotations

import os
import re
import ssl
import subprocess
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from sa1b.cdn.synth import ShardInfo

from .conftest import assert_identical, run_cli


def _openssl(*args: str) -> None:
    subprocess.run(["openssl", *args], check=True, capture_output=True)


@pytest.fixture(scope="session")
def certificates(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A private CA and a certificate it signed for 127.0.0.1."""
    d = tmp_path_factory.mktemp("tls")
    _openssl(
        "req",
        "-x509",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-days",
        "2",
        "-subj",
        "/CN=sa1b test CA",
        "-keyout",
        str(d / "ca.key"),
        "-out",
        str(d / "ca.pem"),
    )
    _openssl(
        "req",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-subj",
        "/CN=127.0.0.1",
        "-keyout",
        str(d / "server.key"),
        "-out",
        str(d / "server.csr"),
    )
    (d / "san.ext").write_text("subjectAltName=IP:127.0.0.1\n")
    _openssl(
        "x509",
        "-req",
        "-in",
        str(d / "server.csr"),
        "-CA",
        str(d / "ca.pem"),
        "-CAkey",
        str(d / "ca.key"),
        "-CAcreateserial",
        "-days",
        "2",
        "-extfile",
        str(d / "san.ext"),
        "-out",
        str(d / "server.pem"),
    )
    return d


class _RangeHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    root: Path

    def do_GET(self) -> None:
        path = self.root / self.path.lstrip("/").split("?")[0]
        if not path.is_file():
            self.send_error(404)
            return
        data = path.read_bytes()
        match = re.fullmatch(r"bytes=(\d+)-(\d*)", self.headers.get("Range", ""))
        start, end = 0, len(data) - 1
        if match:
            start = int(match.group(1))
            end = min(int(match.group(2) or end), end)
            self.send_response(206)
            self.send_header("Content-Range", f"bytes {start}-{end}/{len(data)}")
        else:
            self.send_response(200)
        self.send_header("Content-Length", str(end + 1 - start))
        self.send_header("ETag", '"v1"')
        self.end_headers()
        self.wfile.write(data[start : end + 1])

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def https_base(certificates: Path, shards: list[ShardInfo]) -> Iterator[str]:
    handler = type("Handler", (_RangeHandler,), {"root": shards[0].path.parent})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    server.daemon_threads = True
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(certificates / "server.pem", certificates / "server.key")
    server.socket = context.wrap_socket(server.socket, server_side=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"https://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def _links(base: str, shards: list[ShardInfo], path: Path) -> Path:
    path.write_text("".join(f"{base}/{s.name}?oh=00_secret&oe=7FFFFFFF\n" for s in shards))
    return path


def test_unknown_certificate_authority_is_refused_not_retried(
    https_base: str, shards: list[ShardInfo], tmp_path: Path
) -> None:
    links = _links(https_base, shards, tmp_path / "urls.txt")
    out = tmp_path / "out"
    result = run_cli("download", "--no-extract", links, "-o", out, "--log-file", tmp_path / "log")
    assert result.returncode == 1
    assert "TLS verification failed" in result.output
    assert "retrying" not in (tmp_path / "log").read_text()
    assert not (out / "tars").exists()
    assert "00_secret" not in result.output


def test_trusted_certificate_downloads_over_tls(
    https_base: str,
    certificates: Path,
    shards: list[ShardInfo],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("SSL_CERT_FILE", str(certificates / "ca.pem"))
    assert os.environ["SSL_CERT_FILE"]
    links = _links(https_base, shards, tmp_path / "urls.txt")
    out = tmp_path / "out"
    result = run_cli("download", "--no-extract", links, "-o", out, "--connections", "4")
    assert result.returncode == 0, result.output
    assert_identical(out, shards)
