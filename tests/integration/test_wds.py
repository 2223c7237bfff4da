"""``--layout wds`` through the real CLI and the CDN stand-in: the webdataset package
yields every sample of every shard with its jpg and json, adjacent and in image-id
order; a SIGKILL mid-run then a rerun gives the same tars and nothing stray; a wds tar
lost by hand is fetched again; ``sa1b index`` points into the source tars."""

from __future__ import annotations

import gc
import signal
import tarfile
import warnings
from pathlib import Path
from typing import Any

import pytest
import webdataset

from sa1b.cdn.server import CDNServer
from sa1b.cdn.synth import ShardInfo
from tests.waiting import wait_for

from .conftest import assert_extracted, assert_identical, member_bytes, run_cli, start_cli


def published(out: Path) -> set[str]:
    """Every file under ``out`` outside the state folder."""
    return {
        str(path.relative_to(out))
        for path in out.rglob("*")
        if path.is_file() and ".sa1b" not in path.relative_to(out).parts
    }


def image_ids(shard: ShardInfo) -> list[int]:
    return sorted({int(name.split(".")[0].removeprefix("sa_")) for name in member_bytes(shard)})


def read_with_webdataset(tar: Path) -> list[dict[str, Any]]:
    """Every sample webdataset yields from ``tar``, in its order."""
    with warnings.catch_warnings():
        # webdataset leaves a local tar open for the garbage collector to close (its
        # url_opener never closes the stream); that is webdataset's, not a fault here.
        warnings.simplefilter("ignore", ResourceWarning)
        samples = list(webdataset.WebDataset(str(tar), shardshuffle=False))
        gc.collect()
    return samples


@pytest.mark.parametrize("keep", [False, True], ids=["tars-deleted", "keep-tars"])
def test_webdataset_yields_every_sample_with_its_jpg_and_json(
    cdn: CDNServer, links: Path, shards: list[ShardInfo], tmp_path: Path, keep: bool
) -> None:
    out = tmp_path / "out"
    keep_tars = ["--keep-tars"] if keep else []
    result = run_cli("download", links, "-o", out, "--layout", "wds", *keep_tars)
    assert result.returncode == 0, result.output
    for shard in shards:
        tar = out / "wds" / shard.name
        source = member_bytes(shard)
        keys = [f"sa_{image_id}" for image_id in image_ids(shard)]
        assert len(keys) > 3
        samples = read_with_webdataset(tar)
        assert [sample["__key__"] for sample in samples] == keys  # by image id
        for sample in samples:
            key = sample["__key__"]
            assert sample["jpg"] == source[f"{key}.jpg"]
            assert sample["json"] == source[f"{key}.json"]
        with tarfile.open(tar) as archive:  # each image's parts side by side
            assert archive.getnames() == [
                f"{key}.{part}" for key in keys for part in ("jpg", "json")
            ]
    assert_extracted(out, shards, "wds")  # each tar exactly as Python's tarfile writes it
    tars = {f"tars/{shard.name}" for shard in shards} if keep else set()
    assert published(out) == {f"wds/{shard.name}" for shard in shards} | tars
    if keep:
        assert_identical(out, shards)
    status = run_cli("status", out)
    assert status.returncode == 0 and status.output.count("extracted (wds)") == len(shards)


def test_sigkill_mid_run_then_rerun_gives_the_same_tars(
    slow_cdn: CDNServer, shards: list[ShardInfo], tmp_path: Path
) -> None:
    links = tmp_path / "links.tsv"
    slow_cdn.write_links_file(links)
    out = tmp_path / "out"
    args = ("download", links, "-o", out, "--layout", "wds", "--connections", "3")
    proc = start_cli(*args, "--files", "1")  # one shard at a time: killed between shards
    wait_for(
        lambda: list((out / "wds").glob("*.tar")),
        timeout=60,
        message="a tar published",
        process=proc,
    )
    proc.send_signal(signal.SIGKILL)
    proc.communicate()
    assert len(list((out / "wds").glob("*.tar"))) < len(shards), "killed too late"
    result = run_cli(*args)
    assert result.returncode == 0, result.output
    assert_extracted(out, shards, "wds")
    assert published(out) == {f"wds/{shard.name}" for shard in shards}
    total = sum(shard.size for shard in shards)
    assert slow_cdn.bytes_sent_total <= total * 1.05 + 3 * 1536 * 1024


def test_a_wds_tar_removed_by_hand_is_fetched_again(
    cdn: CDNServer, links: Path, shards: list[ShardInfo], tmp_path: Path
) -> None:
    out = tmp_path / "out"
    assert run_cli("download", links, "-o", out, "--layout", "wds").returncode == 0
    (out / "wds" / shards[1].name).unlink()
    cdn.clear_requests()
    again = run_cli("download", links, "-o", out, "--layout", "wds")
    assert again.returncode == 0, again.output
    assert "its folder is gone; fetching it again" in again.output
    assert cdn.bytes_sent_total == shards[1].size
    assert_extracted(out, shards, "wds")


def test_the_index_points_into_the_source_tars(
    cdn: CDNServer, links: Path, shards: list[ShardInfo], tmp_path: Path
) -> None:
    out = tmp_path / "out"
    assert run_cli("download", links, "-o", out, "--layout", "wds").returncode == 0
    result = run_cli("index", out)
    assert result.returncode == 0, result.output
    _, *rows = result.stdout.splitlines()
    by_name = {shard.name: shard for shard in shards}
    assert len(rows) == sum(len(member_bytes(shard)) for shard in shards)
    for row in rows:
        shard, member, offset, size, path = row.split("\t")
        assert path == f"wds/{shard}/{member}"  # the member inside its wds tar
        with by_name[shard].path.open("rb") as tar:
            tar.seek(int(offset))
            assert tar.read(int(size)) == member_bytes(by_name[shard])[member], row
