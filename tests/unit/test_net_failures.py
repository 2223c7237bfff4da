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
        (failures.TOO_LARGE, False, BadResponseError),
        (failures.AUTH_ERROR, False, FatalTransferError),
        (failures.SSL_CLIENTCERT, False, TLSVerificationError),
        (failures.NOT_BUILT_IN, False, FatalTransferError),
        (failures.UNRECOVERABLE_POLL, True, FatalTransferError),
        (failures.NO_CONNECTION_AVAILABLE, False, ConnectError),
        (failures.SSL_SHUTDOWN_FAILED, True, TruncatedBodyError),
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
    """Each code pycurl names (it lags libcurl: 8, 92 and 94-101 are curl.h's alone)."""
    codes = {k: v for k, v in vars(failures).items() if k.isupper() and isinstance(v, int)}
    named = {k: v for k, v in codes.items() if hasattr(pycurl, f"E_{k}")}
    assert len(named) >= len(codes) - 8
    for name, code in named.items():
        assert code == getattr(pycurl, f"E_{name}"), name
    assert codes["WEIRD_SERVER_REPLY"] == pycurl.E_FTP_WEIRD_SERVER_REPLY  # its old name


def test_every_meaning_is_its_own_error_and_what_ends_a_file_says_what_to_do() -> None:
    for code, meaning in failures.MEANINGS.items():
        error = translate(code, "detail", url=URL, answered=False)
        assert type(error) is meaning.kind, code
        assert error.message.startswith(meaning.words) and "detail" in error.message
        if isinstance(error, FatalTransferError | ConnectError | BadResponseError):
            assert error.hint, code


def test_a_head_too_large_is_a_broken_server_not_the_network() -> None:
    error = translate(failures.TOO_LARGE, "", url=URL, answered=False)
    assert isinstance(error, BadResponseError)
    assert "too large" in error.message and "libcurl error 100" in error.message
    assert "network" not in error.hint and "HTTPS_PROXY" not in error.hint


PROXY = "http://proxy.example:3128"


@pytest.mark.parametrize(
    ("code", "connect_status", "expected", "words"),
    [
        (failures.OPERATION_TIMEDOUT, 0, ConnectError, "did not open a tunnel"),
        (failures.SSL_CONNECT_ERROR, 200, ConnectError, "did not carry the server's TLS"),
        (failures.COULDNT_CONNECT, 0, ConnectError, f"cannot connect to the proxy {PROXY}"),
        (failures.COULDNT_RESOLVE_PROXY, 0, ConnectError, "cannot connect to the proxy"),
        (failures.PROXY, 0, ConnectError, "cannot connect to the proxy"),
        (failures.GOT_NOTHING, 0, ConnectError, "closed or garbled its answer to CONNECT"),
        (failures.RECV_ERROR, 403, HTTPStatusError, "refused to open a tunnel"),
        (failures.RECV_ERROR, 502, ConnectError, "refused to open a tunnel"),
    ],
)
def test_through_a_proxy_a_failure_before_the_answer_says_what_the_proxy_did(
    code: int, connect_status: int, expected: type[TransferError], words: str
) -> None:
    error = translate(
        code, "detail", url=URL, answered=False, connect_status=connect_status, proxy=PROXY
    )
    assert type(error) is expected
    assert words in error.message and PROXY in error.message
    assert f"check that the proxy {PROXY} runs" in error.hint
    assert "set HTTPS_PROXY" not in error.hint  # it is set already


def test_through_a_proxy_what_the_server_did_is_still_the_servers() -> None:
    plain = "http://cdn.example/f.tar"
    timeout = translate(failures.OPERATION_TIMEDOUT, "x", url=plain, answered=False, proxy=PROXY)
    assert "did not answer in time" in timeout.message
    verify = translate(failures.PEER_FAILED_VERIFICATION, "x", url=URL, answered=False, proxy=PROXY)
    assert isinstance(verify, TLSVerificationError) and PROXY not in verify.message
    cut = translate(failures.RECV_ERROR, "x", url=URL, answered=True, proxy=PROXY)
    assert isinstance(cut, TruncatedBodyError) and PROXY not in cut.message


def test_clean_drops_signatures_and_control_characters() -> None:
    text = "Could not fetch https://h/p?oh=00_secret&oe=1 \x1b[31mred\x1b[0m"
    cleaned = clean(text)
    assert "00_secret" not in cleaned and "\x1b" not in cleaned
    assert "https://h/p?…" in cleaned
    assert len(clean("x" * 1000)) == 200
