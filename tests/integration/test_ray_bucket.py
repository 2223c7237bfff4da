"""The Ray engine into a bucket: ``sa1b download LINKS -o s3://BUCKET/PREFIX --no-extract
--engine ray`` through the real CLI, from the CDN stand-in into SeaweedFS, on a loopback
Ray cluster (a head and two worker nodes, as in ``test_ray.py``) whose nodes know nothing
of the store: no ``AWS_*`` variable in their environment, so only what the driver hands
its tasks reaches the bucket. Nothing is shared between the nodes but the bucket."""

from __future__ import annotations

import contextlib
import os
import re
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from harness.seaweedfs import SeaweedServer
from sa1b.catalog import catalog_key
from sa1b.cdn.server import CDNServer, RequestRecord
from sa1b.cdn.synth import ShardInfo
from tests.conftest import aws_environment
from tests.waiting import wait_for

from .buckets import BUCKET, PART, MiB, assert_in_bucket, keys, pending
from .conftest import run_cli, start_cli
from .test_ray import ON_LOOPBACK, _cluster

pytestmark = [pytest.mark.timeout(240), pytest.mark.xdist_group("ray")]
"""With pytest-xdist, in turn with the tests of ``test_ray.py``: one cluster at a time."""


@contextmanager
def _nodes_that_know_nothing(cache: Path) -> Iterator[None]:
    """While a cluster starts (its processes take this environment): no ``AWS_*``
    variable, and the nodes' cache folder (the tasks' default state) in ``cache``."""
    with pytest.MonkeyPatch.context() as patch:
        for name in [name for name in os.environ if name.startswith("AWS_")]:
            patch.delenv(name)
        patch.setenv("XDG_CACHE_HOME", str(cache))
        yield


def _download(links: Path, where: str, address: str, *extra: str) -> list[str]:
    return [
        "download", str(links), "-o", where, "--no-extract", "--part-size", "5M",
        "--engine", "ray", "--ray-address", address, *extra,
    ]  # fmt: skip


def _driver_environment(seaweedfs: SeaweedServer) -> dict[str, str]:
    """The driver's: the store's settings as a user sets them, and Ray on loopback."""
    return {**aws_environment(seaweedfs.environment), **ON_LOOPBACK}


def _task_mid_shard(
    seaweedfs: SeaweedServer, prefix: str, names: list[str], scratch: Path
) -> tuple[str, int] | None:
    """A task (``I-of-2``) whose shard's upload is not complete while the copy of its
    store in the bucket records parts of it (``names`` are the shards in name order:
    task ``i`` of 2 has the ``i``-th): a task worth losing with its node; with the
    number of parts its copy records."""
    client = seaweedfs.client()
    for upload in pending(seaweedfs, prefix):
        shard = upload["Key"].rpartition("/")[2]
        task = f"{names.index(shard)}-of-2"
        try:
            copy = client.get_object(Bucket=BUCKET, Key=f"{prefix}/.sa1b/workers/{task}/state.db")
        except client.exceptions.NoSuchKey:
            continue
        (scratch / task).write_bytes(copy["Body"].read())
        if (parts := _recorded_parts(scratch / task).get(shard, 0)) > 0:
            return task, parts
    return None


def _recorded_parts(database: Path) -> dict[str, int]:
    """How many uploaded parts of each shard the store at ``database`` records."""
    with contextlib.closing(sqlite3.connect(f"{database.as_uri()}?mode=ro", uri=True)) as db:
        rows = db.execute(
            "SELECT files.name, COUNT(*) FROM upload_parts "
            "JOIN files ON files.id = upload_parts.file_id GROUP BY files.name"
        ).fetchall()
    return dict(rows)


def _first_byte(request: RequestRecord) -> int | None:
    """Where a ranged request for a shard's bytes starts (None for the size probe,
    ``bytes=0-0``, and for anything else that fetches no range)."""
    found = re.fullmatch(r"bytes=(\d+)-(\d*)", request.range_header or "")
    if found is None or request.method != "GET" or request.range_header == "bytes=0-0":
        return None
    return int(found[1])


def _task_states(cache: Path, prefix: str) -> list[str]:
    """The tasks' stores on the nodes' disk, as ``NODE/I-of-N`` (the default place;
    ``NODE`` is the start of the node's id)."""
    root = cache / "sa1b" / "s3" / BUCKET / prefix / "ray"
    return sorted(db.parent.relative_to(root).as_posix() for db in root.glob("*/*/state.db"))


def _ray_files_holding(cluster: Any, secret: str) -> list[Path]:
    """The files of the cluster's session (every node's logs, among others) that hold
    ``secret``."""
    session = Path(cluster.head_node.get_session_dir_path())
    return [
        path
        for path in session.rglob("*")
        if path.is_file() and not path.is_symlink() and secret.encode() in path.read_bytes()
    ]


