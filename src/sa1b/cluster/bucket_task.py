"""What a Ray task needs to stream its files into a bucket (``-o s3://BUCKET/PREFIX``),
where no folder is shared between nodes and the bucket is the only common ground.

- **Its state**: a store of its own on its node's local disk (:func:`task_state`), under
  ``--state-dir`` if given (the same path on every node), else that node's cache folder
  for the bucket (``~/.cache/sa1b/s3/BUCKET/PREFIX``), in ``ray/<node>/<i>-of-<n>/``:
  apart for each node (nodes may share a disk; SQLite and its locks are not safe across
  hosts) and each task. Its copy goes into the bucket as a split worker's does,
  ``PREFIX/.sa1b/workers/<i>-of-<n>/state.db``: each task of a run has its own key, so
  no two tasks write the same copy.
- **Where it starts** (:func:`start_from_bucket`): from that copy when the bucket holds
  one (what the last node to run the task put there; this node's own store may be
  older), then the engine asks the bucket which parts each upload holds (ListParts). So
  a task run again on another node, its node lost, keeps the parts already uploaded.
- **The store's settings** (:class:`StoreSettings`): the ``AWS_*`` variables of the
  driver's environment that reach the bucket (:data:`STORE_VARIABLES`), handed to each
  task as an argument and set in its worker's environment, where botocore's chain reads
  them; a node's own configuration (its ``~/.aws`` files, its instance role) serves for
  what the driver's environment does not set. Not through Ray's ``runtime_env``: Ray's
  runtime-env agent writes a runtime_env whole, its ``env_vars`` included, into its log
  on every node (``Creating runtime env: ...``), and Ray's state API serves it (only its
  dashboard, to a browser, hides the values). A task's arguments stay in the memory of
  the driver and of the workers that run it.
"""

from __future__ import annotations

import logging
import shutil
from collections.abc import Mapping, MutableMapping
from dataclasses import dataclass
from pathlib import Path

from sa1b.api.bucket import fetch_state_copy
from sa1b.objectstore.location import BucketLocation
from sa1b.split import WorkerPart
from sa1b.store.paths import STATE_DB, bucket_state

log = logging.getLogger(__name__)

STORE_VARIABLES = (
    "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY",
    "AWS_SESSION_TOKEN",
    "AWS_REGION",
    "AWS_DEFAULT_REGION",
    "AWS_ENDPOINT_URL",
    "AWS_ENDPOINT_URL_S3",
    "AWS_CA_BUNDLE",
    "AWS_PROFILE",
    "AWS_CONFIG_FILE",
    "AWS_SHARED_CREDENTIALS_FILE",
)
"""The variables of botocore's chain sa1b's bucket client reads: credentials, region,
endpoint, CA bundle, and the profile with the files it is read from."""


@dataclass(frozen=True, slots=True, repr=False)
class StoreSettings:
    """The driver's settings for the store, for the tasks. Shown by name only: a value
    may be a secret, and an object's repr can end up in a log or an error."""

    variables: Mapping[str, str]

    @classmethod
    def of(cls, environ: Mapping[str, str]) -> StoreSettings:
        """Those of :data:`STORE_VARIABLES` that ``environ`` sets."""
        return cls({name: environ[name] for name in STORE_VARIABLES if environ.get(name)})

    def apply(self, environ: MutableMapping[str, str]) -> None:
        """Set them in a task's worker, before it reaches the bucket (a worker serves
        the tasks of one Ray job alone)."""
        environ.update(self.variables)

    def __repr__(self) -> str:
        return f"StoreSettings({', '.join(sorted(self.variables))})"


def task_state(
    location: BucketLocation,
    state_dir: Path | None,
    task: WorkerPart,
    node: str,
    *,
    environ: Mapping[str, str],
    home: Path,
) -> Path:
    """The state folder of ``task`` on ``node``, whose environment and home folder are
    ``environ`` and ``home`` (see the module docstring)."""
    root = state_dir or bucket_state(location.bucket, location.prefix, environ, home)
    return root / "ray" / node[:16] / task.folder


def start_from_bucket(location: BucketLocation, state: Path, task: WorkerPart) -> None:
    """Begin ``task``'s store in ``state`` from its copy in the bucket when there is
    one (fetched beside it first: a store left here stays if there is none)."""
    seed = state.with_name(f"{state.name}.seed")
    shutil.rmtree(seed, ignore_errors=True)
    if fetch_state_copy(location, seed / STATE_DB, worker=task.folder):
        shutil.rmtree(state, ignore_errors=True)
        seed.rename(state)
        log.info("%s: continuing from its state copy in %s", task.label, location)
