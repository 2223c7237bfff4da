#!/usr/bin/env python3
"""A TCP relay that caps every connection's download rate and delays both directions.

    python benchmarks/pacer.py --upstream 127.0.0.1:8443 --rate 2M --delay-ms 20

listens on ``127.0.0.1`` (``--listen-port``, default 0: a free port), prints the port it
listens on as one line on stdout once it accepts connections, and relays every connection to
``--upstream``. It is what a CDN edge far away looks like to a client, as far as speed goes:

* **Per-connection cap.** Bytes going to the client (downstream) pass a token bucket of
  ``--rate`` bytes/s per *TCP connection*, across every request made on it: a keep-alive
  connection gets no fresh burst per request (nginx's ``limit_rate`` is per request and
  bursts for each new one). The bucket holds at most ``--burst`` bytes (default
  max(64 KiB, rate/20)) and starts empty: a new connection gets no free burst (real TCP
  starts slowly, if anything), so opening connections is not rewarded beyond their rate.
  Upstream bytes (requests) are not capped. ``--rate 0`` means no cap.
* **Latency.** Each chunk read from one side is released to the other side ``--delay-ms``
  after it arrived, in both directions, so one round trip costs 2 x delay. A new connection
  also pays the TCP handshake it would pay on a real path: the client's first bytes reach the
  server no earlier than 1.5 round trips after the connection was accepted (kernel-level
  connect completes at once on loopback); ``--no-handshake-rtt`` turns that off.
* **Back-pressure.** Each direction buffers at most ``--buffer`` bytes (default: enough for
  rate x delay plus two bursts, at least 256 KiB); when it is full the relay stops reading
  from that side, so the server's sends block as a slow client's would.

TCP-level only: TLS (and HTTP/2) pass through untouched; the client still verifies the
server's certificate (made for 127.0.0.1, the relay's address too).

How it works: one thread, one ``epoll`` loop (level-triggered), non-blocking sockets. Bytes
never enter Python: each direction has a pipe, ``os.splice`` moves bytes socket -> pipe and
pipe -> socket inside the kernel. The relay only keeps counts: bytes in the pipe, a deque of
(release time, bytes) for the delay line, the tokens. A timer heap wakes a direction when its
next chunk comes due or its bucket has refilled by one quantum (min(burst, 64 KiB)), so a
capped connection costs about rate/quantum splices per second and nothing in between.

Measured (2-core KVM box, Python 3.11, nginx 1.22 HTTPS upstream, N parallel ``curl --cacert``
range requests to /dev/null; rate per connection = bytes / (total - time to first byte); relay
CPU from /proc/PID/stat):
* 128 connections x 2 MiB/s, 16 MiB each: every connection 2.07-2.115 MB/s (2 MiB/s is
  2.097 MB/s), 269 MB/s in all; the relay used 0.13 CPU s per second (0.53 CPU s/GB), a
  quarter of it in user space, the rest in the kernel's TCP and splice work. With 20 ms each
  way: 2.095-2.112 MB/s each, 0.15 CPU s/s (0.61 s/GB).
* 256 connections x 2 MiB/s: 2.02-2.12 MB/s each (median 2.06: 256 curl processes starting
  at once load the box), 0.20 CPU s/s (0.54 s/GB).
* no cap, no delay, 8 connections x 256 MiB: 1.16-1.21 GB/s through the relay (0.36 CPU s/GB)
  against 1.36-1.48 GB/s straight to nginx: far above what the capped scenarios need.
* one keep-alive connection, 8 sequential 4 MiB range requests at 2 MiB/s (curl --next, one
  connect): 16.0 s in all, 2.09 MB/s, every request 2.00 s: no per-request burst (nor,
  the bucket starting empty, a first-request one).
* 20 ms each way, time to first byte of a new connection: 124 ms with TLS 1.3 (handshake RTT,
  TLS RTT, request RTT), 166 ms with TLS 1.2, 41 ms for a request on a reused connection.
* inside bench (https-paced, 95-300 MB/s): 0.5-0.65 relay CPU s/GB.
A copying design (recv_into + send) would do the same syscalls plus two copies per byte; with
three quarters of the relay's CPU already in the kernel's TCP work, splice is the cheaper one.

On SIGTERM or SIGINT it stops and writes a one-line summary to stderr (connections, bytes each
way, CPU seconds). Linux only (epoll, splice). Standard library only.
"""

