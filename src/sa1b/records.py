"""What the state store records, as values: one file, one run. Pure (the store that
reads and writes them is :mod:`sa1b.store.state`)."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Literal

from sa1b.layout import LAYOUTS
from sa1b.ranges import RangeSet
from sa1b.sizes import MAX_FILE_SIZE
from sa1b.versions import Validator

Status = Literal["pending", "partial", "done", "failed", "expired"]
STATUSES = frozenset(("pending", "partial", "done", "failed", "expired"))


@dataclass(frozen=True, slots=True)
class FileRecord:
    """What the store knows of one file."""

    id: int
    name: str
    object_key: str
    size: int | None
    validator: Validator
    generation: int
    status: Status
    error: str | None
    ranges: RangeSet
    extracted: str | None = None
    """The layout the shard was extracted into, once all of it is in place."""

    @property
    def consistent(self) -> bool:
        """Whether the record could have been written by sa1b (else it is not trusted)."""
        size = self.size
        return (
            self.status in STATUSES
            and self.generation >= 0
            and (size is None or 0 < size <= MAX_FILE_SIZE)
            and (
                size is not None
                or (not self.ranges and self.status in ("pending", "failed", "expired"))
            )
            and all(0 <= start < end <= (size or 0) for start, end in self.ranges)
            and (self.extracted is None or (self.extracted in LAYOUTS and size is not None))
        )

    @property
    def progress(self) -> tuple[int, int]:
        """How far the file got, for comparing two stores' records of it: finished
        (done or extracted) first, then the most bytes recorded."""
        if self.status == "done" or self.extracted:
            return (2, 0)
        return (1, self.ranges.total) if self.ranges else (0, 0)

    @property
    def done_bytes(self) -> int:
        return self.size if self.status == "done" and self.size else self.ranges.total


def furthest(records: Iterable[FileRecord]) -> dict[str, FileRecord]:
    """Each file once, by name: the record of it that got furthest (:attr:`FileRecord.progress`),
    the first of equals."""
    chosen: dict[str, FileRecord] = {}
    for record in records:
        known = chosen.get(record.name)
        if known is None or record.progress > known.progress:
            chosen[record.name] = record
    return chosen


@dataclass(frozen=True, slots=True)
class RunRecord:
    """One run of ``sa1b download``: when, how many bytes, and how it ended."""

    id: int
    started_at: float
    finished_at: float | None
    bytes: int
    outcome: str | None

    @property
    def speed(self) -> float | None:
        """Mean bytes per second, once the run has finished."""
        if self.finished_at is None or self.finished_at <= self.started_at:
            return None
        return self.bytes / (self.finished_at - self.started_at)
