"""Start-up reconciliation as a table: one row per state a run can leave a file in.

Each row: what the store says, what the disk holds, what this run does, and the action
expected. The crash windows are named after the step the previous run was killed in.
"""

from __future__ import annotations

from dataclasses import replace

import pytest

from sa1b.ranges import RangeSet
from sa1b.reconcile import (
    DiskFacts,
    MemberFacts,
    StartAction,
    WalkStart,
    freed,
    reconcile,
    reconcile_walk,
    record_to_adopt,
)
from sa1b.records import FileRecord, Status
from sa1b.versions import Validator

SIZE = 1000


def record(
    status: Status = "partial",
    size: int | None = SIZE,
    ranges: tuple[tuple[int, int], ...] = ((0, 400),),
    extracted: str | None = None,
) -> FileRecord:
    return FileRecord(
        id=1, name="sa_000001.tar", object_key="h/p", size=size, validator=Validator('"v"'),
        generation=0, status=status, error=None, ranges=RangeSet(list(ranges)), extracted=extracted,
    )  # fmt: skip


NEW = record("pending", None, ())
SIZED = record("pending", SIZE, ())
PARTIAL = record()
ALL_IN = record(ranges=((0, SIZE),))
DONE = record("done", ranges=((0, SIZE),))
EXTRACTED = record("done", ranges=((0, SIZE),), extracted="shard")
BROKEN = record(ranges=((0, SIZE + 1),))
STREAMING = record(ranges=())  # extracted with no tar: sized, no ranges

Disk, Act = DiskFacts, StartAction
FRESH = Act("fetch", restart=True)
RESIZED = (
    "the partial file is 12 bytes, its record says 1000; its bytes are not trusted and are "
    "fetched again"
)
INCONSISTENT = (
    "its record in the state store is inconsistent; not trusted, the file is verified again"
)
MOVED = (
    "it was extracted in the shard layout earlier; it is left as it is, not moved to the "
    "split layout"
)
GONE = "it was extracted (shard layout) but its folder is gone; fetching it again"

