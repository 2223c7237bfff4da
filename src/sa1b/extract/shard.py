"""Extract a shard while it downloads: follow the contiguous prefix of its partial file.

The extractor reads the partial file only below the prefix the download has written
(``wait(end)`` blocks until bytes ``[0, end)`` are there), parses each header with
:mod:`sa1b.tarformat`, decides where the member goes with :mod:`sa1b.layout` before
writing a byte of it, and copies its data into a private staging folder, in the
kernel (``copy_file_range``) unless a digest must see the bytes (reading:
:mod:`sa1b.extract.reader`). When the shard ends, it checks what can be checked without
published checksums (the archive ends with its zero blocks, every ``.jpg`` has its
``.json``). In the ``wds`` layout nothing is copied while the shard arrives: once it is
whole and sound, its one tar is written into staging (:mod:`sa1b.extract.archive`).
:func:`publish` then moves the staged files into place and only after that is the
shard recorded as extracted.
"""

from __future__ import annotations

import hashlib
import logging
import os
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from sa1b.errors import CorruptArchiveError, NameClashError
from sa1b.extract.archive import write_archive
from sa1b.extract.reader import COPY_CHUNK, Reader, Wait
from sa1b.layout import Layout, archive_of, partner, sample_order, whole_units
from sa1b.layout import member_target as target_for
from sa1b.store.writeback import fsync_dir, start_writeback, sync_fs
from sa1b.tarformat import (
    BLOCK,
    MAX_META,
    META_TYPES,
    Header,
    TarFormatError,
    apply_overrides,
    is_zero_block,
    meta_record,
    padded,
    parse_block,
)

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Member:
    """One extracted member: where it went (relative to the output folder), and where
    its data lies in the tar."""

    path: PurePosixPath
    offset: int
    size: int
    mtime: int = 0
    """The member's time in the tar (kept in a ``wds`` tar; not recorded)."""


@dataclass(frozen=True, slots=True)
class ExtractReport:
    """What one shard's extraction produced."""

    shard: str
    index: tuple[Member, ...]
    digest: str | None
    warnings: tuple[str, ...]

    @property
    def members(self) -> tuple[PurePosixPath, ...]:
        return tuple(member.path for member in self.index)


def _fail(shard: str, message: str, member: str = "") -> CorruptArchiveError:
    return CorruptArchiveError(message, shard=shard, member=member)


def extract_shard(
    fd: int,
    size: int,
    *,
    shard: str,
    staging: Path,
    layout: Layout,
    wait: Wait,
    digest_algorithm: str | None = None,
) -> ExtractReport:
    """Extract the tar in ``fd`` (``size`` bytes, arriving in order) into ``staging``.

    ``staging`` is emptied first; members land at their layout paths below it.
    Raises :class:`~sa1b.errors.UnsafeMemberError` before writing an unsafe member,
    and :class:`~sa1b.errors.CorruptArchiveError` for a malformed archive.
    """
    if staging.exists():
        shutil.rmtree(staging)
    staging.mkdir(parents=True)
    digest = hashlib.new(digest_algorithm) if digest_algorithm else None
    reader = Reader(fd, size, wait, digest)
    archive = archive_of(layout, shard)
    members: list[Member] = []
    seen: set[str] = set()
    made: set[Path] = {staging}
    for header, data, following in _members(reader, shard):
        target = target_for(header, shard=shard, layout=layout)
        copied = data  # the member's bytes from here on are only read for the digest
        if target is not None:
            if str(target) in seen:
                raise _fail(shard, f"member {header.name!r} appears twice", header.name)
            seen.add(str(target))
            members.append(Member(target, data, header.size, header.mtime))
            if archive is None:
                _write_member(reader, data, header.size, staging / target, made)
                copied = data + header.size
        _skip(reader, copied, following - copied)
    if archive is not None:  # its order needs every member: written once the shard is whole
        members.sort(key=lambda member: sample_order(member.path.name))
        write_archive(Reader(fd, size, wait, None), members, staging / archive, shard=shard)
    return ExtractReport(
        shard=shard,
        index=tuple(members),
        digest=digest.hexdigest() if digest else None,
        warnings=tuple(missing_partners([m.path for m in members], shard)),
    )


def _members(reader: Reader, shard: str) -> Iterator[tuple[Header, int, int]]:
    """Each member as its header says (pax and GNU records applied), the offset of its
    data and of the next header; the archive's end is checked before the walk ends."""
    overrides: dict[str, str] = {}
    offset = 0
    while (header := _next_header(reader, offset, shard)) is not None:
        data = offset + BLOCK
        following = _member_end(header, data, reader.size, shard)
        if header.typeflag in META_TYPES:
            overrides.update(_meta_record(reader, header, data, shard))
            offset = following
            continue
        try:
            header = apply_overrides(header, overrides)
        except TarFormatError as error:
            raise _fail(shard, f"bad pax header before byte {offset}: {error}") from None
        overrides = {}
        following = _member_end(header, data, reader.size, shard)
        yield header, data, following
        offset = following


