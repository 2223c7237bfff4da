"""Extraction while downloading, through the real CLI: layouts, resume, integrity."""

from __future__ import annotations

import signal
from pathlib import Path

import pytest

from sa1b.cdn.faults import Fault
from sa1b.cdn.server import CDNServer
from sa1b.cdn.synth import ShardInfo, make_dataset
from sa1b.layout import LAYOUTS
from sa1b.store.filesystems import whole_sync_suffices
from tests.waiting import wait_for

from .conftest import (
    assert_extracted,
    assert_identical,
    extracted_contents,
    member_bytes,
    run_cli,
    start_cli,
)

MiB = 1024 * 1024


def tree(out: Path) -> set[str]:
    """Every file under ``out`` except the state folder."""
    return {
        str(p.relative_to(out))
        for p in out.rglob("*")
        if p.is_file() and ".sa1b" not in p.relative_to(out).parts
    }


def expected_tree(shards: list[ShardInfo], layout: str) -> set[str]:
    root = Path("/")
    return {
        str(path.relative_to(root)) for s in shards for path in extracted_contents(root, s, layout)
    }


@pytest.mark.parametrize("layout", LAYOUTS)
def test_each_layout_holds_every_member_byte_for_byte(
    layout: str, links: Path, shards: list[ShardInfo], tmp_path: Path
) -> None:
    out = tmp_path / "out"
    result = run_cli("download", links, "-o", out, "--layout", layout)
    assert result.returncode == 0, result.output
    assert_extracted(out, shards, layout)
    assert tree(out) == expected_tree(shards, layout)  # no tars, nothing stray


@pytest.mark.parametrize("style", ["dotslash", "folder"])
def test_member_names_are_normalised(style: str, tmp_path: Path) -> None:
    source = tmp_path / "src"
    made = make_dataset(
        source, shard_indices=[7], shard_size=3 * MiB, seed=3, extras=False, member_style=style
    )  # type: ignore[arg-type]
    with CDNServer(root=source) as server:
        links = tmp_path / "links.tsv"
        server.write_links_file(links)
        out = tmp_path / "out"
        result = run_cli("download", links, "-o", out)
    assert result.returncode == 0, result.output
    assert_extracted(out, made)
    assert tree(out) == expected_tree(made, "shard")


def test_keep_tars_keeps_both(links: Path, shards: list[ShardInfo], tmp_path: Path) -> None:
    out = tmp_path / "out"
    result = run_cli("download", links, "-o", out, "--keep-tars")
    assert result.returncode == 0, result.output
    assert_identical(out, shards)
    for shard in shards:
        for name, data in member_bytes(shard).items():
            assert (out / shard.name.removesuffix(".tar") / name).read_bytes() == data


def test_extracted_shard_is_not_fetched_again_without_its_tar(
    cdn: CDNServer, links: Path, shards: list[ShardInfo], tmp_path: Path
) -> None:
    out = tmp_path / "out"
    assert run_cli("download", links, "-o", out).returncode == 0
    cdn.clear_requests()
    again = run_cli("download", links, "-o", out)
    assert again.returncode == 0, again.output
    assert cdn.bytes_sent_total == 0
    assert_extracted(out, shards)
    status = run_cli("status", out)
    assert "3 done" in status.output


def test_tars_from_an_earlier_no_extract_run_are_extracted_without_fetching(
    cdn: CDNServer, links: Path, shards: list[ShardInfo], tmp_path: Path
) -> None:
    out = tmp_path / "out"
    assert run_cli("download", "--no-extract", links, "-o", out).returncode == 0
    cdn.clear_requests()
    result = run_cli("download", links, "-o", out)
    assert result.returncode == 0, result.output
    assert cdn.bytes_sent_total == 0
    assert_extracted(out, shards)


def test_extraction_after_ranged_download_with_faults(
    cdn: CDNServer, links: Path, shards: list[ShardInfo], tmp_path: Path
) -> None:
    cdn.add_fault("*", Fault("cut", after=MiB + 77, times=3, mode="rst"))
    cdn.add_fault("sa_000001.tar", Fault("ignore_range"))
    cdn.add_fault("sa_000002.tar", Fault("status", status=503, times=2))
    out = tmp_path / "out"
    result = run_cli("download", links, "-o", out, "--connections", "6")
    assert result.returncode == 0, result.output
    assert cdn.pending_faults() == 0
    assert_extracted(out, shards)


