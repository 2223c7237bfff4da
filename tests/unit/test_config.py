"""A configuration refuses what cannot go together when it is built, with the one-line
error the command line prints (a library caller is not silently given less)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from sa1b.checksums import Digest
from sa1b.config import DownloadConfig, ExtractOptions, UploadOptions
from sa1b.errors import InputError
from sa1b.objectstore.location import BucketLocation

OUT = Path("out")
MiB = 1024 * 1024
JSON = ExtractOptions(only="json")
SUMS = {"sa_000000.tar": Digest("md5", "0" * 32)}

# name: (DownloadConfig's arguments, the error's message)
REFUSED: dict[str, tuple[dict[str, Any], str]] = {
    "--only with --checksums": (
        {"extract": JSON, "checksums": SUMS},
        "--only fetches members, not whole files: drop --checksums",
    ),
    "--only with --mirror": (
        {"extract": JSON, "mirrors": ("https://mirror.example/sa1b",)},
        "--only fetches members, not whole files: drop --mirror",
    ),
    "--only with --keep-tars": (
        {"extract": {"only": "jpg", "keep_tars": True}},
        "--only fetches members, not whole files: drop --keep-tars",
    ),
    "--only with --layout wds": (
        {"extract": {"only": "json", "layout": "wds"}},
        "--only fetches members, not whole files: drop --layout wds",
    ),
    "--only of another kind": (
        {"extract": {"only": "png"}},
        "--only: expected one of json, jpg, got 'png'",
    ),
    "an unknown layout": (
        {"extract": {"layout": "nested"}},
        "--layout: expected one of shard, split, flat, wds, got 'nested'",
    ),
    "no tar window": (
        {"extract": {"tar_window": 0}},
        "--tar-window: expected a size above 0, got 0",
    ),
    "no bandwidth": ({"max_rate": 0}, "--max-rate: expected bytes/s above 0, got 0"),
    "no connections": ({"connections": 0}, "connection, file and loop counts must be >= 1"),
    "no files at once": ({"max_files": 0}, "connection, file and loop counts must be >= 1"),
    "no connection per file": (
        {"connections_per_file": 0},
        "connection, file and loop counts must be >= 1",
    ),
    "extracting into a bucket": (
        {"upload": {}},
        "s3://b/p: only tars go into a bucket (the shards', or made from them): an extracted "
        "layout is one object per image, millions of PUTs",
    ),
    "a wds tar into a bucket with checksums": (
        {"extract": None, "upload": {"output": "wds"}, "checksums": SUMS},
        "s3://b/p: a tar made in the bucket is not the source tar: the checksums file cannot "
        "check it",
    ),
    "a part under 5 MiB": (
        {"extract": None, "upload": {"part_size": 4 * MiB}},
        "--part-size: S3 takes parts of 5 MiB to 5 GiB, got 4194304 bytes",
    ),
    "less memory than a part": (
        {"extract": None, "upload": {"part_size": 8 * MiB, "memory": 4 * MiB}},
        "--upload-memory: at least one part (8388608 bytes), got 4194304",
    ),
}

ACCEPTED: dict[str, dict[str, Any]] = {
    "--only alone": {"extract": JSON},
    "--only in the split layout": {"extract": {"only": "jpg", "layout": "split"}},
    "checksums, mirrors and kept tars without --only": {
        "extract": ExtractOptions(keep_tars=True, layout="wds"),
        "checksums": SUMS,
        "mirrors": ("https://mirror.example/sa1b",),
    },
    "no extraction with checksums": {"extract": None, "checksums": SUMS},
    "tars into a bucket, with checksums": {"extract": None, "upload": {}, "checksums": SUMS},
    "a budget of one part": {"extract": None, "upload": {"memory": 8 * MiB}},
    "a json tar made into a bucket": {"extract": None, "upload": {"output": "json"}},
}


def _build(arguments: dict[str, Any]) -> DownloadConfig:
    extract = arguments.get("extract", ExtractOptions())
    if isinstance(extract, dict):  # built here, so that its own refusals are in the table
        extract = ExtractOptions(**extract)
    upload = arguments.get("upload")
    if isinstance(upload, dict):
        upload = UploadOptions(location=BucketLocation("b", "p"), **upload)
    return DownloadConfig(out=OUT, **{**arguments, "extract": extract, "upload": upload})


@pytest.mark.parametrize("case", list(REFUSED))
def test_a_config_refuses_what_cannot_go_together(case: str) -> None:
    arguments, message = REFUSED[case]
    with pytest.raises(InputError) as refused:
        _build(arguments)
    assert refused.value.message == message


@pytest.mark.parametrize("case", list(ACCEPTED))
def test_a_config_takes_what_goes_together(case: str) -> None:
    assert _build(ACCEPTED[case]).out == OUT


def test_a_refused_combination_is_refused_when_added_later() -> None:
    """``dataclasses.replace`` builds anew: a mirror added to an ``--only`` config is
    refused as one given at first."""
    from dataclasses import replace

    with pytest.raises(InputError, match="drop --mirror"):
        replace(DownloadConfig(out=OUT, extract=JSON), mirrors=("https://m.example/",))