def _next_header(reader: Reader, offset: int, shard: str) -> Header | None:
    """The header at ``offset``, or None at the end of the archive (checked whole)."""
    if offset + BLOCK > reader.size:
        raise _fail(shard, "the archive ends without its end-of-archive blocks")
    try:
        header = parse_block(reader.read(offset, BLOCK))
    except TarFormatError as error:
        raise _fail(shard, f"bad header at byte {offset}: {error}") from None
    if header is None:
        _check_end(reader, offset, shard)
    return header


def _member_end(header: Header, data: int, size: int, shard: str) -> int:
    """Where the next header starts; the member must fit in the archive."""
    following = data + padded(header.size)
    if following > size:
        raise _fail(shard, f"member {header.name!r} is cut short", header.name)
    return following


def _meta_record(reader: Reader, header: Header, data: int, shard: str) -> dict[str, str]:
    """What a pax or GNU long-name record says of the member that follows it."""
    if header.size > MAX_META:
        raise _fail(shard, f"a {header.size}-byte name record", header.name)
    try:
        return meta_record(header, reader.read(data, padded(header.size))[: header.size])
    except TarFormatError as error:
        raise _fail(shard, f"bad pax header: {error}") from None


def _write_member(reader: Reader, data: int, size: int, path: Path, made: set[Path]) -> None:
    """Copy one member's bytes into a new file at ``path`` (never over an existing one)."""
    if path.parent not in made:
        path.parent.mkdir(parents=True, exist_ok=True)
        made.add(path.parent)
    out = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
    try:
        reader.copy(data, size, out)
        start_writeback(out)  # the disk starts now; the publishing sync finds less
    finally:
        os.close(out)


def _skip(reader: Reader, offset: int, length: int) -> None:
    """Bytes that are not written anywhere still count for the digest."""
    if reader.digest is not None and length:
        for start in range(offset, offset + length, COPY_CHUNK):
            reader.read(start, min(COPY_CHUNK, offset + length - start))


def _check_end(reader: Reader, offset: int, shard: str) -> None:
    """After the first zero block: a second one, then nothing but zeros to the end."""
    if offset + 2 * BLOCK > reader.size:
        raise _fail(shard, "the archive ends after one zero block instead of two")
    position = offset + BLOCK
    while position < reader.size:
        step = min(COPY_CHUNK, reader.size - position)
        if not is_zero_block(reader.read(position, step)):
            raise _fail(shard, f"data after the end-of-archive blocks at byte {position}")
        position += step


def missing_partners(members: list[PurePosixPath], shard: str) -> Iterator[str]:
    """A line for each ``.jpg`` without its ``.json`` among ``members``, and the reverse."""
    names = {member.name for member in members}
    folded = {name.lower() for name in names}
    for name in sorted(names):
        other = partner(name)
        if other is not None and other.lower() not in folded:
            yield f"{shard}: {name} has no {other}"


def publish(report: ExtractReport, *, staging: Path, out: Path, layout: Layout) -> None:
    """Move a shard's staged files into place; durable before it returns.

    Folders (``shard``, ``split``) and a ``wds`` tar are renamed whole, replacing a
    copy a crash left between rename and record. ``flat`` moves file by file and refuses a name that
    another shard already holds with different bytes.
    """
    sync_fs(staging)
    touched: set[Path] = set()
    if layout == "flat":
        for member in report.members:
            source, target = staging / member, out / member
            if target.exists() and not same_file(source, target):
                raise NameClashError(
                    f"{member} is already in {out} with other contents (from another shard)",
                    shard=report.shard,
                    member=str(member),
                )
        for member in report.members:
            os.replace(staging / member, out / member)
        touched.add(out)
    else:
        for unit in whole_units(layout, report.shard):
            source, target = staging / unit, out / unit
            if not source.exists():
                continue
            target.parent.mkdir(parents=True, exist_ok=True)
            if target.is_dir():  # a folder a crash left; a file (a wds tar) is replaced whole
                shutil.rmtree(target)
            os.replace(source, target)
            touched.add(target.parent)
    for folder in touched:
        fsync_dir(folder)
    shutil.rmtree(staging, ignore_errors=True)


def same_file(a: Path, b: Path) -> bool:
    """Whether ``b`` is a regular file with the bytes of ``a``."""
    if not b.is_file() or b.is_symlink() or a.stat().st_size != b.stat().st_size:
        return False
    with a.open("rb") as fa, b.open("rb") as fb:
        while True:
            chunk = fa.read(1 << 20)
            if chunk != fb.read(1 << 20):
                return False
            if not chunk:
                return True
