"""HTTP/1.1 on the wire, sans I/O: build a request, parse a response head.

Only what a range downloader needs: ``GET`` with headers out; status line, headers
and body framing in. Pure functions over bytes, tested byte by byte; the socket
work lives in :mod:`sa1b.http`.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass

MAX_HEAD = 64 * 1024
"""A response head larger than this is refused (real CDN heads are ~1 KiB)."""

_STATUS_LINE = re.compile(rb"HTTP/1\.([01]) (\d{3})(?: ([^\r\n]*))?")
_TOKEN = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+")


class ProtocolError(ValueError):
    """The bytes received are not an HTTP/1.x response we can trust."""


@dataclass(frozen=True, slots=True)
class Head:
    """A parsed response head. ``headers`` has lower-case names; repeats are joined."""

    status: int
    reason: str
    headers: dict[str, str]
    http10: bool = False

    @property
    def content_length(self) -> int | None:
        value = self.headers.get("content-length")
        if value is None:
            return None
        value = value.strip()
        if not value.isascii() or not value.isdigit():
            raise ProtocolError(f"bad Content-Length {value[:40]!r}")
        return int(value)

    @property
    def chunked(self) -> bool:
        return "chunked" in self.headers.get("transfer-encoding", "").lower()

    @property
    def keep_alive(self) -> bool:
        """Whether the connection may carry another request after this body."""
        connection = self.headers.get("connection", "").lower()
        if self.http10:
            return "keep-alive" in connection
        return "close" not in connection


def build_request(target: str, *, host: str, headers: Mapping[str, str]) -> bytes:
    """The bytes of ``GET target``. ``target`` is sent as given (signatures are fragile).

    ``target`` is a path (origin form) or, for a plain-HTTP proxy, a whole
    ``http://`` URL (absolute form). The error never quotes it: it may be signed.
    """
    origin_or_absolute = target.startswith(("/", "http://"))
    if not origin_or_absolute or any(c in target for c in " \r\n\t") or not target.isascii():
        raise ValueError("request target must be an ASCII path or http:// URL without spaces")
    lines = [f"GET {target} HTTP/1.1", f"Host: {host}"]
    for name, value in headers.items():
        if not _TOKEN.fullmatch(name) or "\r" in value or "\n" in value:
            raise ValueError(f"bad header {name!r}")
        lines.append(f"{name}: {value}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


def head_end(buffer: bytes | bytearray) -> int:
    """Index just past the blank line ending the head, or -1 if it is not complete."""
    index = buffer.find(b"\r\n\r\n")
    return -1 if index < 0 else index + 4


def parse_head(data: bytes | bytearray) -> Head:
    """Parse a complete response head (status line, headers, blank line)."""
    lines = bytes(data).split(b"\r\n")
    match = _STATUS_LINE.fullmatch(lines[0])
    if not match:
        raise ProtocolError(f"not an HTTP/1.x status line: {lines[0][:60]!r}")
    headers: dict[str, str] = {}
    for raw in lines[1:]:
        if not raw:
            continue
        name, sep, value = raw.partition(b":")
        text = name.decode("latin-1")
        if not sep or not _TOKEN.fullmatch(text):
            raise ProtocolError(f"bad header line {raw[:60]!r}")
        key = text.lower()
        value_text = value.strip().decode("latin-1")
        headers[key] = f"{headers[key]}, {value_text}" if key in headers else value_text
    reason = (match.group(3) or b"").decode("latin-1")
    return Head(int(match.group(2)), reason, headers, http10=match.group(1) == b"0")
