"""Judging HTTP answers: the range-answer table, validators, and errors for statuses."""

from __future__ import annotations

import pickle
from datetime import UTC, datetime
from email.utils import format_datetime
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from sa1b.errors import (
    FatalTransferError,
    HTTPStatusError,
    ImplausibleSizeError,
    LinkExpiredError,
    RangeMismatchError,
    RedirectError,
    RetryableError,
    ServerError,
    TransferError,
)
from sa1b.links import Link, redact
from sa1b.net.answers import (
    ERROR_BODY,
    BodyPlan,
    ErrorPage,
    Validator,
    error_for_status,
    judge_range_answer,
    parse_retry_after,
)
from sa1b.net.heads import Head
from sa1b.sizes import MAX_FILE_SIZE

SIZE = 1000
ETAG = '"abc123"'
LM = "Wed, 21 Oct 2015 07:28:00 GMT"
V = Validator(ETAG, LM)
NOW = 1_700_000_000.0
SIG = "00_AYBcDeFgHiJkLmNoPqRsTuVw"
FUTURE_OE = f"{int(NOW) + 86400:X}"
PAST_OE = f"{int(NOW) - 1:X}"


def signed(oe: str) -> str:
    return f"https://scontent.xx.fbcdn.net/m1/v/t6/obj.tar?_nc_gid&ccb=10-5&oh={SIG}&oe={oe}"


def cr(first: int, last: int, total: int | str = SIZE) -> dict[str, str]:
    return {
        "content-range": f"bytes {first}-{last}/{total}",
        "content-length": str(last + 1 - first),
        "etag": ETAG,
    }


# -- judge_range_answer as a table ---------------------------------------------------------

# (status, headers, start, end, size, validator) -> expected BodyPlan fields
OK_CASES: list[tuple[str, int, dict[str, str], int, int, int | None, Validator | None, Any]] = [
    ("206 right", 206, cr(100, 199), 100, 200, SIZE, V, ("range", 100, 100, SIZE)),
    ("206 first answer", 206, cr(0, 99), 0, 100, None, None, ("range", 0, 100, SIZE)),
    ("206 shorter than asked", 206, cr(100, 149), 100, 200, SIZE, V, ("range", 100, 50, SIZE)),
    ("206 last byte", 206, cr(999, 999), 999, 1000, SIZE, V, ("range", 999, 1, SIZE)),
    (
        "206 no content-length",
        206,
        {"content-range": "bytes 0-9/1000"},
        0,
        10,
        SIZE,
        None,
        ("range", 0, 10, SIZE),
    ),
    (
        "206 content-range spacing and case",
        206,
        {"content-range": "  Bytes  5-9/1000 ", "content-length": " 5 "},
        5,
        10,
        SIZE,
        None,
        ("range", 5, 5, SIZE),
    ),
    (
        "206 different total than known size",
        206,
        cr(100, 199, 2000),
        100,
        200,
        SIZE,
        V,
        ("changed", 0, 0, 2000),
    ),
    (
        "206 changed etag",
        206,
        {**cr(100, 199), "etag": '"other"'},
        100,
        200,
        SIZE,
        V,
        ("changed", 0, 0, SIZE),
    ),
    (
        "206 changed last-modified, no etags",
        206,
        {**cr(0, 9), "etag": "", "last-modified": "Thu, 22 Oct 2015 07:28:00 GMT"},
        0,
        10,
        SIZE,
        Validator(None, LM),
        ("changed", 0, 0, SIZE),
    ),
    (
        "206 same etag, other last-modified",
        206,
        {**cr(0, 9), "last-modified": "Thu, 22 Oct 2015 07:28:00 GMT"},
        0,
        10,
        SIZE,
        V,
        ("range", 0, 10, SIZE),
    ),
    (
        "206 answer without validator",
        206,
        {"content-range": "bytes 0-9/1000"},
        0,
        10,
        SIZE,
        V,
        ("range", 0, 10, SIZE),
    ),
    (
        "200 to a ranged request",
        200,
        {"content-length": "1000", "etag": ETAG},
        100,
        200,
        SIZE,
        V,
        ("whole", 0, SIZE, SIZE),
    ),
    (
        "200 first answer",
        200,
        {"content-length": "1000"},
        0,
        100,
        None,
        None,
        ("whole", 0, SIZE, SIZE),
    ),
    (
        "200 changed etag",
        200,
        {"content-length": "1000", "etag": '"other"'},
        100,
        200,
        SIZE,
        V,
        ("changed", 0, SIZE, SIZE),
    ),
    (
        "200 other size",
        200,
        {"content-length": "1234", "etag": ETAG},
        100,
        200,
        SIZE,
        V,
        ("changed", 0, 1234, 1234),
    ),
]


