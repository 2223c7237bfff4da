"""What the store keeps of a walk (sa1b.store.walks): checkpoints in parts, the catalog,
what was published, and a new version voiding it all."""

from __future__ import annotations

from pathlib import Path, PurePosixPath

from sa1b.store.state import StateStore
from sa1b.store.walks import (
    Checkpoint,
    finish_walk,
    forget_published,
    load_walk,
    load_walks,
    save_checkpoints,
    start_walk,
)
from sa1b.tarwalk import Entry
from sa1b.versions import Validator

A, B, C = Entry("sa_1.jpg", 512, 900), Entry("sa_1.json", 1536, 40), Entry("sa_2.jpg", 2560, 7)


def test_checkpoints_add_up_to_the_catalog_and_the_end_folds_them(tmp_path: Path) -> None:
    with StateStore(tmp_path) as store:
        file_id = store.register("sa_000000.tar", "k").id
        start_walk(store, file_id, 10_240, Validator('"v1"', None))
        save_checkpoints(store, [Checkpoint(file_id, 1024, (A,))])
        save_checkpoints(store, [Checkpoint(file_id, 2048, (B,)), Checkpoint(file_id, 2048, ())])
        walk = load_walk(store, file_id)
        assert walk is not None
        assert (walk.next, walk.complete, walk.entries) == (2048, False, (A, B))
        assert walk.validator == Validator('"v1"', None)
        finish_walk(store, file_id, [A, B, C], {"shard:json"})
        walk = load_walks(store)[file_id]
        assert (walk.complete, walk.entries, walk.kinds) == (True, (A, B, C), {"json"})
        assert walk.published_index("sa_000000.tar") == [("sa_000000/sa_1.json", 1536, 40)]
        assert walk.published_path("sa_000000.tar", A) is None
        forget_published(store, file_id)
        assert load_walks(store)[file_id].published_index("sa_000000.tar") == []


def test_a_new_version_voids_the_catalog(tmp_path: Path) -> None:
    with StateStore(tmp_path) as store:
        file_id = store.register("sa_000000.tar", "k").id
        start_walk(store, file_id, 10_240, Validator('"v1"', None))
        save_checkpoints(store, [Checkpoint(file_id, 1024, (A,))])
        start_walk(store, file_id, 20_480, Validator('"v2"', None))
        walk = load_walk(store, file_id)
        assert walk is not None
        assert (walk.size, walk.next, walk.entries) == (20_480, 0, ())


def test_published_paths_follow_each_layout(tmp_path: Path) -> None:
    with StateStore(tmp_path) as store:
        file_id = store.register("sa_000001.tar", "k").id
        start_walk(store, file_id, 10_240, Validator(None, "then"))
        finish_walk(store, file_id, [A, B], {"split:json", "flat:jpg"})
        walk = load_walks(store)[file_id]
        assert walk.published_path("sa_000001.tar", B) == PurePosixPath(
            "annotations/sa_000001/sa_1.json"
        )
        assert walk.published_path("sa_000001.tar", A) == PurePosixPath("sa_1.jpg")


def test_a_store_written_for_another_folder_forgets_unfinished_walks(tmp_path: Path) -> None:
    first = tmp_path / "first"
    first.mkdir()
    with StateStore(first) as store:
        done, going = store.register("a.tar", "k").id, store.register("b.tar", "k").id
        for file_id in (done, going):
            start_walk(store, file_id, 10_240, Validator('"v"', None))
        finish_walk(store, done, [A], {"shard:json"})
    moved = tmp_path / "moved"
    first.rename(moved)
    (tmp_path / "other").mkdir()
    (moved / ".sa1b").rename(tmp_path / "other" / ".sa1b")
    with StateStore(tmp_path / "other") as store:
        assert set(load_walks(store)) == {done}
