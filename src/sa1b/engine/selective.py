"""A run that fetches only some members of each shard (``--only json`` or ``jpg``).

What the store knows decides where each shard starts (:func:`prepare`): from
nothing; from its walk's last checkpoint, trusting the staged members before it
(synced before the checkpoint was saved) when their sizes match; or, once walked to
the end, from its catalog, fetching only the wanted members that are not in place.
The transport then runs the requests of :class:`~sa1b.engine.shardwalk.WalkSource`
in a thread of its own, while the run's thread, four times a second (or at once when
the walk's pieces waiting for the disk fill their budget), writes those pieces, syncs
the staging folder and saves the checkpoints, and publishes each shard that is
complete: its members renamed into the layout one by one (a member already in place
from another kind, ``--only jpg`` after ``--only json``, stays), then the catalog and
what was published recorded.
"""

from __future__ import annotations

import contextlib
import logging
import queue
import shutil
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import cast

from sa1b.config import DownloadConfig
from sa1b.engine.background import Background
from sa1b.engine.shardwalk import Identity, WalkedShard, WalkSource, parts_of
from sa1b.engine.staging import Stager
from sa1b.errors import (
    ExtractionError,
    NameClashError,
    StorageError,
    UnsafeMemberError,
)
from sa1b.extract.shard import same_file
from sa1b.layout import Layout, member_target
from sa1b.links import Link, object_key
from sa1b.net.governor import Governor, GovernorPolicy
from sa1b.net.ratelimit import RateLimiter
from sa1b.net.transport import Transport
from sa1b.progress import FileOutcome, FileProgress, FileState, ProgressListener, Snapshot
from sa1b.records import Status
from sa1b.retry import FailureAccount
from sa1b.store.state import StateStore
from sa1b.store.walks import Checkpoint, finish_walk, load_walk, save_checkpoints, start_walk
from sa1b.store.writeback import fsync_dir, sync_fs
from sa1b.tarformat import Header
from sa1b.tarwalk import Entry, TarWalk

log = logging.getLogger(__name__)

STAGING = "only"
"""In the output folder's staging: one folder per shard being walked."""
COMMIT_EVERY = 1.0


@dataclass(frozen=True, slots=True)
class Wanted:
    """Which members a run wants: those whose name ends with ``.<kind>``."""

    kind: str

    def __call__(self, name: str) -> bool:
        return name.lower().endswith(f".{self.kind}")


@dataclass(frozen=True, slots=True)
class SelectiveResult:
    outcomes: tuple[FileOutcome, ...]
    fetched: int
    shard_bytes: int
    """The sizes of the shards walked, to set the bytes fetched against."""


def fetch_members(
    links: Sequence[Link],
    config: DownloadConfig,
    store: StateStore,
    *,
    kind: str,
    listener: ProgressListener,
) -> SelectiveResult:
    """Fetch the members of kind ``kind`` of every shard in ``links`` into the layout."""
    assert config.extract is not None
    layout = config.extract.layout
    root = config.paths.staging / STAGING
    wanted = Wanted(kind)
    shards = [
        prepare(
            link,
            store,
            out=config.out,
            root=root,
            wanted=wanted,
            layout=layout,
            failures=config.failure_account(),
        )
        for link in links
    ]
    keeper = _Keeper(store, config.out, root=root, wanted=wanted, layout=layout, listener=listener)
    source = WalkSource(shards, on_ready=keeper.publish, on_end=keeper.ended)
    keeper.source = source
    for shard in shards:
        if shard.outcome is not None:
            listener.finished(shard.outcome)
        elif shard.ready_to_publish:
            shard.publishing = True
            keeper.publish(shard)
    policy = GovernorPolicy.fixed(config.connections or config.max_connections)
    transport = Transport(
        config.transport,
        source,
        slots=policy.ceiling,
        governor=Governor(policy, 0.0),
        limiter=RateLimiter(config.max_rate) if config.max_rate else None,
        loops=config.loops,
    )
    try:
        _run(transport, keeper, source)
    finally:
        keeper.stager.close()
    sizes = sum(shard.size or 0 for shard in shards)
    outcomes = tuple(_outcome(shard) for shard in shards)
    return SelectiveResult(outcomes, source.fetched, sizes)


