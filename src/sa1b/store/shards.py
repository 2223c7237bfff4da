"""What state each file of an output folder is in: one reading of what the store records.

A file's record (:class:`~sa1b.records.FileRecord`) and, for a shard walked by range
reads (``--only``), its walk (:class:`~sa1b.store.walks.WalkRecord`) say together how
far it got. :func:`shard_state` reads them once, in one order, for ``sa1b status``,
:func:`sa1b.api.plan` and :func:`sa1b.api.verify`. Pure: values in, a value out.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from sa1b.records import FileRecord
from sa1b.store.walks import WalkRecord

State = Literal["extracted", "done", "walked", "partial", "failed", "expired", "pending"]
"""``extracted``: a shard in its layout (its tar kept or not); ``done``: the file
published as it is; ``walked``: a shard's members fetched by ``--only`` alone, its walk
at the end; ``partial``: some bytes of the whole file on disk; ``failed``, ``expired``:
the last run gave it up; ``pending``: nothing of it yet (or a walk under way)."""


@dataclass(frozen=True, slots=True)
class ShardState:
    """One file of an output folder, as far as it got."""

    record: FileRecord
    walk: WalkRecord | None
    """Its walk by range reads (``--only``), if one began, whatever the state."""
    state: State

    @property
    def name(self) -> str:
        return self.record.name

    @property
    def size(self) -> int | None:
        return self.record.size

    @property
    def bytes(self) -> int:
        """The bytes of the whole file on disk (a walk's members are not counted)."""
        return self.record.done_bytes

    @property
    def finished(self) -> bool:
        """Whether the whole file is here, as it is or extracted: nothing to fetch."""
        return self.state in ("extracted", "done")


def shard_state(record: FileRecord, walk: WalkRecord | None = None) -> ShardState:
    """The state of the file ``record`` is of; ``walk`` is its walk, if one began.

    The record comes first: an extraction, then any byte of the whole file (recorded,
    or in the crash journal folded into it), then a failure; the walk counts only for a
    file the whole download has not touched.
    """
    status = record.status
    state: State
    if record.extracted:
        state = "extracted"
    elif status == "partial" or (status == "pending" and record.done_bytes):
        state = "partial"
    elif status == "pending" and walk is not None and walk.complete:
        state = "walked"
    else:
        state = status
    return ShardState(record, walk, state)
