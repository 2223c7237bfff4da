"""Fuzzing every parser of untrusted input: a result or one clear error, never a traceback.

Each parser gets ``FUZZ_EXAMPLES`` (10,000 by default) generated inputs, a mix of its
grammar's own tokens (so that inputs get deep into the parser) and raw noise (so that
nothing is assumed about the alphabet). An input is handled when it gives a result or an
:class:`SA1BError` whose message is one printable line without a signature; any other
exception fails the test, and Hypothesis prints the input and how to replay it.
Set ``FUZZ_EXAMPLES`` higher for a longer local run.
"""

from __future__ import annotations

import os
import re

import pytest
from hypothesis import HealthCheck, event, example, given, settings
from hypothesis import strategies as st

from sa1b.checksums import parse_checksums, read_checksums
from sa1b.errors import OutputLocationError, SA1BError, TransferError
from sa1b.links import parse_links, read_links
from sa1b.net.answers import error_for_status, judge_range_answer
from sa1b.net.heads import HeadError, HeadReader
from sa1b.objectstore.location import BucketLocation, parse_output
from sa1b.selection import parse_shard_spec
from sa1b.sizes import MAX_FILE_SIZE
from sa1b.versions import Validator

FUZZ_EXAMPLES = int(os.environ.get("FUZZ_EXAMPLES", "10000"))
SIGNATURE = "00_SeCrEtSiGnAtUrE"

