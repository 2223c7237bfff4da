"""The frozen configuration of a download, built once at the edge (CLI or caller)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from sa1b.checksums import Digest
from sa1b.http import Timeouts
from sa1b.proxy import Proxies
from sa1b.retry import RetryPolicy
from sa1b.unpacker import ExtractOptions

MiB = 1024 * 1024


@dataclass(frozen=True, slots=True, kw_only=True)
class DownloadConfig:
    """How to download. Defaults were chosen with ``benchmarks/bench.py``.

    ``connections`` is the total across files; ``max_files`` how many files may be
    in flight at once; a file's connections grow by stealing work, up to
    ``connections_per_file``.
    """

    out: Path
    connections: int = 64
    max_files: int = 8
    connections_per_file: int = 64
    max_rate: float | None = None
    timeouts: Timeouts = field(default_factory=Timeouts)
    proxies: Proxies = field(default_factory=Proxies)
    """No proxy unless given; the CLI passes ``Proxies.from_environment(os.environ)``."""
    retry: RetryPolicy = field(default_factory=RetryPolicy)
    checksums: Mapping[str, Digest] = field(default_factory=dict)
    extract: ExtractOptions | None = field(default_factory=ExtractOptions)
    """Extract shards while they download; None keeps the tars only."""
    read_size: int = 256 * 1024
    first_request: int = 4 * MiB
    request_seconds: float = 1.0
    min_request: int = 1 * MiB
    max_request: int = 64 * MiB
    min_steal: int = 512 * 1024
    commit_interval: float = 1.0
    transient_commit_interval: float = 15.0
    """How often tars that are deleted once extracted are synced and recorded."""
    tick_interval: float = 0.25
    expiry_check_after: float = 20.0
    """Seconds into a run before its speed is trusted to predict link expiry."""

    def __post_init__(self) -> None:
        if self.connections < 1 or self.max_files < 1 or self.connections_per_file < 1:
            raise ValueError("connections, max_files and connections_per_file must be >= 1")
        if self.max_rate is not None and self.max_rate <= 0:
            raise ValueError("max_rate must be positive")
