"""What the store keeps of an extraction whose tar is freed behind it (sa1b.store.resume):
its last checkpoint, at one generation of the file, gone once the shard is recorded."""

from __future__ import annotations

import sqlite3
from pathlib import Path, PurePosixPath

import pytest

from sa1b.extract.shard import Member
from sa1b.store.resume import Ledger, PackedResume, Resume, load_resume, save_resume
from sa1b.store.state import StateStore
from sa1b.tarwalk import Entry

A, B = Entry("sa_1.jpg", 512, 900), Entry("sa_1.json", 1536, 40)
ROWS = (("sa_000000/sa_1.jpg", 512, 900), ("sa_000000/sa_1.json", 1536, 40))
STAGED = [Member(PurePosixPath(path), offset, size) for path, offset, size in ROWS]
MIDDLE = Resume(2048, (A,), ROWS[:1])
END = Resume(None, (A, B), ROWS)


def _packed(resume: Resume) -> PackedResume:
    return Ledger().checkpoint(resume.next, resume.entries, STAGED, len(resume.members))


@pytest.mark.parametrize(
    ("begun_from", "checkpoints", "expected"),
    [
        (None, [(2048, 1)], [MIDDLE]),
        (None, [(2048, 1), (None, 2)], [MIDDLE, END]),
        (None, [(None, 2)], [END]),
        (
            None,
            [(512, 0), (2048, 1), (2048, 1), (None, 2)],
            [Resume(512, (), ()), MIDDLE, MIDDLE, END],
        ),
        (MIDDLE, [(None, 2)], [END]),  # a rerun's ledger, from the checkpoint it loaded
        (MIDDLE, [(2048, 1)], [MIDDLE]),
    ],
)
def test_each_checkpoint_of_a_ledger_holds_every_row_before_it(
    begun_from: Resume | None, checkpoints: list[tuple[int | None, int]], expected: list[Resume]
) -> None:
    ledger = Ledger(begun_from)
    got = [ledger.checkpoint(at, (A, B), STAGED, count).unpacked() for at, count in checkpoints]
    assert got == expected


def test_a_ledger_of_a_whole_shard_packs_every_row() -> None:
    entries = [Entry(f"sa_{i}.jpg", 1024 * i, i) for i in range(22_000)]
    staged = [Member(PurePosixPath(f"sa_000000/{e.name}"), e.offset, e.size) for e in entries]
    ledger = Ledger()
    for count in range(0, 22_000, 523):
        ledger.checkpoint(count * 1024, entries, staged, count)
    resume = ledger.checkpoint(None, entries, staged, 22_000).unpacked()
    assert resume.entries == tuple(entries)
    assert resume.members == tuple((str(m.path), m.offset, m.size) for m in staged)


def test_the_last_checkpoint_of_the_generation_is_loaded(tmp_path: Path) -> None:
    with StateStore(tmp_path) as store:
        file_id = store.register("sa_000000.tar", "k").id
        assert load_resume(store, file_id, 0) is None
        save_resume(store, file_id, 0, _packed(MIDDLE))
        assert load_resume(store, file_id, 0) == MIDDLE
        save_resume(store, file_id, 0, _packed(END))
        assert load_resume(store, file_id, 0) == END
        assert load_resume(store, file_id, 1) is None  # another generation's bytes


def test_a_restart_or_the_record_of_the_extraction_voids_it(tmp_path: Path) -> None:
    with StateStore(tmp_path) as store:
        file_id = store.register("sa_000000.tar", "k").id
        save_resume(store, file_id, 0, _packed(MIDDLE))
        generation = store.restart(file_id)
        assert load_resume(store, file_id, 0) is None
        save_resume(store, file_id, generation, _packed(END))
        store.set_extracted(file_id, "shard", END.members)
        assert load_resume(store, file_id, generation) is None


def test_a_store_from_before_gets_the_table(tmp_path: Path) -> None:
    with StateStore(tmp_path) as store:
        file_id = store.register("sa_000000.tar", "k").id
    with sqlite3.connect(tmp_path / ".sa1b" / "state.db") as db:
        db.execute("DROP TABLE extractions")
    with StateStore(tmp_path) as store:
        assert load_resume(store, file_id, 0) is None
