"""Waiting in a test for a condition, never for a fixed time.

A fixed sleep is either too short on a loaded machine (the test flakes) or longer than
needed everywhere else. :func:`wait_for` polls the condition instead; its ``timeout`` is
a hang guard, generous on purpose: it only stops a test whose condition never comes,
and says which one.
"""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Callable
from types import FrameType
from typing import Any, TypeVar

import pytest

T = TypeVar("T")

POLL_INTERVAL = 0.02
"""How often the condition is looked at (seconds): often enough for a test to go on
soon after it holds, rarely enough not to take the CPU from the process under test."""


def wait_for(
    condition: Callable[[], T],
    *,
    timeout: float,
    message: str,
    process: subprocess.Popen[Any] | None = None,
) -> T:
    """Return the first true value of ``condition()``.

    ``message`` names what is awaited ("half the file recorded"). The test fails when it is
    still false after ``timeout`` seconds, or, with ``process`` given, as soon as that
    process has ended without it (its output shown).
    """
    deadline = time.monotonic() + timeout
    while not (value := condition()):
        if process is not None and process.poll() is not None:
            output = process.communicate()
            pytest.fail(f"waited for {message}, but the process ended first: {output}")
        if time.monotonic() > deadline:
            pytest.fail(f"waited {timeout:g} s for {message} in vain")
        time.sleep(POLL_INTERVAL)
    return value


def inside(thread: int, function: str) -> bool:
    """Whether the thread ``thread`` (an ident) is inside a call of ``function`` now:
    to land a signal in exactly that call."""
    frame: FrameType | None = sys._current_frames().get(thread)
    while frame is not None:
        if frame.f_code.co_name == function:
            return True
        frame = frame.f_back
    return False