# name: (record, disk, the layout this run extracts into (None: tars), expired, action)
CASES: dict[str, tuple[FileRecord, DiskFacts, str | None, bool, StartAction]] = {
    "never started": (NEW, Disk(), None, False, Act("fetch")),
    "killed before the first answer": (NEW, Disk(partial_size=0), None, False, Act("fetch")),
    "sized by the space check": (SIZED, Disk(), None, False, Act("resume")),
    "sized by the space check, link expired": (SIZED, Disk(), None, True, Act("expired")),
    "sized, then a partial file of another size": (
        SIZED, Disk(partial_size=12), None, False, Act("fetch", restart=True, warning=RESIZED)
    ),
    "killed mid-download": (PARTIAL, Disk(partial_size=SIZE), None, False, Act("resume")),
    "killed with every byte in": (ALL_IN, Disk(partial_size=SIZE), None, False, Act("resume")),
    "killed between the rename and its record": (
        ALL_IN, Disk(final_size=SIZE), None, False, Act("on-disk", mark_done=True)
    ),
    "finished earlier": (DONE, Disk(final_size=SIZE), None, False, Act("on-disk")),
    "finished, link since expired": (DONE, Disk(final_size=SIZE), None, True, Act("on-disk")),
    "finished, tar since truncated": (
        DONE, Disk(final_size=10), None, False, Act("fetch", restart=True, adopt_final=10)
    ),
    "finished, tar since deleted": (DONE, Disk(), None, False, FRESH),
    "partial file deleted": (PARTIAL, Disk(), None, False, FRESH),
    "partial file resized": (
        PARTIAL, Disk(partial_size=12), None, False, Act("fetch", restart=True, warning=RESIZED)
    ),
    "mid-download, link expired": (PARTIAL, Disk(partial_size=SIZE), None, True, Act("expired")),
    "all in, link expired: verified offline": (
        ALL_IN, Disk(partial_size=SIZE), None, True, Act("resume")
    ),
    "new, link expired": (NEW, Disk(), None, True, Act("expired")),
    "a tar but no record (store lost)": (
        NEW, Disk(final_size=SIZE), None, False, Act("fetch", adopt_final=SIZE)
    ),
    "a tar but no record, link expired": (NEW, Disk(final_size=SIZE), None, True, Act("expired")),
    "impossible record": (
        BROKEN, Disk(partial_size=SIZE), None, False,
        Act("fetch", restart=True, warning=INCONSISTENT),
    ),
    "extracted earlier": (EXTRACTED, Disk(), "shard", False, Act("extracted")),
    "extracted, link since expired": (EXTRACTED, Disk(), "shard", True, Act("extracted")),
    "killed between extraction's record and removing the tar": (
        EXTRACTED, Disk(partial_size=SIZE), "shard", False, Act("extracted", dispose_partial=True)
    ),
    "extracted in another layout": (
        EXTRACTED, Disk(), "split", False, Act("extracted", warning=MOVED)
    ),
    "extracted, folder since deleted": (
        EXTRACTED, Disk(extraction_present=False), "shard", False,
        Act("fetch", restart=True, warning=GONE),
    ),
    "kept as a tar earlier, extracting now": (
        DONE, Disk(final_size=SIZE), "shard", False, Act("extract-kept-tar")
    ),
    "extracted earlier, tars only now": (EXTRACTED, Disk(), None, False, FRESH),
    "killed extracting with no tar, after a checkpoint": (
        STREAMING, Disk(checkpointed=True), "shard", False, Act("resume")
    ),
    "killed extracting with no tar, link since expired": (
        STREAMING, Disk(checkpointed=True), "shard", True, Act("expired")
    ),
    "killed extracting with no tar, before a checkpoint": (
        STREAMING, Disk(), "shard", False, FRESH
    ),
    "killed extracting with no tar, tars only now": (
        STREAMING, Disk(checkpointed=True), None, False, FRESH
    ),
    "a checkpoint, its partial tar since deleted": (
        PARTIAL, Disk(checkpointed=True), "shard", False, FRESH
    ),
}  # fmt: skip


@pytest.mark.parametrize(
    ("entry", "disk", "into", "expired", "expected"), CASES.values(), ids=CASES.keys()
)
def test_reconcile(
    entry: FileRecord, disk: DiskFacts, into: str | None, expired: bool, expected: StartAction
) -> None:
    action = reconcile(entry, disk, extracts=into is not None, layout=into, expired=expired)
    assert action == expected


# -- another store's record of the same file (a split download's workers) ----------------

FURTHER = record(ranges=((0, 700),))
OTHER_OBJECT = replace(FURTHER, object_key="another-host/p")

# name: (this store's record, the other stores' records, the one adopted or None)
ADOPTIONS: dict[str, tuple[FileRecord, tuple[FileRecord, ...], FileRecord | None]] = {
    "no other store knows it": (NEW, (), None),
    "a worker fetched part of it": (NEW, (PARTIAL,), PARTIAL),
    "a worker finished it": (NEW, (DONE,), DONE),
    "a worker extracted it": (NEW, (EXTRACTED,), EXTRACTED),
    "the furthest of several": (NEW, (PARTIAL, FURTHER, NEW), FURTHER),
    "finished beats more bytes": (PARTIAL, (FURTHER, DONE), DONE),
    "ours is as far": (PARTIAL, (PARTIAL,), None),
    "ours is further": (FURTHER, (PARTIAL,), None),
    "ours is done": (DONE, (EXTRACTED,), None),
    "theirs is inconsistent": (NEW, (BROKEN,), None),
    "ours is inconsistent, theirs is not": (BROKEN, (PARTIAL,), PARTIAL),
    "theirs is of another object": (NEW, (OTHER_OBJECT,), None),
}


