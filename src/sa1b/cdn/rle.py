"""COCO compressed RLE, as written in SA-1B annotation files.

Synthetic shards must carry masks that real tools (``pycocotools.mask.decode``) accept, so this
module reproduces the ``counts`` string format of pycocotools (``maskApi.c``: ``rleToString`` and
``rleFrString``) without depending on it:

* the mask is flattened column-major (Fortran order: down each column, then the next column);
* ``counts`` alternates run lengths of 0s and 1s, always starting with 0s (possibly a 0-length
  run when the first pixel is set), and sums to ``height * width``;
* from the fourth count on, each count is stored as the difference to the count two places
  earlier (runs of the same value tend to be similar);
* each (possibly negative) number is written in 5-bit groups, low group first; bit 0x20 marks
  "more groups follow", bit 0x10 of the last group is the sign; each group is offset by 48, so
  the alphabet is the ASCII characters ``0`` to ``o``.

Masks here are built from per-column spans of set rows, which is how rectangles and ellipses
are drawn cheaply without materialising a pixel array.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from typing import TypedDict

__all__ = [
    "CompressedRLE",
    "area",
    "bbox",
    "decode_counts",
    "ellipse_runs",
    "encode_counts",
    "from_rle",
    "mask_to_runs",
    "rectangle_runs",
    "runs_from_column_spans",
    "runs_to_mask",
    "to_rle",
]

_OFFSET = 48


class CompressedRLE(TypedDict):
    """The ``segmentation`` object of an SA-1B annotation."""

    size: list[int]
    counts: str


def encode_counts(runs: Sequence[int]) -> str:
    """Encode run lengths into the pycocotools ``counts`` string (``rleToString``)."""
    out: list[str] = []
    for i, run in enumerate(runs):
        if run < 0:
            raise ValueError(f"run lengths must be non-negative, got {run} at {i}")
        x = run - runs[i - 2] if i > 2 else run
        more = True
        while more:
            c = x & 0x1F
            x >>= 5
            # Python's >> is arithmetic, like the C code's on a signed long.
            more = x != -1 if c & 0x10 else x != 0
            if more:
                c |= 0x20
            out.append(chr(c + _OFFSET))
    return "".join(out)


def decode_counts(counts: str) -> list[int]:
    """Decode a pycocotools ``counts`` string back into run lengths (``rleFrString``)."""
    runs: list[int] = []
    p = 0
    n = len(counts)
    while p < n:
        x = 0
        k = 0
        more = True
        while more:
            if p >= n:
                raise ValueError("truncated RLE counts string")
            c = ord(counts[p]) - _OFFSET
            if not 0 <= c < 64:
                raise ValueError(f"invalid RLE character {counts[p]!r} at {p}")
            x |= (c & 0x1F) << (5 * k)
            more = bool(c & 0x20)
            p += 1
            k += 1
            if not more and c & 0x10:
                x |= -1 << (5 * k)
        if len(runs) > 2:
            x += runs[-2]
        if x < 0:
            raise ValueError(f"negative run length decoded at position {len(runs)}")
        runs.append(x)
    return runs


def runs_from_column_spans(
    height: int, width: int, spans: Iterable[tuple[int, int, int]]
) -> list[int]:
    """Run lengths of a mask given as set spans ``(column, row_start, row_stop)``.

    Spans must be sorted by column then row, must not overlap and must lie inside the image;
    empty spans are ignored. Touching spans (also across a column boundary) merge into one run.
    """
    total = height * width
    runs: list[int] = []
    pos = 0  # column-major index just past the last run written
    for col, start, stop in spans:
        if stop <= start:
            continue
        if not (0 <= col < width and 0 <= start < stop <= height):
            raise ValueError(f"span {(col, start, stop)} outside {height}x{width}")
        begin = col * height + start
        end = col * height + stop
        if begin < pos:
            raise ValueError("spans must be sorted and must not overlap")
        if begin == pos and runs:
            runs[-1] += end - begin  # extends the previous set run
        else:
            runs.append(begin - pos)
            runs.append(end - begin)
        pos = end
    if pos < total or not runs:  # like pycocotools: no empty run at the end
        runs.append(total - pos)
    return runs


def rectangle_runs(height: int, width: int, *, x: int, y: int, w: int, h: int) -> list[int]:
    """Run lengths of an axis-aligned filled rectangle, clipped to the image."""
    x0, x1 = max(0, x), min(width, x + w)
    y0, y1 = max(0, y), min(height, y + h)
    return runs_from_column_spans(height, width, ((c, y0, y1) for c in range(x0, x1)))


def ellipse_runs(
    height: int, width: int, *, cx: float, cy: float, rx: float, ry: float
) -> list[int]:
    """Run lengths of a filled axis-aligned ellipse, sampled at pixel centres, clipped."""
    if rx <= 0 or ry <= 0:
        return [height * width]
    spans: list[tuple[int, int, int]] = []
    for col in range(max(0, math.floor(cx - rx)), min(width, math.ceil(cx + rx) + 1)):
        dx = (col + 0.5 - cx) / rx
        if dx * dx >= 1.0:
            continue
        half = ry * math.sqrt(1.0 - dx * dx)
        # Rows whose centre r + 0.5 lies strictly inside (cy - half, cy + half).
        start = max(0, math.floor(cy - half - 0.5) + 1)
        stop = min(height, math.ceil(cy + half - 0.5))
        spans.append((col, start, stop))
    return runs_from_column_spans(height, width, spans)


def mask_to_runs(rows: Sequence[Sequence[int]]) -> list[int]:
    """Run lengths of a mask given row-major as rows of 0/1 (truthy) values."""
    height = len(rows)
    width = len(rows[0]) if height else 0
    if any(len(r) != width for r in rows):
        raise ValueError("all rows of a mask must have the same length")
    runs: list[int] = []
    current = 0
    length = 0
    for col in range(width):
        for row in range(height):
            bit = 1 if rows[row][col] else 0
            if bit == current:
                length += 1
            else:
                runs.append(length)
                current = bit
                length = 1
    runs.append(length)
    return runs


def runs_to_mask(runs: Sequence[int], height: int, width: int) -> list[list[int]]:
    """Row-major 0/1 mask from run lengths; the inverse of :func:`mask_to_runs`."""
    if sum(runs) != height * width:
        raise ValueError(f"runs sum to {sum(runs)}, expected {height * width}")
    rows = [[0] * width for _ in range(height)]
    pos = 0
    for i, run in enumerate(runs):
        if i % 2:
            for idx in range(pos, pos + run):
                col, row = divmod(idx, height)
                rows[row][col] = 1
        pos += run
    return rows


def area(runs: Sequence[int]) -> int:
    """Number of set pixels (the sum of the runs of 1s)."""
    return sum(runs[1::2])


def bbox(runs: Sequence[int], height: int) -> tuple[int, int, int, int]:
    """Tight ``(x, y, w, h)`` box around the set pixels; ``(0, 0, 0, 0)`` when empty."""
    min_col = min_row = max_col = max_row = -1
    pos = 0
    for i, run in enumerate(runs):
        if i % 2 and run:
            first, last = pos, pos + run - 1
            c0, r0 = divmod(first, height)
            c1, r1 = divmod(last, height)
            # A run spanning a column boundary covers full rows in between.
            lo_row, hi_row = (r0, r1) if c0 == c1 else (0, height - 1)
            if min_col < 0:
                min_col = c0
                min_row, max_row = lo_row, hi_row
            else:
                min_row = min(min_row, lo_row)
                max_row = max(max_row, hi_row)
            max_col = c1
        pos += run
    if min_col < 0:
        return (0, 0, 0, 0)
    return (min_col, min_row, max_col - min_col + 1, max_row - min_row + 1)


def to_rle(runs: Sequence[int], height: int, width: int) -> CompressedRLE:
    """The SA-1B ``segmentation`` object for a mask of ``height`` x ``width``."""
    if sum(runs) != height * width:
        raise ValueError(f"runs sum to {sum(runs)}, expected {height * width}")
    return {"size": [height, width], "counts": encode_counts(runs)}


def from_rle(rle: CompressedRLE) -> list[list[int]]:
    """Decode a ``segmentation`` object into a row-major 0/1 mask."""
    height, width = rle["size"]
    return runs_to_mask(decode_counts(rle["counts"]), height, width)
