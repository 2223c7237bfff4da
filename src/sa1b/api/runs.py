"""One run of ``sa1b download`` in the store: started, what it fetched, how it ended.

Both kinds of run (whole files, and ``--only``'s members) keep their books here: a run
killed or interrupted before it says how it ended is recorded ``interrupted``.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from sa1b.progress import FileOutcome
from sa1b.store.state import StateStore


@dataclass(slots=True)
class Run:
    """The run under way: the bytes it fetched so far, and how it ended."""

    fetched: int = 0
    outcome: str = "interrupted"
    started: float = field(default_factory=time.monotonic)

    def ended(self, outcomes: Iterable[FileOutcome]) -> None:
        """Every file's outcome is known: ``ok`` if all are done, else ``incomplete``."""
        self.outcome = "ok" if all(o.state == "done" for o in outcomes) else "incomplete"

    @property
    def seconds(self) -> float:
        return time.monotonic() - self.started


@contextmanager
def recorded_run(
    store: StateStore, *, started: float, copy_to: Path | None = None
) -> Iterator[Run]:
    """Record a run in ``store`` around the block, however the block ends; then refresh
    the store's copy in ``copy_to`` (a cluster task's, where other machines find it).
    ``started`` (monotonic) is when the caller began, checks before the run included."""
    run_id = store.start_run()
    run = Run(started=started)
    try:
        yield run
    finally:
        store.finish_run(run_id, fetched=run.fetched, outcome=run.outcome)
        if copy_to is not None:
            store.copy_to(copy_to)
