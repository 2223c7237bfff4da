"""One event loop: libcurl's multi interface, driven by ``epoll`` from one thread.

Chosen by measurement (``benchmarks/transport_choices.py``, README "Performance"):
libcurl does TLS and HTTP in C with the GIL released, so a thread can drive many
connections while Python sees only a callback per received chunk (one TLS record,
16 KiB), gathered into blocks before each ``pwrite``. Every transfer speaks HTTP/1.1
on a connection of its own, kept alive between requests: HTTP/2 would multiplex
them all over one TCP connection and throw away what many connections win against
a per-connection limit. :class:`~sa1b.net.transport.Transport` runs one loop per
core.

A loop asks the :class:`RequestSource` for a :class:`Request` whenever one of its
slots is free and below the :class:`~sa1b.net.governor.Governor`'s target,
hands the final response head and then every body chunk to the request's
:class:`Receiver` (never a byte before the head was judged), and ends each request
exactly once with :meth:`Receiver.end`: with None, or with the :mod:`sa1b.errors`
error that stopped it. It enforces the head deadline and the speed floor
(:class:`~sa1b.net.watchdog.Watchdog`) and the ``--max-rate`` cap (by pausing
transfers), and refuses, through libcurl's options, every redirect from https to
http and every scheme but http(s). TLS is always verified. A request that fails before
its answer began, on a connection kept from an earlier request, goes again once on a
new connection: bytes a server sent after a complete body wait on the kept connection
and read as the next status line (libcurl closes a connection a request failed on).
"""

from __future__ import annotations

import contextlib
import logging
import os
import select
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import pycurl

from sa1b.errors import BadResponseError, FatalTransferError, StallError, TransferError
from sa1b.links import redact
from sa1b.net.failures import KEPT_CONNECTION_FAULTS, PUSHBACK, translate
from sa1b.net.heads import Head, HeadError, HeadReader
from sa1b.net.options import MAX_REDIRECTS, TransportOptions, system_ca_folder
from sa1b.net.watchdog import Watchdog
from sa1b.redaction import clean

log = logging.getLogger(__name__)

PUSHBACK_STATUSES = (429, 503)
TICK = 0.1
"""Seconds between checks of deadlines, pauses and the governor."""
PLAIN_BUFFER = 512 * 1024
"""libcurl's receive buffer for plain HTTP: bigger reads, fewer callbacks."""
TLS_BUFFER = 64 * 1024
"""For HTTPS, where a read returns one TLS record (16 KiB) whatever the buffer."""
SUPPRESS_CONNECT_HEADERS = 265
"""``CURLOPT_SUPPRESS_CONNECT_HEADERS`` (libcurl 7.54), which pycurl has no name for: a
proxy's answer to ``CONNECT`` never reaches the head reader as if the server sent it
(its status is read apart, ``HTTP_CONNECTCODE``)."""


class Receiver(Protocol):
    """What a request's answer goes to; implemented above the transport."""

    def head(self, head: Head) -> bool:
        """The final response head, before any body byte; False ends the request."""
        ...

    def body(self, data: bytes) -> bool:
        """A chunk of the body, in order; False ends the request."""
        ...

    def end(self, error: TransferError | None) -> None:
        """The request is over: None when it ended cleanly or as the receiver asked."""
        ...


@dataclass(frozen=True, slots=True)
class Request:
    """A GET of ``url`` (sent byte for byte) with extra ``headers``."""

    url: str
    headers: tuple[str, ...]
    receiver: Receiver


class RequestSource(Protocol):
    """Where the loop gets work, for each of its numbered slots."""

    def next_request(self, slot: int) -> Request | None:
        """Work for connection ``slot``, or None when there is none right now; a slot
        that gets None holds nothing, so every idle slot would get None too."""
        ...

    def park(self, slot: int) -> None:
        """Connection ``slot`` is not wanted for now (the governor lowered the
        target): give back whatever work it holds."""
        ...

    @property
    def finished(self) -> bool:
        """True when no request will ever be asked for again."""
        ...


