"""Extraction with no tar on disk: each member of a shard written once, as it streams.

A shard to extract into a local folder is a streamed body (:mod:`sa1b.engine.streamed`)
whose sink is the shard's staging folder: a whole part goes to the in-order reader only,
whose walk (:class:`~sa1b.tarwalk.TarWalk`, wanting every member) hands over each
member's data, written once, straight into its staged file. Once the walk has ended and
every part is read, the publisher moves the staged files into the layout
(:func:`sa1b.extract.shard.publish`) and records the shard extracted. A shard in flight
takes its extracted size on disk and the memory budget, not a tar beside its files, and
each byte reaches the page cache once, not twice (measured in ``benchmarks/README.md``);
on a local disk's ext4 or xfs, not at all: members go direct from the parts' memory to
the disk, a few at once (:data:`WRITERS`), but for their last block.

Every ``--tar-window`` bytes of tar or so, at a member boundary, a syncer thread syncs
the files staged since the last one and queues a checkpoint (:class:`~sa1b.store.resume.
PackedResume`, the record extraction from a tar keeps too), which the supervising loop
saves at its next tick. A rerun keeps the staged members the checkpoint names and fetches
the shard from the part that holds it.

The whole-file path (a partial tar, extracted as it arrives) keeps what a tar is needed
for, within the same run: a shard with a checksum to check (the digest of every byte
from 0, which no checkpoint can save), one a partial tar on disk already holds bytes of
(from a run of another version, or one without Range), and a server that ignores Range.
Files that are not shards are fetched whole, as ever. Start-up is the same for both
(:func:`sa1b.engine.startup.prepare`): the streamed path takes the shards it left to fetch.
"""

from __future__ import annotations

import functools
import logging
import mmap
import os
import shutil
from collections.abc import Callable, Collection
from concurrent.futures import Executor, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from pathlib import Path

from sa1b.engine import startup
from sa1b.engine.run import Run
from sa1b.engine.streamed import PartBuffer, StreamedBody, StreamOptions, Streams
from sa1b.engine.tasks import Task
from sa1b.errors import CorruptArchiveError, SA1BError, StorageError
from sa1b.extract.shard import (
    ExtractReport,
    Member,
    _prepare_staging,
    _Unsynced,
    missing_partners,
    publish,
)
from sa1b.holes import checkpoint_due
from sa1b.layout import Layout
from sa1b.links import Link
from sa1b.objectstore.parts import DEFAULT_CHUNK, DEFAULT_MEMORY, MIB, PartPlan
from sa1b.records import Status
from sa1b.repack import Copied
from sa1b.store.allocation import reserve
from sa1b.store.filesystems import direct_writes_suit, whole_sync_suffices
from sa1b.store.resume import Ledger, PackedResume, load_resume, save_resume
from sa1b.store.uploads import WalkPoint
from sa1b.store.writeback import (
    DIRECT_BLOCK,
    direct_length,
    open_member,
    start_writeback,
    sync_files,
    write_at,
    write_cached,
    write_direct,
)
from sa1b.tarwalk import Found, Piece, TarWalk

log = logging.getLogger(__name__)

PART = 16 * MIB
"""The parts of a shard extracted as it streams: twice an upload's (no store takes them
here), eight in the memory budget. Chosen by measurement: a 10.5 GiB shard at SA-1B's
density, alternating with 8 MiB, was extracted 3-9% faster at 0.1-0.2 CPU s/GB less, and
6 MiB was 4-11% slower than 8 (``benchmarks/rehearsal-results.txt``). Fewer parts mean
fewer hand-overs to the reader and fewer members cut across two (then written in two
pieces; until 2026-12-07 the walk gathered them into one block, copying them twice);
which of these counts most was not measured."""


WRITERS = 4
"""Threads writing the members of a part whose bytes go direct (each write waits for the
disk): a part's members are shared among them, so that several are under way at once.
A 10.5 GiB shard at SA-1B's density, extracted onto a journaled ext4 with 4 against
members written through the page cache, alternating: 643-715 MB/s at 1.26-1.35 CPU s/GB
against 634-662 at 1.57-1.62; one writer alone (the reader) was slower than the page
cache, 517-584 MB/s. Against 4 (alternating, 3 pairs each): 2 were slower in every pair
(518-575 against 611-693 MB/s) at no less CPU, 8 no faster (443-798 against 537-641)
(``benchmarks/rehearsal-results.txt``)."""


