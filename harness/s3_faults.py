"""A fault proxy in front of an S3 server, for tests: the store's failures on demand.

:class:`StoreFaultProxy` listens on ``127.0.0.1`` (a port it binds itself: port 0, read
back) and forwards every request to an upstream S3 endpoint (a
:class:`harness.seaweedfs.SeaweedServer`'s, plain HTTP), bodies and headers untouched, the
``Host`` header included: SigV4 signs it, so the client signs the proxy's address and the
store checks the signature against the very header the client sent. The store only ever
sees that ``Host`` and does not compare it with its own address (SeaweedFS does not).

A test sets the proxy's one behaviour at run time with :meth:`StoreFaultProxy.set` and a
:class:`StoreFault` (``None``: pass everything through). Kinds, one behaviour each:

================== ========================================================================
``slow_down``       answer 503 ``SlowDown`` (S3's XML error body; ``Retry-After`` if given)
``internal_error``  answer 500 ``InternalError``
``access_denied``   answer 403 ``AccessDenied``
``expired_token``   answer 400 ``ExpiredToken`` (credentials that expired mid-run)
``cut_request``     read the request's head and half its body, then reset the connection:
                    the store never sees the request
``cut_answer``      forward the request (the store does it), then send half of the answer's
                    head and reset the connection: the client never hears that it was done
================== ========================================================================

A fault applies to the requests of its ``operation`` (S3's name for the call, read from
the method, the path and the query by the pure :func:`operation`; ``None``: every
request), counted from when it was set: the first ``after`` pass, then every ``every``-th
fails, ``times`` times (``None``: for as long as it is set). So
``StoreFault(kind="slow_down", times=2)`` fails the next two requests,
``StoreFault(kind="internal_error", operation="UploadPart", every=3, times=None)`` every
third part upload, and ``StoreFault(kind="expired_token", after=5, times=None)`` lets five
requests through and refuses every one after them (credentials that expire mid-run;
``set(None)`` when the test has "refreshed" them).

Bodies are forwarded whole (read, then sent; a request needs its ``Content-Length``, as
botocore's always have: a chunked one is answered 501), which suits the small objects and
parts of tests, not a benchmark. Every request is recorded
(:attr:`StoreFaultProxy.requests`: its operation and what the client got, ``0`` for a cut
connection); :meth:`StoreFaultProxy.count` counts them per operation, and
:meth:`StoreFaultProxy.faulted` those the fault answered. It never prints.

``tests/conftest.py`` has the fixture ``s3_faults``: a proxy in front of the suite's
SeaweedFS, this process's ``AWS_*`` set to reach the store through it, and
:attr:`StoreFaultProxy.environment` for a CLI run in a subprocess.
"""

from __future__ import annotations

import http.client
import threading
import urllib.parse
from collections import Counter
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler
from typing import Any, Literal, get_args

from sa1b.cdn.serving import LoopbackHTTPServer, Service

__all__ = ["FaultBook", "FaultKind", "ProxiedRequest", "StoreFault", "StoreFaultProxy", "operation"]

FaultKind = Literal[
    "slow_down", "internal_error", "access_denied", "expired_token", "cut_request", "cut_answer"
]

#: What the store would answer for each kind that is an answer: status, code, message.
_ANSWERS: dict[str, tuple[int, str, str]] = {
    "slow_down": (503, "SlowDown", "Please reduce your request rate."),
    "internal_error": (500, "InternalError", "We encountered an internal error. Please try again."),
    "access_denied": (403, "AccessDenied", "Access Denied"),
    "expired_token": (400, "ExpiredToken", "The provided token has expired."),
}
#: (method, on an object rather than the bucket, query parameters it carries, the call):
#: the first row that fits names a request.
_OPERATIONS: tuple[tuple[str, bool, frozenset[str], str], ...] = tuple(
    (method, on_object, frozenset(needs.split()), name)
    for method, on_object, needs, name in (
        ("HEAD", False, "", "HeadBucket"),
        ("GET", False, "uploads", "ListMultipartUploads"),
        ("GET", False, "list-type", "ListObjectsV2"),
        ("GET", False, "", "ListObjects"),
        ("PUT", False, "", "CreateBucket"),
        ("POST", False, "delete", "DeleteObjects"),
        ("DELETE", False, "", "DeleteBucket"),
        ("HEAD", True, "", "HeadObject"),
        ("GET", True, "uploadId", "ListParts"),
        ("GET", True, "", "GetObject"),
        ("PUT", True, "partNumber uploadId", "UploadPart"),
        ("PUT", True, "", "PutObject"),
        ("POST", True, "uploads", "CreateMultipartUpload"),
        ("POST", True, "uploadId", "CompleteMultipartUpload"),
        ("DELETE", True, "uploadId", "AbortMultipartUpload"),
        ("DELETE", True, "", "DeleteObject"),
    )
)
#: Hop-by-hop headers and those the proxy sets itself; every other one is forwarded as is.
#: ``Expect`` is not signed by SigV4, and the proxy already answered its ``100 Continue``.
_NOT_FORWARDED = frozenset({"connection", "keep-alive", "proxy-connection", "expect", "te"})
_UPSTREAM_TIMEOUT = 60.0


