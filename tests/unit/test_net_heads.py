"""Response heads from libcurl's header lines: only the last complete head counts."""

from __future__ import annotations

import pytest

from sa1b.net.heads import MAX_HEAD, Head, HeadError, HeadReader


def read(*lines: bytes) -> HeadReader:
    reader = HeadReader()
    for line in lines:
        reader.feed(line)
    return reader


def test_a_plain_head() -> None:
    reader = read(
        b"HTTP/1.1 206 Partial Content\r\n",
        b"Content-Range: bytes 0-9/100\r\n",
        b'ETag: "v1"\r\n',
        b"\r\n",
    )
    assert reader.final == Head(
        206, "Partial Content", {"content-range": "bytes 0-9/100", "etag": '"v1"'}
    )
    assert not reader.incomplete


def test_interim_and_redirect_heads_are_superseded_by_the_last() -> None:
    reader = read(
        b"HTTP/1.1 103 Early Hints\r\n",
        b"Link: </x>; rel=preload\r\n",
        b"\r\n",
        b"HTTP/1.1 302 Found\r\n",
        b"Location: /elsewhere\r\n",
        b"\r\n",
        b"HTTP/1.1 200 Connection established\r\n",
        b"\r\n",
        b"HTTP/2 206 \r\n",
        b"content-range: bytes 0-0/1\r\n",
        b"\r\n",
    )
    assert reader.final == Head(206, "", {"content-range": "bytes 0-0/1"})


def test_a_head_in_progress_is_not_final() -> None:
    reader = read(b"HTTP/1.1 100 Continue\r\n", b"\r\n", b"HTTP/1.1 200 OK\r\n")
    assert reader.final is not None and reader.final.status == 100
    assert reader.incomplete


def test_repeated_headers_are_joined_and_names_lowered() -> None:
    reader = read(b"HTTP/1.1 200 OK\r\n", b"X-A: 1\r\n", b"x-a: 2\r\n", b"\r\n")
    assert reader.final is not None
    assert reader.final.headers == {"x-a": "1, 2"}


def test_folded_lines_continue_the_last_value() -> None:
    reader = read(b"HTTP/1.1 200 OK\r\n", b"X-A: 1\r\n", b"  2\r\n", b"\r\n")
    assert reader.final is not None
    assert reader.final.headers == {"x-a": "1 2"}


@pytest.mark.parametrize(
    "lines",
    [
        [b"ICY 200 OK\r\n"],
        [b"HTTP/1.1 2000 OK\r\n"],
        [b"HTTP/1.1 200 OK\r\n", b"no colon here\r\n"],
        [b"HTTP/1.1 200 OK\r\n", b"Bad Name: x\r\n"],
        [b"HTTP/1.1 200 OK\r\n", b" folded first\r\n"],
    ],
)
def test_what_is_not_a_head_is_refused(lines: list[bytes]) -> None:
    with pytest.raises(HeadError):
        read(*lines)


def test_heads_larger_than_the_cap_are_refused() -> None:
    reader = HeadReader()
    reader.feed(b"HTTP/1.1 200 OK\r\n")
    line = b"X-Pad: " + b"a" * 1000 + b"\r\n"
    with pytest.raises(HeadError, match="larger"):
        for _ in range(MAX_HEAD // len(line) + 2):
            reader.feed(line)
