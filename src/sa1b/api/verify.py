"""Check what an output folder holds, file by file; repair marks the bad ones to be
fetched again."""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from sa1b.api.status import status
from sa1b.checksums import Digest
from sa1b.extract.audit import audit_extracted, audit_tar, remove_extracted
from sa1b.layout import whole_units
from sa1b.records import FileRecord
from sa1b.store.members import Index, member_indexes
from sa1b.store.paths import OutputPaths
from sa1b.store.state import StateStore, require_stores
from sa1b.store.walks import WalkRecord, forget_published

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class FileCheck:
    """One file as :func:`verify` found it."""

    name: str
    kind: str
    """``extracted (LAYOUT layout)``, ``tar``, ``file`` or ``not finished``."""
    problems: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class VerifyReport:
    checks: tuple[FileCheck, ...]
    repaired: tuple[str, ...] = ()
    """Files marked to be fetched again by the next download (``repair``)."""

    @property
    def ok(self) -> bool:
        return not any(check.problems for check in self.checks)


def verify(
    out: Path,
    *,
    state: Path | None = None,
    checksums: Mapping[str, Digest] | None = None,
    deep: bool = False,
    repair: bool = False,
) -> VerifyReport:
    """Check every file the folder's stores know (see :mod:`sa1b.extract.audit`), or the
    store in ``state`` when it lives elsewhere; with ``repair``, mark each finished file
    found bad so that the next download fetches it again, and only it: its records are
    voided and its bad files removed."""
    stores = require_stores(out, state)
    indexes = member_indexes(out, state)
    digests = checksums or {}
    checks = tuple(
        _check_walked(out, shard.name, shard.walk, deep=deep)
        if shard.state == "walked" and shard.walk is not None
        else _check(out, shard.record, indexes.get(shard.name), digests.get(shard.name), deep=deep)
        for shard in status(out, state=state).shards
    )
    bad = [c for c in checks if c.problems and c.kind != "not finished"]
    if repair and bad:
        _repair(out, stores, [c.name for c in bad], indexes)
    return VerifyReport(checks, tuple(c.name for c in bad) if repair else ())


def _check(
    out: Path,
    record: FileRecord,
    index: Index | None,
    digest: Digest | None,
    *,
    deep: bool,
) -> FileCheck:
    paths = OutputPaths.of(out)
    if record.extracted:
        problems = audit_extracted(out, record.name, index, deep=deep)
        tar = paths.final(record.name)
        if tar.exists():  # kept too (--keep-tars)
            problems += audit_tar(tar, size=record.size, digest=digest)
        return FileCheck(record.name, f"extracted ({record.extracted} layout)", tuple(problems))
    if record.status == "done":
        kind = "tar" if record.name.endswith(".tar") else "file"
        problems = audit_tar(paths.final(record.name), size=record.size, digest=digest)
        return FileCheck(record.name, kind, tuple(problems))
    message = f"not finished ({record.status}): run sa1b download again"
    return FileCheck(record.name, "not finished", (message,))


def _check_walked(out: Path, shard: str, walk: WalkRecord, *, deep: bool) -> FileCheck:
    """A shard walked by ``--only``: its published members against its catalog."""
    kinds = walk.kinds
    index = walk.published_index(shard)
    problems = audit_extracted(out, shard, index, deep=deep, pairs=kinds >= {"jpg", "json"})
    return FileCheck(shard, f"walked ({', '.join(sorted(kinds))})", tuple(problems))


def _repair(
    out: Path,
    stores: Sequence[OutputPaths],
    names: Sequence[str],
    indexes: Mapping[str, Index],
) -> None:
    for paths in stores:
        with StateStore(out, state=paths.state) as store:  # the lock: no download runs
            for record in store.records():
                if record.name in names:
                    layout = record.extracted
                    units = whole_units(layout, record.name) if layout else ()
                    remove_extracted(out, indexes.get(record.name), units)
                    paths.final(record.name).unlink(missing_ok=True)
                    forget_published(store, record.id)
                    store.restart(record.id)
                    log.info("%s: marked to be fetched again", record.name)
