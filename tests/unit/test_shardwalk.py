"""The walked shards' bookkeeping (sa1b.engine.shardwalk): a staged member counts only
when whole, a piece of a voided generation is never written, a member fetched in parts
is renamed into place once whole, no request starts while the disk is behind."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from sa1b.engine import shardwalk
from sa1b.engine.shardwalk import WalkedShard, WalkSource, parts_of
from sa1b.links import Link
from sa1b.retry import FailureAccount, RetryPolicy
from sa1b.tarformat import BLOCK
from sa1b.tarwalk import CHUNK, Entry, Piece, TarWalk


def setup(tmp_path: Path) -> tuple[WalkSource, WalkedShard, list[WalkedShard]]:
    link = Link(name="sa_000000.tar", url="http://127.0.0.1/sa_000000.tar")
    failures = FailureAccount(RetryPolicy(), floor=4096)
    shard = WalkedShard(link, 1, tmp_path / "staging", lambda n: True, "shard", failures)
    published: list[WalkedShard] = []
    source = WalkSource([shard], on_ready=published.append, on_end=print)
    return source, shard, published


def run_jobs(source: WalkSource) -> None:
    """What the run's thread does at a tick: the queued writes, one after another."""
    for job in source.take_jobs():
        job()


def test_a_member_is_staged_once_every_piece_is_written(tmp_path: Path) -> None:
    source, shard, _ = setup(tmp_path)
    entry = Entry("sa_1.json", 512, 10)
    with source.lock:
        source.stage(shard, Piece(entry, 5, b"fghij"))
        source.stage(shard, Piece(entry, 0, b"abcde"))
    first, second = source.take_jobs()
    first()
    assert shard.staged == set() and shard.writing == 1
    second()
    assert shard.staged == {"sa_1.json"} and shard.writing == 0
    assert (shard.staging / "sa_1.json").read_bytes() == b"abcdefghij"


def test_a_piece_of_a_voided_generation_writes_nothing(tmp_path: Path) -> None:
    source, shard, _ = setup(tmp_path)
    entry = Entry("sa_1.json", 512, 5)
    with source.lock:
        source.stage(shard, Piece(entry, 0, b"old!!"))
        source.start_over(shard)  # a new version: the staging folder is void
    run_jobs(source)
    assert not (shard.staging / "sa_1.json").exists()
    assert shard.staged == set() and shard.written == {} and shard.writing == 0


def test_a_member_in_parts_is_renamed_into_place_once_whole(tmp_path: Path) -> None:
    source, shard, _ = setup(tmp_path)
    entry = Entry("sa_1.jpg", 512, CHUNK + 3)
    parts = parts_of(entry)
    assert [(p.at, p.length) for p in parts] == [(0, CHUNK), (CHUNK, 3)]
    with source.lock:
        source.stage(shard, Piece(entry, CHUNK, b"xyz"), parts=True)
    run_jobs(source)
    assert not (shard.staging / "sa_1.jpg").exists()  # never a whole-sized file with a hole
    assert (shard.staging / "sa_1.jpg.partial").stat().st_size == CHUNK + 3
    with source.lock:
        source.stage(shard, Piece(entry, 0, b"a" * CHUNK), parts=True)
    run_jobs(source)
    assert (shard.staging / "sa_1.jpg").read_bytes() == b"a" * CHUNK + b"xyz"
    assert shard.staged == {"sa_1.jpg"}


def test_progress_counts_the_bytes_a_walk_got_through_and_whole_parts(tmp_path: Path) -> None:
    """What the shard's account of failures weighs: bytes, including those of a header
    still incomplete (a request cut mid-header kept them), never a count of members."""
    _, shard, _ = setup(tmp_path)
    assert shard.progress == 0
    shard.walk = TarWalk(shard.name, 10 * 1024, lambda n: True, layout="shard")
    shard.walk.feed(0, b"abc")  # three bytes of the first header
    assert shard.progress == 3
    shard.parts_fetched = 1000
    assert shard.progress == 1003
    shard.walk = TarWalk(shard.name, 10 * 1024, lambda n: True, layout="shard", start=None)
    assert shard.progress == 10 * 1024 + 1000  # walked to the end


def behind(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[WalkSource, WalkedShard]:
    """A walk whose pieces waiting for the disk fill its budget: 10 bytes of 8."""
    monkeypatch.setattr(shardwalk, "HELD_BUDGET", 8)
    source, shard, _ = setup(tmp_path)
    entry = Entry("sa_1.jpg", 512, 10)
    with source.lock:
        source.stage(shard, Piece(entry, 0, b"abcde"))
        source.stage(shard, Piece(entry, 5, b"fghij"))
    return source, shard


def test_no_request_starts_while_the_disk_is_behind(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    source, shard = behind(tmp_path, monkeypatch)
    assert source.next_request(0) is None
    run_jobs(source)
    assert (shard.staging / "sa_1.jpg").read_bytes() == b"abcdefghij"
    assert source.next_request(0) is not None


def test_no_request_starts_while_the_requests_in_flight_fill_the_budget(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(shardwalk, "HELD_BUDGET", BLOCK)
    link = Link(name="sa_000001.tar", url="http://127.0.0.1/sa_000001.tar")
    source, _, _ = setup(tmp_path)
    failures = FailureAccount(RetryPolicy(), floor=4096)
    second = WalkedShard(link, 2, tmp_path / "staging-2", lambda n: True, "shard", failures)
    source.shards.append(second)
    source.ready.append(second)
    request = source.next_request(0)  # the first shard's first header: BLOCK bytes
    assert request is not None
    assert source.next_request(1) is None
    request.receiver.end(None)  # an answer without a byte: a failure, the bytes let go
    assert source.next_request(1) is not None


def test_a_stream_waits_until_the_disk_catches_up_or_the_run_stops(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    source, shard = behind(tmp_path, monkeypatch)
    source.stopping = True
    with source.lock:
        source.wait_for_disk()  # the run stops: no waiting, nothing written yet
    assert not (shard.staging / "sa_1.jpg").exists()
    source.stopping = False
    writer = threading.Thread(target=run_jobs, args=(source,))
    with source.lock:
        writer.start()  # it writes once the wait lets go of the lock
        source.wait_for_disk()  # until the bytes waiting are back within the budget
        assert (shard.staging / "sa_1.jpg").read_bytes().startswith(b"abcde")
    writer.join()
