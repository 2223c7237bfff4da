"""``sa1b verify`` through the real CLI: a clean download passes, --deep included; each kind
of damage is found and named; --repair then download fetches only the damaged shards."""

from __future__ import annotations

import re
import tarfile
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


def test_a_clean_wds_download_passes_even_deep(
    cdn: CDNServer, links: Path, shards: list[ShardInfo], tmp_path: Path
) -> None:
    out = tmp_path / "out"
    _download(links, out, *WDS)
    result = run_cli("verify", out, "--deep")
    assert result.returncode == 0, result.output
    assert "3 files: 3 ok, 0 with problems" in result.stdout
    assert "sa_000000.tar  ok   extracted (wds layout)" in result.stdout


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


def _wds_tar(out: Path) -> Path:
    return out / "wds" / "sa_000001.tar"


def _first_json(tar: Path) -> tarfile.TarInfo:
    """The first json member of a wds tar, as Python's tarfile reads it."""
    with tarfile.open(tar) as archive:
        return next(m for m in archive.getmembers() if m.name.endswith(".json"))


def _flip(path: Path, offset: int) -> None:
    with path.open("r+b") as handle:
        handle.seek(offset)
        byte = handle.read(1)
        handle.seek(offset)
        handle.write(bytes([byte[0] ^ 0xFF]))


def _flip_a_byte_in_a_wds_json(out: Path) -> None:
    _flip(_wds_tar(out), _first_json(_wds_tar(out)).offset_data)


def _flip_a_byte_in_a_wds_header(out: Path) -> None:
    _flip(_wds_tar(out), _first_json(_wds_tar(out)).offset + 5)  # in the member's name


def _truncate_a_wds_tar(out: Path) -> None:
    with _wds_tar(out).open("r+b") as handle:
        handle.truncate(_wds_tar(out).stat().st_size - 5000)


def _remove_a_wds_tar(out: Path) -> None:
    _wds_tar(out).unlink()


WDS = ("--layout", "wds")
FIRST_JSON = "wds/sa_000001.tar/sa_100001.json"
DAMAGE: dict[str, tuple[Callable[[Path], None], tuple[str, ...], str]] = {
    "a truncated tar": (_truncate_tar, ("--no-extract",), "bytes, the server's"),
    "a flipped byte in a kept tar": (_flip_a_byte, ("--no-extract",), "the checksums file says"),
    "a missing member": (_remove_a_member, (), ".jpg is missing"),
    "a jpg without its json": (_remove_a_json, (), ".json is missing"),
    "a corrupt json": (_corrupt_a_json, (), "not JSON"),
    "a mask whose area disagrees": (_change_an_area, (), "the mask's area is"),
    "a flipped byte in a wds json": (_flip_a_byte_in_a_wds_json, WDS, f"{FIRST_JSON}: not JSON"),
    "a flipped byte in a wds header": (
        _flip_a_byte_in_a_wds_header,
        WDS,
        f"{FIRST_JSON}: bad header at byte",
    ),
    "a truncated wds tar": (_truncate_a_wds_tar, WDS, "its members and end blocks make"),
    "a wds tar removed": (_remove_a_wds_tar, WDS, "wds/sa_000001.tar is missing"),
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
    if "--no-extract" in download_args:
        assert_identical(out, shards)
    else:
        assert_extracted(out, shards, "wds" if download_args == WDS else "shard")


def test_quiet_prints_only_the_problems_and_the_end(
    cdn: CDNServer, links: Path, tmp_path: Path
) -> None:
    out = tmp_path / "out"
    _download(links, out, "--no-extract")
    assert run_cli("verify", out, "-q").stdout == "3 files: 3 ok, 0 with problems\n"
    _truncate_tar(out)
    found = run_cli("verify", out, "--quiet")
    assert found.returncode == 1, found.output
    lines = found.stdout.splitlines()
    assert lines[0] == "sa_000001.tar  BAD  tar"
    assert all(line.startswith("    ") for line in lines[1:-1]) and len(lines) > 2  # problems
    assert lines[-1] == "3 files: 2 ok, 1 with problems"
    assert found.stderr == ""
