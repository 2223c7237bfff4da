"""The library API: plan a download, run it, read the state of an output folder.

The CLI is a thin shell over these functions; they never print.
"""

from __future__ import annotations

import logging
import shutil
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from itertools import chain
from pathlib import Path

from sa1b.checksums import Digest
from sa1b.config import DownloadConfig
from sa1b.engine import Engine
from sa1b.engine.selective import fetch_members
from sa1b.errors import (
    InputError,
    LinkExpiredError,
    LinksExpiredError,
    NoSpaceError,
    OutputFolderError,
    StateError,
    StateLockedError,
)
from sa1b.extract.audit import audit_extracted, audit_tar, remove_extracted
from sa1b.layout import whole_units
from sa1b.links import Link, mirror_link, redact
from sa1b.net.probe import SizeAnswer, probe_sizes, probe_speed
from sa1b.planning import FileFacts, Plan, disk_needed
from sa1b.progress import FileOutcome, NullListener, ProgressListener
from sa1b.records import FileRecord, RunRecord, furthest
from sa1b.split import WorkerPart
from sa1b.store.journal import Journal, Span, fold
from sa1b.store.paths import WORKERS, OutputPaths
from sa1b.store.state import StateStore, folder_stores, lock_holder, member_indexes, require_stores
from sa1b.store.walks import WalkRecord, forget_published, load_walks
from sa1b.units import human_bytes
from sa1b.versions import Validator

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


def plan(links: Sequence[Link], config: DownloadConfig, *, probe_seconds: float = 4.0) -> Plan:
    """What a download of ``links`` into ``config.out`` needs, asked of the server and
    the disk without downloading: each file's size (one-byte range requests, many at
    once), what the folder holds, the free space, and a speed probe of
    ``probe_seconds`` (0: none) on the download's own connections."""
    return _plan(links, config, _held(config.out), probe_seconds=probe_seconds, ask_known=True)


def check_space(
    links: Sequence[Link], config: DownloadConfig, held: Mapping[str, FileRecord] | None = None
) -> None:
    """Raise :class:`NoSpaceError` when the download cannot fit, by :func:`plan`'s
    reckoning (the worst case) without its speed probe: the sizes the folder's stores
    know (``held``, read from them when not given), the rest asked of the server (one
    byte each)."""
    known = _held(config.out) if held is None else held
    checked = _plan(links, config, known, probe_seconds=0, ask_known=False)
    if not checked.fits:
        raise NoSpaceError(
            f"{config.out}: the download needs {human_bytes(checked.needed)} more and "
            f"{human_bytes(checked.free)} are free"
        )


def _held(out: Path) -> dict[str, FileRecord]:
    """What the folder's stores know of each file (the furthest record of it)."""
    return {r.name: r for r in status(out).files} if folder_stores(out) else {}


def _plan(
    links: Sequence[Link],
    config: DownloadConfig,
    held: Mapping[str, FileRecord],
    *,
    probe_seconds: float,
    ask_known: bool,
) -> Plan:
    """:func:`plan`, from what the folder holds; ``ask_known=False`` takes the sizes the
    stores know instead of asking the server for them."""
    wanted = [link for link in links if not _finished(held.get(link.name))]
    answers = _sizes(wanted, held, config, ask_known=ask_known)
    facts = tuple(
        _facts(link, held.get(link.name), answers.get(link.name), config) for link in links
    )
    speed = None
    sized = [(link, answers[link.name].size or 0) for link in wanted if answers[link.name].size]
    if probe_seconds > 0 and sized:
        policy = config.connection_policy()
        speed = probe_speed(
            sized[: config.max_files], config.transport, policy, seconds=probe_seconds
        )
    at_once = config.max_files
    extract, keep_tars = (
        config.extract is not None,
        bool(config.extract and config.extract.keep_tars),
    )
    return Plan(
        files=facts,
        free=_free_space(config.out),
        needed=disk_needed(facts, extract=extract, keep_tars=keep_tars, at_once=at_once),
        needed_keeping_tars=disk_needed(facts, extract=True, keep_tars=True, at_once=at_once),
        needed_without_tars=disk_needed(facts, extract=True, keep_tars=False, at_once=at_once),
        speed=speed,
        expires=tuple(stamp for link in wanted if (stamp := link.expires_at) is not None),
        now=time.time(),
        max_rate=config.max_rate,
    )


