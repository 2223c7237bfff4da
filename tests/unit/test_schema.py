"""SA-1B's annotation shape, as a table of documents and what is wrong with each."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from sa1b.schema import annotation_problems

GOOD: dict[str, Any] = {
    "image": {"image_id": 7, "width": 4, "height": 3, "file_name": "sa_7.jpg"},
    "annotations": [
        {
            "id": 1,
            "segmentation": {"size": [3, 4], "counts": "02?1"},
            "bbox": [0.0, 0.0, 2.0, 1.0],
            "area": 2,
            "predicted_iou": 0.9,
            "stability_score": 0.95,
            "crop_box": [0.0, 0.0, 4.0, 3.0],
            "point_coords": [[1.0, 0.5]],
        }
    ],
}


def _with(path: str, value: object) -> dict[str, Any]:
    document = copy.deepcopy(GOOD)
    *parents, last = path.split(".")
    target: Any = document
    for key in parents:
        target = target[int(key)] if key.isdigit() else target[key]
    if value is KeyError:
        del target[last]
    else:
        target[last] = value
    return document


CASES: dict[str, tuple[object, list[str]]] = {
    "a sound document": (GOOD, []),
    "no annotations at all is sound": ({**GOOD, "annotations": []}, []),
    "not an object": ([1, 2], ["not a JSON object"]),
    "no image": (_with("image", KeyError), ["'image' is not an object"]),
    "another image's name": (
        _with("image.file_name", "sa_8.jpg"),
        ["image.file_name is 'sa_8.jpg', not 'sa_7.jpg'"],
    ),
    "a width of zero": (
        _with("image.width", 0),
        [
            "image.width is not a whole number above 0",
            "annotation 0: segmentation size [3, 4] is not the image's [3, 0]",
        ],
    ),
    "annotations not a list": (_with("annotations", {}), ["'annotations' is not a list"]),
    "a mask of another size": (
        _with("annotations.0.segmentation", {"size": [4, 3], "counts": "x"}),
        ["annotation 0: segmentation size [4, 3] is not the image's [3, 4]"],
    ),
    "no RLE counts": (
        _with("annotations.0.segmentation", {"size": [3, 4]}),
        ["annotation 0: segmentation has no RLE 'counts' string"],
    ),
    "a fractional area": (
        _with("annotations.0.area", 2.5),
        ["annotation 0: area is not a whole number"],
    ),
    "a boolean id": (_with("annotations.0.id", True), ["annotation 0: id is not a whole number"]),
    "a box of 3 numbers": (
        _with("annotations.0.bbox", [0, 0, 1]),
        ["annotation 0: bbox is not 4 numbers"],
    ),
    "a score as text": (
        _with("annotations.0.predicted_iou", "0.9"),
        ["annotation 0: predicted_iou is not a number"],
    ),
    "a point of 3 numbers": (
        _with("annotations.0.point_coords", [[1, 2, 3]]),
        ["annotation 0: point_coords is not a list of [x, y]"],
    ),
    "many problems are counted, not all named": (
        {**GOOD, "annotations": ["x"] * 5},
        [*[f"annotation {i}: not an object" for i in range(3)], "and 2 more"],
    ),
}


@pytest.mark.parametrize("case", list(CASES))
def test_annotation_problems(case: str) -> None:
    document, problems = CASES[case]
    assert annotation_problems(document, image_file="sa_7.jpg") == problems
