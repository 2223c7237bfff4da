"""Extractors over a long run: what a collected extraction held is let go."""

from __future__ import annotations

import gc
import io
import sys
import tarfile
import threading
from pathlib import Path

from sa1b.extract.extractors import Extractors, Superseded
from sa1b.extract.shard import ExtractReport


def small_tar(path: Path, members: int) -> int:
    with tarfile.open(path, "w") as archive:
        for index in range(members):
            data = f"member {index}\n".encode()
            info = tarfile.TarInfo(f"sa_{index}.json")
            info.size = len(data)
            archive.addfile(info, io.BytesIO(data))
    return path.stat().st_size


def no_wait(end: int) -> None:
    return None


def test_collected_extractions_and_their_threads_are_let_go(tmp_path: Path) -> None:
    extractors = Extractors(staged=(tmp_path / "staging").joinpath, layout="shard")
    for shard in range(30):  # a run of many shards, one after another
        name = f"sa_{shard:06d}.tar"
        tar = tmp_path / name
        size = small_tar(tar, members=20)
        extractors.start(
            name, generation=0, path=tar, size=size, wait=no_wait, digest_algorithm=None
        )
        report = extractors.result(name, 0)
        assert isinstance(report, ExtractReport) and len(report.members) == 20
        # Only this test holds the report of every member (and getrefcount's argument):
        # the extractors kept it for the whole run, 300 bytes a member (soak benchmark).
        assert sys.getrefcount(report) == 2
        assert extractors.result(name, 0) is None  # collected once
    gc.collect()
    threads = [
        t
        for t in gc.get_objects()
        # type(), not isinstance(): that reads __class__ of every object in the process,
        # and some warn when asked (torch's deprecated ones, once a test imported torch).
        if type(t) is threading.Thread and t.name.startswith("sa1b-x-")
    ]
    assert len(threads) <= 1  # the last one, ended; not one per shard
    extractors.join()


def test_an_extraction_that_supersedes_another_starts_once_the_old_one_has_ended(
    tmp_path: Path,
) -> None:
    """Both use the shard's one staging folder: the new one must not start it afresh
    while the old one still writes there (the old one ends at its next wait)."""
    extractors = Extractors(staged=(tmp_path / "staging").joinpath, layout="shard")
    name, tar = "sa_000000.tar", tmp_path / "sa_000000.tar"
    size = small_tar(tar, members=5)
    old_waiting, let_go, old_ending = threading.Event(), threading.Event(), threading.Event()
    new_began: list[bool] = []  # each look of the new one: had the old one ended?
    looked = threading.Event()

    def old_wait(end: int) -> None:  # the old download restarted: it will never come
        old_waiting.set()
        let_go.wait(30)
        old_ending.set()
        raise Superseded

    def new_wait(end: int) -> None:
        new_began.append(old_ending.is_set())
        looked.set()

    extractors.start(name, generation=0, path=tar, size=size, wait=old_wait, digest_algorithm=None)
    assert old_waiting.wait(30)
    extractors.start(name, generation=1, path=tar, size=size, wait=new_wait, digest_algorithm=None)
    looked.wait(1.0)  # a chance for a new one that did not wait to show it (none with the fix)
    let_go.set()
    report = extractors.result(name, 1)
    assert isinstance(report, ExtractReport) and len(report.members) == 5
    assert new_began and all(new_began)  # not one look at its bytes before the old one ended
    extractors.join()
