"""The servers the harness runs as child processes (nginx, SeaweedFS): launch, stop, ports.

:class:`ChildService` is a :class:`sa1b.cdn.serving.Service` whose server is a child
process: :func:`spawn` starts one in its own process group (a Ctrl-C to the tests is not
its business) that dies with the test process, :func:`end` stops it (the signal given,
then ``SIGKILL`` to the whole group after a timeout, workers it forked included), and
:attr:`ChildService.running` and :attr:`ChildService.pid` say what runs.

A killed pytest runs no fixture teardown, and a server left behind would hold its ports and
its data on. So :func:`spawn` runs the command under util-linux's ``setpriv --pdeathsig``,
which sets Linux's parent-death signal; the command keeps it across ``exec``. It fires when
the *thread* that started the server ends: start it from one that outlives the server (the
main thread of a test run). Without ``setpriv`` the server is started all the same.

A server that takes no port 0 is given ports from :func:`free_loopback_ports` and started
again on others when one was taken in between. Standard library only; it never prints.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
from collections.abc import Sequence
from typing import IO

from sa1b.cdn.serving import Service

__all__ = ["ChildService", "end", "free_loopback_ports", "spawn"]


def free_loopback_ports(count: int = 1) -> list[int]:
    """``count`` distinct loopback ports free a moment ago (all bound at once, then let go)."""
    with contextlib.ExitStack() as stack:
        ports = []
        for _ in range(count):
            sock = stack.enter_context(socket.socket(socket.AF_INET, socket.SOCK_STREAM))
            sock.bind(("127.0.0.1", 0))
            ports.append(sock.getsockname()[1])
        return ports


def spawn(
    command: Sequence[str],
    *,
    stdout: IO[bytes] | int,
    stderr: IO[bytes] | int,
    on_parent_death: signal.Signals = signal.SIGKILL,
) -> subprocess.Popen[bytes]:
    """Start ``command`` in a process group of its own, sent ``on_parent_death`` when this
    process (the starting thread) dies; its stdin is ``/dev/null``."""
    name = on_parent_death.name.removeprefix("SIG")
    die_with_parent = ("setpriv", "--pdeathsig", name, "--") if shutil.which("setpriv") else ()
    return subprocess.Popen(
        [*die_with_parent, *command],
        stdin=subprocess.DEVNULL,
        stdout=stdout,
        stderr=stderr,
        start_new_session=True,
    )


def end(
    proc: subprocess.Popen[bytes], *, timeout: float, stop_signal: signal.Signals = signal.SIGTERM
) -> None:
    """Send ``stop_signal``, wait up to ``timeout`` seconds, then kill the process group;
    and kill what is left of the group (workers of a leader that died abruptly)."""
    group = proc.pid  # spawn(): the process leads its own group
    if proc.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            proc.send_signal(stop_signal)
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(group, signal.SIGKILL)
            proc.wait()
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(group, signal.SIGKILL)


class ChildService(Service):
    """A :class:`~sa1b.cdn.serving.Service` run as the child process ``_proc``."""

    _proc: subprocess.Popen[bytes] | None = None

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    @property
    def pid(self) -> int | None:
        """The server's process id while running."""
        return self._proc.pid if self._proc is not None else None
