"""``sa1b index OUT | head``: a reader that goes away early ends the command quietly,
with git's exit code for it (141, what a shell reports for a process SIGPIPE ended)."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from sa1b.cdn.server import CDNServer
from sa1b.cdn.synth import ShardInfo

from .conftest import run_cli, sa1b_command

EXIT_OUTPUT_CLOSED = 141


@pytest.fixture(scope="module")
def extracted(tmp_path_factory: pytest.TempPathFactory, dataset: list[ShardInfo]) -> Path:
    out = tmp_path_factory.mktemp("closed") / "out"
    links = out.parent / "links.tsv"
    with CDNServer(root=dataset[0].path.parent) as cdn:
        cdn.write_links_file(links)
        result = run_cli("download", links, "-o", out, "--layout", "split")
    assert result.returncode == 0, result.output
    return out


@pytest.mark.parametrize("command", ["index", "status"])
def test_a_pipe_closed_before_the_first_line_ends_the_command_quietly(
    command: str, extracted: Path
) -> None:
    reader, writer = os.pipe()
    os.close(reader)  # the reader has gone before a byte is written: every write fails
    try:
        done = subprocess.run(
            sa1b_command(command, extracted),
            stdout=writer,
            stderr=subprocess.PIPE,
            text=True,
            check=False,
        )
    finally:
        os.close(writer)
    assert done.returncode == EXIT_OUTPUT_CLOSED, done.stderr
    assert done.stderr == ""


@pytest.mark.parametrize("command", ["index", "status"])
def test_piped_into_head_the_command_prints_its_first_line_and_nothing_on_stderr(
    command: str, extracted: Path
) -> None:
    full = run_cli(command, extracted)
    assert full.returncode == 0, full.output
    line = " ".join(map(str, sa1b_command(command, extracted)))
    done = subprocess.run(
        ["bash", "-c", f"{line} | head -n 1; exit ${{PIPESTATUS[0]}}"],
        capture_output=True,
        check=False,
        text=True,
    )
    assert done.stdout == full.stdout.splitlines(keepends=True)[0]
    assert done.stderr == ""
    assert done.returncode in (0, EXIT_OUTPUT_CLOSED)  # 0: all of it fit in the pipe first
