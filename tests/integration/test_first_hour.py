"""A new user's first hour: every mistake and every broken server gets one clear line,
a hint and the documented exit code; never a traceback; ``--help`` explains everything."""

from __future__ import annotations

import argparse
import importlib.metadata
import socket
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from sa1b.cdn.faults import Fault
from sa1b.cdn.server import CDNServer
from sa1b.cdn.synth import ShardInfo
from sa1b.cli import parser
from sa1b.cli.parser import build_parser
from tests.scripted import serve_ranges, serving

from .conftest import run_cli

REPO = Path(__file__).resolve().parents[2]


def _one_line_error(output: str) -> str:
    errors = [line for line in output.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, output
    assert "Traceback" not in output
    return errors[0]


# -- the output folder ------------------------------------------------------------------


@pytest.fixture
def read_only_folder(tmp_path: Path) -> Iterator[Path]:
    folder = tmp_path / "ro"
    folder.mkdir()
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "ro,size=1m", "tmpfs", str(folder)],
        check=False,
        capture_output=True,
    )
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a read-only tmpfs here: {mounted.stderr.decode().strip()}")
    try:
        yield folder
    finally:
        subprocess.run(["umount", str(folder)], check=False)


@pytest.mark.parametrize("inside", ["", "out"], ids=["the-folder-itself", "a-folder-in-it"])
def test_a_read_only_output_folder_is_one_line(
    read_only_folder: Path, links: Path, inside: str
) -> None:
    out = read_only_folder / inside
    result = run_cli("download", links, "-o", out)
    assert result.returncode == 2, result.output
    line = _one_line_error(result.output)
    assert str(out) in line and "Read-only file system" in line


@pytest.mark.parametrize("out", ["/proc/sa1b-out", "/etc/hostname/out"])
def test_an_impossible_output_folder_is_one_line(links: Path, out: str) -> None:
    result = run_cli("download", links, "-o", out)
    assert result.returncode == 2, result.output
    assert out in _one_line_error(result.output)


# -- servers that do not deliver ----------------------------------------------------------


def test_an_unreachable_server_is_explained_while_retrying_and_at_the_end(
    shards: list[ShardInfo], tmp_path: Path
) -> None:
    links = tmp_path / "links.txt"
    with socket.socket() as probe:  # bound and never listening: held, yet refusing
        probe.bind(("127.0.0.1", 0))
        links.write_text(f"http://127.0.0.1:{probe.getsockname()[1]}/{shards[0].name}\n")
        result = run_cli("download", links, "-o", tmp_path / "out", "--retries", "2")
    assert result.returncode == 1, result.output
    assert "cannot connect to 127.0.0.1" in result.output  # while it retries
    assert "hint: check the network" in result.output and "HTTPS_PROXY" in result.output
    assert "GiB" not in result.output  # no total invented for files never answered
    assert "Traceback" not in result.output


def test_a_404_says_what_to_do(
    cdn: CDNServer, links: Path, shards: list[ShardInfo], tmp_path: Path
) -> None:
    cdn.add_fault(shards[1].name, Fault("not_found", times=100))
    result = run_cli("download", "--no-extract", links, "-o", tmp_path / "out")
    assert result.returncode == 1, result.output
    assert "hint: nothing is at this link any more: fetch a fresh links file" in result.output


def test_a_shard_that_is_not_a_tar_is_reported_once_and_fetched_afresh_on_a_rerun(
    tmp_path: Path,
) -> None:
    page = b"<html>an error page saved by a proxy</html>" + bytes(20_000)
    with serving(default=serve_ranges(page)) as server:
        links = tmp_path / "links.txt"
        links.write_text(f"{server.base}/sa_000000.tar\n")
        first = run_cli("download", links, "-o", tmp_path / "out")
        before = len(server.requests)
        again = run_cli("download", links, "-o", tmp_path / "out")
        refetched = len(server.requests) > before
    assert first.returncode == 1, first.output
    reports = [line for line in first.output.splitlines() if "bad header at byte 0" in line]
    assert len(reports) == 2, first.output  # as it happens, and in the summary
    assert "hint: the bytes the server sent are not a whole tar" in first.output
    assert again.returncode == 1 and refetched, again.output


def test_a_checksum_mismatch_does_not_blame_the_server_for_changing(
    cdn: CDNServer, links: Path, shards: list[ShardInfo], tmp_path: Path
) -> None:
    sums = tmp_path / "sums.md5"
    sums.write_text(f"{'0' * 32}  {shards[0].name}\n")
    result = run_cli("download", "--no-extract", links, "-o", tmp_path / "out", "--checksums", sums)
    assert result.returncode == 1, result.output
    assert "its md5 does not match the checksums file; starting it over" in result.output
    assert "changed on the server" not in result.output


# -- ./run and the command line -------------------------------------------------------------


def test_run_keeps_paths_relative_to_the_users_folder(links: Path, tmp_path: Path) -> None:
    work = tmp_path / "elsewhere"
    work.mkdir()
    (work / "links.tsv").write_bytes(links.read_bytes())
    done = subprocess.run(
        [str(REPO / "run"), "links.tsv", "-o", "out", "--no-extract", "-q"],
        cwd=work,
        check=False,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert sorted(p.name for p in (work / "out" / "tars").iterdir()) == [
        f"sa_{i:06d}.tar" for i in range(3)
    ]
    assert not (REPO / "out").exists() and not (REPO / "SA-1B").exists()


def _subcommands() -> dict[str, argparse.ArgumentParser]:
    parser = build_parser()
    (commands,) = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    return {name: sub for name, sub in commands.choices.items() if name != "cdn"}


@pytest.mark.parametrize("command", ["download", "status", "verify", "index", "demo", "version"])
def test_every_option_has_help(command: str) -> None:
    parser = _subcommands()[command]
    for action in parser._actions:
        assert action.help and action.help != argparse.SUPPRESS, (command, action.dest)
    shown = run_cli(command, "--help")
    assert shown.returncode == 0 and f"usage: sa1b {command}" in shown.output


def test_cdn_help_is_the_stand_ins_own() -> None:
    shown = run_cli("cdn", "--help")
    assert shown.returncode == 0 and "make" in shown.output and "serve" in shown.output


@pytest.mark.parametrize("args", [["--version"], ["version"]])
def test_the_version_is_the_installed_packages(args: list[str]) -> None:
    shown = run_cli(*args)
    assert shown.returncode == 0, shown.output
    assert shown.stdout == f"sa1b {importlib.metadata.version('sa1b')}\n"


def test_help_lists_the_version_command_and_option() -> None:
    shown = run_cli("--help").stdout
    assert "version   print sa1b's version" in shown and "--version" in shown


def test_a_source_tree_never_installed_says_so_as_its_version(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def missing(name: str) -> str:
        raise importlib.metadata.PackageNotFoundError(name)

    monkeypatch.setattr(parser, "version", missing)
    assert parser.installed_version().startswith("unknown (not installed")


@pytest.mark.parametrize(
    ("args", "said"),
    [
        (["download", "links.txt", "--shard", "0"], "unrecognized arguments: --shard"),
        (["download", "links.txt", "--nope"], "unrecognized arguments: --nope"),
        (["status", "--nope"], "unrecognized arguments: --nope"),
    ],
)
def test_unknown_or_abbreviated_options_get_the_subcommands_usage(
    args: list[str], said: str
) -> None:
    result = run_cli(*args)
    assert result.returncode == 2
    assert f"usage: sa1b {args[0]}" in result.output and said in result.output
