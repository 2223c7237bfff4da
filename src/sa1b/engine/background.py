"""A thread whose end the calling thread can wait for even while Ctrl-C lands.

``Thread.join`` is not that on Python 3.11: a KeyboardInterrupt inside a
``join(timeout)`` of a thread still running marks it stopped (the ``except`` clause
added for bpo-45274 releases the lock the running thread holds), so every later
``join()`` returns at once and the caller closes the store, the journal and the files
while the thread still writes to them. Here the thread's end is an Event it sets
itself, and nothing calls ``Thread.join`` or ``is_alive`` (the same code underneath).
"""

from __future__ import annotations

import threading
from collections.abc import Callable

TICK = 0.1
"""Seconds between looks while :meth:`Background.join` waits."""


class Background:
    """Runs ``target`` in a daemon thread named ``name`` once :meth:`start` is called."""

    def __init__(self, target: Callable[[], None], *, name: str) -> None:
        self._target = target
        self._ended = threading.Event()
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)

    def start(self) -> None:
        self._thread.start()

    @property
    def running(self) -> bool:
        """True from :meth:`start` until ``target`` has returned (or raised). Not
        ``Thread.is_alive``, which a Ctrl-C can break the same way."""
        return self._thread.ident is not None and not self._ended.is_set()

    def wait(self, timeout: float) -> None:
        """Wait up to ``timeout`` seconds for ``target`` to return; a Ctrl-C is raised."""
        self._ended.wait(timeout)

    def join(self) -> None:
        """Wait until ``target`` has returned, however long and whatever interrupts:
        called once the thread was told to stop, so the wait is short, and whatever
        it writes to must stay open until it has ended."""
        while self.running:
            try:
                self._ended.wait(TICK)
            except KeyboardInterrupt:  # a second Ctrl-C: the stop is under way already
                continue

    def _run(self) -> None:
        try:
            self._target()
        finally:
            self._ended.set()
