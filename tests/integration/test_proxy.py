"""Through proxies: HTTP (CONNECT tunnels for HTTPS, absolute form for HTTP), a proxy spoken
to over TLS, SOCKS5; credentials; NO_PROXY."""

from __future__ import annotations

import base64
import contextlib
import socket
import ssl
import struct
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from harness.certs import CertificatePaths
from sa1b.cdn.server import CDNServer
from sa1b.cdn.synth import ShardInfo
from tests.scripted import Peer, server_context, serving

from .conftest import assert_identical, run_cli


def listen(serve: Callable[[socket.socket], None]) -> tuple[socket.socket, int]:
    """A listening socket on loopback whose every connection ``serve`` gets in a thread."""
    listener = socket.create_server(("127.0.0.1", 0))

    def accept() -> None:
        while True:
            try:
                client, _ = listener.accept()
            except OSError:
                return
            threading.Thread(target=serve, args=(client,), daemon=True).start()

    threading.Thread(target=accept, daemon=True).start()
    return listener, listener.getsockname()[1]


@dataclass
class TinyProxy:
    """A forward proxy on loopback that understands CONNECT and absolute-form GET."""

    credentials: str | None = None
    tls: ssl.SSLContext | None = None
    """Spoken to over TLS (an ``https://`` proxy) when given."""
    seen: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.listener, self.port = listen(self._start)

    def _start(self, client: socket.socket) -> None:
        if self.tls is not None:
            try:
                client = self.tls.wrap_socket(client, server_side=True)
            except OSError:
                client.close()
                return
        self._serve(client)

    @staticmethod
    def _head(sock: socket.socket, buffer: bytearray) -> bytes | None:
        while b"\r\n\r\n" not in buffer:
            chunk = sock.recv(65536)
            if not chunk:
                return None
            buffer += chunk
        end = buffer.index(b"\r\n\r\n") + 4
        head = bytes(buffer[:end])
        del buffer[:end]
        return head

    def _authorised(self, head: bytes) -> bool:
        if self.credentials is None:
            return True
        expected = "Basic " + base64.b64encode(self.credentials.encode()).decode()
        return f"proxy-authorization: {expected}".lower().encode() in head.lower()

    def _serve(self, client: socket.socket) -> None:
        with contextlib.closing(client), contextlib.suppress(OSError):
            buffer = bytearray()
            head = self._head(client, buffer)
            if head is None:
                return
            method, target, _ = head.split(b"\r\n", 1)[0].decode().split(" ")
            self.seen.append(f"{method} {target.split('?')[0]}")
            if not self._authorised(head):
                client.sendall(
                    b"HTTP/1.1 407 Proxy Authentication Required\r\nContent-Length: 0\r\n\r\n"
                )
                return
            if method == "CONNECT":
                host, port = target.rsplit(":", 1)
                with socket.create_connection((host, int(port))) as upstream:
                    client.sendall(b"HTTP/1.1 200 Connection established\r\n\r\n")
                    self._pipe(client, upstream, bytes(buffer))
            else:
                self._forward(client, head, buffer)

    @staticmethod
    def _pipe(client: socket.socket, upstream: socket.socket, early: bytes) -> None:
        def copy(src: socket.socket, dst: socket.socket) -> None:
            with contextlib.suppress(OSError):
                while data := src.recv(65536):
                    dst.sendall(data)
            with contextlib.suppress(OSError):
                dst.shutdown(socket.SHUT_WR)

        if early:
            upstream.sendall(early)
        back = threading.Thread(target=copy, args=(upstream, client), daemon=True)
        back.start()
        copy(client, upstream)
        back.join()

    def _forward(self, client: socket.socket, head: bytes, buffer: bytearray) -> None:
        """Absolute-form requests, one at a time, rewritten to origin form."""
        with contextlib.ExitStack() as stack:
            stack.enter_context(contextlib.suppress(OSError))
            self._relay(client, head, buffer, stack)

    def _relay(
        self, client: socket.socket, head: bytes, buffer: bytearray, stack: contextlib.ExitStack
    ) -> None:
        upstream: socket.socket | None = None
        upbuffer = bytearray()
        current: bytes | None = head
        while current is not None:
            line, rest = current.split(b"\r\n", 1)
            method, url, version = line.decode().split(" ")
            assert url.startswith("http://"), url
            hostport, _, path = url[len("http://") :].partition("/")
            if upstream is None:
                host, port = hostport.rsplit(":", 1)
                upstream = stack.enter_context(socket.create_connection((host, int(port))))
            upstream.sendall(f"{method} /{path} {version}\r\n".encode() + rest)
            answer = self._head(upstream, upbuffer)
            assert answer is not None
            length = 0
            for header in answer.split(b"\r\n"):
                if header.lower().startswith(b"content-length:"):
                    length = int(header.split(b":")[1])
            client.sendall(answer)
            while len(upbuffer) < length:
                upbuffer += upstream.recv(1 << 20)
            client.sendall(bytes(upbuffer[:length]))
            del upbuffer[:length]
            current = self._head(client, buffer)
            if current is not None:
                self.seen.append(current.split(b" ")[0].decode() + " (kept alive)")

    def close(self) -> None:
        self.listener.close()


