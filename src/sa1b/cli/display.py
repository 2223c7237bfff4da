"""Show a download's progress: rich bars on a terminal, plain lines elsewhere."""

from __future__ import annotations

import time
from typing import IO

from rich.console import Console
from rich.progress import (
    BarColumn,
    DownloadColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeRemainingColumn,
    TransferSpeedColumn,
)

from sa1b.api import NOMINAL_SHARD_SIZE
from sa1b.cli.units import human_bytes, human_duration
from sa1b.progress import FileOutcome, Snapshot

ACTIVE_BARS = 6


def _counts(snapshot: Snapshot) -> str:
    return (
        f"files {snapshot.count('done')}/{len(snapshot.files)} done, "
        f"{snapshot.count('failed')} failed, {snapshot.count('expired')} expired"
    )


class LiveDisplay:
    """One overall bar (bytes, speed, ETA, file counts) and bars for a few active files."""

    def __init__(self, console: Console) -> None:
        self.console = console
        self.progress = Progress(
            TextColumn("{task.description}", justify="left"),
            BarColumn(bar_width=None),
            DownloadColumn(binary_units=True),
            TransferSpeedColumn(),
            TimeRemainingColumn(),
            console=console,
            transient=False,
            refresh_per_second=8,
        )
        self._overall = self.progress.add_task("total", total=None)
        self._bars: dict[str, TaskID] = {}

    def __enter__(self) -> LiveDisplay:
        self.progress.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.progress.stop()

    def update(self, snapshot: Snapshot) -> None:
        total = snapshot.total_bytes(guess=NOMINAL_SHARD_SIZE)
        self.progress.update(
            self._overall,
            total=total,
            completed=snapshot.done_bytes,
            description=f"total ({_counts(snapshot)})",
        )
        active = [f for f in snapshot.files if f.state in ("active", "verifying")]
        for progress in active[:ACTIVE_BARS]:
            if progress.name not in self._bars:
                self._bars[progress.name] = self.progress.add_task(
                    progress.name, total=progress.size
                )
            label = f"{progress.name} ({progress.connections} conn)"
            if progress.state == "verifying":
                label = f"{progress.name} (verifying)"
            self.progress.update(
                self._bars[progress.name],
                total=progress.size,
                completed=progress.done,
                description=label,
            )
        shown = {f.name for f in active[:ACTIVE_BARS]}
        for name in [n for n in self._bars if n not in shown]:
            self.progress.remove_task(self._bars.pop(name))

    def finished(self, outcome: FileOutcome) -> None:
        if outcome.state != "done":
            self.console.print(f"[red]{outcome.name}: {outcome.state}[/]: {outcome.message}")


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
        total = snapshot.total_bytes(guess=NOMINAL_SHARD_SIZE)
        done = snapshot.done_bytes
        eta = (total - done) / snapshot.speed if snapshot.speed > 0 else None
        eta_text = human_duration(eta) if eta is not None else "?"
        print(
            f"sa1b: {human_bytes(done)} of {human_bytes(total)} "
            f"({100 * done / max(total, 1):.0f}%), {human_bytes(snapshot.speed)}/s, "
            f"ETA {eta_text}; {_counts(snapshot)}",
            file=self.stream,
            flush=True,
        )

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
