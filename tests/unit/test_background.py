"""``Background``: the calling thread waits for the thread's end even through Ctrl-C."""

from __future__ import annotations

import signal
import threading
import time
from types import FrameType

from sa1b.engine.background import Background
from tests.waiting import inside


def test_a_ctrl_c_during_join_waits_for_the_thread_all_the_same() -> None:
    main = threading.get_ident()
    interrupted = threading.Event()
    ended: list[str] = []

    def on_sigint(signum: int, frame: FrameType | None) -> None:
        interrupted.set()
        raise KeyboardInterrupt

    def target() -> None:
        while not inside(main, "join"):
            time.sleep(0.001)
        signal.pthread_kill(main, signal.SIGINT)
        interrupted.wait()
        ended.append("ended")

    previous = signal.signal(signal.SIGINT, on_sigint)
    try:
        background = Background(target, name="test")
        background.start()
        background.join()
    finally:
        signal.signal(signal.SIGINT, previous)
    assert interrupted.is_set() and ended == ["ended"]
    assert not background.running


def test_a_thread_never_started_is_not_waited_for() -> None:
    background = Background(lambda: None, name="never")
    background.join()
    assert not background.running