from __future__ import annotations

import argparse
import contextlib
import errno
import fcntl
import heapq
import itertools
import os
import re
import resource
import select
import signal
import socket
import sys
import time
from collections import deque
from pathlib import Path

KIB = 1024
MIN_BURST = 64 * KIB
MAX_QUANTUM = 64 * KIB
MIN_BUFFER = 256 * KIB
UP_BUFFER = 64 * KIB  # requests are small; a pipe's default size
SPLICE_FLAGS = os.SPLICE_F_NONBLOCK | os.SPLICE_F_MOVE
EPOLLIN = select.EPOLLIN
EPOLLOUT = select.EPOLLOUT
BAD_EVENTS = select.EPOLLERR | select.EPOLLHUP
CONNECT_TIMEOUT = 5.0
NEVER = float("inf")


class Stop(Exception):
    """Raised by the signal handler to leave the loop."""


def parse_rate(text: str) -> int:
    """``2M`` -> 2097152 bytes/s (binary K, M, G; optional ``B``, ``iB``, ``/s``); ``0``: none."""
    match = re.fullmatch(r"\s*([0-9]+(?:\.[0-9]+)?)\s*([kKmMgG]?)(?:i?[bB])?(?:/s)?\s*", text)
    if not match:
        raise argparse.ArgumentTypeError(f"not a rate: {text!r} (try 2M, 512K, 1000000)")
    number, unit = match.groups()
    return int(float(number) * 1024 ** " KMG".index(unit.upper() or " "))


def _pipe_max() -> int:
    try:
        return int(Path("/proc/sys/fs/pipe-max-size").read_text())
    except (OSError, ValueError):
        return 1 << 20


def _make_pipe(size: int) -> tuple[int, int, int]:
    """A non-blocking pipe of at least ``size`` bytes if the kernel allows; returns its size."""
    read_fd, write_fd = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
    actual = 64 * KIB
    try:
        actual = fcntl.fcntl(write_fd, fcntl.F_SETPIPE_SZ, min(size, _pipe_max()))
    except OSError:
        with contextlib.suppress(OSError):
            actual = fcntl.fcntl(write_fd, fcntl.F_GETPIPE_SZ)
    return read_fd, write_fd, actual


