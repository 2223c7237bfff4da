"""One reading of what the store records as a file's state (store.shards), as a table;
and one precedence for a shard's members over extraction, walk and stores
(store.members), against real stores."""

from __future__ import annotations

from pathlib import Path

import pytest

from sa1b.ranges import RangeSet
from sa1b.records import FileRecord, Status
from sa1b.store.members import Member, member_indexes, shard_members
from sa1b.store.paths import WORK_DIR, WORKERS
from sa1b.store.shards import State, shard_state
from sa1b.store.state import StateStore
from sa1b.store.walks import WalkRecord, finish_walk, start_walk
from sa1b.tarwalk import Entry
from sa1b.versions import Validator

SIZE = 10_240
NAME = "sa_000000.tar"
JPG, JSON = Entry("sa_1.jpg", 512, 900), Entry("sa_1.json", 1536, 40)


def record(status: Status, kept: int = 0, extracted: str | None = None) -> FileRecord:
    ranges = RangeSet([(0, kept)]) if kept else RangeSet()
    size = None if status == "pending" and not kept and not extracted else SIZE
    return FileRecord(1, NAME, "k", size, Validator(None, None), 0, status, None, ranges, extracted)


def walk(*, complete: bool) -> WalkRecord:
    published = frozenset({"shard:json"}) if complete else frozenset()
    return WalkRecord(
        SIZE, Validator(None, None), SIZE if complete else 512, complete, published, ()
    )


WALKED, WALKING = walk(complete=True), walk(complete=False)

# name: (record, walk, state, bytes of the whole file on disk)
STATES: dict[str, tuple[FileRecord, WalkRecord | None, State, int]] = {
    "nothing yet": (record("pending"), None, "pending", 0),
    "bytes on disk": (record("partial", kept=4096), None, "partial", 4096),
    "answered, no byte yet": (record("partial"), None, "partial", 0),
    "bytes in the crash journal, status not yet written": (
        record("pending", kept=100),
        None,
        "partial",
        100,
    ),
    "published as it is": (record("done"), None, "done", SIZE),
    "extracted": (record("done", extracted="shard"), None, "extracted", SIZE),
    "failed": (record("failed", kept=4096), None, "failed", 4096),
    "expired": (record("expired"), None, "expired", 0),
    "walked to its end": (record("pending"), WALKED, "walked", 0),
    "a walk under way": (record("pending"), WALKING, "pending", 0),
    "a walk failed": (record("failed"), WALKED, "failed", 0),
    "walked, then downloaded in part": (record("partial", kept=4096), WALKED, "partial", 4096),
    "walked, then extracted whole": (record("done", extracted="split"), WALKED, "extracted", SIZE),
}


@pytest.mark.parametrize("case", list(STATES))
def test_shard_state(case: str) -> None:
    given, its_walk, state, on_disk = STATES[case]
    shard = shard_state(given, its_walk)
    assert (shard.state, shard.bytes, shard.walk) == (state, on_disk, its_walk)
    assert shard.finished == (state in ("done", "extracted"))


def _extracted(store: StateStore, index: list[tuple[str, int, int]]) -> None:
    file_id = store.register(NAME, "k").id
    store.set_identity(file_id, SIZE, Validator(None, None))
    store.set_status(file_id, "done")
    store.set_extracted(file_id, "shard", index)


def _walked(store: StateStore) -> None:
    file_id = store.register(NAME, "k").id
    start_walk(store, file_id, SIZE, Validator(None, None))
    finish_walk(store, file_id, [JPG, JSON], {"shard:json"})


def test_a_walk_gives_every_member_and_places_the_published_ones(tmp_path: Path) -> None:
    with StateStore(tmp_path) as store:
        _walked(store)
    placed = "sa_000000/sa_1.json"
    assert shard_members(tmp_path) == {
        NAME: [Member("sa_1.jpg", 512, 900, None), Member("sa_1.json", 1536, 40, placed)]
    }
    assert member_indexes(tmp_path) == {NAME: [(placed, 1536, 40)]}


def test_an_extraction_goes_before_a_walk_of_the_same_shard(tmp_path: Path) -> None:
    index = [("sa_000000/sa_1.jpg", 512, 900), ("sa_000000/sa_1.json", 1536, 40)]
    with StateStore(tmp_path) as store:
        _walked(store)
        _extracted(store, index)
    assert member_indexes(tmp_path) == {NAME: index}
    assert [m.name for m in shard_members(tmp_path)[NAME]] == ["sa_1.jpg", "sa_1.json"]


def test_the_folder_s_own_store_goes_before_a_worker_s(tmp_path: Path) -> None:
    own, theirs = [("sa_000000/own.jpg", 512, 1)], [("sa_000000/theirs.jpg", 512, 1)]
    worker = tmp_path / WORK_DIR / WORKERS / "0-of-2"
    with StateStore(tmp_path, state=worker) as store:
        _extracted(store, theirs)
    assert member_indexes(tmp_path) == {NAME: theirs}
    with StateStore(tmp_path) as store:
        _extracted(store, own)
    assert member_indexes(tmp_path) == {NAME: own}


def test_a_store_that_cannot_be_read_is_passed_over(tmp_path: Path) -> None:
    index = [("sa_000000/sa_1.jpg", 512, 900)]
    worker = tmp_path / WORK_DIR / WORKERS / "1-of-2"
    with StateStore(tmp_path, state=worker) as store:
        _extracted(store, index)
    (tmp_path / WORK_DIR / "state.db").write_bytes(b"\0garbage" * 4096)
    assert member_indexes(tmp_path) == {NAME: index}
