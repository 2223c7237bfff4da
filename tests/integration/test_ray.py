"""The Ray engine on a real Ray cluster: a head and two worker nodes, each a raylet of
its own on this machine (``ray.cluster_utils.Cluster``), all bound to loopback; the
real CLI as the driver, against the CDN stand-in."""

from __future__ import annotations

import os
import re
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from ray.cluster_utils import Cluster

from sa1b import api
from sa1b.cdn.server import CDNServer
from sa1b.cdn.synth import ShardInfo
from sa1b.errors import StateError
from tests.waiting import wait_for

from .conftest import assert_extracted, assert_identical, run_cli, start_cli

MiB = 1024 * 1024
LOOPBACK = "127.0.0.1"
NODE = {"num_cpus": 1, "node_ip_address": LOOPBACK, "object_store_memory": 80 * MiB}
pytestmark = [pytest.mark.timeout(240), pytest.mark.xdist_group("ray")]
"""With pytest-xdist, one worker runs these in turn: one cluster at a time (each is a
dozen processes, and Ray writes the address of the latest to a file in /tmp)."""


def _cluster() -> tuple[Any, list[Any]]:
    """A head that runs no task, and two worker nodes of one CPU each."""
    cluster = Cluster(
        initialize_head=True,
        head_node_args={**NODE, "num_cpus": 0, "include_dashboard": False},
    )
    workers = [cluster.add_node(**NODE) for _ in range(2)]
    cluster.wait_for_nodes()
    return cluster, workers


@pytest.fixture(scope="module")
def cluster() -> Iterator[Any]:
    cluster, _ = _cluster()
    yield cluster
    cluster.shutdown()


# Ray turns a loopback address given to ray.init into the machine's own address
# (services.resolve_ip_for_localhost), where this cluster does not listen; this setting,
# which Ray reads, keeps the driver on loopback.
ON_LOOPBACK = {"RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0"}


def _ray(links: Path, out: Path, address: str, *args: str) -> list[str]:
    return [
        "download",
        str(links),
        "-o",
        str(out),
        "--engine",
        "ray",
        "--ray-address",
        address,
        *args,
    ]


def test_a_download_on_the_cluster_is_complete_and_shown_as_one(
    cluster: Any, cdn: CDNServer, links: Path, shards: list[ShardInfo], tmp_path: Path
) -> None:
    out = tmp_path / "out"
    result = run_cli(
        *_ray(links, out, cluster.address, "--files", "1"), timeout=180, env=ON_LOOPBACK
    )
    assert result.returncode == 0, result.output
    assert "3/3 files done" in result.output
    assert_extracted(out, shards)
    asked = len(shards)  # the space check, on the driver: one byte of each file
    assert cdn.bytes_sent_total == sum(shard.size for shard in shards) + asked

    status = run_cli("status", out)  # from the copies of the tasks' stores, in OUT
    assert status.returncode == 0, status.output
    for index in range(3):
        assert f"worker {index} of 3: 1 files: 1 done" in status.output
    assert "in all: 3 files: 3 done" in status.output

    again = run_cli(
        *_ray(links, out, cluster.address, "--files", "1"), timeout=180, env=ON_LOOPBACK
    )
    assert again.returncode == 0, again.output
    assert cdn.bytes_sent_total == sum(shard.size for shard in shards) + asked  # nothing again


def test_a_node_lost_mid_run_leaves_its_files_to_another_and_fetches_nothing_twice(
    slow_cdn: CDNServer, shards: list[ShardInfo], tmp_path: Path
) -> None:
    links, out = tmp_path / "links.tsv", tmp_path / "out"
    slow_cdn.write_links_file(links)
    cluster, workers = _cluster()
    half = shards[0].size // 2
    try:
        args = _ray(links, out, cluster.address, "--files", "1", "--no-extract")
        driver = start_cli(*args, "--connections", "1", env={**os.environ, **ON_LOOPBACK})
        wait_for(
            lambda: len([f for f in _recorded(out) if f >= half]) >= 2,
            timeout=120,
            message="both nodes half way",
            process=driver,
        )
        cluster.remove_node(workers[0], allow_graceful=False)
        output = "".join(driver.communicate(timeout=180))
        assert driver.returncode == 0, output
    finally:
        cluster.shutdown()
    assert_identical(out, shards)
    assert "3/3 files done" in output
    # The lost node's file is continued from the copy of its store, where at least half
    # of it was recorded: fetched again is only what it wrote after its last commit.
    wasted = slow_cdn.bytes_sent_total - sum(shard.size for shard in shards)
    assert wasted < half, wasted


