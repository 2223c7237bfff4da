"""A real nginx serving a directory on loopback, for benchmarks and integration tests.

:class:`NginxServer` writes a private configuration into its own prefix directory, runs
``nginx -p PREFIX -c CONF -e ERRLOG -g 'daemon off;'`` as a child process (in its own process
group) and stops it again; should the test process die first, even by ``SIGKILL``, nginx is
told to stop (:mod:`harness.processes`). It listens only on ``127.0.0.1``. Every request is
appended to a private access log in a fixed format (``$uri``, ``$status``, ``$body_bytes_sent``,
``$http_range``, ``$bytes_sent``) without buffering, so :meth:`NginxServer.bytes_sent` can tell
how many body bytes nginx handed out, per file or in total (:meth:`NginxServer.response_bytes`:
with the response headers)::

    with NginxServer(root=shard_dir, limit_rate="8m") as server:
        url = server.url_for("sa_000000.tar")
        ...
        served = server.bytes_sent("sa_000000.tar")

With ``tls=(certificate_chain, key)`` it serves HTTPS instead (``base_url`` starts with
``https://``), and with ``http2=True`` it also offers HTTP/2 through ALPN, as a CDN does
(:func:`harness.certs.make_certificates` makes a private CA and a certificate for
``127.0.0.1``). TLS settings: TLS 1.2 and 1.3, OpenSSL's default ciphers (the client's
preference wins), a shared session cache (``shared:SSL:10m``, one hour) so that a client's new
connections can resume sessions, nginx's default 16 KiB ``ssl_buffer_size`` (not tuned: no
measurement here says another size is better or closer to a CDN).

Configuration choices (see ``benchmarks/README.md`` for the measurements behind them):
``worker_processes 1``, ``sendfile on``, ``tcp_nopush on``, ``max_ranges 1`` (one range per
request, like a CDN), long keep-alive, ETags on (nginx's default). ``user root;`` is written
only when running as root, where nginx would otherwise drop to ``nobody``.

Standard library only; this module never prints.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import urllib.parse
from pathlib import Path
from typing import NamedTuple

from harness.processes import ChildService, end, free_loopback_ports, spawn

__all__ = [
    "NGINX_NOT_FOUND_MESSAGE",
    "AccessLogEntry",
    "NginxError",
    "NginxNotFoundError",
    "NginxServer",
    "find_nginx",
]

logger = logging.getLogger(__name__)

NGINX_NOT_FOUND_MESSAGE = (
    "nginx not found: install Debian's nginx-light (apt-get install nginx-light)"
)

#: Where Debian installs nginx; ``/usr/sbin`` is often missing from a non-root ``PATH``.
_NGINX_FALLBACK_PATHS = ("/usr/sbin/nginx", "/usr/local/sbin/nginx", "/usr/local/nginx/sbin/nginx")

#: nginx size syntax accepted for ``limit_rate``: digits with an optional k/m/g suffix.
_RATE_RE = re.compile(r"^[0-9]+[kKmMgG]?$")

#: Worker processes. Measured on the 2-core reference box, 6 parallel ~170 MiB downloads to
#: disk, alternating 1 and auto, medians in MB/s (1 vs auto): six curl processes uncapped
#: 1856 vs 1639 and 1420 vs 822 (two sessions); aria2c uncapped 603 vs 609 and 591 vs 605,
#: capped 341 vs 334 and 328 vs 340; sa1b (early build) uncapped 625 vs 662, capped 416 vs 347.
#: One worker never loses beyond noise and wins clearly against the leanest client, because it
#: leaves the second core to the client under test.
_WORKER_PROCESSES = "1"

_LOG_FORMAT_NAME = "sa1b_bench"
#: Tab-separated; nginx escapes control characters in values, so a tab never appears inside one.
_LOG_FORMAT = "'$uri\\t$status\\t$body_bytes_sent\\t$http_range\\t$bytes_sent'"
_START_TIMEOUT = 10.0
_STOP_TIMEOUT = 10.0
_PORT_ATTEMPTS = 5


class NginxError(RuntimeError):
    """nginx could not be started or stopped; the message includes its error log."""


class NginxNotFoundError(NginxError, FileNotFoundError):
    """The ``nginx`` binary is not installed (or not on ``PATH`` nor in ``/usr/sbin``)."""

    def __init__(self, message: str = NGINX_NOT_FOUND_MESSAGE) -> None:
        super().__init__(message)


class AccessLogEntry(NamedTuple):
    """One line of the server's access log."""

    uri: str
    status: int
    body_bytes_sent: int
    range: str  # the request's Range header, or "" when there was none
    bytes_sent: int = 0  # body and response headers (0 in a line logged without it)