@pytest.fixture
def proxy() -> Iterator[TinyProxy]:
    server = TinyProxy()
    yield server
    server.close()


def test_https_goes_through_a_connect_tunnel_with_tls_verified(
    proxy: TinyProxy,
    https_base: str,
    certificates: CertificatePaths,
    shards: list[ShardInfo],
    tmp_path: Path,
) -> None:
    links = tmp_path / "urls.txt"
    links.write_text("".join(f"{https_base}/{s.name}?oh=00_sig&oe=7FFFFFFF\n" for s in shards))
    out = tmp_path / "out"
    result = run_cli(
        "download",
        "--no-extract",
        links,
        "-o",
        out,
        "--connections",
        "3",
        env={
            "HTTPS_PROXY": f"http://127.0.0.1:{proxy.port}",
            "SSL_CERT_FILE": str(certificates.ca),
        },
    )
    assert result.returncode == 0, result.output
    assert_identical(out, shards)
    host = https_base.removeprefix("https://")
    assert proxy.seen and all(line == f"CONNECT {host}" for line in proxy.seen)


def test_plain_http_goes_in_absolute_form(
    proxy: TinyProxy, cdn: CDNServer, links: Path, shards: list[ShardInfo], tmp_path: Path
) -> None:
    out = tmp_path / "out"
    result = run_cli(
        "download",
        "--no-extract",
        links,
        "-o",
        out,
        "--connections",
        "2",
        env={"http_proxy": f"127.0.0.1:{proxy.port}"},
    )
    assert result.returncode == 0, result.output
    assert_identical(out, shards)
    assert any(line.startswith(f"GET {cdn.base_url}/m1/") for line in proxy.seen)
    assert any(line.endswith("(kept alive)") for line in proxy.seen)


def test_proxy_credentials(
    cdn: CDNServer, links: Path, shards: list[ShardInfo], tmp_path: Path
) -> None:
    guarded = TinyProxy(credentials="ann:s3cret")
    try:
        refused = run_cli(
            "download",
            "--no-extract",
            links,
            "-o",
            tmp_path / "a",
            env={"HTTP_PROXY": f"http://127.0.0.1:{guarded.port}"},
        )
        assert refused.returncode == 1
        assert "407" in refused.output and "credentials" in refused.output
        accepted = run_cli(
            "download",
            "--no-extract",
            links,
            "-o",
            tmp_path / "b",
            env={"HTTP_PROXY": f"http://ann:s3cret@127.0.0.1:{guarded.port}"},
        )
        assert accepted.returncode == 0, accepted.output
        assert_identical(tmp_path / "b", shards)
        assert "s3cret" not in refused.output + accepted.output
    finally:
        guarded.close()


def test_no_proxy_bypasses_it(
    proxy: TinyProxy, links: Path, shards: list[ShardInfo], tmp_path: Path
) -> None:
    out = tmp_path / "out"
    result = run_cli(
        "download",
        "--no-extract",
        links,
        "-o",
        out,
        env={"HTTP_PROXY": f"http://127.0.0.1:{proxy.port}", "NO_PROXY": "example.org,127.0.0.1"},
    )
    assert result.returncode == 0, result.output
    assert_identical(out, shards)
    assert proxy.seen == []


def test_unusable_proxy_setting_is_an_input_error(links: Path, tmp_path: Path) -> None:
    result = run_cli(
        "download", links, "-o", tmp_path / "out", env={"HTTPS_PROXY": "ftp://127.0.0.1:21"}
    )
    assert result.returncode == 2
    assert "proxy" in result.output and "HTTPS_PROXY" in result.output


def test_an_https_proxy_is_spoken_to_over_verified_tls(
    https_base: str,
    certificates: CertificatePaths,
    shards: list[ShardInfo],
    tmp_path: Path,
) -> None:
    secure = TinyProxy(tls=server_context(certificates))
    try:
        links = tmp_path / "urls.txt"
        links.write_text("".join(f"{https_base}/{s.name}?oh=00_sig&oe=7FFFFFFF\n" for s in shards))
        result = run_cli(
            "download",
            "--no-extract",
            links,
            "-o",
            tmp_path / "out",
            "--ca-bundle",
            certificates.ca,
            env={"HTTPS_PROXY": f"https://127.0.0.1:{secure.port}"},
        )
        assert result.returncode == 0, result.output
        assert_identical(tmp_path / "out", shards)
        assert secure.seen and all(line.startswith("CONNECT 127.0.0.1:") for line in secure.seen)
    finally:
        secure.close()


