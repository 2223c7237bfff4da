"""Against a real nginx: plain URL lists, ranges, keep-alive, SIGKILL then resume."""

from __future__ import annotations

import signal
import subprocess
import time
from pathlib import Path

from sa1b.cdn.nginx import NginxServer
from sa1b.cdn.synth import ShardInfo

from .conftest import assert_identical, run_cli, sa1b_command

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


def test_sigkill_then_resume_against_nginx(
    dataset: list[ShardInfo], shards: list[ShardInfo], tmp_path: Path
) -> None:
    with NginxServer(root=dataset[0].path.parent, limit_rate="2m", workdir=tmp_path / "ng") as ng:
        links = _url_list(ng, shards, tmp_path / "urls.txt")
        out = tmp_path / "out"
        total = sum(s.size for s in shards)
        proc = subprocess.Popen(
            sa1b_command("download", "--no-extract", links, "-o", out, "--connections", "6"),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        deadline = time.monotonic() + 60
        while ng.bytes_sent() < total // 2:
            assert proc.poll() is None and time.monotonic() < deadline
            time.sleep(0.05)
        proc.send_signal(signal.SIGKILL)
        proc.communicate()
        result = run_cli("download", "--no-extract", links, "-o", out, "--connections", "6")
        assert result.returncode == 0, result.output
        assert_identical(out, shards)
        served = ng.bytes_sent()
        assert served <= total * 1.05 + 6 * 1536 * 1024, (served, total, ng.log_entries())


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