class Shared(Protocol):
    """What every loop of a transport shares (:class:`~sa1b.net.transport.Transport`)."""

    options: TransportOptions
    source: RequestSource
    clock: Callable[[], float]
    limited: bool

    @property
    def target(self) -> int:
        """How many connections are wanted now (slots below it may work)."""
        ...

    def take(self, amount: int, now: float) -> float:
        """Tokens of the ``--max-rate`` bucket: seconds to wait (only when ``limited``)."""
        ...

    def pushed_back(self) -> None:
        """The server shed load (a 429/503, a reset, a refused connect)."""
        ...

    def tend(self, now: float) -> None:
        """The first loop's tick: let the governor look at the whole transport."""
        ...


class _Transfer:
    """One slot's easy handle and the request it is serving."""

    def __init__(self, loop: CurlLoop, slot: int) -> None:
        self.loop = loop
        self.slot = slot
        self.easy = pycurl.Curl()
        self.request: Request | None = None
        self.heads = HeadReader()
        self.watchdog: Watchdog | None = None
        self.answered = False
        self.stopped = False
        self.failure: TransferError | None = None
        self.received = 0
        self.resume_at = 0.0
        self.paused = False
        self.fresh = False

    def begin(self, request: Request, now: float, *, fresh: bool = False) -> None:
        """Start ``request``; ``fresh``: on a new connection, not a kept one."""
        self.request = request
        self.heads = HeadReader()
        self.watchdog = Watchdog(self.loop.shared.options.timeouts, now)
        self.answered = self.stopped = self.paused = False
        self.failure = None
        self.received = 0  # resume_at stays: the next request waits out the last one's debt
        self.fresh = fresh
        configure(self.easy, request, self.loop.shared.options, ca_folder=self.loop.ca_folder)
        self.easy.setopt(pycurl.FRESH_CONNECT, int(fresh))
        self.easy.setopt(pycurl.HEADERFUNCTION, self.on_header)
        self.easy.setopt(pycurl.WRITEFUNCTION, self.on_write)

    def failed_on_kept_connection(self, code: int) -> bool:
        """The request failed before any answer began, on a connection kept from an
        earlier request: the fault may be the connection's (bytes a server sent after
        a complete body wait there and read as this answer's status line; a connection
        the server closed while idle), so it deserves one more try on a new one. libcurl
        has closed the failed connection already; a stall is never sent again (the
        deadlines are the user's), nor what the receiver stopped or a bug ended."""
        if self.fresh or self.stopped or self.answered or self.heads.final:
            return False
        failure = self.failure
        if failure is None and code not in KEPT_CONNECTION_FAULTS:
            return False
        if failure is not None and type(failure) is not BadResponseError:  # a bug, a stall
            return False
        try:
            connects: int = self.easy.getinfo(pycurl.NUM_CONNECTS)
        except pycurl.error:
            return False
        return connects == 0

    # -- libcurl's callbacks (in the loop thread, inside socket_action) --------

    def on_header(self, line: bytes) -> int | None:
        try:
            self.heads.feed(line)
        except HeadError as error:
            self.failure = BadResponseError(
                f"malformed response: {clean(str(error))}", url=self.url
            )
            return 0
        except Exception as error:  # a bug: end this request loudly, keep the loop alive
            log.exception("internal error while reading a head from %s", self.url)
            self.failure = FatalTransferError(f"internal error: {error!r}", url=self.url)
            return 0
        return None

    def on_write(self, data: bytes) -> int | None:
        try:
            if not self.answered and not self.deliver_head():
                return 0
            loop = self.loop
            if loop.shared.limited:
                now = loop.shared.clock()
                if self.resume_at > now:  # libcurl keeps the chunk until unpaused
                    self.paused = True
                    return pycurl.WRITEFUNC_PAUSE
                if wait := loop.shared.take(len(data), now):
                    self.resume_at = now + wait
            self.received += len(data)
            loop.received += len(data)
            assert self.request is not None
            if not self.request.receiver.body(data):
                self.stopped = True
                return 0
            return None
        except Exception as error:  # a bug: end this request loudly, keep the loop alive
            log.exception("internal error while receiving %s", self.url)
            self.failure = FatalTransferError(f"internal error: {error!r}", url=self.url)
            return 0

    def deliver_head(self) -> bool:
        """Give the receiver the final head (once); False when the request must end."""
        self.answered = True
        head = self.heads.final
        if head is None or head.status < 200 or self.heads.incomplete:
            self.failure = BadResponseError("a body without a complete response head")
            return False
        self.loop.answered(head)
        assert self.request is not None
        if not self.request.receiver.head(head):
            self.stopped = True
            return False
        return True

    # -- endings (in the loop thread, outside libcurl's callbacks) -------------

    def finish(self, code: int, message: str) -> None:
        """The request is over; tell the receiver why, exactly once."""
        request = self.request
        assert request is not None
        error: TransferError | None = self.failure
        if error is None and not self.stopped:
            if code:
                error = translate(
                    code,
                    message,
                    url=redact(request.url),
                    answered=self.heads.final is not None,
                    redirected=self._redirected(),
                    connect_status=self._connect_status(),
                    proxy=self.proxy,
                )
                if code in PUSHBACK:
                    self.loop.shared.pushed_back()
            elif not self.answered:
                self.deliver_head()
                error = self.failure
        final = self.heads.final
        if error is not None and not self.answered and final and final.status >= 200:
            self.deliver_head()  # an error page cut short still tells its status
        self.request = None
        request.receiver.end(error)

    def _redirected(self) -> bool:
        final = self.heads.final
        return final is not None and 300 <= final.status < 400

    @property
    def proxy(self) -> str:
        """The proxy the request goes through, as shown to people; "" without one."""
        proxy = self.loop.shared.options.proxies.for_url(self.request.url) if self.request else None
        return proxy.shown if proxy else ""

    def _connect_status(self) -> int:
        try:
            status: int = self.easy.getinfo(pycurl.HTTP_CONNECTCODE)
        except pycurl.error:
            return 0
        return status

    @property
    def url(self) -> str:
        """The request's URL without its signature, for messages."""
        return redact(self.request.url) if self.request else ""


