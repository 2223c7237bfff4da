"""Split one download among N workers: disjoint, complete, stable. Pure.

Each worker of an array job reads the same links file and keeps the files of its own
part. Every worker must compute the same parts without talking to the others, so a part
depends only on what all of them see alike: the selected file names (never the row
order, which differs between versions of the official links file) and the count.

Files are dealt in name order, round-robin: worker ``i`` of ``n`` takes the ``i``-th,
``(i+n)``-th, ... selected name. Shards are nearly equal (about 10.5 GiB), so parts of
equal counts are parts of equal bytes within one shard. Sizes are not weighed: no
worker knows them before the server answers, and workers cannot ask one another; an
extra (``sa_co_gold.tar``) counts as one file like a shard.

Where the index comes from: ``--shard-index I --shard-count N``; else a Slurm array
(``SLURM_ARRAY_TASK_ID`` from ``SLURM_ARRAY_TASK_MIN``, ``SLURM_ARRAY_TASK_COUNT``);
else a Kubernetes indexed Job's ``JOB_COMPLETION_INDEX`` with ``--shard-count N``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from sa1b.errors import SelectionError
from sa1b.links import Link


@dataclass(frozen=True, slots=True)
class WorkerPart:
    """This worker's part: ``index`` of ``count`` (from 0), and where that was read."""

    index: int
    count: int
    source: str
    """``--shard-index``, ``SLURM_ARRAY_TASK_ID`` or ``JOB_COMPLETION_INDEX``."""

    @property
    def label(self) -> str:
        """How the part is named to a user: ``worker 3 of 8``."""
        return f"worker {self.index} of {self.count}"

    @property
    def folder(self) -> str:
        """The name of this worker's state folder: ``3-of-8``."""
        return f"{self.index}-of-{self.count}"


def worker_part(index: int | None, count: int | None, env: Mapping[str, str]) -> WorkerPart | None:
    """The part this process takes, or ``None`` for the whole download.

    Raises :class:`SelectionError` for an index without a count (or the reverse, when
    no scheduler gives the missing half) and for an index outside ``[0, count)``.
    """
    if index is not None:
        if count is None:
            raise SelectionError(
                "--shard-index needs --shard-count", hint="give both, e.g. --shard-count 8"
            )
        return _checked(index, count, "--shard-index")
    if "SLURM_ARRAY_TASK_ID" in env and "SLURM_ARRAY_TASK_COUNT" in env:
        first = _integer(env.get("SLURM_ARRAY_TASK_MIN", "0"), "SLURM_ARRAY_TASK_MIN")
        task = _integer(env["SLURM_ARRAY_TASK_ID"], "SLURM_ARRAY_TASK_ID")
        total = _integer(env["SLURM_ARRAY_TASK_COUNT"], "SLURM_ARRAY_TASK_COUNT")
        if count is not None and count != total:
            raise SelectionError(
                f"--shard-count {count} disagrees with SLURM_ARRAY_TASK_COUNT={total}",
                hint="leave --shard-count out inside a Slurm array",
            )
        return _checked(task - first, total, "SLURM_ARRAY_TASK_ID")
    if "JOB_COMPLETION_INDEX" in env and count is not None:
        job_index = _integer(env["JOB_COMPLETION_INDEX"], "JOB_COMPLETION_INDEX")
        return _checked(job_index, count, "JOB_COMPLETION_INDEX")
    if count is not None:
        raise SelectionError(
            "--shard-count needs --shard-index (or a Slurm array or a Kubernetes indexed Job)",
            hint="give this worker's index, from 0, with --shard-index",
        )
    return None


def take_part(links: Sequence[Link], part: WorkerPart) -> list[Link]:
    """The links of ``part``, in their original order (see the module docstring)."""
    names = sorted(link.name for link in links)
    mine = set(names[part.index :: part.count])
    return [link for link in links if link.name in mine]


def _checked(index: int, count: int, source: str) -> WorkerPart:
    if count < 1:
        raise SelectionError(f"{source}: the worker count is {count}", hint="it must be 1 or more")
    if not 0 <= index < count:
        raise SelectionError(
            f"{source}: worker index {index} is outside 0..{count - 1}",
            hint="indexes count from 0 up to the worker count minus one",
        )
    return WorkerPart(index, count, source)


def _integer(text: str, name: str) -> int:
    try:
        return int(text)
    except ValueError:
        message = f"{name}={text!r} is not a number"
        raise SelectionError(message, hint="unset it or set it to a number") from None
