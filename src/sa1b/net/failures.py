"""libcurl's error codes as :mod:`sa1b.errors`: the one place they are translated.

Pure: the codes are libcurl's stable numbers (``curl.h``), so this module needs no
pycurl and is tested as a table. Nothing above the transport sees a libcurl code.
"""

from __future__ import annotations

from sa1b.errors import (
    BadResponseError,
    ConnectError,
    FatalTransferError,
    HTTPStatusError,
    RedirectError,
    StallError,
    TLSVerificationError,
    TransferError,
    TruncatedBodyError,
)
from sa1b.redaction import clean

UNSUPPORTED_PROTOCOL = 1
URL_MALFORMAT = 3
COULDNT_RESOLVE_PROXY = 5
COULDNT_RESOLVE_HOST = 6
COULDNT_CONNECT = 7
WEIRD_SERVER_REPLY = 8
HTTP2 = 16
PARTIAL_FILE = 18
WRITE_ERROR = 23
OUT_OF_MEMORY = 27
OPERATION_TIMEDOUT = 28
SSL_CONNECT_ERROR = 35
ABORTED_BY_CALLBACK = 42
TOO_MANY_REDIRECTS = 47
GOT_NOTHING = 52
SEND_ERROR = 55
RECV_ERROR = 56
SSL_CERTPROBLEM = 58
SSL_CIPHER = 59
PEER_FAILED_VERIFICATION = 60
BAD_CONTENT_ENCODING = 61
SSL_CACERT_BADFILE = 77
SSL_ISSUER_ERROR = 83
SSL_PINNEDPUBKEYNOTMATCH = 90
SSL_INVALIDCERTSTATUS = 91
HTTP2_STREAM = 92
PROXY = 97

_CONNECT = {COULDNT_RESOLVE_PROXY, COULDNT_RESOLVE_HOST, COULDNT_CONNECT, SSL_CONNECT_ERROR, PROXY}
_TLS = {
    SSL_CERTPROBLEM,
    SSL_CIPHER,
    PEER_FAILED_VERIFICATION,
    SSL_CACERT_BADFILE,
    SSL_ISSUER_ERROR,
    SSL_PINNEDPUBKEYNOTMATCH,
    SSL_INVALIDCERTSTATUS,
}
_CUT = {PARTIAL_FILE, GOT_NOTHING, SEND_ERROR, RECV_ERROR}
_MALFORMED = {WEIRD_SERVER_REPLY, HTTP2, HTTP2_STREAM, BAD_CONTENT_ENCODING}
_REFUSED = {UNSUPPORTED_PROTOCOL, URL_MALFORMAT}
"""After a redirect: its target was refused; else the answer itself was (HTTP/0.9)."""

PUSHBACK = _CONNECT | _CUT
"""Codes that may mean the server sheds connections: the governor backs off on them."""


def translate(
    code: int,
    message: str,
    *,
    url: str,
    answered: bool,
    redirected: bool = False,
    connect_status: int = 0,
) -> TransferError:
    """The error for libcurl's ``code`` on a request to ``url`` (already redacted).

    ``answered`` tells whether a response head had arrived, ``redirected`` whether
    the last one was a redirect; ``connect_status`` is the proxy's answer to
    ``CONNECT`` (0 without a tunnel).
    """
    detail = clean(message) or f"libcurl error {code}"
    where = {"url": url}
    if connect_status == 407:
        return HTTPStatusError(
            "the proxy wants credentials (407)",
            status=407,
            hint="put them in the proxy URL: http://USER:PASSWORD@HOST:PORT",
            **where,
        )
    if code in _TLS:
        return TLSVerificationError(f"TLS verification failed: {detail}", **where)
    if code == TOO_MANY_REDIRECTS or (code in _REFUSED and redirected):
        return RedirectError(f"redirect not followed: {detail}", **where)
    if code == OPERATION_TIMEDOUT:
        if answered:
            return StallError(f"timed out: {detail}", **where)
        return ConnectError(f"timed out connecting: {detail}", **where)
    if code in _CONNECT:
        return ConnectError(f"cannot connect: {detail}", **where)
    if code in _CUT:
        return TruncatedBodyError(f"connection lost: {detail}", **where)
    if code in _MALFORMED or code in _REFUSED:
        return BadResponseError(f"malformed response: {detail}", **where)
    if code == OUT_OF_MEMORY:
        return FatalTransferError(f"out of memory: {detail}", **where)
    kind = TruncatedBodyError if answered else ConnectError
    return kind(f"libcurl error {code}: {detail}", **where)
