"""libcurl's error codes, translated as a table; the codes are libcurl's own numbers."""

from __future__ import annotations

import pycurl
import pytest

from sa1b.errors import (
    BadResponseError,
    ConnectError,
    FatalTransferError,
    HTTPStatusError,
    RedirectError,
    RetryableError,
    StallError,
    TLSVerificationError,
    TransferError,
    TruncatedBodyError,
)
from sa1b.net import failures
from sa1b.net.failures import translate
from sa1b.redaction import clean

URL = "https://cdn.example/f.tar?…"


@pytest.mark.parametrize(
    ("code", "answered", "expected"),
    [
        (failures.COULDNT_CONNECT, False, ConnectError),
        (failures.COULDNT_RESOLVE_HOST, False, ConnectError),
        (failures.COULDNT_RESOLVE_PROXY, False, ConnectError),
        (failures.SSL_CONNECT_ERROR, False, ConnectError),
        (failures.PROXY, False, ConnectError),
        (failures.OPERATION_TIMEDOUT, False, ConnectError),
        (failures.OPERATION_TIMEDOUT, True, StallError),
        (failures.PEER_FAILED_VERIFICATION, False, TLSVerificationError),
        (failures.SSL_CACERT_BADFILE, False, TLSVerificationError),
        (failures.PARTIAL_FILE, True, TruncatedBodyError),
        (failures.RECV_ERROR, True, TruncatedBodyError),
        (failures.GOT_NOTHING, False, TruncatedBodyError),
        (failures.SEND_ERROR, False, TruncatedBodyError),
        (failures.WEIRD_SERVER_REPLY, False, BadResponseError),
        (failures.BAD_CONTENT_ENCODING, True, BadResponseError),
        (failures.HTTP2, True, BadResponseError),
        (failures.TOO_MANY_REDIRECTS, False, RedirectError),
        (failures.UNSUPPORTED_PROTOCOL, False, BadResponseError),  # HTTP/0.9
        (failures.URL_MALFORMAT, False, BadResponseError),
        (failures.OUT_OF_MEMORY, True, FatalTransferError),
        (9999, False, ConnectError),
        (9999, True, TruncatedBodyError),
    ],
)
def test_translation_table(code: int, answered: bool, expected: type[TransferError]) -> None:
    error = translate(code, "detail", url=URL, answered=answered)
    assert type(error) is expected
    assert error.url == URL
    assert "detail" in error.message


def test_retryable_and_fatal_are_where_the_retry_policy_expects() -> None:
    assert isinstance(translate(failures.RECV_ERROR, "", url=URL, answered=True), RetryableError)
    for code in (failures.PEER_FAILED_VERIFICATION, failures.TOO_MANY_REDIRECTS):
        assert isinstance(translate(code, "", url=URL, answered=False), FatalTransferError)


@pytest.mark.parametrize("code", [failures.UNSUPPORTED_PROTOCOL, failures.URL_MALFORMAT])
def test_a_refused_redirect_target_is_a_redirect_error(code: int) -> None:
    error = translate(code, "x", url=URL, answered=True, redirected=True)
    assert isinstance(error, RedirectError)


def test_a_proxy_asking_for_credentials_says_how_to_give_them() -> None:
    error = translate(failures.RECV_ERROR, "x", url=URL, answered=False, connect_status=407)
    assert isinstance(error, HTTPStatusError) and error.status == 407
    assert "USER:PASSWORD" in error.hint


def test_the_codes_are_libcurls() -> None:
    for name in (
        "UNSUPPORTED_PROTOCOL",
        "COULDNT_RESOLVE_PROXY",
        "COULDNT_RESOLVE_HOST",
        "COULDNT_CONNECT",
        "PARTIAL_FILE",
        "WRITE_ERROR",
        "OPERATION_TIMEDOUT",
        "SSL_CONNECT_ERROR",
        "TOO_MANY_REDIRECTS",
        "GOT_NOTHING",
        "SEND_ERROR",
        "RECV_ERROR",
        "PEER_FAILED_VERIFICATION",
        "BAD_CONTENT_ENCODING",
        "SSL_CACERT_BADFILE",
    ):
        assert getattr(failures, name) == getattr(pycurl, f"E_{name}"), name


def test_clean_drops_signatures_and_control_characters() -> None:
    text = "Could not fetch https://h/p?oh=00_secret&oe=1 \x1b[31mred\x1b[0m"
    cleaned = clean(text)
    assert "00_secret" not in cleaned and "\x1b" not in cleaned
    assert "https://h/p?…" in cleaned
    assert len(clean("x" * 1000)) == 200
