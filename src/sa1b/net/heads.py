"""Response heads, from the header lines libcurl hands over: pure, fed line by line.

libcurl passes every head of an exchange to the header callback: ``1xx`` interim
answers (``100 Continue``, ``103 Early Hints``), the redirects it follows, then the
final answer. Only the last complete head describes the body that follows, so the
verdict on an answer is taken when its first body byte arrives (or the exchange
ends without one), never at a blank line.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from sa1b.redaction import quote

MAX_HEAD = 64 * 1024
"""Heads larger than this are refused (real CDN heads are about 1 KiB)."""

_STATUS_LINE = re.compile(rb"HTTP/\d(?:\.\d)? (\d{3})(?: ([^\r\n]*))?")
_TOKEN = re.compile(rb"[!#$%&'*+.^_`|~0-9A-Za-z-]+")


class HeadError(ValueError):
    """The header lines are not an HTTP response head we can trust."""


@dataclass(frozen=True, slots=True)
class Head:
    """A complete response head. ``headers`` has lower-case names; repeats are joined."""

    status: int
    reason: str = ""
    headers: dict[str, str] = field(default_factory=dict)


class HeadReader:
    """Collects header lines into heads; :attr:`final` is the last complete one."""

    def __init__(self) -> None:
        self.final: Head | None = None
        self._status: int | None = None
        self._reason = ""
        self._headers: dict[str, str] = {}
        self._last: str | None = None
        self._size = 0

    def feed(self, line: bytes) -> None:
        """Take one line as libcurl gives it (with its CRLF). Raises :class:`HeadError`."""
        self._size += len(line)
        if self._size > MAX_HEAD:
            raise HeadError(f"response heads larger than {MAX_HEAD} bytes")
        text = line.rstrip(b"\r\n")
        if self._status is None:
            match = _STATUS_LINE.fullmatch(text)
            if not match:
                raise HeadError(f"not a status line: {quote(text.decode('latin-1'))}")
            self._status = int(match.group(1))
            self._reason = (match.group(2) or b"").decode("latin-1").strip()
            return
        if not text:  # the blank line: this head is complete
            self.final = Head(self._status, self._reason, self._headers)
            self._status, self._headers, self._last = None, {}, None
            return
        if text[:1] in (b" ", b"\t"):  # obsolete line folding: part of the last value
            if self._last is None:
                raise HeadError("a continuation line before any header")
            self._headers[self._last] += " " + text.strip().decode("latin-1")
            return
        name, sep, value = text.partition(b":")
        if not sep or not _TOKEN.fullmatch(name):
            raise HeadError(f"bad header line {quote(text.decode('latin-1'))}")
        key = name.decode("latin-1").lower()
        value_text = value.strip().decode("latin-1")
        known = self._headers.get(key)
        self._headers[key] = value_text if known is None else f"{known}, {value_text}"
        self._last = key

    @property
    def incomplete(self) -> bool:
        """True while a head has begun and not ended."""
        return self._status is not None
