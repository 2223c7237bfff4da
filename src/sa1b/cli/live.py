"""The live terminal display: rich bars for the whole run and a few active files."""

from __future__ import annotations

from rich.console import Console
from rich.markup import escape
from rich.progress import (
    BarColumn,
    DownloadColumn,
    Progress,
    ProgressColumn,
    Task,
    TaskID,
    TextColumn,
    TimeRemainingColumn,
)
from rich.table import Column
from rich.text import Text

from sa1b.cli.display import ACTIVE_BARS, counts_line, waiting_text
from sa1b.progress import FileOutcome, Snapshot
from sa1b.sizes import NOMINAL_SHARD_SIZE
from sa1b.units import human_bytes


class SpeedColumn(ProgressColumn):
    """Speed in the units of every other figure sa1b prints (KiB, MiB: powers of 1024)."""

    def render(self, task: Task) -> Text:
        speed = task.finished_speed or task.speed
        return Text(
            "?" if speed is None else f"{human_bytes(speed)}/s", style="progress.data.speed"
        )


class LiveDisplay:
    """One overall bar (bytes, speed, ETA, file counts) and bars for a few active files."""

    def __init__(self, console: Console) -> None:
        self.console = console
        self.progress = Progress(
            TextColumn(
                "{task.description}",
                table_column=Column(no_wrap=True, overflow="ellipsis", ratio=3),
            ),
            BarColumn(bar_width=None, table_column=Column(ratio=1, min_width=5)),
            DownloadColumn(binary_units=True, table_column=Column(no_wrap=True)),
            SpeedColumn(table_column=Column(no_wrap=True)),
            TimeRemainingColumn(table_column=Column(no_wrap=True)),
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
        known = any(f.size is not None for f in snapshot.files)  # else no total to show
        total = snapshot.total_bytes(guess=NOMINAL_SHARD_SIZE) if known else None
        waiting = waiting_text(snapshot)  # else the run looks stalled
        self.progress.update(
            self._overall,
            total=total,
            completed=snapshot.done_bytes,
            description=f"{escape(waiting) if waiting else 'total'}: {counts_line(snapshot)}",
        )
        active = [f for f in snapshot.files if f.state in ("opening", "active", "verifying")]
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
            message = escape(outcome.message or "")
            self.console.print(f"[red]{escape(outcome.name)}: {outcome.state}[/]: {message}")
