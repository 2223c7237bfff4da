"""Where each tar member goes, and whether it may go anywhere at all. Pure.

Layouts, relative to the output folder:

- ``shard`` (default): ``<shard>/sa_1.jpg`` next to ``<shard>/sa_1.json``, as
  ``tar -x`` into one folder per shard;
- ``split``: ``images/<shard>/sa_1.jpg`` and ``annotations/<shard>/sa_1.json``
  (anything else under ``other/<shard>/``);
- ``flat``: every member of every shard in the output folder itself.

Member names are normalised first: a ``./`` prefix and an inner folder named after
the shard are removed. What is left must be a plain, safe file name; a member that
is not a regular file (a link, a device, a FIFO) or whose name is absolute or climbs
with ``..`` makes the whole shard unsafe.
"""

from __future__ import annotations

from pathlib import PurePosixPath
from typing import Literal

from sa1b.errors import UnsafeMemberError
from sa1b.links import is_safe_name
from sa1b.tarformat import DIRECTORY, Header

Layout = Literal["shard", "split", "flat"]
LAYOUTS: tuple[Layout, ...] = ("shard", "split", "flat")
_KIND_FOLDERS = {".jpg": "images", ".json": "annotations"}
RESERVED = frozenset({"tars"})
"""Names sa1b itself uses in the output folder, which ``flat`` must not overwrite."""


def shard_stem(name: str) -> str:
    """``sa_000123.tar`` -> ``sa_000123``."""
    return name[:-4] if name.endswith(".tar") else name


def whole_units(layout: str, shard: str) -> tuple[PurePosixPath, ...]:
    """The folders (relative to the output folder) that hold only ``shard``'s files in
    ``layout``, published by one rename each; none for ``flat``, which mixes every
    shard's files in one folder and publishes them one by one."""
    stem = shard_stem(shard)
    if layout == "shard":
        return (PurePosixPath(stem),)
    if layout == "split":
        return tuple(PurePosixPath(kind, stem) for kind in ("images", "annotations", "other"))
    return ()


def normalise(member: str, *, shard: str) -> str:
    """The member's name with ``./`` and an inner ``<shard>/`` folder removed."""
    parts = [part for part in member.split("/") if part not in ("", ".")]
    if parts and parts[0] == shard_stem(shard):
        parts = parts[1:]
    return "/".join(parts)


def member_target(header: Header, *, shard: str, layout: Layout) -> PurePosixPath | None:
    """The member's path relative to the output folder; None to skip it (a folder).

    Raises :class:`UnsafeMemberError` for anything that must not be extracted.
    """
    raw = header.name
    if raw.startswith("/") or "\\" in raw or "\x00" in raw:
        raise UnsafeMemberError(f"absolute or odd path {raw[:120]!r}", shard=shard, member=raw)
    if ".." in raw.split("/"):
        raise UnsafeMemberError(
            f"path climbs out with '..': {raw[:120]!r}", shard=shard, member=raw
        )
    name = normalise(raw, shard=shard)
    if header.typeflag == DIRECTORY:
        return None  # folders are implied by the layout, never created from the archive
    if not header.is_regular:
        target = f" -> {header.linkname[:80]!r}" if header.linkname else ""
        raise UnsafeMemberError(f"{header.kind} {raw[:120]!r}{target}", shard=shard, member=raw)
    if not is_safe_name(name):
        raise UnsafeMemberError(f"unexpected member name {raw[:120]!r}", shard=shard, member=raw)
    stem = shard_stem(shard)
    if layout == "shard":
        return PurePosixPath(stem, name)
    if layout == "split":
        kind = _KIND_FOLDERS.get(PurePosixPath(name).suffix.lower(), "other")
        return PurePosixPath(kind, stem, name)
    if name in RESERVED:
        raise UnsafeMemberError(
            f"member {raw[:120]!r} would replace sa1b's own folder OUT/{name}",
            shard=shard,
            member=raw,
        )
    return PurePosixPath(name)


def partner(name: str) -> str | None:
    """The annotation of an image and the image of an annotation: ``sa_1.jpg`` <-> ``.json``."""
    path = PurePosixPath(name)
    suffix = path.suffix.lower()
    if suffix == ".jpg":
        return str(path.with_suffix(".json"))
    if suffix == ".json":
        return str(path.with_suffix(".jpg"))
    return None
