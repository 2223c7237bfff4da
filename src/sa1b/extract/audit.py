"""Check, after the fact, what a download left on disk: tars and extracted shards.

A tar: its size against the server's, its digest against ``--checksums`` when given,
and its structure, read by the tar reader extraction and ``--only`` use (the same
damage fails all three: :class:`sa1b.tarwalk.TarWalk`). An extracted shard: every member
the extraction recorded (path and size, the store's member index) is there with that size
(in ``wds``: its header, at its place in the shard's tar, names it with that size, and
the tar ends with its end blocks right after the last member), every ``.jpg`` has its
``.json``, and every ``.json`` parses and has SA-1B's shape
(:mod:`sa1b.schema`). ``deep`` also decodes every mask with pycocotools and checks its
size against the image's and its area against the annotation's, and the image's own
size (its JPEG header, through Pillow) against what the JSON says. Each check returns
problems as short lines; none means sound.
"""

from __future__ import annotations

import io
import json
import os
import shutil
from collections.abc import Sequence
from pathlib import Path, PurePosixPath
from typing import Any

from sa1b.checksums import Digest, hash_file
from sa1b.errors import ExtractionError, InputError
from sa1b.extract.extents import Extent, Index, locate
from sa1b.extract.masks import decode_mask
from sa1b.extract.shard import missing_partners
from sa1b.schema import annotation_problems
from sa1b.tarformat import BLOCK, END_OF_ARCHIVE, TarFormatError, padded, parse_block
from sa1b.tarwalk import TarWalk, headers_only


def audit_tar(path: Path, *, size: int | None, digest: Digest | None) -> list[str]:
    """What is wrong with a kept tar (or another kept file, when it is not a tar)."""
    if not path.is_file():
        return [f"{path} is missing"]
    actual = path.stat().st_size
    problems = [] if size is None or actual == size else [f"{actual} bytes, the server's {size}"]
    if digest is not None:
        with path.open("rb") as handle:
            found = hash_file(handle.fileno(), digest.algorithm)
        if found != digest.hexdigest:
            problems.append(
                f"{digest.algorithm} {found}, the checksums file says {digest.hexdigest}"
            )
    if path.suffix == ".tar":
        problems += _structure(path)
    return problems


def _structure(path: Path) -> list[str]:
    """Read the tar's headers as extraction and ``--only`` read them (one reader, one
    verdict): none, or the one line saying what is wrong. Unsafe members are judged as
    in the default layout: a kept tar has none of its own."""
    with path.open("rb") as handle:
        try:
            walk = TarWalk(path.name, os.fstat(handle.fileno()).st_size, headers_only)
            while (need := walk.need()) is not None:
                start, end = need
                data = os.pread(handle.fileno(), end - start, start)
                if not data:  # the file shrank while it was read
                    return [f"cut short: it ends at byte {start}"]
                walk.feed(start, data)
        except ExtractionError as error:
            return [error.message]
    return []


def audit_extracted(
    out: Path, shard: str, index: Index | None, *, deep: bool, pairs: bool = True
) -> list[str]:
    """What is wrong with an extracted shard (``index`` None: extracted by an sa1b that
    kept no member index; then only what the index would name cannot be checked);
    ``pairs=False`` when one kind was fetched alone (``--only``): no image has its JSON."""
    if index is None:
        return ["no member index was recorded for it: members cannot be checked"]
    extents = locate(out, index)
    problems = _archive_problems(out, extents)
    present: dict[str, Extent] = {}
    for (member, _, size), extent in zip(index, extents, strict=True):
        problem = _member_problem(member, size, extent)
        if problem is None:
            present[member] = extent
        elif extent.path.is_file() or not extent.in_archive:  # a lost tar is said once
            problems.append(problem)
    if pairs:
        problems += missing_partners([PurePosixPath(m) for m, _, _ in index], shard)
    for member in sorted(m for m in present if m.endswith(".json")):
        problems += [f"{member}: {p}" for p in _json_problems(member, present, deep=deep)]
    return problems


