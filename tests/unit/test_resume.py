"""What the store keeps of an extraction whose tar is freed behind it (sa1b.store.resume):
its last checkpoint, at one generation of the file, gone once the shard is recorded."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from sa1b.store.resume import Resume, load_resume, save_resume
from sa1b.store.state import StateStore
from sa1b.tarwalk import Entry

A, B = Entry("sa_1.jpg", 512, 900), Entry("sa_1.json", 1536, 40)
MIDDLE = Resume(2048, (A,), (("sa_000000/sa_1.jpg", 512, 900),))
END = Resume(None, (A, B), (("sa_000000/sa_1.jpg", 512, 900), ("sa_000000/sa_1.json", 1536, 40)))


def test_the_last_checkpoint_of_the_generation_is_loaded(tmp_path: Path) -> None:
    with StateStore(tmp_path) as store:
        file_id = store.register("sa_000000.tar", "k").id
        assert load_resume(store, file_id, 0) is None
        save_resume(store, file_id, 0, MIDDLE)
        assert load_resume(store, file_id, 0) == MIDDLE
        save_resume(store, file_id, 0, END)
        assert load_resume(store, file_id, 0) == END
        assert load_resume(store, file_id, 1) is None  # another generation's bytes


def test_a_restart_or_the_record_of_the_extraction_voids_it(tmp_path: Path) -> None:
    with StateStore(tmp_path) as store:
        file_id = store.register("sa_000000.tar", "k").id
        save_resume(store, file_id, 0, MIDDLE)
        generation = store.restart(file_id)
        assert load_resume(store, file_id, 0) is None
        save_resume(store, file_id, generation, END)
        store.set_extracted(file_id, "shard", END.members)
        assert load_resume(store, file_id, generation) is None


def test_a_store_from_before_gets_the_table(tmp_path: Path) -> None:
    with StateStore(tmp_path) as store:
        file_id = store.register("sa_000000.tar", "k").id
    with sqlite3.connect(tmp_path / ".sa1b" / "state.db") as db:
        db.execute("DROP TABLE extractions")
    with StateStore(tmp_path) as store:
        assert load_resume(store, file_id, 0) is None
