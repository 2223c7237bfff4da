"""Judge an HTTP answer to a range request: pure functions over status and headers.

The rules, in the order the complaints about SA-1B scripts taught them:

- 206 must carry ``Content-Range: bytes a-b/total`` with ``a`` the byte asked for;
  anything else is a protocol error, and nothing of it is written.
- 200 to a ranged request means the server ignored the range (or ``If-Range`` did
  not match): the body is the whole object from byte 0, never to be appended.
- A validator (ETag, Last-Modified) or total size that differs from what the file's
  first answer gave means the object changed: every byte kept so far is void.
- A total larger than any SA-1B file is a broken or hostile server: refused before
  anything is allocated.
- 403 with ``URL signature expired``, or any 403 once ``oe`` has passed, is expiry:
  not transient, the user needs a new links file. 404 and 410 are final too.
- 408, 429 and 5xx are transient; ``Retry-After`` says how long to wait.
- A redirect that arrives as the answer is one libcurl refused to follow (https to
  http, another scheme, too many): final, never retried.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal

from sa1b.errors import (
    HTTPStatusError,
    ImplausibleSizeError,
    LinkExpiredError,
    RangeMismatchError,
    RedirectError,
    ServerError,
    TransferError,
)
from sa1b.links import Link, expiry, query_items, redact
from sa1b.net.heads import Head
from sa1b.net.options import MAX_REDIRECTS
from sa1b.redaction import clean, quote
from sa1b.sizes import MAX_FILE_SIZE
from sa1b.versions import Validator

EXPIRED_BODY = "signature expired"
ERROR_BODY = 2048
"""Bytes of an error page read and judged: enough to tell an expired link from another
refusal."""
_CONTENT_RANGE = re.compile(r"bytes\s+(\d+)-(\d+)/(\d+|\*)", re.IGNORECASE)


@dataclass(frozen=True, slots=True)
class BodyPlan:
    """What to do with a response body.

    ``kind`` is ``"range"`` (the bytes asked for, at ``start``), ``"whole"`` (the
    full object from byte 0: restart as one stream) or ``"changed"`` (the object is
    not the one whose bytes are on disk: void them and start over).
    """

    kind: Literal["range", "whole", "changed"]
    start: int
    length: int
    total: int
    validator: Validator


def judge_range_answer(
    status: int,
    headers: Mapping[str, str],
    *,
    start: int,
    end: int,
    size: int | None,
    validator: Validator | None,
    name: str = "",
    url: str = "",
) -> BodyPlan:
    """Decide what a 200/206 answer to ``Range: bytes=start-(end-1)`` means.

    ``headers`` has lower-case keys. ``size`` and ``validator`` are what the file's
    first answer said, or None before it. Raises :class:`RangeMismatchError` for a
    206 that does not match the request and :class:`HTTPStatusError` for an answer
    without a usable length.
    """
    got = Validator.from_headers(headers)
    changed = validator is not None and validator.contradicts(got)
    where = {"name": name, "url": url}
    if status == 206:
        first, last, total = _content_range(headers.get("content-range", ""), where)
        if changed or (size is not None and total != size):
            return BodyPlan("changed", 0, 0, total, got)
        if first != start or last >= end:
            raise RangeMismatchError(
                f"asked for bytes {start}-{end - 1}, got {first}-{last}/{total}", **where
            )
        length = last + 1 - first
        declared = headers.get("content-length")
        if declared is not None and declared.strip() != str(length):
            raise RangeMismatchError(
                f"Content-Length {quote(declared)} does not match Content-Range {first}-{last}",
                **where,
            )
        return BodyPlan("range", first, length, total, got)
    if status == 200:
        total = _whole_length(headers.get("content-length", "").strip(), where)
        if changed or (size is not None and total != size):
            return BodyPlan("changed", 0, total, total, got)
        return BodyPlan("whole", 0, total, total, got)
    raise ValueError(f"judge_range_answer handles 200 and 206, not {status}")


def _content_range(shown: str, where: dict[str, str]) -> tuple[int, int, int]:
    """``first, last, total`` of a 206's ``Content-Range``, which must be usable."""
    match = _CONTENT_RANGE.fullmatch(shown.strip())
    if not match or match.group(3) == "*":
        raise RangeMismatchError(f"206 without a usable Content-Range ({quote(shown)})", **where)
    first, last, total = (_size(match.group(i), **where) for i in (1, 2, 3))
    if not first <= last < total:  # breaks HTTP whatever was asked: says nothing of a change
        raise RangeMismatchError(
            f"206 with an impossible Content-Range {first}-{last}/{total}", **where
        )
    return first, last, total


