"""The Ray engine's own decisions, without a cluster: how files are grouped into tasks,
how progress from tasks (and from a task run again elsewhere) adds up, and, into a
bucket, where a task keeps its state and which of the driver's settings it gets."""

from __future__ import annotations

import os
import pickle
from pathlib import Path

import pytest

from sa1b.cluster.bucket_task import StoreSettings, task_state
from sa1b.cluster.ray_engine import _groups, _Hub
from sa1b.links import Link
from sa1b.objectstore.location import BucketLocation
from sa1b.progress import FileOutcome, FileProgress, Snapshot, combine
from sa1b.split import WorkerPart


def _links(count: int) -> list[Link]:
    return [Link(f"sa_{i:06d}.tar", f"https://cdn.example/sa_{i:06d}.tar", i) for i in range(count)]


@pytest.mark.parametrize(
    ("files", "per_task", "sizes"),
    [(0, 8, []), (1, 8, [1]), (8, 8, [8]), (9, 8, [5, 4]), (20, 8, [7, 7, 6]), (3, 1, [1, 1, 1])],
)
def test_files_are_dealt_into_as_few_tasks_as_the_group_size_needs(
    files: int, per_task: int, sizes: list[int]
) -> None:
    groups = _groups(_links(files), per_task)
    assert [len(part) for _, part in groups] == sizes
    assert [(group.index, group.count) for group, _ in groups] == [
        (i, len(sizes)) for i in range(len(sizes))
    ]
    names = [link.name for _, part in groups for link in part]
    assert sorted(names) == [link.name for link in _links(files)]
    assert _groups(list(reversed(_links(files))), per_task) == [
        (group, sorted(part, key=lambda link: link.line, reverse=True)) for group, part in groups
    ]


def _snapshot(name: str, fetched: int, speed: float = 1.0) -> Snapshot:
    return Snapshot(
        files=(FileProgress(name, "active", 100, fetched, 2),),
        fetched=fetched,
        elapsed=1.0,
        speed=speed,
        connections=2,
    )


def test_a_task_run_again_elsewhere_keeps_what_its_lost_attempt_fetched_in_the_total() -> None:
    hub = _Hub()
    done = FileOutcome("b", "done", 100)
    hub.push(0, "first", _snapshot("a", 40), [])
    hub.push(1, "only", _snapshot("b", 100), [done])
    hub.push(0, "first", _snapshot("a", 60), [])
    latest, lost, outcomes = hub.drain()
    assert (latest[0].fetched, lost, outcomes) == (60, 0, [done])
    hub.push(0, "second", _snapshot("a", 10), [])  # node lost: the task starts anew
    latest, lost, outcomes = hub.drain()
    assert (latest[0].fetched, lost, outcomes) == (10, 60, [])


def test_snapshots_of_several_tasks_add_up() -> None:
    both = combine([_snapshot("a", 40, 2.0), _snapshot("b", 10, 3.0)], elapsed=7.0)
    assert [f.name for f in both.files] == ["a", "b"]
    assert (both.fetched, both.speed, both.connections, both.elapsed) == (50, 5.0, 4, 7.0)


SECRET = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"

# the driver's environment -> the variables every task sets
SETTINGS = [
    ({}, {}),
    (
        {"AWS_ACCESS_KEY_ID": "AKIDEXAMPLE", "AWS_SECRET_ACCESS_KEY": SECRET, "HOME": "/home/u"},
        {"AWS_ACCESS_KEY_ID": "AKIDEXAMPLE", "AWS_SECRET_ACCESS_KEY": SECRET},
    ),
    (
        {"AWS_ENDPOINT_URL": "http://127.0.0.1:8333", "AWS_REGION": "us-east-1", "PATH": "/bin"},
        {"AWS_ENDPOINT_URL": "http://127.0.0.1:8333", "AWS_REGION": "us-east-1"},
    ),
    (
        {"AWS_PROFILE": "lab", "AWS_CONFIG_FILE": "/etc/aws", "AWS_SESSION_TOKEN": "t"},
        {"AWS_PROFILE": "lab", "AWS_CONFIG_FILE": "/etc/aws", "AWS_SESSION_TOKEN": "t"},
    ),
    ({"AWS_PROFILE": "", "AWS_CA_BUNDLE": "/ca.pem"}, {"AWS_CA_BUNDLE": "/ca.pem"}),  # empty: unset
    ({"AWS_SOMETHING_ELSE": "x", "AWS_EC2_METADATA_DISABLED": "true", "SA1B_X": "y"}, {}),
]


@pytest.mark.parametrize(("environ", "forwarded"), SETTINGS)
def test_tasks_get_the_aws_variables_the_bucket_client_reads_and_no_others(
    environ: dict[str, str], forwarded: dict[str, str]
) -> None:
    settings = StoreSettings.of(environ)
    assert settings.variables == forwarded
    worker = {"HOME": "/home/ray", "AWS_REGION": "eu-west-1"}
    settings.apply(worker)
    assert worker == {"HOME": "/home/ray", "AWS_REGION": "eu-west-1", **forwarded}


def test_store_settings_show_names_only_and_travel_to_a_task_whole() -> None:
    settings = StoreSettings.of({"AWS_SECRET_ACCESS_KEY": SECRET, "AWS_ACCESS_KEY_ID": "AKID"})
    shown = "StoreSettings(AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY)"
    assert repr(settings) == str(settings) == shown
    assert SECRET not in f"{settings!r} {[settings]}"
    assert pickle.loads(pickle.dumps(settings)) == settings


NODE = "f3a1c9e2b7d84a6c" + "0e5f1b2a3c4d5e6f7a8b9c0d1e2f3a4b5c6d7e8f"  # a Ray node id
WHERE = BucketLocation("bucket", "run")
ROOT = BucketLocation("bucket")
HOME = Path("/home/u")

# (--state-dir, XDG_CACHE_HOME, location, task) -> where the task keeps its store on NODE
STATES = [
    (None, None, WHERE, (0, 3), "/home/u/.cache/sa1b/s3/bucket/run/ray/f3a1c9e2b7d84a6c/0-of-3"),
    (None, "/c", WHERE, (2, 3), "/c/sa1b/s3/bucket/run/ray/f3a1c9e2b7d84a6c/2-of-3"),
    (None, "/c", ROOT, (1, 2), "/c/sa1b/s3/bucket/_/ray/f3a1c9e2b7d84a6c/1-of-2"),
    ("/local/s", "/c", WHERE, (0, 1), "/local/s/ray/f3a1c9e2b7d84a6c/0-of-1"),
]  # fmt: skip


@pytest.mark.parametrize(("state_dir", "cache", "where", "task", "expected"), STATES)
def test_a_task_keeps_its_store_on_its_node_apart_from_every_other_task_and_node(
    state_dir: str | None,
    cache: str | None,
    where: BucketLocation,
    task: tuple[int, int],
    expected: str,
) -> None:
    environ = {"XDG_CACHE_HOME": cache} if cache else {}
    part = WorkerPart(*task, "ray")
    given = Path(state_dir) if state_dir else None
    state = task_state(where, given, part, NODE, environ=environ, home=HOME)
    assert state == Path(expected)
    other_node = task_state(where, given, part, "0" * 56, environ=environ, home=HOME)
    other_task = task_state(where, given, WorkerPart(task[0] + 1, 9, "ray"), NODE,
                            environ=environ, home=HOME)  # fmt: skip
    assert len({state, other_node, other_task}) == 3
    assert os.path.commonpath([state, other_node]) == str(state.parent.parent)
