"""``sa1b.open``: the samples of a real download, in every layout (wds: read from its
tars), and of a folder another tool extracted or of tars with no store; masks decoded
with pycocotools agree with each annotation's area."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

import sa1b
from sa1b.cdn.faults import Fault
from sa1b.cdn.server import CDNServer
from sa1b.cdn.synth import ShardInfo
from sa1b.layout import LAYOUTS

from .conftest import member_bytes, run_cli


def _images(shards: list[ShardInfo]) -> list[str]:
    return sorted(name for shard in shards for name in member_bytes(shard) if name.endswith(".jpg"))


def _assert_every_sample(samples: sa1b.Samples, shards: list[ShardInfo]) -> None:
    """Each image of ``shards`` once, with its own JSON's bytes and its own image's."""
    source = {name: data for shard in shards for name, data in member_bytes(shard).items()}
    assert sorted(f"{s.key}.jpg" for s in samples) == _images(shards)
    for sample in samples:
        assert sample.image_bytes() == source[f"{sample.key}.jpg"]
        assert sample.annotation_file.read() == source[f"{sample.key}.json"]
        assert sample.document["image"]["file_name"] == f"{sample.key}.jpg"


@pytest.mark.parametrize("layout", LAYOUTS)
def test_every_sample_of_a_download_in_any_layout(
    cdn: CDNServer, links: Path, shards: list[ShardInfo], tmp_path: Path, layout: str
) -> None:
    out = tmp_path / "out"
    result = run_cli("download", links, "-o", out, "--layout", layout)
    assert result.returncode == 0, result.output
    samples = sa1b.open(out)
    _assert_every_sample(samples, shards)
    assert {s.shard for s in samples} == {shard.name for shard in shards}
    in_tars = {s.image_file.path.suffix == ".tar" for s in samples}
    assert in_tars == {layout == "wds"}  # read from the wds tars, not from files


@pytest.mark.parametrize("layout", ["shard", "wds"])
def test_masks_decode_to_each_annotations_area(
    cdn: CDNServer, links: Path, tmp_path: Path, layout: str
) -> None:
    out = tmp_path / "out"
    download = ("download", links, "-o", out, "--shards", "0", "--layout", layout)
    assert run_cli(*download).returncode == 0
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
    _assert_every_sample(samples, shards)
    assert all(s.shard is None for s in samples)


@pytest.mark.parametrize("layout", ["wds", None], ids=["wds-tars", "sa1b-shards"])
def test_a_folder_of_tars_with_no_store_is_read_from_their_headers(
    cdn: CDNServer, links: Path, shards: list[ShardInfo], tmp_path: Path, layout: str | None
) -> None:
    out = tmp_path / "out"
    extract = ("--layout", layout) if layout else ("--no-extract",)
    assert run_cli("download", links, "-o", out, *extract).returncode == 0
    elsewhere = tmp_path / "elsewhere"
    shutil.copytree(out / ("wds" if layout else "tars"), elsewhere)  # no .sa1b: no store
    samples = sa1b.open(elsewhere)
    _assert_every_sample(samples, shards)
    assert all(s.shard is None and s.image_file.path.suffix == ".tar" for s in samples)


def test_a_tar_that_is_not_one_is_named(tmp_path: Path) -> None:
    (tmp_path / "sa_000000.tar").write_bytes(b"<html>not a tar</html>" * 100)
    with pytest.raises(sa1b.SA1BError, match=r"sa_000000\.tar: not a tar that can be read"):
        sa1b.open(tmp_path)


@pytest.mark.parametrize("kind", ["json", "jpg"])
def test_a_folder_of_only_one_kind_gives_those_alone(
    cdn: CDNServer, links: Path, shards: list[ShardInfo], tmp_path: Path, kind: str
) -> None:
    """``--only json``: every annotation is a sample, with no image (and one clear error
    for it); ``--only jpg`` the same the other way round."""
    out = tmp_path / "out"
    assert run_cli("download", links, "-o", out, "--only", kind).returncode == 0
    source = {name: data for shard in shards for name, data in member_bytes(shard).items()}
    samples = sa1b.open(out)
    assert sorted(f"{s.key}.{kind}" for s in samples) == sorted(
        name for name in source if name.endswith(f".{kind}")
    )
    sample = samples[0]
    assert sample.shard in {shard.name for shard in shards}
    if kind == "json":
        assert sample.image_file is None and sample.annotation_file is not None
        assert sample.annotation_file.read() == source[f"{sample.key}.json"]
        assert sample.document["image"]["file_name"] == f"{sample.key}.jpg"
        with pytest.raises(
            sa1b.SA1BError, match=r": no image here \(the download was --only json\)"
        ):
            sample.image_bytes()
    else:
        assert sample.annotation_file is None and sample.image_file is not None
        assert sample.image_bytes() == source[f"{sample.key}.jpg"]
        with pytest.raises(sa1b.SA1BError, match=r"no annotations here .*--only jpg"):
            sample.annotations  # noqa: B018


@pytest.mark.parametrize("keep", ["--no-extract", "--keep-tars"])
def test_kept_tars_are_read_where_their_headers_put_each_member_unless_extracted(
    cdn: CDNServer, links: Path, shards: list[ShardInfo], tmp_path: Path, keep: str
) -> None:
    out = tmp_path / "out"
    assert run_cli("download", links, "-o", out, keep).returncode == 0
    samples = sa1b.open(out)
    _assert_every_sample(samples, shards)  # each image once, beside its extraction too
    for sample in samples:
        assert sample.image_file is not None and sample.shard is not None
        in_tar = sample.image_file.path == out / "tars" / sample.shard
        assert in_tar is (keep == "--no-extract")


def test_a_download_with_nothing_finished_is_one_clear_error(
    cdn: CDNServer, links: Path, tmp_path: Path
) -> None:
    out = tmp_path / "out"
    cdn.add_fault("*", Fault("not_found", times=100))
    assert run_cli("download", links, "-o", out).returncode == 1
    with pytest.raises(sa1b.SA1BError, match=r"out: no samples here yet") as raised:
        sa1b.open(out)
    assert "sa1b status" in raised.value.hint


def test_a_folder_of_nothing_sa1b_reads_is_one_clear_error(tmp_path: Path) -> None:
    (tmp_path / "notes.txt").write_text("nothing here\n")
    with pytest.raises(sa1b.SA1BError, match=r"no samples here \(no \.jpg with its \.json"):
        sa1b.open(tmp_path)
