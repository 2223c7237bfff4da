"""What every local server of the test harness shares: start, stop, a ``with`` block, the port.

:class:`Service` is the frame: :meth:`~Service.start` and :meth:`~Service.stop` (``stop`` a
no-op when nothing runs), a ``with`` block around them, and :attr:`~Service.port`, the port
read back once serving (an error naming the service before). :class:`LoopbackHTTPServer`
is the HTTP server the in-process ones (the CDN stand-in, the S3 fault proxy in
``harness.s3_faults``) run in a thread: bound to ``127.0.0.1`` (port 0: the kernel picks,
read back), one daemon thread per connection, and a stop that also ends idle keep-alive
connections, so a client waiting on one never holds a test up. ``harness.processes`` builds
the servers run as child processes (nginx, SeaweedFS) on the same :class:`Service`.

It lives here, beside the CDN stand-in, because the library's package may not import the
harness (which may import the library). Standard library only; it never prints.
"""

from __future__ import annotations

import abc
import contextlib
import logging
import socket
import socketserver
import struct
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any, ClassVar, Self

__all__ = ["LoopbackHTTPServer", "Service"]

logger = logging.getLogger(__name__)

#: How long :meth:`LoopbackHTTPServer.close` waits for each connection's thread to end.
_JOIN_TIMEOUT = 5.0


class Service(abc.ABC):
    """A server a test starts and stops, or uses as a ``with`` block."""

    #: What the "not started" error calls it ("nginx", "the proxy"), and that error's class.
    label: ClassVar[str] = "the server"
    error: ClassVar[type[Exception]] = RuntimeError

    _port: int | None = None  # read back once serving

    @abc.abstractmethod
    def start(self) -> None: ...

    @abc.abstractmethod
    def stop(self) -> None:
        """Stop, leaving nothing running; a no-op when not started (or already stopped)."""

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    @property
    def port(self) -> int:
        if self._port is None:
            raise self.error(f"{self.label} has not been started")
        return self._port


class LoopbackHTTPServer(ThreadingHTTPServer):
    """An HTTP server on ``127.0.0.1`` that knows its open connections, so :meth:`close`
    can end them, and can end one with a TCP reset (:meth:`reset`)."""

    daemon_threads = True
    request_queue_size = 128

    def __init__(self, handler: type[BaseHTTPRequestHandler], *, port: int = 0) -> None:
        self.connections: set[socket.socket] = set()
        self.threads: set[threading.Thread] = set()
        self.to_reset: set[socket.socket] = set()
        self.conn_lock = threading.Lock()
        self.connections_total = 0
        self._serving: threading.Thread | None = None
        super().__init__(("127.0.0.1", port), handler)

    @property
    def port(self) -> int:
        return int(self.server_address[1])

    def server_bind(self) -> None:
        # HTTPServer.server_bind resolves the host name (getfqdn), which can hang on a machine
        # with broken DNS; the name is not needed.
        socketserver.TCPServer.server_bind(self)
        host, port = self.server_address[:2]
        self.server_name = str(host)
        self.server_port = int(port)

    def serve_in_thread(self, name: str) -> None:
        """Serve until :meth:`close`, in a daemon thread called ``name``."""
        self._serving = threading.Thread(
            target=self.serve_forever, kwargs={"poll_interval": 0.05}, name=name, daemon=True
        )
        self._serving.start()

    def close(self) -> None:
        """Stop accepting, end open connections (idle keep-alive ones too), join threads."""
        self.shutdown()
        self.server_close()
        with self.conn_lock:
            connections = list(self.connections)
            threads = list(self.threads)
        for conn in connections:
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)
        for thread in [*threads, *([self._serving] if self._serving else [])]:
            thread.join(timeout=_JOIN_TIMEOUT)

    def reset(self, conn: socket.socket) -> None:
        """End ``conn`` with a TCP reset once its request is done, as a dropped connection
        or a crashed server does (no FIN first: linger 0 makes close() send RST)."""
        conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        with self.conn_lock:
            self.to_reset.add(conn)

    def process_request(self, request: Any, client_address: Any) -> None:
        thread = threading.Thread(
            target=self._run_request, args=(request, client_address), daemon=True
        )
        with self.conn_lock:
            self.connections.add(request)
            self.threads.add(thread)
            self.connections_total += 1
        thread.start()

    def _run_request(self, request: socket.socket, client_address: Any) -> None:
        try:
            self.process_request_thread(request, client_address)
        finally:
            with self.conn_lock:
                self.connections.discard(request)
                self.threads.discard(threading.current_thread())

    def handle_error(self, request: Any, client_address: Any) -> None:
        # socketserver prints tracebacks to stderr; a client hanging up is routine here.
        logger.debug("connection from %s ended with an error", client_address, exc_info=True)

    def shutdown_request(self, request: Any) -> None:
        with self.conn_lock:
            reset = request in self.to_reset
            self.to_reset.discard(request)
        if reset:
            self.close_request(request)
        else:
            super().shutdown_request(request)
