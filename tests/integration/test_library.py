"""The library API, as a program embedding sa1b would use it."""

from __future__ import annotations

import logging
import time
from pathlib import Path

import pytest

import sa1b
from sa1b.cdn.server import CDNServer
from sa1b.cdn.synth import ShardInfo
from sa1b.progress import FileOutcome, Snapshot

from .conftest import assert_identical


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
    config = sa1b.DownloadConfig(out=tmp_path / "out", max_rate=64 * 1024, expiry_check_after=1)
    with caplog.at_level(logging.WARNING, logger="sa1b"), pytest.raises(KeyboardInterrupt):
        sa1b.download(selected, config, listener=StopAfterWarning())
    assert any("links start to expire" in r.getMessage() for r in caplog.records)
    # Interrupted, but the state was saved: the bytes fetched are recorded.
    folder = sa1b.status(tmp_path / "out")
    assert sum(f.done_bytes for f in folder.files) > 0
