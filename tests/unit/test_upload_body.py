"""The memory budget of an upload run, as the scheduler meets it: a part takes its length
when it is claimed, a claim waits while the budget is spent, and a part gives its memory
back once uploaded (sa1b.engine.upload, with the uploaders replaced by a list); and the
walk of a shard's tar as its parts are sent, in any order (the uploaders run in this
thread, against a stand-in for the bucket)."""

from __future__ import annotations

import io
import tarfile
from collections.abc import Callable, Iterator
from functools import partial
from pathlib import Path

import pytest

from sa1b.catalog import catalog_key, read_catalog
from sa1b.config import DownloadConfig, UploadOptions
from sa1b.engine.run import Run
from sa1b.engine.streamed import PartAnswer
from sa1b.engine.tasks import Task
from sa1b.engine.upload import UploadBody
from sa1b.engine.uploads import Uploads
from sa1b.errors import (
    BucketError,
    CorruptArchiveError,
    SA1BError,
    StoreUnavailableError,
)
from sa1b.links import Link, object_key
from sa1b.objectstore.bucket import ListedObject, StoredObject, UploadedPart
from sa1b.objectstore.location import BucketLocation
from sa1b.objectstore.parts import PartPlan
from sa1b.retry import RetryPolicy
from sa1b.store.state import StateStore
from sa1b.store.uploads import UploadStart, WalkPoint, WalkReached, load_upload, save_uploads
from sa1b.tarwalk import Entry
from sa1b.versions import Validator

MiB = 1024 * 1024
PART = 5 * MiB


@pytest.fixture
def sent() -> list[bytearray]:
    """The parts handed to the uploaders."""
    return []


@pytest.fixture
def chunk() -> int:
    """The most a request asks for: a whole part, unless a test says otherwise."""
    return PART


@pytest.fixture
def uploads(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, sent: list[bytearray], chunk: int
) -> Iterator[Uploads]:
    monkeypatch.setenv("AWS_REGION", "us-east-1")
    location = BucketLocation("b", "p")
    options = UploadOptions(location=location, part_size=PART, memory=2 * PART, chunk=chunk)
    config = DownloadConfig(
        out=tmp_path,
        state_dir=tmp_path,
        extract=None,
        upload=options,
        retry=RetryPolicy(attempts=4, backoff=0.01, backoff_max=0.01),
    )
    with StateStore(tmp_path, state=tmp_path) as store:
        made = Uploads(Run(config, store), abort=lambda error: None)
        monkeypatch.setattr(made, "send", lambda task, body, n, buffer: sent.append(buffer))
        yield made
        made.close()


def shard(uploads: Uploads, name: str, size: int = 4 * PART) -> tuple[Task, UploadBody]:
    link = Link(name, f"https://cdn.example/{name}")
    task = Task(link=link, id=1, generation=0, failures=uploads.config.failure_account())
    task.size = size
    body = UploadBody(uploads, f"tars/{name}")
    body.resume(task, "up", PartPlan(size, PART), {})
    task.body = body
    return task, body


def arrive(answer: PartAnswer, count: int) -> None:
    assert answer.buffer is not None
    answer.got += count


def test_claims_wait_while_the_budget_is_spent_and_go_once_a_part_is_uploaded(
    uploads: Uploads, sent: list[bytearray]
) -> None:
    task_a, a = shard(uploads, "sa_000000.tar")
    _, b = shard(uploads, "sa_000001.tar")
    first, second = a.claim(task_a), a.claim(task_a)
    assert first is not None and second is not None
    assert (first.number, second.number) == (1, 2)  # the lowest parts first
    assert uploads.budget.held == 2 * PART
    assert not a.claimable and not b.claimable  # spent: no new part is claimed
    # A request cut half-way keeps its bytes and its memory: the rest is asked for later.
    arrive(first, 2 * MiB)
    a.answered(task_a, first)
    assert a.claimable and not b.claimable
    again = a.claim(task_a)
    assert again is not None and (again.number, again.start, again.stop) == (1, 2 * MiB, PART)
    arrive(again, 3 * MiB)
    a.answered(task_a, again)
    assert [len(buffer) for buffer in sent] == [PART]
    assert not b.claimable  # still held: being uploaded
    uploads.give(sent.pop())
    assert uploads.budget.held == PART
    assert b.claimable and a.claimable
    assert uploads.tick_now.is_set()  # the transport is woken for the claims waiting


