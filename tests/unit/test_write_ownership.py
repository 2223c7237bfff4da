"""Write ownership: bytes only ever land where the current plan of the current version
of their own file says, whatever the interleaving.

The real scheduler (:class:`Engine`), connections and receivers run without a network:
Hypothesis plays the transport. It chooses, step by step, which connection starts its
next request, which answer gets its head or its next chunk, which one ends or drops, and
when a file changes version on the server (a new ETag, other bytes) while answers of the
old version are still streaming. After every step, every byte the plan counts as written
must be the current version's byte at that offset, in that file: a stale connection of an
old version, of a stolen range or of another file never writes where it does not own.
The disk worker's jobs (a file opened, sized and allocated; the store told of a restart)
run when Hypothesis says, too: a file's bytes may keep arriving while its disk catches up.
"""

from __future__ import annotations

import functools
import hashlib
import re
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from unittest import mock

from hypothesis import event, given, settings
from hypothesis import strategies as st

from sa1b.config import DownloadConfig
from sa1b.engine import Engine
from sa1b.engine.tasks import Task
from sa1b.errors import TruncatedBodyError
from sa1b.links import Link
from sa1b.net.curl import Request
from sa1b.net.heads import Head
from sa1b.progress import NullListener
from sa1b.retry import RetryPolicy
from sa1b.segments import Segment, SegmentPlan
from sa1b.store.state import StateStore

KiB = 1024
SIZES = {"sa_000000.tar": 300 * KiB, "sa_000001.tar": 190 * KiB}
CONNECTIONS = 4


