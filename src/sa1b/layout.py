"""Where each tar member goes, and whether it may go anywhere at all. Pure.

Layouts, relative to the output folder:

- ``shard`` (default): ``<shard>/sa_1.jpg`` next to ``<shard>/sa_1.json``, as
  ``tar -x`` into one folder per shard;
- ``split``: ``images/<shard>/sa_1.jpg`` and ``annotations/<shard>/sa_1.json``
  (anything else under ``other/<shard>/``);
- ``flat``: every member of every shard in the output folder itself;
- ``wds``: one tar per shard, ``wds/<shard>.tar``, its members grouped by sample
  (``sa_1.jpg`` then ``sa_1.json``, by image id: :func:`sample_order`), ready for the
  ``webdataset`` package. A member's path is then its place inside that tar,
  ``wds/<shard>.tar/sa_1.jpg`` (:func:`archived`).

Each layout is one class (:class:`ShardLayout`, :class:`SplitLayout`,
:class:`FlatLayout`, :class:`WdsLayout`): where a member goes, and which folders (or,
for ``wds``, which tar) hold only one shard's files (published by one rename each; a
layout without them is published file by file). A new layout is one more class in
:data:`RULES`.

Member names are normalised first: a ``./`` prefix and an inner folder named after
the shard are removed. What is left must be a plain, safe file name; a member that
is not a regular file (a link, a device, a FIFO) or whose name is absolute or climbs
with ``..`` makes the whole shard unsafe.
"""

from __future__ import annotations

import re
from pathlib import PurePosixPath
from typing import Literal, Protocol

from sa1b.errors import UnsafeMemberError
from sa1b.links import is_safe_name
from sa1b.redaction import quote
from sa1b.tarformat import DIRECTORY, NAME_BYTES, Header

Layout = Literal["shard", "split", "flat", "wds"]
LAYOUTS: tuple[Layout, ...] = ("shard", "split", "flat", "wds")
_KIND_FOLDERS = {".jpg": "images", ".json": "annotations"}
WDS_FOLDER = "wds"
RESERVED = frozenset({"tars", WDS_FOLDER})
"""Names sa1b itself uses in the output folder, which ``flat`` must not overwrite."""
_IMAGE_ID = re.compile(r"sa_(\d+)")


def shard_stem(name: str) -> str:
    """``sa_000123.tar`` -> ``sa_000123``."""
    return name[:-4] if name.endswith(".tar") else name


class LayoutRule(Protocol):
    """One layout: where a member goes, and the folders (or tar) that hold one shard alone."""

    archive: bool
    """Whether the shard's members go into one tar (its only unit) instead of files."""

    def place(self, name: str, stem: str) -> PurePosixPath:
        """The path (relative to the output folder) of member ``name`` of shard ``stem``;
        raises ValueError, saying why, for a name this layout cannot take."""
        ...

    def units(self, stem: str) -> tuple[PurePosixPath, ...]:
        """The folders (or the one tar) holding only this shard's files, each published
        by one rename."""
        ...


class ShardLayout:
    """``<shard>/<name>``: one folder per shard, as ``tar -x`` into it."""

    archive = False

    def place(self, name: str, stem: str) -> PurePosixPath:
        return PurePosixPath(stem, name)

    def units(self, stem: str) -> tuple[PurePosixPath, ...]:
        return (PurePosixPath(stem),)


class SplitLayout:
    """``images/<shard>/``, ``annotations/<shard>/`` and ``other/<shard>/`` by kind."""

    archive = False

    def place(self, name: str, stem: str) -> PurePosixPath:
        kind = _KIND_FOLDERS.get(PurePosixPath(name).suffix.lower(), "other")
        return PurePosixPath(kind, stem, name)

    def units(self, stem: str) -> tuple[PurePosixPath, ...]:
        return tuple(PurePosixPath(kind, stem) for kind in ("images", "annotations", "other"))


class FlatLayout:
    """Every member of every shard in the output folder itself (published one by one)."""

    archive = False

    def place(self, name: str, stem: str) -> PurePosixPath:
        if name in RESERVED:
            raise ValueError(f"would replace sa1b's own folder OUT/{name}")
        return PurePosixPath(name)

    def units(self, stem: str) -> tuple[PurePosixPath, ...]:
        return ()


class WdsLayout:
    """``wds/<shard>.tar``: the shard's members in one tar, grouped by sample.

    The tar is the unit: it is written whole into staging once the shard is complete
    and published by one rename. Its members keep their plain names, which a one-block
    ustar header must hold (100 bytes; SA-1B's are about 15).
    """

    archive = True

    def place(self, name: str, stem: str) -> PurePosixPath:
        if len(name.encode("utf-8", "surrogateescape")) > NAME_BYTES:
            raise ValueError(f"has a name longer than a ustar header holds ({NAME_BYTES} bytes)")
        return PurePosixPath(WDS_FOLDER, f"{stem}.tar", name)

    def units(self, stem: str) -> tuple[PurePosixPath, ...]:
        return (PurePosixPath(WDS_FOLDER, f"{stem}.tar"),)


RULES: dict[str, LayoutRule] = {
    "shard": ShardLayout(),
    "split": SplitLayout(),
    "flat": FlatLayout(),
    "wds": WdsLayout(),
}
"""Each layout by name (the name is what the CLI takes and the store records)."""


def whole_units(layout: str, shard: str) -> tuple[PurePosixPath, ...]:
    """The folders (relative to the output folder) that hold only ``shard``'s files in
    ``layout``, or its one tar (``wds``), published by one rename each; none for ``flat``."""
    return RULES[layout].units(shard_stem(shard))


def archive_of(layout: str, shard: str) -> PurePosixPath | None:
    """The tar that holds ``shard``'s members in ``layout`` (``wds``); None when the
    layout writes files."""
    rule = RULES[layout]
    return rule.units(shard_stem(shard))[0] if rule.archive else None


def archived(path: PurePosixPath) -> tuple[PurePosixPath, str] | None:
    """For a member's path inside a ``wds`` tar (``wds/sa_000001.tar/sa_1.jpg``): the
    tar and the member's name in it; None for a path that is a file of its own (no
    other layout puts a file under a folder whose name ends in ``.tar``)."""
    parts = path.parts
    if len(parts) == 3 and parts[0] == WDS_FOLDER and parts[1].endswith(".tar"):
        return PurePosixPath(*parts[:2]), parts[2]
    return None


def sample_key(name: str) -> tuple[str, str]:
    """A member's sample and part, as the ``webdataset`` package groups them: the name
    up to its first dot, and the rest (``sa_1.jpg`` -> ``("sa_1", "jpg")``)."""
    key, _, extension = name.partition(".")
    return key, extension


def sample_order(name: str) -> tuple[int, int, str, str]:
    """Where a member goes in a ``wds`` tar: samples by numeric image id (``sa_2``
    before ``sa_10``), then samples of any other name by name; within a sample, parts
    by extension (``jpg`` before ``json``), so each sample's parts are adjacent."""
    key, extension = sample_key(name)
    image_id = _IMAGE_ID.fullmatch(key)
    if image_id is not None:
        return (0, int(image_id.group(1)), key, extension)
    return (1, 0, key, extension)


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
        target = f" -> {quote(header.linkname, limit=80)}" if header.linkname else ""
        raise UnsafeMemberError(
            f"{header.kind} {quote(raw, limit=120)}{target}", shard=shard, member=raw
        )
    if not is_safe_name(name):
        raise UnsafeMemberError(
            f"unexpected member name {quote(raw, limit=120)}", shard=shard, member=raw
        )
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