class CurlLoop:
    """Runs requests on its ``slots`` (connection numbers) until the source is done.

    :meth:`run` blocks in the thread that owns the loop; :meth:`stop` and
    :meth:`wake` may be called from any thread.
    """

    def __init__(self, shared: Shared, slots: Sequence[int], *, first: bool) -> None:
        self.shared = shared
        self.slots = tuple(slots)
        self.first = first
        self.received = 0
        """Body bytes received by this loop's requests so far."""
        self.ca_folder = system_ca_folder() if shared.options.ca_bundle is None else None
        self._transfers: dict[int, _Transfer] = {}
        self._busy: dict[int, _Transfer] = {}
        self._by_handle: dict[int, _Transfer] = {}
        self._stopping = threading.Event()
        self._closing = False
        self._dirty = True
        self._timer_at: float | None = None
        self._multi = pycurl.CurlMulti()
        self._epoll = select.epoll()
        self._watched: set[int] = set()
        """Sockets registered with ``_epoll``: registering is one call, not a failed
        ``modify`` and then a ``register`` for every request on a kept connection."""
        self._wakeup = os.eventfd(0, os.EFD_NONBLOCK | os.EFD_CLOEXEC)
        self._epoll.register(self._wakeup, select.EPOLLIN)

    @property
    def busy(self) -> int:
        """Connections with a request in flight."""
        return len(self._busy)

    def stop(self) -> None:
        self._stopping.set()
        self.wake()

    def wake(self) -> None:
        """From any thread: look for work now (a file ended, a stop), not at the next tick."""
        with contextlib.suppress(OSError):  # closed: the loop has ended anyway
            os.eventfd_write(self._wakeup, 1)

    # -- the loop ----------------------------------------------------------------

    def run(self) -> None:
        multi = self._multi
        multi.setopt(pycurl.M_PIPELINING, 0)  # no HTTP/2 multiplexing: a connection each
        multi.setopt(pycurl.M_MAXCONNECTS, len(self.slots))
        multi.setopt(pycurl.M_MAX_HOST_CONNECTIONS, len(self.slots))
        multi.setopt(pycurl.M_SOCKETFUNCTION, self._on_socket)
        multi.setopt(pycurl.M_TIMERFUNCTION, self._on_timer)
        clock, source = self.shared.clock, self.shared.source
        next_tick = clock()
        try:
            while not self._stopping.is_set():
                now = clock()
                if now >= next_tick:
                    self._tend(now)
                    next_tick = now + TICK
                    self._dirty = True
                if self._dirty:
                    self._fill(now)
                if not self._busy and source.finished:
                    return
                self._wait(min(next_tick, self._timer_at or next_tick))
                self._reap()
        finally:
            self._close()

    def _fill(self, now: float) -> None:
        """Start requests on free slots below the target, while the source has work."""
        self._dirty = False
        target = self.shared.target
        for slot in self.slots:
            if slot >= target:
                return
            if slot not in self._busy and not self._start(slot, now):
                return

    def _start(self, slot: int, now: float) -> bool:
        """Ask the source for ``slot``'s next request and start it; False if none."""
        request = self.shared.source.next_request(slot)
        if request is None:
            return False
        transfer = self._transfers.get(slot)
        if transfer is None:
            transfer = self._transfers[slot] = _Transfer(self, slot)
            self._by_handle[id(transfer.easy)] = transfer
        transfer.begin(request, now)
        self._busy[slot] = transfer
        self._multi.add_handle(transfer.easy)
        return True

    def _wait(self, until: float) -> None:
        """Wait for sockets (or a timer) and let libcurl work on what is ready."""
        timeout = max(0.0, until - self.shared.clock())
        multi = self._multi
        for fd, events in self._epoll.poll(timeout):
            if fd == self._wakeup:
                with contextlib.suppress(BlockingIOError):
                    os.eventfd_read(self._wakeup)
                self._dirty = True
                continue
            mask = 0
            if events & select.EPOLLIN:
                mask |= pycurl.CSELECT_IN
            if events & select.EPOLLOUT:
                mask |= pycurl.CSELECT_OUT
            if events & (select.EPOLLERR | select.EPOLLHUP):
                mask |= pycurl.CSELECT_ERR
            multi.socket_action(fd, mask)
        if self._timer_at is not None and self.shared.clock() >= self._timer_at:
            self._timer_at = None
            multi.socket_action(pycurl.SOCKET_TIMEOUT, 0)

    def _reap(self) -> None:
        """End the requests libcurl has finished."""
        while True:
            queued, done, failed = self._multi.info_read()
            for easy in done:
                self._end(self._by_handle[id(easy)], 0, "")
            for easy, code, message in failed:
                self._end(self._by_handle[id(easy)], code, message)
            if not queued:
                return

    def _end(self, transfer: _Transfer, code: int, message: str) -> None:
        """End a request; its slot goes straight on with its job, or is parked."""
        slot = transfer.slot
        self._multi.remove_handle(transfer.easy)
        if not self._closing and transfer.failed_on_kept_connection(code):
            assert transfer.request is not None
            log.debug(
                "%s: failed on a kept connection (%s); again on a new one", transfer.url, code
            )
            transfer.begin(transfer.request, self.shared.clock(), fresh=True)
            self._multi.add_handle(transfer.easy)
            return
        del self._busy[slot]
        self._dirty = True
        transfer.finish(code, message)
        if self._closing:
            return
        if slot >= self.shared.target or not self._start(slot, self.shared.clock()):
            self.shared.source.park(slot)

    def _tend(self, now: float) -> None:
        """Deadlines and pauses for ``--max-rate``; the first loop also asks the governor."""
        for transfer in list(self._busy.values()):
            if transfer.paused and transfer.resume_at <= now:
                transfer.paused = False
                assert transfer.watchdog is not None
                transfer.watchdog.rest(now, transfer.received)
                try:  # delivers the held chunk at once, which may end the request
                    transfer.easy.pause(pycurl.PAUSE_CONT)
                except pycurl.error as error:
                    self._end(transfer, *_code_and_message(error))
                continue
            if transfer.paused or transfer.request is None or transfer.watchdog is None:
                continue
            final = transfer.heads.final
            answered = final is not None and final.status >= 200  # not an interim 1xx
            reason = transfer.watchdog.check(now, answered=answered, received=transfer.received)
            if reason is not None:
                proxy = transfer.proxy
                via = f" (through the proxy {proxy})" if proxy else ""
                transfer.failure = StallError(f"stalled: {reason}{via}", url=transfer.url)
                self._end(transfer, 0, "")
        if self.first:
            self.shared.tend(now)

    def answered(self, head: Head) -> None:
        """A final head arrived: the source may have new work (a file's size is known)."""
        self._dirty = True
        if head.status in PUSHBACK_STATUSES:
            self.shared.pushed_back()

    def _close(self) -> None:
        self._closing = True
        for transfer in list(self._busy.values()):
            transfer.failure = None
            transfer.stopped = True  # stopped by us: the receiver keeps what it has
            self._end(transfer, 0, "")
        for transfer in self._transfers.values():
            transfer.easy.close()
        self._multi.close()
        self._epoll.close()
        os.close(self._wakeup)

    # -- libcurl's multi callbacks ----------------------------------------------

    def _on_socket(self, what: int, fd: int, multi: object, data: object) -> None:
        if what == pycurl.POLL_REMOVE:
            self._watched.discard(fd)
            with contextlib.suppress(OSError, ValueError):  # closed, or never registered
                self._epoll.unregister(fd)
            return
        mask = 0
        if what & pycurl.POLL_IN:
            mask |= select.EPOLLIN
        if what & pycurl.POLL_OUT:
            mask |= select.EPOLLOUT
        if fd in self._watched:
            try:
                self._epoll.modify(fd, mask)
                return
            except FileNotFoundError:  # closed and reused without a POLL_REMOVE
                pass
        try:
            self._epoll.register(fd, mask)
        except FileExistsError:  # registered before this loop knew it: cannot happen, but
            self._epoll.modify(fd, mask)  # a socket must never go unwatched
        self._watched.add(fd)

    def _on_timer(self, milliseconds: int) -> None:
        self._timer_at = None if milliseconds < 0 else self.shared.clock() + milliseconds / 1000