@pytest.mark.parametrize("case", list(ADOPTIONS))
def test_which_record_of_another_store_is_adopted(case: str) -> None:
    own, others, adopted = ADOPTIONS[case]
    assert record_to_adopt(own, others) == adopted


# Recorded bytes that are holes of the partial file (freed behind an extraction): which are
# lost to this run. Columns: recorded, holes, where its extraction goes on from, lost.
FREED = {
    "no holes": ([(0, 100)], [], 0, []),
    "holes only where nothing is recorded": ([(0, 40)], [(40, 100)], 0, []),
    "freed below the checkpoint it goes on from": ([(0, 100)], [(0, 48)], 48, []),
    "freed, and this run reads the whole tar": ([(0, 100)], [(0, 48)], 0, [(0, 48)]),
    "freed past the checkpoint (another store's)": ([(0, 100)], [(0, 64)], 48, [(48, 64)]),
    "freed across two recorded ranges": ([(0, 30), (50, 100)], [(20, 60)], 0, [(20, 30), (50, 60)]),
    "the walk had ended: nothing is read again": ([(0, 100)], [(0, 96)], 100, []),
}


@pytest.mark.parametrize("case", list(FREED))
def test_which_recorded_bytes_are_lost_to_holes(case: str) -> None:
    recorded, holes, checkpoint_end, lost = FREED[case]
    found = freed(RangeSet(recorded), RangeSet(holes), keep_below=checkpoint_end)
    assert found == RangeSet(lost)


# A walked shard (--only): one table row per way a walk can have been left.
JSON = MemberFacts("sa_1.json", 40)
PLACED = replace(JSON, placed=40)
STAGED = replace(JSON, staged=40)
CUT = replace(JSON, staged=12)  # a staged file short of its size is not trusted
PLACED_AND_STAGED = replace(JSON, placed=40, staged=40)
DAMAGED = replace(JSON, placed=39)  # e.g. `verify --repair` found it short
EMPTY = MemberFacts("sa_2.json", 0)  # made at publication, never fetched

# name: (extracted, walked, complete, published, members, expected start)
WALKS: dict[str, tuple[str | None, bool, bool, bool, list[MemberFacts], WalkStart]] = {
    "extracted whole in this layout": ("shard", True, True, True, [JSON], WalkStart("extracted")),
    "extracted in another layout: walked": ("split", False, False, False, [], WalkStart("fresh")),
    "never walked": (None, False, False, False, [], WalkStart("fresh")),
    "stopped mid-walk, a member staged": (
        None, True, False, False, [STAGED], WalkStart("resume", staged=("sa_1.json",))
    ),
    "stopped mid-walk, a member cut": (
        None, True, False, False, [CUT], WalkStart("resume", fetch=("sa_1.json",))
    ),
    "walked, published, all in place": (None, True, True, True, [PLACED, EMPTY], WalkStart("done")),
    "walked, published, one damaged": (
        None, True, True, True, [DAMAGED], WalkStart("resume", fetch=("sa_1.json",))
    ),
    "walked for another kind: fetch ours by range": (
        None, True, True, False, [PLACED], WalkStart("resume", fetch=("sa_1.json",))
    ),
    "walked, killed before publishing": (
        None, True, True, False, [STAGED], WalkStart("resume", staged=("sa_1.json",))
    ),
    "published, a staged copy left over": (
        None, True, True, True, [PLACED_AND_STAGED], WalkStart("done")
    ),
    "walked, nothing wanted": (None, True, True, False, [EMPTY], WalkStart("resume")),
}  # fmt: skip


@pytest.mark.parametrize("case", list(WALKS))
def test_reconcile_walk(case: str) -> None:
    extracted, walked, complete, published, members, expected = WALKS[case]
    got = reconcile_walk(
        extracted=extracted,
        layout="shard",
        walked=walked,
        complete=complete,
        published=published,
        members=members,
    )
    assert got == expected
