"""Free a shard's tar behind its extractor: when to save a checkpoint, what to punch. Pure.

A shard whose tar is deleted once extracted would otherwise take its size twice at its
peak (the tar, preallocated whole, and its extracted files). Its extractor saves a
checkpoint every :data:`CHECKPOINT_EVERY` bytes of tar (the last member boundary, with
every member before it staged and synced; :mod:`sa1b.store.resume`) and only then
punches holes below it (``FALLOC_FL_PUNCH_HOLE``): a shard in flight costs its extracted
size plus at most one checkpoint interval (and the member being copied). A crash
resumes at the saved checkpoint, trusting the staged members before it; the bytes
below it are never read again. A store that takes the shard on from another (a split
download's worker) takes its checkpoint too; a run that reads the whole tar after all
(``--keep-tars`` now, say) finds the holes at start-up and fetches those bytes again
(:func:`sa1b.reconcile.freed`), never reading them as zeros.

No holes where the tar's bytes are still needed whole: ``--keep-tars`` (the tar is the
product), ``--checksums`` (its digest is computed over every byte by the extractor, and
a resumed extraction could not see the bytes before its checkpoint again), and the
``wds`` layout (its archive is written from the whole tar once it is in).
"""

from __future__ import annotations

CHECKPOINT_EVERY = 256 * 1024 * 1024
"""Bytes of tar between two saved checkpoints: the disk a shard in flight may take beyond
its extracted size, against an ``fsync`` of each file staged since the last one (and of
their folders) and one store write each time."""
BLOCK = 4096
"""Holes end on a block boundary (a partial block is zeroed, not freed)."""


def punches(*, digest: bool, keep_tars: bool, layout: str) -> bool:
    """Whether a shard's tar is freed behind its extractor (see the module docstring)."""
    return not digest and not keep_tars and layout != "wds"


def checkpoint_due(boundary: int, saved: int, *, every: int = CHECKPOINT_EVERY) -> bool:
    """Save the member boundary at ``boundary``: ``every`` bytes past the one ``saved``."""
    return boundary - saved >= every


def hole_end(saved: int | None) -> int:
    """Where the hole ends once a checkpoint at ``saved`` is durable (None: the walk
    ended, nothing more to free): never past it. The hole starts at byte 0 each time: a
    rerun may have fetched again bytes below its checkpoint (recorded late), and a
    hole punched again costs nothing."""
    return 0 if saved is None else saved - saved % BLOCK
