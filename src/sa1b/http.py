"""The HTTP boundary: keep-alive connections, redirects, and error translation.

Built on the standard library's ``http.client``: measured against urllib3 and httpx
for bulk bodies (``benchmarks/http_stacks.py``), reading straight into a reused
buffer with ``readinto`` costs the least CPU per byte, and it adds no dependency.

Each download thread owns one :class:`HTTPClient`, which keeps one open connection
per origin and reuses it while bodies are read to their end. Every exception of
``socket``, ``ssl`` and ``http.client`` is translated here into the
:mod:`sa1b.errors` tree; nothing above this module catches library exceptions.
TLS is always verified.
"""

from __future__ import annotations

import http.client
import socket
import ssl
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from urllib.parse import urljoin, urlsplit

from sa1b.errors import (
    ConnectError,
    HTTPStatusError,
    StallError,
    TLSVerificationError,
    TruncatedBodyError,
)
from sa1b.links import redact

REDIRECTS = (301, 302, 303, 307, 308)
MAX_REDIRECTS = 5
USER_AGENT = "sa1b/0.1 (+https://github.com/sa1b)"


@dataclass(frozen=True, slots=True, kw_only=True)
class Timeouts:
    """Seconds to wait for a connection, and for each read before calling it a stall."""

    connect: float = 15.0
    read: float = 30.0


class _Connection(http.client.HTTPConnection):
    read_timeout: float

    def connect(self) -> None:
        super().connect()
        self.sock.settimeout(self.read_timeout)


class _TLSConnection(http.client.HTTPSConnection):
    read_timeout: float

    def connect(self) -> None:
        super().connect()
        self.sock.settimeout(self.read_timeout)


class Response:
    """A response whose head has been read; the body is read with :meth:`readinto`."""

    def __init__(self, client: HTTPClient, origin: str, raw: http.client.HTTPResponse, url: str):
        self._client = client
        self._origin = origin
        self._raw = raw
        self.url = url
        self.status = raw.status
        self.headers: dict[str, str] = {k.lower(): v for k, v in raw.getheaders()}

    def readinto(self, buffer: memoryview) -> int:
        """Read up to ``len(buffer)`` body bytes; 0 only at the end of the body."""
        with _translate(self.url, reading=True):
            return self._raw.readinto(buffer)

    def read_some(self, limit: int = 4096) -> bytes:
        """Up to ``limit`` bytes of a small body (an error page), never raising."""
        try:
            return self._raw.read(limit)
        except (OSError, http.client.HTTPException):
            return b""

    def close(self) -> None:
        """Give the connection back if the body was read to its end, else drop it."""
        if self._raw.isclosed():
            return
        self._client.drop(self._origin)


class HTTPClient:
    """One thread's connections, one per origin, reused across requests (keep-alive)."""

    def __init__(self, *, timeouts: Timeouts, tls: ssl.SSLContext | None = None) -> None:
        self.timeouts = timeouts
        self._tls = tls
        self._connections: dict[str, http.client.HTTPConnection] = {}

    def get(self, url: str, headers: Mapping[str, str]) -> Response:
        """Send a GET for ``url`` byte for byte, following redirects; return its head."""
        for _ in range(MAX_REDIRECTS + 1):
            response = self._send(url, headers)
            location = response.headers.get("location")
            if response.status not in REDIRECTS or not location:
                return response
            response.read_some()
            response.close()
            url = urljoin(url, location)
        raise HTTPStatusError(f"more than {MAX_REDIRECTS} redirects", status=310, url=redact(url))

    def _send(self, url: str, headers: Mapping[str, str]) -> Response:
        parts = urlsplit(url)
        origin = f"{parts.scheme}://{parts.netloc}"
        target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        all_headers = {"User-Agent": USER_AGENT, "Accept-Encoding": "identity", **headers}
        for attempt in (1, 2):
            connection = self._connection(origin, parts.scheme, parts.hostname, parts.port)
            reused = connection.sock is not None
            try:
                with _translate(url, reading=False):
                    connection.request("GET", target, headers=all_headers)
                    raw = connection.getresponse()
            except (ConnectError, TruncatedBodyError):
                self.drop(origin)
                # A kept-alive connection the server closed meanwhile: retry once, fresh.
                if reused and attempt == 1:
                    continue
                raise
            return Response(self, origin, raw, url)
        raise AssertionError("unreachable")

    def _connection(
        self, origin: str, scheme: str, host: str | None, port: int | None
    ) -> http.client.HTTPConnection:
        connection = self._connections.get(origin)
        if connection is None:
            if host is None:
                raise HTTPStatusError("URL without a host", status=400, url=origin)
            timeout = self.timeouts.connect
            if scheme == "https":
                tls = self._tls or ssl.create_default_context()
                connection = _TLSConnection(host, port, timeout=timeout, context=tls)
            else:
                connection = _Connection(host, port, timeout=timeout)
            connection.read_timeout = self.timeouts.read
            self._connections[origin] = connection
        return connection

    def drop(self, origin: str) -> None:
        """Close the connection to ``origin`` (its body was not read to the end)."""
        connection = self._connections.pop(origin, None)
        if connection is not None:
            connection.close()

    def close(self) -> None:
        for origin in list(self._connections):
            self.drop(origin)


@contextmanager
def _translate(url: str, *, reading: bool) -> Iterator[None]:
    """Map socket, ssl and http.client exceptions to the sa1b error tree."""
    where = redact(url)
    try:
        yield
    except ssl.SSLCertVerificationError as error:
        raise TLSVerificationError(
            f"TLS verification failed: {error.verify_message}", url=where
        ) from error
    except TimeoutError as error:
        if reading:
            raise StallError("no data within the read timeout", url=where) from error
        raise ConnectError("timed out waiting for the server", url=where) from error
    except http.client.IncompleteRead as error:
        raise TruncatedBodyError(
            f"connection closed {len(error.partial)} bytes into a read", url=where
        ) from error
    except (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError) as error:
        raise TruncatedBodyError(f"connection lost: {error}", url=where) from error
    except (socket.gaierror, ConnectionRefusedError) as error:
        raise ConnectError(f"cannot connect: {error}", url=where) from error
    except (OSError, http.client.HTTPException) as error:
        kind = TruncatedBodyError if reading else ConnectError
        raise kind(f"{type(error).__name__}: {error}", url=where) from error
