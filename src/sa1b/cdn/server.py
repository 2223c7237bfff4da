"""A local stand-in for Meta's CDN: signed URLs, ranges, validators, pacing and scripted faults.

The downloader is tested against this server instead of the network, so it must behave like
the real CDN where the downloader can tell (URL shape, 403 bodies on expiry, Range/If-Range
semantics, keep-alive) and be able to misbehave on cue (:mod:`sa1b.cdn.faults`). It must also be
fast enough not to be the bottleneck of benchmarks: bodies go out with ``sendfile`` unless a
rate cap or a fault needs byte-level control.

Standard library only: ``http.server.ThreadingHTTPServer`` with HTTP/1.1 keep-alive, one daemon
thread per connection, bound to 127.0.0.1. With ``tls`` (a server :class:`ssl.SSLContext`) it
serves HTTPS, as the real CDN does: each connection's handshake runs in its own thread, and
bodies go through TLS in chunks (``sendfile`` would bypass the encryption).
"""

from __future__ import annotations

import email.utils
import hashlib
import logging
import os
import random
import socket
import ssl
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any, BinaryIO, Literal, cast

from sa1b.cdn import signing
from sa1b.cdn.byteranges import ByteRange, if_range_matches, parse_range
from sa1b.cdn.faults import Fault, FaultBook
from sa1b.cdn.serving import LoopbackHTTPServer, Service

__all__ = ["DEFAULT_LIFETIME", "CDNServer", "LinksStyle", "RequestRecord"]

logger = logging.getLogger(__name__)

DEFAULT_LIFETIME = 30 * 24 * 3600  # Meta's links live about 30 days
EXPIRED_BODY = b"URL signature expired"
MISMATCH_BODY = b"URL signature mismatch"
_WRONG_RANGE_SHIFT = 4096
_LINKS_HEADER = "file_name\tcdn_link"

LinksStyle = Literal["official", "crlf", "spaces", "noheader", "urls"]


@dataclass(frozen=True)
class RequestRecord:
    """One answered request. Holds the file name, never the URL's query (its signature)."""

    name: str | None
    range_header: str | None
    if_range: str | None
    status: int
    bytes_sent: int
    method: str = "GET"


@dataclass
class _Entry:
    """A request being answered, logged before its first byte goes out.

    So a client that has its answer always finds it in :attr:`CDNServer.requests`; ``sent``
    grows as the body goes.
    """

    name: str | None
    range_header: str | None
    if_range: str | None
    status: int
    method: str
    sent: int = 0

    def snapshot(self) -> RequestRecord:
        return RequestRecord(
            self.name, self.range_header, self.if_range, self.status, self.sent, self.method
        )


@dataclass(frozen=True)
class _Validators:
    etag: str
    last_modified: str


def _content_type(name: str) -> str:
    if name.endswith(".tar"):
        return "application/x-tar"
    if name.endswith(".txt"):
        return "text/plain; charset=utf-8"
    return "application/octet-stream"


def _is_served(name: str) -> bool:
    """Files the server exposes: not hidden/temporary, not generator sidecars."""
    return not name.startswith(".") and not name.endswith((".params", ".tmp"))


class _HTTPServer(LoopbackHTTPServer):
    def __init__(self, cdn: CDNServer, *, port: int) -> None:
        self.cdn = cdn
        super().__init__(_Handler, port=port)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "proxygen-bolt"
    sys_version = ""

    def setup(self) -> None:
        super().setup()
        # os.sendfile needs a blocking socket, whatever socket.setdefaulttimeout() says.
        self.connection.setblocking(True)
        # The head and the body go in two writes; with Nagle's algorithm the body would
        # wait for the client's delayed ACK of the head (40 ms), as no CDN makes it wait.
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        if isinstance(self.connection, ssl.SSLSocket):
            # Here, not in accept(): a slow handshake holds up this connection only.
            self.connection.do_handshake()

    def version_string(self) -> str:
        return self.server_version

    def do_GET(self) -> None:
        self._cdn._answer(self, head=False)

    def do_HEAD(self) -> None:
        self._cdn._answer(self, head=True)

    @property
    def _cdn(self) -> CDNServer:
        return cast(_HTTPServer, self.server).cdn

    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        # The request line holds the signature; log the path only.
        path = self.path.partition("?")[0]
        logger.debug("%s %s -> %s", self.command, path, code)

    def log_message(self, format: str, *args: Any) -> None:
        logger.debug("%s: %s", self.address_string(), format % args)