class Relay:
    """The event loop: listening socket, connections, timers, counters."""

    def __init__(
        self,
        *,
        listen: tuple[str, int],
        upstream: tuple[str, int],
        rate: int,
        burst: int,
        delay: float,
        buffer: int,
        handshake_rtt: bool,
    ) -> None:
        self.upstream = upstream
        self.rate = rate
        self.burst = burst
        self.quantum = min(burst, MAX_QUANTUM)
        self.delay = delay
        self.buffer = buffer
        self.handshake_delay = 2 * delay if handshake_rtt else 0.0
        self.epoll = select.epoll()
        self.listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.listener.bind(listen)
        self.listener.listen(4096)
        self.listener.setblocking(False)
        self.epoll.register(self.listener.fileno(), EPOLLIN)
        self.sockets: dict[int, Endpoint] = {}
        self.timers: list[tuple[float, int, Flow]] = []
        self.sequence = itertools.count()
        self.dirty: set[Endpoint] = set()
        self.accepted = 0
        self.open = 0
        self.peak_open = 0
        self.failed_upstream = 0
        self.bytes_down = 0
        self.bytes_up = 0

    @property
    def port(self) -> int:
        port: int = self.listener.getsockname()[1]
        return port

    def schedule(self, flow: Flow, when: float) -> None:
        if when < flow.timer:
            flow.timer = when
            heapq.heappush(self.timers, (when, next(self.sequence), flow))

    def run(self) -> None:
        timers = self.timers
        while True:
            timeout = max(0.0, timers[0][0] - time.monotonic()) if timers else -1
            events = self.epoll.poll(timeout)
            now = time.monotonic()
            for fd, mask in events:
                endpoint = self.sockets.get(fd)
                if endpoint is None:
                    if fd == self.listener.fileno():
                        self.accept(now)
                    continue
                if endpoint.conn.closed:
                    continue
                if mask & (EPOLLIN | BAD_EVENTS):
                    endpoint.reader.on_readable(now)
                if mask & (EPOLLOUT | BAD_EVENTS) and not endpoint.conn.closed:
                    endpoint.writer.pump(now)
            while timers and timers[0][0] <= now:
                when, _, flow = heapq.heappop(timers)
                if flow.timer == when and not flow.conn.closed:
                    flow.timer = NEVER
                    flow.pump(now)
            for endpoint in self.dirty:
                endpoint.update_interest()
            self.dirty.clear()

    def accept(self, now: float) -> None:
        while True:
            try:
                client, _ = self.listener.accept()
            except (BlockingIOError, InterruptedError):
                return
            except OSError as error:  # EMFILE and friends: leave it in the backlog
                print(f"pacer: accept failed: {error}", file=sys.stderr, flush=True)
                return
            try:
                server = socket.create_connection(self.upstream, timeout=CONNECT_TIMEOUT)
            except OSError as error:
                self.failed_upstream += 1
                print(f"pacer: upstream {self.upstream}: {error}", file=sys.stderr, flush=True)
                client.close()
                continue
            self.accepted += 1
            self.open += 1
            self.peak_open = max(self.peak_open, self.open)
            Connection(self, client, server, now)

    def summary(self) -> str:
        usage = resource.getrusage(resource.RUSAGE_SELF)
        return (
            f"pacer: {self.accepted} connections (peak {self.peak_open} open, "
            f"{self.failed_upstream} upstream failures), {self.bytes_down} bytes down, "
            f"{self.bytes_up} bytes up, CPU {usage.ru_utime:.2f} s user "
            f"{usage.ru_stime:.2f} s sys"
        )


class Endpoint:
    """One socket of a connection: read by ``reader``, written by ``writer``."""

    __slots__ = ("conn", "fd", "mask", "reader", "sock", "writer")

    def __init__(self, conn: Connection, sock: socket.socket) -> None:
        self.conn = conn
        self.sock = sock
        self.fd = sock.fileno()
        self.mask = 0  # registered interest; 0: not registered with epoll
        self.reader: Flow
        self.writer: Flow

    def update_interest(self) -> None:
        if self.conn.closed:
            return
        mask = (EPOLLIN if self.reader.reading else 0) | (EPOLLOUT if self.writer.writing else 0)
        if mask == self.mask:
            return
        epoll = self.conn.relay.epoll
        # Unregister rather than watch nothing: epoll reports HUP/ERR even on an empty mask,
        # and a half-closed socket would keep waking the loop.
        if mask == 0:
            epoll.unregister(self.fd)
        elif self.mask == 0:
            epoll.register(self.fd, mask)
        else:
            epoll.modify(self.fd, mask)
        self.mask = mask


