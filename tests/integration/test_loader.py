"""``sa1b.open``: the samples of a real download, in every layout, and of a folder another
tool extracted; masks decoded with pycocotools agree with each annotation's area."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

import sa1b
from sa1b.cdn.server import CDNServer
from sa1b.cdn.synth import ShardInfo

from .conftest import member_bytes, run_cli


def _images(shards: list[ShardInfo]) -> list[str]:
    return sorted(name for shard in shards for name in member_bytes(shard) if name.endswith(".jpg"))


@pytest.mark.parametrize("layout", ["shard", "split", "flat"])
def test_every_sample_of_a_download_in_any_layout(
    cdn: CDNServer, links: Path, shards: list[ShardInfo], tmp_path: Path, layout: str
) -> None:
    out = tmp_path / "out"
    result = run_cli("download", links, "-o", out, "--layout", layout)
    assert result.returncode == 0, result.output
    samples = sa1b.open(out)
    assert sorted(s.image_path.name for s in samples) == _images(shards)
    assert {s.shard for s in samples} == {shard.name for shard in shards}
    for sample in samples:
        assert sample.document["image"]["file_name"] == sample.image_path.name
        assert sample.image_bytes()[:2] == b"\xff\xd8"  # a JPEG


def test_masks_decode_to_each_annotations_area(cdn: CDNServer, links: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    assert run_cli("download", links, "-o", out, "--shards", "0").returncode == 0
    sample = sa1b.open(out)[0]
    with sample.image() as image:
        size = image.size
    info = sample.document["image"]
    assert size == (info["width"], info["height"])
    masks = sample.masks()
    assert masks and len(masks) == len(sample.annotations)
    for mask, annotation in zip(masks, sample.annotations, strict=True):
        assert mask.shape == (info["height"], info["width"])
        assert int(mask.sum()) == annotation["area"] > 0


def test_a_folder_extracted_by_another_tool_is_walked(
    cdn: CDNServer, links: Path, shards: list[ShardInfo], tmp_path: Path
) -> None:
    out = tmp_path / "out"
    assert run_cli("download", links, "-o", out, "--layout", "split").returncode == 0
    elsewhere = tmp_path / "elsewhere"
    for part in ("images", "annotations"):
        shutil.copytree(out / part, elsewhere / part)  # no .sa1b: no store, no index
    samples = sa1b.open(elsewhere)
    assert sorted(s.image_path.name for s in samples) == _images(shards)
    assert all(s.shard is None and s.annotation_path.exists() for s in samples)
