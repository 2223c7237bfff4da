"""When a shard's tar is freed behind its extractor, and how far: tables."""

from __future__ import annotations

import pytest

from sa1b.holes import BLOCK, CHECKPOINT_EVERY, checkpoint_due, hole_end, punches


@pytest.mark.parametrize(
    ("digest", "keep_tars", "layout", "freed"),
    [
        (False, False, "shard", True),
        (False, False, "split", True),
        (False, False, "flat", True),
        (True, False, "shard", False),  # the digest is over every byte of the tar
        (False, True, "shard", False),  # the tar is kept
        (False, False, "wds", False),  # its archive is written from the whole tar
    ],
)
def test_punches(digest: bool, keep_tars: bool, layout: str, freed: bool) -> None:
    assert punches(digest=digest, keep_tars=keep_tars, layout=layout) is freed


@pytest.mark.parametrize(
    ("boundary", "saved", "every", "due"),
    [
        (0, 0, 1, False),  # nothing new
        (CHECKPOINT_EVERY - 1, 0, CHECKPOINT_EVERY, False),
        (CHECKPOINT_EVERY, 0, CHECKPOINT_EVERY, True),
        (3 * CHECKPOINT_EVERY, 2 * CHECKPOINT_EVERY + 1, CHECKPOINT_EVERY, False),
        (512, 0, 1, True),  # every boundary
        (7 * BLOCK, 5 * BLOCK, 2 * BLOCK, True),  # a resumed walk counts from its start
    ],
)
def test_checkpoint_due(boundary: int, saved: int, every: int, due: bool) -> None:
    assert checkpoint_due(boundary, saved, every=every) is due


@pytest.mark.parametrize(
    ("saved", "end"),
    [
        (None, 0),  # the walk ended: nothing more to free (the tar goes once published)
        (0, 0),
        (512, 0),  # a partial block is never freed: the header there is still needed
        (BLOCK, BLOCK),
        (5 * BLOCK + 1536, 5 * BLOCK),
    ],
)
def test_hole_ends_at_or_below_the_checkpoint(saved: int | None, end: int) -> None:
    assert hole_end(saved) == end
