"""Text made safe to show, log and store: no signatures, no terminal control.

A signed SA-1B link carries its signature in the query (``oh=``, and ``_nc_`` tokens).
It must never reach a terminal, a log or the state store, whatever path the text took:
a server echoing the URL in an error page, a links-file line broken before ``&oh=``,
libcurl quoting the URL. Untrusted text (a server's body, a links-file line) may also
carry escape sequences that would drive the user's terminal.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

MIN_SECRET = 6
"""Shorter query values (``ccb=10-5``) are not secret and would blank out ordinary words."""

_QUERY = re.compile(r"(\w+://[^\s?'\"]*)\?[^\s'\"]*")
"""A URL's query string, wherever it appears in the text."""

_SIGNATURE = re.compile(r"(?i)(oh|sig|signature|x-amz-credential|token|_nc_[a-z]+)=[^\s&'\"]*")
"""A signature-like ``key=value`` outside a full URL (a line broken before ``&oh=``).
Matched even inside a longer word: hiding a harmless ``uhoh=`` costs nothing."""


def hide_secrets(text: str) -> str:
    """``text`` with every query string and signature-like parameter replaced by ``…``."""
    return _SIGNATURE.sub(r"\1=…", _QUERY.sub(r"\1?…", text))


def clean(text: str, *, limit: int = 200, secrets: Iterable[str] = ()) -> str:
    """Untrusted text made safe to show: no secrets (nor any of ``secrets``, e.g. the
    query values of the link the text answers), control characters escaped, at most
    ``limit`` characters."""
    for secret in secrets:
        if len(secret) >= MIN_SECRET:
            text = text.replace(secret, "…")
    text = hide_secrets(text)
    text = "".join(c if c.isprintable() else f"\\x{ord(c):02x}" for c in text)
    return text[:limit]


def quote(text: str, *, limit: int = 40) -> str:
    """An untrusted value quoted in a message so that a user sees what it was: cleaned
    (:func:`clean`) and, when longer than ``limit``, its start, ``…`` and its length,
    never a start that reads as the whole value: ``'00000000…' (5000 characters)``."""
    shown = clean(text, limit=4 * len(text))  # room for every character escaped
    if len(shown) <= limit:
        return f"'{shown}'"
    return f"'{shown[:limit]}…' ({len(text)} characters)"