class Flow:
    """One direction of a connection: src socket -> pipe (delay line) -> token bucket -> dst."""

    __slots__ = (
        "capacity",
        "conn",
        "delay",
        "down",
        "dst",
        "eof",
        "in_pipe",
        "not_before",
        "pending",
        "pipe_r",
        "pipe_w",
        "rate",
        "reading",
        "released",
        "shut",
        "src",
        "stamp",
        "timer",
        "tokens",
        "writing",
    )

    def __init__(
        self,
        conn: Connection,
        src: Endpoint,
        dst: Endpoint,
        *,
        down: bool,
        rate: int,
        delay: float,
        not_before: float,
        buffer: int,
        now: float,
    ) -> None:
        self.conn = conn
        self.src = src
        self.dst = dst
        self.down = down
        self.rate = rate
        self.delay = delay
        self.not_before = not_before
        self.pipe_r, self.pipe_w, size = _make_pipe(buffer)
        self.capacity = min(buffer, size)
        self.in_pipe = 0  # bytes in the pipe: pending + released
        self.pending: deque[list[float]] = deque()  # [release time, bytes], in pipe order
        self.released = 0  # bytes at the head of the pipe whose time has come
        self.tokens = 0.0  # no free burst for a new connection
        self.stamp = now
        self.eof = False
        self.shut = False
        self.reading = True
        self.writing = False
        self.timer = NEVER
        src.reader = self
        dst.writer = self

    def on_readable(self, now: float) -> None:
        """Move what the source has into the pipe (as far as the buffer allows)."""
        if self.eof:
            return
        space = self.capacity - self.in_pipe
        if space <= 0:
            self.stop_reading()
            return
        try:
            n = os.splice(self.src.fd, self.pipe_w, space, flags=SPLICE_FLAGS)
        except BlockingIOError:
            # Either the socket is empty (a spurious wake-up) or the pipe has no free slot
            # although fewer than `capacity` bytes are in it. Stop reading until the pipe
            # drains; if it holds nothing, keep reading.
            if self.in_pipe:
                self.stop_reading()
            return
        except OSError as error:
            self.conn.close(error)
            return
        if n == 0:
            self.eof = True
            self.stop_reading()
        else:
            self.in_pipe += n
            release = max(now, self.not_before) + self.delay
            pending = self.pending
            if release <= now:
                self.released += n
            elif pending and pending[-1][0] >= release - 0.0005:
                pending[-1][1] += n
            else:
                pending.append([release, n])
        self.pump(now)

    def stop_reading(self) -> None:
        if self.reading:
            self.reading = False
            self.conn.relay.dirty.add(self.src)

    def pump(self, now: float) -> None:
        """Release what is due, send what the bucket allows, then re-arm timers and interest."""
        relay = self.conn.relay
        pending = self.pending
        while pending and pending[0][0] <= now:
            self.released += int(pending.popleft()[1])
        writing = False
        rate = self.rate
        while self.released:
            allowance = self.released
            if rate:
                self.tokens = min(relay.burst, self.tokens + (now - self.stamp) * rate)
                self.stamp = now
                want = min(allowance, relay.quantum)
                if self.tokens < want:
                    relay.schedule(self, now + (want - self.tokens) / rate)
                    break
                allowance = min(allowance, int(self.tokens))
            try:
                sent = os.splice(self.pipe_r, self.dst.fd, allowance, flags=SPLICE_FLAGS)
            except BlockingIOError:
                writing = True  # the socket's send buffer is full: wait for EPOLLOUT
                break
            except OSError as error:
                self.conn.close(error)
                return
            self.released -= sent
            self.in_pipe -= sent
            if rate:
                self.tokens -= sent
            if self.down:
                relay.bytes_down += sent
            else:
                relay.bytes_up += sent
            if not self.eof and not self.reading:
                self.reading = True
                relay.dirty.add(self.src)
        if writing != self.writing:
            self.writing = writing
            relay.dirty.add(self.dst)
        if pending:
            relay.schedule(self, pending[0][0])
        if self.eof and not self.in_pipe and not self.shut:
            self.shut = True
            with contextlib.suppress(OSError):
                self.dst.sock.shutdown(socket.SHUT_WR)
            self.conn.flow_done()

    def close_pipe(self) -> None:
        for fd in (self.pipe_r, self.pipe_w):
            with contextlib.suppress(OSError):
                os.close(fd)


