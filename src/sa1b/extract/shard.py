"""Extract a shard while it downloads: follow the contiguous prefix of its partial file.

The extractor reads the partial file only below the prefix the download has written
(``wait(end)`` blocks until bytes ``[0, end)`` are there) and feeds its headers to
sa1b's one tar reader, :class:`sa1b.tarwalk.TarWalk`, which judges the archive (as for
``--only`` and ``verify``) and says where each member goes (:mod:`sa1b.layout`) before a
byte of it is written. The extractor copies each member's data into a private staging
folder, in the kernel (``copy_file_range``) unless a digest must see the bytes (reading:
:mod:`sa1b.extract.reader`), and syncs the files it staged, an ``fsync`` each, at each
checkpoint and at its end (not ``syncfs``, which would also write out the other shards'
partial tars: :func:`sa1b.store.writeback.sync_files`). A ``.jpg`` without its ``.json``
is a warning. In the ``wds`` layout nothing is copied while the shard arrives: once it is
whole and sound, its one tar is written into staging (:mod:`sa1b.extract.archive`).
:func:`publish` then moves the staged files into place and only after that is the shard
recorded as extracted.
"""

from __future__ import annotations

import hashlib
import logging
import os
import shutil
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

from sa1b.errors import CorruptArchiveError, NameClashError
from sa1b.extract.archive import write_archive
from sa1b.extract.reader import COPY_CHUNK, Reader, Wait
from sa1b.holes import CHECKPOINT_EVERY, checkpoint_due
from sa1b.layout import Layout, archive_of, partner, sample_order, whole_units
from sa1b.store.resume import Ledger, PackedResume, Resume
from sa1b.store.writeback import fsync_dir, start_writeback, sync_files
from sa1b.tarwalk import Entry, Found, TarWalk, headers_only

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


@dataclass(slots=True)
class _Unsynced:
    """What an extraction changed on disk since its last sync: the files it wrote, and
    the folders whose entries it changed (each new file's or folder's parent)."""

    files: list[Path] = field(default_factory=list)
    folders: set[Path] = field(default_factory=set)
    made: set[Path] = field(default_factory=set)
    """Folders known to exist (not asked again)."""

    def new_folder(self, folder: Path) -> None:
        """Make ``folder`` and its missing parents."""
        if folder in self.made:
            return
        self.made.add(folder)
        created = []
        while not folder.is_dir():
            created.append(folder)
            folder = folder.parent
        for new in reversed(created):
            new.mkdir(exist_ok=True)
            self.folders.add(new.parent)

    def new_file(self, path: Path) -> None:
        self.files.append(path)
        self.folders.add(path.parent)

    def sync(self, *, whole: bool = False, drop: bool = True) -> None:
        sync_files(self.files, self.folders, whole=whole, drop=drop)
        self.files.clear()
        self.folders.clear()


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


def extract_shard(
    fd: int,
    size: int,
    *,
    shard: str,
    staging: Path,
    layout: Layout,
    wait: Wait,
    digest_algorithm: str | None = None,
    resume: Resume | None = None,
    on_checkpoint: Callable[[PackedResume], None] | None = None,
    checkpoint_every: int = CHECKPOINT_EVERY,
) -> ExtractReport:
    """Extract the tar in ``fd`` (``size`` bytes, arriving in order) into ``staging``.

    ``staging`` is emptied first, unless the extraction goes on from ``resume`` (a saved
    checkpoint: the members it names are staged; nothing else there is kept); members
    land at their layout paths below it. ``on_checkpoint`` hears of a member boundary
    every ``checkpoint_every`` bytes or so (:mod:`sa1b.holes`), and of the end, each
    time once every member before it is synced; it may free the tar below it (not in the
    ``wds`` layout, whose tar is never freed: its members are sorted at the end). What it
    staged is durable when it returns. Raises
    :class:`~sa1b.errors.UnsafeMemberError` before writing an unsafe member, and
    :class:`~sa1b.errors.CorruptArchiveError` for a malformed archive.
    """
    unsynced = _Unsynced()
    members = _prepare_staging(staging, resume, shard=shard, unsynced=unsynced)
    ledger = Ledger(resume)
    start: int = 0
    entries: tuple[Entry, ...] = ()
    if resume is not None:
        if resume.next is None:  # every member was staged: publish them
            return _report(shard, members, None)
        start, entries = resume.next, resume.entries
    digest = hashlib.new(digest_algorithm) if digest_algorithm else None
    reader = Reader(fd, size, wait, digest)
    archive = archive_of(layout, shard)
    found: list[Found] = []
    walk = TarWalk(
        shard,
        size,
        headers_only,
        layout=layout,
        start=start,
        entries=entries,
        on_member=found.append,
    )
    read = saved = start  # read in order: a digest sees every byte once
    while (need := walk.need()) is not None:
        for member in found:  # found in the header just read: its data comes next
            header, entry = member.header, member.entry
            members.append(Member(member.target, entry.offset, entry.size, header.mtime))
            if archive is None:
                path = staging / member.target
                _write_member(reader, entry.offset, entry.size, path, unsynced)
                read = entry.offset + entry.size
        found.clear()
        boundary, count = walk.checkpoint
        if on_checkpoint is not None and checkpoint_due(boundary, saved, every=checkpoint_every):
            unsynced.sync()
            on_checkpoint(ledger.checkpoint(boundary, walk.entries, members, count))
            saved = boundary
        start, end = need
        _skip(reader, read, start - read)
        walk.feed(start, reader.read(start, end - start))
        read = end
    if archive is not None:  # its order needs every member: written once the shard is whole
        members.sort(key=lambda member: sample_order(member.path.name))
        unsynced.new_folder((staging / archive).parent)
        unsynced.new_file(staging / archive)
        write_archive(Reader(fd, size, wait, None), members, staging / archive, shard=shard)
    unsynced.sync()  # publishing renames them: their bytes first
    if on_checkpoint is not None:  # publishing may move them: a crash then resumes here
        on_checkpoint(ledger.checkpoint(None, walk.entries, members, len(members)))
    return _report(shard, members, digest.hexdigest() if digest else None)