fuzz = settings(
    max_examples=FUZZ_EXAMPLES,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


NOISE = st.text(max_size=12)


def tokens(*grammar: str, noise: st.SearchStrategy[str] = NOISE) -> st.SearchStrategy[str]:
    """Text built from ``grammar`` tokens and noise, in any order."""
    return st.lists(st.one_of(st.sampled_from(grammar), noise), max_size=40).map("".join)


def assert_clear(error: SA1BError) -> None:
    """One printable line, no signature: what the CLI prints as ``error: …``."""
    message = str(error)
    assert message and message.isprintable(), repr(message)
    assert SIGNATURE not in message and SIGNATURE not in error.hint
    assert error.hint.isprintable()


# -- links files ---------------------------------------------------------------------------

LINKS_GRAMMAR = (
    "file_name",
    "cdn_link",
    "\t",
    " ",
    "\n",
    "\r\n",
    "\r",
    "#",
    "sa_000001.tar",
    "sa_000999.tar",
    "sa_images_ids.txt",
    "../",
    "/",
    "https://",
    "http://",
    "ftp://",
    "scontent.xx.fbcdn.net",
    "[::1",
    "]",
    ":",
    ":99999",
    ":abc",
    "@",
    "user:pass@",
    "?",
    "&",
    "=",
    "_nc_gid",
    "oe=",
    "6A2B3C4D",
    "FFFFFFFFFFFFFFFFFFFF",
    f"&oh={SIGNATURE}",
    f"oh={SIGNATURE}",
    "%2e%2e%2f",
    "<!DOCTYPE html>",
    "<html>",
    "\x00",
    "\x1b[2J",
    "\u202e",
    "\ufeff",
    "ａ",
    "x" * 300,
)


@fuzz
@given(tokens(*LINKS_GRAMMAR))
def test_links_parser(text: str) -> None:
    try:
        links = parse_links(text, source="links.txt")
    except SA1BError as error:
        assert_clear(error)
        return
    assert links
    for link in links:
        assert "/" not in link.name and ".." not in link.name
        assert link.url.startswith(("http://", "https://"))


@fuzz
@given(st.binary(max_size=400) | tokens(*LINKS_GRAMMAR).map(str.encode))
def test_links_file_bytes(tmp_path_factory: pytest.TempPathFactory, data: bytes) -> None:
    path = tmp_path_factory.getbasetemp() / "links.txt"
    path.write_bytes(data)
    try:
        read_links(path)
    except SA1BError as error:
        assert_clear(error)


# -- --shards --------------------------------------------------------------------------------

SHARDS_GRAMMAR = (
    "0",
    "1",
    "7",
    "99",
    "999",
    "1000",
    "000123",
    "-",
    ",",
    " ",
    "sa_",
    ".tar",
    "sa_000777",
    "x",
    "٣",
    "¹",
    "\t",
    "--",
    ",,",
    "9" * 30,
)


@fuzz
@given(tokens(*SHARDS_GRAMMAR, noise=st.text(max_size=4)))
def test_shard_spec(spec: str) -> None:
    try:
        ids = parse_shard_spec(spec)
    except SA1BError as error:
        assert_clear(error)
        return
    assert ids and all(0 <= i <= 999 for i in ids)


# -- -o, a local folder or an s3:// location --------------------------------------------------

OUTPUT_GRAMMAR = (
    "s3",
    "gs",
    "S3",
    ":",
    "/",
    "//",
    "://",
    "./",
    ".",
    "..",
    "bucket",
    "my-bucket.x",
    "-",
    "_",
    "?",
    "#",
    "\n",
    "\x00",
    "1.2.3.4",
)


@fuzz
@given(tokens(*OUTPUT_GRAMMAR, noise=st.text(max_size=4)))
def test_output_location(text: str) -> None:
    try:
        where = parse_output(text)
    except SA1BError as error:
        assert isinstance(error, OutputLocationError)
        assert_clear(error)
        return
    if isinstance(where, BucketLocation):
        # What was accepted reads back the same, and its keys stay under the prefix.
        assert parse_output(where.url) == where
        assert where.key("x").startswith(where.prefix)
        event("s3")
        return
    # A local folder never starts with a scheme-like word and a colon or two slashes
    # (gs:x, s3//x), unless written from '.' or '/'.
    assert text.startswith((".", "/")) or not re.match(r"[A-Za-z][A-Za-z0-9+.-]*(:|//)", text)
    event("local")


# -- checksums files ---------------------------------------------------------------------------

HEX = "0123456789abcdefABCDEF"
CHECKSUMS_GRAMMAR = (
    "d41d8cd98f00b204e9800998ecf8427e",
    "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
    "  ",
    " *",
    " ",
    "\t",
    "./",
    "sa_000001.tar",
    "\n",
    "\r\n",
    "#",
    "g",
    "\x00",
    "\x1b",
)


@fuzz
@given(tokens(*CHECKSUMS_GRAMMAR, noise=st.text(alphabet=HEX, max_size=70) | st.text(max_size=6)))
@example("0" * 32 + "  d41d8cd98f00b204e9800998ecf8427e")  # a digest of digits alone: no case
def test_checksums_parser(text: str) -> None:
    try:
        digests = parse_checksums(text, source="sums.md5")
    except SA1BError as error:
        assert_clear(error)
        return
    for digest in digests.values():
        assert digest.algorithm in ("md5", "sha1", "sha256")
        assert len(digest.hexdigest) in (32, 40, 64)
        assert set(digest.hexdigest) <= set("0123456789abcdef")  # (all digits: no case)


@fuzz
@given(st.binary(max_size=300))
def test_checksums_file_bytes(tmp_path_factory: pytest.TempPathFactory, data: bytes) -> None:
    path = tmp_path_factory.getbasetemp() / "sums.md5"
    path.write_bytes(data)
    try:
        read_checksums(path)
    except SA1BError as error:
        assert_clear(error)


# -- the answer judge: head lines in, a verdict out ---------------------------------------------

GOOD_STATUS = st.sampled_from(
    [
        b"HTTP/1.1 206 Partial Content",
        b"HTTP/1.1 200 OK",
        b"HTTP/1.1 403 Forbidden",
        b"HTTP/1.1 302 Found",
        b"HTTP/1.1 503 Slow Down",
        b"HTTP/1.1 404 Not Found",
        b"HTTP/2 206",
        b"HTTP/1.1 429 Too Many",
        b"HTTP/1.1 416 Range Not Satisfiable",
        b"HTTP/1.1 204 No Content",
    ]
)
STATUS_LINES = st.integers(0, 9).flatmap(
    lambda n: st.binary(max_size=30) if n == 0 else GOOD_STATUS
)
INTERIM = st.lists(
    st.sampled_from([b"HTTP/1.1 100 Continue", b"HTTP/1.1 103 Early Hints"]), max_size=2
)
ODD_VALUES = st.one_of(
    st.sampled_from(
        [
            "bytes 0-99/*",
            "bytes 5-2/10",
            "bytes 0-0/0",
            f"bytes 0-99/{MAX_FILE_SIZE + 1}",
            "bytes 0-99/" + "9" * 5000,
            "-1",
            " 100 ",
            "٣",
            "gzip",
            "identity",
            "chunked",
            '"v1"',
            '"v2"',
            'W/"v1"',
            "Thu, 01 Jan 2026 00:00:00 GMT",
            "120",
            "\x1b[2J",
            f"https://h/x?oh={SIGNATURE}",
            "https://[::1/x",
            "http://h:99999/",
            f"x oh={SIGNATURE}",
        ]
    ),
    st.text(max_size=30),
)
ECHOES = [  # error pages that repeat what they were sent
    f"<Error>bad request for /x?_nc_gid=1&oh={SIGNATURE}&oe=7FFFFFFF</Error>".encode(),
    f"denied: {SIGNATURE}".encode(),
    f"\x1b]0;{SIGNATURE}\x07\x1b[2J".encode(),
]
ASKED = st.tuples(st.integers(0, 2000), st.integers(1, 2000)).map(lambda t: (t[0], t[0] + t[1]))
KNOWN = st.one_of(
    st.none(), st.tuples(st.integers(1, 5000), st.sampled_from(['"v1"', '"v2"', None]))
)
HEADER_NAMES = st.sampled_from(
    [
        "Content-Range",
        "Content-Length",
        "Content-Encoding",
        "ETag",
        "Last-Modified",
        "Retry-After",
        "Location",
        "Transfer-Encoding",
        "X-Other",
    ]
)


def numbers_near(*anchors: int) -> st.SearchStrategy[int]:
    """Integers at, next to or far from ``anchors``: where range checks have their edges."""
    near = st.sampled_from(anchors).flatmap(lambda a: st.sampled_from([a - 1, a, a + 1]))
    return st.one_of(near, near, st.integers(-5, 2**70))


@fuzz
@given(
    status=STATUS_LINES,
    interim=INTERIM,
    asked=ASKED,
    known=KNOWN,
    body=st.binary(max_size=200) | st.sampled_from(ECHOES),
    data=st.data(),
)
def test_answer_judge(
    *,
    status: bytes,
    interim: list[bytes],
    asked: tuple[int, int],
    known: tuple[int, str | None] | None,
    body: bytes,
    data: st.DataObject,
) -> None:
    start, end = asked
    size, validator = (known[0], Validator(known[1])) if known else (None, None)
    total = size or 5000
    lines = [line for head in interim for line in (head, b"")]
    lines.append(status)
    # A correct answer's headers, then up to four changes: most inputs sit one step from valid.
    headers = {
        "Content-Range": f"bytes {start}-{min(end, total) - 1}/{total}",
        "Content-Length": str(min(end, total) - start),
        "ETag": known[1] if known and known[1] else '"v1"',
    }
    if b" 200 " in status:
        headers = {"Content-Length": str(total), "ETag": headers["ETag"]}
    first, last = data.draw(numbers_near(start)), data.draw(numbers_near(end - 1, total - 1))
    choices = {
        "Content-Range": st.just(f"bytes {first}-{last}/{data.draw(numbers_near(total))}")
        | ODD_VALUES,
        "Content-Length": st.sampled_from([str(last + 1 - first), str(total)]) | ODD_VALUES,
        "ETag": st.sampled_from(['"v1"', '"v2"']) | ODD_VALUES,
    }
    for _ in range(data.draw(st.integers(0, 4))):
        name = data.draw(HEADER_NAMES)
        headers[name] = data.draw(choices.get(name, ODD_VALUES))
    lines += [f"{name}: {value}".encode("utf-8", "replace") for name, value in headers.items()]
    if data.draw(st.integers(0, 9)) == 0:  # now and then, a raw line anywhere
        lines.insert(data.draw(st.integers(0, len(lines))), data.draw(st.binary(max_size=30)))
    reader = HeadReader()
    try:
        for line in [*lines, b""]:
            reader.feed(line + b"\r\n")
    except HeadError:
        event("head refused")
        return  # the transport fails the request as a BadResponseError
    head = reader.final
    assert head is not None
    try:
        if head.status in (200, 206):
            plan = judge_range_answer(
                head.status,
                head.headers,
                start=start,
                end=end,
                size=size,
                validator=validator,
                name="sa_000001.tar",
                url="https://h/x?…",
            )
        else:
            error = error_for_status(
                head.status,
                head.headers,
                body,
                now=0.0,
                name="sa_000001.tar",
                url=f"https://h/x?oh={SIGNATURE}&oe=7FFFFFFF",
                redacted="https://h/x?…",
            )
            assert isinstance(error, TransferError)
            event(f"status error: {type(error).__name__}")
            assert_clear(error)
            return
    except SA1BError as error:
        event(f"answer refused: {type(error).__name__}")
        assert_clear(error)
        return
    event(f"plan: {plan.kind}")
    # Whatever the head said, a usable plan never points outside what was asked or the file.
    assert 0 < plan.total <= MAX_FILE_SIZE
    if plan.kind == "range":
        assert plan.start == start and plan.length > 0 and plan.start + plan.length <= end
        assert plan.start + plan.length <= plan.total
        assert size is None or plan.total == size
    elif plan.kind == "whole":
        assert plan.start == 0 and plan.length == plan.total
        assert size is None or plan.total == size
