"""Which filesystem holds a folder, whether one ``syncfs`` there makes durable all
that an ``fsync`` of each file written would, and whether extraction writes there past
the page cache.

Extraction makes about 22,000 files a shard and syncs them at each checkpoint. An
``fsync`` each costs the filesystem a journal commit or a device flush each (on NFS, a
COMMIT each); one ``syncfs`` costs one. Measured on a full-size shard streamed and
extracted over HTTPS, alternating: 592-667 MB/s against 485-618 on this machine's root
filesystem, 677-732 against 572-678 on a journaled ext4 loop
(``benchmarks/rehearsal-results.txt``). ``syncfs`` is used only where it is known to be
as strict as the ``fsync`` calls it replaces (:func:`syncfs_suffices`); elsewhere each
file is synced.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

SYNCFS_KERNEL = (5, 8)
"""From Linux 5.8 on, ``syncfs`` reports the write errors met on its filesystem; before,
it could succeed where an ``fsync`` of the file would have failed."""

SYNCFS_FILESYSTEMS = frozenset(
    {"ext2", "ext3", "ext4", "xfs", "btrfs", "f2fs", "tmpfs", "nfs", "nfs4"}
)
"""Filesystems whose ``syncfs`` writes out and commits every dirty file, as ``fsync``
would one by one. Not FUSE ones (whose daemon is told of each ``fsync`` but of a
``syncfs`` only from Linux 5.15, if it asks), nor any other not known here."""

DIRECT_FILESYSTEMS = frozenset({"ext4", "xfs"})
"""Filesystems on a local disk where extraction writes members direct (``O_DIRECT``: no
page cache), measured cheaper and as fast (:mod:`sa1b.engine.unpack`). Not network ones
(a direct write there waits for the server, one at a time), FUSE, tmpfs (memory already),
btrfs or filesystems not known here: through the page cache."""

MOUNTINFO = Path("/proc/self/mountinfo")


def syncfs_suffices(kernel: str, filesystem: str | None) -> bool:
    """Whether one ``syncfs`` is as strict as an ``fsync`` of each file, on Linux release
    ``kernel`` (``os.uname().release``) and a filesystem of type ``filesystem``."""
    found = re.match(r"(\d+)\.(\d+)", kernel)
    if found is None or filesystem not in SYNCFS_FILESYSTEMS:
        return False
    return (int(found[1]), int(found[2])) >= SYNCFS_KERNEL


def mount_type(mountinfo: str, path: str) -> str | None:
    """The type of the filesystem mounted deepest above ``path`` (absolute, symbolic
    links resolved), from the text of ``/proc/self/mountinfo``; None if none is."""
    best: tuple[int, str] | None = None
    for line in mountinfo.splitlines():
        fields, _, after = line.partition(" - ")
        parts, kind = fields.split(), after.split()
        if len(parts) < 5 or not kind:
            continue
        point = _unescape(parts[4])
        inside = path == point or path.startswith(point.rstrip("/") + "/")
        if inside and (best is None or len(point) >= best[0]):
            best = (len(point), kind[0])
    return best[1] if best else None


def _unescape(field: str) -> str:
    """A mountinfo field with its octal escapes (``\\040`` for a space) decoded."""
    return re.sub(r"\\([0-7]{3})", lambda m: chr(int(m[1], 8)), field)


def filesystem_type(path: Path) -> str | None:
    """The type of the filesystem holding ``path`` (``ext4``, ``nfs4``...), or None
    where it cannot be told (not Linux)."""
    try:
        mountinfo = MOUNTINFO.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return None
    return mount_type(mountinfo, os.path.realpath(path))


def direct_writes_suit(path: Path) -> bool:
    """Whether files written under ``path`` (a folder, or where one will be made) are
    written direct (:data:`DIRECT_FILESYSTEMS`)."""
    return filesystem_type(path) in DIRECT_FILESYSTEMS


def whole_sync_suffices(path: Path) -> bool:
    """Whether files written under ``path`` (a folder, or where one will be made) may be
    made durable by one ``syncfs`` (:func:`syncfs_suffices`), on this machine."""
    return syncfs_suffices(os.uname().release, filesystem_type(path))