@dataclass(frozen=True, slots=True, kw_only=True)
class StoreFault:
    """One behaviour of the proxy (see the module's table)."""

    kind: FaultKind
    operation: str | None = None  # S3's name of the call (UploadPart, HeadBucket, ...)
    times: int | None = 1  # how many requests it fails; None: every one while set
    every: int = 1  # only every n-th request of the operation
    after: int = 0  # the first n requests of the operation pass (credentials expiring later)
    retry_after: float | None = None  # a Retry-After header on the answers

    def __post_init__(self) -> None:
        if self.kind not in get_args(FaultKind):
            raise ValueError(f"unknown fault kind {self.kind!r}")
        if (self.times is not None and self.times < 1) or self.every < 1 or self.after < 0:
            raise ValueError("times (or None) and every must be >= 1, after >= 0")


@dataclass(frozen=True, slots=True)
class ProxiedRequest:
    """A request as the proxy saw it: the operation, and the status the client got
    (``0``: the connection was cut) and whether the fault made it."""

    operation: str
    status: int
    faulted: bool


def operation(method: str, target: str) -> str:
    """S3's name of the call a path-style request makes (``PUT /b/k?partNumber=1&
    uploadId=x`` is ``UploadPart``); ``"Unknown"`` for anything else. Pure."""
    path, _, query = target.partition("?")
    names = {name for name, _ in urllib.parse.parse_qsl(query, keep_blank_values=True)}
    on_object = "/" in path.strip("/")
    for verb, of_object, needs, name in _OPERATIONS:
        if (verb, of_object) == (method, on_object) and needs <= names:
            return name
    return "Unknown"


def error_body(code: str, message: str) -> bytes:
    """S3's XML error document."""
    return (
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        f"<Error><Code>{code}</Code><Message>{message}</Message>"
        "<RequestId>sa1b-fault-proxy</RequestId></Error>"
    ).encode()


