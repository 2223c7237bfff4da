"""One download connection: a thread that asks for work, fetches it, writes it.

The connection does the I/O: ranged GETs through its own keep-alive
:class:`~sa1b.http.HTTPClient`, bodies read into one reused buffer and written with
``pwrite`` at their offsets, each write noted in the crash journal. Every decision
(which bytes next, what an answer means for the file, what a failure costs) is the
:class:`Scheduler`'s, which holds the lock and the state of every file.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable
from typing import Protocol

from sa1b.config import DownloadConfig
from sa1b.errors import (
    FatalTransferError,
    SA1BError,
    StorageError,
    TransferError,
    TruncatedBodyError,
)
from sa1b.http import HTTPClient, Response
from sa1b.journal import Journal
from sa1b.links import redact
from sa1b.ratelimit import RateLimiter
from sa1b.responses import BodyPlan, error_for_status, judge_range_answer
from sa1b.segments import Segment
from sa1b.tasks import Task

log = logging.getLogger(__name__)

THROTTLED_READ = 64 * 1024
"""Read size under ``--max-rate``: small enough for the cap to be smooth."""


class Scheduler(Protocol):
    """What a connection asks of the engine."""

    config: DownloadConfig
    journal: Journal
    limiter: RateLimiter | None
    fetched_by: list[int]

    @property
    def stopping(self) -> bool: ...

    def next_job(self) -> tuple[Task, Segment | None] | None: ...

    def next_span(self, task: Task, segment: Segment, length: int) -> tuple[int, int] | None: ...

    def adopt(self, task: Task, answer: BodyPlan, segment: Segment | None) -> Segment | None: ...

    def should_leave(self, task: Task, segment: Segment) -> bool: ...

    def release(self, task: Task, segment: Segment | None) -> None: ...

    def failed(self, task: Task, error: TransferError) -> None: ...

    def abort(self, error: SA1BError) -> None: ...

    def register(self, client: HTTPClient) -> None: ...

    def connection_closed(self) -> None: ...


class Connection:
    """The loop of one connection thread, and what it keeps between requests."""

    def __init__(
        self, scheduler: Scheduler, index: int, *, clock: Callable[[], float] = time.monotonic
    ) -> None:
        config = scheduler.config
        self.scheduler = scheduler
        self.index = index
        self.client = HTTPClient(timeouts=config.timeouts, proxies=config.proxies)
        self.view = memoryview(bytearray(config.read_size))
        self.pace = Pace(config)
        self.segment: Segment | None = None
        self._clock = clock

    def run(self) -> None:
        """Take jobs until there are none; a file's failure never ends the loop."""
        scheduler = self.scheduler
        scheduler.register(self.client)
        try:
            while (job := scheduler.next_job()) is not None:
                task, self.segment = job
                try:
                    self._work(task)
                except TransferError as error:
                    if not scheduler.stopping:  # errors of a stop's aborted reads are no news
                        scheduler.failed(task, error)
                except OSError as error:
                    scheduler.abort(StorageError(f"{task.name}: cannot write: {error.strerror}"))
                except StorageError as error:  # preallocation of a restarted file failed
                    scheduler.abort(error)
                except Exception as error:  # a bug: fail the file loudly, never a silent thread
                    log.exception("%s: internal error", task.name)
                    scheduler.failed(task, FatalTransferError(f"internal error: {error!r}"))
                finally:
                    scheduler.release(task, self.segment)
                    self.segment = None
        finally:
            self.client.close()
            scheduler.connection_closed()

    def _work(self, task: Task) -> None:
        if self.segment is None:
            self._request(task, None)
        while (segment := self.segment) and not self.scheduler.should_leave(task, segment):
            span = self.scheduler.next_span(task, segment, self.pace.length())
            if span is None:
                return
            self._request(task, span)

    def _request(self, task: Task, span: tuple[int, int] | None) -> None:
        """One GET, for ``span`` of this segment, or the first of a file (``span`` None)."""
        start, end = span or (0, self.scheduler.config.first_request)
        url = task.link.url
        headers = {"Range": f"bytes={start}-{end - 1}"}
        if span and (validator := task.validator.if_range()):
            headers["If-Range"] = validator
        began = self._clock()
        response = self.client.get(url, headers)
        try:
            if response.status not in (200, 206):
                raise error_for_status(
                    response.status,
                    response.headers,
                    response.read_some(),
                    now=time.time(),
                    name=task.name,
                    url=url,
                    redacted=redact(url),
                )
            answer = judge_range_answer(
                response.status,
                response.headers,
                start=start,
                end=end,
                size=task.size if span else None,
                validator=task.validator if span else None,
                name=task.name,
                url=redact(url),
            )
            self.segment = self.scheduler.adopt(task, answer, self.segment if span else None)
            if self.segment is None:
                return
            self._read_body(task, response, self.segment, answer.start, answer.length)
        finally:
            response.close()
        self.pace.observe(answer.length, self._clock() - began)

    def _read_body(
        self, task: Task, response: Response, segment: Segment, start: int, length: int
    ) -> None:
        """Write the body at its offsets; stop at the segment's end, which may shrink."""
        scheduler, view, index = self.scheduler, self.view, self.index
        readinto, journal, limiter, fetched = (
            response.readinto,
            scheduler.journal,
            scheduler.limiter,
            scheduler.fetched_by,
        )
        fd, offset, end = task.fd, start, start + length
        assert fd is not None
        chunk = len(view) if limiter is None else min(len(view), THROTTLED_READ)
        while offset < (limit := min(end, segment.end)):
            if scheduler.should_leave(task, segment):
                return
            wanted = min(chunk, limit - offset)
            if limiter is not None:
                limiter.take(wanted)
            n = readinto(view[:wanted])
            if not n:
                raise TruncatedBodyError("body ended early", name=task.name)
            written = 0
            while written < n:
                written += os.pwrite(fd, view[written:n], offset + written)
            offset += n
            segment.pos = offset
            journal.write(index, task.id, task.generation, segment.start, offset)
            fetched[index] += n
            task.failures = 0


class Pace:
    """Sizes one connection's requests to last about ``request_seconds`` each."""

    def __init__(self, config: DownloadConfig) -> None:
        self._config = config
        self._speed: float | None = None

    def observe(self, length: int, seconds: float) -> None:
        if length >= self._config.min_request and seconds > 0:
            self._speed = length / seconds

    def length(self) -> int:
        cfg = self._config
        if self._speed is None:
            return cfg.first_request
        wanted = int(self._speed * cfg.request_seconds)
        return max(cfg.min_request, min(cfg.max_request, wanted))
