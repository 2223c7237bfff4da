"""The HTTP boundary: sockets, keep-alive, redirects, and error translation.

A deliberately small HTTP/1.1 client (the framing is in :mod:`sa1b.wire`), chosen by
measurement (``benchmarks/http_stacks.py``): bulk bodies are read with one
``recv_into(..., MSG_WAITALL)`` per 256 KiB straight into the caller's buffer, so a
connection costs one system call and one GIL hand-off per 256 KiB where
``http.client`` (and so urllib3) or httpx make one per TCP segment (~64 KiB) plus a
``poll``. With 64-96 connections that is most of the CPU a download costs.
Read timeouts are the kernel's (``SO_RCVTIMEO``), so blocking reads need no poll.

Each download thread owns one :class:`HTTPClient`, which keeps one open connection
per origin and reuses it while bodies are read to their end. Every exception of
``socket`` and ``ssl`` is translated here into the :mod:`sa1b.errors` tree; nothing
above this module catches library exceptions. TLS is always verified.
"""

from __future__ import annotations

import socket
import ssl
import struct
import threading
from collections.abc import Iterator, Mapping
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from urllib.parse import urljoin, urlsplit

from sa1b.errors import (
    BadResponseError,
    ConnectError,
    HTTPStatusError,
    StallError,
    TLSVerificationError,
    TruncatedBodyError,
)
from sa1b.links import redact
from sa1b.proxy import Proxies, Proxy
from sa1b.wire import MAX_HEAD, Head, ProtocolError, build_request, head_end, parse_head

REDIRECTS = (301, 302, 303, 307, 308)
MAX_REDIRECTS = 5
USER_AGENT = "sa1b/0.1"


@dataclass(frozen=True, slots=True, kw_only=True)
class Timeouts:
    """Seconds to wait for a connection, and for data before calling it a stall."""

    connect: float = 15.0
    read: float = 30.0

    def __post_init__(self) -> None:
        # A zero timeval would mean "wait forever" to the kernel.
        if self.connect < 0.001 or self.read < 0.001:
            raise ValueError("timeouts must be at least 1 ms")


class _Closed(Exception):
    """The peer closed a kept-alive connection before answering (internal)."""


class _Connection:
    """One TCP (or TLS) connection and the bytes read past the last head."""

    def __init__(self, sock: socket.socket, *, plain: bool):
        self.sock = sock
        self.plain = plain
        self.pending = bytearray()

    @classmethod
    def open(
        cls,
        host: str,
        port: int,
        *,
        tls: ssl.SSLContext | None,
        timeouts: Timeouts,
        proxy: Proxy | None = None,
    ) -> _Connection:
        """Connect to ``host`` (through ``proxy`` if given), with TLS if ``tls``."""
        address = (proxy.host, proxy.port) if proxy else (host, port)
        sock = socket.create_connection(address, timeout=timeouts.connect)
        try:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            if tls is None:
                _kernel_timeouts(sock, timeouts.read)
                return cls(sock, plain=True)
            if proxy is not None:
                _tunnel(sock, host, port, proxy)
            sock = tls.wrap_socket(sock, server_hostname=host)
            sock.settimeout(timeouts.read)  # ssl sockets take no recv flags
            return cls(sock, plain=False)
        except BaseException:
            sock.close()
            raise

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)

    def read_head(self) -> Head:
        buffer = bytearray()
        while (end := head_end(buffer)) < 0:
            if len(buffer) > MAX_HEAD:
                raise ProtocolError("response head too large")
            chunk = self.sock.recv(65536)
            if not chunk:
                if not buffer:
                    raise _Closed
                raise ProtocolError("connection closed inside the response head")
            buffer += chunk
        self.pending = buffer[end:]
        return parse_head(buffer[:end])

    def read_into(self, view: memoryview, *, wait_all: bool) -> int:
        """Read up to ``len(view)`` bytes; with ``wait_all``, all of them unless the
        stream ends or stalls (for bodies of known length only: else it would wait
        for bytes that never come)."""
        if self.pending:
            n = min(len(self.pending), len(view))
            view[:n] = self.pending[:n]
            del self.pending[:n]
            return n
        if self.plain and wait_all:
            return self.sock.recv_into(view, len(view), socket.MSG_WAITALL)
        return self.sock.recv_into(view, len(view))

    def close(self) -> None:
        with suppress(OSError):
            self.sock.close()

    def shutdown(self) -> None:
        """End the connection from another thread; a blocked read returns at once."""
        with suppress(OSError):
            self.sock.shutdown(socket.SHUT_RDWR)


