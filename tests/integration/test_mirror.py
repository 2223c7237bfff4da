"""Mirrors through the real CLI: the CDN stand-in's links expire, nginx serves the same
files as a mirror; kept bytes are continued only when they are sure to be the same file."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from harness.nginx import NginxServer
from sa1b.cdn.server import CDNServer
from sa1b.cdn.synth import ShardInfo
from tests.waiting import wait_for

from .conftest import assert_identical, run_cli, start_cli

MiB = 1024 * 1024


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
    shards: list[ShardInfo], nginx: NginxServer, tmp_path: Path, checked: bool
) -> None:
    """Links that expire mid-run: with checksums the mirror continues the kept bytes (the
    finished file is checked); without, another server's ETag differs and they are
    fetched again from the mirror, whole.

    The links expire once some of their bytes have come, whatever the time the run took
    to start: the stand-in's clock jumps past their expiry then (the run's own clock is
    the real one, so it starts with links it takes as valid)."""
    links, out = tmp_path / "links.tsv", tmp_path / "out"
    ahead = [0.0]  # how far the stand-in's clock runs ahead of the real one
    args: list[str | Path] = ["download", "--no-extract", links, "-o", out, "--connections", "2"]
    if checked:
        checksums = tmp_path / "md5sums.txt"
        checksums.write_text("".join(f"{s.md5}  {s.name}\n" for s in shards))
        args += ["--checksums", checksums]
    before = nginx.bytes_sent()
    with CDNServer(
        root=shards[0].path.parent,
        rate_per_connection=1.5 * MiB,
        clock=lambda: time.time() + ahead[0],
    ) as cdn:
        cdn.write_links_file(links, expires_at=int(time.time()) + 3600)
        process = start_cli(*args, "--mirror", nginx.base_url)
        wait_for(
            lambda: cdn.bytes_sent_total >= 3 * MiB,
            timeout=60,
            message="bytes from the links",
            process=process,
        )
        ahead[0] = 7200  # the links expire now
        output = "".join(process.communicate(timeout=120))
        from_links = cdn.bytes_sent_total
    assert process.returncode == 0, output
    assert_identical(out, shards)
    from_mirror = nginx.bytes_sent() - before
    total = sum(shard.size for shard in shards)
    assert 0 < from_links < total, from_links  # the links expired part way
    if checked:
        assert from_mirror <= total - from_links + 2 * MiB, (from_mirror, from_links)
    else:
        assert from_mirror >= total - from_links + MiB, (from_mirror, from_links)


def test_a_mirror_that_is_no_url_is_one_line_and_exit_2(links: Path, tmp_path: Path) -> None:
    result = run_cli("download", links, "-o", tmp_path / "out", "--mirror", "ftp://host/x")
    assert result.returncode == 2
    assert "--mirror needs an http(s) URL" in result.output and "Traceback" not in result.output