def every_member(name: str) -> bool:
    """What the walk of a shard extracted whole wants: every member's data."""
    return True


class Unpacks(Streams):
    """What every shard extracted with no tar shares in a run (its
    :class:`~sa1b.engine.bodies.Kind`)."""

    def __init__(self, run: Run, *, abort: Callable[[SA1BError], None]) -> None:
        assert run.config.extract is not None
        super().__init__(run, StreamOptions(PART, DEFAULT_CHUNK, DEFAULT_MEMORY))
        self.abort = abort
        self.layout: Layout = run.config.extract.layout
        self.every = run.config.extract.tar_window
        self.whole_files = True  # see Kind
        self.records: list[tuple[Task, int, PackedResume]] = []
        """Checkpoints to save (the shard, its body's generation, the checkpoint), their
        members synced."""
        self.voided: list[int] = []
        """The files whose shard started over (its source changed): their checkpoints
        are void."""
        self.reserving = True
        """Whether members' blocks are reserved as their files are made (not where the
        filesystem cannot): written into reserved blocks, the bytes cost the kernel
        about 0.2 system seconds a GB less (24 x 172 MB: 0.85-0.88x download-only with,
        0.81x without)."""
        self.whole_sync = whole_sync_suffices(run.config.paths.staging)
        """Whether a checkpoint syncs its members by one ``syncfs`` rather than an
        ``fsync`` each (:mod:`sa1b.store.filesystems`); not once a shard is extracted
        from a partial tar, which a ``syncfs`` would write out for nothing."""
        log.debug(
            "staged members are synced by %s",
            "one syncfs a checkpoint" if self.whole_sync else "an fsync each",
        )
        self.direct = direct_writes_suit(run.config.paths.staging)
        """Whether members' bytes are written direct (``O_DIRECT``), from the parts'
        memory to the disk, but their last block (:func:`~sa1b.store.writeback.
        write_direct`): the kernel neither copies them into its page cache nor writes
        them back, nor lets them go again after each checkpoint (a full-size shard,
        alternating: 5.0-6.4 system seconds against 9.4-10.7 through the page cache).
        Only on a local disk's filesystem (:data:`~sa1b.store.filesystems.
        DIRECT_FILESYSTEMS`), and off for the run once the disk refuses one
        (:meth:`refuse_direct`)."""
        log.debug("members are written %s", "direct" if self.direct else "through the page cache")
        self._writers = ThreadPoolExecutor(WRITERS, thread_name_prefix="sa1b-write")
        self._syncer = ThreadPoolExecutor(1, thread_name_prefix="sa1b-sync")
        """Syncs the files a checkpoint names, then queues it: apart from the reader,
        which goes on writing meanwhile (its memory budget is all the buffer there is)."""

    def _checkpoint(
        self, files: list[Path], folders: set[Path], record: tuple[Task, int, PackedResume]
    ) -> None:
        """In the syncer's thread: the files, then the checkpoint that names them."""
        try:
            sync_files(files, folders, whole=self.whole_sync, drop=not self.direct)
        except OSError as error:
            self.abort(StorageError(f"cannot sync staged members: {error.strerror}"))
            return
        with self.run.lock:
            self.records.append(record)

    def _queue_checkpoint(self, task: Task, body: UnpackBody, *, due: int) -> None:
        """In the reader's thread (or once the readers are over): a checkpoint at the
        walk's last member boundary, if ``due`` bytes past the last one, to the syncer."""
        walk = body.walk
        stale = body.staged_generation != body.generation
        if walk is None or body.verdict is not None or body.failed or stale:
            return
        boundary, count = walk.checkpoint
        if not checkpoint_due(boundary, body.saved, every=due):
            return
        checkpoint = body.ledger.checkpoint(boundary, walk.entries, body.members, count)
        files, folders = list(body.unsynced.files), set(body.unsynced.folders)
        body.unsynced.files.clear()
        body.unsynced.folders.clear()
        record = (task, body.staged_generation, checkpoint)
        self._syncer.submit(self._checkpoint, files, folders, record)
        body.saved = boundary

    def synced(self) -> None:
        """Wait for the checkpoints' syncs queued so far."""
        self._syncer.submit(lambda: None).result()

    # -- the sink ---------------------------------------------------------------------

    def allocate(self, length: int) -> PartBuffer:
        """Pages of its own where members are written direct from it: a member's data then
        lies in memory aligned as its offset in the tar is (to 512 bytes), as the disk
        wants. Private: the process's own memory, as a bytearray's is (not shared, which
        Linux keeps as files of a hidden tmpfs)."""
        if not self.direct:
            return super().allocate(length)
        return mmap.mmap(-1, length, flags=mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS)

    def dispatch(self, task: Task, body: StreamedBody, number: int, buffer: PartBuffer) -> bool:
        """Nothing but the reader needs a part."""
        return False

    def consume(self, task: Task, body: StreamedBody, pieces: list[Piece]) -> None:
        """In the shard's reader thread: each piece into its member's staged file."""
        assert isinstance(body, UnpackBody)
        body.write_all(pieces, self._writers)
        self._queue_checkpoint(task, body, due=self.every)

    def refuse_direct(self) -> None:
        """The disk refused a direct write (in a writer thread): none from now on."""
        if self.direct:
            self.direct = False
            log.info(
                "%s: the disk refuses direct writes; members are written through the page"
                " cache from now on",
                self.config.paths.staging,
            )

    def cannot_write(self, task: Task, body: StreamedBody, error: OSError) -> None:
        """The run ends (a full disk is every shard's); the shard's last checkpoint is
        the last one queued, whose members are whole."""
        assert isinstance(body, UnpackBody)
        body.failed = True
        where = error.filename or body.staging
        self.abort(StorageError(f"{where}: cannot write a member: {error.strerror}"))

    # -- the Kind -----------------------------------------------------------------------

    def prepare(self, link: Link) -> Task:
        """The task of ``link`` as start-up reconciles it; a shard left to fetch with no
        tar streamed (from its checkpoint, if it has one), anything else whole."""
        task = startup.prepare(self.run, link)
        if not self._streamed(task):
            if task.outcome is None and self.run.extracts(task):
                self.sync_each(link.name)
            return task
        store = self.run.store
        body = task.body = UnpackBody(self, staging=self.config.paths.staged(link.name))
        saved = load_resume(store, task.id, task.generation)
        if saved is None or saved.next is None or task.size is None:
            shutil.rmtree(body.staging, ignore_errors=True)
            return task
        try:
            body.members = _prepare_staging(
                body.staging, saved, shard=link.name, unsynced=body.unsynced
            )
            body.ledger = Ledger(saved)
        except CorruptArchiveError:  # a staged member is gone: from the start again
            log.warning("%s: a staged member is gone; extracting it from the start", link.name)
            shutil.rmtree(body.staging, ignore_errors=True)
            task.generation, task.size = store.restart(task.id), None
            return task
        body.saved = body.kept_below = saved.next
        body.plan = plan = PartPlan.for_size(task.size, preferred=PART)
        body._start(task, plan, walked=WalkPoint(saved.next, saved.entries))
        log.info("%s: goes on from its checkpoint at byte %d", link.name, saved.next)
        return task

    def sync_each(self, shard: str) -> None:
        """``shard`` is extracted from a partial tar: from now on, a checkpoint syncs
        each member by an ``fsync`` of its own."""
        if self.whole_sync:
            log.debug(
                "%s is extracted from a partial tar: staged members are synced by an fsync"
                " each from now on",
                shard,
            )
        self.whole_sync = False

    def _streamed(self, task: Task) -> bool:
        """A shard to fetch, whose checksum (if any) is not to be checked, and of which no
        partial tar holds bytes."""
        return (
            task.outcome is None
            and self.run.extracts(task)
            and task.name not in self.config.checksums
            and not task.recorded
            and task.unrecorded_final is None
            and not self.config.paths.partial(task.name).exists()
        )

    def save(self) -> None:
        """The shards that started over voided, the shards identified, then the
        checkpoints synced of the versions still fetched."""
        store = self.run.store
        with self.run.lock:
            voided, self.voided = self.voided, []
            identified, self.identified = self.identified, []
            records = [
                (task.id, task.generation, checkpoint)
                for task, generation, checkpoint in self.records
                if isinstance(task.body, UnpackBody) and task.body.generation == generation
            ]
            self.records = []
        for file_id in voided:
            store.restart(file_id)
        for file_id, size, validator in identified:
            store.set_identity(file_id, size, validator)
        for file_id, generation, checkpoint in records:
            save_resume(store, file_id, generation, checkpoint)

    def close(self) -> None:
        """Once the readers are over: a last checkpoint of each shard left unfinished
        (a stop keeps every member staged up to its last boundary), then saved."""
        self.close_readers()
        self._writers.shutdown(wait=True)
        for task in self.run.tasks:
            body = task.body
            if isinstance(body, UnpackBody):
                body.close_files()  # members cut short
                if task.outcome is None or task.outcome.state != "done":
                    self._queue_checkpoint(task, body, due=1)
        self._syncer.shutdown(wait=True)
        self.run.saving(self.save)


