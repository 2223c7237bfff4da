"""The library API, as a program embedding sa1b would use it."""

from __future__ import annotations

import logging
import subprocess
import sys
import time
from pathlib import Path

import pytest

import sa1b
from sa1b.cdn.faults import Fault
from sa1b.cdn.server import CDNServer
from sa1b.cdn.synth import ShardInfo
from sa1b.config import ExtractOptions
from sa1b.progress import FileOutcome, Snapshot

from .conftest import assert_identical, run_cli


class Recorder:
    def __init__(self) -> None:
        self.snapshots: list[Snapshot] = []
        self.outcomes: list[FileOutcome] = []

    def update(self, snapshot: Snapshot) -> None:
        self.snapshots.append(snapshot)

    def finished(self, outcome: FileOutcome) -> None:
        self.outcomes.append(outcome)


def test_download_api_reports_progress_and_outcomes(
    links: Path, shards: list[ShardInfo], tmp_path: Path
) -> None:
    selected = sa1b.select_links(sa1b.read_links(links), shards=[0, 2])
    recorder = Recorder()
    out = tmp_path / "out"
    result = sa1b.download(selected, sa1b.DownloadConfig(out=out, extract=None), listener=recorder)
    assert result.ok
    assert sorted(o.name for o in recorder.outcomes) == ["sa_000000.tar", "sa_000002.tar"]
    assert recorder.snapshots[-1].done_bytes == shards[0].size + shards[2].size
    assert result.fetched == shards[0].size + shards[2].size
    assert_identical(out, [shards[0], shards[2]])
    folder = sa1b.status(out)
    assert [f.status for f in folder.files] == ["done", "done"]


class StopAfterWarning(Recorder):
    def update(self, snapshot: Snapshot) -> None:
        super().update(snapshot)
        if snapshot.elapsed > 1.5:
            raise KeyboardInterrupt


def test_warns_when_the_run_will_outlive_its_links(
    cdn: CDNServer, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    links = tmp_path / "links.tsv"
    cdn.write_links_file(links, expires_at=int(time.time()) + 8)
    selected = sa1b.select_links(sa1b.read_links(links))
    config = sa1b.DownloadConfig(
        out=tmp_path / "out", max_rate=64 * 1024, expiry_check_after=1, extract=None
    )  # tars: each byte fetched is kept (extracting, a part of 8 MiB is the least kept)
    with caplog.at_level(logging.WARNING, logger="sa1b"), pytest.raises(KeyboardInterrupt):
        sa1b.download(selected, config, listener=StopAfterWarning())
    assert any("links start to expire" in r.getMessage() for r in caplog.records)
    # Interrupted, but the state was saved: the bytes fetched are recorded.
    folder = sa1b.status(tmp_path / "out")
    assert sum(f.done_bytes for f in folder.files) > 0


def test_the_library_prints_nothing_even_when_it_warns(
    cdn: CDNServer, shards: list[ShardInfo], tmp_path: Path
) -> None:
    """A program without logging set up: sa1b's warnings (here, a server that ignores
    Range) must not reach its stderr through logging's last-resort handler."""
    links = tmp_path / "links.tsv"
    cdn.write_links_file(links, names=[shards[0].name])
    cdn.add_fault(shards[0].name, Fault("ignore_range", times=100))
    program = (
        "import sys, sa1b\n"
        "from pathlib import Path\n"
        f"links = sa1b.select_links(sa1b.read_links({str(links)!r}))\n"
        f"config = sa1b.DownloadConfig(out=Path({str(tmp_path / 'out')!r}), extract=None)\n"
        "sys.exit(0 if sa1b.download(links, config).ok else 1)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", program], check=False, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout == "" and done.stderr == ""


def test_only_with_checksums_is_refused_as_the_command_line_refuses_it(
    cdn: CDNServer, links: Path, shards: list[ShardInfo], tmp_path: Path
) -> None:
    """A library caller is told what the CLI says, instead of checksums silently unused."""
    sums = tmp_path / "sums.md5"
    sums.write_text(f"{shards[0].md5}  {shards[0].name}\n")
    cli = run_cli("download", links, "-o", tmp_path / "cli", "--only", "json", "--checksums", sums)
    assert cli.returncode == 2, cli.output
    config = {"out": tmp_path / "library", "checksums": sa1b.read_checksums(sums)}
    with pytest.raises(sa1b.SA1BError) as refused:
        sa1b.download(
            sa1b.select_links(sa1b.read_links(links)),
            sa1b.DownloadConfig(**config, extract=ExtractOptions(only="json")),
        )
    assert refused.value.message == "--only fetches members, not whole files: drop --checksums"
    assert f"error: {refused.value.message}" in cli.output
    assert "Traceback" not in cli.output
    assert cdn.requests == [], "nothing fetched"