def configure(
    easy: pycurl.Curl, request: Request, options: TransportOptions, *, ca_folder: Path | None
) -> None:
    """Every option of one request, set afresh (the connection stays in the pool)."""
    timeouts = options.timeouts
    https = request.url.startswith("https:")
    easy.reset()
    easy.setopt(pycurl.URL, request.url)
    easy.setopt(pycurl.PATH_AS_IS, 1)  # the path exactly as the links file has it
    easy.setopt(pycurl.HTTP_VERSION, pycurl.CURL_HTTP_VERSION_1_1)
    easy.setopt(pycurl.NOSIGNAL, 1)
    easy.setopt(pycurl.PROTOCOLS, pycurl.PROTO_HTTP | pycurl.PROTO_HTTPS)
    easy.setopt(
        pycurl.REDIR_PROTOCOLS,
        pycurl.PROTO_HTTPS if https else pycurl.PROTO_HTTP | pycurl.PROTO_HTTPS,
    )
    easy.setopt(pycurl.FOLLOWLOCATION, 1)
    easy.setopt(pycurl.MAXREDIRS, MAX_REDIRECTS)
    easy.setopt(pycurl.SSL_VERIFYPEER, 1)
    easy.setopt(pycurl.SSL_VERIFYHOST, 2)
    if options.ca_bundle is not None:
        easy.setopt(pycurl.CAINFO, str(options.ca_bundle))
        easy.setopt(pycurl.PROXY_CAINFO, str(options.ca_bundle))
    elif ca_folder is not None:
        easy.setopt(pycurl.CAPATH, str(ca_folder))
        easy.setopt(pycurl.PROXY_CAPATH, str(ca_folder))
    proxy = options.proxies.for_url(request.url)
    easy.setopt(pycurl.PROXY, proxy.url if proxy else "")  # "": never the environment's
    easy.setopt(SUPPRESS_CONNECT_HEADERS, 1)
    easy.setopt(pycurl.CONNECTTIMEOUT_MS, max(1, int(timeouts.connect * 1000)))
    easy.setopt(pycurl.BUFFERSIZE, TLS_BUFFER if https else PLAIN_BUFFER)
    easy.setopt(
        pycurl.HTTPHEADER,
        [f"User-Agent: {options.user_agent}", "Accept-Encoding: identity", *request.headers],
    )


def _code_and_message(error: pycurl.error) -> tuple[int, str]:
    """libcurl's code and text from a pycurl exception."""
    code, message = (*error.args, 0, "")[:2]
    return (code if isinstance(code, int) else 0), str(message)
