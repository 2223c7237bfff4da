"""Where each tar member goes, and whether it may go anywhere at all. Pure.

Layouts, relative to the output folder:

- ``shard`` (default): ``<shard>/sa_1.jpg`` next to ``<shard>/sa_1.json``, as
  ``tar -x`` into one folder per shard;
- ``split``: ``images/<shard>/sa_1.jpg`` and ``annotations/<shard>/sa_1.json``
  (anything else under ``other/<shard>/``);
- ``flat``: every member of every shard in the output folder itself.

Each layout is one class (:class:`ShardLayout`, :class:`SplitLayout`,
:class:`FlatLayout`): where a member goes, and which folders hold only one shard's files
(published by one rename each; a layout without them is published file by file). A new
layout is one more class in :data:`RULES`.

Member names are normalised first: a ``./`` prefix and an inner folder named after
the shard are removed. What is left must be a plain, safe file name; a member that
is not a regular file (a link, a device, a FIFO) or whose name is absolute or climbs
with ``..`` makes the whole shard unsafe.
"""

from __future__ import annotations

from pathlib import PurePosixPath
from typing import Literal, Protocol

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


class LayoutRule(Protocol):
    """One layout: where a member goes, and the folders that hold one shard alone."""

    def place(self, name: str, stem: str) -> PurePosixPath:
        """The path (relative to the output folder) of member ``name`` of shard ``stem``;
        raises ValueError, saying why, for a name this layout cannot take."""
        ...

    def units(self, stem: str) -> tuple[PurePosixPath, ...]:
        """The folders holding only this shard's files, each published by one rename."""
        ...


class ShardLayout:
    """``<shard>/<name>``: one folder per shard, as ``tar -x`` into it."""

    def place(self, name: str, stem: str) -> PurePosixPath:
        return PurePosixPath(stem, name)

    def units(self, stem: str) -> tuple[PurePosixPath, ...]:
        return (PurePosixPath(stem),)


class SplitLayout:
    """``images/<shard>/``, ``annotations/<shard>/`` and ``other/<shard>/`` by kind."""

    def place(self, name: str, stem: str) -> PurePosixPath:
        kind = _KIND_FOLDERS.get(PurePosixPath(name).suffix.lower(), "other")
        return PurePosixPath(kind, stem, name)

    def units(self, stem: str) -> tuple[PurePosixPath, ...]:
        return tuple(PurePosixPath(kind, stem) for kind in ("images", "annotations", "other"))


class FlatLayout:
    """Every member of every shard in the output folder itself (published one by one)."""

    def place(self, name: str, stem: str) -> PurePosixPath:
        if name in RESERVED:
            raise ValueError(f"would replace sa1b's own folder OUT/{name}")
        return PurePosixPath(name)

    def units(self, stem: str) -> tuple[PurePosixPath, ...]:
        return ()


RULES: dict[str, LayoutRule] = {
    "shard": ShardLayout(),
    "split": SplitLayout(),
    "flat": FlatLayout(),
}
"""Each layout by name (the name is what the CLI takes and the store records)."""


def whole_units(layout: str, shard: str) -> tuple[PurePosixPath, ...]:
    """The folders (relative to the output folder) that hold only ``shard``'s files in
    ``layout``, published by one rename each; none for ``flat``."""
    return RULES[layout].units(shard_stem(shard))


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
    try:
        return RULES[layout].place(name, shard_stem(shard))
    except ValueError as refusal:
        raise UnsafeMemberError(
            f"member {raw[:120]!r} {refusal}", shard=shard, member=raw
        ) from None


def partner(name: str) -> str | None:
    """The annotation of an image and the image of an annotation: ``sa_1.jpg`` <-> ``.json``."""
    path = PurePosixPath(name)
    suffix = path.suffix.lower()
    if suffix == ".jpg":
        return str(path.with_suffix(".json"))
    if suffix == ".json":
        return str(path.with_suffix(".jpg"))
    return None
