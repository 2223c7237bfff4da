"""The socket-level HTTP client against scripted servers on 127.0.0.1.

Each server is a plain listening socket and one thread; every accepted connection is handed
to the next function of a script, which reads requests and writes bytes exactly as given, so
the framing, the timing and the way a connection ends (FIN, RST, silence) are the test's.
"""

from __future__ import annotations

import gc
import random
import socket
import struct
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager, suppress

import pytest

from sa1b.errors import (
    BadResponseError,
    ConnectError,
    HTTPStatusError,
    RetryableError,
    StallError,
    TransferError,
    TruncatedBodyError,
)
from sa1b.http import MAX_REDIRECTS, USER_AGENT, HTTPClient, Response, Timeouts

pytestmark = pytest.mark.timeout(10)

FAST = Timeouts(connect=2.0, read=2.0)
BODY = random.Random(7).randbytes(300_000)


class Peer:
    """The server's end of one accepted connection."""

    def __init__(self, sock: socket.socket, server: ScriptedServer) -> None:
        self.sock = sock
        self.server = server

    def request(self) -> bytes:
        """Read one request head (the client sends no bodies); record and return it."""
        data = bytearray()
        while b"\r\n\r\n" not in data:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise ConnectionError("client closed before a full request")
            data += chunk
        self.server.requests.append(bytes(data))
        return bytes(data)

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)

    def wait_for_eof(self, seconds: float = 5.0) -> None:
        """Wait until the client closes its end (or ``seconds`` pass)."""
        self.sock.settimeout(seconds)
        try:
            while self.sock.recv(65536):
                pass
        except OSError:
            pass

    def close_fin(self) -> None:
        self.sock.shutdown(socket.SHUT_RDWR)
        self.sock.close()

    def close_rst(self) -> None:
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        self.sock.close()

    def hold(self) -> None:
        """Say nothing more until the test ends."""
        self.server.stopped.wait(8)


Script = Callable[[Peer], None]


class ScriptedServer:
    """Hands the n-th accepted connection to ``scripts[n]`` (later ones to ``default``)."""

    def __init__(self, scripts: Sequence[Script], *, default: Script | None = None) -> None:
        self.scripts = list(scripts)
        self.default = default
        self.requests: list[bytes] = []
        self.accepted = 0
        self.errors: list[BaseException] = []
        self.stopped = threading.Event()
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.listener.settimeout(0.05)
        self.port: int = self.listener.getsockname()[1]
        self.threads: list[threading.Thread] = []
        self.acceptor = threading.Thread(target=self._accept, daemon=True)
        self.acceptor.start()

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def _accept(self) -> None:
        while not self.stopped.is_set():
            try:
                sock, _ = self.listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            index, self.accepted = self.accepted, self.accepted + 1
            script = self.scripts[index] if index < len(self.scripts) else self.default
            thread = threading.Thread(target=self._run, args=(script, sock), daemon=True)
            self.threads.append(thread)
            thread.start()

    def _run(self, script: Script | None, sock: socket.socket) -> None:
        sock.settimeout(8)
        try:
            if script is not None:
                script(Peer(sock, self))
        except OSError as error:  # the client hung up: part of several scripts
            self.errors.append(error)
        finally:
            sock.close()

    def close(self) -> None:
        self.stopped.set()
        self.acceptor.join(2)
        self.listener.close()
        for thread in self.threads:
            thread.join(2)


@contextmanager
def serving(*scripts: Script, default: Script | None = None) -> Iterator[ScriptedServer]:
    server = ScriptedServer(scripts, default=default)
    try:
        yield server
    finally:
        server.close()


@contextmanager
def client(timeouts: Timeouts = FAST) -> Iterator[HTTPClient]:
    http = HTTPClient(timeouts=timeouts)
    try:
        yield http
    finally:
        http.close()


def ok(body: bytes, *extra: str, status: str = "200 OK", version: str = "1.1") -> bytes:
    lines = [f"HTTP/{version} {status}", f"Content-Length: {len(body)}", *extra]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body


