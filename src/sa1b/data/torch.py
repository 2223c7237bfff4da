"""The samples of a download as a ``torch.utils.data.Dataset`` (``pip install 'sa1b[torch]'``).

This module imports torch; nothing else in sa1b does, and nothing imports this module
until it is used (``sa1b.open(OUT).torch()``), so ``import sa1b`` never loads torch.

An item is a dict: ``image``, the RGB image as a ``height x width x 3`` uint8 tensor
(or whatever ``transform`` makes of the Pillow image instead); ``annotations``, the
annotation dicts as SA-1B's JSON has them; ``key`` and ``shard``; and with
``masks=True``, ``masks``, an ``annotations x height x width`` uint8 tensor of 0 and 1
(pycocotools). A folder fetched with ``--only json`` has no images: its items have no
``image``, and their masks take their size from the annotation file; one fetched with
``--only jpg`` has no annotation files: its items have no ``annotations`` and no ``masks``.
SA-1B's images differ in size and in their number of masks, so torch's default collate
cannot stack them: :func:`collate` keeps each field as a list.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy
import torch
from torch.utils.data import Dataset

from sa1b.data.loader import Sample


class SA1BDataset(Dataset[dict[str, Any]]):
    """A map-style dataset over ``samples``: one dict per image (see the module)."""

    def __init__(
        self,
        samples: Sequence[Sample],
        *,
        transform: Callable[[Any], Any] | None = None,
        masks: bool = False,
    ) -> None:
        self.samples = samples
        self.transform = transform
        self.masks = masks

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, index: int) -> dict[str, Any]:
        sample = self.samples[index]
        item: dict[str, Any] = {"key": sample.key, "shard": sample.shard}
        if sample.image_file is not None:
            with sample.image() as picture:
                rgb = picture.convert("RGB")
            item["image"] = self.transform(rgb) if self.transform else _tensor(rgb)
        if sample.annotation_file is not None:
            item["annotations"] = sample.annotations
            if self.masks:
                item["masks"] = _masks(sample)
        return item


def _masks(sample: Sample) -> torch.Tensor:
    """The sample's masks stacked, ``annotations x height x width``; the size is the
    annotation file's own, so an image with no mask (or no image here) still has one."""
    decoded = sample.masks()
    info = sample.document["image"]
    shape = (0, info["height"], info["width"])
    stacked = numpy.stack(decoded) if decoded else numpy.zeros(shape)
    return torch.from_numpy(stacked.astype(numpy.uint8))


def _tensor(image: Any) -> torch.Tensor:
    """A Pillow RGB image as a ``height x width x 3`` uint8 tensor (its own copy)."""
    return torch.from_numpy(numpy.array(image, dtype=numpy.uint8))


def collate(batch: list[dict[str, Any]]) -> dict[str, list[Any]]:
    """A batch as one list per field, for ``DataLoader(collate_fn=collate)``."""
    return {field: [item[field] for item in batch] for field in batch[0]} if batch else {}
