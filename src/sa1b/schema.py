"""What an SA-1B annotation file must hold to be trained on. Pure.

The shape, from Meta's release (``../shared/SA1B.md``)::

    {"image": {"image_id": int, "width": int, "height": int, "file_name": "sa_<id>.jpg"},
     "annotations": [{"id": int,
                      "segmentation": {"size": [h, w], "counts": "<COCO compressed RLE>"},
                      "bbox": [x, y, w, h], "area": int,
                      "predicted_iou": float, "stability_score": float,
                      "crop_box": [x, y, w, h], "point_coords": [[x, y]]}]}

:func:`annotation_problems` says what is wrong with a parsed file, a few lines at most.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

SHOWN = 3
"""Problems named per file; more are counted."""


def annotation_problems(document: object, *, image_file: str) -> list[str]:
    """What breaks the shape above; ``image_file`` is the ``.jpg`` it belongs with."""
    if not isinstance(document, Mapping):
        return ["not a JSON object"]
    problems = _image_problems(document.get("image"), image_file)
    annotations = document.get("annotations")
    if not isinstance(annotations, list):
        return [*problems, "'annotations' is not a list"]
    image = document.get("image")
    size = [image.get("height"), image.get("width")] if isinstance(image, Mapping) else None
    for number, annotation in enumerate(annotations):
        problems += [f"annotation {number}: {p}" for p in _annotation_problems(annotation, size)]
    if len(problems) > SHOWN:
        problems = [*problems[:SHOWN], f"and {len(problems) - SHOWN} more"]
    return problems


def _image_problems(image: object, image_file: str) -> list[str]:
    if not isinstance(image, Mapping):
        return ["'image' is not an object"]
    problems = [
        f"image.{key} is not a whole number above 0"
        for key in ("width", "height")
        if not _whole(image.get(key)) or image.get(key, 0) <= 0
    ]
    if not _whole(image.get("image_id")):
        problems.append("image.image_id is not a whole number")
    if image.get("file_name") != image_file:
        problems.append(f"image.file_name is {image.get('file_name')!r}, not {image_file!r}")
    return problems


def _annotation_problems(annotation: object, size: list[Any] | None) -> list[str]:
    if not isinstance(annotation, Mapping):
        return ["not an object"]
    problems = []
    segmentation = annotation.get("segmentation")
    if not isinstance(segmentation, Mapping) or not isinstance(segmentation.get("counts"), str):
        problems.append("segmentation has no RLE 'counts' string")
    elif size is not None and segmentation.get("size") != size:
        problems.append(f"segmentation size {segmentation.get('size')} is not the image's {size}")
    if not _whole(annotation.get("id")):
        problems.append("id is not a whole number")
    if not _whole(annotation.get("area")) or annotation.get("area", -1) < 0:
        problems.append("area is not a whole number")
    for key in ("bbox", "crop_box"):
        box = annotation.get(key)
        if not (isinstance(box, list) and len(box) == 4 and all(map(_number, box))):
            problems.append(f"{key} is not 4 numbers")
    for key in ("predicted_iou", "stability_score"):
        if not _number(annotation.get(key)):
            problems.append(f"{key} is not a number")
    points = annotation.get("point_coords")
    if not (isinstance(points, list) and all(_point(p) for p in points)):
        problems.append("point_coords is not a list of [x, y]")
    return problems


def _whole(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _point(value: object) -> bool:
    return isinstance(value, list) and len(value) == 2 and all(map(_number, value))
