"""``sa1b download LINKS -o s3://BUCKET/PREFIX --layout wds`` (and ``--only json``) through
the real CLI, from the CDN stand-in into SeaweedFS on loopback: each shard mapped by its
headers, then repacked part by part from ranged requests into one multipart upload, the
object byte for byte what a local ``--layout wds`` download writes."""

from __future__ import annotations

import signal
import sqlite3
import tarfile
from contextlib import closing
from pathlib import Path

import pytest

import sa1b
from harness.nginx import NginxServer
from harness.seaweedfs import SeaweedServer
from sa1b.catalog import catalog_key, read_catalog
from sa1b.cdn.server import CDNServer
from sa1b.cdn.synth import ShardInfo
from tests.conftest import aws_environment
from tests.waiting import wait_for
from tests.wdstar import wds_tar

from .buckets import BUCKET, PART, keys, pending
from .conftest import Result, member_bytes, run_cli, start_cli
from .test_bucket_catalog import served  # noqa: F401 (a fixture)
from .test_damaged_tars import CASES, SHARD, _verdict

pytestmark = pytest.mark.xdist_group("seaweedfs-upload")
"""With pytest-xdist, one worker runs the tests on SeaweedFS in turn."""


def read(seaweedfs: SeaweedServer, key: str) -> bytes:
    body: bytes = seaweedfs.client().get_object(Bucket=BUCKET, Key=key)["Body"].read()
    return body


def repack(links: Path, where: str, env: dict[str, str], *extra: str | Path, cwd: Path) -> Result:
    return run_cli("download", links, "-o", where, "--part-size", "5M", *extra, env=env, cwd=cwd)


@pytest.mark.usefixtures("s3_environment")  # sa1b.open in this process
def test_a_wds_tar_in_the_bucket_is_the_local_wds_tar_byte_for_byte(
    seaweedfs: SeaweedServer, cdn: CDNServer, shards: list[ShardInfo], tmp_path: Path,
    s3_prefix: str,
) -> None:  # fmt: skip
    links = tmp_path / "links.tsv"
    cdn.write_links_file(links)
    env = aws_environment(seaweedfs.environment)
    where = f"s3://{BUCKET}/{s3_prefix}"
    local = tmp_path / "local"
    made = run_cli("download", links, "-o", local, "--layout", "wds", env=env, cwd=tmp_path)
    assert made.returncode == 0, made.output
    cdn.clear_requests()
    result = run_cli("download", links, "-o", where, "--layout", "wds", "--part-size", "5M",
                     "--state-dir", tmp_path / "state", env=env, cwd=tmp_path)  # fmt: skip
    assert result.returncode == 0, result.output
    for shard in shards:
        key = f"{s3_prefix}/wds/{shard.name}"
        assert read(seaweedfs, key) == (local / "wds" / shard.name).read_bytes(), shard.name
        head = seaweedfs.client().head_object(Bucket=BUCKET, Key=key)
        assert head["Metadata"]["sa1b-size"] == str(head["ContentLength"])
        # Its catalog (from the plan) names this object and says where each member is.
        index = read(seaweedfs, f"{s3_prefix}/{catalog_key(f'wds/{shard.name}')}")
        entries = read_catalog(index, size=head["ContentLength"], etag=head["ETag"])
        with tarfile.open(local / "wds" / shard.name) as archive:
            assert [(e.name, e.offset, e.size) for e in entries or ()] == [
                (m.name, m.offset_data, m.size) for m in archive
            ]
    expected = {f"{s3_prefix}/wds/{shard.name}" for shard in shards}
    expected |= {f"{s3_prefix}/{catalog_key(f'wds/{shard.name}')}" for shard in shards}
    assert keys(seaweedfs, s3_prefix) == expected | {f"{s3_prefix}/.sa1b/state.db"}
    assert pending(seaweedfs, s3_prefix) == []
    # What the CDN sent: the headers of the map, and each member's data once.
    data = sum(len(b) for shard in shards for b in member_bytes(shard).values())
    assert cdn.bytes_sent_total <= data + sum(shard.size for shard in shards) // 10
    # status counts them; verify checks them (sizes; with --checksums, their structure).
    status = run_cli("status", where, env=env)
    assert status.returncode == 0 and f"{len(shards)} done" in status.stdout, status.output
    verified = run_cli("verify", where, env=env)
    assert verified.returncode == 0, verified.output
    # sa1b.open reads the same samples as from the local wds folder, by ranged GETs.
    remote, here = sa1b.open(where), sa1b.open(local)
    assert [s.key for s in remote] == [s.key for s in here] and len(here) > 0
    for mine, theirs in zip(remote, here, strict=True):
        assert mine.image_bytes() == theirs.image_bytes() and mine.document == theirs.document
    sums = tmp_path / "sha256sums.txt"
    sums.write_text("".join(f"{s.sha256}  {s.name}\n" for s in shards))
    deep = run_cli("verify", where, "--checksums", sums, env=env)
    assert deep.returncode == 0, deep.output
    assert deep.stdout.count("its structure only (the checksums are of the source tars)") == len(
        shards
    ), deep.output


