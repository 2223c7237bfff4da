"""What to do with a file at start-up, given what the store and the disk say. Pure.

A run can end at any instant: killed between a rename and its record, between an
extraction and the tar's removal, with a store that is damaged, foreign or older than
the files. :func:`reconcile` decides, for one file, from facts gathered beforehand:

- the store's record (sizes, ranges, status, the layout it was extracted into);
- the disk: the size of the file under its final name and of its partial file, and
  whether the folders an extraction made are still there;
- the run: does it extract shards, in which layout, and has the link expired.

It trusts a record only where the disk agrees with it; everything else is fetched
again, and the few cases a user should know of carry a warning. The engine carries the
action out (:func:`sa1b.engine.startup.prepare`); the table of cases is in
``tests/unit/test_reconcile.py``, one row per crash window.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

from sa1b.ranges import RangeSet
from sa1b.records import FileRecord

Start = Literal["extracted", "extract-kept-tar", "on-disk", "resume", "fetch", "expired"]


@dataclass(frozen=True, slots=True)
class DiskFacts:
    """What the disk holds for one file."""

    final_size: int | None = None
    """Size of the file under its final name (``OUT/tars/`` or ``OUT/``), if any."""
    partial_size: int | None = None
    extraction_present: bool = True
    """Whether the folders of the recorded extraction exist (always True for ``flat``,
    whose files are not grouped by shard)."""
    checkpointed: bool = False
    """Whether a saved checkpoint of its extraction names members staged (a shard
    extracted with no tar on disk keeps nothing else: :mod:`sa1b.engine.unpack`)."""


@dataclass(frozen=True, slots=True)
class StartAction:
    """How a file starts this run.

    ``start`` is one of: ``extracted`` (nothing to do), ``extract-kept-tar`` (move the
    final tar back and extract it), ``on-disk`` (done), ``resume`` (the partial file
    and its ranges), ``fetch`` (from what the server says), ``expired`` (the link
    expired: no request can succeed). ``restart`` voids the record first.
    """

    start: Start
    restart: bool = False
    warning: str | None = None
    mark_done: bool = False
    """``on-disk``: the rename happened, its record did not (a crash between them)."""
    dispose_partial: bool = False
    """``extracted``: the tar was not yet removed when the last run ended."""
    adopt_final: int | None = None
    """``fetch``: a file under the final name that no record vouches for; adopted if
    the server's size is this one, then verified like any download."""


def reconcile(
    record: FileRecord,
    disk: DiskFacts,
    *,
    extracts: bool,
    layout: str | None,
    expired: bool,
) -> StartAction:
    """The start of one file (see the module docstring). ``extracts`` says whether this
    file is extracted in this run (a shard, without ``--no-extract``), in ``layout``."""
    final, partial = disk.final_size, disk.partial_size
    if not record.consistent:
        return _fetch(
            expired,
            restart=True,
            final=final,
            warning="its record in the state store is inconsistent; not trusted, the file "
            "is verified again",
        )
    if extracts and record.extracted:
        if not disk.extraction_present:
            return _fetch(
                expired,
                restart=True,
                final=final,
                warning=f"it was extracted ({record.extracted} layout) but its folder is "
                "gone; fetching it again",
            )
        moved = record.extracted != layout
        return StartAction(
            "extracted",
            dispose_partial=partial is not None,
            warning=f"it was extracted in the {record.extracted} layout earlier; it is left "
            f"as it is, not moved to the {layout} layout"
            if moved
            else None,
        )
    size = record.size
    if extracts and final is not None and final == size:
        return StartAction("extract-kept-tar")  # downloaded earlier without extraction
    complete = size is not None and record.ranges.covers(0, size)
    done = record.status == "done"
    if final is not None and final == size and (done or (complete and partial is None)):
        # Done; or all in and renamed into place just before a crash could record it.
        return StartAction("on-disk", mark_done=not done)
    if size is not None and partial == size:
        return StartAction("resume" if complete or not expired else "expired")
    streamed = extracts and disk.checkpointed and not record.ranges
    if streamed and size is not None and partial is None and final is None:
        # Extracted with no tar (nothing but its staged members on disk): on from the
        # checkpoint, which names them.
        return StartAction("resume" if not expired else "expired")
    sized_only = record.status == "pending" and size is not None and not record.ranges
    if sized_only and partial is None and final is None:
        # Sized before its download began (the space check asked): nothing to keep or
        # void; its first answer checks the size and validators.
        return StartAction("resume" if not expired else "expired")
    warning = None
    if size is not None and partial is not None:
        warning = (
            f"the partial file is {partial} bytes, its record says {size}; its bytes are "
            "not trusted and are fetched again"
        )
    return _fetch(
        expired, restart=size is not None or bool(record.ranges), final=final, warning=warning
    )


