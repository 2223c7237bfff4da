"""The library API: plan a download, run it, read the state of an output folder.

The CLI is a thin shell over these functions; they never print.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path

from sa1b.config import DownloadConfig
from sa1b.engine import Engine
from sa1b.errors import LinksExpiredError, OutputFolderError
from sa1b.links import Link
from sa1b.progress import FileOutcome, NullListener, ProgressListener
from sa1b.records import FileRecord, RunRecord
from sa1b.store.journal import Journal, Span, fold
from sa1b.store.state import StateStore, lock_holder

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class LinkValidity:
    """How long the links a run needs stay valid."""

    earliest: int | None
    """Unix seconds at which the first needed link expires (None: no ``oe`` on any)."""
    expired: tuple[str, ...]
    """Names whose links have expired already."""

    def seconds_left(self, now: float) -> float | None:
        return None if self.earliest is None else self.earliest - now


def check_validity(links: Sequence[Link], *, now: float) -> LinkValidity:
    """Read the ``oe`` expiry of every link."""
    stamps = [(link.expires_at, link.name) for link in links if link.expires_at is not None]
    expired = tuple(name for stamp, name in stamps if stamp <= now)
    return LinkValidity(min((s for s, _ in stamps), default=None), expired)


def refuse_expired(links: Sequence[Link], *, now: float) -> LinkValidity:
    """Raise :class:`LinksExpiredError` when every needed link has expired already (the
    run could fetch nothing); files whose links alone expired end as ``expired``."""
    validity = check_validity(links, now=now)
    if links and len(validity.expired) == len(links):
        shown = ", ".join(validity.expired[:3])
        more = f" and {len(validity.expired) - 3} more" if len(validity.expired) > 3 else ""
        raise LinksExpiredError(f"all {len(links)} links still needed have expired ({shown}{more})")
    return validity


@dataclass(frozen=True, slots=True)
class DownloadResult:
    """The outcome of every selected file, and what this run fetched."""

    outcomes: tuple[FileOutcome, ...]
    fetched: int
    seconds: float

    @property
    def ok(self) -> bool:
        return all(outcome.state == "done" for outcome in self.outcomes)

    def with_state(self, state: str) -> list[FileOutcome]:
        return [outcome for outcome in self.outcomes if outcome.state == state]


def download(
    links: Sequence[Link],
    config: DownloadConfig,
    *,
    listener: ProgressListener | None = None,
) -> DownloadResult:
    """Download ``links`` into ``config.out``; resumes whatever an earlier run left.

    Raises :class:`~sa1b.errors.LinksExpiredError` before fetching anything if every
    link still needed has expired (a file whose link alone expired ends ``expired``),
    :class:`~sa1b.errors.OutputFolderError` if ``config.out`` cannot be written, and
    :class:`~sa1b.errors.StateLockedError` if another process owns the folder;
    per-file failures are outcomes, not exceptions.
    KeyboardInterrupt is re-raised after the state is saved.
    """
    try:
        config.out.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise OutputFolderError(f"{config.out}: cannot create it ({error.strerror})") from None
    with StateStore(config.out, state=config.state_dir) as store:
        done = {r.name for r in store.records() if r.status == "done"}
        refuse_expired([link for link in links if link.name not in done], now=time.time())
        run_id = store.start_run()
        engine = Engine(links, config, store, listener=listener or NullListener())
        started = time.monotonic()
        outcome = "interrupted"
        try:
            outcomes = engine.run()
            outcome = "ok" if all(o.state == "done" for o in outcomes) else "incomplete"
        finally:
            store.finish_run(run_id, fetched=engine.fetched, outcome=outcome)
    return DownloadResult(tuple(outcomes), engine.fetched, time.monotonic() - started)


@dataclass(frozen=True, slots=True)
class FolderStatus:
    """What an output folder holds: the store's records, with the bytes a running or
    killed download wrote since its last commit (from the crash journal) counted in."""

    files: tuple[FileRecord, ...]
    last_run: RunRecord | None
    running: int | None = None
    """The process id of a download working in the folder now, if any (0: unknown)."""

    @property
    def ok(self) -> bool:
        """No file failed or expired."""
        return all(record.status not in ("failed", "expired") for record in self.files)


def status(out: Path, *, state: Path | None = None) -> FolderStatus:
    """Read an output folder's state (works while a download is running); ``state`` is
    where its store lives when it is not ``out/.sa1b``."""
    with StateStore(out, state=state, lock=False, create=False) as store:
        records, last_run, paths = store.records(), store.last_run(), store.paths
    spans = Journal.recover(paths.journal)
    return FolderStatus(tuple(_with_journal(records, spans)), last_run, lock_holder(paths))


def _with_journal(records: Sequence[FileRecord], spans: Sequence[Span]) -> list[FileRecord]:
    """Records with what a running or killed download wrote since its last commit."""
    return [
        replace(
            record,
            ranges=fold(
                record.ranges, spans, file_id=record.id, generation=record.generation, size=size
            ),
        )
        if (size := record.size) and record.status != "done"
        else record
        for record in records
    ]
