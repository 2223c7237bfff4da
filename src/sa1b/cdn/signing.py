"""Signed-looking URLs in the shape of Meta's CDN links, and their verification.

The downloader must cope with what real links do: a query that starts with a bare ``_nc_gid``
(no ``=``), a signature (``oh``) that breaks if the URL is re-encoded, an expiry (``oe``, hex Unix
seconds) after which the CDN answers 403, and an object path that stays the same when Meta
reissues the links file (only ``oh``/``oe`` change). This module reproduces those properties:

``{base}/m1/v/t6/{opaque}.{ext}?_nc_gid&ccb=10-5&oh=00_{sig}&oe={expires:08X}&_nc_sid={sid}``

* ``opaque`` depends on the file name only, so a shard keeps its path across links files;
* ``sig`` is HMAC-SHA256(secret, path + oe), hex, cut to 40 characters: changing the path or
  the expiry invalidates it.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from collections.abc import Iterable
from typing import Literal

__all__ = [
    "OBJECT_PREFIX",
    "Verdict",
    "object_path",
    "opaque_id",
    "parse_query",
    "path_index",
    "sign_url",
    "signature",
    "verify",
]

OBJECT_PREFIX = "/m1/v/t6/"
_SIG_CHARS = 40

Verdict = Literal["ok", "expired", "bad-signature"]


def opaque_id(name: str) -> str:
    """A stable, opaque-looking object id for ``name`` (like Meta's ``An...`` ids)."""
    digest = hashlib.sha512(b"sa1b-cdn-object:" + name.encode()).digest()
    return "An" + base64.urlsafe_b64encode(digest).decode().rstrip("=")


def object_path(name: str) -> str:
    """The URL path under which ``name`` is served, e.g. ``/m1/v/t6/An....tar``."""
    _, dot, ext = name.rpartition(".")
    suffix = f".{ext}" if dot and ext else ""
    return f"{OBJECT_PREFIX}{opaque_id(name)}{suffix}"


def path_index(names: Iterable[str]) -> dict[str, str]:
    """Map each object path back to its file name, for a server to resolve requests."""
    return {object_path(name): name for name in names}


def signature(path: str, oe: str, *, secret: bytes) -> str:
    """The ``oh`` value (without the ``00_`` prefix) for ``path`` expiring at ``oe``."""
    mac = hmac.new(secret, (path + oe).encode(), hashlib.sha256)
    return mac.hexdigest()[:_SIG_CHARS]


def _session_id(name: str, secret: bytes) -> str:
    return hmac.new(secret, b"sid:" + name.encode(), hashlib.sha256).hexdigest()[:6]


def sign_url(base_url: str, name: str, *, secret: bytes, expires_at: int) -> str:
    """A CDN-shaped URL for ``name`` under ``base_url``, valid until ``expires_at`` (Unix s)."""
    if not 0 <= expires_at <= 0xFFFFFFFF:
        raise ValueError(f"expires_at must fit in 8 hex digits, got {expires_at}")
    path = object_path(name)
    oe = f"{expires_at:08X}"
    sig = signature(path, oe, secret=secret)
    sid = _session_id(name, secret)
    return f"{base_url.rstrip('/')}{path}?_nc_gid&ccb=10-5&oh=00_{sig}&oe={oe}&_nc_sid={sid}"


def parse_query(query: str) -> dict[str, str | None]:
    """Split a raw query into items; an item without ``=`` (``_nc_gid``) maps to ``None``.

    Values are kept as sent (no percent-decoding): signatures are compared byte for byte.
    """
    items: dict[str, str | None] = {}
    for part in query.split("&"):
        if not part:
            continue
        key, eq, value = part.partition("=")
        items.setdefault(key, value if eq else None)
    return items


def verify(path: str, query: str, *, secret: bytes, now: float) -> Verdict:
    """Check a request's signature first, then its expiry (``now >= oe`` is expired)."""
    items = parse_query(query)
    oh = items.get("oh")
    oe = items.get("oe")
    if oh is None or oe is None or not oh.startswith("00_"):
        return "bad-signature"
    if len(oe) != 8 or any(c not in "0123456789abcdefABCDEF" for c in oe):
        return "bad-signature"
    if not hmac.compare_digest(oh[3:].encode(), signature(path, oe, secret=secret).encode()):
        return "bad-signature"
    if now >= int(oe, 16):
        return "expired"
    return "ok"
