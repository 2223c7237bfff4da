"""What an extraction syncs: its own staged files and their folders before each
checkpoint and before it returns, and nothing else on the filesystem (a ``syncfs``
would write out the partial tars of every other shard in flight)."""

from __future__ import annotations

import os
import tarfile
from pathlib import Path
from typing import Any

import pytest

from sa1b.extract.shard import ExtractReport, extract_shard
from sa1b.layout import Layout
from sa1b.store import writeback
from sa1b.store.resume import PackedResume, Resume

MEMBERS = {f"sa_{i}.{kind}": os.urandom(1000 + i) for i in range(1, 4) for kind in ("jpg", "json")}


def _tar(path: Path) -> None:
    with tarfile.open(path, "w", format=tarfile.USTAR_FORMAT) as archive:
        for name, data in MEMBERS.items():
            source = path.parent / f"src-{name}"
            source.write_bytes(data)
            archive.add(source, arcname=name)


def _recording_fsyncs(monkeypatch: pytest.MonkeyPatch) -> set[Path]:
    """The paths the extraction fsyncs, gathered as it goes (and still synced)."""
    synced: set[Path] = set()
    real_fsync = os.fsync

    def recording(fd: int) -> None:
        synced.add(Path(os.readlink(f"/proc/self/fd/{fd}")))
        real_fsync(fd)

    monkeypatch.setattr(writeback.os, "fsync", recording)
    return synced


def _extract(shard: Path, staging: Path, layout: Layout, **options: Any) -> ExtractReport:
    """:func:`extract_shard` of the whole tar ``shard`` (nothing to wait for)."""
    fd = os.open(shard, os.O_RDONLY)
    try:
        return extract_shard(
            fd,
            shard.stat().st_size,
            shard=shard.name,
            staging=staging,
            layout=layout,
            wait=lambda end: None,
            **options,
        )
    finally:
        os.close(fd)


@pytest.mark.parametrize("layout", ["shard", "split", "flat"])  # wds frees no tar
def test_checkpoints_come_after_their_files_are_synced(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, layout: Layout
) -> None:
    shard = tmp_path / "sa_000001.tar"
    _tar(shard)
    staging = tmp_path / "state" / "staging" / "sa_000001.tar"
    synced = _recording_fsyncs(monkeypatch)

    def no_syncfs(fd: int) -> int:
        raise AssertionError("the whole filesystem synced")

    monkeypatch.setattr(writeback, "_syncfs", no_syncfs)
    checked: list[Resume] = []

    def on_checkpoint(packed: PackedResume) -> None:
        resume = packed.unpacked()
        for path, _, _ in resume.members:
            staged = staging / path
            assert staged in synced, path
            for folder in staged.parents:  # each new entry, up to the new staging folder
                assert folder in synced or folder == tmp_path.parent, folder
                if folder == tmp_path:
                    break
        checked.append(resume)

    report = _extract(shard, staging, layout, on_checkpoint=on_checkpoint, checkpoint_every=1)
    assert len(checked) >= 2  # one after a member at least, and the end
    staged = [path for path in staging.rglob("*") if path.is_file()]
    assert staged and set(staged) <= synced
    assert not {path for path in synced if tmp_path not in path.parents and path != tmp_path}
    assert shard not in synced  # the tar itself is the download's to sync, or not
    assert len(report.members) == len(MEMBERS)


@pytest.mark.parametrize("layout", ["shard", "wds"])
def test_what_an_extraction_returns_is_synced_without_checkpoints(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, layout: Layout
) -> None:
    shard = tmp_path / "sa_000001.tar"
    _tar(shard)
    staging = tmp_path / "staging"
    synced = _recording_fsyncs(monkeypatch)
    _extract(shard, staging, layout)
    staged = {path for path in staging.rglob("*") if path.is_file()}
    assert len(staged) == (1 if layout == "wds" else len(MEMBERS))
    assert staged <= synced  # publishing renames them next: their bytes must be there
    assert {path.parent for path in staged} <= synced
