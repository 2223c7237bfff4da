"""The retry decision: capped exponential backoff, jitter, Retry-After, what is never retried."""

from __future__ import annotations

import dataclasses

import pytest
from hypothesis import given
from hypothesis import strategies as st

from sa1b import errors
from sa1b.errors import (
    ChecksumMismatchError,
    ConnectError,
    FatalTransferError,
    HTTPStatusError,
    LinkExpiredError,
    RangeMismatchError,
    RetryableError,
    ServerError,
    SizeMismatchError,
    StallError,
    TLSVerificationError,
    TransferError,
    TruncatedBodyError,
)
from sa1b.retry import RetryPolicy, waiting_reason

POLICY = RetryPolicy(attempts=8, backoff=0.5, backoff_max=30.0, retry_after_max=300.0)


def test_defaults_and_immutability() -> None:
    policy = RetryPolicy()
    assert (policy.attempts, policy.backoff, policy.backoff_max, policy.retry_after_max) == (
        8,
        0.5,
        30.0,
        300.0,
    )
    with pytest.raises(dataclasses.FrozenInstanceError):
        policy.attempts = 3  # type: ignore[misc]
    with pytest.raises(TypeError):
        RetryPolicy(3)  # type: ignore[misc]  # keyword-only


@pytest.mark.parametrize(
    ("failures", "ceiling"),
    [(1, 0.5), (2, 1.0), (3, 2.0), (4, 4.0), (5, 8.0), (6, 16.0), (7, 30.0)],
)
def test_capped_exponential_growth(failures: int, ceiling: float) -> None:
    error = ConnectError("refused")
    assert POLICY.delay(error, failures, jitter=0.0) == pytest.approx(ceiling / 2)
    assert POLICY.delay(error, failures, jitter=0.999999) == pytest.approx(ceiling, rel=1e-5)


def test_cap_applies_long_after() -> None:
    policy = RetryPolicy(attempts=100, backoff=1.0, backoff_max=10.0)
    assert policy.delay(StallError("x"), 60, jitter=0.5) == pytest.approx(7.5)


@given(
    failures=st.integers(1, 40),
    jitter=st.floats(0.0, 1.0, exclude_max=True),
    backoff=st.floats(0.001, 10.0),
    backoff_max=st.floats(0.001, 100.0),
)
def test_jitter_bounds(failures: int, jitter: float, backoff: float, backoff_max: float) -> None:
    policy = RetryPolicy(attempts=41, backoff=backoff, backoff_max=backoff_max)
    ceiling = min(backoff_max, backoff * 2.0 ** (failures - 1))
    delay = policy.delay(TruncatedBodyError("cut"), failures, jitter=jitter)
    assert delay is not None
    assert ceiling / 2 <= delay <= ceiling
    assert delay <= backoff_max


@given(failures=st.integers(1, 6), j1=st.floats(0, 0.99), j2=st.floats(0, 0.99))
def test_delay_never_shrinks_with_more_failures_at_same_jitter(
    failures: int, j1: float, j2: float
) -> None:
    jitter = min(j1, j2)
    first = POLICY.delay(ConnectError("x"), failures, jitter=jitter)
    second = POLICY.delay(ConnectError("x"), failures + 1, jitter=jitter)
    assert first is not None
    assert second is not None
    assert second >= first


@pytest.mark.parametrize(
    ("retry_after", "expected"), [(0.0, 0.0), (12.0, 12.0), (300.0, 300.0), (3600.0, 300.0)]
)
def test_retry_after_is_honoured_and_capped(retry_after: float, expected: float) -> None:
    error = ServerError("busy", status=503, retry_after=retry_after)
    for jitter in (0.0, 0.5, 0.99):
        assert POLICY.delay(error, 1, jitter=jitter) == expected
        assert POLICY.delay(error, 7, jitter=jitter) == expected


def test_server_error_without_retry_after_backs_off() -> None:
    error = ServerError("busy", status=500)
    assert POLICY.delay(error, 3, jitter=0.0) == pytest.approx(1.0)