def test_a_shard_that_ends_gives_back_the_memory_of_its_incomplete_parts(
    uploads: Uploads,
) -> None:
    task, body = shard(uploads, "sa_000000.tar")
    answer = body.claim(task)
    assert answer is not None
    arrive(answer, MiB)
    body.answered(task, answer)
    assert uploads.budget.held == PART
    body.record_status(task, "expired", "the link expired")
    assert uploads.budget.held == 0


def failing(errors: list[SA1BError]) -> Callable[[], str]:
    """A store call that raises ``errors`` in turn, then answers."""

    def call() -> str:
        if errors:
            raise errors.pop(0)
        return "answered"

    return call


def busy() -> StoreUnavailableError:
    return StoreUnavailableError("s3://b/p/k: the store answered 503 SlowDown", status=503)


SOURCE = bytes(range(251)) * (2 * PART // 251 + 1)  # two parts and a bit of a third


def deliver(answer: PartAnswer, length: int) -> None:
    """``length`` bytes of the source, from where the answer stands, through the receiver."""
    at = answer.delta + answer.got
    assert answer.body(SOURCE[at : at + length])


@pytest.mark.parametrize("chunk", [MiB])
def test_a_part_is_filled_by_several_chunk_requests_and_sent_once_all_are_in(
    uploads: Uploads, sent: list[bytearray]
) -> None:
    task, body = shard(uploads, "sa_000000.tar", len(SOURCE))
    answers = [body.claim(task) for _ in range(5)]
    assert [(a.number, a.start, a.stop) for a in answers if a] == [
        (1, i * MiB, (i + 1) * MiB) for i in range(5)
    ]
    assert uploads.budget.held == PART  # one buffer, whatever its requests
    for answer in reversed(answers):  # any order: the part goes once the last is in
        assert answer is not None and sent == []
        deliver(answer, MiB)
        body.answered(task, answer)
    assert [bytes(part) for part in sent] == [SOURCE[:PART]]


@pytest.mark.parametrize("chunk", [MiB])
def test_a_cut_chunk_asks_again_for_its_rest_only_before_the_next_part(
    uploads: Uploads, sent: list[bytearray]
) -> None:
    task, body = shard(uploads, "sa_000000.tar", len(SOURCE))
    answers = [body.claim(task) for _ in range(5)]
    cut = answers[2]
    assert cut is not None
    deliver(cut, 300_000)
    body.answered(task, cut)  # cut: what arrived is kept
    rest = body.claim(task)  # the lowest part's rest first, before part 2 is opened
    assert rest is not None and (rest.number, rest.start, rest.stop) == (
        1,
        2 * MiB + 300_000,
        3 * MiB,
    )
    assert uploads.budget.held == PART
    for answer in [rest, *answers[:2], *answers[3:]]:
        assert answer is not None
        deliver(answer, answer.stop - answer.start)
        body.answered(task, answer)
    assert [bytes(part) for part in sent] == [SOURCE[:PART]]


@pytest.mark.parametrize("chunk", [MiB])
def test_the_parts_in_flight_stay_within_the_budget_however_many_chunks_are_asked(
    uploads: Uploads, sent: list[bytearray]
) -> None:
    task, body = shard(uploads, "sa_000000.tar", len(SOURCE))
    answers = []
    while body.claimable:
        answer = body.claim(task)
        assert answer is not None
        answers.append(answer)
    assert len(answers) == 10 and uploads.budget.held == uploads.budget.limit == 2 * PART
    for answer in answers[:5]:  # part 1 whole: sent, its memory held until uploaded
        deliver(answer, MiB)
        body.answered(task, answer)
    assert len(sent) == 1 and not body.claimable
    uploads.give(sent.pop())
    assert body.claimable  # part 3 goes now (a few bytes: the source's end)
    third = body.claim(task)
    assert third is not None and (third.number, third.stop) == (3, len(SOURCE))
    assert uploads.budget.held == PART + len(SOURCE) - 2 * PART


def test_a_busy_store_is_asked_again_by_the_run_s_policy(uploads: Uploads) -> None:
    errors: list[SA1BError] = [busy(), busy(), busy()]
    assert uploads._call(failing(errors)) == "answered"
    assert errors == []


def test_a_store_busy_past_the_policy_raises_its_last_failure(uploads: Uploads) -> None:
    with pytest.raises(StoreUnavailableError):
        uploads._call(failing([busy(), busy(), busy(), busy()]))


def test_a_store_that_refuses_for_good_is_not_asked_again(uploads: Uploads) -> None:
    errors: list[SA1BError] = [BucketError("s3://b: access denied", bucket="b"), busy()]
    with pytest.raises(BucketError):
        uploads._call(failing(errors))
    assert len(errors) == 1


def test_a_run_that_stops_stops_waiting_for_a_busy_store(uploads: Uploads) -> None:
    uploads.run.stop()
    errors: list[SA1BError] = [busy(), busy()]
    with pytest.raises(StoreUnavailableError):
        uploads._call(failing(errors))
    assert len(errors) == 1


@pytest.fixture
def bucket(uploads: Uploads, monkeypatch: pytest.MonkeyPatch) -> dict[str, bytes]:
    """The uploaders and the readers run in the caller's thread, against a stand-in for
    the bucket: the objects put (the parts are only counted)."""
    put: dict[str, bytes] = {}

    def upload_part(key: str, upload_id: str, number: int, body: bytearray) -> UploadedPart:
        put[f"part {number}"] = b""
        return UploadedPart(number, f'"e{number}"', len(body), "c=")

    stand_in = uploads.bucket
    monkeypatch.setattr(stand_in, "upload_part", upload_part)
    monkeypatch.setattr(stand_in, "complete_multipart_upload", lambda *a: '"answered-4"')
    monkeypatch.setattr(stand_in, "head_object", lambda key: StoredObject(len(ARCHIVE), "tag-4"))
    monkeypatch.setattr(stand_in, "abort_multipart_upload", lambda *a: put.update(aborted=b""))
    monkeypatch.setattr(stand_in, "put_object", lambda key, data: put.update({key: data}))
    pools = Deferred()

    def send(task: Task, body: UploadBody, number: int, buffer: bytearray) -> None:
        Uploads.send(uploads, task, body, number, buffer)  # the real one, then its jobs
        pools.run()

    monkeypatch.setattr(uploads, "send", send)
    monkeypatch.setattr(uploads, "_pool", pools)
    monkeypatch.setattr(uploads, "_readers", pools)
    return put


class Deferred:
    """The uploaders' and the readers' pools: their jobs run in the caller's thread, once
    the call that submits them is over (as a thread would wait for the run's lock)."""

    def __init__(self) -> None:
        self.jobs: list[Callable[[], object]] = []

    def submit(self, call: Callable[..., object], *args: object) -> None:
        self.jobs.append(partial(call, *args))

    def run(self) -> None:
        while self.jobs:
            self.jobs.pop(0)()

    def shutdown(self, **options: bool) -> None:
        self.run()


def tar_of(sizes: list[int]) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.GNU_FORMAT) as archive:
        for number, size in enumerate(sizes):
            info = tarfile.TarInfo(f"sa_{number}.jpg")
            info.size = size
            archive.addfile(info, io.BytesIO(bytes([number]) * size))
    return buffer.getvalue()