class Connection:
    """A client connection and its upstream connection, with a flow each way."""

    __slots__ = ("client", "closed", "down", "relay", "server", "up")

    def __init__(
        self, relay: Relay, client: socket.socket, server: socket.socket, now: float
    ) -> None:
        self.relay = relay
        self.closed = False
        for sock in (client, server):
            sock.setblocking(False)
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.client = Endpoint(self, client)
        self.server = Endpoint(self, server)
        relay.sockets[self.client.fd] = self.client
        relay.sockets[self.server.fd] = self.server
        self.down = Flow(
            self,
            self.server,
            self.client,
            down=True,
            rate=relay.rate,
            delay=relay.delay,
            not_before=0.0,
            buffer=relay.buffer,
            now=now,
        )
        self.up = Flow(
            self,
            self.client,
            self.server,
            down=False,
            rate=0,
            delay=relay.delay,
            not_before=now + relay.handshake_delay,
            buffer=UP_BUFFER,
            now=now,
        )
        relay.dirty.add(self.client)
        relay.dirty.add(self.server)

    def flow_done(self) -> None:
        if self.down.shut and self.up.shut:
            self.close(None)

    def close(self, error: OSError | None) -> None:
        if self.closed:
            return
        self.closed = True
        relay = self.relay
        relay.open -= 1
        if error is not None and error.errno not in (errno.ECONNRESET, errno.EPIPE):
            print(f"pacer: connection closed on error: {error}", file=sys.stderr, flush=True)
        for endpoint in (self.client, self.server):
            relay.sockets.pop(endpoint.fd, None)
            if endpoint.mask:
                with contextlib.suppress(OSError):
                    relay.epoll.unregister(endpoint.fd)
                endpoint.mask = 0
            endpoint.sock.close()
        self.down.close_pipe()
        self.up.close_pipe()


def parse_address(text: str) -> tuple[str, int]:
    host, sep, port = text.rpartition(":")
    if not sep or not port.isdigit() or not host:
        raise argparse.ArgumentTypeError(f"not HOST:PORT: {text!r}")
    return host.strip("[]"), int(port)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="pacer.py",
        description="TCP relay capping each connection's downstream rate, with added latency.",
    )
    parser.add_argument("--listen-host", default="127.0.0.1", help="default: 127.0.0.1")
    parser.add_argument("--listen-port", type=int, default=0, help="default: 0 (a free port)")
    parser.add_argument(
        "--upstream", type=parse_address, required=True, help="HOST:PORT to relay to"
    )
    parser.add_argument(
        "--rate",
        type=parse_rate,
        default=0,
        help="downstream cap per TCP connection, bytes/s, K/M/G binary (default: 0, no cap)",
    )
    parser.add_argument(
        "--burst",
        type=parse_rate,
        help="token bucket size in bytes (default: max(64K, rate/20))",
    )
    parser.add_argument(
        "--delay-ms",
        type=float,
        default=0.0,
        help="added one-way latency per direction; one RTT = 2 x this (default: 0)",
    )
    parser.add_argument(
        "--buffer",
        type=parse_rate,
        help="bytes buffered per connection downstream (default: max(256K, "
        "2 x (rate x delay + burst)), capped by /proc/sys/fs/pipe-max-size)",
    )
    parser.add_argument(
        "--no-handshake-rtt",
        dest="handshake_rtt",
        action="store_false",
        help="do not make a new connection's first bytes wait for a TCP handshake's RTT",
    )
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.delay_ms < 0:
        print("pacer.py: --delay-ms must be >= 0", file=sys.stderr)
        return 2
    delay = args.delay_ms / 1000.0
    burst = args.burst or max(MIN_BURST, args.rate // 20)
    buffer = args.buffer or max(MIN_BUFFER, 2 * (int(args.rate * delay) + burst))
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    with contextlib.suppress(ValueError, OSError):
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    try:
        relay = Relay(
            listen=(args.listen_host, args.listen_port),
            upstream=args.upstream,
            rate=args.rate,
            burst=burst,
            delay=delay,
            buffer=buffer,
            handshake_rtt=args.handshake_rtt,
        )
    except OSError as error:
        print(f"pacer.py: cannot listen: {error}", file=sys.stderr)
        return 1

    def stop(_signum: int, _frame: object) -> None:
        raise Stop

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    print(
        f"pacer: {args.listen_host}:{relay.port} -> {args.upstream[0]}:{args.upstream[1]}, "
        f"rate {args.rate} B/s per connection (burst {burst}, quantum {relay.quantum}), "
        f"delay {args.delay_ms:g} ms each way, buffer {buffer}, "
        f"handshake RTT {'on' if args.handshake_rtt else 'off'}, fd limit {soft}",
        file=sys.stderr,
        flush=True,
    )
    print(relay.port, flush=True)  # the ready signal: the port, alone on a line
    with contextlib.suppress(Stop):
        relay.run()
    print(relay.summary(), file=sys.stderr, flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