def _run(transport: Transport, keeper: _Keeper, source: WalkSource) -> None:
    """The transport in a thread of its own (a Ctrl-C lands here, never inside one of
    libcurl's callbacks); this thread saves and publishes until every shard has ended."""
    failures: list[BaseException] = []

    def carry() -> None:
        try:
            transport.run()
        except BaseException as error:  # a bug: said from this thread
            failures.append(error)
        finally:
            behind.set()  # the run is over: no need to wait for the tick

    behind = source.behind
    thread = Background(carry, name="sa1b-transport")
    try:
        thread.start()
        while thread.running:
            behind.wait(COMMIT_EVERY / 4)  # a tick, or sooner when the disk is behind
            behind.clear()
            keeper.tick()
            transport.wake()  # the requests held back while the disk was behind
    finally:
        source.stopping = True  # a stream waiting for the disk waits no more
        transport.stop()  # every request ends within a tick, however slow its server
        thread.join()
        keeper.save()
    if failures:
        raise failures[0]


def _outcome(shard: WalkedShard) -> FileOutcome:
    return shard.outcome or FileOutcome(shard.name, "failed", shard.size, "interrupted")


def prepare(
    link: Link,
    store: StateStore,
    *,
    out: Path,
    root: Path,
    wanted: Wanted,
    layout: Layout,
    failures: FailureAccount,
) -> WalkedShard:
    """The shard as the store and the disk leave it (see the module's docstring)."""
    record = store.register(link.name, object_key(link.url))
    staging = root / link.name
    shard = WalkedShard(link, record.id, staging, wanted, layout, failures)
    if record.extracted == layout:  # the whole shard is here already
        shard.outcome = FileOutcome(link.name, "done", record.size, "already extracted")
        return shard
    saved = load_walk(store, record.id)
    if saved is None:
        shutil.rmtree(staging, ignore_errors=True)
        return shard
    shard.size, shard.validator = saved.size, saved.validator
    start = None if saved.complete else saved.next
    shard.walk = TarWalk(
        link.name, saved.size, wanted, layout=layout, start=start, entries=saved.entries
    )
    shard.saved = shard.walk.checkpoint
    published = f"{layout}:{wanted.kind}" in saved.published
    try:
        for entry in saved.entries:
            if not (wanted(entry.name) and entry.size):
                continue
            if published and _size(out / _target(link.name, entry, layout)) == entry.size:
                continue  # in place since an earlier run
            if _size(staging / entry.name) == entry.size:
                shard.staged.add(entry.name)
            else:
                shard.todo.extend(parts_of(entry))
    except UnsafeMemberError as error:
        shard.outcome = FileOutcome(link.name, "failed", saved.size, error.message, error.hint)
        return shard
    if saved.complete and not shard.todo and not shard.staged and published:
        shard.outcome = FileOutcome(link.name, "done", saved.size, f"{wanted.kind} already there")
    return shard


def _target(shard: str, entry: Entry, layout: Layout) -> PurePosixPath:
    """Where a member goes in the layout (checked as extraction checks it)."""
    target = member_target(Header(entry.name, entry.size, b"0"), shard=shard, layout=layout)
    assert target is not None  # a regular member always has a place
    return target


def _size(path: Path) -> int | None:
    try:
        return path.stat().st_size
    except OSError:
        return None


