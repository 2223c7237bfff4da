"""The tar format, sans I/O: parse 512-byte headers and the records that rename them.

Enough of POSIX ustar, pax (``x``/``g``) and GNU (``L``/``K`` long names, base-256
sizes) to read any shard a tool might produce, and to see exactly what each member
is before a byte of it is written anywhere. Pure functions over bytes; the reading
and writing live in :mod:`sa1b.extract.shard`.
"""

from __future__ import annotations

from dataclasses import dataclass

BLOCK = 512

MAX_META = 1024 * 1024
"""A pax record or GNU long name larger than this is refused (they are names)."""

REGULAR = frozenset({b"0", b"\x00"})
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
    return Header(name=name, size=size, typeflag=raw[156:157], linkname=_text(raw[157:257]))


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
    return Header(name=name, size=size, typeflag=header.typeflag, linkname=linkname)


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
