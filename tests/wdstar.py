"""The tar ``--layout wds`` must write for a shard, made here without sa1b: Python's
``tarfile`` writes it, from the members sorted by this module's own reading of the rule
(samples by numeric image id, other names after by name, parts of a sample by extension)."""

from __future__ import annotations

import io
import re
import tarfile
from collections.abc import Iterable

BLOCK = tarfile.BLOCKSIZE


def wds_order(name: str) -> tuple[bool, int, str, str]:
    key, _, extension = name.partition(".")
    image_id = re.fullmatch(r"sa_([0-9]+)", key)
    return (image_id is None, int(image_id.group(1)) if image_id else 0, key, extension)


def wds_tar(members: Iterable[tuple[str, bytes]], *, mtime: int) -> bytes:
    """``members`` (names with or without folders) as the wds tar: one ustar header
    each (mode 0644, owner 0:0, no names), then the two end blocks and nothing more."""
    plain = sorted(((name.rsplit("/", 1)[-1], data) for name, data in members), key=_by_name)
    buffer = io.BytesIO()
    end = 0
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.USTAR_FORMAT) as archive:
        for name, data in plain:
            info = tarfile.TarInfo(name)
            info.size, info.mtime, info.mode = len(data), mtime, 0o644
            info.uname = info.gname = ""
            archive.addfile(info, io.BytesIO(data))
            end += BLOCK + -(-len(data) // BLOCK) * BLOCK
    # tarfile pads its output to a 10 KiB record; sa1b ends after the two zero blocks.
    return buffer.getvalue()[: end + 2 * BLOCK]


def _by_name(member: tuple[str, bytes]) -> tuple[bool, int, str, str]:
    return wds_order(member[0])