def freed(recorded: RangeSet, holes: RangeSet, *, keep_below: int) -> RangeSet:
    """The recorded bytes of a partial file that are no longer on disk: its holes
    (freed behind an extraction) above ``keep_below``, below which this run's extraction
    goes on from its saved checkpoint and never reads them. A run that does not go on
    from there (another store's record, or options that read the whole tar: ``--keep-tars``,
    ``--checksums``, ``--no-extract``) must fetch them again, not read zeros."""
    freed = RangeSet()
    for hole_start, hole_end in holes:
        for start, end in recorded:
            low, high = max(start, hole_start, keep_below), min(end, hole_end)
            if low < high:
                freed.add(low, high)
    return freed


def record_to_adopt(own: FileRecord, others: Sequence[FileRecord]) -> FileRecord | None:
    """Another store's record of the same file that knows more than ``own``, if any.

    A split download keeps one store per worker; a later run with another store (the
    whole download on one machine, or the worker's files taken on by another) adopts
    the furthest record of the same object: one that finished it before one that
    fetched part of it, the most bytes first. The disk is then checked against the
    adopted record exactly as against one of our own.
    """
    candidates = [
        record for record in others if record.consistent and record.object_key == own.object_key
    ]
    best = max(candidates, key=lambda record: record.progress, default=None)
    if best is None or best.progress <= (own.progress if own.consistent else (0, 0)):
        return None
    return best


def _fetch(expired: bool, *, restart: bool, final: int | None, warning: str | None) -> StartAction:
    if expired:
        return StartAction("expired", restart=restart, warning=warning)
    return StartAction("fetch", restart=restart, warning=warning, adopt_final=final or None)


WalkStartKind = Literal["extracted", "fresh", "resume", "done"]


@dataclass(frozen=True, slots=True)
class MemberFacts:
    """What the disk holds of one wanted member of a shard's catalog (``--only``)."""

    name: str
    size: int
    placed: int | None = None
    """Size of the file at its place in the layout, if any."""
    staged: int | None = None
    """Size of its file in the shard's staging folder, if any."""


@dataclass(frozen=True, slots=True)
class WalkStart:
    """How a shard walked member by member (``--only``) starts this run.

    ``start`` is one of: ``extracted`` (the whole shard is extracted in this layout:
    nothing to do), ``fresh`` (no walk known: from byte 0, its staging folder void),
    ``resume`` (from the walk's checkpoint, or its whole catalog), ``done`` (walked,
    and every wanted member is in place). ``staged``: members to trust in the staging
    folder; ``fetch``: members of the catalog to fetch by their ranges.
    """

    start: WalkStartKind
    staged: tuple[str, ...] = ()
    fetch: tuple[str, ...] = ()


def reconcile_walk(
    *,
    extracted: str | None,
    layout: str,
    walked: bool,
    complete: bool,
    published: bool,
    members: Sequence[MemberFacts],
) -> WalkStart:
    """The start of one walked shard, from what the store says (extracted in which
    layout; its walk begun, ``complete``, this kind ``published`` in this layout) and
    what the disk holds of each wanted member the walk's catalog names.

    A staged member is trusted when it has its member's size: the walker syncs the
    staging folder before a checkpoint names it, and writes a member fetched in parts
    under another name until it is whole. A published member is in place when its file
    there has its size; any other is fetched again by its range, with no second walk.
    """
    if extracted == layout:
        return WalkStart("extracted")
    if not walked:
        return WalkStart("fresh")
    staged: list[str] = []
    fetch: list[str] = []
    for member in members:
        if not member.size or (published and member.placed == member.size):
            continue  # empty (made at publication), or in place since an earlier run
        (staged if member.staged == member.size else fetch).append(member.name)
    if complete and published and not staged and not fetch:
        return WalkStart("done")
    return WalkStart("resume", tuple(staged), tuple(fetch))