def _kernel_timeouts(sock: socket.socket, seconds: float) -> None:
    """Blocking, with the kernel's timeouts: MSG_WAITALL reads need no poll."""
    sock.settimeout(None)
    whole = int(seconds)
    timeval = struct.pack("ll", whole, int((seconds - whole) * 1e6))
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVTIMEO, timeval)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDTIMEO, timeval)


def _tunnel(sock: socket.socket, host: str, port: int, proxy: Proxy) -> None:
    """Ask the proxy for a tunnel to ``host:port`` (``CONNECT``); raise unless it agrees.

    The socket still has the connect timeout, which bounds the proxy's answer.
    """
    lines = [f"CONNECT {host}:{port} HTTP/1.1", f"Host: {host}:{port}"]
    if proxy.authorization:
        lines.append(f"Proxy-Authorization: {proxy.authorization}")
    sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1"))
    reader = _Connection(sock, plain=False)
    try:
        head = reader.read_head()
    except _Closed:
        raise ConnectionResetError("the proxy closed the connection") from None
    if head.status == 407:
        raise HTTPStatusError(
            f"the proxy {proxy.host}:{proxy.port} wants credentials (407)",
            status=407,
            hint="put them in the proxy URL: http://USER:PASSWORD@HOST:PORT",
        )
    if head.status != 200 or reader.pending:
        raise ConnectionRefusedError(f"the proxy refused a tunnel to {host}:{port} ({head.status})")


class Response:
    """A response whose head has been read; the body is read with :meth:`readinto`."""

    def __init__(
        self,
        client: HTTPClient,
        origin: str,
        connection: _Connection,
        head: Head,
        *,
        url: str,
        length: int | None,
    ) -> None:
        self._client = client
        self._origin = origin
        self._connection: _Connection | None = connection
        self.url = url
        self.status = head.status
        self.headers = head.headers
        self._keep = head.keep_alive and not head.chunked
        self._remaining = length
        if length == 0 and self.status not in REDIRECTS:
            self._finish()  # an empty body is read already: the connection is free

    def readinto(self, view: memoryview) -> int:
        """Read up to ``len(view)`` body bytes; raises if the body ends early."""
        connection = self._connection
        if self._remaining == 0 or connection is None:
            return 0
        wanted = len(view) if self._remaining is None else min(len(view), self._remaining)
        with _translate(self.url, reading=True):
            got = connection.read_into(view[:wanted], wait_all=self._remaining is not None)
        if not got:
            if self._remaining is None:
                self._remaining = 0
                return 0
            raise TruncatedBodyError(
                f"connection closed with {self._remaining} body bytes to go",
                url=redact(self.url),
            )
        if self._remaining is not None:
            self._remaining -= got
            if not self._remaining:
                self._finish()
        return got

    def read_some(self, limit: int = 4096) -> bytes:
        """Up to ``limit`` bytes of a small body (an error page), never raising."""
        view = memoryview(bytearray(limit))
        filled = 0
        try:
            while filled < limit and (self._remaining is None or self._remaining > 0):
                got = self.readinto(view[filled:])
                if not got:
                    break
                filled += got
                if self._remaining is None:
                    break
        except (TruncatedBodyError, StallError, ConnectError, BadResponseError):
            pass
        return bytes(view[:filled])

    def _finish(self) -> None:
        connection, self._connection = self._connection, None
        if connection is not None:
            self._client.give_back(self._origin, connection, reusable=self._keep)

    def close(self) -> None:
        """Give the connection back if the body was read to its end, else drop it."""
        connection, self._connection = self._connection, None
        if connection is not None:
            self._client.give_back(self._origin, connection, reusable=False)