@pytest.mark.parametrize("case", OK_CASES, ids=[case[0] for case in OK_CASES])
def test_judge_range_answer_plans(case: tuple[Any, ...]) -> None:
    _, status, headers, start, end, size, validator, expected = case
    plan = judge_range_answer(status, headers, start=start, end=end, size=size, validator=validator)
    assert isinstance(plan, BodyPlan)
    assert (plan.kind, plan.start, plan.length, plan.total) == expected
    assert plan.validator == Validator.from_headers(headers)


ERROR_CASES: list[tuple[str, int, dict[str, str], int, int, type[Exception]]] = [
    ("206 wrong start", 206, cr(0, 99), 100, 200, RangeMismatchError),
    ("206 start after asked", 206, cr(150, 199), 100, 200, RangeMismatchError),
    ("206 past the end asked", 206, cr(100, 200), 100, 200, RangeMismatchError),
    ("206 last before first", 206, cr(100, 99), 100, 200, RangeMismatchError),
    ("206 last beyond total", 206, cr(100, 1000), 100, 2000, RangeMismatchError),
    ("206 missing content-range", 206, {"content-length": "100"}, 100, 200, RangeMismatchError),
    ("206 empty content-range", 206, {"content-range": ""}, 0, 10, RangeMismatchError),
    ("206 unknown total", 206, {"content-range": "bytes 0-9/*"}, 0, 10, RangeMismatchError),
    ("206 garbled", 206, {"content-range": "bytes=0-9/1000"}, 0, 10, RangeMismatchError),
    ("206 unsatisfied form", 206, {"content-range": "bytes */1000"}, 0, 10, RangeMismatchError),
    ("206 other unit", 206, {"content-range": "items 0-9/1000"}, 0, 10, RangeMismatchError),
    ("206 negative", 206, {"content-range": "bytes -1-9/1000"}, 0, 10, RangeMismatchError),
    (
        "206 content-length mismatch",
        206,
        {**cr(0, 9), "content-length": "11"},
        0,
        10,
        RangeMismatchError,
    ),
    (
        "206 content-length garbled",
        206,
        {**cr(0, 9), "content-length": "ten"},
        0,
        10,
        RangeMismatchError,
    ),
    ("200 without content-length", 200, {"etag": ETAG}, 0, 10, HTTPStatusError),
    ("200 garbled content-length", 200, {"content-length": "12x"}, 0, 10, HTTPStatusError),
    ("200 negative content-length", 200, {"content-length": "-1"}, 0, 10, HTTPStatusError),
]


@pytest.mark.parametrize(
    ("status", "headers", "start", "end", "error"),
    [case[1:] for case in ERROR_CASES],
    ids=[case[0] for case in ERROR_CASES],
)
def test_judge_range_answer_errors(
    status: int, headers: dict[str, str], start: int, end: int, error: type[Exception]
) -> None:
    url = redact(signed(FUTURE_OE))
    with pytest.raises(error) as info:
        judge_range_answer(
            status,
            headers,
            start=start,
            end=end,
            size=None,
            validator=None,
            name="sa_000001.tar",
            url=url,
        )
    assert isinstance(info.value, TransferError)
    assert info.value.name == "sa_000001.tar"
    assert info.value.url == url
    if isinstance(info.value, HTTPStatusError):
        assert info.value.status == status