def _recorded(out: Path) -> list[int]:
    """Bytes recorded per file by the copies of the tasks' stores in ``out``."""
    if not (out / ".sa1b" / "workers").exists():
        return []
    try:
        return [record.ranges.total for record in api.status(out).files]
    except StateError:  # a copy replaced while it was read
        return []


def test_node_local_outputs_keep_each_task_store_beside_its_files(
    cluster: Any, cdn: CDNServer, links: Path, shards: list[ShardInfo], tmp_path: Path
) -> None:
    out = tmp_path / "out"  # one disk here; on a cluster, the same path on each node
    args = _ray(links, out, cluster.address, "--files", "2", "--node-local", "--no-extract")
    result = run_cli(*args, timeout=180, env=ON_LOOPBACK)
    assert result.returncode == 0, result.output
    assert_identical(out, shards)
    stores = sorted(p.name for p in (out / ".sa1b" / "workers").iterdir())
    assert stores == ["0-of-2", "1-of-2"]
    assert all((out / ".sa1b" / "workers" / store / "lock").exists() for store in stores)


def test_every_ray_process_listens_and_connects_on_loopback_only(
    cluster: Any, cdn: CDNServer, links: Path, tmp_path: Path
) -> None:
    args = _ray(links, tmp_path / "out", cluster.address, "--files", "1")
    driver = start_cli(*args, env={**os.environ, **ON_LOOPBACK})
    seen: set[str] = set()
    try:
        while driver.poll() is None:
            seen |= _addresses(_descendants(os.getpid()))
            time.sleep(0.1)  # sampling on purpose: sockets are looked at while the run lasts
    finally:
        output = "".join(driver.communicate(timeout=180))
    assert driver.returncode == 0, output
    assert seen, "no socket of a Ray process was seen"
    assert {
        address for address in seen if not address.startswith("127.") and address != "::1"
    } == set()


def _descendants(root: int) -> set[int]:
    """Process ids under ``root`` (the raylets, the GCS, the workers, the driver)."""
    parents: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            parents[int(entry.name)] = int(fields[1])
    found, grew = {root}, True
    while grew:
        more = {pid for pid, parent in parents.items() if parent in found} - found
        found |= more
        grew = bool(more)
    return found - {root}


def _addresses(pids: set[int]) -> set[str]:
    """The addresses the TCP sockets of ``pids`` use: the local one of a listening
    socket (``0.0.0.0`` or ``*`` would be every address of the machine), both ends of
    any other."""
    listing = subprocess.run(["ss", "-Htanp"], capture_output=True, text=True, check=True)
    addresses = set()
    for line in listing.stdout.splitlines():
        if not {int(pid) for pid in re.findall(r"pid=(\d+)", line)} & pids:
            continue
        state, _, _, local, peer = line.split()[:5]
        ends = [local] if state == "LISTEN" else [local, peer]
        hosts = {end.rsplit(":", 1)[0].strip("[]") for end in ends}
        addresses |= {host.removeprefix("::ffff:") for host in hosts}  # IPv4 in IPv6
    return addresses


def test_without_ray_the_message_names_the_extra(links: Path, tmp_path: Path) -> None:
    fake = tmp_path / "site" / "ray"
    fake.mkdir(parents=True)
    (fake / "__init__.py").write_text("raise ImportError('ray is not installed here')\n")
    env = {"PYTHONPATH": str(tmp_path / "site")}
    result = run_cli("download", links, "-o", tmp_path / "out", "--engine", "ray", env=env)
    assert result.returncode == 2, result.output
    assert "the Ray engine needs Ray, which is not installed" in result.output
    assert "pip install 'sa1b[ray]'" in result.output
    assert "Traceback" not in result.output
