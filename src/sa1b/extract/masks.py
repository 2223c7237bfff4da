"""SA-1B's masks, decoded with pycocotools (``pip install 'sa1b[masks]'``)."""

from __future__ import annotations

import warnings
from collections.abc import Mapping
from typing import Any

from sa1b.errors import InputError


def decode_mask(segmentation: Mapping[str, Any]) -> Any:
    """A ``{"size": [h, w], "counts": RLE}`` segmentation as an ``h x w`` array of 0/1."""
    try:
        from pycocotools import mask as mask_api  # type: ignore[import-untyped]
    except ImportError:
        raise InputError(
            "decoding masks needs pycocotools", hint="install the extra: pip install 'sa1b[masks]'"
        ) from None
    rle = {"size": list(segmentation["size"]), "counts": str(segmentation["counts"]).encode()}
    with warnings.catch_warnings():
        # pycocotools 2.0.x meets numpy 2's new __array__ signature: harmless, and not ours.
        warnings.filterwarnings("ignore", "__array__ implementation", DeprecationWarning)
        return mask_api.decode(rle)