class HTTPClient:
    """One thread's connections, one per origin, reused across requests (keep-alive)."""

    def __init__(
        self,
        *,
        timeouts: Timeouts,
        tls: ssl.SSLContext | None = None,
        proxies: Proxies | None = None,
    ) -> None:
        self.timeouts = timeouts
        self._tls = tls
        self._proxies = proxies or Proxies()
        self._idle: dict[str, _Connection] = {}
        self._busy: set[_Connection] = set()
        self._lock = threading.Lock()  # for abort(), the one call from another thread

    def get(self, url: str, headers: Mapping[str, str]) -> Response:
        """Send a GET for ``url`` byte for byte, following redirects; return its head."""
        for _ in range(MAX_REDIRECTS + 1):
            response = self._send(url, headers)
            location = response.headers.get("location")
            if response.status not in REDIRECTS or not location:
                return response
            response.close()
            url = urljoin(url, location)
        raise HTTPStatusError(f"more than {MAX_REDIRECTS} redirects", status=310, url=redact(url))

    def _send(self, url: str, headers: Mapping[str, str]) -> Response:
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise HTTPStatusError("not an http(s) URL", status=400, url=redact(url))
        origin = f"{parts.scheme}://{parts.netloc}"
        target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        port = parts.port or (443 if parts.scheme == "https" else 80)
        proxy = self._proxies.for_origin(parts.scheme, parts.hostname, port)
        all_headers = {"User-Agent": USER_AGENT, "Accept-Encoding": "identity", **headers}
        if proxy is not None and parts.scheme == "http":
            target = f"{origin}{target}"  # absolute form, for the proxy
            if proxy.authorization:
                all_headers["Proxy-Authorization"] = proxy.authorization
        try:
            request = build_request(target, host=parts.netloc, headers=all_headers)
        except ValueError as error:  # e.g. a redirect Location with spaces or non-ASCII
            raise BadResponseError(f"unusable URL: {error}", url=redact(url)) from None
        while True:
            with self._lock:
                connection = self._idle.pop(origin, None)
            reused = connection is not None
            try:
                with _translate(url, reading=False):
                    if connection is None:
                        tls = None
                        if parts.scheme == "https":
                            tls = self._tls or ssl.create_default_context()
                        connection = _Connection.open(
                            parts.hostname, port, tls=tls, timeouts=self.timeouts, proxy=proxy
                        )
                    connection.send(request)
                    head = connection.read_head()
                    length = None if head.chunked else head.content_length
            except (_Closed, TruncatedBodyError) as error:
                if connection is not None:
                    connection.close()
                if reused:  # the server closed an idle kept-alive connection: reconnect
                    continue
                raise TruncatedBodyError(
                    "connection closed before any answer", url=redact(url)
                ) from error
            except BaseException:
                if connection is not None:
                    connection.close()
                raise
            with self._lock:
                self._busy.add(connection)
            return Response(self, origin, connection, head, url=url, length=length)

    def give_back(self, origin: str, connection: _Connection, *, reusable: bool) -> None:
        """Keep ``connection`` for the next request to ``origin``, or close it."""
        with self._lock:
            self._busy.discard(connection)
            if reusable and not connection.pending and origin not in self._idle:
                self._idle[origin] = connection
                return
        connection.close()

    def close(self) -> None:
        with self._lock:
            idle, self._idle = list(self._idle.values()), {}
        for connection in idle:
            connection.close()

    def abort(self) -> None:
        """From another thread: end every connection now, waking any blocked read."""
        with self._lock:
            connections = [*self._idle.values(), *self._busy]
        for connection in connections:
            connection.shutdown()


@contextmanager
def _translate(url: str, *, reading: bool) -> Iterator[None]:
    """Map socket, ssl and parsing exceptions to the sa1b error tree."""
    where = redact(url)
    try:
        yield
    except ssl.SSLCertVerificationError as error:
        raise TLSVerificationError(
            f"TLS verification failed: {error.verify_message}", url=where
        ) from error
    except ProtocolError as error:
        raise BadResponseError(f"malformed response: {error}", url=where) from error
    except (BlockingIOError, TimeoutError) as error:
        if reading:
            raise StallError("no data within the read timeout", url=where) from error
        raise ConnectError("timed out waiting for the server", url=where) from error
    except (ConnectionResetError, BrokenPipeError, ConnectionAbortedError) as error:
        raise TruncatedBodyError(
            f"connection lost: {error.strerror or error}", url=where
        ) from error
    except (socket.gaierror, ConnectionRefusedError) as error:
        raise ConnectError(f"cannot connect: {error.strerror or error}", url=where) from error
    except OSError as error:
        kind = TruncatedBodyError if reading else ConnectError
        raise kind(f"{type(error).__name__}: {error}", url=where) from error
