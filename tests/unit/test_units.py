"""Sizes and durations as people write and read them."""

from __future__ import annotations

import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from sa1b.units import human_bytes, human_duration, parse_size, plural

KiB, MiB, GiB, TiB = 1024, 1024**2, 1024**3, 1024**4


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("0", 0),
        ("1", 1),
        ("512", 512),
        ("500K", 500 * KiB),
        ("500k", 500 * KiB),
        ("170M", 178_257_920),
        ("100M", 100 * MiB),
        ("2G", 2 * GiB),
        ("1T", TiB),
        ("1.5K", 1536),
        ("0.5M", MiB // 2),
        ("100MB", 100 * MiB),
        ("100MiB", 100 * MiB),
        ("100mib", 100 * MiB),
        ("100 MB", 100 * MiB),
        ("100M/s", 100 * MiB),
        ("100MB/s", 100 * MiB),
        ("100 MiB/s", 100 * MiB),
        ("  64K  ", 64 * KiB),
        ("10B", 10),
        ("10/s", 10),
    ],
)
def test_parse_size(text: str, value: int) -> None:
    assert parse_size(text) == value


@pytest.mark.parametrize(
    "text",
    ["", " ", "M", "abc", "-1", "-1M", "1.5.5", "10X", "10 M B", "1e3", "1,000", ".5M"],
)
def test_parse_size_rejects(text: str) -> None:
    with pytest.raises(ValueError, match="not a size") as info:
        parse_size(text)
    assert repr(text) in str(info.value)


@given(st.integers(0, 10**6), st.sampled_from(["", "K", "M", "G", "T"]))
def test_parse_size_integer_multiples(number: int, unit: str) -> None:
    factor = {"": 1, "K": KiB, "M": MiB, "G": GiB, "T": TiB}[unit]
    assert parse_size(f"{number}{unit}") == number * factor
    assert parse_size(f"{number}{unit.lower()}") == number * factor


@pytest.mark.parametrize(
    ("count", "text"),
    [
        (0, "0 B"),
        (1, "1 B"),
        (1023, "1023 B"),
        (1024, "1.0 KiB"),
        (1536, "1.5 KiB"),
        (10 * MiB, "10.0 MiB"),
        (178_257_920, "170.0 MiB"),
        (int(10.28 * TiB), "10.3 TiB"),
        (1024 * TiB, "1024.0 TiB"),
        (5.5, "6 B"),
        (-1536, "-1.5 KiB"),
    ],
)
def test_human_bytes(count: float, text: str) -> None:
    assert human_bytes(count) == text


@given(st.integers(0, 1000 * TiB))
def test_human_bytes_round_trips_roughly(count: int) -> None:
    text = human_bytes(count)
    match = re.fullmatch(r"(\d+(?:\.\d)?) (B|KiB|MiB|GiB|TiB)", text)
    assert match, text
    back = parse_size(match.group(1) + match.group(2)[0].replace("B", ""))
    assert abs(back - count) <= max(1, count * 0.05 + 1)


@pytest.mark.parametrize("count", [1023.7, MiB - 1, GiB - 1])
def test_human_bytes_never_shows_1024_of_a_smaller_unit(count: float) -> None:
    number = float(human_bytes(count).split()[0])
    assert number < 1024


@pytest.mark.parametrize(
    ("seconds", "text"),
    [
        (0, "0s"),
        (0.9, "0s"),
        (59, "59s"),
        (59.99, "59s"),
        (60, "1m00s"),
        (61, "1m01s"),
        (90, "1m30s"),  # the summary of a 90 s run (it once said 1m00s: the start went unmeasured)
        (90.9, "1m30s"),
        (3599, "59m59s"),
        (3600, "1h00m"),
        (3725, "1h02m"),
        (86399, "23h59m"),
        (86400, "1d00h"),
        (13 * 86400 + 5 * 3600 + 59, "13d05h"),
        (-5, "0s"),
    ],
)
def test_human_duration(seconds: float, text: str) -> None:
    assert human_duration(seconds) == text


@given(st.integers(0, 10**9))
def test_human_duration_shape(seconds: int) -> None:
    text = human_duration(seconds)
    assert re.fullmatch(r"\d+s|\d+m\d\ds|\d+h\d\dm|\d+d\d\dh", text), text
    if seconds < 60:
        assert text == f"{seconds}s"
    elif seconds < 3600:
        minutes, secs = divmod(seconds, 60)
        assert text == f"{minutes}m{secs:02d}s"
    elif seconds < 86400:
        assert text.startswith(f"{seconds // 3600}h")
    else:
        assert text.startswith(f"{seconds // 86400}d")


@pytest.mark.parametrize(
    ("count", "noun", "said"),
    [
        (0, "file", "0 files"),
        (1, "file", "1 file"),
        (2, "file", "2 files"),
        (1, "synthetic shard", "1 synthetic shard"),
        (1000, "shard", "1000 shards"),
    ],
)
def test_a_count_reads_as_english(count: int, noun: str, said: str) -> None:
    assert plural(count, noun) == said