@pytest.mark.parametrize("content_range", ["bytes 0-0/0", "bytes 5-2/10", "bytes 0-10/10"])
def test_an_impossible_content_range_is_refused_not_taken_for_a_change(content_range: str) -> None:
    # Found by the fuzzer: a new total used to win over the range's own nonsense, and a
    # total of 0 restarted the file as an empty one.
    with pytest.raises(RangeMismatchError, match="impossible"):
        judge_range_answer(
            206, {"content-range": content_range}, start=0, end=10, size=1000, validator=None
        )


def test_judge_range_answer_rejects_other_statuses() -> None:
    with pytest.raises(ValueError, match="304"):
        judge_range_answer(304, {}, start=0, end=1, size=None, validator=None)


def test_unicode_digit_content_length_is_an_http_status_error() -> None:
    with pytest.raises(HTTPStatusError):
        judge_range_answer(
            200, {"content-length": "\xb2"}, start=0, end=10, size=None, validator=None
        )


@given(
    size=st.integers(1, MAX_FILE_SIZE),
    data=st.data(),
)
def test_any_exact_206_is_accepted(size: int, data: st.DataObject) -> None:
    start = data.draw(st.integers(0, size - 1))
    end = data.draw(st.integers(start + 1, size))
    last = data.draw(st.integers(start, end - 1))
    plan = judge_range_answer(
        206, cr(start, last, size), start=start, end=end, size=size, validator=V
    )
    assert (plan.kind, plan.start, plan.length, plan.total) == (
        "range",
        start,
        last + 1 - start,
        size,
    )
    assert plan.start + plan.length <= end


@given(
    size=st.integers(2, 10**9),
    data=st.data(),
)
def test_any_206_for_other_bytes_is_rejected(size: int, data: st.DataObject) -> None:
    start = data.draw(st.integers(0, size - 1))
    end = data.draw(st.integers(start + 1, size))
    first = data.draw(st.integers(0, size - 1).filter(lambda f: f != start))
    last = data.draw(st.integers(first, size - 1))
    with pytest.raises(RangeMismatchError):
        judge_range_answer(206, cr(first, last, size), start=start, end=end, size=size, validator=V)


# -- Validator ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("validator", "expected"),
    [
        (Validator('"strong"', LM), '"strong"'),
        (Validator('"strong"', None), '"strong"'),
        (Validator('W/"weak"', LM), LM),
        (Validator('W/"weak"', None), None),
        (Validator(None, LM), LM),
        (Validator("", LM), LM),
        (Validator(None, None), None),
    ],
)
def test_if_range_prefers_a_strong_etag(validator: Validator, expected: str | None) -> None:
    assert validator.if_range() == expected


def test_validator_from_lowercase_headers() -> None:
    assert Validator.from_headers({"etag": ETAG, "last-modified": LM}) == V
    assert Validator.from_headers({}) == Validator(None, None)


@pytest.mark.parametrize(
    ("a", "b", "contradicts"),
    [
        (V, V, False),
        (V, Validator('"x"', LM), True),
        (V, Validator(ETAG, "other"), False),  # ETags decide when both have one
        (Validator(None, LM), Validator(None, "other"), True),
        (Validator(None, LM), Validator('"x"', LM), False),
        (Validator(ETAG, None), Validator(None, LM), False),
        (Validator(), V, False),
        (V, Validator(), False),
    ],
)
def test_contradicts(a: Validator, b: Validator, contradicts: bool) -> None:
    assert a.contradicts(b) is contradicts
    assert b.contradicts(a) is contradicts


# -- error_for_status -----------------------------------------------------------------------


def status_error(
    status: int,
    body: bytes = b"",
    headers: dict[str, str] | None = None,
    *,
    oe: str = FUTURE_OE,
) -> TransferError:
    url = signed(oe)
    return error_for_status(
        status,
        headers or {},
        body,
        now=NOW,
        name="sa_000042.tar",
        url=url,
        redacted=redact(url),
    )