def test_tars_stream_from_the_nodes_into_the_bucket_and_a_rerun_fetches_nothing(
    seaweedfs: SeaweedServer, cdn: CDNServer, shards: list[ShardInfo], tmp_path: Path,
    s3_prefix: str,
) -> None:  # fmt: skip
    links, cache = tmp_path / "links.tsv", tmp_path / "cache"
    cdn.write_links_file(links)
    with _nodes_that_know_nothing(cache):
        cluster, _ = _cluster()
    where, env = f"s3://{BUCKET}/{s3_prefix}", _driver_environment(seaweedfs)
    try:
        args = _download(links, where, cluster.address, "--files", "1")
        result = run_cli(*args, timeout=180, env=env, cwd=tmp_path)
        assert result.returncode == 0, result.output
        assert "3/3 files done" in result.output
        assert_in_bucket(seaweedfs, s3_prefix, shards)
        copies = {f"{s3_prefix}/.sa1b/workers/{i}-of-3/state.db" for i in range(3)}
        tars = {f"{s3_prefix}/tars/{shard.name}" for shard in shards}
        catalogs = {f"{s3_prefix}/{catalog_key(shard.name)}" for shard in shards}
        # A copy of each task's store, and each tar's catalog beside it.
        assert keys(seaweedfs, s3_prefix) == tars | catalogs | copies
        assert pending(seaweedfs, s3_prefix) == []
        # Each task's store on its node's disk, in the nodes' own cache folder; nothing
        # else made here (the driver's folder holds no state, and no folder "s3:").
        states = _task_states(cache, s3_prefix)
        assert sorted(state.rpartition("/")[2] for state in states) == [
            "0-of-3",
            "1-of-3",
            "2-of-3",
        ]
        assert sorted(p.name for p in tmp_path.iterdir()) == sorted([links.name, cache.name])
        # The secret went to the tasks, and into no output and no file of Ray's.
        assert seaweedfs.secret_key not in result.output
        assert _ray_files_holding(cluster, seaweedfs.secret_key) == []

        cdn.clear_requests()  # the same command again: every task finds its files done
        again = run_cli(*args, timeout=180, env=env, cwd=tmp_path)
        assert again.returncode == 0, again.output
        assert "3/3 files done" in again.output
        assert cdn.bytes_sent_total == 0
    finally:
        cluster.shutdown()


@pytest.mark.timeout(420)  # Ray's start of each task's worker is slow on a loaded machine
def test_a_node_lost_mid_shard_leaves_it_to_another_that_keeps_the_parts_uploaded(
    seaweedfs: SeaweedServer, bucket_shards: list[ShardInfo], tmp_path: Path, s3_prefix: str
) -> None:
    cache = tmp_path / "cache"
    with _nodes_that_know_nothing(cache):
        cluster, workers = _cluster()
    where, env = f"s3://{BUCKET}/{s3_prefix}", _driver_environment(seaweedfs)
    names = sorted(shard.name for shard in bucket_shards)
    try:
        # One connection a task at 512 KiB/s: a shard takes 48 s, and each task puts a
        # copy of its store in the bucket every 15 s. The tasks may start far apart on a
        # loaded machine (Ray starts a worker process for each), so the node lost is the
        # one whose task is seen mid-shard with parts recorded, whichever that is.
        with CDNServer(root=bucket_shards[0].path.parent, rate_per_connection=MiB // 2) as slow:
            links = tmp_path / "links.tsv"
            slow.write_links_file(links)
            args = _download(links, where, cluster.address, "--files", "1", "--connections", "1")
            driver = start_cli(*args, env=env, cwd=tmp_path)
            scratch = tmp_path / "copies"
            scratch.mkdir()
            task, recorded = wait_for(
                lambda: _task_mid_shard(seaweedfs, s3_prefix, names, scratch),
                timeout=200,
                message="a task's copy in the bucket recording parts of its unfinished shard",
                process=driver,
            )
            node = next(
                state.partition("/")[0]
                for state in _task_states(cache, s3_prefix)
                if state.endswith(f"/{task}")
            )
            asked_before = len(slow.requests)
            cluster.remove_node(
                next(worker for worker in workers if worker.node_id.startswith(node)),
                allow_graceful=False,
            )
            output = "".join(driver.communicate(timeout=180))
            assert driver.returncode == 0, output
            asked_after = slow.requests[asked_before:]
            served = slow.bytes_sent_total
    finally:
        cluster.shutdown()
    assert "2/2 files done" in output
    assert_in_bucket(seaweedfs, s3_prefix, bucket_shards)
    assert pending(seaweedfs, s3_prefix) == []
    # The lost node's shard went on from its upload elsewhere: no byte of the parts its
    # task's copy recorded was asked for again (the parts uploaded after that copy may
    # be: SeaweedFS lists no part checksums to trust them by).
    lost = names[int(task.partition("-")[0])]
    starts = [_first_byte(r) for r in asked_after if r.name == lost]
    assert [start for start in starts if start is not None], (lost, asked_after)
    assert all(start >= recorded * PART for start in starts if start is not None), (
        lost,
        recorded,
        asked_after,
    )
    assert served < 1.5 * sum(shard.size for shard in bucket_shards), served
    # The task taken over has a store on each node it ran on; the other, on its own.
    nodes = [state.partition("/")[0] for state in _task_states(cache, s3_prefix)]
    assert len(nodes) == 3 and len(set(nodes)) == 2, nodes