def redirect(status: int, location: str) -> bytes:
    return (f"HTTP/1.1 {status} Moved\r\nLocation: {location}\r\nContent-Length: 0\r\n\r\n").encode(
        "latin-1"
    )


def read_all(response: Response, size: int = 65536) -> tuple[bytes, int]:
    """The body, and how many ``readinto`` calls returned bytes."""
    buffer = bytearray(size)
    view = memoryview(buffer)
    out = bytearray()
    calls = 0
    while got := response.readinto(view):
        out += view[:got]
        calls += 1
    return bytes(out), calls


def answer_each(*answers: bytes) -> Script:
    """Answer one request with each of ``answers`` in turn on the same connection."""

    def script(peer: Peer) -> None:
        for answer in answers:
            peer.request()
            peer.send(answer)
        peer.wait_for_eof()

    return script


# -- bodies --------------------------------------------------------------------------------


def test_206_body_is_read_fully_over_several_readinto_calls() -> None:
    body = BODY[1000:201_000]

    def script(peer: Peer) -> None:
        peer.request()
        peer.send(
            (
                "HTTP/1.1 206 Partial Content\r\n"
                f"Content-Range: bytes 1000-200999/{len(BODY)}\r\n"
                f"Content-Length: {len(body)}\r\n"
                'ETag: "v1"\r\n\r\n'
            ).encode()
            + body[:5000]
        )
        for start in range(5000, len(body), 50_000):
            time.sleep(0.01)
            peer.send(body[start : start + 50_000])
        peer.wait_for_eof()

    with serving(script) as server, client() as http:
        response = http.get(f"{server.base}/shard.tar", {"Range": "bytes=1000-200999"})
        assert response.status == 206
        assert response.headers["content-range"] == f"bytes 1000-200999/{len(BODY)}"
        assert response.headers["etag"] == '"v1"'
        data, calls = read_all(response, size=64 * 1024)
        assert data == body
        assert calls >= 4
        assert response.readinto(memoryview(bytearray(10))) == 0


def test_readinto_never_reads_past_the_body() -> None:
    # The server sends the next answer's bytes right behind the body: they stay unread.
    with (
        serving(answer_each(ok(b"0123456789") + b"HTTP/1.1 200 OK\r\n")) as server,
        client() as http,
    ):
        response = http.get(f"{server.base}/x", {})
        data, _ = read_all(response, size=4)
        assert data == b"0123456789"


# -- keep-alive ----------------------------------------------------------------------------


def test_keep_alive_reuses_one_connection() -> None:
    with serving(answer_each(ok(BODY[:70_000]), ok(BODY[70_000:100_000]))) as server:
        with client() as http:
            first = http.get(f"{server.base}/a", {"Range": "bytes=0-69999"})
            assert read_all(first)[0] == BODY[:70_000]
            second = http.get(f"{server.base}/b", {"Range": "bytes=70000-99999"})
            assert read_all(second)[0] == BODY[70_000:100_000]
        assert server.accepted == 1
        assert [r.split(b"\r\n", 1)[0] for r in server.requests] == [
            b"GET /a HTTP/1.1",
            b"GET /b HTTP/1.1",
        ]


@pytest.mark.parametrize("how", ["fin", "rst"])
def test_idle_connection_closed_by_server_is_replaced_transparently(how: str) -> None:
    closed = threading.Event()

    def first(peer: Peer) -> None:
        peer.request()
        peer.send(ok(b"first"))
        time.sleep(0.05)
        peer.close_fin() if how == "fin" else peer.close_rst()
        closed.set()

    with serving(first, answer_each(ok(b"second"))) as server, client() as http:
        assert read_all(http.get(f"{server.base}/a", {}))[0] == b"first"
        assert closed.wait(2)
        time.sleep(0.05)  # let the FIN or RST reach the client's socket
        response = http.get(f"{server.base}/b", {})
        assert response.status == 200
        assert read_all(response)[0] == b"second"
        assert server.accepted == 2


