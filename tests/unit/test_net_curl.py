"""The libcurl event loop against scripted servers on 127.0.0.1 (plain and TLS).

What libcurl must do for us (framing, interim answers, redirects, keep-alive) and what the
loop adds (the head deadline, the speed floor, stops, the rate cap, error translation) are
each driven here with real sockets, one behaviour per test.
"""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Sequence
from pathlib import Path

import pytest

from harness.certs import CertificatePaths, make_certificates
from sa1b.errors import (
    BadResponseError,
    ConnectError,
    RedirectError,
    StallError,
    TLSVerificationError,
    TransferError,
    TruncatedBodyError,
)
from sa1b.net.curl import Request
from sa1b.net.governor import Governor, GovernorPolicy
from sa1b.net.heads import Head
from sa1b.net.options import MAX_REDIRECTS, USER_AGENT, Timeouts, TransportOptions
from sa1b.net.proxy import Proxies, parse_proxy
from sa1b.net.ratelimit import RateLimiter
from sa1b.net.transport import Transport
from tests.scripted import Peer, answer, answer_each, chunked, server_context, serving

pytestmark = pytest.mark.timeout(20)

BODY = random.Random(7).randbytes(300_000)
FAST = Timeouts(connect=2, head=2, read=2)


class Recorder:
    """A receiver that keeps what it is given; ``stop_after`` bytes, it asks to stop."""

    def __init__(self, stop_after: int | None = None) -> None:
        self.heads: list[Head] = []
        self.data = bytearray()
        self.error: TransferError | None = None
        self.ended = 0
        self.stop_after = stop_after

    def head(self, head: Head) -> bool:
        self.heads.append(head)
        return True

    def body(self, data: bytes) -> bool:
        self.data += data
        return self.stop_after is None or len(self.data) < self.stop_after

    def end(self, error: TransferError | None) -> None:
        self.error = error
        self.ended += 1


class Source:
    """Hands out the given requests, one per free slot, in order."""

    def __init__(self, requests: Sequence[Request]) -> None:
        self.queue = list(requests)
        self.lock = threading.Lock()  # loops ask from threads of their own

    def next_request(self, slot: int) -> Request | None:
        with self.lock:
            return self.queue.pop(0) if self.queue else None

    def park(self, slot: int) -> None:
        pass

    @property
    def finished(self) -> bool:
        return not self.queue


def run(
    *requests: Request,
    options: TransportOptions | None = None,
    slots: int = 1,
    limiter: RateLimiter | None = None,
    loops: int = 1,
) -> Transport:
    """Run the loops until every request has ended."""
    transport = Transport(
        options or TransportOptions(timeouts=FAST),
        Source(requests),
        slots=slots,
        governor=Governor(GovernorPolicy.fixed(slots), 0.0),
        limiter=limiter,
        loops=loops,
    )
    transport.run()
    for request in requests:
        assert isinstance(request.receiver, Recorder)
        assert request.receiver.ended == 1, "every request ends exactly once"
    return transport


def get(url: str, *headers: str, options: TransportOptions | None = None) -> Recorder:
    recorder = Recorder()
    run(Request(url, headers, recorder), options=options)
    return recorder


def ranged(body: bytes, start: int, end: int, *extra: str) -> bytes:
    return answer(
        body[start:end],
        f"Content-Range: bytes {start}-{end - 1}/{len(body)}",
        *extra,
        status="206 Partial Content",
    )


# -- what libcurl does for us ------------------------------------------------------------


def test_a_range_arrives_whole_and_the_request_is_sent_as_given() -> None:
    with serving(answer_each(ranged(BODY, 1000, 201_000))) as server:
        url = f"{server.base}/m1/v/t6/An_x.tar?_nc_gid&ccb=10-5&oh=00_Ab%2Fc&oe=6A1B2C3D"
        got = get(url, "Range: bytes=1000-200999")
    assert got.error is None
    assert bytes(got.data) == BODY[1000:201_000]
    assert got.heads[-1].status == 206
    request = server.requests[0].decode("latin-1")
    first_line = request.split("\r\n")[0]
    assert first_line == "GET /m1/v/t6/An_x.tar?_nc_gid&ccb=10-5&oh=00_Ab%2Fc&oe=6A1B2C3D HTTP/1.1"
    assert "\r\nRange: bytes=1000-200999\r\n" in request
    assert "\r\nAccept-Encoding: identity\r\n" in request
    assert f"\r\nUser-Agent: {USER_AGENT}\r\n" in request
    assert f"\r\nHost: 127.0.0.1:{server.port}\r\n" in request


