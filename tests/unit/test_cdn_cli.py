"""``python -m sa1b.cdn``: argument parsing, ``make``, and ``serve`` in a real process."""

from __future__ import annotations

import argparse
import hashlib
import signal
import subprocess
import sys
import urllib.request
from pathlib import Path

import pytest

from sa1b.cdn.cli import _parser, main, parse_duration, parse_shards, parse_size


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("0", 0),
        ("512K", 512 * 1024),
        ("170M", 170 * 1024**2),
        ("170m", 170 * 1024**2),
        ("1G", 1024**3),
        ("1.5G", 3 * 1024**3 // 2),
        ("8MiB", 8 * 1024**2),
        ("8MB", 8 * 1024**2),
        ("123", 123),
    ],
)
def test_parse_size(text: str, value: int) -> None:
    assert parse_size(text) == value


@pytest.mark.parametrize(
    ("text", "value"),
    [("30d", 30 * 86400), ("12h", 43200), ("90m", 5400), ("45s", 45), ("7", 7), ("-1h", -3600)],
)
def test_parse_duration(text: str, value: int) -> None:
    assert parse_duration(text) == value


def test_parse_shards() -> None:
    assert parse_shards("0-5") == [0, 1, 2, 3, 4, 5]
    assert parse_shards("0,7,42") == [0, 7, 42]
    assert parse_shards("3-4,0,3") == [3, 4, 0]


@pytest.mark.parametrize("bad", ["", "5-2", "1000", "a", "1-", "-3"])
def test_parse_shards_rejects(bad: str) -> None:
    with pytest.raises(ValueError, match="shard"):
        parse_shards(bad)


@pytest.mark.parametrize("bad", ["", "12X", "M", "1.2.3K"])
def test_parse_size_rejects(bad: str) -> None:
    with pytest.raises(ValueError, match="size"):
        parse_size(bad)


def test_make_writes_shards_and_checksums(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    sums = tmp_path / "sums.md5"
    argv = ["make", "--dir", str(tmp_path / "d"), "--shards", "2,4", "--shard-size", "64K"]
    code = main([*argv, "--checksums-out", str(sums)])
    assert code == 0
    assert "3 files" in capsys.readouterr().out
    for line in sums.read_text().splitlines():
        digest, name = line.split("  ")
        assert hashlib.md5((tmp_path / "d" / name).read_bytes()).hexdigest() == digest
    assert sorted(p.name for p in (tmp_path / "d").glob("sa_*.tar")) == [
        "sa_000002.tar",
        "sa_000004.tar",
    ]


def test_make_counts_one_file_in_english(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["make", "--dir", str(tmp_path), "--shards", "3", "--shard-size", "64K"]
    assert main([*argv, "--no-extras"]) == 0
    assert capsys.readouterr().out.startswith("1 file, ")


@pytest.mark.parametrize("command", ["make", "serve"])
def test_every_option_is_explained(command: str) -> None:
    (commands,) = [a for a in _parser()._actions if isinstance(a, argparse._SubParsersAction)]
    for action in commands.choices[command]._actions:
        assert action.help and action.help != argparse.SUPPRESS, (command, action.dest)
    shown = subprocess.run(
        [sys.executable, "-m", "sa1b.cdn", command, "--help"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    assert f"usage: python -m sa1b.cdn {command}" in shown and "--shard-size SIZE" in shown
    assert command == "make" or "--expires-in DURATION" in shown


def test_usage_errors_return_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["make", "--dir", str(tmp_path), "--shard-size", "lots"]) == 2
    assert "not a size" in capsys.readouterr().err
    assert main(["frobnicate"]) == 2
    assert main(["make"]) == 2  # --dir is required


def test_serve_until_sigterm(tmp_path: Path) -> None:
    links = tmp_path / "links.txt"
    argv = [sys.executable, "-m", "sa1b.cdn", "serve", "--dir", str(tmp_path / "d")]
    argv += ["--shards", "1", "--shard-size", "64K", "--links-out", str(links)]
    with subprocess.Popen(argv, stdout=subprocess.PIPE, text=True) as proc:
        assert proc.stdout is not None
        lines = []
        for line in proc.stdout:
            lines.append(line)
            if line.startswith("press Ctrl-C"):
                break
        try:
            assert any(line.startswith("serving http://127.0.0.1:") for line in lines), lines
            assert f"links: {links}\n" in lines
            rows = links.read_text().splitlines()
            assert rows[0] == "file_name\tcdn_link"
            url = dict(row.split("\t") for row in rows[1:])["sa_000001.tar"]
            with urllib.request.urlopen(url, timeout=5) as response:
                body = response.read()
            assert body == (tmp_path / "d" / "sa_000001.tar").read_bytes()
        finally:
            proc.send_signal(signal.SIGTERM)
            assert proc.wait(timeout=10) == 0