@pytest.mark.parametrize(
    ("version", "extra"),
    [
        ("1.1", ("Connection: close",)),
        ("1.1", ("Connection: Close",)),
        ("1.0", ()),
        ("1.0", ("Connection: close",)),
    ],
)
def test_a_response_that_ends_the_connection_is_not_reused(
    version: str, extra: tuple[str, ...]
) -> None:
    def closing(peer: Peer) -> None:
        peer.request()
        peer.send(ok(b"once", *extra, version=version))
        peer.close_fin()

    with serving(closing, closing) as server, client() as http:
        assert read_all(http.get(f"{server.base}/a", {}))[0] == b"once"
        assert read_all(http.get(f"{server.base}/b", {}))[0] == b"once"
        assert server.accepted == 2
        assert len(server.requests) == 2


def test_http10_keep_alive_is_reused() -> None:
    answer = ok(b"k", "Connection: keep-alive", version="1.0")
    with serving(answer_each(answer, answer)) as server, client() as http:
        assert read_all(http.get(f"{server.base}/a", {}))[0] == b"k"
        assert read_all(http.get(f"{server.base}/b", {}))[0] == b"k"
        assert server.accepted == 1


def test_closing_a_half_read_response_drops_its_connection() -> None:
    with serving(answer_each(ok(BODY)), answer_each(ok(b"fresh"))) as server, client() as http:
        response = http.get(f"{server.base}/a", {})
        assert response.readinto(memoryview(bytearray(1000))) == 1000
        response.close()
        assert read_all(http.get(f"{server.base}/b", {}))[0] == b"fresh"
        assert server.accepted == 2


def test_bytes_after_the_body_are_never_taken_for_the_next_answer() -> None:
    # Garbage behind a body means the stream cannot be trusted: the next request goes on a
    # new connection instead of parsing the garbage as its answer.
    stray = ok(b"body") + b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nWRONG"
    with serving(answer_each(stray), answer_each(ok(b"right"))) as server, client() as http:
        assert read_all(http.get(f"{server.base}/a", {}))[0] == b"body"
        assert read_all(http.get(f"{server.base}/b", {}))[0] == b"right"
        assert server.accepted == 2


# -- the connection ends badly -------------------------------------------------------------


@pytest.mark.parametrize("how", ["fin", "rst"])
def test_connection_lost_mid_body_is_a_truncated_body(how: str) -> None:
    def script(peer: Peer) -> None:
        peer.request()
        peer.send(ok(BODY)[: 100 + 150_000])
        time.sleep(0.05)
        peer.close_fin() if how == "fin" else peer.close_rst()

    url_query = "?_nc_gid&oh=00_secret&oe=6A1B2C3D"
    with serving(script) as server, client() as http:
        response = http.get(f"{server.base}/shard.tar{url_query}", {})
        received = bytearray()
        view = memoryview(bytearray(65536))
        with pytest.raises(TruncatedBodyError) as caught:
            while True:
                got = response.readinto(view)
                received += view[:got]
        response.close()
        assert len(received) < len(BODY)
        assert BODY.startswith(received)
        error = caught.value
        assert isinstance(error, RetryableError)
        assert error.url == f"{server.base}/shard.tar?…"
        assert "secret" not in str(error)


def test_closed_before_any_answer_is_a_truncated_body() -> None:
    def script(peer: Peer) -> None:
        peer.request()
        peer.close_fin()

    with serving(script) as server, client() as http, pytest.raises(TruncatedBodyError):
        http.get(f"{server.base}/a", {})


def test_silence_mid_body_is_a_stall_within_the_read_timeout() -> None:
    def script(peer: Peer) -> None:
        peer.request()
        peer.send(ok(BODY)[:100_000])
        peer.hold()

    with serving(script) as server, client(Timeouts(connect=2, read=0.5)) as http:
        response = http.get(f"{server.base}/a", {})
        view = memoryview(bytearray(65536))
        began = time.monotonic()
        with pytest.raises(StallError) as caught:
            while True:
                response.readinto(view)
        elapsed = time.monotonic() - began
        response.close()
        assert 0.4 <= elapsed < 2.0
        assert caught.value.url == f"{server.base}/a"