def test_gives_up_after_attempts() -> None:
    policy = RetryPolicy(attempts=3)
    error = ConnectError("refused")
    assert policy.delay(error, 1, jitter=0.3) is not None
    assert policy.delay(error, 2, jitter=0.3) is not None
    assert policy.delay(error, 3, jitter=0.3) is None
    assert policy.delay(error, 4, jitter=0.3) is None
    patient = ServerError("busy", status=503, retry_after=1.0)
    assert policy.delay(patient, 3, jitter=0.3) is None  # Retry-After does not extend it


def test_one_attempt_never_retries() -> None:
    assert RetryPolicy(attempts=1).delay(ConnectError("x"), 1, jitter=0.0) is None


@pytest.mark.parametrize(
    "error",
    [
        LinkExpiredError("expired"),
        HTTPStatusError("gone", status=404),
        HTTPStatusError("forbidden", status=403),
        TLSVerificationError("bad cert"),
        SizeMismatchError("short"),
        ChecksumMismatchError("md5"),
        FatalTransferError("fatal"),
        TransferError("plain transfer error"),
    ],
)
def test_never_retries_fatal_errors(error: TransferError) -> None:
    for failures in (1, 2, 7):
        assert POLICY.delay(error, failures, jitter=0.5) is None


TRANSFER_CLASSES = [
    cls for cls in vars(errors).values() if isinstance(cls, type) and issubclass(cls, TransferError)
]


@pytest.mark.parametrize("cls", TRANSFER_CLASSES, ids=lambda cls: cls.__name__)
def test_every_transfer_error_class_is_classified(cls: type[TransferError]) -> None:
    kwargs = {"status": 503} if cls in (ServerError, HTTPStatusError) else {}
    error = cls("boom", name="sa_000001.tar", **kwargs)
    delay = POLICY.delay(error, 1, jitter=0.5)
    if issubclass(cls, RetryableError):
        assert delay is not None
        assert delay > 0
    else:
        assert delay is None


def test_fatal_error_with_retry_after_attribute_is_still_fatal() -> None:
    error = HTTPStatusError("too many", status=429)
    error.retry_after = 1.0  # type: ignore[attr-defined]
    assert POLICY.delay(error, 1, jitter=0.0) is None


@pytest.mark.parametrize(
    "error",
    [
        ConnectError("refused"),
        StallError("silent"),
        TruncatedBodyError("cut"),
        ServerError("busy", status=503),
        RangeMismatchError("wrong bytes"),
        RetryableError("generic"),
    ],
)
def test_retries_retryable_errors(error: RetryableError) -> None:
    delay = POLICY.delay(error, 1, jitter=0.5)
    assert delay is not None
    assert 0 < delay <= POLICY.backoff_max


def test_many_failures_stay_capped() -> None:
    policy = RetryPolicy(attempts=10_000, backoff=0.5, backoff_max=30.0)
    assert policy.delay(ConnectError("x"), 2000, jitter=0.0) == pytest.approx(15.0)


# name: (error, delay, what the file waits for)
REASONS = {
    "the server's Retry-After": (
        ServerError("server answered 429", status=429, retry_after=300.0),
        300.0,
        "the server asked to retry after 300 s",
    ),
    "a Retry-After over the cap": (
        ServerError("server answered 503", status=503, retry_after=3600.0),
        300.0,
        "the server asked to retry after 3600 s (waiting 300 s, the most sa1b waits)",
    ),
    "a failure without one": (StallError("no byte for 30 s"), 1.5, "no byte for 30 s"),
    "a failure quoting the server is cleaned": (
        ServerError("server answered 503: \x1b[31mred", status=503),
        1.0,
        "server answered 503: \\x1b[31mred",
    ),
}


@pytest.mark.parametrize(("error", "delay", "reason"), REASONS.values(), ids=REASONS.keys())
def test_waiting_reason(error: TransferError, delay: float, reason: str) -> None:
    assert waiting_reason(error, delay) == reason