def _sizes(
    links: Sequence[Link],
    held: Mapping[str, FileRecord],
    config: DownloadConfig,
    *,
    ask_known: bool,
) -> dict[str, SizeAnswer]:
    """Each file's size: the store's where it knows it (unless ``ask_known``), none for a
    link expired already (it could only say so), the server's for the rest."""
    answers, asked, now = {}, [], time.time()
    for link in links:
        record = held.get(link.name)
        if not ask_known and record is not None and record.size is not None:
            answers[link.name] = SizeAnswer(link.name, record.size)
        elif (stamp := link.expires_at) is not None and stamp <= now:
            error = LinkExpiredError("the signed link has expired", name=link.name)
            answers[link.name] = SizeAnswer(link.name, error=error)
        else:
            asked.append(link)
    answers |= {a.name: a for a in probe_sizes(asked, config.transport)} if asked else {}
    return answers


def _finished(record: FileRecord | None) -> bool:
    return record is not None and (record.status == "done" or record.extracted is not None)


def _facts(
    link: Link, record: FileRecord | None, answer: SizeAnswer | None, config: DownloadConfig
) -> FileFacts:
    shard = link.shard_id is not None
    if _finished(record):
        assert record is not None
        return FileFacts(link.name, record.size, shard, done=True, kept=record.size or 0)
    if answer is None or answer.size is None:
        error = answer.error.message if answer and answer.error else "no answer"
        return FileFacts(link.name, None, shard, error=error)
    partial = config.paths.partial(link.name)
    allocated = partial.stat().st_blocks * 512 if partial.exists() else 0
    same = record is not None and record.size == answer.size
    kept = record.done_bytes if same and record is not None else 0
    return FileFacts(link.name, answer.size, shard, kept=kept, allocated=allocated)


def _free_space(out: Path) -> int:
    """Free bytes on the filesystem ``out`` is (or will be) on."""
    folder = out.absolute()
    while not folder.exists():
        folder = folder.parent
    return shutil.disk_usage(folder).free