class TinySocks:
    """A SOCKS5 proxy on loopback (no authentication, CONNECT only), as RFC 1928 has it."""

    def __init__(self) -> None:
        self.seen: list[str] = []
        self.listener, self.port = listen(self._serve)

    @staticmethod
    def _exactly(sock: socket.socket, size: int) -> bytes:
        data = b""
        while len(data) < size:
            chunk = sock.recv(size - len(data))
            if not chunk:
                raise ConnectionError("closed in the handshake")
            data += chunk
        return data

    def _serve(self, client: socket.socket) -> None:
        with contextlib.closing(client), contextlib.suppress(OSError):
            _, methods = self._exactly(client, 2)
            self._exactly(client, methods)
            client.sendall(b"\x05\x00")  # no authentication
            _, command, _, kind = self._exactly(client, 4)
            if kind == 1:
                host = socket.inet_ntoa(self._exactly(client, 4))
            elif kind == 3:
                host = self._exactly(client, self._exactly(client, 1)[0]).decode()
            else:
                return
            (port,) = struct.unpack("!H", self._exactly(client, 2))
            self.seen.append(f"{host}:{port}")
            if command != 1:
                return
            with socket.create_connection((host, port)) as upstream:
                client.sendall(b"\x05\x00\x00\x01" + bytes(4) + bytes(2))
                TinyProxy._pipe(client, upstream, b"")

    def close(self) -> None:
        self.listener.close()


@pytest.mark.parametrize("scheme", ["socks5", "socks5h"])
def test_socks5_carries_the_download(
    scheme: str, cdn: CDNServer, links: Path, shards: list[ShardInfo], tmp_path: Path
) -> None:
    socks = TinySocks()
    try:
        result = run_cli(
            "download",
            "--no-extract",
            links,
            "-o",
            tmp_path / "out",
            env={"ALL_PROXY": f"{scheme}://127.0.0.1:{socks.port}"},
        )
        assert result.returncode == 0, result.output
        assert_identical(tmp_path / "out", shards)
        host = cdn.base_url.removeprefix("http://")
        assert socks.seen and set(socks.seen) == {host}
    finally:
        socks.close()


@pytest.mark.parametrize(
    ("answer", "said", "hint"),
    [
        (
            b"HTTP/1.1 407 Proxy Authentication Required\r\nContent-Length: 0\r\n\r\n",
            "the proxy wants credentials (407)",
            "put the proxy's credentials in its URL: http://USER:PASSWORD@HOST:PORT",
        ),
        (
            b"HTTP/1.1 200 Connection established\r\n\r\nstray bytes of the proxy\r\n",
            "the tunnel through the proxy http://127.0.0.1:{port} did not carry the server's TLS",
            "check that the proxy http://127.0.0.1:{port} runs",
        ),
        (
            None,
            "the proxy http://127.0.0.1:{port} did not open a tunnel (no answer to CONNECT)",
            "check that the proxy http://127.0.0.1:{port} runs",
        ),
    ],
    ids=["407", "stray-bytes-after-200", "silent"],
)
def test_a_proxy_failing_the_connect_is_named_with_what_to_do(
    answer: bytes | None, said: str, hint: str, tmp_path: Path
) -> None:
    def proxy(peer: Peer) -> None:
        peer.request()
        if answer is None:
            peer.hold()
        else:
            peer.send(answer)
            peer.wait_for_eof()

    with serving(default=proxy) as server:
        links = tmp_path / "urls.txt"
        links.write_text("https://127.0.0.1:9/sa_000000.tar?oh=00_sig&oe=7FFFFFFF\n")
        result = run_cli(
            "download",
            "--no-extract",
            links,
            "-o",
            tmp_path / "out",
            "--retries",
            "1",
            "--connect-timeout",
            "1",
            env={"HTTPS_PROXY": f"http://127.0.0.1:{server.port}"},
        )
        seen = [request.split(b"\r\n", 1)[0] for request in server.requests]
    assert result.returncode == 1, result.output
    assert seen and all(line == b"CONNECT 127.0.0.1:9 HTTP/1.1" for line in seen)
    assert said.format(port=server.port) in result.output
    assert f"hint: {hint.format(port=server.port)}" in result.output
    for wrong in ("Content-Length", "server answered", "set HTTPS_PROXY", "Traceback"):
        assert wrong not in result.output
