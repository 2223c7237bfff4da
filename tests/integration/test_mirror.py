"""Mirrors through the real CLI: the CDN stand-in's links expire, nginx serves the same
files as a mirror; kept bytes are continued only when they are sure to be the same file."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from harness.nginx import NginxServer
from sa1b.cdn.server import CDNServer
from sa1b.cdn.synth import ShardInfo

from .conftest import assert_identical, run_cli


def test_a_mirror_completes_files_whose_links_expired(
    cdn: CDNServer, nginx: NginxServer, shards: list[ShardInfo], tmp_path: Path
) -> None:
    links, out = tmp_path / "links.tsv", tmp_path / "out"
    cdn.write_links_file(links, expires_at=1_000_000)  # long past
    before = nginx.bytes_sent()
    args = ("download", "--no-extract", links, "-o", out, "--mirror", nginx.base_url + "/")
    result = run_cli(*args)
    assert result.returncode == 0, result.output
    assert_identical(out, shards)
    for shard in shards:
        assert f"{shard.name}  from the mirror {nginx.base_url}/" in result.output
    # Every byte from the mirror, once (and the one-byte requests that ask for sizes).
    total = sum(shard.size for shard in shards)
    assert total <= nginx.bytes_sent() - before <= total * 1.1
    assert cdn.bytes_sent_total == 0  # expired links are not even asked


@pytest.mark.parametrize("checked", [True, False], ids=["with-checksums", "without"])
def test_bytes_kept_from_the_links_are_continued_only_when_sure(
    slow_cdn: CDNServer, nginx: NginxServer, shards: list[ShardInfo], tmp_path: Path, checked: bool
) -> None:
    """Links that expire mid-run: with checksums the mirror continues the kept bytes (the
    finished file is checked); without, another server's ETag differs and they are
    fetched again from the mirror, whole."""
    links, out = tmp_path / "links.tsv", tmp_path / "out"
    slow_cdn.write_links_file(links, expires_at=int(time.time()) + 3)
    args = ["download", "--no-extract", links, "-o", out, "--connections", "2"]
    if checked:
        checksums = tmp_path / "md5sums.txt"
        checksums.write_text("".join(f"{s.md5}  {s.name}\n" for s in shards))
        args += ["--checksums", checksums]
    before = nginx.bytes_sent()
    result = run_cli(*args, "--mirror", nginx.base_url)
    assert result.returncode == 0, result.output
    assert_identical(out, shards)
    from_links = slow_cdn.bytes_sent_total
    from_mirror = nginx.bytes_sent() - before
    total = sum(shard.size for shard in shards)
    assert 0 < from_links < total, from_links  # the links expired part way
    if checked:
        assert from_mirror <= total - from_links + 2 * 1024 * 1024, (from_mirror, from_links)
    else:
        assert from_mirror >= total - from_links + 1024 * 1024, (from_mirror, from_links)


def test_a_mirror_that_is_no_url_is_one_line_and_exit_2(links: Path, tmp_path: Path) -> None:
    result = run_cli("download", links, "-o", tmp_path / "out", "--mirror", "ftp://host/x")
    assert result.returncode == 2
    assert "--mirror needs an http(s) URL" in result.output and "Traceback" not in result.output