def _whole_length(declared: str, where: dict[str, str]) -> int:
    """The length of a 200 answer (the whole file), which must be given and plausible."""
    if not (declared.isascii() and declared.isdigit()):
        raise HTTPStatusError(
            "the server sent the whole file without a Content-Length", status=200, **where
        )
    total = _size(declared, **where)
    if not total:  # an empty answer to a range request: never an SA-1B file
        raise ImplausibleSizeError(
            "the server answers 200 with an empty body: no SA-1B file is empty", **where
        )
    return total


def _size(digits: str, *, name: str, url: str) -> int:
    """A byte count from the server; none of SA-1B is above :data:`MAX_FILE_SIZE`.

    Long digit strings are refused before ``int`` reads them (Python refuses more
    than 4300 digits with a ValueError; a hostile server could send 5000).
    """
    value = int(digits) if len(digits) <= 20 else None
    if value is None or value > MAX_FILE_SIZE:
        shown = digits if value is not None else f"a {len(digits)}-digit number of"
        raise ImplausibleSizeError(
            f"the server announces {shown} bytes, more than any SA-1B file "
            f"({MAX_FILE_SIZE // 1024**3} GiB): refused, nothing allocated",
            name=name,
            url=url,
        )
    return value


class ErrorPage:
    """The page of a refused request (a non-2xx answer): its first :data:`ERROR_BODY`
    bytes, which tell an expired link from another refusal, then the error it stands
    for. Every receiver of an answer collects a refusal's page through one."""

    __slots__ = ("head", "page")

    def __init__(self, head: Head) -> None:
        self.head = head
        self.page = bytearray()

    @classmethod
    def of(cls, head: Head) -> ErrorPage | None:
        """A page to collect when ``head`` refuses the request; None for a 200 or 206."""
        return None if head.status in (200, 206) else cls(head)

    def add(self, data: bytes) -> bool:
        """Keep what fits of the next body bytes; False once the page has all it needs."""
        self.page += data[: ERROR_BODY - len(self.page)]
        return len(self.page) < ERROR_BODY

    def error(self, link: Link, *, now: float) -> TransferError:
        """The error the refusal of a request of ``link`` stands for, named after the
        file, its URL shown without its signature."""
        return error_for_status(
            self.head.status,
            self.head.headers,
            bytes(self.page),
            now=now,
            name=link.name,
            url=link.url,
            redacted=redact(link.url),
        )


def error_for_status(
    status: int,
    headers: Mapping[str, str],
    body: bytes,
    *,
    now: float,
    name: str = "",
    url: str = "",
    redacted: str = "",
) -> TransferError:
    """The error a non-2xx answer stands for; ``url`` is the real one (for ``oe``)."""
    text = body[:ERROR_BODY].decode("utf-8", "replace").strip()
    where = {"name": name, "url": redacted}
    if status == 403:
        oe = expiry(url)
        if EXPIRED_BODY in text.lower() or (oe is not None and oe <= now):
            return LinkExpiredError("the signed link has expired", **where)
        secrets = [value for _, value in query_items(url) if value]
        shown = clean(text, limit=80, secrets=secrets)  # a server may echo the signature
        return HTTPStatusError(f"403 Forbidden ({shown})", status=status, **where)
    if status in (408, 429) or 500 <= status <= 599:
        return ServerError(
            f"server answered {status}",
            status=status,
            retry_after=parse_retry_after(headers.get("retry-after"), now=now),
            **where,
        )
    if status == 407:  # only a proxy asks this
        return HTTPStatusError("the proxy wants credentials (407)", status=status, **where)
    if 300 <= status < 400 and (location := headers.get("location")):
        # Only scheme and authority are shown; no parser: the Location may be malformed.
        scheme, sep, rest = location.strip().partition("://")
        target = f"{scheme}://{rest.split('/', 1)[0].split('?', 1)[0]}" if sep else "elsewhere"
        return RedirectError(
            f"a redirect ({status}) to {clean(target, limit=80)} "
            "was not followed: only http(s), never from https to http, at most "
            f"{MAX_REDIRECTS} in a row",
            **where,
        )
    return HTTPStatusError(f"server answered {status}", status=status, **where)


def parse_retry_after(value: str | None, *, now: float) -> float | None:
    """Seconds to wait from a ``Retry-After`` header (seconds or an HTTP date)."""
    if value is None:
        return None
    value = value.strip()
    if value.isascii() and value.isdigit():
        return float(value)
    from email.utils import parsedate_to_datetime  # rare: only for dated Retry-After

    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - now)
