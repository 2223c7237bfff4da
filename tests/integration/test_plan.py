"""``sa1b plan`` through the real CLI against the CDN stand-in: exact sizes, what the
folder holds, expired links, and a disk verdict that a download then bears out (on a
small tmpfs of the test's own)."""

from __future__ import annotations

import json
import re
import time
from pathlib import Path

import pytest

from sa1b.cdn.faults import Fault
from sa1b.cdn.server import CDNServer
from sa1b.cdn.synth import ShardInfo

from .conftest import assert_extracted, run_cli, tmpfs


def _plan(links: Path, out: Path, *args: str) -> tuple[int, dict[str, object], str]:
    result = run_cli("plan", links, "-o", out, "--json", "--probe-seconds", "0.5", *args)
    return result.returncode, json.loads(result.stdout), result.stderr


def test_the_plan_knows_every_size_and_what_the_download_needs(
    cdn: CDNServer, links: Path, shards: list[ShardInfo], tmp_path: Path
) -> None:
    total = sum(shard.size for shard in shards)
    code, plan, errors = _plan(links, tmp_path / "out")
    assert code == 0, (plan, errors)
    assert plan["total_bytes"] == total == plan["to_fetch_bytes"]
    assert plan["needed_bytes"] == total  # extracted files, as they stream: no tar
    assert plan["needed_bytes_keeping_tars"] == 2 * total
    assert plan["fits"] is True and plan["problems"] == []
    assert isinstance(plan["speed_bytes_per_second"], float) and plan["speed_bytes_per_second"] > 0
    assert not (tmp_path / "out").exists()  # a plan downloads nothing
    code, tars, _ = _plan(links, tmp_path / "out", "--no-extract", "--files", "1")
    assert tars["needed_bytes"] == total
    text = run_cli("plan", links, "-o", tmp_path / "out", "--probe-seconds", "0")
    assert text.returncode == 0, text.output
    assert "server sizes    18.0 MiB (3 of 3 answered)" in text.stdout
    assert "ok: the download fits" in text.stdout


def test_the_plan_counts_what_the_folder_holds(
    cdn: CDNServer, links: Path, shards: list[ShardInfo], tmp_path: Path
) -> None:
    out = tmp_path / "out"
    first = run_cli("download", links, "-o", out, "--shards", "0", "--no-extract")
    assert first.returncode == 0, first.output
    code, plan, _ = _plan(links, out, "--no-extract")
    assert code == 0
    files = {f["name"]: f for f in plan["files"]}  # type: ignore[union-attr]
    assert files["sa_000000.tar"]["done"] is True
    assert plan["to_fetch_bytes"] == shards[1].size + shards[2].size
    assert plan["needed_bytes"] == shards[1].size + shards[2].size


def test_an_expired_link_is_a_problem_and_exit_1(
    cdn: CDNServer, shards: list[ShardInfo], tmp_path: Path
) -> None:
    links = tmp_path / "links.tsv"
    cdn.write_links_file(links, expires_at=1_000_000)  # long past
    result = run_cli("plan", links, "-o", tmp_path / "out", "--probe-seconds", "0")
    assert result.returncode == 1, result.output
    assert "problem: links have expired already: download a fresh links file" in result.stdout
    assert "sa_000000.tar: the signed link has expired" in result.stdout
    assert "oh=" not in result.output and "Traceback" not in result.output


def test_a_refusal_page_tells_the_plan_a_link_expired_before_its_time(
    cdn: CDNServer, links: Path, tmp_path: Path
) -> None:
    """The link's ``oe`` is a month away, but the server says the signature expired: the
    probe reads the refusal's page (as the download does) and believes it."""
    cdn.add_fault("sa_000001.tar", Fault("forbidden"))
    cdn.add_fault("sa_000002.tar", Fault("status", status=503))
    result = run_cli("plan", links, "-o", tmp_path / "out", "--probe-seconds", "0")
    assert result.returncode == 1, result.output
    assert "sa_000001.tar: the signed link has expired" in result.stdout
    assert "sa_000002.tar: server answered 503" in result.stdout
    assert "oh=" not in result.output and "Traceback" not in result.output