def members_of(archive: bytes) -> list[Entry]:
    with tarfile.open(fileobj=io.BytesIO(archive)) as opened:
        return [Entry(m.name, m.offset_data, m.size) for m in opened if m.isfile()]


ARCHIVE = tar_of([700_000 + 4099 * i for i in range(22)])  # 4 parts, headers all over


def fetch(task: Task, body: UploadBody, archive: bytes) -> dict[int, PartAnswer]:
    """Every part claimed, its bytes arrived (each ends when :func:`end` says)."""
    answers = {}
    while (answer := body.claim(task)) is not None:
        assert answer.buffer is not None
        answer.buffer[:] = archive[answer.start : answer.stop]
        answer.got = len(answer.buffer)
        answers[answer.number] = answer
    return answers


def test_parts_sent_in_any_order_are_walked_in_order_and_the_catalog_put_beside_the_tar(
    uploads: Uploads, bucket: dict[str, bytes]
) -> None:
    task, body = shard(uploads, "sa_000000.tar", len(ARCHIVE))
    answers = fetch(task, body, ARCHIVE)
    assert sorted(answers) == [1, 2, 3, 4]
    body.answered(task, answers[3])
    body.answered(task, answers[2])
    assert body.walk is not None and body.walk.entries == []  # parts 2, 3 wait for part 1
    assert uploads.budget.held == 3 * PART + len(answers[4].buffer or b"")
    body.answered(task, answers[1])
    assert len(body.walk.entries) > 10 and not body.complete
    assert uploads.budget.held == len(answers[4].buffer or b"")  # read: given back
    body.answered(task, answers[4])
    assert body.walk.finished and body.walk.entries == members_of(ARCHIVE)
    assert body.complete and uploads.budget.held == 0
    # Its progress was noted part by part: the pieces add up to the catalog.
    walked = [record for record in uploads.records if isinstance(record, WalkReached)]
    assert len(walked) == 4 and walked[-1].next == len(ARCHIVE)
    assert [entry for record in walked for entry in record.entries] == members_of(ARCHIVE)
    body.publish(task)
    catalog = bucket[catalog_key("sa_000000.tar")]
    assert read_catalog(catalog, size=len(ARCHIVE), etag="tag-4") == members_of(ARCHIVE)
    assert "aborted" not in bucket


