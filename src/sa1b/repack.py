"""A shard repacked into a bucket (``--layout wds``, ``--only json``): which bytes of the
new tar are made here and which are a source member's data. Pure: no I/O.

SA-1B's shards hold their members in random order, and a WebDataset tar needs a
sample's parts adjacent. Into a bucket there is no disk to gather a shard on, so the
upload first learns the shard's member map (:class:`Mapped`: name, data offset, size,
mtime) by a walk of its headers, then plans the new tar from it (:func:`plan_output`):
the members kept, in :func:`sa1b.layout.sample_order`, each as the one-block ustar
header :func:`sa1b.tarformat.ustar_header` makes, its data, its padding; then the two
end blocks. These are exactly the bytes a local ``--layout wds`` download writes
(:mod:`sa1b.extract.archive`), so the object equals that file. The plan is a function
of the map alone: a rerun cuts the same parts with the same bytes, which is what lets
it keep the parts the bucket holds.

A part of the new tar (:meth:`OutputPlan.fill`) is the bytes made here (headers,
padding, end blocks: :class:`Made`) and the source ranges of members' data
(:class:`Copied`), each fetched by its own ranged request.
"""

from __future__ import annotations

import bisect
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Literal

from sa1b.errors import ExtractionError
from sa1b.layout import sample_order
from sa1b.tarformat import BLOCK, END_OF_ARCHIVE, padded, ustar_header
from sa1b.tarwalk import Entry

Output = Literal["tars", "wds", "json", "jpg"]
"""What a shard becomes in a bucket: its tar as it is, or a repacked tar of all its
members (``wds``) or of one kind (``json``, ``jpg``: ``--only``)."""
REPACKS: tuple[Output, ...] = ("wds", "json", "jpg")
"""The outputs that are repacked tars, each under its own folder of the prefix."""


def output_key(output: Output, shard: str) -> str:
    """The key (under the prefix) of ``shard`` repacked as ``output``: ``wds/sa_1.tar``
    (where a local ``--layout wds`` folder has it) or ``json/sa_1.tar``."""
    return f"{output}/{shard}"


@dataclass(frozen=True, slots=True)
class Mapped:
    """A regular member of the source tar: its name (normalised), data offset, size,
    and the mtime its header gives (the new header keeps it)."""

    name: str
    offset: int
    size: int
    mtime: int


@dataclass(frozen=True, slots=True)
class Made:
    """Bytes of the new tar made here, at ``at`` in it."""

    at: int
    data: bytes


@dataclass(frozen=True, slots=True)
class Copied:
    """``length`` bytes of the new tar at ``at``: the source's from ``source``."""

    at: int
    source: int
    length: int


def kept(output: Output, name: str) -> bool:
    """Whether the member ``name`` goes into the ``output`` tar."""
    return output == "wds" or name.lower().endswith(f".{output}")


def plan_output(members: Iterable[Mapped], output: Output, *, shard: str) -> OutputPlan:
    """The new tar of ``shard`` made of ``members`` (its map): raises
    :class:`~sa1b.errors.ExtractionError` for a member whose name a plain ustar header
    cannot hold (the same refusal as a local ``--layout wds``)."""
    chosen = [m for m in members if kept(output, m.name)]
    chosen.sort(key=lambda member: sample_order(base_name(member.name)))
    return OutputPlan(tuple(chosen), shard=shard)


def base_name(name: str) -> str:
    """A member's name in the new tar: the last part of its path, as the wds layout
    places it."""
    return name.rpartition("/")[2]


class OutputPlan:
    """The new tar: ``members`` in this order from byte 0, each a header block, its data
    and its padding, then the two end blocks."""

    def __init__(self, members: Sequence[Mapped], *, shard: str) -> None:
        self.members = tuple(members)
        self.shard = shard
        self.headers: list[int] = []
        """Where each member's header starts in the new tar."""
        position = 0
        for member in self.members:
            self.headers.append(position)
            position += BLOCK + padded(member.size)
        self.size = position + len(END_OF_ARCHIVE)
        for member in self.members:
            self._header(member)  # a name no header holds fails the shard before any request

    @property
    def entries(self) -> list[Entry]:
        """The new tar's catalog (:mod:`sa1b.catalog`): each member's data offset in it."""
        return [
            Entry(base_name(m.name), at + BLOCK, m.size)
            for m, at in zip(self.members, self.headers, strict=True)
        ]

    def fill(self, start: int, end: int) -> Iterator[Made | Copied]:
        """What bytes ``[start, end)`` of the new tar are, in order, covering them."""
        first = max(0, bisect.bisect_right(self.headers, start) - 1)
        for index in range(first, len(self.members)):
            at, member = self.headers[index], self.members[index]
            if at >= end:
                return
            data = at + BLOCK
            following = data + padded(member.size)
            yield from _made(at, self._header(member), start, end)
            low, high = max(start, data), min(end, data + member.size)
            if low < high:
                yield Copied(low, member.offset + low - data, high - low)
            yield from _made(data + member.size, bytes(following - data - member.size), start, end)
        tail = self.headers[-1] + BLOCK + padded(self.members[-1].size) if self.members else 0
        yield from _made(tail, END_OF_ARCHIVE, start, end)

    def _header(self, member: Mapped) -> bytes:
        name = base_name(member.name)
        try:
            return ustar_header(name, size=member.size, mtime=member.mtime)
        except ValueError as error:
            raise ExtractionError(
                f"cannot write {name!r} into a wds tar: {error}", shard=self.shard, member=name
            ) from None


def _made(at: int, data: bytes, start: int, end: int) -> Iterator[Made]:
    """``data`` (at ``at`` in the new tar) clipped to ``[start, end)``, if any of it lies there."""
    low, high = max(start, at), min(end, at + len(data))
    if low < high:
        yield Made(low, data[low - at : high - at])
