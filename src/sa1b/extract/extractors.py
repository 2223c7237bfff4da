"""Run one extraction thread per shard in flight, each following its download.

The engine starts an extraction when a shard's partial file gets its plan, hands it
a ``wait(end)`` that returns once ``[0, end)`` is written, and collects the result
when the download is complete. A restarted download (the object changed, or a bad
digest) supersedes its extraction: the old thread's ``wait`` raises :class:`Superseded`
and a new one starts from byte 0. After a crash, an extraction whose tar was freed
behind it goes on from its saved checkpoint (:mod:`sa1b.holes`).
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from sa1b.errors import ExtractionError, SA1BError
from sa1b.extract.reader import Wait
from sa1b.extract.shard import ExtractReport, extract_shard
from sa1b.holes import CHECKPOINT_EVERY
from sa1b.layout import Layout
from sa1b.store.resume import PackedResume, Resume

log = logging.getLogger(__name__)


class Superseded(Exception):
    """Raised by ``wait`` when the download this extraction follows has restarted."""


@dataclass(eq=False)
class _Job:
    """One shard's extraction at one generation of its download."""

    name: str
    generation: int
    path: Path
    size: int
    wait: Wait
    digest_algorithm: str | None
    on_error: Callable[[ExtractionError], None] | None
    resume: Resume | None = None
    on_checkpoint: Callable[[PackedResume], None] | None = None
    done: threading.Event = field(default_factory=threading.Event)
    result: ExtractReport | SA1BError | None = None


class Extractors:
    """Extraction threads, one per shard and generation."""

    def __init__(
        self,
        *,
        staged: Callable[[str], Path],
        layout: Layout,
        checkpoint_every: int = CHECKPOINT_EVERY,
    ) -> None:
        self.staging = staged
        """The folder a shard is extracted into (the output's
        :meth:`~sa1b.store.paths.OutputPaths.staged`)."""
        self.layout = layout
        self.checkpoint_every = checkpoint_every
        self._jobs: dict[str, _Job] = {}
        self._threads: list[threading.Thread] = []
        self._lock = threading.Lock()

    def start(
        self,
        name: str,
        *,
        generation: int,
        path: Path,
        size: int,
        wait: Wait,
        digest_algorithm: str | None,
        on_error: Callable[[ExtractionError], None] | None = None,
        resume: Resume | None = None,
        on_checkpoint: Callable[[PackedResume], None] | None = None,
    ) -> None:
        """Extract ``path`` (the partial file of shard ``name``) as its bytes arrive.

        ``on_error`` hears of an unsafe or corrupt shard as soon as it is found, so
        that its download can stop early. ``resume`` and ``on_checkpoint``: see
        :func:`~sa1b.extract.shard.extract_shard`.
        """
        job = _Job(
            name, generation, path, size, wait, digest_algorithm, on_error, resume, on_checkpoint
        )
        with self._lock:
            current = self._jobs.get(name)
            if current is not None and current.generation == generation:
                return
            self._jobs[name] = job
            thread = threading.Thread(target=self._run, args=(job, current), name=f"sa1b-x-{name}")
            thread.daemon = True
            # Ended threads go: a run of thousands of shards keeps only those in flight.
            self._threads = [t for t in self._threads if t.is_alive()]
            self._threads.append(thread)
        thread.start()

    def _run(self, job: _Job, superseded: _Job | None) -> None:
        """Extract, once the extraction this one supersedes has ended: both use the
        shard's one staging folder, which this one starts afresh (the old one stops at
        its next wait for bytes or checkpoint, since its download moved on)."""
        if superseded is not None:
            superseded.done.wait()
        try:
            fd = os.open(job.path, os.O_RDONLY)
            try:
                job.result = extract_shard(
                    fd,
                    job.size,
                    shard=job.name,
                    staging=self.staging(job.name),
                    layout=self.layout,
                    wait=job.wait,
                    digest_algorithm=job.digest_algorithm,
                    resume=job.resume,
                    on_checkpoint=job.on_checkpoint,
                    checkpoint_every=self.checkpoint_every,
                )
            finally:
                os.close(fd)
        except Superseded:
            job.result = None
        except ExtractionError as error:
            log.info("%s: %s", job.name, error.message)  # reported once, by the run
            job.result = error
            if job.on_error is not None:
                job.on_error(error)
        except OSError as error:
            job.result = ExtractionError(f"cannot extract: {error}", shard=job.name)
        finally:
            job.done.set()

    def result(self, name: str, generation: int) -> ExtractReport | SA1BError | None:
        """Wait for shard ``name``'s extraction at ``generation``; None if it never ran.

        Collected once: the job is then let go, with its report of every member (about
        300 bytes each, 22,000 in a real shard), which a long run would otherwise hold for
        every shard it extracted (benchmarks/soak.py: 19 KiB a shard of 24 members).
        """
        with self._lock:
            job = self._jobs.get(name)
        if job is None or job.generation != generation:
            return None
        job.done.wait()
        with self._lock:
            if self._jobs.get(name) is job:
                del self._jobs[name]
        return job.result

    def join(self) -> None:
        with self._lock:
            threads = list(self._threads)
        for thread in threads:
            thread.join()