def test_silence_before_the_head_is_retryable_within_the_read_timeout() -> None:
    def script(peer: Peer) -> None:
        peer.request()
        peer.hold()

    with serving(script) as server, client(Timeouts(connect=2, read=0.5)) as http:
        began = time.monotonic()
        with pytest.raises(RetryableError):
            http.get(f"{server.base}/a", {})
        assert time.monotonic() - began < 2.0


def test_connection_refused_is_a_connect_error() -> None:
    # A bound socket that does not listen: the port is ours, and connecting is refused.
    with socket.socket() as unused:
        unused.bind(("127.0.0.1", 0))
        port = unused.getsockname()[1]
        with client() as http, pytest.raises(ConnectError) as caught:
            http.get(f"http://127.0.0.1:{port}/x?oh=secret", {})
    assert caught.value.url == f"http://127.0.0.1:{port}/x?…"


@pytest.mark.parametrize(
    "answer",
    [
        b"SSH-2.0-OpenSSH_9.6\r\n\r\n",
        b"<html>hello</html>\r\n\r\n",
        b"HTTP/2 200\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nno colon\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nContent-Le",  # then the server closes inside the head
        b"HTTP/1.1 200 OK\r\nX-Big: " + b"a" * 200_000,  # a head that never ends
    ],
    ids=["ssh", "html", "http2", "bad-header", "closed-in-head", "huge-head"],
)
def test_garbage_instead_of_a_response_is_a_bad_response(answer: bytes) -> None:
    def script(peer: Peer) -> None:
        peer.request()
        peer.send(answer)
        peer.close_fin()

    with serving(script) as server, client() as http, pytest.raises(BadResponseError):
        http.get(f"{server.base}/a", {})


@pytest.mark.filterwarnings("ignore::ResourceWarning")
@pytest.mark.parametrize("value", ["lots", "-1", "5, 6"])
def test_a_bad_content_length_is_a_bad_response(value: str) -> None:
    def script(peer: Peer) -> None:
        peer.request()
        peer.send(f"HTTP/1.1 200 OK\r\nContent-Length: {value}\r\n\r\n".encode())
        peer.close_fin()

    def attempt(url: str) -> type[Exception] | None:
        http = HTTPClient(timeouts=FAST)
        try:
            http.get(url, {})
        except (BadResponseError, ValueError) as error:
            return type(error)
        finally:
            http.close()
        return None

    with serving(script) as server:
        raised = attempt(f"{server.base}/a")
    gc.collect()  # a leaked socket is closed (and warns) here, not in a later test
    assert raised is BadResponseError


def test_abort_from_another_thread_ends_a_blocked_read_at_once() -> None:
    def script(peer: Peer) -> None:
        peer.request()
        peer.send(ok(BODY)[:10_000])
        peer.hold()

    with serving(script) as server, client(Timeouts(connect=2, read=8)) as http:
        response = http.get(f"{server.base}/a", {})
        view = memoryview(bytearray(65536))
        timer = threading.Timer(0.3, http.abort)
        timer.start()
        began = time.monotonic()
        try:
            with pytest.raises(RetryableError):
                while True:
                    response.readinto(view)
        finally:
            timer.join()
            response.close()
        assert time.monotonic() - began < 1.5


# -- redirects -----------------------------------------------------------------------------


