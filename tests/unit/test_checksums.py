"""Checksums files: md5sum / sha256sum output, bad lines named by file:line."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from sa1b.checksums import Digest, parse_checksums, read_checksums
from sa1b.errors import ChecksumsFileError, InputError

MD5 = hashlib.md5(b"a").hexdigest()
SHA1 = hashlib.sha1(b"a").hexdigest()
SHA256 = hashlib.sha256(b"a").hexdigest()


def test_md5sum_format() -> None:
    text = f"{MD5}  sa_000000.tar\n{hashlib.md5(b'b').hexdigest()}  sa_000001.tar\n"
    assert parse_checksums(text) == {
        "sa_000000.tar": Digest("md5", MD5),
        "sa_000001.tar": Digest("md5", hashlib.md5(b"b").hexdigest()),
    }


def test_sha256sum_binary_marker() -> None:
    assert parse_checksums(f"{SHA256} *sa_000123.tar") == {
        "sa_000123.tar": Digest("sha256", SHA256)
    }


def test_star_after_two_spaces_is_part_of_the_name() -> None:
    # md5sum prints "<hex>  *x" for a file literally named "*x" (text mode).
    assert parse_checksums(f"{MD5}  *a.tar") == {"*a.tar": Digest("md5", MD5)}


def test_sha1_is_recognised_by_length() -> None:
    assert parse_checksums(f"{SHA1}  x.tar\n")["x.tar"].algorithm == "sha1"


@pytest.mark.parametrize(
    "line",
    [
        f"{MD5}  sa_000000.tar",
        f"{MD5} *sa_000000.tar",
        f"{MD5}  ./sa_000000.tar",
        f"{MD5} *./sa_000000.tar",
        f"{MD5.upper()}  sa_000000.tar",
        f"  {MD5}  sa_000000.tar  ",
        f"{MD5}  sa_000000.tar\r",
    ],
)
def test_line_variants(line: str) -> None:
    assert parse_checksums(line + "\n") == {"sa_000000.tar": Digest("md5", MD5)}


def test_digest_is_lowercased_and_usable_with_hashlib() -> None:
    digest = parse_checksums(f"{SHA256.upper()}  f\n")["f"]
    assert digest.hexdigest == SHA256
    assert hashlib.new(digest.algorithm, b"a").hexdigest() == digest.hexdigest


def test_crlf_blank_lines_and_comments() -> None:
    text = f"# md5 sums of SA-1B\r\n\r\n{MD5}  a.tar\r\n   \r\n# trailing\r\n{SHA256}  b.tar"
    assert parse_checksums(text) == {"a.tar": Digest("md5", MD5), "b.tar": Digest("sha256", SHA256)}


def test_empty_text_gives_no_digests() -> None:
    assert parse_checksums("") == {}


@pytest.mark.parametrize(
    ("text", "line"),
    [
        (f"{MD5} sa_000000.tar\n", 1),  # one space only
        (f"{MD5}\tsa_000000.tar\n", 1),
        (f"{MD5}\n", 1),
        (f"{MD5}  \n", 1),
        (f"{MD5[:-1]}  sa_000000.tar\n", 1),  # 31 digits
        (f"{MD5}0  sa_000000.tar\n", 1),  # 33 digits
        (f"{MD5[:-1]}g  sa_000000.tar\n", 1),
        (f"{MD5}  a.tar\n\n{MD5}  my file.tar\n", 3),
        (f"{MD5}  a.tar\nMD5 (sa_000000.tar) = {MD5}\n", 2),
        (f"# c\n{MD5}  a.tar\n{MD5}  b.tar\n  garbage\n", 4),
    ],
)
def test_bad_lines_name_file_and_line(text: str, line: int) -> None:
    with pytest.raises(ChecksumsFileError) as info:
        parse_checksums(text, source="sums.md5")
    assert str(info.value).startswith(f"sums.md5:{line}:")
    assert info.value.hint
    assert isinstance(info.value, InputError)


def test_read_checksums_from_disk(tmp_path: Path) -> None:
    path = tmp_path / "sa1b.md5"
    path.write_text(f"{MD5}  sa_000000.tar\n")
    assert read_checksums(path) == {"sa_000000.tar": Digest("md5", MD5)}


def test_read_checksums_errors_name_the_path(tmp_path: Path) -> None:
    path = tmp_path / "sums.txt"
    path.write_text(f"{MD5}  a.tar\nnope\n")
    with pytest.raises(ChecksumsFileError) as info:
        read_checksums(path)
    assert f"{path}:2" in str(info.value)


@pytest.mark.parametrize("content", [None, b"\xff\xfe\x80"])
def test_read_checksums_unreadable(tmp_path: Path, content: bytes | None) -> None:
    path = tmp_path / "sums.txt"
    if content is not None:
        path.write_bytes(content)
    with pytest.raises(ChecksumsFileError) as info:
        read_checksums(path)
    assert str(path) in str(info.value)