@dataclass(eq=False)
class UnpackBody(StreamedBody):
    """One shard extracted as it streams: its members staged as the walk meets them."""

    staging: Path
    members: list[Member] = field(default_factory=list)
    """The members staged, in the tar's order (the reader's)."""
    staged_generation: int = 0
    """The body's generation whose members are staged (the reader's)."""
    open: dict[int, int] = field(default_factory=dict)
    """Descriptors of the staged files being written, by their data's offset."""
    direct: set[int] = field(default_factory=set)
    """Those of them written direct still (opened with ``O_DIRECT``)."""
    unsynced: _Unsynced = field(default_factory=_Unsynced)
    ledger: Ledger = field(default_factory=Ledger)
    """The checkpoints of the members staged (the reader's)."""
    saved: int = 0
    """The member boundary of the last checkpoint queued."""
    kept_below: int = 0
    """The checkpoint a rerun went on from: the parts below it are not fetched."""
    failed: bool = False
    """A member could not be written: no checkpoint follows (it might name that one)."""

    @property
    def unpacks(self) -> Unpacks:
        assert isinstance(self.streams, Unpacks)
        return self.streams

    # -- the sink ---------------------------------------------------------------------

    def held(self) -> Collection[int]:
        plan = self.plan
        if plan is None:
            return ()
        return {n for n in plan.numbers() if plan.span(n)[1] <= self.kept_below}

    def stretches(self, number: int, buffer: PartBuffer) -> list[Copied]:
        """The part's bytes from the checkpoint a rerun goes on from (the walk starts
        there: those below it are not read)."""
        assert self.plan is not None
        start, end = self.plan.span(number)
        start = max(start, self.kept_below)
        return [Copied(start, start, end - start)] if end > start else []

    def note_walk(self, task: Task) -> None:
        """Its checkpoints are the reader's (:meth:`Unpacks.consume`), at member
        boundaries, once the files before them are synced."""

    def go_whole(self, task: Task) -> str | None:
        """A server that ignores Range: the shard goes on as a whole tar, extracted as it
        arrives (from the checkpoint saved, if any), unless this run has streamed some of
        it already (its reader may still be writing into the staging folder)."""
        if self.received:
            return "the shard was streamed from ranged answers until now; run again"
        log.info("%s: the server ignores Range; it is fetched as a whole tar", task.name)
        self.unpacks.sync_each(task.name)
        self.generation += 1
        self._let_go()
        task.body = None
        return None

    def forget_output(self, task: Task) -> None:
        """The old version's checkpoint is void (in the store at the next save, the
        store counting generations as the task does), and its staged files (removed by
        the reader once the new version's walk meets its first member)."""
        task.generation += 1
        self.kept_below = 0
        self.unpacks.voided.append(task.id)

    def _tar_walk(self, shard: str, size: int, walked: WalkPoint | None) -> TarWalk:
        return TarWalk(
            shard,
            size,
            every_member,
            layout=self.unpacks.layout,
            start=walked.next if walked else 0,
            entries=walked.entries if walked else (),
            on_member=functools.partial(self._found, self.generation),
            gather=False,  # a member cut by a part's end is written in two pieces
        )

    def _found(self, generation: int, found: Found) -> None:
        """In the reader thread: a member's header of the walk of body ``generation`` is
        read; its data comes next."""
        if generation != self.staged_generation:  # the shard started over
            self.close_files()
            shutil.rmtree(self.staging, ignore_errors=True)
            self.members, self.unsynced, self.saved, self.ledger = [], _Unsynced(), 0, Ledger()
            self.staged_generation = generation
        entry = found.entry
        self.members.append(Member(found.target, entry.offset, entry.size, found.header.mtime))
        path = self.staging / found.target
        self.unsynced.new_folder(path.parent)
        unpacks = self.unpacks
        direct = unpacks.direct and entry.size >= DIRECT_BLOCK
        fd = open_member(path, direct=direct)
        self.unsynced.new_file(path)
        if not entry.size:
            os.close(fd)
            return
        self.open[entry.offset] = fd
        if direct:  # its blocks are allocated by the write, all at once
            self.direct.add(entry.offset)
        elif unpacks.reserving:
            unpacks.reserving = reserve(fd, entry.size)

    def write_all(self, pieces: list[Piece], writers: Executor) -> None:
        """In the reader thread: each piece into its member's file, all written when this
        returns. Those of members written direct are shared among ``writers`` by member
        (in order within each), where there are two members or more."""
        groups: list[list[Piece]] = [[] for _ in range(WRITERS)]
        members: dict[int, int] = {}
        for piece in pieces:
            key = piece.entry.offset
            if key in self.direct:
                groups[members.setdefault(key, len(members)) % WRITERS].append(piece)
            else:
                self.write(piece)
        if len(members) < 2:
            for group in groups:
                self._write_each(group)
            return
        futures = [writers.submit(self._write_each, group) for group in groups if group]
        wait(futures)
        for future in futures:
            future.result()  # the first error, once none is writing

    def _write_each(self, pieces: list[Piece]) -> None:
        for piece in pieces:
            self.write(piece)

    def write(self, piece: Piece) -> None:
        """``piece`` into its member's file; closed once whole."""
        key = piece.entry.offset
        fd, data, at = self.open[key], piece.data, piece.at
        if key in self.direct:
            cut = direct_length(piece.entry.size, at, len(data))
            if cut and write_direct(fd, data[:cut], at):
                data, at = data[cut:], at + cut
            elif cut:  # refused, and fd writes through the page cache now
                self.direct.discard(key)
                self.unpacks.refuse_direct()
            if data and key in self.direct:  # its last block
                write_cached(fd)
                self.direct.discard(key)
        if data:
            write_at(fd, [data], at)
        if piece.last:
            self.direct.discard(key)
            if not self.unpacks.direct:  # (else a block at most is in the page cache)
                start_writeback(fd)  # the disk starts now; the checkpoint's sync finds less
            os.close(self.open.pop(key))

    def close_files(self) -> None:
        """Close the staged files of members cut short (the reader's, or once it is over)."""
        for fd in self.open.values():
            os.close(fd)
        self.open.clear()

    # -- Body ---------------------------------------------------------------------------

    @property
    def done_bytes(self) -> int:
        """The bytes of the parts read, which are the first ones: where the last ends."""
        plan = self.plan
        return plan.span(self.next_read - 1)[1] if plan and self.next_read > 1 else 0

    @property
    def complete(self) -> bool:
        if self.verdict is not None:
            return not self.fetching
        plan, walk = self.plan, self.walk
        if plan is None or self.todo or self.parts or self.fetching:
            return False
        return self.next_read > plan.count and walk is not None and walk.finished

    def publish(self, task: Task) -> str:
        """In the publisher's thread: the staged files synced, moved into place, the
        shard recorded extracted."""
        if self.verdict is not None:
            shutil.rmtree(self.staging, ignore_errors=True)
            raise self.verdict
        unpacks = self.unpacks
        unpacks.synced()
        self.unsynced.sync(whole=unpacks.whole_sync, drop=not unpacks.direct)
        layout = unpacks.layout
        report = ExtractReport(
            shard=task.name,
            index=tuple(self.members),
            digest=None,
            warnings=tuple(missing_partners([m.path for m in self.members], task.name)),
        )
        for warning in report.warnings:
            log.warning("%s", warning)
        publish(report, staging=self.staging, out=unpacks.config.out, layout=layout)
        store = unpacks.run.store
        index = [(str(m.path), m.offset, m.size) for m in self.members]
        store.set_extracted(task.id, layout, index)
        store.set_status(task.id, "done")
        return f"{len(self.members)} files extracted"

    def record_status(self, task: Task, status: Status, message: str | None) -> None:
        with self.unpacks.run.lock:
            self._let_go()
        self.unpacks.run.store.set_status(task.id, status, message)
