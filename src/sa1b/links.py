"""Links files: parse them, and read what a signed URL says about itself.

Pure functions over text. Accepted formats, detected per line:

- the official file: header ``file_name<TAB>cdn_link``, then ``name<TAB>url`` rows;
- the same with CRLF endings, without the header, or with spaces instead of the tab;
- a plain list of URLs, one per line, the name taken from the last path segment.

URLs are kept byte for byte: since 2025 the query starts with a bare ``_nc_gid``
that has no ``=``, and re-encoding anything may break the signature. Names become
paths on disk, so only plain, safe file names are accepted.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote, unquote, urlsplit

from sa1b.errors import InputError, LinksFileError
from sa1b.redaction import quote as quote_value

HEADER = ("file_name", "cdn_link")

OWN_FOLDERS = frozenset({"tars", "images", "annotations", "other"})
"""Folders sa1b makes in the output folder: no file of a links file may take their name."""
_SAFE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,199}")
_SHARD_NAME = re.compile(r"sa_(\d{6})\.tar")
_HEX = re.compile(r"[0-9A-Fa-f]{1,16}")


@dataclass(frozen=True, slots=True)
class Link:
    """One row of a links file: a file name and the URL to fetch it from."""

    name: str
    url: str
    line: int = 0

    @property
    def shard_id(self) -> int | None:
        """The shard number for ``sa_NNNNNN.tar``, ``None`` for extras."""
        match = _SHARD_NAME.fullmatch(self.name)
        return int(match.group(1)) if match else None

    @property
    def expires_at(self) -> int | None:
        """The link's expiry (Unix seconds) from its ``oe`` parameter, if any."""
        return expiry(self.url)


def is_shard_name(name: str) -> bool:
    """True for ``sa_NNNNNN.tar``, a shard of the dataset (the rest are extras)."""
    return bool(_SHARD_NAME.fullmatch(name))


def is_safe_name(name: str) -> bool:
    """True for a plain file name that cannot escape a folder or hide itself."""
    return bool(_SAFE_NAME.fullmatch(name)) and ".." not in name


def query_items(url: str) -> list[tuple[str, str | None]]:
    """The raw query items of ``url`` in order; a bare item (``_nc_gid``) has value None."""
    query = urlsplit(url).query
    items: list[tuple[str, str | None]] = []
    for part in query.split("&"):
        if not part:
            continue
        key, sep, value = part.partition("=")
        items.append((key, value if sep else None))
    return items


def expiry(url: str) -> int | None:
    """The ``oe`` expiry of a signed CDN URL as Unix seconds, or None if it has none."""
    for key, value in query_items(url):
        if key == "oe" and value is not None and _HEX.fullmatch(value):
            return int(value, 16)
    return None


def redact(url: str) -> str:
    """The URL without credentials and query (the signature), safe for logs:
    ``https://host/path?…``."""
    parts = urlsplit(url)
    suffix = "?…" if parts.query else ""
    return f"{parts.scheme}://{_host(parts.netloc)}{parts.path}{suffix}"


def object_key(url: str) -> str:
    """What identifies the object behind a signed URL across reissued links: host and
    path (never credentials, which would otherwise be stored)."""
    parts = urlsplit(url)
    return f"{_host(parts.netloc)}{parts.path}"


def _host(netloc: str) -> str:
    """``host[:port]`` of a URL's authority, without ``user:password@``."""
    return netloc.rpartition("@")[2]


def parse_links(text: str, *, source: str = "<links>") -> list[Link]:
    """Parse a links file's text into links, in file order.

    Raises :class:`LinksFileError` naming ``source`` and the line for anything that
    is not a header, a blank line, a ``#`` comment, a ``name url`` row or a bare URL;
    for unsafe or duplicate names; and for a file with no links at all.
    """
    if _looks_like_html(text):
        raise LinksFileError(
            "this is a web page (HTML), not the links file",
            path=source,
            hint="on Meta's SA-1B page, download the links file itself: a text file "
            "of 'file_name<TAB>cdn_link' rows",
        )
    links: list[Link] = []
    seen: dict[str, int] = {}
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        fields = line.split()
        if tuple(fields) == HEADER:
            if links:
                raise LinksFileError("header line after the first row", path=source, line=number)
            continue
        link = _parse_row(fields, source=source, number=number)
        if link.name in seen:
            raise LinksFileError(
                f"duplicate file name {link.name!r} (first on line {seen[link.name]})",
                path=source,
                line=number,
            )
        seen[link.name] = number
        links.append(link)
    if not links:
        raise LinksFileError(
            "the file has no links (it is empty, or holds only a header or comments)",
            path=source,
            hint="the links file is the text file you download from Meta's SA-1B page: a "
            "'file_name<TAB>cdn_link' header, then one 'sa_000000.tar<TAB>https://...' row "
            "per file",
        )
    return links


