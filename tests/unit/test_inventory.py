"""What an s3:// output holds, judged from its listings: the layout's keys, which pending
upload each file resumes from and which are strays, and the status rows (tables)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from sa1b.inventory import (
    BucketFile,
    Upload,
    Verdict,
    bucket_files,
    file_of,
    judge_uploads,
    key_of,
    parts_fit,
    resumed_upload,
    upload_metadata,
)
from sa1b.objectstore.parts import MIB, PartPlan
from sa1b.versions import Validator

T0 = datetime(2026, 12, 1, tzinfo=UTC)
P = 64 * MIB

# key under the prefix: the file published there (None: not a place of the layout)
KEYS = {
    "tars/sa_000020.tar": "sa_000020.tar",
    "sa_images_ids.txt": "sa_images_ids.txt",
    "sa_co_gold.tar": "sa_co_gold.tar",  # an extra that is a tar, but not a shard
    "sa_000020.tar": None,  # a shard belongs under tars/
    "tars/sa_images_ids.txt": None,  # an extra does not
    "tars/x/sa_000020.tar": None,
    ".sa1b/state.db": None,  # sa1b's own
    "other/sa_000020.tar": None,
    "tars/..tar": None,
    "": None,
    "README": "README",  # any plain name at the top: an extra (only a links file says which)
}


@pytest.mark.parametrize(("key", "name"), KEYS.items(), ids=[k or "empty" for k in KEYS])
def test_the_file_a_key_publishes(key: str, name: str | None) -> None:
    assert file_of(key) == name
    if name is not None:
        assert key_of(name) == key


# parts (number, size), the plan if the size is known: whether sa1b's upload could have them
FITS = [
    ((), None, True),
    (((1, P), (2, P), (3, 100)), None, True),
    (((3, 100), (1, P)), None, True),  # out of order, with a hole: as downloads finish
    (((2, P),), None, True),
    (((1, P), (2, 5 * MIB)), None, True),
    (((1, P), (2, P + 1)), None, False),  # the last larger than the others
    (((1, P), (2, 5 * MIB), (3, P)), None, False),  # two sizes before the last
    (((1, P), (2, P), (3, 100)), PartPlan(2 * P + 100, P), True),
    (((1, P), (3, 100)), PartPlan(2 * P + 100, P), True),
    (((1, P), (3, 99)), PartPlan(2 * P + 100, P), False),
    (((4, 100),), PartPlan(2 * P + 100, P), False),  # beyond the plan
    (((1, 32 * MIB),), PartPlan(2 * P + 100, P), False),
]


@pytest.mark.parametrize(("parts", "plan", "fit"), FITS)
def test_parts_fit_a_plan(
    parts: tuple[tuple[int, int], ...], plan: PartPlan | None, fit: bool
) -> None:
    assert parts_fit(parts, plan) is fit


def up(key: str, upload_id: str, age: int = 0, parts: tuple[tuple[int, int], ...] = ()) -> Upload:
    """An upload begun ``age`` minutes after T0."""
    return Upload(key, upload_id, T0 + timedelta(minutes=age), parts)


SHARD = "tars/sa_000001.tar"
# uploads, published names, recorded ids: each upload id -> why it is a stray (None: resumed)
JUDGED = [
    ([up(SHARD, "a")], set(), {}, {"a": None}),
    ([up(SHARD, "a", 0), up(SHARD, "b", 5)], set(), {}, {"b": None, "a": "an older upload"}),
    (  # the state's record wins over the newest
        [up(SHARD, "a", 0), up(SHARD, "b", 5)],
        set(),
        {"sa_000001.tar": "a"},
        {"a": None, "b": "a newer upload"},
    ),
    (  # a recorded upload no longer pending: the newest
        [up(SHARD, "a", 0), up(SHARD, "b", 5)],
        set(),
        {"sa_000001.tar": "gone"},
        {"b": None, "a": "an older upload"},
    ),
    ([up(SHARD, "a")], {"sa_000001.tar"}, {}, {"a": "its file is published"}),
    ([up("sa_000001.tar", "a")], set(), {}, {"a": "not a file of the layout"}),
    ([up(".sa1b/state.db", "a")], set(), {}, {"a": "not a file of the layout"}),
    (  # the newest has parts sa1b would not cut: a stray, and no older one is resumed
        [up(SHARD, "a", 0, ((1, P),)), up(SHARD, "b", 5, ((1, P), (2, P + 1)))],
        set(),
        {},
        {"b": "its parts fit no part plan", "a": "an older upload"},
    ),
    (  # no date (a store that gives none): older than any dated one
        [Upload(SHARD, "a"), up(SHARD, "b", 0)],
        set(),
        {},
        {"b": None, "a": "an older upload"},
    ),
    (  # begun in one second (stores date to the second): the one holding more is kept
        [up(SHARD, "a", 0, ((1, P),)), up(SHARD, "b", 0, ((1, 100),))],
        set(),
        {},
        {"a": None, "b": "an older upload"},
    ),
    (  # files apart
        [up(SHARD, "a"), up("tars/sa_000002.tar", "b"), up("sa_images_ids.txt", "c")],
        set(),
        {},
        {"a": None, "b": None, "c": None},
    ),
]


@pytest.mark.parametrize(("uploads", "published", "recorded", "expected"), JUDGED)
def test_which_upload_each_file_resumes_from_and_which_are_strays(
    uploads: list[Upload],
    published: set[str],
    recorded: dict[str, str],
    expected: dict[str, str | None],
) -> None:
    verdicts = judge_uploads(uploads, published=published, recorded=recorded)
    assert len(verdicts) == len(uploads)
    found = {v.upload.upload_id: v.stray for v in verdicts}
    for upload_id, why in expected.items():
        if why is None:
            assert found[upload_id] is None
        else:
            assert found[upload_id] is not None and found[upload_id].startswith(why)
    # Never two uploads of one file resumed.
    resumed = [v.name for v in verdicts if v.resumable]
    assert len(resumed) == len(set(resumed))


@pytest.mark.parametrize(("uploads", "published", "recorded", "expected"), JUDGED)
def test_the_engine_resumes_exactly_the_upload_status_does_not_call_a_stray(
    uploads: list[Upload],
    published: set[str],
    recorded: dict[str, str],
    expected: dict[str, str | None],
) -> None:
    # The engine asks for one file, after finding its object missing; status for all.
    verdicts = judge_uploads(uploads, published=(), recorded=recorded)
    for name in {v.name for v in verdicts if v.name is not None}:
        chosen = resumed_upload(
            [u for u in uploads if file_of(u.key) == name],
            name,
            recorded=recorded.get(name),
            plan=None,
        )
        resumable = [v.upload for v in verdicts if v.name == name and v.resumable]
        assert resumable == ([chosen] if chosen is not None else [])


# the upload recorded, the plan: the upload the engine resumes (None: a new one)
RESUMED = [
    ("a", None, "a"),  # recorded, though older
    ("gone", None, "b"),  # recorded and gone: the newest
    (None, None, "b"),
    (None, PartPlan(P + 100, P), "b"),
    (None, PartPlan(2 * P + 100, P), None),  # the newest's parts fit no plan; never an older
    ("a", PartPlan(2 * P + 100, P), "a"),
]


@pytest.mark.parametrize(("recorded", "plan", "chosen"), RESUMED)
def test_the_upload_a_download_resumes(
    recorded: str | None, plan: PartPlan | None, chosen: str | None
) -> None:
    uploads = [up(SHARD, "a", 0, ((1, P),)), up(SHARD, "b", 5, ((1, P), (2, 100)))]
    found = resumed_upload(uploads, "sa_000001.tar", recorded=recorded, plan=plan)
    assert (found.upload_id if found else None) == chosen


def test_the_metadata_of_an_upload_names_its_size_and_source_never_a_url() -> None:
    assert upload_metadata(10, Validator('"abc"', "Tue, 01 Dec 2026")) == {
        "sa1b-size": "10",
        "sa1b-source": '"abc"',
    }
    assert upload_metadata(0, Validator(None, "Tue, 01 Dec 2026"))["sa1b-source"] == (
        "Tue, 01 Dec 2026"
    )
    assert upload_metadata(5, Validator(None, None))["sa1b-source"] == ""


def test_a_known_size_checks_parts_exactly() -> None:
    upload = up(SHARD, "a", 0, ((1, P), (2, 100)))
    plan = PartPlan(P + 100, P)
    assert judge_uploads([upload], published=(), plans={"sa_000001.tar": plan})[0].resumable
    other = PartPlan(P + 200, P)
    (verdict,) = judge_uploads([upload], published=(), plans={"sa_000001.tar": other})
    assert verdict.stray == "its parts fit no part plan of sa1b's"


def test_status_rows_from_objects_and_uploads() -> None:
    objects = [
        ("tars/sa_000001.tar", 1000),
        (".sa1b/state.db", 4096),
        ("notes.md/x", 5),
        ("sa_images_ids.txt", 70),
    ]
    uploads = [
        up("tars/sa_000002.tar", "b", 0, ((1, P), (3, 10))),
        up("tars/sa_000001.tar", "c"),  # published: a stray, not a row
        up("junk/sa_000003.tar", "d"),
    ]
    verdicts = judge_uploads(uploads, published={"sa_000001.tar", "sa_images_ids.txt"})
    assert bucket_files(objects, verdicts) == [
        BucketFile("sa_000001.tar", "done", 1000),
        BucketFile("sa_000002.tar", "uploading", P + 10, 2),
        BucketFile("sa_images_ids.txt", "done", 70),
    ]
    assert [v.upload.upload_id for v in verdicts if not v.resumable] == ["d", "c"]
    assert isinstance(verdicts[0], Verdict)
