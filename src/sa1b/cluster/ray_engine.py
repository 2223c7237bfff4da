"""Run one download as Ray tasks on a Ray cluster, with one display and one summary.

The driver (``sa1b download --engine ray``) deals the selected files into groups of
``files_per_task``, by name (:func:`sa1b.split.take_part`, so that a rerun makes the
same groups), and submits one Ray task per group. Each task runs the ordinary engine
(:func:`sa1b.api.download`) on its node, as worker ``i`` of ``n``:

- It writes into the shared output folder and keeps its state store on the node's
  local disk (SQLite and its locks are not safe across hosts), with a copy refreshed
  after every commit in ``OUT/.sa1b/workers/<i>-of-<n>/``, where ``sa1b status`` and
  later runs find it.
- A task lost with its node is retried by Ray on another node (``max_retries``). It
  starts from that copy: what the lost node had made durable is continued, not
  fetched again.
- With ``node_local`` the output folder is each node's own disk: nothing is shared,
  the store lives there too (``OUT/.sa1b/workers/<i>-of-<n>/`` on that node), and a
  lost task starts again from zero where Ray retries it.
- Into a bucket (``config.upload``) nothing is shared but the bucket: each task streams
  its files from its node, keeps its store on that node and its copy in the bucket, and
  a task run again elsewhere continues from that copy and the parts the bucket holds
  (:mod:`~sa1b.cluster.bucket_task`). The driver checks the bucket once, before any
  task, and hands the tasks its store settings (credentials, endpoint).

Each task pushes its progress to a small actor on the driver's node a few times a
second; the driver adds the tasks' snapshots up for its display and gathers their
outcomes for one summary. ``ray`` is imported here alone, when this engine runs.
"""

from __future__ import annotations

import hashlib
import logging
import math
import os
import shutil
import tempfile
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from types import ModuleType
from typing import Any

from sa1b import api
from sa1b.api.bucket import check_bucket
from sa1b.cluster.bucket_task import StoreSettings, start_from_bucket, task_state
from sa1b.config import DownloadConfig
from sa1b.errors import ClusterError, InputError, LinksExpiredError, SA1BError
from sa1b.links import Link
from sa1b.progress import (
    FileOutcome,
    FileProgress,
    FileState,
    ProgressListener,
    Snapshot,
    combine,
)
from sa1b.split import WorkerPart, take_part
from sa1b.store.paths import STATE_DB, WORK_DIR, WORKERS

log = logging.getLogger(__name__)

PUSH_INTERVAL = 0.5
"""Seconds between two progress reports of a task to the driver."""


@dataclass(frozen=True, slots=True, kw_only=True)
class ClusterOptions:
    """How the download uses the cluster."""

    address: str | None = None
    """The cluster to join (``ray.init``'s address); None: ``RAY_ADDRESS``, else a Ray
    started on this machine for this run."""
    files_per_task: int = 8
    """Files per Ray task: a task keeps that many files, and their connections, busy."""
    node_local: bool = False
    """The output folder is on each node's own disk, not shared."""
    max_retries: int = 3
    """How many times Ray runs a task again after losing it with its node."""


def download_on_ray(
    links: Sequence[Link],
    config: DownloadConfig,
    options: ClusterOptions,
    *,
    listener: ProgressListener,
) -> api.DownloadResult:
    """Download ``links`` into ``config.out`` with Ray tasks (see the module docstring);
    with ``config.upload``, into its bucket, each task's state on its node (under
    ``config.state_dir`` if given, else the node's cache folder; ``config.out`` unused).

    Raises :class:`ClusterError` when Ray is missing or the cluster cannot be joined,
    a :class:`~sa1b.errors.BucketError` when the bucket cannot be used, and the first
    :class:`InputError` a task meets (an output folder it cannot write); files of a
    task lost more often than ``max_retries`` end ``failed``.
    """
    if config.upload is not None and options.node_local:
        raise InputError(
            f"{config.upload.location}: --node-local is for a local output folder "
            "(into a bucket, nothing but the bucket is shared anyway)"
        )
    ray = _import_ray()
    settings = None
    if config.upload is not None:
        check_bucket(config.upload.location)  # one line before anything is downloaded
        settings = StoreSettings.of(os.environ)
    elif config.check_space and not options.node_local:  # once, on the shared folder
        api.check_space(links, config)
    started = time.monotonic()
    groups = _groups(links, options.files_per_task)
    try:
        ray.init(address=options.address, logging_level=logging.ERROR, log_to_driver=False)
    except (ConnectionError, RuntimeError, ValueError) as error:
        raise ClusterError(f"cannot join the Ray cluster: {error}") from None
    try:
        hub = _pinned_here(ray, ray.remote(num_cpus=0)(_Hub)).remote()
        task = ray.remote(num_cpus=1, max_retries=options.max_retries, retry_exceptions=False)
        run = task(_run_group)
        common = {"node_local": options.node_local, "settings": settings}
        submitted = {
            run.remote(part, config, group, hub, **common): (group, part) for group, part in groups
        }
        on = "what the bucket holds" if config.upload else "what is on disk"
        hint = f"run the same command again: it continues from {on}"
        driver = _Driver(ray, hub, groups, listener, started, hint=hint)
        outcomes = driver.wait(submitted)
        return api.DownloadResult(
            tuple(outcomes[link.name] for link in links),
            driver.fetched,
            time.monotonic() - started,
        )
    finally:
        ray.shutdown()