class _Keeper:
    """Saves checkpoints, publishes complete shards, reports progress: the run's own
    thread, a few times a second."""

    def __init__(
        self,
        store: StateStore,
        out: Path,
        *,
        root: Path,
        wanted: Wanted,
        layout: Layout,
        listener: ProgressListener,
    ) -> None:
        self.store, self.out, self.root = store, out, root
        self.kind, self.layout, self.listener = wanted.kind, layout, listener
        self.source: WalkSource | None = None
        self.stager = Stager()
        self.ready: queue.SimpleQueue[WalkedShard] = queue.SimpleQueue()
        self.started = time.monotonic()

    def publish(self, shard: WalkedShard) -> None:
        """From any thread: the shard is complete, to be published at the next tick."""
        self.ready.put(shard)

    def ended(self, shard: WalkedShard) -> None:
        """A shard failed: said to the listener, and kept in the store for ``status``."""
        outcome = shard.outcome
        assert outcome is not None
        self._set_status(shard, outcome.state, outcome.message)
        self.listener.finished(outcome)

    def tick(self) -> None:
        self.save()
        with contextlib.suppress(queue.Empty):
            while True:
                self._publish(self.ready.get_nowait())
        self.listener.update(self._snapshot())

    def _set_status(self, shard: WalkedShard, state: FileState, message: str | None) -> None:
        """The file's status says how its walk ended, unless a whole download of it has
        begun in this folder (its own status is the one to keep)."""
        record = self.store.get(shard.name)
        if record is not None and not record.ranges and record.status != "done":
            self.store.set_status(shard.file_id, cast(Status, state), message)

    def save(self) -> None:
        """Sync the staging folder, then save what the walks reached."""
        assert self.source is not None
        with self.source.lock:
            records, self.source.records = self.source.records, []
        self.stager.run(self.source.take_jobs())  # every piece the records below name
        if not records:
            return
        if self.root.exists():
            sync_fs(self.root)  # every byte a checkpoint names, on disk before it
        checkpoints: list[Checkpoint] = []
        for record in records:
            if isinstance(record, Identity):
                save_checkpoints(self.store, checkpoints)
                checkpoints = []
                start_walk(self.store, record.file_id, record.size, record.validator)
            else:
                checkpoints.append(record)
        save_checkpoints(self.store, checkpoints)

    def _publish(self, shard: WalkedShard) -> None:
        try:
            self._move_into_place(shard)
        except ExtractionError as error:  # a name another shard holds (flat)
            assert self.source is not None
            with self.source.lock:
                shard.outcome = FileOutcome(
                    shard.name, "failed", shard.size, error.message, error.hint
                )
            self.ended(shard)
        except OSError as error:
            raise StorageError(f"{self.out}: cannot publish {shard.name} ({error})") from None

    def _move_into_place(self, shard: WalkedShard) -> None:
        """Move the staged members into place, then record the shard as walked."""
        walk = shard.walk
        assert walk is not None and self.source is not None
        self.save()
        if shard.staging.exists():
            sync_fs(shard.staging)
        moves: list[tuple[Path, Path]] = []
        for entry in walk.entries:
            if not shard.wanted(entry.name):
                continue
            staged = shard.staging / entry.name
            if entry.size == 0:
                staged.parent.mkdir(parents=True, exist_ok=True)
                staged.touch()
            elif entry.name not in shard.staged:
                continue  # in place since an earlier run
            target = self.out / _target(shard.name, entry, self.layout)
            if self.layout == "flat" and target.exists() and not same_file(staged, target):
                raise NameClashError(
                    f"{entry.name} is already in {self.out} with other contents (from "
                    "another shard)",
                    shard=shard.name,
                    member=entry.name,
                )
            moves.append((staged, target))
        folders = {target.parent for _, target in moves}
        for folder in folders:
            folder.mkdir(parents=True, exist_ok=True)
        for staged, target in moves:
            staged.replace(target)
        for folder in folders:
            fsync_dir(folder)
        published = {f"{self.layout}:{self.kind}"}
        saved = load_walk(self.store, shard.file_id)
        if saved is not None and saved.complete:
            published |= saved.published
        finish_walk(self.store, shard.file_id, walk.entries, published)
        self._set_status(shard, "pending", None)  # walked; the tar itself is not here
        shutil.rmtree(shard.staging, ignore_errors=True)
        wanted = sum(1 for entry in walk.entries if shard.wanted(entry.name))
        with self.source.lock:
            shard.outcome = FileOutcome(
                shard.name, "done", shard.size, f"{wanted} {self.kind} files"
            )
        self.listener.finished(shard.outcome)

    def _snapshot(self) -> Snapshot:
        assert self.source is not None
        with self.source.lock:
            files = tuple(
                FileProgress(
                    shard.name,
                    shard.outcome.state if shard.outcome else "active",
                    shard.size,
                    (shard.size or 0) if shard.outcome else shard.reached,
                    shard.busy,
                )
                for shard in self.source.shards
            )
            fetched = self.source.fetched
        elapsed = time.monotonic() - self.started
        return Snapshot(files, fetched, elapsed, fetched / elapsed if elapsed else 0.0)