@dataclass(frozen=True, slots=True)
class DownloadResult:
    """The outcome of every selected file, and what this run fetched."""

    outcomes: tuple[FileOutcome, ...]
    fetched: int
    seconds: float
    walked: int | None = None
    """With ``--only``: the sizes of the shards walked, which ``fetched`` is a part of."""

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
    :class:`~sa1b.errors.NoSpaceError` if the download cannot fit (``check_space``),
    :class:`~sa1b.errors.OutputFolderError` if ``config.out`` cannot be written, and
    :class:`~sa1b.errors.StateLockedError` if another process owns the folder;
    per-file failures are outcomes, not exceptions.
    KeyboardInterrupt is re-raised after the state is saved. ``seconds`` is the whole
    call, the size check's answers (and a server slow to give them) included.
    """
    started = time.monotonic()
    try:
        config.out.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise OutputFolderError.cannot_create(config.out, error) from None
    paths = config.paths
    with StateStore(config.out, state=paths.state) as store:
        others = _other_records(paths, config.worker, config.state_copy)
        known = [*store.records(), *chain.from_iterable(others.values())]
        done = {record.name for record in known if record.status == "done"}
        if not config.mirrors:  # with mirrors, an expired link is the mirrors' to stand in for
            refuse_expired([link for link in links if link.name not in done], now=time.time())
        only = config.extract.only if config.extract else None
        if config.check_space and only is None:  # from the records just read
            check_space(links, config, furthest(known))
        if only is not None:
            if config.extract and config.extract.layout == "wds":
                raise InputError("--only writes members as files: it cannot make wds tars")
            watcher = listener or NullListener()
            return _fetch_members(links, config, store, only, watcher, started=started)
        run_id = store.start_run()
        outcome, fetched = "interrupted", 0
        try:
            outcomes: dict[str, FileOutcome] = {}
            for base, batch in _sources(links, config, outcomes):
                if base is not None:
                    _ready_for_mirror(store, batch, config)
                engine = Engine(
                    batch, config, store, listener=listener or NullListener(), others=others
                )
                try:
                    ended = engine.run()
                finally:
                    fetched += engine.fetched
                outcomes |= {o.name: replace(o, source=base) if base else o for o in ended}
            outcome = "ok" if all(o.state == "done" for o in outcomes.values()) else "incomplete"
        finally:
            store.finish_run(run_id, fetched=fetched, outcome=outcome)
            if config.state_copy is not None:
                store.copy_to(config.state_copy)
    ordered = tuple(outcomes[link.name] for link in links)
    return DownloadResult(ordered, fetched, time.monotonic() - started)


def _fetch_members(
    links: Sequence[Link],
    config: DownloadConfig,
    store: StateStore,
    kind: str,
    listener: ProgressListener,
    *,
    started: float,
) -> DownloadResult:
    """The ``--only`` run: members of one kind of each shard, by range reads."""
    run_id = store.start_run()
    outcome, fetched = "interrupted", 0
    try:
        result = fetch_members(links, config, store, kind=kind, listener=listener)
        fetched = result.fetched
        outcome = "ok" if all(o.state == "done" for o in result.outcomes) else "incomplete"
    finally:
        store.finish_run(run_id, fetched=fetched, outcome=outcome)
    seconds = time.monotonic() - started
    return DownloadResult(result.outcomes, fetched, seconds, walked=result.shard_bytes)


def _sources(
    links: Sequence[Link], config: DownloadConfig, outcomes: Mapping[str, FileOutcome]
) -> Iterator[tuple[str | None, list[Link]]]:
    """The links to run, first their own, then each mirror's for the files still not
    done (read from ``outcomes`` as the runs before fill it)."""
    yield None, list(links)
    for base in config.mirrors:
        missing = [link for link in links if outcomes[link.name].state != "done"]
        if not missing:
            return
        log.info("trying %d file(s) at the mirror %s", len(missing), redact(base))
        yield base, [mirror_link(base, link) for link in missing]


def _ready_for_mirror(store: StateStore, links: Sequence[Link], config: DownloadConfig) -> None:
    """Bytes kept from another server are continued only when they are sure to be the
    same file: the size must match (any answer checks that), and the ETag too unless
    a checksum will check the finished file. So the validator is forgotten where a
    checksum is known, and kept (to be compared) where none is."""
    for link in links:
        record = store.get(link.name)
        if record is not None and record.size is not None and link.name in config.checksums:
            store.set_identity(record.id, record.size, Validator(None, None))


def _other_records(
    paths: OutputPaths, worker: WorkerPart | None, own_copy: Path | None
) -> dict[str, list[FileRecord]]:
    """The records of the folder's other stores, by name; refuses to run beside a
    download whose files may be ours (the whole download beside a worker, or workers of
    different counts): two processes would write the same partial files."""
    others: dict[str, list[FileRecord]] = {}
    ours = {paths.state.resolve(), *([own_copy.resolve()] if own_copy else [])}
    for other in folder_stores(paths.out):
        if other.state.resolve() in ours:
            continue
        holder = lock_holder(other)
        if holder is not None and _may_overlap(worker, other):
            raise StateLockedError(
                f"{paths.out}: {_store_label(other)} is downloading into this folder "
                f"(pid {holder or '?'})"
            )
        try:
            with StateStore(paths.out, state=other.state, lock=False, create=False) as store:
                for record in store.records():
                    others.setdefault(record.name, []).append(record)
        except StateError as error:
            log.warning("%s; its records are not used", error.message)
    return others


def _may_overlap(worker: WorkerPart | None, other: OutputPaths) -> bool:
    """Whether ``other``'s run may take files of ours: other workers of one split never do."""
    theirs = worker_of(other)
    if worker is None or theirs is None:
        return True
    return theirs.count != worker.count or theirs.index == worker.index