def test_only_json_makes_a_json_tar_of_exactly_the_shards_jsons_beside_their_tars(
    seaweedfs: SeaweedServer, links: Path, shards: list[ShardInfo], tmp_path: Path,
    s3_prefix: str,
) -> None:  # fmt: skip
    env = aws_environment(seaweedfs.environment)
    where, state = f"s3://{BUCKET}/{s3_prefix}", tmp_path / "state"
    tars = run_cli("download", links, "-o", where, "--no-extract", "--state-dir", state,
                   env=env, cwd=tmp_path)  # fmt: skip
    assert tars.returncode == 0, tars.output
    # The same prefix and state: a json tar is a file of its own, never the shard's tar.
    result = run_cli("download", links, "-o", where, "--only", "json", "--part-size", "5M",
                     "--state-dir", state, env=env, cwd=tmp_path)  # fmt: skip
    assert result.returncode == 0, result.output
    assert "already in the bucket" not in result.stderr
    for shard in shards:
        jsons = {n: b for n, b in member_bytes(shard).items() if n.endswith(".json")}
        with tarfile.open(shard.path) as archive:
            (mtime,) = {m.mtime for m in archive if m.isfile()}
        assert read(seaweedfs, f"{s3_prefix}/json/{shard.name}") == wds_tar(
            jsons.items(), mtime=mtime
        )
        assert read(seaweedfs, f"{s3_prefix}/tars/{shard.name}") == shard.path.read_bytes()
    status = run_cli("status", where, env=env)
    assert f"{2 * len(shards)} done" in status.stdout, status.output


def wds_of(shard: ShardInfo) -> bytes:
    """The wds tar of ``shard``, as Python's tarfile makes it."""
    with tarfile.open(shard.path) as archive:
        (mtime,) = {m.mtime for m in archive if m.isfile()}
    return wds_tar(member_bytes(shard).items(), mtime=mtime)


def recorded_parts(database: Path) -> int:
    """The parts a state store records (of the uploads it knows; none before it exists)."""
    if not database.exists():
        return 0
    try:
        with closing(sqlite3.connect(f"{database.as_uri()}?mode=ro", uri=True)) as db:
            (count,) = db.execute("SELECT COUNT(*) FROM upload_parts").fetchone()
    except sqlite3.OperationalError:  # being created
        return 0
    return int(count)


