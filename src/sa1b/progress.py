"""What a download reports while it runs: snapshots for a display, outcomes per file.

The library never prints. The engine hands a :class:`Snapshot` to a
:class:`ProgressListener` a few times a second and each file's :class:`FileOutcome`
when it ends; the default listener does nothing. Only the CLI draws.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal, Protocol

FileState = Literal["pending", "opening", "active", "verifying", "done", "failed", "expired"]
FINAL_STATES = ("done", "failed", "expired")


@dataclass(frozen=True, slots=True)
class FileProgress:
    """One file as it stands: bytes on disk, size once known, connections on it."""

    name: str
    state: FileState
    size: int | None
    done: int
    connections: int
    retry_at: float | None = None
    """While the file waits out a retry delay: when (``time.time()``) it asks again."""
    retry_reason: str = ""
    """Why it waits: ``the server asked to retry after 300 s``, or the failure."""

    @property
    def waiting_note(self) -> str | None:
        """``sa_000001.tar: the server asked ...; waiting until 09:14:05``, while it waits."""
        if self.retry_at is None:
            return None
        return waiting_note(self.name, self.retry_reason, self.retry_at)


def waiting_note(name: str, reason: str, until: float) -> str:
    """What a file waits for and until when (local time), for the screen and the log."""
    return f"{name}: {reason}; waiting until {time.strftime('%H:%M:%S', time.localtime(until))}"


@dataclass(frozen=True, slots=True)
class Snapshot:
    """The whole run as it stands; ``fetched`` counts bytes received in this run and
    ``connections`` the requests in flight now."""

    files: tuple[FileProgress, ...]
    fetched: int
    elapsed: float
    speed: float
    connections: int = 0

    @property
    def done_bytes(self) -> int:
        return sum(f.done for f in self.files)

    def total_bytes(self, *, guess: int) -> int:
        """Total size; a size not known yet counts as the mean of the known ones, or
        as ``guess`` while none is known."""
        known = [f.size for f in self.files if f.size is not None]
        stand_in = sum(known) // len(known) if known else guess
        return sum(known) + stand_in * (len(self.files) - len(known))

    def count(self, state: FileState) -> int:
        return sum(1 for f in self.files if f.state == state)


@dataclass(frozen=True, slots=True)
class FileOutcome:
    """How one file ended in this run."""

    name: str
    state: FileState
    size: int | None = None
    message: str | None = None
    hint: str | None = None
    source: str | None = None
    """The mirror it came from (its base URL), when not from its own link."""


class ProgressListener(Protocol):
    """What a download reports to (the CLI's displays; :class:`NullListener` by default).
    Called from the engine's threads: keep each call short, and never raise."""

    def update(self, snapshot: Snapshot) -> None:
        """The run as it stands, a few times a second, and once more at its end."""
        ...

    def finished(self, outcome: FileOutcome) -> None:
        """One file ended in this run (done, failed or expired), once per file."""
        ...


class NullListener:
    """The default: hears everything, says nothing."""

    def update(self, snapshot: Snapshot) -> None:
        pass

    def finished(self, outcome: FileOutcome) -> None:
        pass


def combine(parts: Sequence[Snapshot], *, elapsed: float) -> Snapshot:
    """Several runs' snapshots as one (the tasks of a cluster run): their files side by
    side, their bytes, speeds and connections added up."""
    return Snapshot(
        files=tuple(file for part in parts for file in part.files),
        fetched=sum(part.fetched for part in parts),
        elapsed=elapsed,
        speed=sum(part.speed for part in parts),
        connections=sum(part.connections for part in parts),
    )
