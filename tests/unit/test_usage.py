"""The space a download's files take, as du counts it: allocated blocks of partial files
(preallocated whole) and published tars; an extracted shard counts its tar's size."""

from __future__ import annotations

import os
from pathlib import Path

from sa1b.ranges import RangeSet
from sa1b.records import FileRecord
from sa1b.store.paths import OutputPaths
from sa1b.store.usage import in_flight_taken, space_taken
from sa1b.versions import Validator

MiB = 1024 * 1024


def _record(name: str, size: int | None, extracted: str | None = None) -> FileRecord:
    return FileRecord(1, name, name, size, Validator(), 0, "partial", None, RangeSet(), extracted)


def test_each_file_counts_its_blocks_or_its_extracted_size(tmp_path: Path) -> None:
    paths = OutputPaths.of(tmp_path)
    paths.partials.mkdir(parents=True)
    partial = paths.partial("sa_000000.tar")
    with partial.open("wb") as handle:
        os.posix_fallocate(handle.fileno(), 0, 3 * MiB)  # preallocated, nothing written
    paths.tars.mkdir()
    final = paths.final("sa_000001.tar")
    final.write_bytes(b"x" * MiB)
    allocated = partial.stat().st_blocks * 512
    assert allocated >= 3 * MiB  # what du shows of a preallocated file
    assert space_taken(paths, _record("sa_000000.tar", 3 * MiB)) == allocated
    assert space_taken(paths, _record("sa_000001.tar", MiB)) == final.stat().st_blocks * 512
    assert space_taken(paths, _record("sa_000002.tar", 5 * MiB, extracted="shard")) == 5 * MiB
    assert space_taken(paths, _record("sa_000003.tar", None)) == 0  # nothing on disk yet


def test_a_file_in_flight_counts_its_partial_file_and_its_members_staged(tmp_path: Path) -> None:
    paths = OutputPaths.of(tmp_path)
    assert in_flight_taken(paths, "sa_000000.tar") == 0  # nothing on disk yet
    members = paths.staged("sa_000000.tar") / "sa_000000"
    members.mkdir(parents=True)
    (members / "sa_1.jpg").write_bytes(b"x" * MiB)
    (members / "sa_1.json").write_bytes(b"{}")
    staged = sum(p.stat().st_blocks * 512 for p in members.iterdir())
    assert staged >= MiB
    assert in_flight_taken(paths, "sa_000000.tar") == staged
    paths.partials.mkdir(parents=True)
    paths.partial("sa_000000.tar").write_bytes(b"y" * MiB)
    partial = paths.partial("sa_000000.tar").stat().st_blocks * 512
    assert in_flight_taken(paths, "sa_000000.tar") == staged + partial
    assert in_flight_taken(paths, "sa_000001.tar") == 0  # another shard's folder is its own
