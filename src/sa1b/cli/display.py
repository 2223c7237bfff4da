"""Show a download's progress: plain lines, or nothing (the live display is in ``live``)."""

from __future__ import annotations

import time
from types import TracebackType
from typing import IO, Protocol

from sa1b.progress import FileOutcome, ProgressListener, Snapshot
from sa1b.sizes import NOMINAL_SHARD_SIZE
from sa1b.units import human_bytes, human_duration

ACTIVE_BARS = 6


def counts_line(snapshot: Snapshot) -> str:
    """Files by state (failed and expired only once there are some), and the
    connections open now (they adapt while the run goes)."""
    parts = [f"{snapshot.count('done')}/{len(snapshot.files)} files done"]
    parts += [f"{n} {state}" for state in ("failed", "expired") if (n := snapshot.count(state))]
    return f"{', '.join(parts)}; {snapshot.connections} conn"


def waiting_text(snapshot: Snapshot) -> str | None:
    """When files wait out a retry delay: the one due first, what for and until when,
    and how many more wait."""
    waiting = sorted(
        (f for f in snapshot.files if f.retry_at is not None), key=lambda f: f.retry_at or 0
    )
    if not waiting:
        return None
    more = f" ({len(waiting) - 1} more files waiting)" if len(waiting) > 1 else ""
    return f"{waiting[0].waiting_note}{more}"


class Display(ProgressListener, Protocol):
    """A progress listener that is also a context manager: started before the run,
    stopped after it (a live display then leaves its last frame)."""

    def __enter__(self) -> Display: ...

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None: ...


class PlainDisplay:
    """A line every ``interval`` seconds, for logs and pipes."""

    def __init__(self, stream: IO[str], *, interval: float = 10.0) -> None:
        self.stream = stream
        self.interval = interval
        self._last = 0.0

    def __enter__(self) -> PlainDisplay:
        return self

    def __exit__(self, *exc: object) -> None:
        pass

    def update(self, snapshot: Snapshot) -> None:
        now = time.monotonic()
        if now - self._last < self.interval:
            return
        self._last = now
        done, waiting = snapshot.done_bytes, waiting_text(snapshot)
        if all(f.size is None for f in snapshot.files):  # no answer yet: no total to show
            what = waiting or "waiting for the first answers"
            print(f"sa1b: {what}; {counts_line(snapshot)}", file=self.stream, flush=True)
            return
        total = snapshot.total_bytes(guess=NOMINAL_SHARD_SIZE)
        about = "" if all(f.size is not None for f in snapshot.files) else "about "
        eta = (total - done) / snapshot.speed if snapshot.speed > 0 else None
        eta_text = human_duration(eta) if eta is not None else "?"
        print(
            f"sa1b: {human_bytes(done)} of {about}{human_bytes(total)} "
            f"({100 * done / max(total, 1):.0f}%), {human_bytes(snapshot.speed)}/s, "
            f"ETA {eta_text}; {counts_line(snapshot)}",
            file=self.stream,
            flush=True,
        )
        if waiting:
            print(f"sa1b: {waiting}", file=self.stream, flush=True)

    def finished(self, outcome: FileOutcome) -> None:
        if outcome.state != "done":
            print(f"sa1b: {outcome.name}: {outcome.state}: {outcome.message}", file=self.stream)


class QuietDisplay:
    """Nothing while running (``--quiet``)."""

    def __enter__(self) -> QuietDisplay:
        return self

    def __exit__(self, *exc: object) -> None:
        pass

    def update(self, snapshot: Snapshot) -> None:
        pass

    def finished(self, outcome: FileOutcome) -> None:
        pass
