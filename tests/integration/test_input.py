"""Bad input: a clear one-line error naming the file and line, exit code 2, nothing lost."""

from __future__ import annotations

from pathlib import Path

import pytest

from sa1b.cdn.server import CDNServer
from sa1b.cdn.synth import ShardInfo

from .conftest import assert_identical, run_cli

URL = "https://scontent.xx.fbcdn.net/m1/v/t6/An_x.tar?_nc_gid&ccb=10-5&oh=00_abc&oe=7FFFFFFF"

BAD_FILES = {
    "traversal": (f"file_name\tcdn_link\n../evil.tar\t{URL}\n", ":2:", "unsafe file name"),
    "absolute": (f"/etc/passwd\t{URL}\n", ":1:", "unsafe file name"),
    "hidden": (f"sa_000001.tar\t{URL}\n.bashrc\t{URL}\n", ":2:", "unsafe file name"),
    "duplicate": (
        f"file_name\tcdn_link\nsa_000001.tar\t{URL}\nsa_000001.tar\t{URL}\n",
        ":3:",
        "duplicate file name",
    ),
    "not-a-url": ("file_name\tcdn_link\nsa_000001.tar\tftp://x/y\n", ":2:", "not an http"),
    "own-folder-name": (f"tars\t{URL}\n", ":1:", "a folder sa1b makes"),
    "three-fields": (f"sa_000001.tar\t{URL}\textra\n", ":1:", "found 3 fields"),
    "empty": ("file_name\tcdn_link\n", "links", "the file has no links"),
    "html-page": ("<!DOCTYPE html>\n<html><body>SA-1B</body></html>\n", "links", "web page"),
    "url-broken-in-two": (
        f"sa_000001.tar\t{URL.partition('&oh=')[0]}\n&oh=00_abc&oe=7FFFFFFF\n",
        ":2:",
        "end of the previous line's URL",
    ),
    "signature-in-a-bad-line": ("sa_000001.tar\tftp://x/y?oh=00_abc\n", ":1:", "not an http"),
}


@pytest.mark.parametrize(("text", "where", "what"), BAD_FILES.values(), ids=BAD_FILES.keys())
def test_bad_links_file_is_refused_with_file_and_line(
    text: str, where: str, what: str, tmp_path: Path
) -> None:
    links = tmp_path / "links.txt"
    links.write_text(text)
    result = run_cli("download", "--no-extract", links, "-o", tmp_path / "out")
    assert result.returncode == 2, result.output
    first = result.stderr.strip().splitlines()[0]
    assert str(links) in first and where in first and what in first, first
    assert "Traceback" not in result.output
    assert "00_abc" not in result.output  # the signature is never shown


def test_binary_links_file(tmp_path: Path) -> None:
    links = tmp_path / "links.txt"
    links.write_bytes(b"\xff\xfe\x00garbage")
    result = run_cli("download", "--no-extract", links, "-o", tmp_path / "out")
    assert result.returncode == 2
    assert "not UTF-8" in result.output


def test_missing_links_file(tmp_path: Path) -> None:
    result = run_cli("download", "--no-extract", tmp_path / "nope.txt", "-o", tmp_path / "out")
    assert result.returncode == 2
    assert "nope.txt" in result.output and "cannot read" in result.output


@pytest.mark.parametrize("spec", ["5-2", "1000", "abc", "1,,2", "sa_00001x"])
def test_bad_shard_spec(spec: str, links: Path, tmp_path: Path) -> None:
    result = run_cli("download", "--no-extract", links, "-o", tmp_path / "out", "--shards", spec)
    assert result.returncode == 2
    assert "--shards" in result.output


def test_shard_missing_from_links_file(links: Path, tmp_path: Path) -> None:
    result = run_cli("download", "--no-extract", links, "-o", tmp_path / "out", "--shards", "0-5")
    assert result.returncode == 2
    assert "sa_000003" in result.output and "no row" in result.output


def test_bad_checksums_file(links: Path, tmp_path: Path) -> None:
    sums = tmp_path / "sums.txt"
    sums.write_text("d41d8cd98f00b204e9800998ecf8427e  sa_000000.tar\nnot a checksum line\n")
    result = run_cli("download", "--no-extract", links, "-o", tmp_path / "out", "--checksums", sums)
    assert result.returncode == 2
    assert f"{sums}:2" in result.output


@pytest.mark.parametrize("text", ["", "file_name\tcdn_link\n", "# my links\n\n"])
def test_a_links_file_without_links_says_what_one_holds(text: str, tmp_path: Path) -> None:
    links = tmp_path / "links.txt"
    links.write_text(text)
    result = run_cli("download", "--no-extract", links, "-o", tmp_path / "out")
    assert result.returncode == 2, result.output
    error, hint = result.stderr.strip().splitlines()
    assert error == f"error: {links}: the file has no links (it is empty, or holds only a " + (
        "header or comments)"
    )
    assert "line" not in error  # there is no line to fix
    assert "file_name<TAB>cdn_link" in hint and "Meta's SA-1B page" in hint


@pytest.mark.parametrize("below", [False, True], ids=["a-file", "below-a-file"])
def test_an_output_folder_that_is_a_file_is_named_as_one(
    below: bool, links: Path, tmp_path: Path
) -> None:
    taken = tmp_path / "notes.txt"
    taken.write_text("mine\n")
    out = taken / "out" if below else taken
    result = run_cli("download", "--no-extract", links, "-o", out)
    assert result.returncode == 2, result.output
    error, hint = result.stderr.strip().splitlines()[-2:]
    what = "is below a file" if below else "is a file"
    assert error == f"error: {out} {what}, not a folder"
    assert "writable" not in hint and "give -o a folder" in hint
    assert taken.read_text() == "mine\n"


def test_usage_error_exit_2(links: Path, tmp_path: Path) -> None:
    # A good links file and folder: the option alone is what is refused.
    result = run_cli(
        "download", "--no-extract", links, "-o", tmp_path / "out", "--connections", "0"
    )
    assert result.returncode == 2
    assert "--connections: expected a whole number >= 1, got '0'" in result.output
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("style", ["official", "crlf", "spaces", "noheader"])
def test_every_links_style_downloads(
    style: str, cdn: CDNServer, shards: list[ShardInfo], tmp_path: Path
) -> None:
    links = tmp_path / "links.txt"
    cdn.write_links_file(links, style=style)  # type: ignore[arg-type]
    out = tmp_path / "out"
    result = run_cli("download", "--no-extract", links, "-o", out)
    assert result.returncode == 0, result.output
    assert_identical(out, shards)


def test_bad_input_loses_nothing_already_downloaded(
    links: Path, shards: list[ShardInfo], tmp_path: Path
) -> None:
    out = tmp_path / "out"
    assert run_cli("download", "--no-extract", links, "-o", out).returncode == 0
    bad = tmp_path / "bad.txt"
    bad.write_text(f"../x.tar\t{URL}\n")
    assert run_cli("download", "--no-extract", bad, "-o", out).returncode == 2
    assert_identical(out, shards)


@pytest.mark.parametrize("command", ["download", "plan"])
def test_no_bandwidth_is_one_line_not_a_traceback(
    command: str, links: Path, tmp_path: Path
) -> None:
    result = run_cli(command, links, "-o", tmp_path / "out", "--max-rate", "0")
    assert result.returncode == 2
    assert "--max-rate: expected bytes/s above 0, got 0" in result.output
    assert "Traceback" not in result.output
    assert not (tmp_path / "out").exists()
