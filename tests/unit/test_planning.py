"""What a download adds to the disk at its peak, as a table; and a plan's verdict."""

from __future__ import annotations

import pytest

from sa1b.planning import FileFacts, Plan, disk_needed

G = 1000
SHARD, BIG, EXTRA = (
    FileFacts("a", 10 * G, True),
    FileFacts("b", 12 * G, True),
    FileFacts("x", G, False),
)
DONE = FileFacts("d", 10 * G, True, done=True, kept=10 * G)
HALF = FileFacts("h", 10 * G, True, kept=5 * G, allocated=10 * G)  # preallocated
SILENT = FileFacts("s", None, True, error="the signed link has expired")

W = 2 * G  # --tar-window
# name: (files, extract, keep_tars, files at once, window, bytes needed)
CASES = {
    "tars only": ([SHARD, BIG, EXTRA], False, False, 8, None, 23 * G),
    "extracting, all in flight at once": ([SHARD, BIG, EXTRA], True, False, 8, None, 45 * G),
    "extracting, one at a time: the largest tar": (
        [SHARD, BIG, EXTRA],
        True,
        False,
        1,
        None,
        35 * G,
    ),
    "extracting, keeping tars": ([SHARD, BIG, EXTRA], True, True, 1, None, 45 * G),
    "an extra is never extracted": ([EXTRA], True, True, 8, None, G),
    "a finished file adds nothing": ([DONE, SHARD], False, False, 8, None, 10 * G),
    "a partial file is allocated already": ([HALF], False, False, 8, None, 0),
    "extracting a partial file: its files": ([HALF], True, False, 8, None, 10 * G),
    "a file without a size is not counted": ([SILENT, SHARD], False, False, 8, None, 10 * G),
    "nothing": ([], True, False, 8, None, 0),
    "freed behind extraction: a window per shard in flight": (
        [SHARD, BIG, EXTRA],
        True,
        False,
        8,
        W,
        27 * G,
    ),
    "freed: one at a time": ([SHARD, BIG, EXTRA], True, False, 1, W, 25 * G),
    "freed: a window larger than the tar is the tar": ([SHARD], True, False, 8, 20 * G, 20 * G),
    "freed: a partial file": ([HALF], True, False, 8, W, 2 * G),
    "extracted as it streams: no tar": ([SHARD, BIG, EXTRA], True, False, 8, 0, 23 * G),
}


@pytest.mark.parametrize("case", list(CASES))
def test_disk_needed(case: str) -> None:
    files, extract, keep_tars, at_once, window, needed = CASES[case]
    assert (
        disk_needed(files, extract=extract, keep_tars=keep_tars, at_once=at_once, window=window)
        == needed
    )


def _plan(files: tuple[FileFacts, ...], *, free: int, speed: float, expires: int) -> Plan:
    needed = disk_needed(files, extract=False, keep_tars=False, at_once=8)
    return Plan(files, free, needed, needed, needed, speed, (expires,), now=0.0)


@pytest.mark.parametrize(
    ("files", "free", "expires", "ok"),
    [
        ((SHARD,), 10 * G, 10_000, True),
        ((SHARD,), 10 * G - 1, 10_000, False),  # does not fit
        ((SHARD, SILENT), 10 * G, 10_000, False),  # a file did not answer
        ((SHARD,), 10 * G, 11, False),  # 10 s needed, x1.2 margin, links last 11 s
        ((SHARD,), 10 * G, 13, True),
        ((SHARD,), 10 * G, -1, False),  # expired already
    ],
)
def test_a_plan_is_ok_when_it_fits_every_file_answers_and_the_links_outlive_it(
    files: tuple[FileFacts, ...], free: int, expires: int, ok: bool
) -> None:
    assert _plan(files, free=free, speed=G, expires=expires).ok is ok


@pytest.mark.parametrize(
    ("probe", "cap", "expected", "ok"),
    [
        (G, None, G, True),  # 10 s needed, links last 13 s
        (G, G / 2, G / 2, False),  # the cap makes it 20 s
        (G / 2, G, G / 2, False),  # a cap above the probe's speed changes nothing
        (None, G, 0.0, True),  # not measured: no forecast
    ],
)
def test_the_plan_forecasts_at_the_slower_of_the_probe_and_max_rate(
    probe: float | None, cap: float | None, expected: float, ok: bool
) -> None:
    needed = disk_needed((SHARD,), extract=False, keep_tars=False, at_once=8)
    plan = Plan((SHARD,), 10 * G, needed, needed, needed, probe, (13,), now=0.0, max_rate=cap)
    assert plan.expected_speed == expected
    assert plan.ok is ok
    if probe is not None:
        assert plan.outlook is not None and plan.outlook.capped is (expected < probe)