def find_nginx() -> str:
    """Return the path of the nginx binary, or raise :class:`NginxNotFoundError`."""
    found = shutil.which("nginx")
    if found:
        return found
    for candidate in _NGINX_FALLBACK_PATHS:
        if os.path.isfile(candidate) and os.access(candidate, os.X_OK):
            return candidate
    raise NginxNotFoundError


def _quote(value: str) -> str:
    """Quote a string for an nginx configuration file."""
    if any(ord(ch) < 0x20 or ch == "\x7f" for ch in value):
        raise ValueError(f"control characters are not allowed in an nginx path: {value!r}")
    if "$" in value:
        # nginx expands variables in some directives (root, access_log); refuse a literal
        # dollar rather than serve or log somewhere else.
        raise ValueError(f"'$' is not allowed in an nginx path: {value!r}")
    escaped = value.replace("\\", "\\\\").replace('"', '\\"')
    return f'"{escaped}"'


def _parse_log_line(line: str) -> AccessLogEntry | None:
    parts = line.rstrip("\n").split("\t")
    if len(parts) not in (4, 5):
        return None
    uri, status, sent, range_header = parts[:4]
    try:
        return AccessLogEntry(
            uri=uri,
            status=int(status),
            body_bytes_sent=int(sent),
            range="" if range_header == "-" else range_header,
            bytes_sent=int(parts[4]) if len(parts) == 5 else 0,
        )
    except ValueError:
        return None