def _import_ray() -> ModuleType:
    try:
        import ray
    except ImportError:
        raise ClusterError("the Ray engine needs Ray, which is not installed") from None
    return ray


def _groups(links: Sequence[Link], files_per_task: int) -> list[tuple[WorkerPart, list[Link]]]:
    """The tasks' parts: as many as ``files_per_task`` needs, dealt by name."""
    count = math.ceil(len(links) / files_per_task)
    parts = [WorkerPart(index, count, "ray") for index in range(count)]
    return [(part, take_part(links, part)) for part in parts]


def _pinned_here(ray: ModuleType, actor: Any) -> Any:
    """``actor`` on the driver's node, which lives as long as the run does."""
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

    here = ray.get_runtime_context().get_node_id()
    return actor.options(scheduling_strategy=NodeAffinitySchedulingStrategy(here, soft=False))


class _Driver:
    """The driver's loop: shows the tasks' progress, gathers their outcomes."""

    def __init__(
        self,
        ray: ModuleType,
        hub: Any,
        groups: list[tuple[WorkerPart, list[Link]]],
        listener: ProgressListener,
        started: float,
        *,
        hint: str,
    ) -> None:
        self.ray, self.hub, self.listener, self.started = ray, hub, listener, started
        self.hint = hint
        """What to do about the files of a task that failed or was lost."""
        self.waiting = {
            group.index: Snapshot(
                files=tuple(FileProgress(link.name, "pending", None, 0, 0) for link in part),
                fetched=0,
                elapsed=0.0,
                speed=0.0,
            )
            for group, part in groups
        }
        self.reported: set[str] = set()
        self.fetched = 0

    def wait(self, submitted: dict[Any, tuple[WorkerPart, list[Link]]]) -> dict[str, FileOutcome]:
        outcomes: dict[str, FileOutcome] = {}
        pending = dict(submitted)
        try:
            while pending:
                ready, _ = self.ray.wait(list(pending), num_returns=len(pending), timeout=0.25)
                for ref in ready:
                    group, part = pending.pop(ref)
                    outcomes.update(self._result(ref, group, part))
                self._show()
        except BaseException:
            for ref in pending:  # a KeyboardInterrupt in each task: its state is saved
                self.ray.cancel(ref)
            self.ray.wait(list(pending), num_returns=len(pending), timeout=20)
            raise
        self._show()
        for outcome in outcomes.values():
            self._report(outcome)
        return outcomes

    def _result(self, ref: Any, group: WorkerPart, part: list[Link]) -> dict[str, FileOutcome]:
        try:
            results: list[FileOutcome] = self.ray.get(ref)
        except self.ray.exceptions.RayTaskError as error:
            cause = error.cause
            if isinstance(cause, LinksExpiredError):  # this group's links alone
                return {link.name: _ended(link, "expired", cause) for link in part}
            if isinstance(cause, InputError):
                raise cause from None
            message = cause.message if isinstance(cause, SA1BError) else repr(cause)
            results = _failed(part, f"{group.label}: {message}", self.hint)
        except self.ray.exceptions.RayError as error:
            log.warning("%s lost: %s", group.label, type(error).__name__)
            results = _failed(part, f"{group.label} was lost with its node too often", self.hint)
        return {outcome.name: outcome for outcome in results}

    def _show(self) -> None:
        latest, lost, outcomes = self.ray.get(self.hub.drain.remote())
        parts = [latest.get(index, waiting) for index, waiting in self.waiting.items()]
        snapshot = combine(parts, elapsed=time.monotonic() - self.started)
        self.fetched = snapshot.fetched + lost
        self.listener.update(replace(snapshot, fetched=self.fetched))
        for outcome in outcomes:
            self._report(outcome)

    def _report(self, outcome: FileOutcome) -> None:
        if outcome.name not in self.reported:
            self.reported.add(outcome.name)
            self.listener.finished(outcome)


