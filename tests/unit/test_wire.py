"""HTTP/1.1 on the wire, sans I/O: request bytes, the end of a head, and parsing it."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from sa1b.wire import MAX_HEAD, Head, ProtocolError, build_request, head_end, parse_head

SIGNED_TARGET = (
    "/m1/v/t6/An%2Fx_-Q~.tar?_nc_gid&ccb=10-5&oh=00_AYBcDe%2B%3D&oe=6A1B2C3D&_nc_sid=a1b2c3"
)


def head(status_line: str, *lines: str) -> bytes:
    return "".join(f"{line}\r\n" for line in (status_line, *lines)).encode("latin-1") + b"\r\n"


# -- build_request -------------------------------------------------------------------------


def test_build_request_exact_bytes() -> None:
    request = build_request(
        "/a/b.tar?x=1", host="cdn.example:8080", headers={"Range": "bytes=0-99", "X-A": ""}
    )
    assert request == (
        b"GET /a/b.tar?x=1 HTTP/1.1\r\nHost: cdn.example:8080\r\nRange: bytes=0-99\r\nX-A: \r\n\r\n"
    )


def test_build_request_without_headers() -> None:
    assert build_request("/", host="h", headers={}) == b"GET / HTTP/1.1\r\nHost: h\r\n\r\n"


def test_build_request_sends_the_signed_target_byte_for_byte() -> None:
    request = build_request(SIGNED_TARGET, host="h", headers={})
    first_line = request.split(b"\r\n", 1)[0]
    assert first_line == f"GET {SIGNED_TARGET} HTTP/1.1".encode()
    # The bare ``_nc_gid`` item gets no ``=``, and nothing is decoded or re-encoded.
    assert b"?_nc_gid&ccb=" in first_line
    assert b"%2F" in first_line
    assert b"%2B%3D" in first_line


def test_build_request_keeps_header_order_and_case() -> None:
    request = build_request(
        "/x", host="h", headers={"if-range": '"e1"', "User-Agent": "sa1b/0", "RANGE": "bytes=1-"}
    )
    assert request.split(b"\r\n")[2:5] == [
        b'if-range: "e1"',
        b"User-Agent: sa1b/0",
        b"RANGE: bytes=1-",
    ]


@pytest.mark.parametrize(
    "target",
    [
        "/a b",
        "/a\r\nX-Injected: 1",
        "/a\nb",
        "/a\rb",
        "/a\tb",
        "/caf\u00e9",
        "/\u2603",
        "relative/path",
        "https://h/absolute",
        "http://h/a b",
        "",
    ],
)
def test_build_request_rejects_unsafe_targets(target: str) -> None:
    with pytest.raises(ValueError, match="request target"):
        build_request(target, host="h", headers={})


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("Bad Name", "v"),
        ("Bad:Name", "v"),
        ("", "v"),
        ("X-\u00e9", "v"),
        ("X\r\nInjected", "v"),
        ("X-Ok", "a\r\nInjected: 1"),
        ("X-Ok", "a\nb"),
        ("X-Ok", "a\rb"),
    ],
)
def test_build_request_rejects_bad_headers(name: str, value: str) -> None:
    with pytest.raises(ValueError, match="bad header"):
        build_request("/x", host="h", headers={name: value})


# -- head_end ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("data", "end"),
    [
        (b"", -1),
        (b"HTTP/1.1 200 OK\r\n", -1),
        (b"HTTP/1.1 200 OK\r\nA: b\r\n\r", -1),
        (b"HTTP/1.1 200 OK\n\n", -1),
        (b"HTTP/1.1 200 OK\r\n\r\n", 19),
        (b"HTTP/1.1 200 OK\r\nA: b\r\n\r\nBODY\r\n\r\n", 25),
    ],
)
def test_head_end(data: bytes, end: int) -> None:
    assert head_end(data) == end
    assert head_end(bytearray(data)) == end


# -- parse_head: status line ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("data", "status", "reason", "http10"),
    [
        (b"HTTP/1.1 200 OK\r\n\r\n", 200, "OK", False),
        (b"HTTP/1.1 206 Partial Content\r\n\r\n", 206, "Partial Content", False),
        (b"HTTP/1.0 404 Not Found\r\n\r\n", 404, "Not Found", True),
        (b"HTTP/1.1 200\r\n\r\n", 200, "", False),
        (b"HTTP/1.1 200 \r\n\r\n", 200, "", False),
        (b"HTTP/1.0 302\r\n\r\n", 302, "", True),
        (b"HTTP/1.1 599 Odd \xe9 reason\r\n\r\n", 599, "Odd \u00e9 reason", False),
    ],
)
def test_status_line(data: bytes, status: int, reason: str, http10: bool) -> None:
    parsed = parse_head(data)
    assert (parsed.status, parsed.reason, parsed.http10, parsed.headers) == (
        status,
        reason,
        http10,
        {},
    )


def test_parse_head_accepts_a_bytearray() -> None:
    assert parse_head(bytearray(b"HTTP/1.1 204 No Content\r\n\r\n")).status == 204


@pytest.mark.parametrize(
    "status_line",
    [
        b"",
        b"garbage",
        b"SSH-2.0-OpenSSH_9.6",
        b"HTTP/2 200",
        b"HTTP/2.0 200 OK",
        b"HTTP/1.2 200 OK",
        b"HTTP/1.1 20 OK",
        b"HTTP/1.1 2000 OK",
        b"HTTP/1.1 abc OK",
        b"HTTP/1.1  200 OK",
        b"HTTP/1.1\t200 OK",
        b"http/1.1 200 OK",
        b" HTTP/1.1 200 OK",
        b"HTTP/1.1 200 OK\n",
        b"ICY 200 OK",
    ],
)
def test_malformed_status_line(status_line: bytes) -> None:
    with pytest.raises(ProtocolError, match="status line"):
        parse_head(status_line + b"\r\n\r\n")


def test_protocol_error_is_a_value_error() -> None:
    assert issubclass(ProtocolError, ValueError)


# -- parse_head: headers -------------------------------------------------------------------


def test_header_names_are_lower_cased_and_values_stripped() -> None:
    parsed = parse_head(
        head(
            "HTTP/1.1 206 Partial Content",
            "Content-Range: bytes 0-99/1000",
            'ETAG:   "abc"  ',
            "x-EMPTY:",
            "X-Colon: a:b: c",
        )
    )
    assert parsed.headers == {
        "content-range": "bytes 0-99/1000",
        "etag": '"abc"',
        "x-empty": "",
        "x-colon": "a:b: c",
    }


def test_repeated_headers_are_joined_in_order_whatever_their_case() -> None:
    parsed = parse_head(
        head("HTTP/1.1 200 OK", "Via: a", "X-One: 1", "VIA: b", "via:c", "Set-Cookie: k=v")
    )
    assert parsed.headers == {"via": "a, b, c", "x-one": "1", "set-cookie": "k=v"}


def test_latin1_header_values_survive() -> None:
    parsed = parse_head(b"HTTP/1.1 200 OK\r\nX-Name: caf\xe9\r\n\r\n")
    assert parsed.headers["x-name"] == "caf\u00e9"


@pytest.mark.parametrize(
    "line",
    [
        b"no colon here",
        b": empty name",
        b"Bad Name: v",
        b"Name : v",
        b" folded: continuation",
        b"\tfolded",
        b"X-\xe9: v",
        b"Na(me): v",
    ],
)
def test_malformed_header_line(line: bytes) -> None:
    with pytest.raises(ProtocolError, match="bad header line"):
        parse_head(b"HTTP/1.1 200 OK\r\nGood: yes\r\n" + line + b"\r\n\r\n")


# -- keep-alive rules ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("version", "connection", "keep"),
    [
        ("1.1", None, True),
        ("1.1", "keep-alive", True),
        ("1.1", "Keep-Alive", True),
        ("1.1", "close", False),
        ("1.1", "Close", False),
        ("1.1", "Upgrade, close", False),
        ("1.0", None, False),
        ("1.0", "close", False),
        ("1.0", "keep-alive", True),
        ("1.0", "Keep-Alive", True),
        ("1.0", "Upgrade, Keep-Alive", True),
    ],
)
def test_keep_alive(version: str, connection: str | None, keep: bool) -> None:
    lines = [f"Connection: {connection}"] if connection is not None else []
    parsed = parse_head(head(f"HTTP/{version} 200 OK", "Content-Length: 0", *lines))
    assert parsed.keep_alive is keep


def test_keep_alive_of_a_head_built_directly() -> None:
    assert Head(200, "OK", {}).keep_alive
    assert not Head(200, "OK", {}, http10=True).keep_alive


# -- framing: Content-Length and chunked ---------------------------------------------------


@pytest.mark.parametrize(
    ("value", "length"),
    [("0", 0), ("1000", 1000), (" 42 ", 42), ("007", 7), ("11811160064", 11_811_160_064)],
)
def test_content_length(value: str, length: int) -> None:
    parsed = parse_head(head("HTTP/1.1 200 OK", f"Content-Length: {value}"))
    assert parsed.content_length == length


def test_no_content_length() -> None:
    assert parse_head(head("HTTP/1.1 200 OK")).content_length is None


@pytest.mark.parametrize(
    "value",
    ["", "-1", "+5", "1e3", "0x10", "12 34", "5, 5", "1.0", "abc", "\u00b2", "\u00bd"],
)
def test_bad_content_length(value: str) -> None:
    parsed = parse_head(head("HTTP/1.1 200 OK", f"Content-Length: {value}"))
    with pytest.raises(ProtocolError, match="Content-Length"):
        _ = parsed.content_length


@pytest.mark.parametrize("value", ["\u0663", "\uff15", "\U0001d7d3"])
def test_non_ascii_digits_in_content_length(value: str) -> None:
    # Unicode digits pass str.isdigit() (and int() accepts some): refuse them all.
    with pytest.raises(ProtocolError, match="Content-Length"):
        _ = Head(200, "OK", {"content-length": value}).content_length
    raw = b"HTTP/1.1 200 OK\r\nContent-Length: " + value.encode() + b"\r\n\r\n"
    with pytest.raises(ProtocolError, match="Content-Length"):
        _ = parse_head(raw).content_length


def test_repeated_content_length_is_refused() -> None:
    parsed = parse_head(head("HTTP/1.1 200 OK", "Content-Length: 5", "Content-Length: 6"))
    with pytest.raises(ProtocolError, match="Content-Length"):
        _ = parsed.content_length


@pytest.mark.parametrize(
    ("lines", "chunked"),
    [
        ((), False),
        (("Transfer-Encoding: chunked",), True),
        (("Transfer-Encoding: Chunked",), True),
        (("TRANSFER-ENCODING: CHUNKED",), True),
        (("Transfer-Encoding: gzip, chunked",), True),
        (("Transfer-Encoding: gzip", "Transfer-Encoding: chunked"), True),
        (("Transfer-Encoding: identity",), False),
        (("Content-Length: 10",), False),
    ],
)
def test_chunked_detection(lines: tuple[str, ...], chunked: bool) -> None:
    assert parse_head(head("HTTP/1.1 200 OK", *lines)).chunked is chunked


def test_head_is_frozen() -> None:
    parsed = parse_head(head("HTTP/1.1 200 OK"))
    with pytest.raises(AttributeError):
        parsed.status = 500  # type: ignore[misc]


def test_max_head_is_generous_but_bounded() -> None:
    assert 4096 <= MAX_HEAD <= 1024 * 1024


# -- properties: rendering round-trips, and any split of the input parses the same ---------

TOKEN_CHARS = "!#$%&'*+-.^_`|~0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
_WHITESPACE = " \t\n\r\x0b\x0c"

header_names = st.text(alphabet=TOKEN_CHARS, min_size=1, max_size=20)
header_values = st.text(
    alphabet=st.characters(min_codepoint=0, max_codepoint=0xFF, exclude_characters="\r\n"),
    max_size=40,
).map(lambda value: value.strip(_WHITESPACE))
header_dicts = st.dictionaries(header_names, header_values, max_size=12).filter(
    lambda headers: len({name.lower() for name in headers}) == len(headers)
)
reasons = st.text(
    alphabet=st.characters(min_codepoint=0x20, max_codepoint=0xFF, exclude_characters="\x7f"),
    max_size=30,
)


def render(status: int, reason: str, headers: dict[str, str], *, http10: bool = False) -> bytes:
    version = "1.0" if http10 else "1.1"
    status_line = f"HTTP/{version} {status}" + (f" {reason}" if reason else "")
    lines = [status_line, *(f"{name}: {value}" for name, value in headers.items())]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


@given(
    status=st.integers(100, 999),
    reason=reasons,
    headers=header_dicts,
    http10=st.booleans(),
)
def test_rendered_head_parses_back(
    status: int, reason: str, headers: dict[str, str], http10: bool
) -> None:
    data = render(status, reason, headers, http10=http10)
    assert head_end(data) == len(data)
    parsed = parse_head(data)
    assert parsed.status == status
    assert parsed.reason == reason
    assert parsed.http10 is http10
    assert parsed.headers == {name.lower(): value for name, value in headers.items()}


@given(
    headers=header_dicts,
    body=st.binary(max_size=64),
    data=st.data(),
)
def test_any_split_of_the_input_parses_the_same(
    headers: dict[str, str], body: bytes, data: st.DataObject
) -> None:
    whole = render(206, "Partial Content", headers)
    stream = whole + body
    cuts = data.draw(
        st.lists(st.integers(0, len(stream)), max_size=8).map(lambda c: sorted(set(c))),
        label="cuts",
    )
    pieces = [stream[a:b] for a, b in zip([0, *cuts], [*cuts, len(stream)], strict=True)]
    buffer = bytearray()
    end = -1
    for piece in pieces:
        buffer += piece
        end = head_end(buffer)
        if end >= 0:
            break
        assert len(buffer) < len(whole)
    assert end == len(whole)
    assert buffer[end:] == stream[end : len(buffer)]
    assert parse_head(buffer[:end]) == parse_head(whole)
    assert parse_head(buffer[:end]).headers == {k.lower(): v for k, v in headers.items()}


@given(headers=header_dicts)
def test_one_byte_at_a_time(headers: dict[str, str]) -> None:
    whole = render(200, "OK", headers)
    buffer = bytearray()
    for index in range(len(whole)):
        assert head_end(buffer) == -1
        buffer.append(whole[index])
    assert head_end(buffer) == len(whole)
    assert parse_head(buffer).headers == {k.lower(): v for k, v in headers.items()}


@given(
    headers=st.dictionaries(
        header_names,
        st.text(
            alphabet=st.characters(
                min_codepoint=0x20, max_codepoint=0xFF, exclude_characters="\x7f"
            ),
            max_size=30,
        ),
        max_size=8,
    )
)
def test_build_request_lines_are_exactly_the_headers(headers: dict[str, str]) -> None:
    request = build_request(SIGNED_TARGET, host="h:1", headers=headers)
    assert request.endswith(b"\r\n\r\n")
    assert head_end(request) == len(request)
    lines = request[:-4].decode("latin-1").split("\r\n")
    assert lines[0] == f"GET {SIGNED_TARGET} HTTP/1.1"
    assert lines[1] == "Host: h:1"
    assert lines[2:] == [f"{name}: {value}" for name, value in headers.items()]


def test_build_request_sends_absolute_form_for_a_proxy() -> None:
    data = build_request("http://h:8/p?_nc_gid&oh=1", host="h:8", headers={})
    assert data.startswith(b"GET http://h:8/p?_nc_gid&oh=1 HTTP/1.1\r\nHost: h:8\r\n")


def test_build_request_error_never_quotes_the_target() -> None:
    with pytest.raises(ValueError) as caught:
        build_request("/p?oh=00_secret sig", host="h", headers={})
    assert "secret" not in str(caught.value)