def _prepare_staging(
    staging: Path, resume: Resume | None, *, shard: str, unsynced: _Unsynced
) -> list[Member]:
    """An empty staging folder, or (resuming) one holding exactly the checkpoint's
    members (what a crash left after it is removed); those members."""
    if resume is None:
        if staging.exists():
            shutil.rmtree(staging)
        unsynced.new_folder(staging)
        return []
    members = [Member(PurePosixPath(path), offset, size) for path, offset, size in resume.members]
    unsynced.new_folder(staging)
    unsynced.folders.add(staging.parent)  # a killed run's folders: synced with what follows
    kept = {staging / member.path for member in members}
    for folder, _, names in os.walk(staging):
        unsynced.folders.add(Path(folder))
        for name in names:
            if (path := Path(folder, name)) not in kept:
                path.unlink()
    if resume.next is not None:  # (at the end, publishing may have moved them already)
        for member in members:
            path = staging / member.path
            if not path.is_file() or path.stat().st_size != member.size:
                raise CorruptArchiveError(  # its bytes in the tar are freed: fetch it again
                    f"{member.path} is gone from {staging}, where it was staged",
                    shard=shard,
                    member=str(member.path),
                )
    return members


def _report(shard: str, members: list[Member], digest: str | None) -> ExtractReport:
    return ExtractReport(
        shard=shard,
        index=tuple(members),
        digest=digest,
        warnings=tuple(missing_partners([m.path for m in members], shard)),
    )


def _write_member(reader: Reader, data: int, size: int, path: Path, unsynced: _Unsynced) -> None:
    """Copy one member's bytes into a new file at ``path`` (never over an existing one)."""
    unsynced.new_folder(path.parent)
    out = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
    unsynced.new_file(path)
    try:
        reader.copy(data, size, out)
        start_writeback(out)  # the disk starts now; the next sync finds less
    finally:
        os.close(out)


def _skip(reader: Reader, offset: int, length: int) -> None:
    """Bytes that are not written anywhere still count for the digest."""
    if reader.digest is not None and length:
        for start in range(offset, offset + length, COPY_CHUNK):
            reader.read(start, min(COPY_CHUNK, offset + length - start))


def missing_partners(members: list[PurePosixPath], shard: str) -> Iterator[str]:
    """A line for each ``.jpg`` without its ``.json`` among ``members``, and the reverse."""
    names = {member.name for member in members}
    folded = {name.lower() for name in names}
    for name in sorted(names):
        other = partner(name)
        if other is not None and other.lower() not in folded:
            yield f"{shard}: {name} has no {other}"


def publish(report: ExtractReport, *, staging: Path, out: Path, layout: Layout) -> None:
    """Move a shard's staged files (durable: :func:`extract_shard` synced them) into
    place; durable before it returns.

    Folders (``shard``, ``split``) and a ``wds`` tar are renamed whole, replacing a
    copy a crash left between rename and record. ``flat`` moves file by file and refuses a name that
    another shard already holds with different bytes.
    """
    touched: set[Path] = set()
    if layout == "flat":
        moved = [m for m in report.members if not (staging / m).exists() and (out / m).exists()]
        for member in report.members:
            source, target = staging / member, out / member
            if member in moved:  # by a publishing a crash cut short (a resumed extraction)
                continue
            if target.exists() and not same_file(source, target):
                raise NameClashError(
                    f"{member} is already in {out} with other contents (from another shard)",
                    shard=report.shard,
                    member=str(member),
                )
        for member in report.members:
            if member not in moved:
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
    if archive_of(layout, report.shard) is None:  # a resumed extraction trusted staging
        _check_published(report, out)
    shutil.rmtree(staging, ignore_errors=True)


def _check_published(report: ExtractReport, out: Path) -> None:
    """Every member is in place with its size: nothing staged was lost to a crash."""
    for member in report.index:
        path = out / member.path
        if not path.is_file() or path.stat().st_size != member.size:
            raise CorruptArchiveError(  # its bytes in the tar may be freed: fetch it again
                f"{member.path} is not in {out} after publishing (a staged file was lost)",
                shard=report.shard,
                member=str(member.path),
            )


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