def assert_no_signature(error: TransferError) -> None:
    for text in (str(error), error.url, error.message, repr(error.__reduce__())):
        assert SIG not in text
        assert "oh=" not in text
    assert error.url == redact(signed(FUTURE_OE))


# -- ErrorPage: a refusal's page, collected the same way by every receiver ------------------


@pytest.mark.parametrize(
    ("chunks", "kept", "wants_more"),
    [
        ([b"x" * 100], 100, True),
        ([b"x" * 100, b"y" * 100], 200, True),
        ([b"x" * (ERROR_BODY - 1), b"yz"], ERROR_BODY, False),
        ([b"x" * ERROR_BODY], ERROR_BODY, False),
        ([b"x" * 65536], ERROR_BODY, False),  # one large read (plain HTTP) is clipped too
    ],
)
def test_an_error_page_keeps_at_most_error_body_bytes(
    chunks: list[bytes], kept: int, wants_more: bool
) -> None:
    page = ErrorPage.of(Head(503))
    assert page is not None
    answers = [page.add(chunk) for chunk in chunks]
    assert len(page.page) == kept
    assert answers == [True] * (len(chunks) - 1) + [wants_more]


@pytest.mark.parametrize("status", [200, 206])
def test_a_200_or_206_has_no_error_page(status: int) -> None:
    assert ErrorPage.of(Head(status)) is None


def test_an_error_page_tells_expiry_from_a_transient_refusal() -> None:
    link = Link(name="sa_000042.tar", url=signed(FUTURE_OE))
    expired = ErrorPage.of(Head(403))
    assert expired is not None
    expired.add(b"<html>URL signature")
    expired.add(b" expired</html>")
    error = expired.error(link, now=NOW)
    assert type(error) is LinkExpiredError and error.name == "sa_000042.tar"
    assert_no_signature(error)
    busy = ErrorPage.of(Head(429, headers={"retry-after": "7"}))
    assert busy is not None
    error = busy.error(link, now=NOW)
    assert isinstance(error, ServerError) and error.retry_after == 7.0


@pytest.mark.parametrize(
    "body",
    [b"URL signature expired", b"url signature expired\n", b"<html>URL Signature Expired</html>"],
)
def test_403_signature_expired_body(body: bytes) -> None:
    error = status_error(403, body)
    assert type(error) is LinkExpiredError
    assert isinstance(error, FatalTransferError)
    assert error.name == "sa_000042.tar"
    assert "links file" in error.hint
    assert_no_signature(error)


def test_403_other_body_but_oe_past_is_expiry() -> None:
    error = status_error(403, b"Forbidden", oe=PAST_OE)
    assert type(error) is LinkExpiredError


def test_403_oe_exactly_now_is_expiry() -> None:
    assert type(status_error(403, b"Forbidden", oe=f"{int(NOW):X}")) is LinkExpiredError


def test_403_otherwise_is_http_status_error() -> None:
    error = status_error(403, b"Bad signature")
    assert type(error) is HTTPStatusError
    assert isinstance(error, HTTPStatusError)
    assert error.status == 403
    assert "Bad signature" in str(error)
    assert_no_signature(error)


def test_a_407_is_the_proxy_asking_for_credentials_and_says_how_to_give_them() -> None:
    error = status_error(407, b"Proxy Authentication Required")
    assert type(error) is HTTPStatusError and error.status == 407
    assert "the proxy wants credentials" in error.message
    assert "http://USER:PASSWORD@HOST:PORT" in error.hint


def test_403_with_undecodable_body() -> None:
    error = status_error(403, b"\xff\xfe bad \x80")
    assert type(error) is HTTPStatusError


@pytest.mark.parametrize("status", [400, 401, 404, 410, 416, 451, 302])
def test_final_statuses(status: int) -> None:
    error = status_error(status, b"Not Found")
    assert type(error) is HTTPStatusError
    assert isinstance(error, HTTPStatusError)
    assert error.status == status
    assert str(status) in str(error)
    assert not isinstance(error, RetryableError)
    assert_no_signature(error)