class FaultBook:
    """The fault in force and what was asked; safe to use from the handler threads
    (pure: no I/O)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._fault: StoreFault | None = None
        self._seen = 0  # requests of the fault's operation since it was set
        self._used = 0
        self.requests: list[ProxiedRequest] = []

    def set(self, fault: StoreFault | None) -> None:
        with self._lock:
            self._fault, self._seen, self._used = fault, 0, 0

    def take(self, name: str) -> StoreFault | None:
        """The fault, if it applies to this request of operation ``name``."""
        with self._lock:
            fault = self._fault
            if fault is None or fault.operation not in (None, name):
                return None
            self._seen += 1
            if self._seen <= fault.after or (self._seen - fault.after) % fault.every:
                return None
            if fault.times is not None and self._used >= fault.times:
                return None
            self._used += 1
            return fault

    def record(self, entry: ProxiedRequest) -> None:
        with self._lock:
            self.requests.append(entry)

    def snapshot(self) -> list[ProxiedRequest]:
        with self._lock:
            return list(self.requests)

    def forget(self) -> None:
        with self._lock:
            self.requests.clear()


class _Server(LoopbackHTTPServer):
    def __init__(self, proxy: StoreFaultProxy) -> None:
        self.proxy = proxy
        super().__init__(_Handler)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, and Expect: 100-continue answered
    server: _Server

    def do_any(self) -> None:
        book = self.server.proxy.book
        name = operation(self.command, self.path)
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            self.send_error(501, "the fault proxy takes bodies with a Content-Length only")
            return
        length = int(self.headers.get("Content-Length") or 0)
        fault = book.take(name)
        if fault is not None and fault.kind == "cut_request":
            self.rfile.read(length // 2)
            book.record(ProxiedRequest(name, 0, True))  # before the client can see it
            self._reset()
            return
        body = self.rfile.read(length) if length else b""
        if fault is not None and fault.kind in _ANSWERS:
            book.record(ProxiedRequest(name, _ANSWERS[fault.kind][0], True))
            self._answer_error(fault)
            return
        status, reason, headers, answer = self._forward(body)
        head = self._head(status, reason, headers, len(answer))
        if fault is not None:  # cut_answer: the store did it, the client never hears so
            book.record(ProxiedRequest(name, 0, True))
            self.wfile.write(head[: len(head) // 2])
            self.wfile.flush()
            self._reset()
            return
        book.record(ProxiedRequest(name, status, False))
        self.wfile.write(head)
        if self.command != "HEAD":
            self.wfile.write(answer)

    do_GET = do_PUT = do_POST = do_HEAD = do_DELETE = do_any

    def _forward(self, body: bytes) -> tuple[int, str, list[tuple[str, str]], bytes]:
        upstream = self.server.proxy.upstream
        connection = http.client.HTTPConnection(
            upstream.hostname or "127.0.0.1", upstream.port, timeout=_UPSTREAM_TIMEOUT
        )
        try:
            connection.putrequest(
                self.command, self.path, skip_host=True, skip_accept_encoding=True
            )
            for key, value in self.headers.items():  # Host among them, as signed
                if key.lower() not in _NOT_FORWARDED:
                    connection.putheader(key, value)
            connection.endheaders(body or None)
            answer = connection.getresponse()
            data = answer.read()
            headers = [
                (key, value)
                for key, value in answer.getheaders()
                if key.lower() not in _NOT_FORWARDED | {"transfer-encoding", "content-length"}
            ]
            if self.command == "HEAD":  # the object's length, with no body
                length = answer.getheader("Content-Length")
                headers += [("Content-Length", length)] if length is not None else []
            return answer.status, answer.reason, headers, data
        finally:
            connection.close()

    def _head(self, status: int, reason: str, headers: list[tuple[str, str]], size: int) -> bytes:
        lines = [f"HTTP/1.1 {status} {reason}"]
        lines += [f"{key}: {value}" for key, value in headers]
        if self.command != "HEAD":
            lines.append(f"Content-Length: {size}")
        return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")

    def _answer_error(self, fault: StoreFault) -> None:
        status, code, message = _ANSWERS[fault.kind]
        body = error_body(code, message)
        self.send_response(status)
        self.send_header("Content-Type", "application/xml")
        self.send_header("Content-Length", str(len(body)))
        if fault.retry_after is not None:
            self.send_header("Retry-After", f"{fault.retry_after:g}")
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _reset(self) -> None:
        """Close with a TCP reset, as a dropped connection or a crashed store does."""
        self.close_connection = True
        self.server.reset(self.connection)

    def log_message(self, format: str, *args: Any) -> None:
        pass


class StoreFaultProxy(Service):
    """A proxy on ``127.0.0.1`` in front of the S3 endpoint ``upstream``
    (``http://HOST:PORT``), passing everything through until a fault is :meth:`set`.

    ``environment`` (the upstream's variables, e.g. ``SeaweedServer.environment``) is what
    :attr:`environment` gives back with ``AWS_ENDPOINT_URL`` made the proxy's."""

    label = "the proxy"

    def __init__(self, upstream: str, *, environment: dict[str, str] | None = None) -> None:
        self.upstream = urllib.parse.urlsplit(upstream)
        if self.upstream.scheme != "http" or self.upstream.port is None:
            raise ValueError(f"the upstream must be http://HOST:PORT, not {upstream!r}")
        self.book = FaultBook()
        self._environment = dict(environment or {})
        self._server: _Server | None = None

    def start(self) -> None:
        self._server = _Server(self)
        self._port = self._server.port
        self._server.serve_in_thread("s3-fault-proxy")

    def stop(self) -> None:
        server, self._server, self._port = self._server, None, None
        if server is not None:
            server.close()

    # -- what a test uses ----------------------------------------------------------------------

    def set(self, fault: StoreFault | None) -> None:
        """From now on, act out ``fault`` (``None``: pass everything through); its counts
        of requests start again from zero."""
        self.book.set(fault)

    @property
    def endpoint_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def environment(self) -> dict[str, str]:
        """The upstream's variables with the proxy as ``AWS_ENDPOINT_URL``."""
        return {**self._environment, "AWS_ENDPOINT_URL": self.endpoint_url}

    @property
    def requests(self) -> list[ProxiedRequest]:
        """Every request so far, in the order they were answered (each recorded before
        the client can have its answer)."""
        return self.book.snapshot()

    def count(self, name: str | None = None) -> int:
        """Requests of operation ``name`` so far (all of them: ``None``)."""
        return sum(1 for entry in self.requests if name in (None, entry.operation))

    def faulted(self, name: str | None = None) -> int:
        """Requests of operation ``name`` (any: ``None``) the fault answered or cut."""
        return sum(1 for e in self.requests if e.faulted and name in (None, e.operation))

    def counts(self) -> Counter[str]:
        """Requests so far per operation."""
        return Counter(entry.operation for entry in self.requests)

    def clear(self) -> None:
        """Forget the requests recorded so far."""
        self.book.forget()
