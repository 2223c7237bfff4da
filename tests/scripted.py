"""A scripted server on 127.0.0.1: every accepted connection runs the test's own script.

Each server is a listening socket and one thread; the n-th accepted connection is handed
to ``scripts[n]`` (later ones to ``default``), which reads requests and writes bytes exactly
as given, so the framing, the timing and the way a connection ends (FIN, RST, silence) are
the test's. With ``tls``, connections are wrapped in TLS first (a private CA's certificate).
"""

from __future__ import annotations

import socket
import ssl
import struct
import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager

from harness.certs import CertificatePaths


def server_context(paths: CertificatePaths) -> ssl.SSLContext:
    """A TLS server context with the certificate of a private CA (``make_certificates``)."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(paths.certificate, paths.key)
    return context


class Peer:
    """The server's end of one accepted connection."""

    def __init__(self, sock: socket.socket, server: ScriptedServer) -> None:
        self.sock = sock
        self.server = server

    def request(self) -> bytes:
        """Read one request head (the client sends no bodies); record and return it."""
        data = bytearray()
        while b"\r\n\r\n" not in data:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise ConnectionError("client closed before a full request")
            data += chunk
        self.server.requests.append(bytes(data))
        return bytes(data)

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)

    def wait_for_eof(self, seconds: float = 5.0) -> None:
        """Wait until the client closes its end (or ``seconds`` pass)."""
        self.sock.settimeout(seconds)
        try:
            while self.sock.recv(65536):
                pass
        except OSError:
            pass

    def close_fin(self) -> None:
        self.sock.shutdown(socket.SHUT_RDWR)
        self.sock.close()

    def close_rst(self) -> None:
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        self.sock.close()

    def hold(self, seconds: float = 8) -> None:
        """Say nothing more (until the test ends, or ``seconds``)."""
        self.server.stopped.wait(seconds)


Script = Callable[[Peer], None]


class ScriptedServer:
    """Hands the n-th accepted connection to ``scripts[n]`` (later ones to ``default``)."""

    def __init__(
        self,
        scripts: Sequence[Script],
        *,
        default: Script | None = None,
        tls: ssl.SSLContext | None = None,
    ) -> None:
        self.scripts = list(scripts)
        self.default = default
        self.tls = tls
        self.requests: list[bytes] = []
        self.accepted = 0
        self.errors: list[BaseException] = []
        self.stopped = threading.Event()
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.listener.settimeout(0.05)
        self.port: int = self.listener.getsockname()[1]
        self.threads: list[threading.Thread] = []
        self.acceptor = threading.Thread(target=self._accept, daemon=True)
        self.acceptor.start()

    @property
    def base(self) -> str:
        return f"{'https' if self.tls else 'http'}://127.0.0.1:{self.port}"

    def _accept(self) -> None:
        while not self.stopped.is_set():
            try:
                sock, _ = self.listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            index, self.accepted = self.accepted, self.accepted + 1
            script = self.scripts[index] if index < len(self.scripts) else self.default
            thread = threading.Thread(target=self._run, args=(script, sock), daemon=True)
            self.threads.append(thread)
            thread.start()

    def _run(self, script: Script | None, sock: socket.socket) -> None:
        sock.settimeout(8)
        try:
            if self.tls is not None:
                sock = self.tls.wrap_socket(sock, server_side=True)
            if script is not None:
                script(Peer(sock, self))
        except OSError as error:  # the client hung up: part of several scripts
            self.errors.append(error)
        finally:
            sock.close()

    def close(self) -> None:
        self.stopped.set()
        self.acceptor.join(2)
        self.listener.close()
        for thread in self.threads:
            thread.join(2)


@contextmanager
def serving(
    *scripts: Script, default: Script | None = None, tls: ssl.SSLContext | None = None
) -> Iterator[ScriptedServer]:
    server = ScriptedServer(scripts, default=default, tls=tls)
    try:
        yield server
    finally:
        server.close()


def answer(body: bytes, *extra: str, status: str = "200 OK", length: bool = True) -> bytes:
    """An HTTP/1.1 answer: status line, ``Content-Length`` (unless told not), ``extra``."""
    lines = [f"HTTP/1.1 {status}", *extra]
    if length:
        lines.insert(1, f"Content-Length: {len(body)}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body


def chunked(body: bytes, size: int = 1000) -> bytes:
    """``body`` in the chunked transfer coding."""
    pieces = [body[i : i + size] for i in range(0, len(body), size)]
    framed = b"".join(f"{len(p):x}\r\n".encode() + p + b"\r\n" for p in pieces)
    return framed + b"0\r\n\r\n"


def answer_each(*answers: bytes) -> Script:
    """Answer one request with each of ``answers`` in turn on the same connection."""

    def script(peer: Peer) -> None:
        for data in answers:
            peer.request()
            peer.send(data)
        peer.wait_for_eof()

    return script


Shape = Callable[[bytes, int, int], bytes]
"""How to answer ``Range: bytes=start-(end-1)`` of ``data``: the whole answer's bytes."""


def ranged(data: bytes, start: int, end: int, *extra: str) -> bytes:
    """A correct ``206`` for ``[start, end)`` of ``data``."""
    return answer(
        data[start:end],
        f"Content-Range: bytes {start}-{end - 1}/{len(data)}",
        'ETag: "v1"',
        *extra,
        status="206 Partial Content",
    )


def trailing(junk: bytes) -> Shape:
    """A correct ``206``, then ``junk`` after its complete body on the kept connection."""

    def shape(data: bytes, start: int, end: int) -> bytes:
        return ranged(data, start, end) + junk

    return shape


def serve_ranges(data: bytes, shape: Shape = ranged) -> Script:
    """Answer every range request on a connection, shaped by ``shape``, until it closes."""

    def script(peer: Peer) -> None:
        while True:
            try:
                request = peer.request().decode("latin-1")
            except (ConnectionError, OSError):
                return
            start, end = 0, len(data)
            for line in request.split("\r\n"):
                if line.lower().startswith("range: bytes="):
                    first, _, last = line.split("=", 1)[1].partition("-")
                    start, end = int(first), min(len(data), int(last) + 1)
            peer.send(shape(data, start, end))

    return script


def redirecting(location: str, status: str = "302 Found") -> Script:
    """Answer every request on a connection with a redirect to ``location``."""

    def script(peer: Peer) -> None:
        while True:
            try:
                peer.request()
            except (ConnectionError, OSError):
                return
            peer.send(answer(b"", f"Location: {location}", status=status))

    return script