def test_a_chunked_range_is_decoded_never_written_framed() -> None:
    body = chunked(BODY[:10_000], size=777)
    head = "HTTP/1.1 206 Partial Content\r\nTransfer-Encoding: chunked\r\n"
    head += f"Content-Range: bytes 0-9999/{len(BODY)}\r\n\r\n"
    with serving(answer_each(head.encode() + body)) as server:
        got = get(f"{server.base}/a")
    assert got.error is None
    assert bytes(got.data) == BODY[:10_000]


@pytest.mark.parametrize("interim", ["103 Early Hints\r\nLink: </x>; rel=preload", "100 Continue"])
def test_interim_answers_are_not_taken_for_the_answer(interim: str) -> None:
    data = f"HTTP/1.1 {interim}\r\n\r\n".encode() + ranged(BODY, 0, 100)
    with serving(answer_each(data)) as server:
        got = get(f"{server.base}/a")
    assert got.error is None
    assert [h.status for h in got.heads] == [206]
    assert bytes(got.data) == BODY[:100]


def test_an_interim_answer_then_silence_is_a_stall_not_an_answer() -> None:
    def script(peer: Peer) -> None:
        peer.request()
        peer.send(b"HTTP/1.1 103 Early Hints\r\n\r\n")
        peer.hold()

    with serving(script) as server:
        got = get(f"{server.base}/a", options=TransportOptions(timeouts=Timeouts(head=0.5)))
    assert isinstance(got.error, StallError)
    assert got.heads == []


def test_keep_alive_carries_the_next_request_on_the_same_connection() -> None:
    with serving(answer_each(ranged(BODY, 0, 10), ranged(BODY, 10, 20))) as server:
        first, second = Recorder(), Recorder()
        run(Request(f"{server.base}/a", (), first), Request(f"{server.base}/a", (), second))
    assert bytes(first.data + second.data) == BODY[:20]
    assert server.accepted == 1


def test_bytes_after_a_complete_body_never_fail_the_next_request() -> None:
    """Junk a server sent after a body (here: once the next request is on its way, so
    libcurl cannot see it as excess of the first) reads as the next answer's status line:
    that request goes again, once, on a new connection; the poisoned one is closed."""
    poisoned = answer_each(ranged(BODY, 0, 10), b"junk after the body\r\n")
    with serving(poisoned, answer_each(ranged(BODY, 10, 20))) as server:
        first, second = Recorder(), Recorder()
        run(Request(f"{server.base}/a", (), first), Request(f"{server.base}/a", (), second))
    assert first.error is None and second.error is None
    assert bytes(first.data + second.data) == BODY[:20]
    assert server.accepted == 2
    assert len(server.requests) == 3  # the second request twice: kept, then new


def test_a_request_that_fails_on_a_new_connection_is_not_sent_again() -> None:
    with serving(answer_each(b"junk instead of an answer\r\n\r\n")) as server:
        got = get(f"{server.base}/a")
    assert isinstance(got.error, BadResponseError)
    assert server.accepted == 1 and len(server.requests) == 1


def test_a_kept_connection_that_stalls_is_not_sent_again() -> None:
    def script(peer: Peer) -> None:
        peer.request()
        peer.send(ranged(BODY, 0, 10))
        peer.request()
        peer.hold()

    options = TransportOptions(timeouts=Timeouts(connect=2, head=0.5, read=2))
    with serving(script) as server:
        first, second = Recorder(), Recorder()
        run(
            Request(f"{server.base}/a", (), first),
            Request(f"{server.base}/a", (), second),
            options=options,
        )
    assert first.error is None and isinstance(second.error, StallError)
    assert server.accepted == 1 and len(server.requests) == 2  # the deadline is the user's


def test_each_slot_has_a_connection_of_its_own() -> None:
    both_in_flight = threading.Barrier(2, timeout=30)

    def script(peer: Peer) -> None:
        peer.request()
        both_in_flight.wait()  # breaks, and the answer never comes, on a shared connection
        peer.send(ranged(BODY, 0, 10))
        peer.wait_for_eof()

    with serving(default=script) as server:
        a, b = Recorder(), Recorder()
        run(
            Request(f"{server.base}/a", (), a),
            Request(f"{server.base}/b", (), b),
            slots=2,
            loops=2,
        )
    assert a.error is None and b.error is None
    assert server.accepted == 2


