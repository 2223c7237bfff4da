"""COCO compressed RLE: fixed vectors from pycocotools, and round trips."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from sa1b.cdn import rle

# Produced by pycocotools.mask.encode(np.asfortranarray(mask)) (pycocotools 2.0).
POINTS_5x7 = [
    [1, 0, 0, 0, 0, 0, 0],
    [0, 0, 0, 0, 0, 1, 0],
    [0, 0, 0, 1, 0, 1, 0],
    [0, 0, 0, 0, 0, 1, 0],
    [0, 0, 0, 0, 0, 0, 1],
]
RANDOM_6x5 = [
    [0, 1, 1, 0, 1],
    [1, 1, 1, 1, 1],
    [1, 0, 0, 1, 0],
    [0, 0, 0, 0, 1],
    [0, 1, 1, 0, 0],
    [1, 1, 1, 1, 0],
]


@pytest.mark.parametrize(
    ("mask", "counts"),
    [
        ([[0, 0], [0, 0]], "4"),
        ([[0] * 10 for _ in range(10)], "T3"),
        ([[1] * 3 for _ in range(3)], "09"),
        ([[0, 1, 1, 0], [0, 1, 1, 0], [0, 0, 0, 1]], "32102O"),
        (POINTS_5x7, "01`00H2MN"),
        (RANDOM_6x5, "1221010NO011ON1"),
    ],
)
def test_matches_pycocotools(mask: list[list[int]], counts: str) -> None:
    runs = rle.mask_to_runs(mask)
    assert rle.encode_counts(runs) == counts
    assert rle.from_rle({"size": [len(mask), len(mask[0])], "counts": counts}) == mask


def test_all_zero_mask_encodes_its_pixel_count() -> None:
    # 427 * 640 = 273280: 5-bit groups 0, 28, 10, 8 (low first); "more" bit on all but the
    # last gives "P", "l", "Z", "8".
    assert rle.to_rle([427 * 640], 427, 640) == {"size": [427, 640], "counts": "PlZ8"}


def test_rectangle_matches_pycocotools() -> None:
    runs = rle.rectangle_runs(100, 100, x=20, y=10, w=60, h=40)
    expected = "jn1X1l1" + "0" * 117 + "Vn1"
    assert rle.encode_counts(runs) == expected
    assert rle.area(runs) == 60 * 40
    assert rle.bbox(runs, 100) == (20, 10, 60, 40)


def test_negative_delta_uses_sign_bit() -> None:
    # The fourth count is stored as 1 - 2 = -1: one group 0x1F (sign bit set), + 48 = "O".
    assert rle.encode_counts([1, 2, 3, 1]) == "123O"
    assert rle.decode_counts("123O") == [1, 2, 3, 1]
    # 40 - 3 = 37 needs two groups: 0x05 | 0x20 (more) = "U", then 0x01 = "1".
    assert rle.encode_counts([1, 3, 2, 40]) == "132U1"


def test_ellipse_is_inside_its_box_and_symmetric() -> None:
    runs = rle.ellipse_runs(40, 60, cx=30.0, cy=20.0, rx=10.0, ry=6.0)
    x, y, w, h = rle.bbox(runs, 40)
    assert (x, y, w, h) == (20, 14, 20, 12)
    mask = rle.runs_to_mask(runs, 40, 60)
    assert mask[20][30] == 1 and mask[0][0] == 0
    for row in mask:  # mirror symmetry about the centre column x = 30 (pixels 20..39)
        assert row[20:40] == row[20:40][::-1]


def test_rejects_bad_input() -> None:
    with pytest.raises(ValueError, match="invalid RLE character"):
        rle.decode_counts("4 ")
    with pytest.raises(ValueError, match="truncated"):
        rle.decode_counts("T")  # 0x20 set: another group was promised
    with pytest.raises(ValueError, match="sum"):
        rle.to_rle([3], 2, 2)


masks = st.integers(1, 9).flatmap(
    lambda h: st.lists(
        st.lists(st.integers(0, 1), min_size=h, max_size=h), min_size=1, max_size=9
    ).map(lambda cols: [list(r) for r in zip(*cols, strict=True)])
)


@given(masks)
def test_round_trip(mask: list[list[int]]) -> None:
    height, width = len(mask), len(mask[0])
    runs = rle.mask_to_runs(mask)
    assert sum(runs) == height * width
    assert all(r > 0 for r in runs[1:])  # only the first run may be empty
    encoded = rle.to_rle(runs, height, width)
    assert rle.decode_counts(encoded["counts"]) == runs
    assert rle.from_rle(encoded) == mask
    assert rle.area(runs) == sum(map(sum, mask))


@given(st.lists(st.integers(0, 10**7), min_size=1, max_size=30))
def test_counts_round_trip_any_runs(runs: list[int]) -> None:
    assert rle.decode_counts(rle.encode_counts(runs)) == runs


@given(
    st.tuples(st.integers(1, 30), st.integers(1, 30)),
    st.tuples(st.integers(-5, 30), st.integers(-5, 30), st.integers(0, 30), st.integers(0, 30)),
)
def test_rectangle_agrees_with_pixels(
    image: tuple[int, int], box: tuple[int, int, int, int]
) -> None:
    height, width = image
    x, y, w, h = box
    runs = rle.rectangle_runs(height, width, x=x, y=y, w=w, h=h)
    expected = [
        [1 if x <= c < x + w and y <= r < y + h else 0 for c in range(width)] for r in range(height)
    ]
    assert rle.runs_to_mask(runs, height, width) == expected
    assert runs == rle.mask_to_runs(expected)
    if any(map(any, expected)):
        bx, by, bw, bh = rle.bbox(runs, height)
        assert (bx, by) == (max(0, x), max(0, y))
        assert (bx + bw, by + bh) == (min(width, x + w), min(height, y + h))
    else:
        assert rle.bbox(runs, height) == (0, 0, 0, 0)
