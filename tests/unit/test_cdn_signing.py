"""Signed URLs, Range/If-Range rules and the fault book: pure logic, as tables."""

from __future__ import annotations

import re

import pytest

from sa1b.cdn import signing
from sa1b.cdn.byteranges import ByteRange, if_range_matches, parse_range
from sa1b.cdn.faults import Fault, FaultBook

SECRET = b"k"
T0 = 1_700_000_000

URL_SHAPE = re.compile(
    r"^http://h:1/m1/v/t6/An[A-Za-z0-9_-]+\.tar\?_nc_gid&ccb=10-5&oh=00_[0-9a-f]{40}"
    r"&oe=[0-9A-F]{8}&_nc_sid=[0-9a-f]{6}$"
)


def _split(url: str) -> tuple[str, str]:
    path, _, query = url.removeprefix("http://h:1").partition("?")
    return path, query


def test_url_shape_and_stable_object_path() -> None:
    first = signing.sign_url("http://h:1/", "sa_000020.tar", secret=SECRET, expires_at=T0)
    later = signing.sign_url("http://h:1", "sa_000020.tar", secret=SECRET, expires_at=T0 + 99)
    assert URL_SHAPE.match(first), first
    assert f"oe={T0:08X}&" in first
    assert _split(first)[0] == _split(later)[0]  # same object path across links files
    assert _split(first)[1] != _split(later)[1]  # new signature and expiry
    other = signing.sign_url("http://h:1", "sa_000021.tar", secret=SECRET, expires_at=T0)
    assert _split(other)[0] != _split(first)[0]
    ids = signing.sign_url("http://h:1", "sa_images_ids.txt", secret=SECRET, expires_at=T0)
    assert _split(ids)[0].endswith(".txt")


def test_path_index_maps_back_to_names() -> None:
    names = ["sa_000000.tar", "sa_000001.tar", "sa_images_ids.txt"]
    index = signing.path_index(names)
    for name in names:
        path = _split(signing.sign_url("http://h:1", name, secret=SECRET, expires_at=T0))[0]
        assert index[path] == name


def test_query_with_bare_item() -> None:
    items = signing.parse_query("_nc_gid&ccb=10-5&oh=00_ab&oe=&x=a=b")
    assert items == {"_nc_gid": None, "ccb": "10-5", "oh": "00_ab", "oe": "", "x": "a=b"}


@pytest.mark.parametrize(
    ("now", "verdict"), [(T0 - 1, "ok"), (T0, "expired"), (T0 + 86400, "expired")]
)
def test_verify_expiry(now: int, verdict: str) -> None:
    path, query = _split(signing.sign_url("http://h:1", "a.tar", secret=SECRET, expires_at=T0))
    assert signing.verify(path, query, secret=SECRET, now=now) == verdict


def _tamper(query: str, old: str, new: str) -> str:
    assert old in query
    return query.replace(old, new)


def test_verify_rejects_tampering() -> None:
    path, query = _split(signing.sign_url("http://h:1", "a.tar", secret=SECRET, expires_at=T0))
    assert signing.verify(path, query, secret=SECRET, now=0) == "ok"
    later = f"{T0 + 3600:08X}"
    cases = [
        (path, _tamper(query, f"oe={T0:08X}", f"oe={later}")),  # extended expiry
        (path, _tamper(query, "oh=00_", "oh=00_0")),
        (path, _tamper(query, "oh=00_", "oh=01_")),
        (path, query.replace("&oe=", "&xe=")),
        (path, query.partition("&oh=")[0]),
        (path.replace("An", "Ao", 1), query),  # another object
        (path, _tamper(query, f"oe={T0:08X}", f"oe={T0:08x}0")),
    ]
    for p, q in cases:
        assert signing.verify(p, q, secret=SECRET, now=0) == "bad-signature", q
    assert signing.verify(path, query, secret=b"other", now=0) == "bad-signature"


@pytest.mark.parametrize(
    ("header", "size", "expected"),
    [
        ("bytes=0-99", 1000, ByteRange(0, 99)),
        ("bytes=100-", 1000, ByteRange(100, 999)),
        ("bytes=990-2000", 1000, ByteRange(990, 999)),
        ("bytes=-10", 1000, ByteRange(990, 999)),
        ("bytes=-5000", 1000, ByteRange(0, 999)),
        ("BYTES = 5-5", 1000, ByteRange(5, 5)),
        ("bytes=1000-", 1000, "unsatisfiable"),
        ("bytes=1000-1001", 1000, "unsatisfiable"),
        ("bytes=-0", 1000, "unsatisfiable"),
        ("bytes=0-", 0, "unsatisfiable"),
        ("bytes=5-4", 1000, None),
        ("bytes=0-1,5-6", 1000, None),
        ("items=0-1", 1000, None),
        ("bytes=a-", 1000, None),
        ("bytes", 1000, None),
        ("bytes=٣-", 1000, None),  # non-ASCII digit
    ],
)
def test_parse_range(header: str, size: int, expected: object) -> None:
    assert parse_range(header, size) == expected


LM = "Tue, 04 Apr 2023 00:00:00 GMT"


@pytest.mark.parametrize(
    ("value", "matches"),
    [
        ('"abc"', True),
        ('"abd"', False),
        ('W/"abc"', False),
        (LM, True),
        ("Tue, 04 Apr 2023 00:00:01 GMT", False),
        ("yesterday", False),
    ],
)
def test_if_range(value: str, matches: bool) -> None:
    assert if_range_matches(value, etag='"abc"', last_modified=LM) is matches


def test_fault_book_order_times_and_methods() -> None:
    book = FaultBook()
    book.add("*", Fault("status", status=500))
    book.add("a.tar", Fault("cut", after=1, times=2))
    book.add("a.tar", Fault("throttle", retry_after=1))
    assert book.pending() == 4
    # A HEAD neither takes the pending cut nor jumps to the throttle queued behind it.
    taken = book.take("a.tar", method="HEAD")
    assert taken is not None and taken.kind == "status"
    assert book.take("a.tar", method="HEAD") is None
    kinds = [getattr(book.take("a.tar", method="GET"), "kind", None) for _ in range(4)]
    assert kinds == ["cut", "cut", "throttle", None]
    assert book.pending() == 0
    book.add("b.tar", Fault("not_found"))
    book.clear()
    assert book.take("b.tar", method="GET") is None


def test_fault_validation() -> None:
    with pytest.raises(ValueError, match="kind"):
        Fault("explode")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="times"):
        Fault("cut", times=0)
    with pytest.raises(TypeError):
        Fault("cut", 5)  # type: ignore[misc]
