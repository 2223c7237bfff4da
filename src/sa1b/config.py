"""The frozen configuration of a download, built once at the edge (CLI or caller).

A configuration refuses what cannot go together when it is built, with the one-line
:class:`~sa1b.errors.InputError` the command line prints (naming its options: each is
the field of the same meaning here), so that a library caller is not silently given
less than asked for."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from sa1b.checksums import Digest
from sa1b.errors import InputError
from sa1b.holes import CHECKPOINT_EVERY
from sa1b.layout import LAYOUTS, Layout
from sa1b.net.governor import GovernorPolicy
from sa1b.net.options import TransportOptions
from sa1b.objectstore.location import BucketLocation
from sa1b.objectstore.parts import DEFAULT_CHUNK, DEFAULT_MEMORY, DEFAULT_PART, MAX_PART, MIN_PART
from sa1b.repack import Output
from sa1b.retry import FailureAccount, RetryPolicy
from sa1b.split import WorkerPart
from sa1b.store.paths import OutputPaths

MiB = 1024 * 1024
START_CONNECTIONS = 32
"""Connections open at the start of an adaptive run; the governor grows them. 32 rather
than 64: where the CPU is the limit, fewer handshakes and sockets were 4% faster and
used 10% less CPU; where each connection is capped, one more doubling costs 0.6 s."""
ONLY_KINDS = ("json", "jpg")
"""The members ``--only`` fetches, by the end of their names."""


def only_refuses(option: str) -> InputError:
    """The error for ``--only`` beside an option about whole files (``option`` as the
    command line spells it): ``--only`` reads members of shards by their ranges, and
    never has a tar to keep, check or take from a mirror."""
    return InputError(f"--only fetches members, not whole files: drop {option}")


@dataclass(frozen=True, slots=True, kw_only=True)
class ExtractOptions:
    """Extract shards while they download, into ``layout``; keep the tars or not."""

    layout: Layout = "shard"
    keep_tars: bool = False
    only: str | None = None
    """``json`` or ``jpg``: fetch only these members of each shard by range reads
    (:mod:`sa1b.engine.walk`), never the tars."""
    tar_window: int = CHECKPOINT_EVERY
    """Bytes of a shard's tar extracted between two checkpoints, below which it is freed
    (:mod:`sa1b.holes`)."""

    def __post_init__(self) -> None:
        if self.layout not in LAYOUTS:
            raise InputError(f"--layout: expected one of {', '.join(LAYOUTS)}, got {self.layout!r}")
        if self.tar_window < 1:
            raise InputError(f"--tar-window: expected a size above 0, got {self.tar_window}")
        if self.only is None:
            return
        if self.only not in ONLY_KINDS:
            raise InputError(f"--only: expected one of {', '.join(ONLY_KINDS)}, got {self.only!r}")
        if self.keep_tars:
            raise only_refuses("--keep-tars")
        if self.layout == "wds":
            raise only_refuses("--layout wds")


@dataclass(frozen=True, slots=True, kw_only=True)
class UploadOptions:
    """Stream the tars into ``location`` (``-o s3://BUCKET/PREFIX``), each shard one
    multipart upload of parts of ``part_size`` (:mod:`sa1b.objectstore.parts`).
    ``memory`` bounds the bytes of parts held at once, downloading or uploading
    (``--upload-memory``): a part takes its length when its download is claimed and
    gives it back once uploaded, and no part is claimed while the budget is spent.
    A part is fetched by ranged requests of at most ``chunk`` bytes, several at once
    (:data:`~sa1b.objectstore.parts.DEFAULT_CHUNK`). ``uploaders`` threads send the
    parts (botocore blocks)."""

    location: BucketLocation
    part_size: int = DEFAULT_PART
    memory: int = DEFAULT_MEMORY
    chunk: int = DEFAULT_CHUNK
    uploaders: int = 8
    output: Output = "tars"
    """What each shard becomes: its tar as it is, or a tar made from it
    (:mod:`sa1b.repack`: ``--layout wds``, ``--only json``)."""

    def __post_init__(self) -> None:
        if not MIN_PART <= self.part_size <= MAX_PART:
            raise InputError(
                f"--part-size: S3 takes parts of 5 MiB to 5 GiB, got {self.part_size} bytes"
            )
        if self.memory < self.part_size:
            raise InputError(
                f"--upload-memory: at least one part ({self.part_size} bytes), got {self.memory}"
            )
        if self.uploaders < 1:
            raise InputError("uploader threads must be >= 1")
        if self.chunk < 1:
            raise InputError(f"a part's requests: at least one byte each, got {self.chunk}")


@dataclass(frozen=True, slots=True, kw_only=True)
class DownloadConfig:
    """How to download. Defaults were chosen with ``benchmarks/bench``.

    ``connections`` fixes the number of connections across all files; without it
    the number adapts (:mod:`sa1b.net.governor`) and never passes
    ``max_connections``. ``max_files`` is how many files may be in flight at once (one
    whose download is its output leaves its place once its last requests are under way:
    :mod:`sa1b.jobchoice`); a file's connections grow by stealing work, up to
    ``connections_per_file`` (None: no cap of its own).
    """

    out: Path
    state_dir: Path | None = None
    """Where the store, its lock and the journal live (default ``out/.sa1b``): a local
    disk when ``out`` is on a network filesystem (see :class:`~sa1b.store.paths.OutputPaths`)."""
    state_copy: Path | None = None
    """A folder to keep a copy of the store in, refreshed after every commit: where
    another machine finds it (a cluster task retried elsewhere continues from it, and
    ``sa1b status`` reads it), while the store itself stays on a local disk."""
    worker: WorkerPart | None = None
    """This run's part of a split download (its links are that part already); the
    worker keeps its own store (``out/.sa1b/workers/<i>-of-<n>/`` unless ``state_dir``)."""
    connections: int | None = None
    max_connections: int = 256
    max_files: int = 8
    connections_per_file: int | None = None
    max_rate: float | None = None
    loops: int = 1
    """Transport event loops, each a thread (see :mod:`sa1b.net.transport`)."""
    transport: TransportOptions = field(default_factory=TransportOptions)
    """Timeouts, proxies (none unless given: the CLI reads the environment) and CA bundle."""
    retry: RetryPolicy = field(default_factory=RetryPolicy)
    checksums: Mapping[str, Digest] = field(default_factory=dict)
    check_space: bool = True
    """Refuse to start a download that cannot fit (:func:`sa1b.api.check_space`)."""
    mirrors: tuple[str, ...] = ()
    """Base URLs tried in turn for a file whose own link failed for good or expired:
    ``BASE/<file name>`` (see :func:`sa1b.api.download`)."""
    extract: ExtractOptions | None = field(default_factory=ExtractOptions)
    """Extract shards while they download; None keeps the tars only."""
    upload: UploadOptions | None = None
    """Stream the tars into a bucket instead of ``out`` (which then holds the state
    only: ``out`` is the state folder); needs ``extract=None``."""
    first_request: int = 4 * MiB
    request_seconds: float = 1.0
    min_request: int = 1 * MiB
    max_request: int = 64 * MiB
    min_steal: int = 512 * 1024
    """A steal takes at least this, from a range not yet requested of at least twice this
    (:meth:`sa1b.segments.SegmentPlan.steal`): a file with less than ``2 * min_steal``
    beyond its first request (1 MiB beyond ``first_request``: under 5 MiB) is fetched on
    one connection."""
    commit_interval: float = 1.0
    transient_commit_interval: float = 15.0
    """How often tars that are deleted once extracted are synced and recorded."""
    tick_interval: float = 0.25
    expiry_check_after: float = 20.0
    """Seconds into a run before its speed is trusted to predict link expiry."""

    def __post_init__(self) -> None:
        counts = (self.connections, self.max_connections, self.max_files, self.loops)
        if min(n for n in (*counts, self.connections_per_file) if n is not None) < 1:
            raise InputError("connection, file and loop counts must be >= 1")
        if self.max_rate is not None and self.max_rate <= 0:
            raise InputError(f"--max-rate: expected bytes/s above 0, got {self.max_rate}")
        if self.upload is not None and self.extract is not None:
            raise InputError(
                f"{self.upload.location}: only tars go into a bucket (the shards', or made from "
                "them): an extracted layout is one object per image, millions of PUTs",
                hint="extract=None, with the upload's output 'tars', 'wds' or 'json'",
            )
        if self.upload is not None and self.upload.output != "tars" and self.checksums:
            raise InputError(
                f"{self.upload.location}: a tar made in the bucket is not the source tar: "
                "the checksums file cannot check it",
                hint="download the tars (output 'tars') to check them",
            )
        if self.extract is not None and self.extract.only is not None:
            if self.checksums:
                raise only_refuses("--checksums")
            if self.mirrors:
                raise only_refuses("--mirror")

    @property
    def paths(self) -> OutputPaths:
        return OutputPaths.of(self.out, self.state_dir, self.worker.folder if self.worker else None)

    def failure_account(self) -> FailureAccount:
        """A new account of one file's failures. Progress that resets its count must beat
        the speed floor, or under ``max_rate`` a file's share of it when that is lower
        (sa1b itself holds each file below it then)."""
        floor = self.transport.timeouts.floor
        if self.max_rate is not None:
            floor = min(floor, self.max_rate / self.max_files)
        return FailureAccount(self.retry, floor=floor)

    def connection_policy(self) -> GovernorPolicy:
        """How many connections: ``connections`` always, or adaptive up to the ceiling."""
        if self.connections is not None:
            return GovernorPolicy.fixed(self.connections)
        start = min(START_CONNECTIONS, self.max_connections)
        return GovernorPolicy(start=start, ceiling=self.max_connections, minimum=min(2, start))