@pytest.mark.parametrize("machine", ["the same machine", "another machine"])
def test_sigkill_mid_fill_then_rerun_keeps_the_parts_and_the_map(
    seaweedfs: SeaweedServer,
    bucket_shards: list[ShardInfo],
    tmp_path: Path,
    s3_prefix: str,
    machine: str,
) -> None:
    env = aws_environment(seaweedfs.environment)
    where, state = f"s3://{BUCKET}/{s3_prefix}", tmp_path / "state"
    elsewhere = machine == "another machine"  # no local state: the bucket's copy of it
    copy = f"{s3_prefix}/.sa1b/state.db"

    def copied_parts() -> int:
        (tmp_path / "copy.db").write_bytes(read(seaweedfs, copy))
        return recorded_parts(tmp_path / "copy.db")

    # Another machine waits for a state copy with parts in it (one every 15 s): slower.
    shards, rate = bucket_shards[:1], (512 if elsewhere else 1024) * 1024
    with CDNServer(root=shards[0].path.parent, rate_per_connection=rate) as slow:
        links = tmp_path / "links.tsv"
        slow.write_links_file(links, names=[shard.name for shard in shards])
        proc = start_cli(
            "download", links, "-o", where, "--layout", "wds", "--part-size", "5M", "-q",
            "--state-dir", state, "--connections", "2", env=env, cwd=tmp_path,
        )  # fmt: skip
        wait_for(
            lambda: (
                (copy in keys(seaweedfs, s3_prefix) and copied_parts() >= 2)
                if elsewhere
                else recorded_parts(state / "state.db") >= 2
            ),
            timeout=90,
            message="two parts recorded" + (" in the state copy" if elsewhere else ""),
            process=proc,
        )
        proc.send_signal(signal.SIGKILL)
        proc.communicate(timeout=30)
        expected = {f"{s3_prefix}/wds/{shard.name}": wds_of(shard) for shard in shards}
        done = {key for key in keys(seaweedfs, s3_prefix) if key in expected}
        for key in done:  # listed right after the kill: only whole and right objects
            assert read(seaweedfs, key) == expected[key], key
        assert len(done) < len(shards)
        recorded = copied_parts() if elsewhere else recorded_parts(state / "state.db")
        assert recorded >= 2
        status = run_cli("status", where, env=env)  # read from the bucket alone
        assert "uploading" in status.stdout and "stray" not in status.stdout, status.output
        if elsewhere:
            state = tmp_path / "another-machine"
        slow.clear_requests()
        result = repack(links, where, env, "--layout", "wds", "--state-dir", state,
                        "--connections", "8", cwd=tmp_path)  # fmt: skip
        assert result.returncode == 0, result.output
        sent, asked = slow.bytes_sent_total, [r.range_header for r in slow.requests]
    for key, data in expected.items():
        assert read(seaweedfs, key) == data, key
    assert pending(seaweedfs, s3_prefix) == []
    # No map walked again (its first header), no part the bucket held and the state
    # recorded fetched again: a part's source bytes are at most its own.
    assert "bytes=0-511" not in asked
    unfinished = sum(len(data) for key, data in expected.items() if key not in done)
    assert sent <= unfinished - recorded * PART, (sent, recorded)


# options beside -o s3:// with a tar made in the bucket: what the one error line says
REFUSED = {
    "extracting": ((), "only tars go into a bucket"),
    "--only with a layout": (("--only", "json", "--layout", "split"), "does not apply"),
    "--layout wds --checksums": (("--layout", "wds", "--checksums", "x"), "--checksums with a"),
    "--layout wds --keep-tars": (("--layout", "wds", "--keep-tars"), "--keep-tars with a"),
    "--only json --engine ray": (("--only", "json", "--engine", "ray"), "--engine ray with a"),
}


@pytest.mark.parametrize(("options", "says"), REFUSED.values(), ids=REFUSED.keys())
def test_what_a_bucket_cannot_take_is_refused_in_one_line(
    options: tuple[str, ...], says: str, links: Path, tmp_path: Path
) -> None:
    env = aws_environment({"XDG_CACHE_HOME": str(tmp_path / "cache")})
    result = run_cli("download", links, "-o", "s3://sa1b-test/x", *options, env=env, cwd=tmp_path)
    assert result.returncode == 2, result.output
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and says in errors[0], result.output
    assert "Traceback" not in result.output


DAMAGED = ["bad header checksum", "garbage after the end blocks"]


@pytest.mark.parametrize("name", DAMAGED)
def test_a_damaged_tar_fails_its_shard_in_one_line_with_no_object(
    served: NginxServer,  # noqa: F811 (the fixture, imported)
    seaweedfs: SeaweedServer,
    tmp_path: Path,
    s3_prefix: str,
    name: str,
) -> None:
    links = tmp_path / "urls.txt"
    links.write_text(served.url_for(f"{list(CASES).index(name)}/{SHARD}") + "\n")
    env = aws_environment(seaweedfs.environment)
    where = f"s3://{BUCKET}/{s3_prefix}"
    result = run_cli("download", links, "-o", where, "--only", "json", "--state-dir",
                     tmp_path / "state", env=env, cwd=tmp_path)  # fmt: skip
    _verdict(result, CASES[name])  # the same line as extraction's
    assert not any("/json/" in key for key in keys(seaweedfs, s3_prefix))
    assert pending(seaweedfs, s3_prefix) == []  # mapped first: no upload ever begun
