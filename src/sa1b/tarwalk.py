"""sa1b's one tar reader: which bytes of a tar to read next, and what they hold. Pure.

Extraction, ``sa1b download --only`` and ``sa1b verify`` all read a tar through
:class:`TarWalk`, so a tar is damaged for all three or for none. It reads each header
(512 bytes) and jumps over the data of a member it does not want; the data of one it
wants is asked for *together with the header after it*, so that over the network a
wanted member costs one round trip and an unwanted one a 512-byte read. Extraction
wants no data from it (it copies each member's data itself, in the kernel, when
:attr:`TarWalk.on_member` names it); ``verify`` reads the headers of a kept tar.

One definition of a sound archive: every header parses (its checksum included);
pax and GNU records rename the member after them; every member is safe
(:func:`sa1b.layout.member_target`: links, devices, absolute or ``..`` names make the
shard unsafe), appears once and ends inside the archive; two zero blocks end it, and
nothing but zeros follows them (a tool pads a tar to its record size with zeros; any
other byte there is data a reader of the members would never see).

:class:`TarWalk` is the state machine: :meth:`~TarWalk.need` says which bytes it
needs next, :meth:`~TarWalk.feed` takes bytes at an offset (a range answer, or a
whole stream from a server that ignores ranges: bytes it does not need are passed
over) and returns the wanted members' data as :class:`Piece` values. Every regular
member goes into the shard's catalog (:class:`Entry`: name, data offset, size), so a
later run can fetch any member by its range with no second walk.
:attr:`~TarWalk.checkpoint` is the last member boundary: a walk resumed there, with
the catalog up to it, goes on as if it had never stopped (for a walk that wants no data,
:attr:`~TarWalk.resume_point` is as good and usually further on: the next header).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import PurePosixPath

from sa1b.errors import CorruptArchiveError
from sa1b.layout import Layout, member_target, normalise
from sa1b.tarformat import (
    BLOCK,
    MAX_META,
    META_TYPES,
    Header,
    TarFormatError,
    apply_overrides,
    meta_record,
    padded,
    parse_block,
)

CHUNK = 4 * 1024 * 1024
"""The most bytes of a wanted member asked for (and held in memory) at once."""


def headers_only(name: str) -> bool:
    """``wanted`` for a driver that reads the members' data itself, or not at all:
    extraction (it copies each member in the kernel) and ``verify``."""
    return False


@dataclass(frozen=True, slots=True)
class Entry:
    """One regular member of a shard: its name (normalised), data offset and size."""

    name: str
    offset: int
    size: int


@dataclass(frozen=True, slots=True)
class Piece:
    """Bytes ``[at, at + len(data))`` of a wanted member; ``last`` when it is complete."""

    entry: Entry
    at: int
    data: bytes | memoryview
    """A view of the bytes given to :meth:`TarWalk.feed` when they held the whole step
    (or, with ``gather=False``, the member's data they held): valid while they are (a
    caller that reuses its buffer writes the piece first)."""

    @property
    def last(self) -> bool:
        return self.at + len(self.data) == self.entry.size


@dataclass(frozen=True, slots=True)
class Found:
    """A regular member as its header (pax and GNU records applied) says, where the
    layout puts it, and where its data lies: what extraction needs to copy it."""

    header: Header
    target: PurePosixPath
    entry: Entry


@dataclass(slots=True)  # not frozen: made once per header, and frozen costs 1 µs each
class _Need:
    """A range the walk needs whole before it can go on, and what lies in it: member
    data or a pax/GNU record at its start, and a header block at its end."""

    start: int
    end: int
    data: tuple[Entry, int] | None = None
    meta: Header | None = None
    header: int | None = None
    tail: int | None = None
    """The offset of the first end-of-archive block, when the need lies after it."""


class TarWalk:
    """The walk of one shard of ``size`` bytes; see the module's docstring.

    ``wanted(name)`` says which members' data to fetch. ``start`` and ``entries``
    resume a walk at a checkpoint (``start=None``: the walk had ended). ``on_member``
    hears of each regular member as its header is read, before any byte of its data is
    asked for. ``gather=False`` hands out the part of a wanted member's data that a
    feed holds at once, rather than gathering the data cut by the end of a feed into
    one piece: for a driver that feeds large blocks (the parts of a streamed shard) and
    writes each piece as it comes. Raises :class:`~sa1b.errors.CorruptArchiveError` (or
    :class:`~sa1b.errors.UnsafeMemberError`) from :meth:`feed`, and from the constructor
    for a file too short to hold a header.
    """

    def __init__(
        self,
        shard: str,
        size: int,
        wanted: Callable[[str], bool],
        *,
        layout: Layout = "shard",
        start: int | None = 0,
        entries: Sequence[Entry] = (),
        on_member: Callable[[Found], None] | None = None,
        gather: bool = True,
    ) -> None:
        self.shard, self.size, self.wanted, self.layout = shard, size, wanted, layout
        self.on_member, self.gather = on_member, gather
        self.entries: list[Entry] = list(entries)
        self._names = {entry.name for entry in self.entries}
        self._overrides: dict[str, str] = {}
        self._buffer = bytearray()
        self.checkpoint = (size if start is None else start, len(self.entries))
        """Where a resumed walk may start, and how many catalog entries lie before it."""
        self.finished = start is None
        self._need: _Need | None = None if start is None else self._header_need(start)

    @property
    def resume_point(self) -> tuple[int, int]:
        """Where a walk that wants no member data (``headers_only``) may go on, and how
        many catalog entries lie before it: the next header when the walk is between
        members, else :attr:`checkpoint` (inside a pax or GNU record, or the end blocks);
        the size once the walk has ended. Unlike :attr:`checkpoint`, it passes over a
        member whose header is read, since such a walk hands out none of its data."""
        need = self._need
        if need is None:
            return self.size, len(self.entries)
        if need.header == need.start and not self._overrides:  # a header and nothing else
            return need.start, len(self.entries)
        return self.checkpoint

    def need(self) -> tuple[int, int] | None:
        """The bytes ``[start, end)`` wanted next (some may have arrived); None when done."""
        if self._need is None:
            return None
        return self._need.start + len(self._buffer), self._need.end

    def feed(self, offset: int, data: bytes | memoryview) -> list[Piece]:
        """Take ``data``, the bytes at ``offset``; return the wanted members' data in it.

        Bytes before the next needed one are passed over; a gap (bytes after it) is
        a ValueError: the caller asked for other bytes than it gives.
        """
        pieces: list[Piece] = []
        view = memoryview(data)
        while view and (need := self._need) is not None:
            wanted_at = need.start + len(self._buffer)
            if offset + len(view) <= wanted_at:
                break
            if offset < wanted_at:
                view, offset = view[wanted_at - offset :], wanted_at
            elif offset > wanted_at:
                raise ValueError(f"bytes from {offset} given where {wanted_at} is needed")
            take = min(len(view), need.end - offset)
            if not self._buffer and take == need.end - need.start:  # the whole step: a view
                step, view, offset = view[:take], view[take:], offset + take
                pieces.extend(self._complete(need, step))
                continue
            if not self.gather and not self._buffer and need.data is not None:
                # The member's data this feed holds, as a step of its own: a view.
                entry = need.data[0]
                take = min(take, entry.offset + entry.size - offset)
                step, view, offset = view[:take], view[take:], offset + take
                pieces.extend(self._complete(_Need(offset - take, offset, data=need.data), step))
                continue
            self._buffer += view[:take]
            view, offset = view[take:], offset + take
            if len(self._buffer) == need.end - need.start:
                block, self._buffer = bytes(self._buffer), bytearray()
                pieces.extend(self._complete(need, block))
        return pieces

    # -- the steps ------------------------------------------------------------

    def _complete(self, need: _Need, block: bytes | memoryview) -> list[Piece]:
        pieces: list[Piece] = []
        if need.tail is not None:
            self._check_tail(need.tail, need.start, bytes(block))
            self._need = self._tail_need(need.tail, need.end)
            self.finished = self._need is None
            return pieces
        if need.data is not None:
            entry, at = need.data
            length = min(entry.size - at, len(block))
            pieces.append(Piece(entry, at, block[:length]))
            if need.header is None:  # a large member: its next chunk, or the next header
                done = at + length
                more = done < entry.size
                following = entry.offset + padded(entry.size)
                self._need = self._data_need(entry, done) if more else self._header_need(following)
                return pieces
        if need.meta is not None:
            try:
                self._overrides.update(meta_record(need.meta, bytes(block[: need.meta.size])))
            except TarFormatError as error:
                raise self._corrupt(f"bad pax header: {error}") from None
        assert need.header is not None
        self._on_header(need.header, bytes(block[need.header - need.start :]))
        return pieces

    def _on_header(self, offset: int, block: bytes) -> None:
        if not self._overrides:  # a member boundary: everything before it is handed out
            self.checkpoint = (offset, len(self.entries))
        try:
            header = parse_block(block)
        except TarFormatError as error:
            raise self._corrupt(f"bad header at byte {offset}: {error}") from None
        if header is None:
            if offset + 2 * BLOCK > self.size:
                raise self._corrupt("the archive ends after one zero block instead of two")
            self._need = self._tail_need(offset, offset + BLOCK)
            return
        data = offset + BLOCK
        if header.typeflag in META_TYPES:
            if header.size > MAX_META:
                raise self._corrupt(f"a {header.size}-byte name record", header.name)
            following = self._following(header, data)
            self._need = _Need(data, following + BLOCK, meta=header, header=following)
            self._check_fits(following + BLOCK)
            return
        try:
            header = apply_overrides(header, self._overrides)
        except TarFormatError as error:
            raise self._corrupt(f"bad pax header before byte {offset}: {error}") from None
        self._overrides = {}
        following = self._following(header, data)
        target = member_target(header, shard=self.shard, layout=self.layout)
        if target is None:
            self._need = self._header_need(following)  # a folder: implied by the layout
            return
        entry = Entry(normalise(header.name, shard=self.shard), data, header.size)
        if entry.name in self._names:
            raise self._corrupt(f"member {header.name!r} appears twice", header.name)
        self._names.add(entry.name)
        self.entries.append(entry)
        if self.on_member is not None:
            self.on_member(Found(header, target, entry))
        if entry.size and self.wanted(entry.name):
            self._need = self._data_need(entry, 0)
        else:
            self._need = self._header_need(following)

    def _header_need(self, offset: int) -> _Need:
        self._check_fits(offset + BLOCK)
        return _Need(offset, offset + BLOCK, header=offset)

    def _data_need(self, entry: Entry, at: int) -> _Need:
        start = entry.offset + at
        following = entry.offset + padded(entry.size)
        if following + BLOCK - start <= CHUNK:
            self._check_fits(following + BLOCK)
            return _Need(start, following + BLOCK, data=(entry, at), header=following)
        return _Need(start, min(start + CHUNK, entry.offset + entry.size), data=(entry, at))

    def _tail_need(self, first: int, start: int) -> _Need | None:
        """The second end block and the bytes after it, a chunk at a time; None at the end."""
        if start >= self.size:
            return None
        return _Need(start, min(start + CHUNK, self.size), tail=first)

    def _check_tail(self, first: int, start: int, block: bytes) -> None:
        """Only zeros after the first end block ``first``: the second, then padding."""
        if block == bytes(len(block)):  # memcmp: a tail of zeros may be long
            return
        at = start + len(block) - len(block.lstrip(b"\x00"))
        if at < first + 2 * BLOCK:
            raise self._corrupt(f"one zero block at byte {first}, then data instead of the second")
        raise self._corrupt(f"data after the end-of-archive blocks at byte {at}")

    def _following(self, header: Header, data: int) -> int:
        following = data + padded(header.size)
        if following > self.size:
            raise self._corrupt(f"member {header.name!r} is cut short", header.name)
        return following

    def _check_fits(self, end: int) -> None:
        if end > self.size:
            raise self._corrupt("the archive ends without its end-of-archive blocks")

    def _corrupt(self, message: str, member: str = "") -> CorruptArchiveError:
        return CorruptArchiveError(message, shard=self.shard, member=member)
