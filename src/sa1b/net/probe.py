"""Ask the server before downloading: each file's size, and how fast it sends.

:func:`probe_sizes` sends a one-byte range request (``Range: bytes=0-0``) for every
link, many at once: a 206's ``Content-Range`` gives the total size, and a signed link
that allows only GET (a HEAD would be refused by some CDNs) answers it like any other.
A server that ignores ranges answers 200; its ``Content-Length`` is the size, and the
request ends there. :func:`probe_speed` fetches ranges of a few files on the
download's own connections for a few seconds and throws the bytes away.

Both run on the transport (:class:`~sa1b.net.transport.Transport`): the same TLS, proxies,
timeouts and redirects as a download; answers are judged by :mod:`sa1b.net.answers`.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass

from sa1b.errors import SA1BError, TransferError
from sa1b.links import Link, redact
from sa1b.net.answers import ErrorPage, judge_range_answer
from sa1b.net.curl import Request
from sa1b.net.governor import Governor, GovernorPolicy
from sa1b.net.heads import Head
from sa1b.net.options import TransportOptions
from sa1b.net.transport import Transport
from sa1b.versions import Validator


@dataclass(frozen=True, slots=True)
class SizeAnswer:
    """What the server said of one file: its size and validators, or why not."""

    name: str
    size: int | None = None
    validator: Validator | None = None
    error: SA1BError | None = None


def probe_sizes(
    links: Sequence[Link], options: TransportOptions, *, connections: int = 32
) -> list[SizeAnswer]:
    """Every link's answer to a one-byte range request, in the links' order."""
    source = _SizeSource(links)
    policy = GovernorPolicy.fixed(max(1, min(connections, len(links))))
    Transport(options, source, slots=policy.ceiling, governor=Governor(policy, 0.0)).run()
    return [source.answers[link.name] for link in links]


def probe_speed(
    files: Sequence[tuple[Link, int]],
    options: TransportOptions,
    policy: GovernorPolicy,
    *,
    seconds: float = 4.0,
    chunk: int = 8 * 1024 * 1024,
) -> float:
    """Bytes per second the server sends for ``seconds``, fetching ranges of ``chunk``
    bytes of ``files`` (link and size) on as many connections as ``policy`` opens."""
    source = _SpeedSource(files, chunk, deadline=time.monotonic() + seconds)
    transport = Transport(options, source, slots=policy.ceiling, governor=Governor(policy, 0.0))
    started = time.monotonic()
    timer = threading.Timer(seconds, transport.stop)
    timer.start()
    try:
        transport.run()
    finally:
        timer.cancel()
    elapsed = time.monotonic() - started
    return source.received / elapsed if elapsed > 0 else 0.0


class _SizeSource:
    """One one-byte request per link; each answer kept by name."""

    def __init__(self, links: Sequence[Link]) -> None:
        self.waiting = deque(links)
        self.answers: dict[str, SizeAnswer] = {}
        self.count = len(links)
        self.lock = threading.Lock()

    def next_request(self, slot: int) -> Request | None:
        with self.lock:
            if not self.waiting:
                return None
            link = self.waiting.popleft()
        return Request(link.url, ("Range: bytes=0-0",), _FirstByte(link, self))

    def park(self, slot: int) -> None:
        pass  # nothing is held between requests

    @property
    def finished(self) -> bool:
        with self.lock:
            return len(self.answers) == self.count

    def answered(self, answer: SizeAnswer) -> None:
        with self.lock:
            self.answers.setdefault(answer.name, answer)


class _FirstByte:
    """The receiver of one size request."""

    def __init__(self, link: Link, source: _SizeSource) -> None:
        self.link, self.source = link, source
        self.refusal: ErrorPage | None = None

    def head(self, head: Head) -> bool:
        self.refusal = ErrorPage.of(head)
        if self.refusal is not None:
            return True  # read its page: it tells an expired link from another refusal
        where = {"name": self.link.name, "url": redact(self.link.url)}
        try:
            plan = judge_range_answer(
                head.status, head.headers, start=0, end=1, size=None, validator=None, **where
            )
        except SA1BError as error:
            self.source.answered(SizeAnswer(self.link.name, error=error))
        else:
            self.source.answered(SizeAnswer(self.link.name, plan.total, plan.validator))
        return head.status == 206  # a whole object (200) is not read

    def body(self, data: bytes) -> bool:
        if self.refusal is not None:
            return self.refusal.add(data)
        return True

    def end(self, error: TransferError | None) -> None:
        if self.refusal is not None:
            error = self.refusal.error(self.link, now=time.time())
        if error is not None:
            error.name = error.name or self.link.name
        self.source.answered(SizeAnswer(self.link.name, error=error))


class _SpeedSource:
    """Ranges of ``chunk`` bytes of each file in turn, until the deadline."""

    def __init__(self, files: Sequence[tuple[Link, int]], chunk: int, *, deadline: float) -> None:
        self.ranges = deque(
            (link, start, min(start + chunk, size))
            for link, size in files
            for start in range(0, size, chunk)
        )
        self.deadline = deadline
        self.received = 0
        self.lock = threading.Lock()

    def next_request(self, slot: int) -> Request | None:
        with self.lock:
            if not self.ranges or time.monotonic() >= self.deadline:
                return None
            link, start, end = self.ranges.popleft()
        return Request(link.url, (f"Range: bytes={start}-{end - 1}",), _Counter(self))

    def park(self, slot: int) -> None:
        pass

    @property
    def finished(self) -> bool:
        with self.lock:
            return not self.ranges or time.monotonic() >= self.deadline


class _Counter:
    """Counts a speed request's body and drops it."""

    def __init__(self, source: _SpeedSource) -> None:
        self.source = source

    def head(self, head: Head) -> bool:
        return head.status == 206

    def body(self, data: bytes) -> bool:
        with self.source.lock:
            self.source.received += len(data)
        return time.monotonic() < self.source.deadline

    def end(self, error: TransferError | None) -> None:
        pass