def test_redirect_chain_across_ports_is_followed() -> None:
    # 302 to another port, then a relative 307 there: the second server's first connection
    # answers the 307, its second one the body.
    relative = "/final.tar?_nc_gid&oh=00_x%2Fy&oe=6A1B2C3D"
    hop2, final = answer_each(redirect(307, relative)), answer_each(ok(b"the bytes"))
    with serving(hop2, final) as final_server:
        final_url = f"{final_server.base}{relative}"
        second_hop = f"{final_server.base}/hop2"
        with serving(answer_each(redirect(302, second_hop))) as first_server, client() as http:
            response = http.get(f"{first_server.base}/start", {"Range": "bytes=0-8"})
            assert response.status == 200
            assert response.url == final_url
            assert read_all(response)[0] == b"the bytes"
        requests = first_server.requests + final_server.requests
        assert [r.split(b"\r\n", 1)[0] for r in requests] == [
            b"GET /start HTTP/1.1",
            b"GET /hop2 HTTP/1.1",
            b"GET /final.tar?_nc_gid&oh=00_x%2Fy&oe=6A1B2C3D HTTP/1.1",
        ]
        # Every hop gets the caller's headers, and its own Host.
        assert all(b"\r\nRange: bytes=0-8\r\n" in r for r in requests)
        assert f"\r\nHost: 127.0.0.1:{first_server.port}\r\n".encode() in requests[0]
        assert f"\r\nHost: 127.0.0.1:{final_server.port}\r\n".encode() in requests[2]


@pytest.mark.parametrize("status", [301, 302, 303, 307, 308])
def test_every_redirect_status_is_followed(status: int) -> None:
    scripts = answer_each(redirect(status, "/there")), answer_each(ok(b"here"))
    with serving(*scripts) as server, client() as http:
        response = http.get(f"{server.base}/start", {})
        assert response.url == f"{server.base}/there"
        assert read_all(response)[0] == b"here"


def test_a_redirect_without_location_is_returned_as_is() -> None:
    answer = b"HTTP/1.1 302 Found\r\nContent-Length: 2\r\n\r\nno"
    with serving(answer_each(answer)) as server, client() as http:
        response = http.get(f"{server.base}/a", {})
        assert response.status == 302
        assert response.read_some() == b"no"


def _redirect_forever(peer: Peer) -> None:
    path = peer.request().split(b" ", 2)[1].partition(b"?")[0]
    hop = int(path.removeprefix(b"/r"))
    peer.send(redirect(302, f"/r{hop + 1}"))
    peer.wait_for_eof()


def test_exactly_max_redirects_are_followed() -> None:
    scripts = [_redirect_forever] * MAX_REDIRECTS + [answer_each(ok(b"end"))]
    with serving(*scripts) as server, client() as http:
        response = http.get(f"{server.base}/r0", {})
        assert response.url == f"{server.base}/r{MAX_REDIRECTS}"
        assert read_all(response)[0] == b"end"


def test_more_than_max_redirects_is_a_fatal_status_error() -> None:
    with serving(default=_redirect_forever) as server, client() as http:
        with pytest.raises(HTTPStatusError) as caught:
            http.get(f"{server.base}/r0?oh=secret", {})
        assert "redirects" in str(caught.value)
        assert "secret" not in caught.value.url
        assert server.accepted == MAX_REDIRECTS + 1


def test_a_redirect_to_another_scheme_is_refused() -> None:
    answer = answer_each(redirect(302, "ftp://127.0.0.1/x"))
    with serving(answer) as server, client() as http, pytest.raises(HTTPStatusError, match="http"):
        http.get(f"{server.base}/a", {})


@pytest.mark.parametrize(
    "location", [b"/a b.tar", "/caf\u00e9.tar".encode()], ids=["space", "utf8"]
)
def test_an_unusable_redirect_location_is_a_transfer_error(location: bytes) -> None:
    answer = b"HTTP/1.1 302 Found\r\nLocation: " + location + b"\r\nContent-Length: 0\r\n\r\n"
    # Refusing the Location is fine; following it percent-encoded is fine too.
    scripts = answer_each(answer), answer_each(ok(b"x"))
    with serving(*scripts) as server, client() as http, suppress(TransferError):
        http.get(f"{server.base}/a", {})


# -- error bodies --------------------------------------------------------------------------


def test_read_some_returns_a_chunked_error_body() -> None:
    answer = (
        b"HTTP/1.1 403 Forbidden\r\nTransfer-Encoding: chunked\r\n\r\n"
        b"15\r\nURL signature expired\r\n0\r\n\r\n"
    )
    with serving(answer_each(answer)) as server, client() as http:
        response = http.get(f"{server.base}/a", {})
        assert response.status == 403
        began = time.monotonic()
        assert b"URL signature expired" in response.read_some()
        assert time.monotonic() - began < 1.0
        response.close()