def _looks_like_html(text: str) -> bool:
    start = text.lstrip()[:15].lower()
    return start.startswith(("<!doctype html", "<html", "<?xml", "<head", "<!--"))


def _parse_row(fields: list[str], *, source: str, number: int) -> Link:
    if len(fields) == 1:
        url = fields[0]
        _check_url(url, source=source, number=number)
        name = unquote(urlsplit(url).path.rsplit("/", 1)[-1])
    elif len(fields) == 2:
        name, url = fields
        _check_url(url, source=source, number=number)
    else:
        raise LinksFileError(
            f"expected 'file_name<TAB>url' or a bare URL, found {len(fields)} fields",
            path=source,
            line=number,
        )
    if name in OWN_FOLDERS:
        raise LinksFileError(
            f"the file name {name!r} is a folder sa1b makes in the output folder",
            path=source,
            line=number,
        )
    if not is_safe_name(name):
        raise LinksFileError(
            f"unsafe file name {quote_value(name)}: only letters, digits, '.', '_' and '-' are "
            "allowed",
            path=source,
            line=number,
        )
    return Link(name=name, url=url, line=number)


def mirror_link(base: str, link: Link) -> Link:
    """``link``'s file at a mirror: ``BASE/<file name>`` (the name is a plain, checked
    file name; it is percent-encoded all the same)."""
    return Link(link.name, f"{base.rstrip('/')}/{quote(link.name)}", link.line)


def check_mirror(base: str) -> str:
    """``base`` if it can serve as a mirror: a printable http(s) URL with a host."""
    try:
        parts = urlsplit(base)
        parts.port  # noqa: B018  (raises for a malformed port)
    except ValueError:
        parts = None
    if parts is None or parts.scheme not in ("http", "https") or not parts.netloc:
        raise InputError("--mirror needs an http(s) URL", hint="e.g. --mirror https://host/sa1b")
    if not base.isascii() or not base.isprintable():
        raise InputError("--mirror: the URL has non-ASCII or control characters")
    return base


def _check_url(url: str, *, source: str, number: int) -> None:
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018  (raises for a malformed port)
    except ValueError as error:
        raise LinksFileError(f"malformed URL: {error}", path=source, line=number) from None
    if not url.isascii() or not url.isprintable():
        raise LinksFileError(
            "URL has non-ASCII or control characters (percent-encode them)",
            path=source,
            line=number,
        )
    if url.startswith(("&", "?")):
        raise LinksFileError(
            "this line looks like the end of the previous line's URL",
            path=source,
            line=number,
            hint="join it to the line before (the URL was broken in two when it was copied)",
        )
    if parts.scheme not in ("http", "https") or not parts.netloc:
        # Not echoed: a line that is no URL may be a fragment of one, signature and all.
        what = f"its scheme is {parts.scheme[:10]!r}" if parts.scheme else "no scheme"
        raise LinksFileError(f"not an http(s) URL ({what})", path=source, line=number)


def read_links(path: str | Path) -> list[Link]:
    """Read and parse a links file, with errors that name it."""
    source = str(path)
    try:
        data = Path(path).read_bytes()
    except OSError as error:
        raise LinksFileError(
            f"cannot read: {error.strerror}",
            path=source,
            hint="check the path (relative to the folder you run sa1b from); the links file "
            "is the text file you download from Meta's SA-1B page",
        ) from error
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        raise LinksFileError("not UTF-8 text (is this the links file?)", path=source) from error
    return parse_links(text, source=source)
