"""The transport: event loops sharing one governor and one rate bucket.

One loop by default. libcurl releases the GIL while it decrypts and parses, so a
second loop in a second thread can decrypt on another core while the first runs
Python: fetching alone, two loops move 16% more over HTTPS on this 2-core machine
(``benchmarks/transport_choices.py``). Through the whole download (journal, blocks,
publication) they were no faster here and cost 10% more CPU, with the server on the
other core; one loop carries about 1.2 GB/s of TLS, more than a 10 Gbit/s link.
``DownloadConfig.loops`` is there for faster links and more cores.

Connection numbers are dealt to the loops in turn (slot ``i`` to loop
``i % loops``), so every loop has work as the governor's target moves; each loop
keeps its own sockets. What the loops share is guarded by one lock and touched
rarely: the governor (a tick of the first loop, a pushback) and the ``--max-rate``
bucket (a chunk's tokens).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

from sa1b.net.curl import CurlLoop, RequestSource
from sa1b.net.governor import Governor
from sa1b.net.options import TransportOptions
from sa1b.net.ratelimit import RateLimiter

log = logging.getLogger(__name__)


class Transport:
    """Runs requests from ``source`` on up to ``slots`` connections until it is done.

    :meth:`run` blocks until every loop has ended (the source is finished, or a
    stop); :meth:`stop` and :meth:`wake` may be called from any thread.
    """

    def __init__(
        self,
        options: TransportOptions,
        source: RequestSource,
        *,
        slots: int,
        governor: Governor,
        limiter: RateLimiter | None = None,
        loops: int = 1,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.options = options
        self.source = source
        self.governor = governor
        self.clock = clock
        self.limited = limiter is not None
        self._limiter = limiter
        self._lock = threading.Lock()
        self._failures: list[Exception] = []
        count = max(1, min(loops, slots))
        self._loops = [CurlLoop(self, range(k, slots, count), first=k == 0) for k in range(count)]

    @property
    def received(self) -> int:
        """Body bytes received by every request so far."""
        return sum(loop.received for loop in self._loops)

    @property
    def busy(self) -> int:
        """Connections with a request in flight."""
        return sum(loop.busy for loop in self._loops)

    @property
    def target(self) -> int:
        return self.governor.target

    def run(self) -> None:
        """Run the first loop here and the others in threads of their own."""
        threads = [
            threading.Thread(target=self._run, args=(loop,), name=f"sa1b-loop-{k}", daemon=True)
            for k, loop in enumerate(self._loops[1:], start=1)
        ]
        log.debug("transport: %d loops, %d connections to start", len(self._loops), self.target)
        for thread in threads:
            thread.start()
        try:
            self._loops[0].run()
        finally:
            for thread in threads:
                thread.join()
        if self._failures:
            raise self._failures[0]

    def _run(self, loop: CurlLoop) -> None:
        try:
            loop.run()
        except Exception as error:  # a bug: stop every loop, and say so from run()
            self._failures.append(error)
            self.stop()

    def stop(self) -> None:
        for loop in self._loops:
            loop.stop()

    def wake(self) -> None:
        for loop in self._loops:
            loop.wake()

    # -- what the loops share (curl.Shared) --------------------------------------

    def take(self, amount: int, now: float) -> float:
        assert self._limiter is not None
        with self._lock:
            return self._limiter.take(amount, now)

    def pushed_back(self) -> None:
        with self._lock:
            before = self.governor.target
            self.governor.pushback(self.clock())
            after = self.governor.target
        if after != before:
            log.info("the server pushes back: connections %d -> %d", before, after)
            self.wake()

    def tend(self, now: float) -> None:
        received, busy = self.received, self.busy
        with self._lock:
            before = self.governor.target
            after = self.governor.observe(now, received, busy)
        if after != before:
            log.debug("connections: %d -> %d", before, after)
            self.wake()
