"""The supervisor: builds a run's parts, runs them, and ends them cleanly.

One engine for every kind of item: whole files, shards walked member by member
(``--only``: each task carries a :class:`~sa1b.engine.walk.WalkBody`), and shards
streamed into multipart uploads (``-o s3://``: an :class:`~sa1b.engine.upload.
UploadBody`); what the bodies of a kind share is its :class:`~sa1b.engine.bodies.Kind`.
The transport runs in a thread of its own; the publisher and the extractors in theirs.
The calling thread supervises: every tick it reports progress and paces durability (a
commit about once a second, tars deleted once extracted every 15 s, writeback in
between; the kind's records saved (the walks' staged pieces written and synced first,
the uploads' parts taken), sooner when the kind asks (the disk behind, memory given
back), then the transport woken for the requests held back meanwhile); at the end,
however the run ends (done, Ctrl-C, a full disk), it stops the transport, lets the
publisher finish, syncs and records what was written, and closes every file.
"""

from __future__ import annotations

import functools
import logging
import shutil
import threading
import time
from collections.abc import Callable, Mapping, Sequence

from sa1b.config import DownloadConfig
from sa1b.engine import durability, startup
from sa1b.engine.background import Background
from sa1b.engine.bodies import Kind
from sa1b.engine.files import FileControl
from sa1b.engine.run import Run
from sa1b.engine.scheduler import Scheduler
from sa1b.engine.tasks import Task
from sa1b.engine.unpack import Unpacks
from sa1b.engine.walk import Walks, Wanted
from sa1b.errors import SA1BError, StorageError
from sa1b.expiry import forecast, remaining_bytes
from sa1b.extract.extractors import Extractors
from sa1b.holes import punches
from sa1b.links import Link
from sa1b.net.governor import Governor
from sa1b.net.ratelimit import RateLimiter
from sa1b.net.transport import Transport
from sa1b.progress import FINAL_STATES, FileOutcome, FileProgress, ProgressListener, Snapshot
from sa1b.sizes import NOMINAL_SHARD_SIZE
from sa1b.store.journal import Journal
from sa1b.store.resume import OtherRecord, load_packed_resume
from sa1b.store.state import StateStore

log = logging.getLogger(__name__)


