"""The tar format, sans I/O: parse 512-byte headers and the records that rename them,
and make the plain headers of the tars sa1b writes itself.

Enough of POSIX ustar, pax (``x``/``g``) and GNU (``L``/``K`` long names, base-256
sizes) to read any shard a tool might produce, and to see exactly what each member
is before a byte of it is written anywhere. The tars sa1b writes (``--layout wds``)
take one plain ustar block per member (:func:`ustar_header`), so where each member
lies follows from the sizes alone (:func:`data_offsets`). Pure functions over bytes;
the reading and writing live in :mod:`sa1b.extract`.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

BLOCK = 512

MAX_META = 1024 * 1024
"""A pax record or GNU long name larger than this is refused (they are names)."""

REGULAR_FILE = b"0"
REGULAR = frozenset({REGULAR_FILE, b"\x00"})
DIRECTORY = b"5"
PAX_LOCAL = b"x"
PAX_GLOBAL = b"g"
GNU_LONGNAME = b"L"
GNU_LONGLINK = b"K"
META_TYPES = frozenset({PAX_LOCAL, PAX_GLOBAL, GNU_LONGNAME, GNU_LONGLINK})

TYPE_NAMES = {
    b"1": "hard link",
    b"2": "symbolic link",
    b"3": "character device",
    b"4": "block device",
    b"5": "directory",
    b"6": "FIFO",
    b"7": "contiguous file",
}


class TarFormatError(ValueError):
    """The bytes are not a well-formed tar archive."""


@dataclass(frozen=True, slots=True)
class Header:
    """One member as its header (and any pax or GNU records before it) describe it."""

    name: str
    size: int
    typeflag: bytes
    linkname: str = ""
    mtime: int = 0
    """Seconds since the epoch, as the archive says (a tar sa1b writes keeps it)."""

    @property
    def is_regular(self) -> bool:
        return self.typeflag in REGULAR

    @property
    def kind(self) -> str:
        return "regular file" if self.is_regular else TYPE_NAMES.get(self.typeflag, "unknown")


def padded(size: int) -> int:
    """``size`` rounded up to whole blocks: the bytes a member's data occupies."""
    return -(-size // BLOCK) * BLOCK


def is_zero_block(block: bytes | memoryview) -> bool:
    return not any(block)


def _number(field: bytes) -> int:
    """Octal (NUL/space terminated) or GNU base-256 (first byte 0x80)."""
    if field[:1] == b"\x80":
        return int.from_bytes(field[1:], "big")
    text = field.replace(b"\x00", b" ").strip()
    if not text:
        return 0
    try:
        return int(text, 8)
    except ValueError:
        raise TarFormatError(f"bad number field {field!r}") from None


def _text(field: bytes) -> str:
    return field.split(b"\x00", 1)[0].decode("utf-8", "surrogateescape")


def parse_block(block: bytes | memoryview) -> Header | None:
    """Parse one header block; None for a zero block (the end of the archive).

    Checks the header checksum, so a block of member data or garbage read as a
    header is an error, not a member.
    """
    raw = bytes(block)
    if len(raw) != BLOCK:
        raise TarFormatError(f"header block of {len(raw)} bytes")
    if is_zero_block(raw):
        return None
    stored = _number(raw[148:156])
    actual = sum(raw[:148]) + 8 * 32 + sum(raw[156:])
    if stored != actual:
        raise TarFormatError("header checksum mismatch (not a tar file, or corrupt)")
    name = _text(raw[0:100])
    if raw[257:262] == b"ustar" and (prefix := _text(raw[345:500])):
        name = f"{prefix}/{name}"
    size = _number(raw[124:136])
    if size < 0:
        raise TarFormatError("negative member size")
    return Header(
        name=name,
        size=size,
        typeflag=raw[156:157],
        linkname=_text(raw[157:257]),
        mtime=_mtime(raw[136:148]),
    )


def _mtime(field: bytes) -> int:
    """The time field, leniently: it only decorates a header sa1b writes, and a shard
    whose times are odd (negative base-256, garbage) is still extracted as before."""
    try:
        return _number(field)
    except TarFormatError:
        return 0


def parse_pax(data: bytes) -> dict[str, str]:
    """Records ``"<len> <key>=<value>\\n"`` of a pax extended header."""
    records: dict[str, str] = {}
    position = 0
    while position < len(data):
        if data[position] == 0:
            break
        space = data.find(b" ", position)
        if space < 0:
            raise TarFormatError("pax record without a length")
        try:
            length = int(data[position:space])
        except ValueError:
            raise TarFormatError("pax record with a bad length") from None
        record = data[space + 1 : position + length]
        if length <= 0 or position + length > len(data):
            raise TarFormatError("pax record runs past its header")
        if not record.endswith(b"\n") or b"=" not in record:
            raise TarFormatError("malformed pax record")
        key, _, value = record[:-1].partition(b"=")
        records[key.decode("utf-8", "surrogateescape")] = value.decode("utf-8", "surrogateescape")
        position += length
    return records


def apply_overrides(header: Header, overrides: dict[str, str]) -> Header:
    """The header with pax ``path``/``size``/``linkpath`` or a GNU long name applied."""
    name = overrides.get("path", header.name)
    linkname = overrides.get("linkpath", header.linkname)
    size = header.size
    if "size" in overrides:
        text = overrides["size"]
        if not (text.isascii() and text.isdigit()):
            raise TarFormatError(f"pax size {text[:40]!r} is not a whole number")
        size = int(text)
    return Header(
        name=name,
        size=size,
        typeflag=header.typeflag,
        linkname=linkname,
        mtime=_pax_mtime(overrides.get("mtime"), header.mtime),
    )


def _pax_mtime(text: str | None, fallback: int) -> int:
    """A pax ``mtime`` (``1680566400.25``) in whole seconds. Lenient: the time only
    decorates a header sa1b writes, so a malformed one keeps the ustar field's."""
    if text is None:
        return fallback
    try:
        return int(float(text))
    except (ValueError, OverflowError):
        return fallback


MODE = 0o644
NAME_BYTES = 100
"""A plain ustar name field: longer names would need a prefix split or a pax record."""
MAX_OCTAL_12 = 8**11 - 1
"""The largest size or time a 12-byte octal field holds (8 GiB - 1 for a size)."""
END_OF_ARCHIVE = bytes(2 * BLOCK)


def ustar_header(name: str, *, size: int, mtime: int) -> bytes:
    """The one-block ustar header of a regular file, as Python's ``tarfile`` writes it
    (mode 0644, owner 0:0 without names, no device numbers). An mtime a 12-byte field
    cannot hold is written as 0; a name over 100 bytes or a size over 8 GiB is a
    ValueError (a plain ustar header cannot say them)."""
    encoded = name.encode("utf-8", "surrogateescape")
    if not encoded or len(encoded) > NAME_BYTES:
        raise ValueError(f"a ustar name takes 1 to {NAME_BYTES} bytes, not {len(encoded)}")
    if not 0 <= size <= MAX_OCTAL_12:
        raise ValueError(f"a ustar size field cannot hold {size}")
    fields = [
        encoded.ljust(NAME_BYTES, b"\x00"),
        _octal(MODE, 8),
        _octal(0, 8),  # uid
        _octal(0, 8),  # gid
        _octal(size, 12),
        _octal(mtime if 0 <= mtime <= MAX_OCTAL_12 else 0, 12),
        b" " * 8,  # the checksum, counted as spaces
        REGULAR_FILE,
        bytes(100),  # linkname
        b"ustar\x0000",
        bytes(32 + 32 + 8 + 8 + 155),  # uname, gname, devmajor, devminor, prefix
    ]
    block = b"".join(fields).ljust(BLOCK, b"\x00")
    checksum = b"%06o\x00" % sum(block)
    return block[:148] + checksum + block[155:]


def _octal(value: int, width: int) -> bytes:
    return b"%0*o\x00" % (width - 1, value)


def data_offsets(sizes: Iterable[int]) -> list[int]:
    """Where each member's data starts in a tar of one-block headers, members in this
    order from byte 0 (the tars :func:`ustar_header` makes)."""
    offsets = []
    position = 0
    for size in sizes:
        offsets.append(position + BLOCK)
        position += BLOCK + padded(size)
    return offsets


def meta_record(header: Header, record: bytes) -> dict[str, str]:
    """What a pax (``x``) or GNU long-name (``L``/``K``) record says of the member after
    it, as pax keys (``path``, ``linkpath``); a global pax header says nothing SA-1B needs."""
    if header.typeflag == PAX_LOCAL:
        return parse_pax(record)
    text = record.split(b"\x00", 1)[0].decode("utf-8", "surrogateescape")
    if header.typeflag == GNU_LONGNAME:
        return {"path": text}
    if header.typeflag == GNU_LONGLINK:
        return {"linkpath": text}
    return {}
