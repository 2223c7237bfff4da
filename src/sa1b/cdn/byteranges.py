"""Server-side decisions about ``Range`` and ``If-Range`` (RFC 9110 §13.1.5, §14), free of I/O.

The stand-in CDN must answer ranged requests the way a conforming server does, because the
downloader's resume logic is judged against it: one satisfiable range gives 206, a range past
the end gives 416, a syntactically invalid or multi-part range is ignored (200, whole body), and
an ``If-Range`` whose validator no longer matches also gives the whole body. Kept pure so the
rules are tested as a table.
"""

from __future__ import annotations

import email.utils
from dataclasses import dataclass
from typing import Literal

__all__ = ["ByteRange", "if_range_matches", "parse_range"]


@dataclass(frozen=True)
class ByteRange:
    """An inclusive byte range ``first``..``last`` of a representation."""

    first: int
    last: int

    @property
    def length(self) -> int:
        return self.last - self.first + 1


def _digits(text: str) -> int | None:
    text = text.strip()
    return int(text) if text.isdigit() and text.isascii() else None


def parse_range(header: str, size: int) -> ByteRange | Literal["unsatisfiable"] | None:
    """Interpret a ``Range`` header for a representation of ``size`` bytes.

    Returns the range to send, ``None`` to ignore the header and send everything, or
    ``"unsatisfiable"`` for a 416.
    """
    unit, eq, spec = header.partition("=")
    if not eq or unit.strip().lower() != "bytes" or "," in spec:
        return None  # unknown unit, malformed, or several ranges: serving all is allowed
    first_text, dash, last_text = spec.partition("-")
    if not dash:
        return None
    if not first_text.strip():  # suffix range: the last N bytes
        suffix = _digits(last_text)
        if suffix is None:
            return None
        if suffix == 0 or size == 0:
            return "unsatisfiable"
        return ByteRange(max(0, size - suffix), size - 1)
    first = _digits(first_text)
    if first is None:
        return None
    if last_text.strip():
        last = _digits(last_text)
        if last is None or last < first:
            return None
    else:
        last = size - 1
    if first >= size:
        return "unsatisfiable"
    return ByteRange(first, min(last, size - 1))


def if_range_matches(value: str, *, etag: str, last_modified: str) -> bool:
    """Whether an ``If-Range`` validator still designates the current representation.

    Entity tags use the strong comparison (a weak tag never matches); a date must equal
    ``Last-Modified`` exactly.
    """
    value = value.strip()
    if value.startswith(('"', "W/")):
        return not value.startswith("W/") and value == etag
    try:
        asked = email.utils.parsedate_to_datetime(value)
        current = email.utils.parsedate_to_datetime(last_modified)
    except (TypeError, ValueError):
        return False
    return asked == current