def _archive_problems(out: Path, extents: Sequence[Extent]) -> list[str]:
    """Each wds tar is there and ends right after its last member, with its end blocks."""
    ends: dict[Path, int] = {}
    for extent in extents:
        if extent.size is not None:
            ends[extent.path] = max(ends.get(extent.path, 0), extent.offset + padded(extent.size))
    problems = []
    for tar, end in ends.items():
        name = tar.relative_to(out)
        if not tar.is_file():
            problems.append(f"{name} is missing")
            continue
        expected, actual = end + len(END_OF_ARCHIVE), tar.stat().st_size
        if actual != expected:
            problems.append(f"{name} is {actual} bytes; its members and end blocks make {expected}")
            continue
        with tar.open("rb") as handle:
            handle.seek(end)
            if handle.read() != END_OF_ARCHIVE:
                problems.append(f"{name}: its end blocks are not zeros")
    return problems


def _member_problem(member: str, size: int, extent: Extent) -> str | None:
    """Whether the member is where the index says, with its size: a file, or a member of
    a wds tar whose header (at its place) names it with that size."""
    if not extent.in_archive:
        if not extent.path.is_file():
            return f"{member} is missing"
        if (actual := extent.path.stat().st_size) != size:
            return f"{member} is {actual} bytes, the tar's member {size}"
        return None
    at = extent.offset - BLOCK
    try:
        block = Extent(extent.path, at, BLOCK).read()
        header = parse_block(block)
    except (OSError, TarFormatError) as error:
        return f"{member}: bad header at byte {at} of its tar ({error})"
    if header is None or (header.name, header.size) != (PurePosixPath(member).name, size):
        found = "the end of the archive" if header is None else f"{header.name!r}, {header.size}"
        return f"{member}: the header at byte {at} of its tar says {found} bytes"
    if (end := extent.path.stat().st_size) < extent.offset + size:
        return f"{member} is cut short: its tar ends at byte {end}"
    return None


def _json_problems(member: str, present: dict[str, Extent], *, deep: bool) -> list[str]:
    image = str(PurePosixPath(member).with_suffix(".jpg"))
    try:
        document = json.loads(present[member].read())
    except (ValueError, UnicodeDecodeError) as error:
        return [f"not JSON ({error})"[:200]]
    problems = annotation_problems(document, image_file=PurePosixPath(image).name)
    if deep and not problems and image in present:
        problems = _mask_problems(document, present[image])
    return problems


def _mask_problems(document: dict[str, Any], image: Extent) -> list[str]:
    """Decode every mask: its size is the image's, its area the annotation's."""
    pil = _pillow()
    width, height = document["image"]["width"], document["image"]["height"]
    with pil.open(io.BytesIO(image.read())) as picture:
        if picture.size != (width, height):
            return [f"the image is {picture.size[0]}x{picture.size[1]}, the JSON says "
                    f"{width}x{height}"]  # fmt: skip
    problems = []
    for number, annotation in enumerate(document["annotations"]):
        try:
            mask = decode_mask(annotation["segmentation"])
        except InputError:
            raise
        except Exception as error:  # pycocotools raises bare exceptions for bad RLE
            problems.append(f"annotation {number}: the mask does not decode ({error})")
            continue
        if mask.shape != (height, width):
            problems.append(f"annotation {number}: the mask is {mask.shape[1]}x{mask.shape[0]}")
        elif (area := int(mask.sum())) != annotation["area"]:
            problems.append(
                f"annotation {number}: the mask's area is {area}, not {annotation['area']}"
            )
    return problems[:3] + ([f"and {len(problems) - 3} more"] if len(problems) > 3 else [])


def _pillow() -> Any:
    """Pillow's Image, from the ``masks`` extra."""
    try:
        from PIL import Image
    except ImportError:
        raise InputError(
            "--deep reads images with Pillow", hint="install the extra: pip install 'sa1b[masks]'"
        ) from None
    return Image


def remove_extracted(out: Path, index: Index | None, units: Sequence[PurePosixPath]) -> None:
    """Delete a bad shard's extracted files (its folders, or its wds tar), so that a new
    extraction meets none."""
    for unit in units:
        if (out / unit).is_dir():
            shutil.rmtree(out / unit, ignore_errors=True)
        else:
            (out / unit).unlink(missing_ok=True)
    for extent in locate(out, index or ()):
        if not extent.in_archive:
            extent.path.unlink(missing_ok=True)