def test_a_damaged_tar_stops_its_fetching_gives_its_memory_back_and_aborts_its_upload(
    uploads: Uploads, bucket: dict[str, bytes]
) -> None:
    plan = PartPlan(len(ARCHIVE), PART)
    header = next(e.offset - 512 for e in members_of(ARCHIVE) if e.offset > plan.span(2)[0])
    damaged = bytearray(ARCHIVE)
    damaged[header] ^= 0x01  # a name's byte: the header's checksum fails
    task, body = shard(uploads, "sa_000000.tar", len(damaged))
    answers = fetch(task, body, bytes(damaged))
    body.answered(task, answers[1])
    body.answered(task, answers[3])
    body.answered(task, answers[2])  # parts 2 and 3 read: the verdict
    assert body.verdict is not None and f"bad header at byte {header}" in body.verdict.message
    assert not body.claimable and not body.complete  # part 4 still in flight
    body.answered(task, answers[4])
    assert body.complete and uploads.budget.held == 0
    with pytest.raises(CorruptArchiveError) as raised:
        body.publish(task)
    assert raised.value is body.verdict
    assert "aborted" in bucket and catalog_key("sa_000000.tar") not in bucket


def test_a_resumed_walk_reads_again_only_the_kept_parts_from_where_it_goes_on(
    uploads: Uploads, bucket: dict[str, bytes]
) -> None:
    plan, members = PartPlan(len(ARCHIVE), PART), members_of(ARCHIVE)
    at = next(i for i, e in enumerate(members) if e.offset - 512 >= plan.span(3)[0])
    point = WalkPoint(members[at].offset - 512, tuple(members[:at]))  # a header in part 3
    assert point.next < plan.span(4)[0]
    kept = {n: UploadedPart(n, f'"e{n}"', plan.length(n), "c=") for n in (1, 2, 3, 4)}
    task, body = shard(uploads, "sa_000000.tar", len(ARCHIVE))
    body.resume(task, "up", plan, kept, walked=point)
    assert sorted(body.todo) == [3, 4] and body.reread == {3, 4}
    answers = fetch(task, body, ARCHIVE)
    body.answered(task, answers[4])
    body.answered(task, answers[3])
    assert [key for key in bucket if key.startswith("part")] == []  # read, not uploaded again
    assert body.complete and body.walk is not None
    assert body.walk.entries == members


def test_a_shard_completed_by_a_run_killed_before_its_catalog_gets_it_from_the_saved_walk(
    uploads: Uploads, bucket: dict[str, bytes], monkeypatch: pytest.MonkeyPatch
) -> None:
    link = Link("sa_000000.tar", "https://cdn.example/sa_000000.tar")
    store, size = uploads.run.store, len(ARCHIVE)
    file_id = store.register(link.name, object_key(link.url)).id
    save_uploads(
        store,
        [
            UploadStart(file_id, "up", size, Validator('"v"', None), PART),
            WalkReached(file_id, size, tuple(members_of(ARCHIVE))),  # the walk had ended
        ],
    )

    listed = [ListedObject("tars/sa_000000.tar", size, '"t-4"')]  # completed: no upload left
    monkeypatch.setattr(uploads.bucket, "list_objects", lambda: listed)
    task = uploads.prepare(link)
    assert task.outcome is not None and task.outcome.state == "done"
    catalog = bucket[catalog_key(link.name)]
    assert read_catalog(catalog, size=size, etag="t-4") == members_of(ARCHIVE)
    assert load_upload(store, file_id) is None
