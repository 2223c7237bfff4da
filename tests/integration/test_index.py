"""``sa1b index``: each extracted member with its offset in the tar, which is where its
bytes really are (read back from the source shards)."""

from __future__ import annotations

from pathlib import Path

from sa1b.cdn.server import CDNServer
from sa1b.cdn.synth import ShardInfo

from .conftest import member_bytes, run_cli


def test_the_index_points_at_every_member_in_its_tar(
    cdn: CDNServer, links: Path, shards: list[ShardInfo], tmp_path: Path
) -> None:
    out = tmp_path / "out"
    assert run_cli("download", links, "-o", out, "--layout", "split").returncode == 0
    result = run_cli("index", out)
    assert result.returncode == 0, result.output
    header, *rows = result.stdout.splitlines()
    assert header == "shard\tmember\toffset\tsize\tpath"
    by_shard = {shard.name: shard for shard in shards}
    seen: dict[str, set[str]] = {}
    for row in rows:
        shard, member, offset, size, path = row.split("\t")
        with by_shard[shard].path.open("rb") as tar:
            tar.seek(int(offset))
            assert tar.read(int(size)) == (out / path).read_bytes(), row
        seen.setdefault(shard, set()).add(member)
    assert seen == {s.name: set(member_bytes(s)) for s in shards}


def test_tars_kept_whole_have_no_index_to_print(links: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    assert run_cli("download", links, "-o", out, "--no-extract", "--shards", "0").returncode == 0
    result = run_cli("index", out)
    assert result.returncode == 1
    assert "no extracted or walked shard with a member index" in result.output


def test_a_folder_without_an_index_is_one_line(tmp_path: Path) -> None:
    result = run_cli("index", tmp_path)
    assert result.returncode == 2  # no sa1b state: bad input
    assert "no sa1b state here" in result.output
    assert "Traceback" not in result.output


def test_verify_and_index_read_a_store_kept_elsewhere_with_state_dir(
    cdn: CDNServer, links: Path, shards: list[ShardInfo], tmp_path: Path
) -> None:
    """``--state-dir`` (a store on local disk beside a shared OUT) works for every command
    that reads the store, not only for download and status."""
    out, state = tmp_path / "shared" / "out", tmp_path / "local"
    done = run_cli("download", links, "-o", out, "--state-dir", state)
    assert done.returncode == 0, done.output
    checked = run_cli("verify", out, "--state-dir", state)
    assert checked.returncode == 0, checked.output
    assert all(f"{shard.name}  ok" in checked.stdout for shard in shards), checked.output
    indexed = run_cli("index", out, "--state-dir", state)
    assert indexed.returncode == 0, indexed.output
    assert {row.split("\t")[0] for row in indexed.stdout.splitlines()[1:]} == {
        shard.name for shard in shards
    }
    for elsewhere in ([], ["--state-dir", tmp_path / "nowhere"]):
        lost = run_cli("verify", out, *elsewhere)
        assert lost.returncode != 0 and "no sa1b state here" in lost.output, lost.output
        assert "--state-dir" in lost.output
        assert run_cli("index", out, *elsewhere).returncode != 0