class NginxServer(ChildService):
    """A private nginx serving ``root`` on ``127.0.0.1``.

    ``limit_rate`` uses nginx syntax (``"8m"`` is 8 MB/s per request); ``None`` means no
    cap. ``port=0`` picks a free loopback port. ``workdir`` is the nginx prefix (config, logs,
    pid file, temp dirs); when ``None`` a temporary directory is used and removed by
    :meth:`stop` (the access log is kept in memory so :meth:`bytes_sent` still works).
    ``tls`` is ``(certificate_chain, private_key)`` (PEM files) to serve HTTPS; ``http2``
    (only with ``tls``) also offers HTTP/2 through ALPN.
    """

    label = "nginx"
    error = NginxError

    def __init__(
        self,
        *,
        root: Path,
        limit_rate: str | None = None,
        port: int = 0,
        workdir: Path | None = None,
        tls: tuple[Path, Path] | None = None,
        http2: bool = False,
    ) -> None:
        if limit_rate is not None and not _RATE_RE.match(limit_rate):
            raise ValueError(f"limit_rate must look like '8m', '512k' or '1000000': {limit_rate!r}")
        if not 0 <= port <= 65535:
            raise ValueError(f"port out of range: {port}")
        self.root = Path(root).resolve()
        _quote(str(self.root))  # refuse a root nginx could not be given, before starting
        self.limit_rate = limit_rate
        if http2 and tls is None:
            raise ValueError("http2 needs tls: clients offer HTTP/2 only through TLS (ALPN)")
        self.tls: tuple[Path, Path] | None = None
        if tls is not None:
            certificate, key = (Path(path).resolve() for path in tls)
            _quote(str(certificate))
            _quote(str(key))
            self.tls = (certificate, key)
        self.http2 = http2
        self._requested_port = port
        self._workdir = Path(workdir).resolve() if workdir is not None else None
        self._prefix: Path | None = None
        self._owns_prefix = False
        self._final_log: str | None = None

    # -- lifecycle ---------------------------------------------------------------------------

    def start(self) -> None:
        """Write the configuration, launch nginx and wait until its port answers."""
        if self._proc is not None:
            raise NginxError("nginx is already running")
        if not self.root.is_dir():
            raise NotADirectoryError(f"root is not a directory: {self.root}")
        for path in self.tls or ():
            if not path.is_file():
                raise FileNotFoundError(f"TLS file not found: {path}")
        binary = find_nginx()
        if self._workdir is not None:
            self._workdir.mkdir(parents=True, exist_ok=True)
            self._prefix = self._workdir
            self._owns_prefix = False
        else:
            self._prefix = Path(tempfile.mkdtemp(prefix="sa1b-nginx-"))
            self._owns_prefix = True
        self._final_log = None
        for name in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi"):
            (self._prefix / "temp" / name).mkdir(parents=True, exist_ok=True)
        self.access_log_path.write_bytes(b"")

        # nginx takes no port 0 ("invalid port"): one free a moment ago, and another if
        # someone took it in between ("Address already in use").
        attempts = _PORT_ATTEMPTS if self._requested_port == 0 else 1
        last_error = ""
        for _ in range(attempts):
            port = self._requested_port or free_loopback_ports()[0]
            error = self._launch(binary, port)
            if error is None:
                self._port = port
                logger.debug("nginx serving %s at %s", self.root, self.base_url)
                return
            last_error = error
            if "Address already in use" not in error:
                break
        self._cleanup_prefix()
        raise NginxError(f"nginx failed to start: {last_error.strip() or 'no error output'}")

    def _launch(self, binary: str, port: int) -> str | None:
        """Start nginx on ``port``; return None once it answers, or its error text."""
        assert self._prefix is not None
        conf = self._prefix / "nginx.conf"
        conf.write_text(self._render_config(port), encoding="utf-8")
        self.error_log_path.write_bytes(b"")
        self.pid_path.unlink(missing_ok=True)
        stderr_path = self._prefix / "stderr.log"
        with open(stderr_path, "wb") as stderr:
            # When the test process dies, nginx's fast shutdown (SIGTERM): its master then
            # stops the workers too, which SIGKILL would leave behind.
            proc = spawn(
                [
                    binary,
                    "-p",
                    str(self._prefix),
                    "-c",
                    str(conf),
                    "-e",
                    str(self.error_log_path),
                    "-g",
                    "daemon off;",
                ],
                stdout=subprocess.DEVNULL,
                stderr=stderr,
                on_parent_death=signal.SIGTERM,
            )
        deadline = time.monotonic() + _START_TIMEOUT
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                return self._startup_errors(stderr_path)
            if self._pid_file_matches(proc.pid) and self._port_answers(port):
                self._proc = proc
                return None
            time.sleep(0.02)
        end(proc, timeout=_STOP_TIMEOUT)  # SIGTERM: nginx's fast shutdown
        return f"timed out after {_START_TIMEOUT:.0f} s\n" + self._startup_errors(stderr_path)

    def _startup_errors(self, stderr_path: Path) -> str:
        texts = []
        for path in (stderr_path, self.error_log_path):
            with contextlib.suppress(OSError):
                texts.append(path.read_text(encoding="utf-8", errors="replace"))
        return "\n".join(t for t in texts if t)

    def _pid_file_matches(self, pid: int) -> bool:
        try:
            return int(self.pid_path.read_text().strip() or "0") == pid
        except (OSError, ValueError):
            return False

    @staticmethod
    def _port_answers(port: int) -> bool:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return True
        except OSError:
            return False

    def stop(self) -> None:
        """Stop nginx (fast shutdown) and make sure none of its processes is left."""
        proc, self._proc = self._proc, None
        if proc is not None:
            end(proc, timeout=_STOP_TIMEOUT)  # SIGTERM: nginx's fast shutdown
        if self._prefix is not None and self._final_log is None:
            with contextlib.suppress(OSError):
                self._final_log = self.access_log_path.read_text(encoding="utf-8")
        self._cleanup_prefix()

    def _cleanup_prefix(self) -> None:
        if self._owns_prefix and self._prefix is not None:
            shutil.rmtree(self._prefix, ignore_errors=True)
            self._prefix = None
            self._owns_prefix = False

    # -- configuration -----------------------------------------------------------------------

    def _render_config(self, port: int) -> str:
        assert self._prefix is not None
        prefix = self._prefix
        temp = prefix / "temp"
        rate = f"            limit_rate {self.limit_rate};\n" if self.limit_rate else ""
        listen = f"127.0.0.1:{port}"
        tls = ""
        if self.tls is not None:
            certificate, key = self.tls
            listen += " ssl http2" if self.http2 else " ssl"
            tls = (
                f"        ssl_certificate {_quote(str(certificate))};\n"
                f"        ssl_certificate_key {_quote(str(key))};\n"
                f"        ssl_protocols TLSv1.2 TLSv1.3;\n"
                f"        ssl_session_cache shared:SSL:10m;\n"
                f"        ssl_session_timeout 1h;\n"
            )
        user = "user root;\n" if os.geteuid() == 0 else ""
        return (
            f"# generated by harness.nginx\n"
            f"{user}"
            f"worker_processes {_WORKER_PROCESSES};\n"
            f"worker_rlimit_nofile 16384;\n"
            f"pid {_quote(str(self.pid_path))};\n"
            f"error_log {_quote(str(self.error_log_path))} warn;\n"
            f"events {{\n"
            f"    worker_connections 4096;\n"
            f"}}\n"
            f"http {{\n"
            f"    default_type application/octet-stream;\n"
            f"    types {{ application/x-tar tar; text/plain txt; }}\n"
            f"    log_format {_LOG_FORMAT_NAME} {_LOG_FORMAT};\n"
            f"    access_log {_quote(str(self.access_log_path))} {_LOG_FORMAT_NAME};\n"
            f"    client_body_temp_path {_quote(str(temp / 'client_body'))};\n"
            f"    proxy_temp_path {_quote(str(temp / 'proxy'))};\n"
            f"    fastcgi_temp_path {_quote(str(temp / 'fastcgi'))};\n"
            f"    uwsgi_temp_path {_quote(str(temp / 'uwsgi'))};\n"
            f"    scgi_temp_path {_quote(str(temp / 'scgi'))};\n"
            f"    sendfile on;\n"
            f"    tcp_nopush on;\n"
            f"    keepalive_requests 100000;\n"
            f"    keepalive_timeout 65;\n"
            f"    max_ranges 1;\n"
            f"    server_tokens off;\n"
            f"    server {{\n"
            f"        listen {listen};\n"
            f"        server_name localhost;\n"
            f"{tls}"
            f"        location / {{\n"
            f"            root {_quote(str(self.root))};\n"
            f"{rate}"
            f"        }}\n"
            f"    }}\n"
            f"}}\n"
        )

    # -- accessors ---------------------------------------------------------------------------

    @property
    def prefix(self) -> Path:
        """The nginx prefix directory (config, logs, pid, temp); only while it exists."""
        if self._prefix is None:
            raise NginxError("nginx has not been started")
        return self._prefix

    @property
    def access_log_path(self) -> Path:
        return self.prefix / "access.log"

    @property
    def error_log_path(self) -> Path:
        return self.prefix / "error.log"

    @property
    def pid_path(self) -> Path:
        return self.prefix / "nginx.pid"

    @property
    def scheme(self) -> str:
        """``https`` when serving TLS, else ``http``."""
        return "https" if self.tls is not None else "http"

    @property
    def base_url(self) -> str:
        return f"{self.scheme}://127.0.0.1:{self.port}"

    def url_for(self, name: str) -> str:
        """The URL of ``root/name`` (path segments percent-encoded)."""
        return f"{self.base_url}/{urllib.parse.quote(name.lstrip('/'))}"

    def log_entries(self) -> list[AccessLogEntry]:
        """All requests nginx has finished (and logged) so far."""
        if self._final_log is not None and self._proc is None:
            text = self._final_log
        else:
            try:
                text = self.access_log_path.read_text(encoding="utf-8", errors="replace")
            except (OSError, NginxError):
                return []
        entries = []
        for line in text.splitlines():
            entry = _parse_log_line(line)
            if entry is not None:
                entries.append(entry)
        return entries

    def bytes_sent(self, name: str | None = None) -> int:
        """Sum of ``$body_bytes_sent`` over logged requests for ``name``, or for all files.

        A request is logged when it ends (including when the client drops the connection),
        so bytes of transfers still in flight are not counted yet.
        """
        uri = None if name is None else "/" + name.lstrip("/")
        return sum(
            entry.body_bytes_sent for entry in self.log_entries() if uri is None or entry.uri == uri
        )

    def response_bytes(self, name: str | None = None) -> int:
        """Sum of ``$bytes_sent`` (body and response headers), as :meth:`bytes_sent` sums
        the bodies. TLS records and TCP are not counted."""
        uri = None if name is None else "/" + name.lstrip("/")
        return sum(
            entry.bytes_sent for entry in self.log_entries() if uri is None or entry.uri == uri
        )

    def clear_log(self) -> None:
        """Truncate the access log (nginx keeps appending to the same open file)."""
        self._final_log = None
        with open(self.access_log_path, "r+b") as log:
            log.truncate(0)
