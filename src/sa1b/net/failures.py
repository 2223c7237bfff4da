"""libcurl's error codes as :mod:`sa1b.errors`: the one place they are translated.

Pure: the codes are libcurl's stable numbers (``curl.h``), so this module needs no
pycurl and is tested as a table. Nothing above the transport sees a libcurl code.
:data:`MEANINGS` says, for every code a download can meet, what it means to a user,
whether another attempt can help (the error's class) and what to do; a code not in it
is reported with its number and retried, as a lost connection would be. Through a
proxy, a failure before the server answered says what happened at the proxy, since
that is where the user has something to check.
"""

from __future__ import annotations

from dataclasses import dataclass

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
FAILED_INIT = 2
URL_MALFORMAT = 3
NOT_BUILT_IN = 4
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
BAD_FUNCTION_ARGUMENT = 43
INTERFACE_FAILED = 45
TOO_MANY_REDIRECTS = 47
UNKNOWN_OPTION = 48
GOT_NOTHING = 52
SSL_ENGINE_NOTFOUND = 53
SSL_ENGINE_SETFAILED = 54
SEND_ERROR = 55
RECV_ERROR = 56
SSL_CERTPROBLEM = 58
SSL_CIPHER = 59
PEER_FAILED_VERIFICATION = 60
BAD_CONTENT_ENCODING = 61
SSL_ENGINE_INITFAILED = 66
SSL_CACERT_BADFILE = 77
SSL_SHUTDOWN_FAILED = 80
SSL_CRL_BADFILE = 82
SSL_ISSUER_ERROR = 83
NO_CONNECTION_AVAILABLE = 89
SSL_PINNEDPUBKEYNOTMATCH = 90
SSL_INVALIDCERTSTATUS = 91
HTTP2_STREAM = 92
AUTH_ERROR = 94
PROXY = 97
SSL_CLIENTCERT = 98
UNRECOVERABLE_POLL = 99
TOO_LARGE = 100
ECH_REQUIRED = 101

_BUG = "this is a bug in sa1b or its libcurl: please report it with --log-file's output"
_BROKEN_SERVER = (
    "the server (or something between it and this machine) answers outside HTTP; "
    "run the same command later, or use another mirror"
)


@dataclass(frozen=True, slots=True)
class Meaning:
    """What a libcurl code means: the error it becomes, in words, and what to do."""

    kind: type[TransferError]
    words: str
    hint: str | None = None
    """None: the error class's own hint."""


MEANINGS: dict[int, Meaning] = {
    COULDNT_RESOLVE_PROXY: Meaning(ConnectError, "cannot resolve the proxy's name"),
    COULDNT_RESOLVE_HOST: Meaning(ConnectError, "cannot resolve the host's name"),
    COULDNT_CONNECT: Meaning(ConnectError, "cannot connect"),
    SSL_CONNECT_ERROR: Meaning(ConnectError, "cannot connect: the TLS handshake failed"),
    INTERFACE_FAILED: Meaning(ConnectError, "cannot connect from the chosen interface"),
    NO_CONNECTION_AVAILABLE: Meaning(ConnectError, "no connection available"),
    PROXY: Meaning(ConnectError, "cannot connect: the proxy handshake failed"),
    PARTIAL_FILE: Meaning(TruncatedBodyError, "connection lost"),
    GOT_NOTHING: Meaning(TruncatedBodyError, "connection lost"),
    SEND_ERROR: Meaning(TruncatedBodyError, "connection lost"),
    RECV_ERROR: Meaning(TruncatedBodyError, "connection lost"),
    SSL_SHUTDOWN_FAILED: Meaning(TruncatedBodyError, "connection lost"),
    WEIRD_SERVER_REPLY: Meaning(BadResponseError, "malformed response", _BROKEN_SERVER),
    HTTP2: Meaning(BadResponseError, "malformed response", _BROKEN_SERVER),
    HTTP2_STREAM: Meaning(BadResponseError, "malformed response", _BROKEN_SERVER),
    BAD_CONTENT_ENCODING: Meaning(BadResponseError, "malformed response", _BROKEN_SERVER),
    UNSUPPORTED_PROTOCOL: Meaning(BadResponseError, "malformed response", _BROKEN_SERVER),
    URL_MALFORMAT: Meaning(BadResponseError, "malformed response", _BROKEN_SERVER),
    TOO_LARGE: Meaning(
        BadResponseError, "malformed response: its head is too large", _BROKEN_SERVER
    ),
    TOO_MANY_REDIRECTS: Meaning(
        RedirectError,
        "redirect not followed",
        "the link redirects in a loop: try later, or fetch a fresh links file",
    ),
    SSL_CERTPROBLEM: Meaning(TLSVerificationError, "TLS verification failed"),
    SSL_CIPHER: Meaning(TLSVerificationError, "TLS verification failed"),
    PEER_FAILED_VERIFICATION: Meaning(TLSVerificationError, "TLS verification failed"),
    SSL_CACERT_BADFILE: Meaning(
        TLSVerificationError,
        "TLS verification failed: the CA certificates cannot be read",
        "check --ca-bundle or SSL_CERT_FILE: it must be a readable PEM file",
    ),
    SSL_CRL_BADFILE: Meaning(TLSVerificationError, "TLS verification failed"),
    SSL_ISSUER_ERROR: Meaning(TLSVerificationError, "TLS verification failed"),
    SSL_PINNEDPUBKEYNOTMATCH: Meaning(TLSVerificationError, "TLS verification failed"),
    SSL_INVALIDCERTSTATUS: Meaning(TLSVerificationError, "TLS verification failed"),
    SSL_CLIENTCERT: Meaning(TLSVerificationError, "TLS verification failed"),
    ECH_REQUIRED: Meaning(TLSVerificationError, "TLS verification failed"),
    AUTH_ERROR: Meaning(
        FatalTransferError,
        "the proxy refused the credentials",
        "check the USER:PASSWORD in the proxy URL (HTTPS_PROXY, HTTP_PROXY or ALL_PROXY)",
    ),
    OUT_OF_MEMORY: Meaning(
        FatalTransferError, "out of memory", "free some memory, or use fewer --connections"
    ),
    NOT_BUILT_IN: Meaning(
        FatalTransferError,
        "this libcurl was built without a feature the request needs",
        "use a libcurl (pycurl) built with it, or another kind of proxy",
    ),
    FAILED_INIT: Meaning(FatalTransferError, "internal error", _BUG),
    BAD_FUNCTION_ARGUMENT: Meaning(FatalTransferError, "internal error", _BUG),
    UNKNOWN_OPTION: Meaning(FatalTransferError, "internal error", _BUG),
    SSL_ENGINE_NOTFOUND: Meaning(FatalTransferError, "internal error", _BUG),
    SSL_ENGINE_SETFAILED: Meaning(FatalTransferError, "internal error", _BUG),
    SSL_ENGINE_INITFAILED: Meaning(FatalTransferError, "internal error", _BUG),
    UNRECOVERABLE_POLL: Meaning(FatalTransferError, "internal error", _BUG),
}

