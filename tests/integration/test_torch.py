"""``sa1b.open(OUT).torch()``: a ``torch.utils.data.Dataset`` over a real download that a
``DataLoader`` with worker processes reads whole, masks included; torch is imported only
when the wrapper is used."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import torch
from torch.utils.data import DataLoader

import sa1b
from sa1b.cdn.server import CDNServer
from sa1b.cdn.synth import ShardInfo
from sa1b.data.torch import SA1BDataset, collate

from .conftest import member_bytes, run_cli


@pytest.mark.parametrize("layout", ["wds", "shard"])
def test_a_dataloader_with_two_workers_yields_every_sample_with_its_masks(
    cdn: CDNServer, links: Path, shards: list[ShardInfo], tmp_path: Path, layout: str
) -> None:
    out = tmp_path / "out"
    assert run_cli("download", links, "-o", out, "--layout", layout).returncode == 0
    dataset = sa1b.open(out).torch(masks=True)
    assert isinstance(dataset, torch.utils.data.Dataset)
    loader = DataLoader(dataset, batch_size=4, num_workers=2, collate_fn=collate)
    seen: list[str] = []
    for batch in loader:
        for image, listed, masks, key in zip(
            batch["image"], batch["annotations"], batch["masks"], batch["key"], strict=True
        ):
            assert image.dtype == torch.uint8 and image.shape[2] == 3
            height, width = image.shape[:2]
            assert masks.shape == (len(listed), height, width) and len(listed) > 0
            for mask, annotation in zip(masks, listed, strict=True):
                assert int(mask.sum()) == annotation["area"] > 0
            seen.append(key)
    images = sorted(n for s in shards for n in member_bytes(s) if n.endswith(".jpg"))
    assert sorted(f"{key}.jpg" for key in seen) == images  # every sample, once


def test_an_item_is_the_image_its_annotations_and_where_it_came_from(
    cdn: CDNServer, links: Path, shards: list[ShardInfo], tmp_path: Path
) -> None:
    out = tmp_path / "out"
    assert run_cli("download", links, "-o", out, "--shards", "1").returncode == 0
    samples = sa1b.open(out)
    item = SA1BDataset(samples)[0]
    info = samples[0].document["image"]
    assert item["image"].shape == (info["height"], info["width"], 3)
    assert item["annotations"] == samples[0].annotations
    assert (item["key"], item["shard"]) == (samples[0].key, "sa_000001.tar")
    assert "masks" not in item
    with samples[0].image() as picture:  # the tensor holds the decoded pixels
        assert item["image"].numpy().tobytes() == picture.convert("RGB").tobytes()


def test_a_transform_takes_the_pillow_image(cdn: CDNServer, links: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    assert run_cli("download", links, "-o", out, "--shards", "0").returncode == 0
    seen: list[Any] = []

    def transform(image: Any) -> tuple[int, int]:
        seen.append(image.mode)
        return image.size  # type: ignore[no-any-return]

    dataset = sa1b.open(out).torch(transform=transform)
    info = sa1b.open(out)[0].document["image"]
    assert dataset[0]["image"] == (info["width"], info["height"])
    assert seen == ["RGB"]


def test_a_folder_of_one_kind_gives_items_of_that_kind_through_a_dataloader(
    cdn: CDNServer, links: Path, shards: list[ShardInfo], tmp_path: Path
) -> None:
    """``--only json``: items with annotations and masks (sized by the annotation file)
    and no image; ``--only jpg``: images alone. Every sample comes, once."""
    members = {n: data for s in shards for n, data in member_bytes(s).items()}
    for kind in ("json", "jpg"):
        out = tmp_path / kind
        assert run_cli("download", links, "-o", out, "--only", kind).returncode == 0
        dataset = sa1b.open(out).torch(masks=True)
        loader = DataLoader(dataset, batch_size=3, num_workers=2, collate_fn=collate)
        keys: list[str] = []
        for batch in loader:
            keys += batch["key"]
            if kind == "json":
                assert "image" not in batch
                for listed, masks in zip(batch["annotations"], batch["masks"], strict=True):
                    assert masks.shape[0] == len(listed) > 0
                    assert [int(m.sum()) for m in masks] == [a["area"] for a in listed]
            else:
                assert "annotations" not in batch and "masks" not in batch
                assert all(image.dtype == torch.uint8 for image in batch["image"])
        wanted = sorted(n.removesuffix(f".{kind}") for n in members if n.endswith(f".{kind}"))
        assert sorted(keys) == wanted


def test_collate_keeps_each_field_as_a_list() -> None:
    batch = [{"image": 1, "key": "sa_1"}, {"image": 2, "key": "sa_2"}]
    assert collate(batch) == {"image": [1, 2], "key": ["sa_1", "sa_2"]}
    assert collate([]) == {}


def test_torch_is_imported_only_when_the_wrapper_is_used(tmp_path: Path) -> None:
    for name in ("sa_1.jpg", "sa_1.json"):  # a sample (read only when asked for)
        (tmp_path / name).write_bytes(b"")
    script = (
        "import sys, sa1b\n"
        "samples = sa1b.open(sys.argv[1])\n"
        "assert 'torch' not in sys.modules, 'import sa1b imported torch'\n"
        "samples.torch()\n"
        "assert 'torch' in sys.modules\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script, tmp_path], capture_output=True, text=True, check=False
    )
    assert done.returncode == 0, done.stderr