class CDNServer(Service):
    """Serves the files of ``root`` under signed, CDN-shaped URLs on 127.0.0.1.

    Use as a context manager, or call :meth:`start` and :meth:`stop`. ``clock`` decides link
    expiry (inject a fake one to expire links on demand); ``rate_per_connection`` caps each
    connection's body rate in bytes per second; ``tls`` serves HTTPS with that context.
    """

    label = "the CDN stand-in"

    def __init__(
        self,
        *,
        root: Path,
        secret: bytes = b"sa1b-demo",
        rate_per_connection: float | None = None,
        clock: Callable[[], float] = time.time,
        port: int = 0,
        tls: ssl.SSLContext | None = None,
    ) -> None:
        if rate_per_connection is not None and rate_per_connection <= 0:
            raise ValueError("rate_per_connection must be positive")
        self.root = Path(root)
        self.secret = secret
        self.rate_per_connection = rate_per_connection
        self.clock = clock
        self._requested_port = port
        self.tls = tls
        self._faults = FaultBook()
        self._lock = threading.Lock()
        self._index: dict[str, str] = {}
        self._generation: dict[str, int] = {}
        self._sent: dict[str, int] = {}
        self._sent_total = 0
        self._log: list[_Entry] = []
        self._stopping = threading.Event()
        self._httpd: _HTTPServer | None = None

    # -- lifecycle -------------------------------------------------------------------------

    def start(self) -> None:
        """Bind and start serving in a background thread."""
        if self._httpd is not None:
            raise RuntimeError("server already started")
        self._stopping.clear()
        self._httpd = _HTTPServer(self, port=self._requested_port)
        # A restart binds the same port: the links written before it stay good.
        self._requested_port = self._port = self._httpd.port
        if self.tls is not None:
            self._httpd.socket = self.tls.wrap_socket(
                self._httpd.socket, server_side=True, do_handshake_on_connect=False
            )
        self._httpd.serve_in_thread("cdn-stand-in")
        logger.info("CDN stand-in serving %s at %s", self.root, self.base_url)

    def stop(self) -> None:
        """Stop accepting, end open connections (idle keep-alive ones too), join threads."""
        httpd, self._httpd, self._port = self._httpd, None, None
        if httpd is not None:
            self._stopping.set()  # paced and stalled answers stop waiting
            httpd.close()

    # -- URLs and links files --------------------------------------------------------------

    @property
    def base_url(self) -> str:
        scheme = "http" if self.tls is None else "https"
        return f"{scheme}://127.0.0.1:{self.port}"

    def served_names(self) -> list[str]:
        """Names of the files currently served from ``root``, sorted."""
        try:
            entries = list(os.scandir(self.root))
        except FileNotFoundError:
            return []
        return sorted(e.name for e in entries if _is_served(e.name) and e.is_file())

    def url_for(self, name: str, *, expires_at: int | None = None) -> str:
        """The signed URL of ``name``; expires 30 days from ``clock()`` unless told otherwise."""
        if expires_at is None:
            expires_at = int(self.clock()) + DEFAULT_LIFETIME
        return signing.sign_url(self.base_url, name, secret=self.secret, expires_at=expires_at)

    def write_links_file(
        self,
        path: Path,
        names: Iterable[str] | None = None,
        *,
        expires_at: int | None = None,
        style: LinksStyle = "official",
    ) -> None:
        """Write a links file in one of the shapes users hand to the downloader.

        ``official`` is Meta's: header ``file_name<TAB>cdn_link``, then ``name<TAB>url`` rows,
        LF. ``crlf`` is the same with CRLF; ``spaces`` is space-separated without header;
        ``noheader`` is tab-separated without header; ``urls`` is one URL per line. By default
        every served ``sa_*`` file is listed, in a fixed but unsorted order, because the real
        file is not sorted either.
        """
        if names is None:
            listed = [n for n in self.served_names() if n.startswith("sa_")]
            random.Random("sa1b-links-order").shuffle(listed)
        else:
            listed = list(names)
        rows = [(n, self.url_for(n, expires_at=expires_at)) for n in listed]
        if style == "urls":
            lines = [url for _, url in rows]
        elif style == "spaces":
            lines = [f"{n} {url}" for n, url in rows]
        else:
            lines = [f"{n}\t{url}" for n, url in rows]
            if style in ("official", "crlf"):
                lines.insert(0, _LINKS_HEADER)
        newline = "\r\n" if style == "crlf" else "\n"
        text = "".join(line + newline for line in lines)
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        tmp.write_text(text, encoding="utf-8", newline="")
        os.replace(tmp, path)

    # -- faults and statistics -------------------------------------------------------------

    def add_fault(self, name: str, fault: Fault) -> None:
        """Script ``fault`` for requests of ``name`` (``"*"``: any file)."""
        self._faults.add(name, fault)

    def clear_faults(self) -> None:
        self._faults.clear()

    def pending_faults(self) -> int:
        """How many fault applications have not been used yet."""
        return self._faults.pending()

    @property
    def bytes_sent_total(self) -> int:
        """Body bytes sent over all files (headers not counted)."""
        with self._lock:
            return self._sent_total

    def bytes_sent(self, name: str) -> int:
        """Body bytes sent for ``name``."""
        with self._lock:
            return self._sent.get(name, 0)

    @property
    def requests(self) -> list[RequestRecord]:
        """A snapshot of the request log, oldest first."""
        with self._lock:
            return [entry.snapshot() for entry in self._log]

    @property
    def connections_total(self) -> int:
        """TCP connections accepted so far (to check that clients reuse connections)."""
        if self._httpd is None:
            return 0
        with self._httpd.conn_lock:
            return self._httpd.connections_total

    def clear_requests(self) -> None:
        """Forget the request log and byte counters."""
        with self._lock:
            self._log.clear()
            self._sent.clear()
            self._sent_total = 0

    # -- request handling (runs in handler threads) ----------------------------------------

    def _resolve(self, path: str) -> str | None:
        with self._lock:
            name = self._index.get(path)
        if name is None:  # files may have appeared since the last look
            index = signing.path_index(self.served_names())
            with self._lock:
                self._index = index
            name = index.get(path)
        return name

    def _validators(self, name: str, st: os.stat_result) -> _Validators:
        with self._lock:
            generation = self._generation.get(name, 0)
        key = f"{name}:{st.st_mtime_ns}:{st.st_size}:{generation}"
        etag = '"' + hashlib.md5(key.encode()).hexdigest() + '"'
        modified = email.utils.formatdate(int(st.st_mtime) + generation, usegmt=True)
        return _Validators(etag, modified)

    def _record(self, handler: _Handler, name: str | None, status: int) -> _Entry:
        entry = _Entry(
            name=name,
            range_header=handler.headers.get("Range"),
            if_range=handler.headers.get("If-Range"),
            status=status,
            method=handler.command,
        )
        with self._lock:
            self._log.append(entry)
        return entry

    def _simple(
        self,
        handler: _Handler,
        name: str | None,
        status: int,
        body: bytes,
        *,
        head: bool,
        extra: dict[str, str] | None = None,
    ) -> None:
        """A short non-file answer (errors, throttling); the connection stays usable."""
        self._record(handler, name, status)
        handler.send_response(status)
        handler.send_header("Content-Type", "text/plain; charset=utf-8")
        handler.send_header("Content-Length", str(len(body)))
        for key, value in (extra or {}).items():
            handler.send_header(key, value)
        handler.end_headers()
        if not head:
            handler.wfile.write(body)

    def _answer(self, handler: _Handler, *, head: bool) -> None:
        """Answer one GET or HEAD."""
        path, _, query = handler.path.partition("?")
        name = self._resolve(path)
        verdict = signing.verify(path, query, secret=self.secret, now=self.clock())
        if verdict == "bad-signature":
            self._simple(handler, name, 403, MISMATCH_BODY, head=head)
            return
        if verdict == "expired":
            self._simple(handler, name, 403, EXPIRED_BODY, head=head)
            return
        if name is None:
            self._simple(handler, name, 404, b"Not Found", head=head)
            return
        file_path = self.root / name
        try:
            st = file_path.stat()
        except OSError:  # deleted since it was indexed
            self._simple(handler, name, 404, b"Not Found", head=head)
            return
        fault = self._faults.take(name, method=handler.command)
        if fault is not None and self._answer_fault(handler, name, fault, head=head):
            return
        self._serve_file(handler, name, file_path, st, fault, head=head)

    def _answer_fault(self, handler: _Handler, name: str, fault: Fault, *, head: bool) -> bool:
        """Act out faults that replace the whole answer; True when the answer was sent."""
        if fault.kind == "not_found":
            self._simple(handler, name, 404, b"Not Found", head=head)
        elif fault.kind == "forbidden":
            self._simple(handler, name, 403, EXPIRED_BODY, head=head)
        elif fault.kind == "status":
            try:
                phrase = HTTPStatus(fault.status).phrase
            except ValueError:
                phrase = "Error"
            body = f"{fault.status} {phrase}\n".encode()
            extra = {}
            if fault.retry_after is not None:  # a 503 may say when to come back, too
                extra["Retry-After"] = f"{fault.retry_after:g}"
            self._simple(handler, name, fault.status, body, head=head, extra=extra)
        elif fault.kind == "throttle":
            extra = {}
            if fault.retry_after is not None:
                extra["Retry-After"] = f"{fault.retry_after:g}"
            self._simple(handler, name, 429, b"Too Many Requests\n", head=head, extra=extra)
        elif fault.kind == "change_etag":
            with self._lock:
                self._generation[name] = self._generation.get(name, 0) + 1
            return False
        else:
            return False
        return True

    def _choose_range(
        self, handler: _Handler, size: int, validators: _Validators, fault: Fault | None
    ) -> ByteRange | Literal["unsatisfiable"] | None:
        header = handler.headers.get("Range")
        if header is None:
            chosen: ByteRange | Literal["unsatisfiable"] | None = None
        else:
            if_range = handler.headers.get("If-Range")
            if if_range is not None and not if_range_matches(
                if_range, etag=validators.etag, last_modified=validators.last_modified
            ):
                chosen = None  # the object changed: the whole new body (RFC 9110 §13.1.5)
            else:
                chosen = parse_range(header, size)
        if fault is not None and fault.kind == "ignore_range":
            return None
        if fault is not None and fault.kind == "wrong_range" and chosen != "unsatisfiable":
            asked = chosen if chosen is not None else ByteRange(0, size - 1)
            for shift in (_WRONG_RANGE_SHIFT, -_WRONG_RANGE_SHIFT, 1, -1):
                first = asked.first + shift
                if 0 <= first < size:
                    return ByteRange(first, min(size - 1, first + asked.length - 1))
        return chosen

    def _serve_file(
        self,
        handler: _Handler,
        name: str,
        file_path: Path,
        st: os.stat_result,
        fault: Fault | None,
        *,
        head: bool,
    ) -> None:
        size = st.st_size
        validators = self._validators(name, st)
        chosen = self._choose_range(handler, size, validators, fault)
        if chosen == "unsatisfiable":
            extra = {"Content-Range": f"bytes */{size}"}
            self._simple(handler, name, 416, b"Range Not Satisfiable\n", head=head, extra=extra)
            return
        status = 200 if chosen is None else 206
        first, length = (0, size) if chosen is None else (chosen.first, chosen.length)
        entry = self._record(handler, name, status)
        handler.send_response(status)
        handler.send_header("Content-Type", _content_type(name))
        handler.send_header("Content-Length", str(length))
        handler.send_header("Accept-Ranges", "bytes")
        handler.send_header("ETag", validators.etag)
        handler.send_header("Last-Modified", validators.last_modified)
        if chosen is not None:
            handler.send_header("Content-Range", f"bytes {first}-{first + length - 1}/{size}")
        handler.end_headers()
        if head:
            return
        limit = length
        if fault is not None and fault.kind in ("cut", "stall", "trickle"):
            limit = min(length, fault.after)
        sent = self._send_body(handler, entry, file_path, first, limit)
        if sent == limit < length and fault is not None and fault.kind == "trickle":
            handler.close_connection = True
            self._trickle(handler, entry, file_path, (first + sent, first + length), fault.seconds)
        elif sent == limit < length and fault is not None:
            self._end_early(handler, fault)
        elif sent < limit:
            handler.close_connection = True  # the client went away, or we are stopping

    def _end_early(self, handler: _Handler, fault: Fault) -> None:
        """Finish a ``cut`` or ``stall``: the connection closes with the body incomplete."""
        handler.close_connection = True
        if fault.kind == "stall":
            self._stopping.wait(fault.seconds)
        elif fault.mode == "rst":
            cast(_HTTPServer, handler.server).reset(handler.connection)

    def _trickle(
        self, handler: _Handler, entry: _Entry, path: Path, span: tuple[int, int], every: float
    ) -> None:
        """The bytes ``[start, end)`` of the body, one every ``every`` seconds, until the
        client leaves or the server stops: a server that is never quite silent."""
        start, end = span
        with path.open("rb") as f:
            f.seek(start)
            for _ in range(end - start):
                if self._stopping.wait(every):
                    return
                byte = f.read(1)
                self._count(entry, 1)
                try:
                    handler.connection.sendall(byte)
                except OSError:  # the client gave up on it
                    self._count(entry, -1)
                    return

    def _send_body(
        self, handler: _Handler, entry: _Entry, file_path: Path, first: int, count: int
    ) -> int:
        """Send ``count`` bytes from ``first``; returns what was sent before any failure."""
        try:
            with file_path.open("rb") as f:
                plain = self.tls is None
                if self.rate_per_connection is None and plain and hasattr(os, "sendfile"):
                    self._sendfile(handler.connection, f, first, count, entry)
                else:
                    self._send_paced(handler.connection, f, first, count, entry)
        except OSError as exc:  # client gone (EPIPE, ECONNRESET) or server stopping
            logger.debug("sending %s stopped after %d bytes: %s", entry.name, entry.sent, exc)
        return entry.sent

    def _count(self, entry: _Entry, n: int) -> None:
        """Add ``n`` (possibly negative, to take back) to the entry's and the totals' bytes.

        Bytes are counted just before they are handed to the socket and taken back if they
        do not go, so a client that has read a whole body always sees it counted.
        """
        with self._lock:
            entry.sent += n
            self._sent_total += n
            if entry.name is not None:
                self._sent[entry.name] = self._sent.get(entry.name, 0) + n

    def _sendfile(
        self, conn: socket.socket, f: BinaryIO, first: int, count: int, entry: _Entry
    ) -> None:
        """Zero-copy path: the kernel moves file pages to the socket."""
        out_fd, in_fd = conn.fileno(), f.fileno()
        done = 0
        while done < count:
            want = min(count - done, 1 << 30)
            self._count(entry, want)
            try:
                n = os.sendfile(out_fd, in_fd, first + done, want)
            except OSError:
                self._count(entry, -want)
                raise
            self._count(entry, n - want)
            if n == 0:
                return  # the file shrank under us
            done += n

    def _send_paced(
        self, conn: socket.socket, f: BinaryIO, first: int, count: int, entry: _Entry
    ) -> None:
        """Chunked path, sleeping between chunks to hold the per-connection rate."""
        rate = self.rate_per_connection
        chunk = 256 * 1024 if rate is None else max(1024, min(256 * 1024, int(rate / 20)))
        start = time.monotonic()
        f.seek(first)
        done = 0
        while done < count:
            data = f.read(min(chunk, count - done))
            if not data:
                return
            self._count(entry, len(data))
            try:
                conn.sendall(data)
            except OSError:
                self._count(entry, -len(data))  # some of it may have gone; not knowable
                raise
            done += len(data)
            if rate is not None:
                delay = start + done / rate - time.monotonic()
                if delay > 0 and self._stopping.wait(delay):
                    return