class Engine:
    """Downloads ``links`` into ``config.out``; :meth:`run` blocks until all have ended."""

    def __init__(
        self,
        links: Sequence[Link],
        config: DownloadConfig,
        store: StateStore,
        *,
        listener: ProgressListener,
        others: Mapping[str, Sequence[OtherRecord]] | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.config = config
        self.listener = listener
        self._clock = clock
        self.run_state = run = Run(config, store, others=others or {})
        self.kind = kind = self._kind(run)
        self.tick_now = kind.tick_now if kind else threading.Event()
        """Set when the next tick should come at once: the transport ended, or the
        kind asks for a save (the walks' pieces waiting for the disk fill their budget)."""
        policy = kind.policy() if kind else config.connection_policy()
        slots = policy.ceiling
        self._extractors = (
            Extractors(
                staged=config.paths.staged,
                layout=config.extract.layout,
                checkpoint_every=config.extract.tar_window,
            )
            if config.extract and (kind is None or kind.whole_files)
            else None
        )
        self.files = FileControl(
            run, extractors=self._extractors, listener=listener, abort=self.abort
        )
        if kind is None or kind.whole_files:
            config.paths.partials.mkdir(parents=True, exist_ok=True)
        journal_path = config.paths.journal
        recovered = Journal.recover(journal_path)
        prepare = kind.prepare if kind else functools.partial(startup.prepare, run)
        run.tasks = [prepare(link) for link in links]
        startup.recover(run, recovered)
        self.journal = Journal(journal_path, slots=slots)
        self.scheduler = Scheduler(
            run,
            self.files,
            self.journal,
            slots=slots,
            per_file=config.connections_per_file or slots,
            max_files=kind.at_once(slots) if kind else config.max_files,
            ready_queue=kind.ready_queue if kind else False,
            abort=self.abort,
            clock=clock,
        )
        # Last: it holds sockets and descriptors that only its run() releases.
        self.transport = Transport(
            config.transport,
            self.scheduler,
            slots=slots,
            governor=Governor(policy, clock()),
            limiter=RateLimiter(config.max_rate, now=clock()) if config.max_rate else None,
            loops=config.loops,
            clock=clock,
        )
        self.files.wake = self.transport.wake
        if kind is not None:
            kind.settle = self.scheduler.settle

    def _kind(self, run: Run) -> Kind | None:
        """What the bodies of this run share: walks (``--only``), uploads (``-o s3://``),
        shards extracted with no tar (whenever their tars would not be kept), or none
        (whole files)."""
        config, extract = self.config, self.config.extract
        if config.upload is not None:
            # Imported here: botocore, which it needs, is imported for an s3:// output only.
            from sa1b.engine.uploads import Uploads

            return Uploads(run, abort=self.abort)
        if extract is None:
            return None
        if extract.only:
            return Walks(run, wanted=Wanted(extract.only), abort=self.abort)
        if punches(digest=False, keep_tars=extract.keep_tars, layout=extract.layout):
            return Unpacks(run, abort=self.abort)
        return None

    def run(self) -> list[FileOutcome]:
        """Download everything; returns each file's outcome. Re-raises KeyboardInterrupt."""
        run, config = self.run_state, self.config
        transport = Background(self._transport, name="sa1b-transport")
        started = self._clock()
        for outcome in (t.outcome for t in run.tasks if t.outcome):
            self.listener.finished(outcome)
        self.files.disk.start()
        self.files.publisher.start()
        last_commit = last_transient_commit = started
        warned_expiry = False
        history: list[tuple[float, int]] = [(started, 0)]
        try:
            transport.start()
            while transport.running or not self.files.publisher.idle:
                self.tick_now.wait(config.tick_interval)  # a tick, or sooner
                self.tick_now.clear()
                now = self._clock()
                if now - last_transient_commit >= config.transient_commit_interval:
                    durability.commit(run)
                    durability.copy_state(run)
                    last_commit = last_transient_commit = now
                elif now - last_commit >= config.commit_interval:
                    durability.commit(run, transient=False)
                    durability.copy_state(run)
                    last_commit = now
                else:
                    durability.start_writing_back(run)
                if self.kind is not None:
                    self._save_kind(self.kind)
                    self.transport.wake()  # the requests held back while the kind caught up
                history = [*history[-40:], (now, self.fetched)]
                snapshot = self._snapshot(now - started, history)
                self.listener.update(snapshot)
                if not warned_expiry and now - started >= config.expiry_check_after:
                    warned_expiry = True
                    self._warn_if_links_expire_first(snapshot)
                if run.fatal:
                    self._stop()
        except KeyboardInterrupt:
            self._stop()
            raise
        finally:
            self._finish(transport)
            now = self._clock()
            self.listener.update(self._snapshot(now - started, [*history, (now, self.fetched)]))
        if run.fatal:
            raise run.fatal
        return [task.outcome or _unfinished(task) for task in run.tasks]

    def _finish(self, transport: Background) -> None:
        """However the run ends: stop the transport and wait until its thread has
        ended (a request ending writes to the journal, the store and the files), let
        the publisher finish, record, close."""
        run = self.run_state
        self._stop()
        transport.join()
        self.files.publisher.close()
        self.files.disk.close()  # after the publisher, whose verdicts queue store writes
        if self.kind is not None:
            self._save_kind(self.kind)
            self.kind.close()
        if self._extractors is not None:
            self._extractors.join()
            for task in run.tasks:  # what a failed or interrupted shard left half-made,
                saved = load_packed_resume(run.store, task.id, task.generation)
                if saved is None:  # unless it can go on from a checkpoint
                    shutil.rmtree(self._extractors.staging(task.name), ignore_errors=True)
        durability.commit(run)
        durability.close_files(run)
        self.journal.close()

    def _save_kind(self, kind: Kind) -> None:
        """What the bodies reached saved (the walks' staged pieces written and synced
        first): a disk or a store that cannot take it ends the run, as a failed commit
        does."""
        self.run_state.saving(kind.save)

    @property
    def walked(self) -> int | None:
        """With ``--only``: the sizes of the shards walked (None: whole files)."""
        if self.kind is None:
            return None
        with self.run_state.lock:
            return self.kind.walked(self.run_state.tasks)

    @property
    def fetched(self) -> int:
        """Bytes received in this run (all files, all connections)."""
        return self.transport.received

    def cancel(self) -> None:
        """Stop soon, from any thread: connections finish their current read and leave."""
        self._stop()

    def abort(self, error: SA1BError) -> None:
        """End the whole run with ``error`` (a full disk, an internal error)."""
        self.run_state.fatal = error
        self._stop()

    def close_files(self) -> None:
        durability.close_files(self.run_state)

    def _stop(self) -> None:
        self.run_state.stop()
        self.transport.stop()  # every request ends within a tick, however slow its server

    def _transport(self) -> None:
        """The transport thread: its loop runs until every file has ended, or a stop."""
        try:
            self.transport.run()
        except Exception as error:  # a bug: end the run loudly rather than hang it
            log.exception("internal error in the transport")
            self.abort(StorageError(f"internal error in the transport: {error!r}"))
        finally:
            self.tick_now.set()  # the run is over: no need to wait for the tick

    def _warn_if_links_expire_first(self, snapshot: Snapshot) -> None:
        """Once the speed is known: say so if the run will likely outlive its links."""
        with self.run_state.lock:
            stamps = [
                stamp
                for task in self.run_state.tasks
                if task.state not in FINAL_STATES and (stamp := task.link.expires_at) is not None
            ]
        remaining = remaining_bytes(
            ((f.size, f.done) for f in snapshot.files if f.state not in FINAL_STATES),
            nominal=NOMINAL_SHARD_SIZE,
        )
        outlook = forecast(
            remaining=remaining, speed=snapshot.speed, expires=stamps, now=time.time()
        )
        if outlook is not None and outlook.too_late:
            log.warning("%s", outlook.warning())

    def _snapshot(self, elapsed: float, history: list[tuple[float, int]]) -> Snapshot:
        window = [h for h in history if h[0] >= history[-1][0] - 5.0] or history
        span = window[-1][0] - window[0][0]
        speed = (window[-1][1] - window[0][1]) / span if span > 0 else 0.0
        now, wall = self._clock(), time.time()
        with self.run_state.lock:
            files = tuple(
                FileProgress(
                    name=t.name,
                    state=t.state,
                    size=t.size,
                    done=t.done_bytes,
                    connections=t.connections,
                    retry_at=wall + t.not_before - now if _waiting(t, now) else None,
                    retry_reason=t.waiting_for,
                )
                for t in self.run_state.tasks
            )
        return Snapshot(
            files=files,
            fetched=self.fetched,
            elapsed=elapsed,
            speed=speed,
            connections=self.transport.busy,
        )


def _waiting(task: Task, now: float) -> bool:
    """The file waits out a retry delay: nothing of it in flight until ``not_before``."""
    return task.not_before > now and not task.connections and task.state not in FINAL_STATES


def _unfinished(task: Task) -> FileOutcome:
    return FileOutcome(task.name, "failed", task.size, f"interrupted at {task.progress} bytes")
