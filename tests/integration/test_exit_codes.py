"""The README's table of exit codes, a test per row, through the real CLI: 0 all done,
1 some shards failed (every link expired counts as that), 2 usage or input error (a
folder with no sa1b state too), 130 interrupted."""

from __future__ import annotations

import signal
import sqlite3
import time
from pathlib import Path

import pytest

from sa1b.cdn.faults import Fault
from sa1b.cdn.server import CDNServer
from sa1b.cdn.synth import ShardInfo
from tests.waiting import wait_for

from .conftest import run_cli, start_cli


def test_0_every_selected_file_is_done(links: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    result = run_cli("download", links, "-o", out, "--no-extract", "--shards", "0")
    assert result.returncode == 0, result.output
    assert run_cli("status", out).returncode == 0
    assert run_cli("verify", out).returncode == 0


def test_1_some_shards_failed(cdn: CDNServer, links: Path, tmp_path: Path) -> None:
    cdn.add_fault("sa_000001.tar", Fault("not_found", times=10))
    out = tmp_path / "out"
    result = run_cli("download", links, "-o", out, "--no-extract")
    assert result.returncode == 1, result.output
    assert "2/3 files done" in result.output and "sa_000001.tar  failed" in result.output
    assert run_cli("status", out).returncode == 1


def test_1_every_link_expired_is_shards_failed_with_what_to_do(
    cdn: CDNServer, tmp_path: Path
) -> None:
    stale = tmp_path / "stale.tsv"
    cdn.write_links_file(stale, expires_at=int(time.time()) - 60)
    result = run_cli("download", stale, "-o", tmp_path / "out", "--no-extract")
    assert result.returncode == 1, result.output
    error, hint = result.stderr.strip().splitlines()[-2:]
    assert error.startswith("error: all 3 links still needed have expired (sa_000000.tar")
    assert "download a fresh links file" in hint
    assert cdn.bytes_sent_total == 0


@pytest.mark.parametrize("command", ["status", "verify", "index"])
@pytest.mark.parametrize("made", [False, True], ids=["missing", "not-sa1b"])
def test_2_a_folder_with_no_sa1b_state(command: str, made: bool, tmp_path: Path) -> None:
    folder = tmp_path / "SA-1B"
    if made:
        folder.mkdir()
    result = run_cli(command, folder)
    assert result.returncode == 2, result.output
    what = "no sa1b state here" if made else "no such folder"
    assert result.stderr.startswith(f"error: {folder}: {what}\n"), result.stderr
    assert "Traceback" not in result.output


@pytest.mark.parametrize("command", ["download", "status"])
def test_2_a_folder_whose_state_a_newer_sa1b_wrote(
    command: str, links: Path, tmp_path: Path
) -> None:
    """Refused, read or written never: its records may mean what this version does not know."""
    out = tmp_path / "out"
    assert run_cli("download", links, "-o", out, "--no-extract", "--shards", "0").returncode == 0
    database = out / ".sa1b" / "state.db"
    with sqlite3.connect(database) as db:
        db.execute("UPDATE meta SET value = '99' WHERE key = 'schema'")
    before = _records(database)
    arguments = [links, "-o", out, "--no-extract"] if command == "download" else [out]
    result = run_cli(command, *arguments)
    assert result.returncode == 2, result.output
    assert f"error: {database}: written by a newer sa1b (store version 99" in result.stderr
    assert "upgrade sa1b" in result.stderr and "Traceback" not in result.stderr
    assert _records(database) == before
    assert not (out / "tars" / "sa_000001.tar").exists()


@pytest.mark.parametrize(
    "arguments",
    [["download", "--connections", "0"], ["frobnicate"], ["download", "nope.tsv"]],
    ids=["bad-option", "no-such-command", "no-links-file"],
)
def test_2_usage_or_input_error(arguments: list[str], tmp_path: Path) -> None:
    result = run_cli(*arguments, "-o", tmp_path / "out")
    assert result.returncode == 2, result.output
    assert "Traceback" not in result.output


def test_130_interrupted(slow_cdn: CDNServer, shards: list[ShardInfo], tmp_path: Path) -> None:
    links = tmp_path / "links.tsv"
    slow_cdn.write_links_file(links)
    proc = start_cli("download", links, "-o", tmp_path / "out", "--no-extract")
    wait_for(
        lambda: slow_cdn.bytes_sent_total >= 1024 * 1024,
        timeout=60,
        message="the first MiB sent",
        process=proc,
    )
    proc.send_signal(signal.SIGINT)
    _, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 130, stderr
    assert "interrupted: progress is saved; run the same command to resume" in stderr


def _records(database: Path) -> list[str]:
    with sqlite3.connect(database) as db:
        return list(db.iterdump())
