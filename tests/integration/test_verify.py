"""``sa1b verify`` through the real CLI: a clean download passes, --deep included; each kind
of damage is found and named; --repair then download fetches only the damaged shards."""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path

import pytest

from sa1b.cdn.server import CDNServer
from sa1b.cdn.synth import ShardInfo

from .conftest import assert_extracted, assert_identical, run_cli


def _download(links: Path, out: Path, *args: str) -> None:
    result = run_cli("download", links, "-o", out, *args)
    assert result.returncode == 0, result.output


def test_a_clean_download_passes_even_deep(
    cdn: CDNServer, links: Path, shards: list[ShardInfo], tmp_path: Path
) -> None:
    out = tmp_path / "out"
    _download(links, out, "--keep-tars")
    checksums = tmp_path / "md5sums.txt"
    checksums.write_text("".join(f"{s.md5}  {s.name}\n" for s in shards))
    result = run_cli("verify", out, "--deep", "--checksums", checksums)
    assert result.returncode == 0, result.output
    assert "3 files: 3 ok, 0 with problems" in result.stdout
    assert "sa_000000.tar  ok   extracted (shard layout)" in result.stdout


def _truncate_tar(out: Path) -> None:
    tar = out / "tars" / "sa_000001.tar"
    with tar.open("r+b") as handle:
        handle.truncate(tar.stat().st_size - 5000)


def _flip_a_byte(out: Path) -> None:
    tar = out / "tars" / "sa_000001.tar"
    with tar.open("r+b") as handle:
        handle.seek(4 * 1024 * 1024)
        byte = handle.read(1)
        handle.seek(4 * 1024 * 1024)
        handle.write(bytes([byte[0] ^ 0xFF]))


def _first(out: Path, pattern: str) -> Path:
    return sorted((out / "sa_000001").glob(pattern))[0]


def _remove_a_member(out: Path) -> None:
    _first(out, "*.jpg").unlink()


def _remove_a_json(out: Path) -> None:
    _first(out, "*.json").unlink()


def _corrupt_a_json(out: Path) -> None:
    path = _first(out, "*.json")
    path.write_bytes(b"{" * path.stat().st_size)


def _change_an_area(out: Path) -> None:
    """One annotation's area, changed in place with as many digits (the size stays)."""
    path = _first(out, "*.json")
    text = path.read_text()
    match = re.search(r'"area": (\d+)', text)
    assert match is not None
    digits = match.group(1)
    other = str(int(digits) + 1 if not digits.startswith("9") else int(digits) - 1)
    path.write_text(text[: match.start(1)] + other + text[match.end(1) :])


DAMAGE: dict[str, tuple[Callable[[Path], None], tuple[str, ...], str]] = {
    "a truncated tar": (_truncate_tar, ("--no-extract",), "bytes, the server's"),
    "a flipped byte in a kept tar": (_flip_a_byte, ("--no-extract",), "the checksums file says"),
    "a missing member": (_remove_a_member, (), ".jpg is missing"),
    "a jpg without its json": (_remove_a_json, (), ".json is missing"),
    "a corrupt json": (_corrupt_a_json, (), "not JSON"),
    "a mask whose area disagrees": (_change_an_area, (), "the mask's area is"),
}


@pytest.mark.parametrize("damage", list(DAMAGE))
def test_damage_is_found_and_repair_fetches_only_that_shard(
    cdn: CDNServer, links: Path, shards: list[ShardInfo], tmp_path: Path, damage: str
) -> None:
    harm, download_args, message = DAMAGE[damage]
    out = tmp_path / "out"
    _download(links, out, *download_args)
    harm(out)
    checksums = tmp_path / "md5sums.txt"
    checksums.write_text("".join(f"{s.md5}  {s.name}\n" for s in shards))
    check = ("verify", out, "--deep", "--checksums", checksums)
    found = run_cli(*check)
    assert found.returncode == 1, found.output
    assert message in found.stdout, found.stdout
    assert "sa_000001.tar  BAD" in found.stdout and "sa_000000.tar  ok" in found.stdout

    repaired = run_cli(*check, "--repair")
    assert "marked to be fetched again: sa_000001.tar" in repaired.stdout, repaired.output
    before = cdn.bytes_sent_total
    _download(links, out, *download_args)
    # That shard, and only it (and the one byte the space check asked of it).
    assert cdn.bytes_sent_total - before == shards[1].size + 1
    assert run_cli(*check).returncode == 0
    if download_args:
        assert_identical(out, shards)
    else:
        assert_extracted(out, shards)