def test_checksums_are_computed_in_the_extraction_pass(
    cdn: CDNServer, links: Path, shards: list[ShardInfo], tmp_path: Path
) -> None:
    sums = tmp_path / "sha256sums.txt"
    sums.write_text("".join(f"{s.sha256}  {s.name}\n" for s in shards))
    out = tmp_path / "out"
    result = run_cli("download", links, "-o", out, "--checksums", sums)
    assert result.returncode == 0, result.output
    assert_extracted(out, shards)


def test_a_shard_extracted_from_a_partial_tar_turns_the_run_to_an_fsync_each(
    links: Path, shards: list[ShardInfo], tmp_path: Path
) -> None:
    """Streamed shards sync their staged members by one syncfs a checkpoint; a shard with
    a checksum is extracted from a partial tar, which a syncfs would write out for
    nothing (it is deleted once extracted): from then on, an fsync each."""
    if not whole_sync_suffices(tmp_path):
        pytest.skip(f"{tmp_path}: syncfs is not as strict as fsync here (an fsync each anyway)")
    sums = tmp_path / "sha256sums.txt"
    sums.write_text(f"{shards[0].sha256}  {shards[0].name}\n")
    out, log = tmp_path / "out", tmp_path / "run.log"
    result = run_cli(
        "download", links, "-o", out, "--checksums", sums, "--log-file", log,
        "--log-level", "debug",
    )  # fmt: skip
    assert result.returncode == 0, result.output
    assert_extracted(out, shards)
    said = log.read_text()
    assert "staged members are synced by one syncfs a checkpoint" in said
    assert (
        f"{shards[0].name} is extracted from a partial tar: staged members are synced by an "
        "fsync each from now on"
    ) in said


def test_wrong_checksum_leaves_the_shard_unextracted(
    cdn: CDNServer, links: Path, shards: list[ShardInfo], tmp_path: Path
) -> None:
    sums = tmp_path / "md5sums.txt"
    sums.write_text(f"{'1' * 32}  sa_000001.tar\n")
    out = tmp_path / "out"
    result = run_cli("download", links, "-o", out, "--checksums", sums)
    assert result.returncode == 1
    assert "sa_000001.tar" in result.output and "does not match" in result.output
    assert not (out / "sa_000001").exists()
    assert_extracted(out, [shards[0], shards[2]])
    assert cdn.bytes_sent("sa_000001.tar") >= 2 * shards[1].size


@pytest.mark.parametrize("layout", ["shard", "flat"])
def test_sigkill_during_extraction_then_resume(
    layout: str, slow_cdn: CDNServer, shards: list[ShardInfo], tmp_path: Path
) -> None:
    links = tmp_path / "links.tsv"
    slow_cdn.write_links_file(links)
    out = tmp_path / "out"
    args = ("download", links, "-o", out, "--layout", layout, "--connections", "3")
    proc = start_cli(*args)
    staging = out / ".sa1b" / "staging"
    published = [next(iter(extracted_contents(out, s, layout))) for s in shards]
    # Each shard is one part here: its members are staged once the part is whole, and
    # published a moment later. Kill once members are staged, or a shard is published
    # (the others are then still arriving or staged): mid-way either way.
    wait_for(
        lambda: (
            any(p.is_file() for p in staging.rglob("*"))
            or any(path.is_file() for path in published)
        ),
        timeout=60,
        message="members being extracted",
        process=proc,
    )
    proc.send_signal(signal.SIGKILL)
    proc.communicate()
    result = run_cli("download", links, "-o", out, "--layout", layout)
    assert result.returncode == 0, result.output
    assert_extracted(out, shards, layout)
    assert tree(out) == expected_tree(shards, layout)
    # A shard cut short is fetched again from its start (it is one part): what a rerun
    # keeps of a bigger shard is in test_half_disk.py.
    total = sum(s.size for s in shards)
    assert slow_cdn.bytes_sent_total <= 2 * total


def test_status_reports_extracted_shards(links: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    assert run_cli("download", links, "-o", out, "--shards", "1").returncode == 0
    status = run_cli("status", out)
    assert "sa_000001.tar" in status.output and "extracted" in status.output


def test_a_later_run_with_another_layout_says_so_and_fetches_nothing(
    cdn: CDNServer, links: Path, shards: list[ShardInfo], tmp_path: Path
) -> None:
    out = tmp_path / "out"
    assert run_cli("download", links, "-o", out).returncode == 0
    cdn.clear_requests()
    result = run_cli("download", links, "-o", out, "--layout", "split")
    assert result.returncode == 0, result.output
    assert "extracted in the shard layout earlier" in result.output
    assert cdn.bytes_sent_total == 0
    assert_extracted(out, shards, "shard")
