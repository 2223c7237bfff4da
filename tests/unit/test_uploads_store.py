"""What the store keeps of a multipart upload (sa1b.store.uploads), and where the local
state of an s3:// output lives."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from sa1b.store.paths import bucket_state
from sa1b.store.state import StateStore
from sa1b.store.uploads import (
    PartDone,
    RecordedUpload,
    StoredPart,
    UploadChange,
    UploadForgotten,
    UploadStart,
    WalkPoint,
    WalkReached,
    coalesced,
    finish_upload,
    load_upload,
    recorded_uploads,
    save_uploads,
    seed_from_copy,
)
from sa1b.tarwalk import Entry
from sa1b.versions import Validator

MiB = 1024 * 1024
SOURCE = Validator('"etag-1"', None)


@pytest.fixture
def store(tmp_path: Path) -> Iterator[StateStore]:
    with StateStore(tmp_path / "state", state=tmp_path / "state") as opened:
        yield opened


def _begun(store: StateStore) -> int:
    file_id = store.register("sa_000000.tar", "sa_000000.tar").id
    save_uploads(
        store,
        [
            UploadStart(file_id, "up-1", 11 * MiB, SOURCE, 5 * MiB),
            PartDone(file_id, StoredPart(2, '"e2"', 5 * MiB, "c2=")),
            PartDone(file_id, StoredPart(1, '"e1"', 5 * MiB, "c1=")),
        ],
    )
    return file_id


def test_an_upload_and_its_parts_are_kept_and_give_the_file_its_size(store: StateStore) -> None:
    file_id = _begun(store)
    saved = load_upload(store, file_id)
    assert saved is not None
    assert (saved.upload_id, saved.size, saved.validator, saved.part_size) == (
        "up-1", 11 * MiB, SOURCE, 5 * MiB
    )  # fmt: skip
    assert saved.parts == {
        1: StoredPart(1, '"e1"', 5 * MiB, "c1="),
        2: StoredPart(2, '"e2"', 5 * MiB, "c2="),
    }
    record = store.get("sa_000000.tar")
    assert record is not None and (record.size, record.status) == (11 * MiB, "partial")


def test_a_new_upload_of_the_file_voids_the_parts_of_the_old_one(store: StateStore) -> None:
    file_id = _begun(store)
    save_uploads(store, [UploadStart(file_id, "up-2", 12 * MiB, SOURCE, 5 * MiB)])
    saved = load_upload(store, file_id)
    assert saved is not None and saved.upload_id == "up-2" and saved.parts == {}


@pytest.mark.parametrize("done", [True, False])
def test_a_finished_or_aborted_upload_is_forgotten(store: StateStore, done: bool) -> None:
    file_id = _begun(store)
    finish_upload(store, file_id, done=done)
    assert load_upload(store, file_id) is None
    record = store.get("sa_000000.tar")
    assert record is not None and (record.status == "done") is done


def test_an_aborted_upload_recorded_in_order_is_forgotten(store: StateStore) -> None:
    file_id = _begun(store)
    save_uploads(store, [UploadForgotten(file_id)])
    assert load_upload(store, file_id) is None


A, B, C = Entry("sa_1.jpg", 512, 9000), Entry("sa_1.json", 10240, 70), Entry("sa_2.jpg", 11264, 5)


def test_a_walk_saved_in_pieces_is_loaded_whole_and_goes_with_its_upload(
    store: StateStore,
) -> None:
    file_id = _begun(store)
    assert load_upload(store, file_id) is not None
    save_uploads(store, [WalkReached(file_id, 9728, (A,)), WalkReached(file_id, 10752, (B,))])
    save_uploads(store, [WalkReached(file_id, 11776, (C,))])
    saved = load_upload(store, file_id)
    assert saved is not None and saved.walk == WalkPoint(11776, (A, B, C))
    save_uploads(store, [UploadStart(file_id, "up-2", 12 * MiB, SOURCE, 5 * MiB)])
    again = load_upload(store, file_id)
    assert again is not None and again.walk is None  # a new upload walks from the start
    save_uploads(store, [WalkReached(file_id, 9728, (A,))])
    finish_upload(store, file_id, done=False)
    save_uploads(store, [UploadStart(file_id, "up-3", 12 * MiB, SOURCE, 5 * MiB)])
    third = load_upload(store, file_id)
    assert third is not None and third.walk is None


START = UploadStart(1, "up", 11 * MiB, SOURCE, 5 * MiB)
PART = PartDone(1, StoredPart(1, '"e1"', 5 * MiB, "c1="))
# name: (records in the order they happened, as they are saved)
FOLDED = {
    "a run of progress": (
        [START, WalkReached(1, 10, (A,)), PART, WalkReached(1, 20, (B,)), WalkReached(1, 30, ())],
        [START, WalkReached(1, 30, (A, B)), PART],
    ),
    "two files": (
        [WalkReached(1, 10, (A,)), WalkReached(2, 5, (C,)), WalkReached(1, 20, (B,))],
        [WalkReached(1, 20, (A, B)), WalkReached(2, 5, (C,))],
    ),
    "an upload begun between": (
        [WalkReached(1, 10, (A,)), START, WalkReached(1, 20, (B,))],
        [WalkReached(1, 10, (A,)), START, WalkReached(1, 20, (B,))],
    ),
    "an upload forgotten between": (
        [WalkReached(1, 10, (A,)), UploadForgotten(1), WalkReached(1, 20, (B,))],
        [WalkReached(1, 10, (A,)), UploadForgotten(1), WalkReached(1, 20, (B,))],
    ),
}


@pytest.mark.parametrize(("records", "saved"), FOLDED.values(), ids=FOLDED)
def test_a_walk_s_progress_is_saved_as_one_piece_per_run(
    records: list[UploadChange], saved: list[UploadChange]
) -> None:
    assert coalesced(records) == saved


def test_a_state_copy_from_another_machine_seeds_the_local_store(
    store: StateStore, tmp_path: Path
) -> None:
    file_id = _begun(store)
    store.copy_to(tmp_path / "copy")
    database = tmp_path / "elsewhere" / "state.db"
    seed_from_copy(database, (tmp_path / "copy" / "state.db").read_bytes())
    with StateStore(database.parent, state=database.parent) as seeded:
        saved = load_upload(seeded, file_id)
        assert saved is not None and saved.upload_id == "up-1" and len(saved.parts) == 2
        record = seeded.get("sa_000000.tar")  # not voided as another folder's partial file
        assert record is not None and record.size == 11 * MiB


def test_the_uploads_a_state_copy_records_are_read_without_changing_it(
    store: StateStore, tmp_path: Path
) -> None:
    _begun(store)
    other = store.register("sa_000001.tar", "sa_000001.tar").id
    save_uploads(store, [UploadStart(other, "up-9", 5 * MiB, SOURCE, 5 * MiB)])
    store.copy_to(tmp_path / "copy")
    copy = tmp_path / "copy" / "state.db"
    before = copy.read_bytes()
    assert recorded_uploads(copy) == {
        "sa_000000.tar": RecordedUpload("up-1", 11 * MiB, 5 * MiB),
        "sa_000001.tar": RecordedUpload("up-9", 5 * MiB, 5 * MiB),
    }
    assert copy.read_bytes() == before
    assert sorted(p.name for p in copy.parent.iterdir()) == ["state.db"]


# name: (bucket, prefix, environment, the state folder under tmp)
PLACES = {
    "the default cache": ("b", "runs/a", {}, "home/.cache/sa1b/s3/b/runs/a"),
    "XDG_CACHE_HOME": ("b", "p", {"XDG_CACHE_HOME": "/xdg"}, "/xdg/sa1b/s3/b/p"),
    "no prefix": ("b", "", {}, "home/.cache/sa1b/s3/b/_"),
}


@pytest.mark.parametrize(("bucket", "prefix", "environ", "place"), PLACES.values(), ids=PLACES)
def test_where_the_state_of_a_bucket_output_lives(
    bucket: str, prefix: str, environ: dict[str, str], place: str
) -> None:
    assert bucket_state(bucket, prefix, environ, Path("home")) == Path(place)
