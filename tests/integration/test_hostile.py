"""End to end: broken or hostile servers, one behaviour each, through the real ``sa1b`` process.

Each must end with the file byte-identical, or absent with one clear line and exit 1; never a
traceback, never a hang, never a file that failed for ever on every rerun.
"""

from __future__ import annotations

import contextlib
import sqlite3
from pathlib import Path

import pytest

from sa1b.cdn.faults import Fault
from sa1b.cdn.server import CDNServer
from sa1b.cdn.synth import ShardInfo
from tests.scripted import (
    Peer,
    answer,
    ranged,
    redirecting,
    serve_ranges,
    serving,
    trailing,
)

from .conftest import assert_identical, run_cli

pytestmark = pytest.mark.timeout(60)


def links_to(base: str, shard: ShardInfo, path: Path) -> Path:
    path.write_text(f"{shard.name}\t{base}/{shard.name}\n")
    return path


def download(links: Path, out: Path, *args: str) -> tuple[int, str]:
    result = run_cli("download", "--no-extract", links, "-o", out, *args)
    return result.returncode, result.output


def whole(data: bytes, start: int, end: int) -> bytes:
    """A server without Range support: the whole file, whatever was asked."""
    return answer(data, 'ETag: "v1"')


def test_no_range_support_and_dropped_connections_recover_on_a_rerun(
    shards: list[ShardInfo], tmp_path: Path
) -> None:
    """The first run keeps losing its one stream half way and gives up; the rerun (which
    finds bytes on disk and asks for a range) gets the whole file again and finishes."""
    shard, data = shards[0], shards[0].path.read_bytes()

    def dropping(peer: Peer) -> None:
        peer.request()
        peer.send(whole(data, 0, len(data))[: len(data) // 2])
        peer.close_fin()

    links, out = tmp_path / "l.tsv", tmp_path / "out"
    with serving(default=dropping) as server:
        code, output = download(links_to(server.base, shard, links), out, "--retries", "2")
    assert code == 1, output
    assert "gave up after 2 attempts in a row" in output and "Traceback" not in output
    with serving(default=serve_ranges(data, whole)) as server:
        for _ in range(2):  # and a third run finds it done
            code, output = download(links_to(server.base, shard, links), out)
            assert code == 0, output
    assert_identical(out, [shard])


def test_bytes_after_a_complete_body_never_fail_the_requests_after_it(
    shards: list[ShardInfo], tmp_path: Path
) -> None:
    """Every answer is followed by junk on its kept connection, where it would read as the
    next answer's status line: each request that meets it goes again on a new connection,
    so the file is complete even with a budget of two failures."""
    data = shards[0].path.read_bytes() * 4  # requests enough to meet many kept connections
    junk = trailing(b"junk after the body\r\n\x1b[31m\r\n")
    with serving(default=serve_ranges(data, junk)) as server:
        links = tmp_path / "l.tsv"
        links.write_text(f"sa_000000.tar\t{server.base}/sa_000000.tar\n")
        code, output = download(links, tmp_path / "out", "--connections", "4", "--retries", "2")
    assert code == 0, output
    assert "Invalid status line" not in output and "Traceback" not in output
    assert (tmp_path / "out" / "tars" / "sa_000000.tar").read_bytes() == data


@pytest.mark.parametrize(
    "head",
    [
        b"HTTP/1.1 200 " + b"O" * 200_000 + b"\r\n",
        b"HTTP/1.1 200 OK\r\nX-Long: " + b"a" * 200_000 + b"\r\n",
        b"HTTP/1.1 200 OK\r\n" + b"".join(b"X-%d: v\r\n" % i for i in range(5000)),
    ],
    ids=["long-status-line", "long-header", "5000-headers"],
)
def test_a_response_head_too_large_is_the_servers_fault_not_the_network(
    head: bytes, tmp_path: Path
) -> None:
    def script(peer: Peer) -> None:
        while True:
            try:
                peer.request()
            except OSError:
                return
            peer.send(head + b"Content-Length: 3\r\n\r\nabc")

    with serving(default=script) as server:
        links = tmp_path / "l.tsv"
        links.write_text(f"sa_000000.tar\t{server.base}/sa_000000.tar\n")
        code, output = download(links, tmp_path / "out", "--retries", "2")
    assert code == 1, output
    assert "malformed response: its head is too large" in output
    assert "cannot connect" not in output and "check the network" not in output
    assert "Traceback" not in output


@pytest.mark.parametrize(
    "shape",
    ["empty-200", "short-200"],
)
def test_a_whole_answer_that_is_empty_or_short_is_never_published(
    shape: str, shards: list[ShardInfo], tmp_path: Path
) -> None:
    shard, data = shards[0], shards[0].path.read_bytes()

    def broken(data: bytes, start: int, end: int) -> bytes:
        if shape == "empty-200":
            return answer(b"")
        return answer(data)[: -len(data) // 3]  # announces all, sends two thirds

    def script(peer: Peer) -> None:
        serve_ranges(data, broken)(peer)

    with serving(default=script) as server:
        links = links_to(server.base, shard, tmp_path / "l.tsv")
        code, output = download(links, tmp_path / "out", "--retries", "2", "--read-timeout", "1")
    assert code == 1, output
    assert "Traceback" not in output
    assert not (tmp_path / "out" / "tars").exists()
    if shape == "empty-200":
        assert "empty body" in output


def test_a_flapping_version_is_given_up_not_restarted_for_ever(
    cdn: CDNServer, links: Path, shards: list[ShardInfo], tmp_path: Path
) -> None:
    cdn.add_fault(shards[0].name, Fault("change_etag", times=10_000))
    code, output = download(links, tmp_path / "out")
    assert code == 1, output
    assert "changed on the server 4 times" in output
    assert "try again later" in output
    assert_identical(tmp_path / "out", shards[1:])
    requests = sum(1 for r in cdn.requests if r.name == shards[0].name)
    assert requests < 100, requests


@pytest.mark.parametrize(
    "total",
    [str(64 * 1024**4), str(10**20), "9" * 5000],
    ids=["64TiB", "1e20", "5000-digits"],
)
def test_an_implausible_size_fails_that_file_only(
    total: str, shards: list[ShardInfo], tmp_path: Path
) -> None:
    bad, good = shards[0], shards[1]
    data = good.path.read_bytes()

    def script(peer: Peer) -> None:
        while True:
            try:
                request = peer.request()
            except OSError:
                return
            if bad.name.encode() in request.split(b"\r\n")[0]:
                peer.send(
                    answer(b"x" * 10, f"Content-Range: bytes 0-9/{total}", status="206 Partial")
                )
            else:
                serve_once(peer, request, data)

    with serving(default=script) as server:
        links = tmp_path / "l.tsv"
        links.write_text(
            f"{bad.name}\t{server.base}/{bad.name}\n{good.name}\t{server.base}/{good.name}\n"
        )
        code, output = download(links, tmp_path / "out")
    assert code == 1, output
    assert "more than any SA-1B file" in output and "Traceback" not in output
    assert "free some space" not in output
    assert_identical(tmp_path / "out", [good])
    assert not (tmp_path / "out" / ".sa1b" / "partial" / f"{bad.name}.part").exists()


def test_a_content_length_of_5000_digits_is_quoted_with_its_length(
    shards: list[ShardInfo], tmp_path: Path
) -> None:
    """Leading zeros: libcurl reads the value, which the range's length contradicts by
    its spelling; the message shows its start and says how long it was."""
    shard, data = shards[0], shards[0].path.read_bytes()

    def padded(data: bytes, start: int, end: int) -> bytes:
        digits = str(end - start).rjust(5000, "0")
        answer = ranged(data, start, end)
        return answer.replace(
            f"Content-Length: {end - start}".encode(), b"Content-Length: " + digits.encode()
        )

    with serving(default=serve_ranges(data, padded)) as server:
        links = links_to(server.base, shard, tmp_path / "l.tsv")
        code, output = download(links, tmp_path / "out", "--retries", "1")
    assert code == 1, output
    assert f"Content-Length '{'0' * 40}…' (5000 characters) does not match" in output
    assert "Traceback" not in output


def serve_once(peer: Peer, request: bytes, data: bytes) -> None:
    """Answer one already-read range request for ``data``."""
    start, end = 0, len(data)
    for line in request.decode("latin-1").split("\r\n"):
        if line.lower().startswith("range: bytes="):
            first, _, last = line.split("=", 1)[1].partition("-")
            start, end = int(first), min(len(data), int(last) + 1)
    peer.send(ranged(data, start, end))


@pytest.mark.parametrize(
    "location",
    ["http://127.0.0.1:99999/x.tar", "http://127.0.0.1:abc/x.tar", "http://[::1/x.tar"],
    ids=["port-99999", "port-abc", "broken-ipv6"],
)
def test_an_unusable_location_is_one_clear_line(
    location: str, shards: list[ShardInfo], tmp_path: Path
) -> None:
    with serving(default=redirecting(location)) as server:
        links = links_to(server.base, shards[0], tmp_path / "l.tsv")
        code, output = download(links, tmp_path / "out")
    assert code == 1, output
    assert "Traceback" not in output
    assert "not followed" in output or "cannot connect" in output


def echoing_403(peer: Peer) -> None:
    """A 403 whose page repeats the request line (signature and all) and drives terminals."""
    while True:
        try:
            request = peer.request()
        except (ConnectionError, OSError):
            return
        line = request.split(b"\r\n", 1)[0]
        body = b"\x1b]0;owned\x07\x1b[2J\x1b[31mAccessDenied for " + line + b"\x1b[0m"
        peer.send(answer(body, status="403 Forbidden"))


def test_a_403_page_is_shown_without_its_signature_or_terminal_control(
    shards: list[ShardInfo], tmp_path: Path
) -> None:
    shard, out, signature = shards[0], tmp_path / "out", "00_SeCrEtSiGnAtUrE"
    with serving(default=echoing_403) as server:
        links = tmp_path / "l.tsv"
        links.write_text(
            f"{shard.name}\t{server.base}/{shard.name}?_nc_gid=x&oh={signature}&oe=7FFFFFFF\n"
        )
        code, output = download(links, out, "--log-file", str(tmp_path / "log"))
    status = run_cli("status", out).output
    stored = b"".join(p.read_bytes() for p in (out / ".sa1b").glob("state.db*"))
    assert code == 1, output
    assert "403 Forbidden" in output and "AccessDenied" in output
    for shown in (output, status, (tmp_path / "log").read_text()):
        assert signature not in shown
        assert "\x1b" not in shown and "\x07" not in shown
    assert signature.encode() not in stored
    # The store is binary (a float can hold byte 0x1b), so control characters are looked
    # for in its text cells, not in its raw pages.
    texts = stored_text(out)
    assert any("403" in text for text in texts), texts
    assert not [text for text in texts if "\x1b" in text or "\x07" in text]


def stored_text(out: Path) -> list[str]:
    """Every text cell of every table in OUT's state store."""
    with contextlib.closing(sqlite3.connect(out / ".sa1b" / "state.db")) as db:
        tables = [row[0] for row in db.execute("SELECT name FROM sqlite_master WHERE type='table'")]
        return [
            cell
            for table in tables
            for row in db.execute(f'SELECT * FROM "{table}"')
            for cell in row
            if isinstance(cell, str)
        ]