def test_a_redirect_is_followed_with_the_range_sent_again() -> None:
    with serving(answer_each(ranged(BODY, 5, 10))) as target:
        move = answer(b"", f"Location: {target.base}/real", status="302 Found")
        with serving(answer_each(move)) as first:
            got = get(f"{first.base}/a", "Range: bytes=5-9")
    assert got.error is None and bytes(got.data) == BODY[5:10]
    assert b"Range: bytes=5-9" in target.requests[0]


def test_a_redirect_loop_ends_in_a_redirect_error() -> None:
    def loop(peer: Peer) -> None:
        while True:
            peer.request()
            peer.send(answer(b"", f"Location: {peer.server.base}/again", status="302 Found"))

    with serving(default=loop) as server:
        got = get(f"{server.base}/a")
    assert isinstance(got.error, RedirectError)
    assert len(server.requests) == MAX_REDIRECTS + 1


@pytest.mark.parametrize("location", ["ftp://127.0.0.1/x.tar", "file:///etc/passwd"])
def test_a_redirect_to_another_scheme_is_refused(location: str) -> None:
    with serving(answer_each(answer(b"", f"Location: {location}", status="301 Moved"))) as s:
        got = get(f"{s.base}/a")
    assert isinstance(got.error, RedirectError)


# -- TLS -------------------------------------------------------------------------------------


def trusting(paths: CertificatePaths) -> TransportOptions:
    return TransportOptions(timeouts=FAST, ca_bundle=paths.ca)


def test_tls_with_a_trusted_ca(certificates: CertificatePaths) -> None:
    with serving(answer_each(ranged(BODY, 0, 50_000)), tls=server_context(certificates)) as server:
        got = get(f"{server.base}/a", options=trusting(certificates))
    assert got.error is None and bytes(got.data) == BODY[:50_000]


def test_tls_with_an_unknown_ca_is_refused(certificates: CertificatePaths, tmp_path: Path) -> None:
    other = make_certificates(tmp_path / "other")
    with serving(answer_each(ranged(BODY, 0, 10)), tls=server_context(certificates)) as server:
        got = get(f"{server.base}/a", options=trusting(other))
    assert isinstance(got.error, TLSVerificationError)
    assert got.data == b""


def test_a_redirect_from_https_to_http_is_never_followed(certificates: CertificatePaths) -> None:
    with serving(answer_each(ranged(BODY, 0, 10))) as plain:
        move = answer(b"", f"Location: {plain.base}/a", status="302 Found")
        with serving(answer_each(move), tls=server_context(certificates)) as secure:
            got = get(f"{secure.base}/a", options=trusting(certificates))
    assert isinstance(got.error, RedirectError)
    assert plain.requests == []


# -- what the loop adds ----------------------------------------------------------------------


def test_a_dripping_head_is_given_up_at_the_head_deadline() -> None:
    def drip(peer: Peer) -> None:
        peer.request()
        for byte in b"HTTP/1.1 206 Partial Content\r\nX-Slow: " + b"a" * 100:
            peer.send(bytes([byte]))
            if peer.server.stopped.wait(0.1):
                return

    with serving(drip) as server:  # the head would take 13 s, its bytes keep coming
        got = get(f"{server.base}/a", options=TransportOptions(timeouts=Timeouts(head=1)))
    assert isinstance(got.error, StallError)
    assert "head" in got.error.message


def test_a_stall_through_a_proxy_names_the_proxy() -> None:
    def silent(peer: Peer) -> None:
        peer.request()
        peer.hold()

    with serving(silent) as proxy:
        shown = f"http://127.0.0.1:{proxy.port}"
        options = TransportOptions(
            timeouts=Timeouts(connect=2, head=0.5, read=2),
            proxies=Proxies(http=parse_proxy(shown)),
        )
        got = get("http://cdn.example/a.tar", options=options)
        seen = proxy.requests[0].split(b"\r\n", 1)[0]
    assert isinstance(got.error, StallError)
    assert got.error.message.endswith(f"(through the proxy {shown})")
    assert seen == b"GET http://cdn.example/a.tar HTTP/1.1"