def worker_of(paths: OutputPaths) -> WorkerPart | None:
    """The worker whose store ``paths`` holds (``.sa1b/workers/3-of-8``), if any."""
    if paths.state.parent.name != WORKERS:
        return None
    index, _, count = paths.state.name.partition("-of-")
    if not (index.isdigit() and count.isdigit()):
        return None
    return WorkerPart(int(index), int(count), "store")


def _store_label(paths: OutputPaths) -> str:
    worker = worker_of(paths)
    return worker.label if worker else "the whole download"


@dataclass(frozen=True, slots=True)
class StoreStatus:
    """One store's records: the whole download's, or one worker's of a split one. The
    bytes a running or killed download wrote since its last commit (from its crash
    journal) are counted in."""

    worker: WorkerPart | None
    files: tuple[FileRecord, ...]
    last_run: RunRecord | None
    running: int | None = None
    """The process id of a download working with this store now, if any (0: unknown)."""
    walks: Mapping[str, WalkRecord] = field(default_factory=dict)
    """The shards walked by range reads (``--only``), by name."""

    @property
    def label(self) -> str:
        return self.worker.label if self.worker else "the whole download"


@dataclass(frozen=True, slots=True)
class FolderStatus:
    """What an output folder holds, over every store in it (one per worker of a split
    download): each file as far as any store got with it, and each store apart."""

    stores: tuple[StoreStatus, ...]

    @property
    def files(self) -> tuple[FileRecord, ...]:
        """Each file once, by name: the furthest record of it in any store."""
        chosen = furthest(record for store in self.stores for record in store.files)
        return tuple(sorted(chosen.values(), key=lambda record: record.name))

    @property
    def walks(self) -> dict[str, WalkRecord]:
        """Each walked shard once: the furthest walk of it in any store."""
        found: dict[str, WalkRecord] = {}
        for store in self.stores:
            for name, walk in store.walks.items():
                known = found.get(name)
                if known is None or (walk.complete, walk.next) > (known.complete, known.next):
                    found[name] = walk
        return found

    @property
    def last_run(self) -> RunRecord | None:
        runs = [store.last_run for store in self.stores if store.last_run is not None]
        return max(runs, key=lambda run: run.started_at, default=None)

    @property
    def running(self) -> int | None:
        """A process id of a download working in the folder now, if any (0: unknown)."""
        return next((s.running for s in self.stores if s.running is not None), None)

    @property
    def ok(self) -> bool:
        """No file failed or expired."""
        return all(record.status not in ("failed", "expired") for record in self.files)


def status(out: Path, *, state: Path | None = None) -> FolderStatus:
    """Read an output folder's state (works while downloads are running): its own store
    and every worker's, or only the store in ``state`` when it lives elsewhere."""
    found = [OutputPaths.of(out, state)] if state is not None else folder_stores(out)
    return FolderStatus(tuple(_store_status(paths) for paths in found or [OutputPaths.of(out)]))


def _store_status(paths: OutputPaths) -> StoreStatus:
    with StateStore(paths.out, state=paths.state, lock=False, create=False) as store:
        records, last_run, walks = store.records(), store.last_run(), load_walks(store)
    spans = Journal.recover(paths.journal)
    files = tuple(_with_journal(records, spans))
    walked = {r.name: walks[r.id] for r in records if r.id in walks}
    return StoreStatus(worker_of(paths), files, last_run, lock_holder(paths), walked)


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


