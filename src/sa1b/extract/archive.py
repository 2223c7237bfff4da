"""Write a shard's members as one WebDataset-ready tar (``--layout wds``).

The walk over the partial file (:mod:`sa1b.extract.shard`) checks every member as it
arrives, exactly as for the other layouts, but copies nothing: a sample's parts lie
anywhere in the shard, so the new tar can only be written once the whole shard is in.
:func:`write_archive` then writes it into staging: for each member, in the order
:func:`sa1b.layout.sample_order` gives, a plain one-block ustar header
(:func:`sa1b.tarformat.ustar_header`), its data copied from the partial file in the
kernel, its padding; then the two end blocks. Where each member's data lies in the new
tar follows from the sizes alone (:func:`sa1b.tarformat.data_offsets`): the index the
shard records (in this order) is all the loader and ``verify`` need to find them.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from sa1b.errors import ExtractionError
from sa1b.extract.reader import Reader, write_all
from sa1b.store.writeback import start_writeback
from sa1b.tarformat import END_OF_ARCHIVE, padded, ustar_header

if TYPE_CHECKING:
    from sa1b.extract.shard import Member


def write_archive(reader: Reader, members: Sequence[Member], path: Path, *, shard: str) -> None:
    """Write ``members`` (read from ``reader``'s file, in this order) as a new tar at
    ``path``; its writeback is started, its sync left to the extractor."""
    path.parent.mkdir(parents=True, exist_ok=True)
    out = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
    try:
        padding = b""  # the previous member's, written with the next header: one write
        for member in members:
            try:
                header = ustar_header(member.path.name, size=member.size, mtime=member.mtime)
            except ValueError as error:
                raise ExtractionError(
                    f"cannot write {member.path.name!r} into a wds tar: {error}",
                    shard=shard,
                    member=member.path.name,
                ) from None
            write_all(out, padding + header)
            reader.copy(member.offset, member.size, out)
            padding = bytes(padded(member.size) - member.size)
        write_all(out, padding + END_OF_ARCHIVE)
        start_writeback(out)
    finally:
        os.close(out)