@pytest.mark.parametrize("case", [("8", 14, False), ("1", 22, True)], ids=["8-14M", "1-22M"])
def test_the_disk_verdict_is_what_the_download_then_meets(
    cdn: CDNServer, links: Path, tmp_path: Path, case: tuple[str, int, bool]
) -> None:
    files, mib, fits = case
    # Extracted as they stream, the shards need their files alone (18 MiB), however
    # many are in flight; 14 MiB must fail.
    with tmpfs(tmp_path / "disk", mib) as disk:
        code, plan, _ = _plan(links, disk / "out", "--files", files)
        assert plan["fits"] is fits and code == (0 if fits else 1), plan
        download = run_cli("download", links, "-o", disk / "out", "--files", files)
    assert (download.returncode == 0) is fits, download.output
    if not fits:
        assert "hint: free some space" in download.output and "Traceback" not in download.output


def test_a_download_that_cannot_fit_is_refused_before_it_starts(
    cdn: CDNServer, links: Path, tmp_path: Path
) -> None:
    with tmpfs(tmp_path / "disk", 12) as disk:  # the download needs 18 MiB at its worst
        refused = run_cli("download", links, "-o", disk / "out")
        asked = cdn.bytes_sent_total
        written = sorted(p.name for p in disk.rglob("*.part")) + [
            p.name for p in disk.rglob("*.tar")
        ]
        anyway = run_cli("download", links, "-o", disk / "anyway", "--no-space-check")
    assert refused.returncode == 2, refused.output
    assert "the download needs 18.0 MiB more and" in refused.output
    assert "sa1b plan shows the figures, --no-space-check runs anyway" in refused.output
    assert asked == 3, refused.output  # one byte of each file was asked for
    assert written == [], written  # nothing was allocated (the store alone was opened)
    assert anyway.returncode == 1, anyway.output  # it ran, and met the full disk
    assert "hint: free some space" in anyway.output and "the download needs" not in anyway.output


def test_extracting_with_no_tar_fits_where_a_tar_beside_its_files_does_not(
    cdn: CDNServer, links: Path, shards: list[ShardInfo], tmp_path: Path
) -> None:
    """18 MiB of shards on a 24 MiB disk: extracted as they stream, they fit; kept as
    tars beside their files (36 MiB), the plan refuses them before anything starts."""
    with tmpfs(tmp_path / "disk", 24) as disk:
        kept = run_cli("download", links, "-o", disk / "kept", "--keep-tars")
        assert kept.returncode == 2, kept.output
        assert "the download needs 36.0 MiB more and" in kept.output
        streamed = run_cli("download", links, "-o", disk / "out")
        assert streamed.returncode == 0, streamed.output
        assert_extracted(disk / "out", shards)
        assert not list((disk / "out").rglob("*.tar")) and not list(disk.rglob("*.part"))


def test_max_rate_below_the_probe_decides_the_links_verdict(
    cdn: CDNServer, shards: list[ShardInfo], tmp_path: Path
) -> None:
    """18 MiB with links for 2 minutes: the probe's loopback speed does it in time, the
    100 KiB/s cap (3 minutes) does not, and the report says which speed it took."""
    links = tmp_path / "links.tsv"
    cdn.write_links_file(links, expires_at=int(time.time()) + 120)
    free = run_cli("plan", links, "-o", tmp_path / "out", "--probe-seconds", "0.5")
    assert free.returncode == 0, free.output
    assert "with --max-rate" not in free.stdout and "ok: the download fits" in free.stdout
    capped = run_cli(
        "plan", links, "-o", tmp_path / "out", "--probe-seconds", "0.5", "--max-rate", "100K"
    )
    assert capped.returncode == 1, capped.output
    speeds = r"speed +[\d.]+ [KMG]iB/s \(probe\), 100\.0 KiB/s with --max-rate"
    assert re.search(speeds, capped.stdout), capped.stdout
    assert "problem: at 100.0 KiB/s (the --max-rate cap) the remaining 18.0 MiB" in capped.stdout
    code, plan, _ = _plan(links, tmp_path / "out", "--max-rate", "100K")
    assert code == 1 and plan["max_rate_bytes_per_second"] == 100 * 1024
    assert plan["eta_seconds"] == pytest.approx(18 * 1024 / 100)
