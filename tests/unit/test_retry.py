"""The retry decision: capped exponential backoff, jitter, Retry-After, what is never retried."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from sa1b import errors
from sa1b.config import DownloadConfig
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
    UnstableSourceError,
)
from sa1b.retry import MAX_CHANGES, FailureAccount, RetryPolicy, waiting_reason

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


# -- one item's account of failures ----------------------------------------------------------

CUT = TruncatedBodyError("cut")
Event = tuple[float, int, TransferError]  # when, progress (bytes) at the failure, the error

# With attempts=3, backoff 0.5 and jitter 0, the n-th failure in a row waits 0.25 * 2**(n-1) s;
# a floor of 100 B/s asks 100 bytes for each second since the item could try again.
ACCOUNTS: dict[str, tuple[float, list[Event], list[str]]] = {
    "a dead link is given up after the attempts": (
        100,
        [(0, 0, CUT), (1, 0, CUT), (2, 0, CUT)],
        ["retry", "retry", "give up"],
    ),
    "a failure while backing off is the same outage": (
        100,
        [(0, 0, CUT), (0.2, 0, CUT), (1, 0, CUT), (1.4, 0, CUT), (2, 0, CUT)],
        ["retry", "same outage", "retry", "same outage", "give up"],
    ),
    "the floor's worth of bytes since the backoff resets the count": (
        100,
        [(0, 0, CUT), (10, 975, CUT), (20, 1950, CUT), (30, 2925, CUT)],
        ["retry", "retry", "retry", "retry"],
    ),
    "a trickle (a few bytes per failure) is no progress": (
        100,
        [(0, 0, CUT), (10, 5, CUT), (20, 10, CUT)],
        ["retry", "retry", "give up"],
    ),
    "a byte short of the floor is no progress": (
        100,
        [(0, 0, CUT), (10, 974, CUT), (20, 1923, CUT)],  # 975, then 950 after 0.5 s
        ["retry", "retry", "give up"],
    ),
    "bytes written again (a restart to byte 0) are no progress": (
        100,
        [(0, 5000, CUT), (10, 0, CUT), (20, 5000, CUT)],
        ["retry", "retry", "give up"],
    ),
    "past the best after a fall back is progress": (
        100,
        [(0, 5000, CUT), (10, 0, CUT), (20, 7000, CUT), (30, 7001, CUT)],
        ["retry", "retry", "retry", "retry"],
    ),
    "without a floor, any new byte is progress": (
        0,
        [(0, 0, CUT), (10, 1, CUT), (20, 2, CUT), (30, 2, CUT), (40, 2, CUT)],
        ["retry", "retry", "retry", "retry", "give up"],
    ),
    "what cannot be retried is given up at once, even while backing off": (
        100,
        [(0, 0, CUT), (0.1, 0, LinkExpiredError("expired"))],
        ["retry", "give up"],
    ),
}


@pytest.mark.parametrize(("error", "delay", "reason"), REASONS.values(), ids=REASONS.keys())
def test_waiting_reason(error: TransferError, delay: float, reason: str) -> None:
    assert waiting_reason(error, delay) == reason


@pytest.mark.parametrize(("floor", "events", "actions"), ACCOUNTS.values(), ids=ACCOUNTS.keys())
def test_an_account_of_failures(floor: float, events: list[Event], actions: list[str]) -> None:
    account = FailureAccount(RetryPolicy(attempts=3), floor=floor)
    verdicts = [account.failed(e, progress=p, now=t, jitter=0.0) for t, p, e in events]
    assert [v.action for v in verdicts] == actions


def test_a_retry_waits_its_backoff_and_a_give_up_says_why() -> None:
    account = FailureAccount(RetryPolicy(attempts=2), floor=100)
    first = account.failed(CUT, progress=0, now=10.0, jitter=0.0)
    assert (first.action, first.delay, first.note) == ("retry", 0.25, "")
    assert account.not_before == 10.25
    busy = ServerError("busy", status=503, retry_after=7.0)
    same = account.failed(busy, progress=0, now=10.1, jitter=0.0)
    assert same.action == "same outage" and account.not_before == 10.25
    last = account.failed(busy, progress=0, now=11.0, jitter=0.0)
    assert (last.action, last.note) == ("give up", " (gave up after 2 attempts in a row)")
    fatal = FailureAccount(POLICY, floor=100).failed(
        HTTPStatusError("gone", status=404), progress=0, now=0.0, jitter=0.0
    )
    assert (fatal.action, fatal.note) == ("give up", "")


def test_retry_after_sets_the_backoff() -> None:
    account = FailureAccount(POLICY, floor=100)
    busy = ServerError("busy", status=429, retry_after=5.0)
    assert account.failed(busy, progress=0, now=1.0, jitter=0.9).delay == 5.0
    assert account.not_before == 6.0


def test_new_versions_are_counted_against_one_limit() -> None:
    account = FailureAccount(POLICY, floor=100)
    assert [account.changed("sa_000000.tar") for _ in range(MAX_CHANGES)] == [None] * MAX_CHANGES
    error = account.changed("sa_000000.tar")
    assert isinstance(error, UnstableSourceError) and error.name == "sa_000000.tar"
    assert f"changed on the server {MAX_CHANGES + 1} times" in error.message


@pytest.mark.parametrize(
    ("max_rate", "floor"), [(None, 4096.0), (80_000.0, 4096.0), (8000.0, 1000.0)]
)
def test_a_files_account_asks_the_speed_floor_or_its_share_of_max_rate(
    max_rate: float | None, floor: float, tmp_path: Path
) -> None:
    config = DownloadConfig(out=tmp_path, max_rate=max_rate, max_files=8)
    account = config.failure_account()
    assert account.floor == floor and account.policy is config.retry