@functools.cache
def content(name: str, version: int) -> bytes:
    """The bytes of ``name`` at ``version``: different for every file and version."""
    seed = hashlib.sha256(f"{name}/{version}".encode()).digest()
    blocks = (
        hashlib.sha256(seed + i.to_bytes(4, "big")).digest() for i in range(SIZES[name] // 32 + 1)
    )
    return b"".join(blocks)[: SIZES[name]]


def version_of(task: Task) -> int:
    """The version a task is downloading, from the ETag it took (``"name-version"``)."""
    assert task.validator.etag is not None
    return int(task.validator.etag.strip('"').rsplit("-", 1)[1])


@dataclass
class Answer:
    """A request in flight: the version it streams is fixed when its head is sent."""

    slot: int
    request: Request
    name: str
    start: int
    end: int
    version: int | None = None
    body: bytes = b""
    sent: int = 0


class SteppedDisk:
    """The disk worker, run a job at a time when the test says."""

    def __init__(self) -> None:
        self.jobs: list[Callable[[], None]] = []

    def submit(self, key: object, job: Callable[[], None]) -> None:
        self.jobs.append(job)  # one order for all: one of the orders the worker may take

    def step(self) -> None:
        if self.jobs:
            self.jobs.pop(0)()

    def settle(self) -> None:
        while self.jobs:
            self.step()


@dataclass
class World:
    engine: Engine
    clock: list[float]
    disk: SteppedDisk
    versions: dict[str, int] = field(default_factory=lambda: dict.fromkeys(SIZES, 0))
    answers: list[Answer] = field(default_factory=list)
    steals: int = 0

    def idle(self) -> list[int]:
        """The transport's slots without a request in flight."""
        busy = {a.slot for a in self.answers}
        return [slot for slot in range(CONNECTIONS) if slot not in busy]

    def start(self, slot: int) -> None:
        request = self.engine.scheduler.next_request(slot)  # as the transport asks
        if request is None:
            return
        name = request.url.rsplit("/", 1)[1]
        ranges = dict(h.split(": ", 1) for h in request.headers)
        first, last = map(int, re.fullmatch(r"bytes=(\d+)-(\d+)", ranges["Range"]).groups())  # type: ignore[union-attr]
        self.answers.append(Answer(slot, request, name, first, last + 1))

    def head(self, answer: Answer) -> None:
        version = self.versions[answer.name]
        data, etag = content(answer.name, version), f'"{answer.name}-{version}"'
        size = len(data)
        if_range = dict(h.split(": ", 1) for h in answer.request.headers).get("If-Range")
        answer.version = version
        if if_range is not None and if_range != etag:  # RFC 9110: the whole new object
            answer.body, head = data, Head(200, "OK", {"content-length": str(size), "etag": etag})
        else:
            end = min(answer.end, size)
            answer.body = data[answer.start : end]
            head = Head(206, "Partial Content", {
                "content-range": f"bytes {answer.start}-{end - 1}/{size}",
                "content-length": str(end - answer.start), "etag": etag,
            })  # fmt: skip
        if not answer.request.receiver.head(head):
            self.end(answer)

    def chunk(self, answer: Answer, length: int) -> None:
        piece = answer.body[answer.sent : answer.sent + length]
        answer.sent += len(piece)
        if not answer.request.receiver.body(piece) or answer.sent == len(answer.body):
            self.end(answer)

    def end(self, answer: Answer, *, dropped: bool = False) -> None:
        self.answers.remove(answer)
        error = TruncatedBodyError("dropped", name=answer.name) if dropped else None
        answer.request.receiver.end(error)
        self.clock[0] += 60  # any backoff has passed by the next step

    def check(self) -> None:
        """Every byte the plan counts as written is the task's own version's byte."""
        for task in self.engine.run_state.tasks:
            if task.plan is None or task.fd is None:
                continue
            expected = content(task.name, version_of(task))
            data = self.engine.config.paths.partial(task.name).read_bytes()
            for start, end in task.plan.written():
                assert data[start:end] == expected[start:end], (task.name, start, end)


@contextmanager
def new_world() -> Iterator[World]:
    """A fresh engine over a fresh folder (one per Hypothesis example)."""
    steal = SegmentPlan.steal

    def counted(plan: SegmentPlan) -> Segment | None:
        segment = steal(plan)
        world.steals += segment is not None
        return segment

    with (
        tempfile.TemporaryDirectory() as directory,
        _engine(Path(directory)) as world,
        mock.patch.object(SegmentPlan, "steal", counted),
    ):
        yield world


@contextmanager
def _engine(tmp_path: Path) -> Iterator[World]:
    config = DownloadConfig(
        out=tmp_path, connections=CONNECTIONS, extract=None, first_request=40 * KiB,
        min_request=16 * KiB, max_request=64 * KiB, min_steal=8 * KiB,
        retry=RetryPolicy(attempts=1000),
    )  # fmt: skip
    links = [Link(name, f"http://127.0.0.1:9/{name}") for name in SIZES]
    clock = [0.0]
    with StateStore(tmp_path) as store:
        engine = Engine(links, config, store, listener=NullListener(), clock=lambda: clock[0])
        disk = SteppedDisk()
        engine.files.disk = disk  # type: ignore[assignment]
        yield World(engine, clock, disk)
        engine.close_files()
        engine.journal.close()


STEPS = st.lists(
    st.tuples(
        st.sampled_from(
            ["start", "start", "head", "chunk", "chunk", "chunk", "end", "drop", "change", "disk"]
        ),
        st.integers(0, 2**16),
    ),
    min_size=40,
    max_size=200,
)


@settings(max_examples=500, deadline=None)
@given(steps=STEPS)
def test_bytes_land_only_where_the_current_plan_says(steps: list[tuple[str, int]]) -> None:
    with new_world() as world:
        play(world, steps)


def play(world: World, steps: list[tuple[str, int]]) -> None:
    for action, pick in steps:
        waiting = [a for a in world.answers if a.version is None]
        streaming = [a for a in world.answers if a.version is not None]
        if action == "start" and world.idle():
            world.start(world.idle()[pick % len(world.idle())])
        elif action == "head" and waiting:
            world.head(waiting[pick % len(waiting)])
        elif action == "chunk" and streaming:
            world.chunk(streaming[pick % len(streaming)], 1 + pick % (48 * KiB))
        elif action == "end" and streaming:  # a server that ends the body early
            world.end(streaming[pick % len(streaming)])
        elif action == "drop" and world.answers:
            world.end(world.answers[pick % len(world.answers)], dropped=True)
        elif action == "change":
            name = sorted(SIZES)[pick % len(SIZES)]
            world.versions[name] += 1
        elif action == "disk":
            world.disk.step()
        world.check()
    # Then an honest, steady server and disk: every file completes, in its latest version.
    for _ in range(10_000):
        world.disk.settle()
        for slot in world.idle():
            world.start(slot)
        if not world.answers and not world.disk.jobs:
            break
        for answer in list(world.answers):
            if answer.version is None:
                world.head(answer)
            elif answer in world.answers:
                world.chunk(answer, 64 * KiB)
        world.check()
    event(f"restarts: {max(t.generation for t in world.engine.run_state.tasks)}")
    event(f"steals: {'yes' if world.steals else 'no'}")
    for task in world.engine.run_state.tasks:
        assert task.state in ("verifying", "failed"), (task.name, task.state)
        if task.state == "verifying":  # whole, in one version (a later change came too late)
            data = world.engine.config.paths.partial(task.name).read_bytes()
            assert data == content(task.name, version_of(task))


def test_a_stale_answer_ending_after_a_restart_writes_nothing() -> None:
    """The sharpest interleaving, spelled out: an answer of the old version holds gathered
    bytes when the file restarts; the new version's answer writes the same bytes first;
    then the old answer ends (its last bytes would be flushed now)."""
    name = "sa_000000.tar"
    with new_world() as world:
        first = _request_of(world, name)
        world.head(first)  # the first answer: version 0, bytes 0-40 KiB
        world.disk.settle()  # its file is allocated: its bytes are no longer held
        world.chunk(first, 8 * KiB)  # gathered, not yet written (blocks are 128 KiB)
        world.versions[name] = 1
        second = _request_of(world, name)  # a range of version 0, If-Range "…-0"
        world.head(second)  # 200: the whole version 1, so the file restarts
        newer = _request_of(world, name)  # version 1, from byte 0
        world.head(newer)
        world.chunk(newer, 40 * KiB)
        world.end(first)  # the old answer ends: its 8 KiB must land nowhere
        world.check()
        data = world.engine.config.paths.partial(name).read_bytes()
        assert data[: 8 * KiB] == content(name, 1)[: 8 * KiB]


def _request_of(world: World, name: str) -> Answer:
    """Start idle connections until one asks for ``name`` (letting the disk catch up
    while none can); return its answer."""
    for _ in range(3):
        for slot in world.idle():
            world.start(slot)
            mine = [a for a in world.answers if a.name == name and a.version is None]
            if mine:
                return mine[-1]
        world.disk.settle()
    raise AssertionError(f"no connection took {name}")
