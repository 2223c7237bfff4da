"""A part of a tar made from a shard, as the scheduler meets it (sa1b.engine.repack, with
the uploaders replaced by a list): its headers written at once, each stretch of member
data in it one request, a cut request asked again for the rest, the part sent once every
stretch is in; a part's memory never given back while an answer may write into it; and
the map, walked header by header, saved as it goes and continued there by a new run."""

from __future__ import annotations

import io
import tarfile

from sa1b.engine.repack import MapAnswer, RepackBody
from sa1b.engine.streamed import PartAnswer
from sa1b.engine.tasks import Task
from sa1b.engine.uploads import Uploads
from sa1b.links import Link
from sa1b.net.heads import Head
from sa1b.repack import Mapped
from sa1b.store.repacks import MapRecord, load_map
from sa1b.versions import Validator
from tests.unit.test_upload_body import PART, MiB, chunk, sent, uploads  # noqa: F401 (fixtures)
from tests.wdstar import wds_tar

SOURCE = bytes(range(251)) * (40 * 1024)  # ~10 MB the members' offsets point into
MAP = (
    Mapped("sa_1.json", 512, 3 * MiB, 0),
    Mapped("sa_1.jpg", 4 * MiB, 3 * MiB, 0),
)


def repacked(uploads: Uploads) -> tuple[Task, RepackBody]:  # noqa: F811
    """A shard whose map is complete: its new tar planned, every part to fill."""
    link = Link("sa_000001.tar", "https://cdn.example/sa_000001.tar")
    task = Task(link=link, id=1, generation=0, failures=uploads.config.failure_account())
    body = RepackBody(uploads, "wds/sa_000001.tar", output="wds")
    body.resume_map(task, MapRecord(len(SOURCE), Validator('"e"', None), len(SOURCE), MAP))
    assert body.planned(task) is not None
    body.begin(task, body.known_plan(task, None, None, Validator()))
    task.body = body
    return task, body


def deliver(answer: PartAnswer, length: int) -> None:
    at = answer.delta + answer.got
    assert answer.body(SOURCE[at : at + length])


def test_a_part_is_sent_once_every_stretch_in_it_is_in_and_a_cut_one_asked_again(
    uploads: Uploads,  # noqa: F811
    sent: list[bytearray],  # noqa: F811
) -> None:
    task, body = repacked(uploads)
    jpg, json = body.claim(task), body.claim(task)  # part 1: both members' data, in order
    assert isinstance(jpg, PartAnswer) and isinstance(json, PartAnswer)
    assert (jpg.start, jpg.stop) == (4 * MiB, 7 * MiB)
    assert (json.start, json.stop) == (512, 512 + PART - 3 * MiB - 1024)
    assert uploads.budget.held == PART  # one buffer for the part, whatever its requests
    deliver(jpg, 3 * MiB)
    deliver(json, MiB)  # cut: the rest is asked for again
    body.answered(task, jpg)
    body.answered(task, json)
    assert sent == []
    rest = body.claim(task)
    assert isinstance(rest, PartAnswer) and (rest.start, rest.stop) == (512 + MiB, json.stop)
    deliver(rest, rest.stop - rest.start)
    body.answered(task, rest)
    expected = wds_tar(((m.name, SOURCE[m.offset : m.offset + m.size]) for m in MAP), mtime=0)
    assert [bytes(part) for part in sent] == [expected[:PART]]


def test_a_part_let_go_keeps_its_memory_until_its_last_answer_is_over(
    uploads: Uploads,  # noqa: F811
    sent: list[bytearray],  # noqa: F811
) -> None:
    task, body = repacked(uploads)
    first, second = body.claim(task), body.claim(task)
    assert isinstance(first, PartAnswer) and isinstance(second, PartAnswer)
    deliver(first, MiB)
    body.answered(task, first)
    body.record_status(task, "expired", "the link expired")  # an answer still in flight
    assert uploads.budget.held == PART  # ``second`` may still write into its buffer
    deliver(second, MiB)
    body.answered(task, second)
    assert uploads.budget.held == 0 and sent == []


def answer_with(body: RepackBody, task: Task, source: bytes) -> MapAnswer:
    """The map's next request, answered from ``source`` (its head, then its bytes)."""
    answer = body.claim(task)
    assert isinstance(answer, MapAnswer)
    answer.ended = lambda failure: None
    total = len(source)
    head = Head(206, headers={"content-range": f"bytes {answer.start}-{answer.stop - 1}/{total}",
                              "etag": '"e"'})  # fmt: skip
    assert answer.head(head)
    answer.body(source[answer.start : answer.stop])
    answer.end(None)
    return answer


def test_a_map_walked_header_by_header_is_saved_and_a_new_run_goes_on_where_it_was(
    uploads: Uploads,  # noqa: F811
) -> None:
    source = tar_of(6)
    link = Link("sa_000001.tar", "https://cdn.example/sa_000001.tar")
    file_id = uploads.run.store.register("wds/sa_000001.tar", "sa_000001.tar").id
    task = Task(link=link, id=file_id, generation=0, failures=uploads.config.failure_account())
    body = task.body = RepackBody(uploads, "wds/sa_000001.tar", output="wds")
    for _ in range(4):  # four headers read: the walk is killed there
        answer_with(body, task, source)
    uploads.save()
    saved = load_map(uploads.run.store, file_id)
    assert saved is not None and not saved.complete
    assert [m.name for m in saved.members] == ["sa_0.jpg", "sa_0.json", "sa_1.jpg", "sa_1.json"]
    assert {m.mtime for m in saved.members} == {MTIME}
    again = RepackBody(uploads, "wds/sa_000001.tar", output="wds")
    again.resume_map(task, saved)
    first = answer_with(again, task, source)
    assert first.start == saved.next  # not from byte 0
    while again.plan is None:
        answer_with(again, task, source)
    assert again.out is not None and again.out.size == len(wds_of(source))


MTIME = 1_680_566_400


def tar_of(pairs: int) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.GNU_FORMAT) as archive:
        for number in range(pairs):
            for kind in ("jpg", "json"):
                info = tarfile.TarInfo(f"sa_{number}.{kind}")
                info.size, info.mtime = 700 + number, MTIME
                archive.addfile(info, io.BytesIO(bytes(info.size)))
    return buffer.getvalue()


def wds_of(source: bytes) -> bytes:
    with tarfile.open(fileobj=io.BytesIO(source)) as archive:
        members = [(m.name, archive.extractfile(m).read()) for m in archive]  # type: ignore[union-attr]
    return wds_tar(members, mtime=MTIME)