PUSHBACK = {
    COULDNT_RESOLVE_PROXY,
    COULDNT_RESOLVE_HOST,
    COULDNT_CONNECT,
    SSL_CONNECT_ERROR,
    PROXY,
    PARTIAL_FILE,
    GOT_NOTHING,
    SEND_ERROR,
    RECV_ERROR,
}
"""Codes that may mean the server sheds connections: the governor backs off on them."""

KEPT_CONNECTION_FAULTS = {WEIRD_SERVER_REPLY, GOT_NOTHING, SEND_ERROR, RECV_ERROR}
"""Codes that, on a connection kept from an earlier request and before any answer, may
be the connection's fault (junk left after a body, closed while idle), not the request's."""

_REFUSED = {UNSUPPORTED_PROTOCOL, URL_MALFORMAT}
"""After a redirect: its target was refused; else the answer itself was (HTTP/0.9)."""


def translate(
    code: int,
    message: str,
    *,
    url: str,
    answered: bool,
    redirected: bool = False,
    connect_status: int = 0,
    proxy: str = "",
) -> TransferError:
    """The error for libcurl's ``code`` on a request to ``url`` (already redacted).

    ``answered`` tells whether a response head had arrived, ``redirected`` whether
    the last one was a redirect; ``proxy`` is the proxy the request went through,
    as shown to people ("" without one) and ``connect_status`` its answer to
    ``CONNECT`` (0 without a tunnel).
    """
    detail = clean(message) or f"libcurl error {code}"
    if connect_status == 407:
        return HTTPStatusError("the proxy wants credentials (407)", status=407, url=url)
    if code == OPERATION_TIMEDOUT:
        if answered:
            return StallError(f"timed out: {detail}", url=url)
        if not proxy:
            return ConnectError(f"timed out connecting: {detail}", url=url)
    if code in _REFUSED and redirected:
        return RedirectError(f"redirect not followed: {detail}", url=url)
    if proxy and not answered and (at_proxy := _at_proxy(code, detail, url, proxy, connect_status)):
        return at_proxy
    meaning = MEANINGS.get(code)
    if meaning is None:
        kind = TruncatedBodyError if answered else ConnectError
        return kind(f"libcurl error {code}: {detail}", url=url)
    return meaning.kind(f"{meaning.words}: {detail}", url=url, hint=meaning.hint)


def _at_proxy(
    code: int, detail: str, url: str, proxy: str, connect_status: int
) -> TransferError | None:
    """What went wrong at ``proxy`` before the server answered, or None when the code
    says nothing of the proxy (a TLS verification failure names the server)."""
    check = (
        f"check that the proxy {proxy} runs and can reach the server (it is set by "
        "HTTPS_PROXY, HTTP_PROXY or ALL_PROXY), or add the host to NO_PROXY to bypass it"
    )
    tunnel = url.startswith("https:") and proxy.startswith("http")
    if connect_status and not 200 <= connect_status < 300:
        text = f"the proxy {proxy} refused to open a tunnel to the server ({connect_status})"
        if connect_status >= 500:  # the proxy could not reach the server: may pass
            return ConnectError(text, url=url, hint=check)
        return HTTPStatusError(text, status=connect_status, url=url, hint=check)
    if code == OPERATION_TIMEDOUT:
        doing = "did not open a tunnel (no answer to CONNECT)" if tunnel else "did not answer"
        return ConnectError(f"the proxy {proxy} {doing} in time: {detail}", url=url, hint=check)
    if connect_status and code == SSL_CONNECT_ERROR:
        return ConnectError(
            f"the tunnel through the proxy {proxy} did not carry the server's TLS "
            f"(the proxy sent bytes of its own after its 200, or is no plain tunnel): {detail}",
            url=url,
            hint=check,
        )
    if code in (COULDNT_CONNECT, COULDNT_RESOLVE_PROXY, PROXY):
        return ConnectError(f"cannot connect to the proxy {proxy}: {detail}", url=url, hint=check)
    if not connect_status and tunnel and code in (GOT_NOTHING, RECV_ERROR, WEIRD_SERVER_REPLY):
        return ConnectError(
            f"the proxy {proxy} closed or garbled its answer to CONNECT: {detail}",
            url=url,
            hint=check,
        )
    return None
