"""Where an extracted member's bytes are: a file of its own, or a stretch of a wds tar.

:func:`locate` maps a shard's recorded index (each member's path in the output folder,
offset in the source tar, size) to :class:`Extent` values without touching the disk:
in the ``shard``, ``split`` and ``flat`` layouts a member is the file at its path; in
``wds`` its path is ``wds/<shard>.tar/<name>`` and its data lies where
:func:`sa1b.tarformat.data_offsets` puts it, the index being in that tar's order. The
loader reads samples through them; ``verify`` checks them.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from sa1b.layout import archived
from sa1b.tarformat import data_offsets

Index = Sequence[tuple[str, int, int]]
"""A shard's members: path in the output folder, data offset in the source tar, size."""


@dataclass(frozen=True, slots=True)
class Extent:
    """``size`` bytes at ``offset`` in the file at ``path``; the whole file when ``size``
    is None."""

    path: Path
    offset: int = 0
    size: int | None = None

    @property
    def in_archive(self) -> bool:
        return self.size is not None

    def read(self) -> bytes:
        """The bytes; an OSError if the file is gone or ends before them."""
        if self.size is None:
            return self.path.read_bytes()
        fd = os.open(self.path, os.O_RDONLY)
        try:
            data = os.pread(fd, self.size, self.offset)
        finally:
            os.close(fd)
        if len(data) != self.size:
            raise OSError(f"{self.path} ends before the {self.size} bytes at {self.offset}")
        return data


def locate(out: Path, index: Index) -> list[Extent]:
    """Where each member of ``index`` is below ``out``, in the index's order."""
    extents = [Extent(out / path) for path, _, _ in index]
    positions: dict[PurePosixPath, list[int]] = {}
    for position, (path, _, _) in enumerate(index):
        inside = archived(PurePosixPath(path))
        if inside is not None:
            positions.setdefault(inside[0], []).append(position)
    for tar, members in positions.items():
        offsets = data_offsets(index[position][2] for position in members)
        for position, offset in zip(members, offsets, strict=True):
            extents[position] = Extent(out / tar, offset, index[position][2])
    return extents