@dataclass(frozen=True, slots=True)
class FileCheck:
    """One file as :func:`verify` found it."""

    name: str
    kind: str
    """``extracted (LAYOUT layout)``, ``tar``, ``file`` or ``not finished``."""
    problems: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class VerifyReport:
    checks: tuple[FileCheck, ...]
    repaired: tuple[str, ...] = ()
    """Files marked to be fetched again by the next download (``repair``)."""

    @property
    def ok(self) -> bool:
        return not any(check.problems for check in self.checks)


def verify(
    out: Path,
    *,
    checksums: Mapping[str, Digest] | None = None,
    deep: bool = False,
    repair: bool = False,
) -> VerifyReport:
    """Check every file the folder's stores know (see :mod:`sa1b.extract.audit`); with
    ``repair``, mark each finished file found bad so that the next download fetches it
    again, and only it: its records are voided and its bad files removed."""
    stores = require_stores(out)
    indexes = member_indexes(out)
    digests = checksums or {}
    folder = status(out)
    walks = {name: walk for name, walk in folder.walks.items() if walk.complete}
    checks = tuple(
        _check_walked(out, record.name, walks[record.name], deep=deep)
        if _walked_only(record, walks)
        else _check(out, record, indexes.get(record.name), digests.get(record.name), deep=deep)
        for record in folder.files
    )
    bad = [c for c in checks if c.problems and c.kind != "not finished"]
    if repair and bad:
        indexes |= {name: walk.published_index(name) for name, walk in walks.items()}
        _repair(out, stores, [c.name for c in bad], indexes)
    return VerifyReport(checks, tuple(c.name for c in bad) if repair else ())


def _check(
    out: Path,
    record: FileRecord,
    index: list[tuple[str, int, int]] | None,
    digest: Digest | None,
    *,
    deep: bool,
) -> FileCheck:
    paths = OutputPaths.of(out)
    if record.extracted:
        problems = audit_extracted(out, record.name, index, deep=deep)
        tar = paths.final(record.name)
        if tar.exists():  # kept too (--keep-tars)
            problems += audit_tar(tar, size=record.size, digest=digest)
        return FileCheck(record.name, f"extracted ({record.extracted} layout)", tuple(problems))
    if record.status == "done":
        kind = "tar" if record.name.endswith(".tar") else "file"
        problems = audit_tar(paths.final(record.name), size=record.size, digest=digest)
        return FileCheck(record.name, kind, tuple(problems))
    message = f"not finished ({record.status}): run sa1b download again"
    return FileCheck(record.name, "not finished", (message,))


def _walked_only(record: FileRecord, walks: Mapping[str, WalkRecord]) -> bool:
    """Whether the shard is here as members fetched by ``--only`` alone."""
    whole = record.extracted or record.status == "done" or record.ranges
    return record.name in walks and not whole


def _check_walked(out: Path, shard: str, walk: WalkRecord, *, deep: bool) -> FileCheck:
    """A shard walked by ``--only``: its published members against its catalog."""
    kinds = walk.kinds
    index = walk.published_index(shard)
    problems = audit_extracted(out, shard, index, deep=deep, pairs=kinds >= {"jpg", "json"})
    return FileCheck(shard, f"walked ({', '.join(sorted(kinds))})", tuple(problems))


def _repair(
    out: Path,
    stores: Sequence[OutputPaths],
    names: Sequence[str],
    indexes: Mapping[str, list[tuple[str, int, int]]],
) -> None:
    for paths in stores:
        with StateStore(out, state=paths.state) as store:  # the lock: no download runs
            for record in store.records():
                if record.name in names:
                    layout = record.extracted
                    units = whole_units(layout, record.name) if layout else ()
                    remove_extracted(out, indexes.get(record.name), units)
                    paths.final(record.name).unlink(missing_ok=True)
                    forget_published(store, record.id)
                    store.restart(record.id)
                    log.info("%s: marked to be fetched again", record.name)