def test_read_some_on_a_chunked_body_sent_after_the_head_does_not_wait_for_the_timeout() -> None:
    def script(peer: Peer) -> None:
        peer.request()
        peer.send(b"HTTP/1.1 403 Forbidden\r\nTransfer-Encoding: chunked\r\n\r\n")
        time.sleep(0.1)
        peer.send(b"15\r\nURL signature expired\r\n0\r\n\r\n")
        peer.hold()

    with serving(script) as server, client(Timeouts(connect=2, read=1.5)) as http:
        response = http.get(f"{server.base}/a", {})
        began = time.monotonic()
        body = response.read_some()
        elapsed = time.monotonic() - began
        response.close()
        assert b"URL signature expired" in body
        assert elapsed < 1.0


def test_read_some_returns_a_sized_error_body_and_keeps_the_connection() -> None:
    answer = b"HTTP/1.1 404 Not Found\r\nContent-Length: 9\r\n\r\nnot found"
    with serving(answer_each(answer, ok(b"next"))) as server, client() as http:
        response = http.get(f"{server.base}/a", {})
        assert response.status == 404
        assert response.read_some() == b"not found"
        assert read_all(http.get(f"{server.base}/b", {}))[0] == b"next"
        assert server.accepted == 1


def test_read_some_is_limited_and_never_raises() -> None:
    def script(peer: Peer) -> None:
        peer.request()
        peer.send(b"HTTP/1.1 500 Oops\r\nContent-Length: 100000\r\n\r\n" + b"e" * 3000)
        peer.close_fin()

    with serving(script) as server, client() as http:
        response = http.get(f"{server.base}/a", {})
        assert response.read_some(limit=10) == b"e" * 10
        assert response.read_some() == b"e" * 2990  # then the body ends early: no exception
        response.close()


# -- the request on the wire ---------------------------------------------------------------


def test_the_request_carries_the_urls_path_and_query_exactly() -> None:
    target = "/m1/v/t6/An%2Fq-_~x.tar?_nc_gid&ccb=10-5&oh=00_AY%2B%3Db;c&oe=6A1B2C3D&_nc_sid=a1b2c3"
    with serving(answer_each(ok(b"x"))) as server, client() as http:
        response = http.get(f"{server.base}{target}#fragment", {"Range": "bytes=0-0"})
        assert response.url == f"{server.base}{target}#fragment"
        read_all(response)
    (request,) = server.requests
    lines = request.split(b"\r\n")
    assert lines[0] == f"GET {target} HTTP/1.1".encode()
    assert lines[1] == f"Host: 127.0.0.1:{server.port}".encode()
    assert set(lines[2:-2]) == {
        f"User-Agent: {USER_AGENT}".encode(),
        b"Accept-Encoding: identity",
        b"Range: bytes=0-0",
    }
    assert request.endswith(b"\r\n\r\n")


def test_a_url_without_a_path_asks_for_the_root() -> None:
    with serving(answer_each(ok(b"x"))) as server, client() as http:
        read_all(http.get(server.base, {}))
    assert server.requests[0].startswith(b"GET / HTTP/1.1\r\n")


def test_caller_headers_override_the_defaults() -> None:
    with serving(answer_each(ok(b"x"))) as server, client() as http:
        read_all(http.get(f"{server.base}/a", {"User-Agent": "other/1"}))
    assert b"\r\nUser-Agent: other/1\r\n" in server.requests[0]
    assert USER_AGENT.encode() not in server.requests[0]


@pytest.mark.parametrize("url", ["ftp://127.0.0.1/x", "http:///nohost", "file:///etc/passwd"])
def test_non_http_urls_are_refused(url: str) -> None:
    with client() as http, pytest.raises(HTTPStatusError):
        http.get(url, {})