def test_a_body_below_the_floor_is_a_stall() -> None:
    def drip(peer: Peer) -> None:
        peer.request()
        peer.send(answer(b"", status="206 Partial Content", length=False)[:-2])
        peer.send(
            f"Content-Length: 1000\r\nContent-Range: bytes 0-999/{len(BODY)}\r\n\r\n".encode()
        )
        for _ in range(1000):
            peer.send(b"x")
            if peer.server.stopped.wait(0.05):
                return

    options = TransportOptions(timeouts=Timeouts(head=5, read=1, floor=1000))
    with serving(drip) as server:
        got = get(f"{server.base}/a", options=options)
    assert isinstance(got.error, StallError)
    assert "floor" in got.error.message
    assert 0 < len(got.data) < 1000


def test_stop_ends_a_request_that_waits_for_ever() -> None:
    def silent(peer: Peer) -> None:
        peer.request()
        peer.hold()

    with serving(silent) as server:
        recorder = Recorder()
        transport = Transport(
            TransportOptions(timeouts=Timeouts(head=60)),
            Source([Request(f"{server.base}/a", (), recorder)]),
            slots=1,
            governor=Governor(GovernorPolicy.fixed(1), 0.0),
        )
        threading.Timer(0.3, transport.stop).start()
        transport.run()  # the head deadline (60 s) would end it with a stall instead
    assert recorder.ended == 1 and recorder.error is None


def test_a_receiver_that_stops_ends_its_request_without_an_error() -> None:
    with serving(answer_each(ranged(BODY, 0, 200_000))) as server:
        recorder = Recorder(stop_after=1)
        run(Request(f"{server.base}/a", (), recorder))
    assert recorder.error is None
    assert 0 < len(recorder.data) < 200_000


def test_the_rate_cap_paces_every_transfer_together() -> None:
    with serving(default=answer_each(ranged(BODY, 0, 200_000))) as server:
        recorders = [Recorder() for _ in range(3)]
        began = time.monotonic()
        run(
            *(Request(f"{server.base}/a", (), r) for r in recorders),
            slots=3,
            limiter=RateLimiter(300_000, burst=20_000, now=time.monotonic()),
            loops=2,
        )
        elapsed = time.monotonic() - began
    assert all(bytes(r.data) == BODY[:200_000] and r.error is None for r in recorders)
    assert elapsed >= (600_000 - 20_000 - 3 * 65536) / 300_000  # at most a chunk each early


# -- failures, translated -----------------------------------------------------------------


def test_connection_refused_is_a_connect_error() -> None:
    with serving() as server:
        port = server.port
    got = get(f"http://127.0.0.1:{port}/a")
    assert isinstance(got.error, ConnectError)


@pytest.mark.parametrize("how", ["fin", "rst"])
def test_a_connection_lost_mid_body_is_a_truncated_body(how: str) -> None:
    def script(peer: Peer) -> None:
        peer.request()
        peer.send(ranged(BODY, 0, 100_000)[:50_000])
        peer.close_fin() if how == "fin" else peer.close_rst()

    with serving(script) as server:
        got = get(f"{server.base}/a")
    assert isinstance(got.error, TruncatedBodyError)
    assert got.heads and got.heads[-1].status == 206


@pytest.mark.parametrize(
    "garbage",
    [b"SSH-2.0-OpenSSH_9.6\r\n\r\n", b"HTTP/1.1 200 OK\r\nno colon\r\n\r\n"],
    ids=["ssh", "bad-header"],
)
def test_garbage_instead_of_a_response_is_a_bad_response(garbage: bytes) -> None:
    def script(peer: Peer) -> None:
        peer.request()
        peer.send(garbage)
        peer.close_fin()

    with serving(script) as server:
        got = get(f"{server.base}/a")
    assert isinstance(got.error, BadResponseError | TruncatedBodyError)
    assert got.data == b""


def test_an_error_page_reaches_the_receiver_with_its_status() -> None:
    page = answer(b"URL signature expired", status="403 Forbidden")
    with serving(answer_each(page)) as server:
        got = get(f"{server.base}/a")
    assert got.error is None
    assert got.heads[-1].status == 403
    assert bytes(got.data) == b"URL signature expired"


def test_credentials_in_a_url_never_reach_the_host_header() -> None:
    with serving(answer_each(ranged(BODY, 0, 10))) as server:
        got = get(f"http://ann:s3cret@127.0.0.1:{server.port}/a")
    assert got.error is None
    request = server.requests[0].decode("latin-1")
    assert f"\r\nHost: 127.0.0.1:{server.port}\r\n" in request