def _ended(link: Link, state: FileState, error: SA1BError) -> FileOutcome:
    return FileOutcome(link.name, state, None, error.message, error.hint)


def _failed(part: list[Link], message: str, hint: str) -> list[FileOutcome]:
    return [FileOutcome(link.name, "failed", None, message, hint) for link in part]


class _Hub:
    """A Ray actor on the driver's node: each task's latest snapshot, and the outcomes
    not yet shown. A task run again (its node lost) starts its byte count anew; what
    its lost attempt had fetched is kept apart, so that the total stays true."""

    def __init__(self) -> None:
        self.latest: dict[int, Snapshot] = {}
        self.attempts: dict[int, str] = {}
        self.lost = 0
        self.outcomes: list[FileOutcome] = []

    def push(
        self, index: int, attempt: str, snapshot: Snapshot, outcomes: list[FileOutcome]
    ) -> None:
        if self.attempts.get(index, attempt) != attempt:
            self.lost += self.latest[index].fetched
        self.attempts[index], self.latest[index] = attempt, snapshot
        self.outcomes.extend(outcomes)

    def drain(self) -> tuple[dict[int, Snapshot], int, list[FileOutcome]]:
        outcomes, self.outcomes = self.outcomes, []
        return dict(self.latest), self.lost, outcomes


class _HubListener:
    """In a task: reports its progress to the hub, every :data:`PUSH_INTERVAL` at most."""

    def __init__(self, hub: Any, index: int) -> None:
        self.hub, self.index, self.attempt = hub, index, uuid.uuid4().hex
        self.outcomes: list[FileOutcome] = []
        self.last: Snapshot | None = None
        self.pushed = 0.0

    def update(self, snapshot: Snapshot) -> None:
        self.last = snapshot
        if time.monotonic() - self.pushed >= PUSH_INTERVAL:
            self.flush()

    def finished(self, outcome: FileOutcome) -> None:
        self.outcomes.append(outcome)

    def flush(self) -> Any:
        """Report now; returns the call's reference (to wait for the last one)."""
        self.pushed = time.monotonic()
        outcomes, self.outcomes = self.outcomes, []
        if self.last is None:
            self.outcomes = outcomes
            return None
        return self.hub.push.remote(self.index, self.attempt, self.last, outcomes)


def _run_group(
    links: list[Link],
    config: DownloadConfig,
    group: WorkerPart,
    hub: Any,
    *,
    node_local: bool,
    settings: StoreSettings | None,
) -> list[FileOutcome]:
    """One Ray task: the group's files, by the ordinary engine, on this node."""
    import ray

    if config.upload is not None:  # nothing shared but the bucket (see bucket_task)
        assert settings is not None
        settings.apply(os.environ)
        where, node = config.upload.location, ray.get_runtime_context().get_node_id()
        local = task_state(
            where, config.state_dir, group, node, environ=os.environ, home=Path.home()
        )
        start_from_bucket(where, local, group)
        task_config = replace(config, worker=group, out=local, state_dir=local, check_space=False)
    elif node_local:  # OUT is this node's own disk: the store can live there, as a worker's
        task_config = replace(config, worker=group)  # each node checks its own disk
    else:
        shared = config.out / WORK_DIR / WORKERS / group.folder
        local = _node_state(config, group, ray.get_runtime_context().get_node_id())
        _start_from(shared, local)
        task_config = replace(
            config, worker=group, state_dir=local, state_copy=shared, check_space=False
        )
    listener = _HubListener(hub, group.index)
    result = api.download(links, task_config, listener=listener)
    last = listener.flush()
    if last is not None:
        ray.get(last)
    return list(result.outcomes)


def _node_state(config: DownloadConfig, group: WorkerPart, node: str) -> Path:
    """The task's state folder on this node's own disk: under ``--state-dir`` if given
    (the same path on every node), else the node's temporary folder; apart for each
    output folder, each node (nodes may share a disk: their states must not) and group."""
    root = config.state_dir or Path(tempfile.gettempdir()) / "sa1b-state"
    folder = hashlib.sha256(str(config.out.resolve()).encode()).hexdigest()[:16]
    return root / folder / node[:16] / group.folder


def _start_from(shared: Path, local: Path) -> None:
    """Begin from the shared copy of the group's store when there is one: it is what
    the last node to run the group made durable (this node's own may be older)."""
    if not (shared / STATE_DB).is_file():
        return
    shutil.rmtree(local, ignore_errors=True)
    local.mkdir(parents=True)
    shutil.copyfile(shared / STATE_DB, local / STATE_DB)
