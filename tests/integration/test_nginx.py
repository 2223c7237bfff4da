"""Against a real nginx, over HTTP and over HTTPS (a private CA, HTTP/2 offered): URL lists,
ranges, keep-alive, extraction, SIGKILL then resume."""

from __future__ import annotations

import random
import signal
from pathlib import Path

import pytest

from harness.certs import CertificatePaths
from harness.nginx import NginxServer
from sa1b.cdn.synth import ShardInfo
from tests.waiting import wait_for

from .conftest import assert_extracted, assert_identical, run_cli, start_cli

MiB = 1024 * 1024


def _url_list(nginx: NginxServer, shards: list[ShardInfo], path: Path) -> Path:
    path.write_text("".join(nginx.url_for(s.name) + "\n" for s in shards))
    return path


def test_download_from_nginx_url_list(
    nginx: NginxServer, shards: list[ShardInfo], tmp_path: Path
) -> None:
    links = _url_list(nginx, shards, tmp_path / "urls.txt")
    out = tmp_path / "out"
    result = run_cli("download", "--no-extract", links, "-o", out)
    assert result.returncode == 0, result.output
    assert_identical(out, shards)


@pytest.mark.parametrize("scheme", ["http", "https"])
def test_sigkill_then_resume_against_nginx(
    scheme: str,
    dataset: list[ShardInfo],
    shards: list[ShardInfo],
    certificates: CertificatePaths,
    tmp_path: Path,
) -> None:
    https = scheme == "https"
    tls = (certificates.certificate, certificates.key) if https else None
    args = ("--ca-bundle", str(certificates.ca)) if https else ("--connections", "6")
    root = dataset[0].path.parent
    with NginxServer(root=root, limit_rate="2m", workdir=tmp_path / "ng", tls=tls) as ng:
        links = _url_list(ng, shards, tmp_path / "urls.txt")
        out = tmp_path / "out"
        total = sum(s.size for s in shards)
        proc = start_cli("download", "--no-extract", links, "-o", out, *args)
        wait_for(
            lambda: ng.bytes_sent() >= total // 2,
            timeout=60,
            message="half the bytes sent",
            process=proc,
        )
        proc.send_signal(signal.SIGKILL)
        proc.communicate()
        result = run_cli("download", "--no-extract", links, "-o", out, *args)
        assert result.returncode == 0, result.output
        assert_identical(out, shards)
        served = ng.bytes_sent()
        # What was in flight at the kill (socket buffers, unwritten blocks) is lost, no more:
        # over TLS little is buffered per connection; over plain HTTP a loopback socket
        # buffers up to a few MB for each of the 6 connections.
        bound = total * 1.1 if https else total * 1.05 + 6 * 1536 * 1024
        assert served <= bound, (served, total, ng.log_entries())


def test_missing_file_on_nginx_is_a_404_failure(
    nginx: NginxServer, shards: list[ShardInfo], tmp_path: Path
) -> None:
    links = tmp_path / "urls.txt"
    links.write_text(nginx.url_for(shards[0].name) + "\n" + nginx.url_for("sa_000999.tar") + "\n")
    out = tmp_path / "out"
    result = run_cli("download", "--no-extract", links, "-o", out)
    assert result.returncode == 1
    assert "sa_000999.tar" in result.output and "404" in result.output
    assert_identical(out, shards[:1])


def test_https_from_nginx_with_http2_offered_downloads_and_extracts(
    dataset: list[ShardInfo],
    shards: list[ShardInfo],
    certificates: CertificatePaths,
    tmp_path: Path,
) -> None:
    tls = (certificates.certificate, certificates.key)
    root = dataset[0].path.parent
    with NginxServer(root=root, workdir=tmp_path / "ng", tls=tls, http2=True) as ng:
        assert ng.base_url.startswith("https://")
        links = _url_list(ng, shards, tmp_path / "urls.txt")
        out = tmp_path / "out"
        result = run_cli("download", links, "-o", out, "--ca-bundle", certificates.ca)
        assert result.returncode == 0, result.output
        assert_extracted(out, shards)
        assert all(entry.status == 206 for entry in ng.log_entries())


def test_https_many_files_are_served_once(certificates: CertificatePaths, tmp_path: Path) -> None:
    """Files split over 16 connections, 4 files at once: nginx sends every byte once (a
    steal splits what is not yet requested; cutting a request in flight threw away what
    nginx had sent on it: 1.35x the data for 1000 files of 4.3 MB). A small file stays on
    one connection: one request for all of it (its size is known from the space check),
    or two where a fresh connection's first request is capped at 4 MiB."""
    root = tmp_path / "files"
    root.mkdir()
    rng = random.Random(17)
    small = {f"sa_{i:06d}.tar": 4 * MiB + rng.randrange(64 * 1024, 512 * 1024) for i in range(12)}
    sizes = {**small, "sa_000100.tar": 40 * MiB + 4321, "sa_000101.tar": 24 * MiB}
    names = sorted(sizes)
    rng.shuffle(names)  # the large files somewhere among the small ones
    for name in names:
        (root / name).write_bytes(rng.randbytes(sizes[name]))
    tls = (certificates.certificate, certificates.key)
    with NginxServer(root=root, workdir=tmp_path / "ng", tls=tls) as ng:
        links = tmp_path / "urls.txt"
        links.write_text("".join(ng.url_for(name) + "\n" for name in names))
        out = tmp_path / "out"
        args = ("--connections", "16", "--files", "4", "--ca-bundle", certificates.ca)
        result = run_cli("download", "--no-extract", links, "-o", out, *args)
        assert result.returncode == 0, result.output
        for name in names:
            assert (out / "tars" / name).read_bytes() == (root / name).read_bytes(), name
        # (Before it starts, a run asks each file's size with a one-byte request.)
        fetches = [entry for entry in ng.log_entries() if entry.range != "bytes=0-0"]
        assert sum(entry.body_bytes_sent for entry in fetches) == sum(sizes.values()), fetches
        for name in small:
            asked = [entry.range for entry in fetches if entry.uri == f"/{name}"]
            assert asked[0].startswith("bytes=0-") and len(asked) <= 2, asked