@pytest.mark.parametrize("status", [408, 429, 500, 502, 503, 504, 599])
def test_transient_statuses(status: int) -> None:
    error = status_error(status, b"busy")
    assert type(error) is ServerError
    assert isinstance(error, ServerError)
    assert error.status == status
    assert error.retry_after is None
    assert isinstance(error, RetryableError)
    assert_no_signature(error)


def test_5xx_with_expired_oe_is_still_transient() -> None:
    error = status_error(503, b"", oe=PAST_OE)
    assert type(error) is ServerError


@pytest.mark.parametrize(
    ("value", "seconds"),
    [
        ("120", 120.0),
        (" 7 ", 7.0),
        ("0", 0.0),
        (format_datetime(datetime.fromtimestamp(NOW + 90, UTC), usegmt=True), 90.0),
        (format_datetime(datetime.fromtimestamp(NOW - 90, UTC), usegmt=True), 0.0),
        ("Sun, 06 Nov 1994 08:49:37 GMT", 0.0),
        ("soon", None),
        ("-5", None),
        ("1.5", None),
        ("", None),
    ],
)
def test_retry_after_on_server_errors(value: str, seconds: float | None) -> None:
    error = status_error(503, b"", {"retry-after": value})
    assert isinstance(error, ServerError)
    assert error.retry_after == seconds
    assert parse_retry_after(value, now=NOW) == seconds
    error429 = status_error(429, b"", {"retry-after": value})
    assert isinstance(error429, ServerError)
    assert error429.retry_after == seconds


def test_retry_after_absent() -> None:
    assert parse_retry_after(None, now=NOW) is None


def test_unicode_digit_retry_after_is_ignored() -> None:
    error = status_error(503, b"", {"retry-after": "\xb2"})
    assert isinstance(error, ServerError)
    assert error.retry_after is None


@given(body=st.binary(max_size=300), status=st.integers(400, 599))
def test_any_status_error_is_classified_and_redacted(body: bytes, status: int) -> None:
    error = status_error(status, body + SIG.encode())
    assert isinstance(error, TransferError)
    assert isinstance(error, RetryableError) != isinstance(error, FatalTransferError)
    assert error.url == redact(signed(FUTURE_OE))
    assert "oh=" not in error.url
    restored = pickle.loads(pickle.dumps(error))
    assert type(restored) is type(error)
    assert restored.url == error.url


@pytest.mark.parametrize("status", [301, 302, 303, 307, 308])
def test_a_redirect_left_as_the_answer_is_a_redirect_error(status: int) -> None:
    error = error_for_status(status, {"location": "http://evil.example/x?oh=sig\x1b"}, b"", now=0.0)
    assert isinstance(error, RedirectError)
    assert "http://evil.example" in error.message
    assert "sig" not in error.message and "\x1b" not in error.message


def test_a_3xx_without_location_is_a_plain_status_error() -> None:
    error = error_for_status(304, {}, b"", now=0.0)
    assert isinstance(error, HTTPStatusError) and error.status == 304


@pytest.mark.parametrize(
    ("status", "headers"),
    [
        (206, {"content-range": f"bytes 0-9/{64 * 1024**4}"}),
        (206, {"content-range": f"bytes 0-9/{10**20}"}),
        (206, {"content-range": "bytes 0-9/" + "9" * 5000}),
        (200, {"content-length": str(MAX_FILE_SIZE + 1)}),
        (200, {"content-length": "7" * 5000}),
        (200, {"content-length": "0"}),
    ],
    ids=["64TiB", "1e20", "5000-digits", "just-over", "5000-digit-length", "empty"],
)
def test_implausible_sizes_are_refused_before_anything_is_allocated(
    status: int, headers: dict[str, str]
) -> None:
    with pytest.raises(ImplausibleSizeError) as caught:
        judge_range_answer(status, headers, start=0, end=10, size=None, validator=None)
    assert len(caught.value.message) < 200
