"""The tar format, sans I/O: headers that Python's tarfile writes parse back to the same members."""

from __future__ import annotations

import io
import tarfile
from dataclasses import dataclass
from typing import Literal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sa1b.tarformat import (
    BLOCK,
    END_OF_ARCHIVE,
    GNU_LONGLINK,
    GNU_LONGNAME,
    META_TYPES,
    PAX_GLOBAL,
    PAX_LOCAL,
    Header,
    TarFormatError,
    apply_overrides,
    data_offsets,
    is_zero_block,
    padded,
    parse_block,
    parse_pax,
    ustar_header,
)

FORMATS: dict[str, Literal[0, 1, 2]] = {
    "ustar": tarfile.USTAR_FORMAT,
    "gnu": tarfile.GNU_FORMAT,
    "pax": tarfile.PAX_FORMAT,
}
GiB = 1024**3


def info(
    name: str,
    *,
    size: int = 0,
    kind: bytes = tarfile.REGTYPE,
    linkname: str = "",
) -> tarfile.TarInfo:
    member = tarfile.TarInfo(name)
    member.size = size
    member.type = kind
    member.linkname = linkname
    member.mtime = 1_680_566_400
    member.mode = 0o644
    member.uname = member.gname = ""
    return member


def typeflags(archive: bytes) -> list[bytes]:
    """The type of every header, meta records included, following the sizes."""
    found = []
    offset = 0
    while offset < len(archive) and (header := parse_block(archive[offset : offset + BLOCK])):
        found.append(header.typeflag)
        offset += BLOCK + padded(header.size)
    return found


def with_checksum(raw: bytearray) -> bytes:
    """``raw`` with its header checksum recomputed (after a test edited a field)."""
    raw[148:156] = b" " * 8
    raw[148:156] = b"%06o\x00 " % sum(raw)
    return bytes(raw)


@dataclass(frozen=True)
class Walked:
    name: str
    size: int
    typeflag: bytes
    linkname: str


def walk(archive: bytes) -> list[Walked]:
    """Read an archive block by block with nothing but the sans-IO functions."""
    members: list[Walked] = []
    overrides: dict[str, str] = {}
    offset = 0
    while offset + BLOCK <= len(archive):
        header = parse_block(archive[offset : offset + BLOCK])
        if header is None:
            break
        data = archive[offset + BLOCK : offset + BLOCK + header.size]
        offset += BLOCK + padded(header.size)
        if header.typeflag == PAX_LOCAL:
            overrides.update(parse_pax(data))
        elif header.typeflag == GNU_LONGNAME:
            overrides["path"] = data.split(b"\x00", 1)[0].decode("utf-8", "surrogateescape")
        elif header.typeflag == GNU_LONGLINK:
            overrides["linkpath"] = data.split(b"\x00", 1)[0].decode("utf-8", "surrogateescape")
        elif header.typeflag not in META_TYPES:
            header = apply_overrides(header, overrides)
            overrides = {}
            members.append(Walked(header.name, header.size, header.typeflag, header.linkname))
    return members


# -- single headers ---------------------------------------------------------------------------


@pytest.mark.parametrize("fmt", FORMATS)
def test_plain_regular_header(fmt: str) -> None:
    raw = info("sa_1.jpg", size=1234).tobuf(FORMATS[fmt], "utf-8", "surrogateescape")
    assert len(raw) == BLOCK
    header = parse_block(raw)
    assert header == Header(
        name="sa_1.jpg", size=1234, typeflag=b"0", linkname="", mtime=1_680_566_400
    )
    assert header.is_regular
    assert header.kind == "regular file"


@pytest.mark.parametrize("fmt", FORMATS)
def test_memoryview_block_parses_like_bytes(fmt: str) -> None:
    raw = info("sa_1.json", size=9).tobuf(FORMATS[fmt], "utf-8", "surrogateescape")
    assert parse_block(memoryview(raw)) == parse_block(raw)


@pytest.mark.parametrize(
    ("kind", "linkname", "label"),
    [
        (tarfile.SYMTYPE, "/etc/passwd", "symbolic link"),
        (tarfile.LNKTYPE, "sa_1.json", "hard link"),
        (tarfile.CHRTYPE, "", "character device"),
        (tarfile.BLKTYPE, "", "block device"),
        (tarfile.FIFOTYPE, "", "FIFO"),
        (tarfile.DIRTYPE, "", "directory"),
        (tarfile.CONTTYPE, "", "contiguous file"),
    ],
)
@pytest.mark.parametrize("fmt", FORMATS)
def test_member_kinds(fmt: str, kind: bytes, linkname: str, label: str) -> None:
    name = "sa_000000/" if kind == tarfile.DIRTYPE else "sa_1.jpg"
    raw = info(name, kind=kind, linkname=linkname).tobuf(FORMATS[fmt], "utf-8", "surrogateescape")
    header = parse_block(raw)
    assert header is not None
    assert header.typeflag == kind
    assert header.linkname == linkname
    assert header.name == name
    assert not header.is_regular
    assert header.kind == label


def test_old_style_regular_typeflag_nul() -> None:
    raw = bytearray(info("sa_1.jpg", size=5).tobuf(tarfile.USTAR_FORMAT, "utf-8", "strict"))
    raw[156:157] = b"\x00"
    header = parse_block(with_checksum(raw))
    assert header is not None
    assert header.typeflag == b"\x00"
    assert header.is_regular


def test_unknown_typeflag_is_named_unknown() -> None:
    raw = bytearray(info("sa_1.jpg").tobuf(tarfile.USTAR_FORMAT, "utf-8", "strict"))
    raw[156:157] = b"Z"
    header = parse_block(with_checksum(raw))
    assert header is not None
    assert not header.is_regular
    assert header.kind == "unknown"


def test_ustar_long_name_uses_the_prefix_field() -> None:
    name = "d" * 90 + "/" + "sub" * 10 + "/" + "f" * 80 + ".jpg"
    raw = info(name, size=7).tobuf(tarfile.USTAR_FORMAT, "utf-8", "strict")
    assert len(raw) == BLOCK  # no extra record: the name is split into prefix and name
    assert raw[345:350] == b"ddddd"
    header = parse_block(raw)
    assert header is not None
    assert header.name == name
    assert header.size == 7


def test_prefix_field_ignored_without_ustar_magic() -> None:
    raw = bytearray(info("sa_1.jpg").tobuf(tarfile.USTAR_FORMAT, "utf-8", "strict"))
    raw[345:350] = b"stray"
    raw[257:265] = b"\x00" * 8  # a pre-POSIX (v7) header: no magic, no prefix field
    header = parse_block(with_checksum(raw))
    assert header is not None
    assert header.name == "sa_1.jpg"


@pytest.mark.parametrize("length", [101, 150, 300, 1000])
def test_gnu_long_name_and_long_link(length: int) -> None:
    name = "n" * (length - 4) + ".jpg"
    target = "t" * length
    raw = info(name, kind=tarfile.SYMTYPE, linkname=target).tobuf(
        tarfile.GNU_FORMAT, "utf-8", "surrogateescape"
    )
    assert typeflags(raw) == [GNU_LONGLINK, GNU_LONGNAME, tarfile.SYMTYPE]
    assert walk(raw + bytes(2 * BLOCK)) == [Walked(name, 0, tarfile.SYMTYPE, target)]


@pytest.mark.parametrize("length", [101, 150, 300, 1000])
def test_pax_long_name_and_long_link(length: int) -> None:
    name = "n" * (length - 4) + ".jpg"
    target = "t" * length
    raw = info(name, kind=tarfile.LNKTYPE, linkname=target).tobuf(
        tarfile.PAX_FORMAT, "utf-8", "surrogateescape"
    )
    assert typeflags(raw) == [PAX_LOCAL, tarfile.LNKTYPE]
    assert walk(raw + bytes(2 * BLOCK)) == [Walked(name, 0, tarfile.LNKTYPE, target)]


def test_pax_non_ascii_name() -> None:
    name = "画像/sa_1é.jpg"
    raw = info(name, size=3).tobuf(tarfile.PAX_FORMAT, "utf-8", "surrogateescape")
    assert walk(raw + bytes(2 * BLOCK)) == [Walked(name, 3, tarfile.REGTYPE, "")]


def test_pax_global_header_is_a_meta_record() -> None:
    buffer = io.BytesIO()
    with tarfile.open(
        fileobj=buffer, mode="w", format=tarfile.PAX_FORMAT, pax_headers={"comment": "sa1b"}
    ) as archive:
        archive.addfile(info("sa_1.jpg", size=2), io.BytesIO(b"ab"))
    raw = buffer.getvalue()
    first = parse_block(raw[:BLOCK])
    assert first is not None
    assert first.typeflag == PAX_GLOBAL
    assert PAX_GLOBAL in META_TYPES
    assert parse_pax(raw[BLOCK : BLOCK + first.size]) == {"comment": "sa1b"}
    assert walk(raw) == [Walked("sa_1.jpg", 2, tarfile.REGTYPE, "")]


def test_gnu_base256_size_from_tarfile() -> None:
    size = 9 * GiB + 123
    raw = info("sa_1.jpg", size=size).tobuf(tarfile.GNU_FORMAT, "utf-8", "strict")
    assert raw[124:125] == b"\x80"  # too large for 11 octal digits
    header = parse_block(raw)
    assert header is not None
    assert header.size == size


def test_gnu_base256_size_by_hand() -> None:
    size = 12 * GiB + 7
    raw = bytearray(info("sa_1.jpg").tobuf(tarfile.USTAR_FORMAT, "utf-8", "strict"))
    raw[124:136] = b"\x80" + size.to_bytes(11, "big")
    header = parse_block(with_checksum(raw))
    assert header is not None
    assert header.size == size


def test_ustar_refuses_more_than_eight_gib_but_pax_carries_it() -> None:
    size = 8 * GiB
    with pytest.raises(ValueError):
        info("sa_1.jpg", size=size).tobuf(tarfile.USTAR_FORMAT, "utf-8", "strict")
    raw = info("sa_1.jpg", size=size).tobuf(tarfile.PAX_FORMAT, "utf-8", "strict")
    pax, real = parse_block(raw[:BLOCK]), parse_block(raw[-BLOCK:])
    assert pax is not None and real is not None
    records = parse_pax(raw[BLOCK : BLOCK + pax.size])
    assert records["size"] == str(size)
    assert apply_overrides(real, records).size == size


def test_zero_block_is_the_end() -> None:
    assert parse_block(bytes(BLOCK)) is None
    assert parse_block(memoryview(bytes(BLOCK))) is None
    assert is_zero_block(bytes(BLOCK))
    assert not is_zero_block(bytes(BLOCK - 1) + b"\x01")


@pytest.mark.parametrize("position", [0, 50, 100, 124, 156, 200, 300, 511])
def test_checksum_mismatch(position: int) -> None:
    raw = bytearray(info("sa_1.jpg", size=10).tobuf(tarfile.USTAR_FORMAT, "utf-8", "strict"))
    raw[position] ^= 0x01
    with pytest.raises(TarFormatError, match="checksum"):
        parse_block(bytes(raw))


def test_data_read_as_a_header_is_an_error() -> None:
    with pytest.raises(TarFormatError):
        parse_block((b"\xff\xd8\xff\xe0" + bytes(range(256)) * 2)[:BLOCK])
    with pytest.raises(TarFormatError):
        parse_block(b'{"image": {"image_id": 1}}'.ljust(BLOCK, b" "))


@pytest.mark.parametrize("length", [0, 1, 511, 513, 1024])
def test_block_of_wrong_length(length: int) -> None:
    with pytest.raises(TarFormatError, match="bytes"):
        parse_block(b"\x01" * length)


def test_bad_size_field() -> None:
    raw = bytearray(info("sa_1.jpg").tobuf(tarfile.USTAR_FORMAT, "utf-8", "strict"))
    raw[124:136] = b"0000009999\x00 "  # 9 is not an octal digit
    with pytest.raises(TarFormatError, match="number"):
        parse_block(with_checksum(raw))


def test_size_field_spaces_and_nuls() -> None:
    raw = bytearray(info("sa_1.jpg").tobuf(tarfile.USTAR_FORMAT, "utf-8", "strict"))
    raw[124:136] = b"  17 \x00\x00\x00\x00\x00\x00\x00"
    header = parse_block(with_checksum(raw))
    assert header is not None
    assert header.size == 0o17
    raw[124:136] = b"\x00" * 12  # empty: zero
    header = parse_block(with_checksum(raw))
    assert header is not None
    assert header.size == 0


def test_bad_checksum_field() -> None:
    raw = bytearray(info("sa_1.jpg").tobuf(tarfile.USTAR_FORMAT, "utf-8", "strict"))
    raw[148:156] = b"garbage!"
    with pytest.raises(TarFormatError):
        parse_block(bytes(raw))


# -- pax records ------------------------------------------------------------------------------


def record(key: str, value: str) -> bytes:
    """A pax record with its self-inclusive length (in bytes, not characters)."""
    body = f" {key}={value}\n".encode()
    length = len(body) + 1
    while len(str(length)) + len(body) != length:
        length += 1
    return str(length).encode() + body


def test_record_helper_matches_tarfile() -> None:
    raw = info("x" * 120).tobuf(tarfile.PAX_FORMAT, "utf-8", "strict")
    pax = parse_block(raw[:BLOCK])
    assert pax is not None
    assert raw[BLOCK : BLOCK + pax.size] == record("path", "x" * 120)


@pytest.mark.parametrize(
    "value",
    ["sa_1.jpg", "é", "日本語の名前.jpg", "🙂" * 30, "a=b=c", "with space", "x" * 5000, ""],
)
def test_parse_pax_values(value: str) -> None:
    data = record("path", value) + record("linkpath", value[::-1])
    assert parse_pax(data) == {"path": value, "linkpath": value[::-1]}


def test_parse_pax_lengths_count_bytes_not_characters() -> None:
    data = record("path", "é" * 4)
    assert data.startswith(b"17 ")  # "17 path=" + 8 bytes of UTF-8 + newline
    assert parse_pax(data) == {"path": "é" * 4}
    # the same length counted in characters instead of bytes is malformed
    wrong = b"13" + data[2:]
    with pytest.raises(TarFormatError):
        parse_pax(wrong)


def test_parse_pax_later_record_wins_and_nul_padding_ends() -> None:
    data = record("path", "a") + record("path", "b") + b"\x00" * 20
    assert parse_pax(data) == {"path": "b"}
    assert parse_pax(b"") == {}


def test_parse_pax_invalid_utf8_survives() -> None:
    data = b"13 path=\xff\xfe.j\n"
    assert parse_pax(data) == {"path": "\udcff\udcfe.j"}


def test_pax_from_tarfile_with_several_records() -> None:
    member = info("é" * 60 + ".jpg", kind=tarfile.SYMTYPE, linkname="ü" * 70)
    member.pax_headers = {"comment": "日本"}
    raw = member.tobuf(tarfile.PAX_FORMAT, "utf-8", "strict")
    pax = parse_block(raw[:BLOCK])
    assert pax is not None
    records = parse_pax(raw[BLOCK : BLOCK + pax.size])
    assert records["path"] == member.name
    assert records["linkpath"] == member.linkname
    assert records["comment"] == "日本"


@pytest.mark.parametrize(
    "data",
    [
        pytest.param(b"path=a\n", id="no length"),
        pytest.param(b"12path=abcd\n", id="no space"),
        pytest.param(b"x2 path=abc\n", id="length not a number"),
        pytest.param(b"0 path=a\n", id="length zero"),
        pytest.param(b"-9 path=a\n", id="length negative"),
        pytest.param(b"5 path=abcdef\n", id="length too short"),
        pytest.param(b"11 path=abc\n", id="length one short"),
        pytest.param(b"11 pathabcd\n", id="no equals sign"),
        pytest.param(record("path", "a") + b"garbage", id="trailing garbage"),
        pytest.param(record("path", "a")[:-1], id="cut before the newline"),
    ],
)
def test_parse_pax_malformed(data: bytes) -> None:
    with pytest.raises(TarFormatError):
        parse_pax(data)


@pytest.mark.parametrize(
    "data", [b"100 path=a\n", b"13 path=abc\n", record("a", "b") + b"99 path=x\n"]
)
def test_parse_pax_length_past_the_end(data: bytes) -> None:
    with pytest.raises(TarFormatError):
        parse_pax(data)


# -- overrides and sizes ----------------------------------------------------------------------

BASE = Header(name="short", size=5, typeflag=b"0", linkname="old")


def test_apply_overrides() -> None:
    assert apply_overrides(BASE, {}) == BASE
    assert apply_overrides(BASE, {"path": "long/name.jpg"}) == Header(
        "long/name.jpg", 5, b"0", "old"
    )
    assert apply_overrides(BASE, {"linkpath": "new"}).linkname == "new"
    assert apply_overrides(BASE, {"size": str(10 * GiB)}).size == 10 * GiB
    ignored = apply_overrides(BASE, {"uid": "0", "comment": "x"})
    assert ignored == BASE


@pytest.mark.parametrize(
    ("value", "mtime"),
    [
        ("1680566400", 1_680_566_400),
        ("1680566400.75", 1_680_566_400),
        ("-5", -5),
        ("soon", 7),  # malformed: the ustar field's time stays (it only decorates a header)
        ("", 7),
        ("1e999", 7),  # infinite
    ],
)
def test_pax_mtime(value: str, mtime: int) -> None:
    header = Header(name="sa_1.jpg", size=5, typeflag=b"0", mtime=7)
    assert apply_overrides(header, {"mtime": value}).mtime == mtime


def test_odd_time_fields_do_not_refuse_a_member() -> None:
    raw = bytearray(info("sa_1.jpg", size=3).tobuf(tarfile.USTAR_FORMAT))
    raw[136:148] = b"\xff" * 12  # negative base-256, which no SA-1B tool writes
    header = parse_block(with_checksum(raw))
    assert header is not None and header.mtime == 0 and header.size == 3


def test_apply_overrides_keeps_typeflag() -> None:
    link = Header(name="a", size=0, typeflag=b"2", linkname="b")
    assert apply_overrides(link, {"path": "sa_1.jpg"}).typeflag == b"2"


@pytest.mark.parametrize("value", ["ten", "", "0x10", "1.5"])
def test_apply_overrides_bad_size(value: str) -> None:
    with pytest.raises(TarFormatError, match="size"):
        apply_overrides(BASE, {"size": value})


def test_apply_overrides_negative_size() -> None:
    with pytest.raises(TarFormatError):
        apply_overrides(BASE, {"size": "-1"})


@pytest.mark.parametrize(
    ("size", "expected"), [(0, 0), (1, 512), (511, 512), (512, 512), (513, 1024), (10**6, 1000448)]
)
def test_padded(size: int, expected: int) -> None:
    assert padded(size) == expected


@given(st.integers(0, 2**64))
def test_padded_is_the_next_block_boundary(size: int) -> None:
    result = padded(size)
    assert result % BLOCK == 0
    assert size <= result < size + BLOCK


# -- whole archives: the walk agrees with tarfile ---------------------------------------------

_COMPONENT = st.text(alphabet=st.sampled_from("abcXYZ019._-é日"), min_size=1, max_size=40).filter(
    lambda c: c not in (".", "..")
)
_NAME = st.lists(_COMPONENT, min_size=1, max_size=6).map("/".join)
_KINDS = st.sampled_from(
    [
        tarfile.REGTYPE,
        tarfile.REGTYPE,
        tarfile.REGTYPE,
        tarfile.DIRTYPE,
        tarfile.SYMTYPE,
        tarfile.LNKTYPE,
        tarfile.CHRTYPE,
        tarfile.BLKTYPE,
        tarfile.FIFOTYPE,
    ]
)
_MEMBER = st.tuples(_NAME, _KINDS, st.integers(0, 1500), _NAME)


def write_archive(members: list[tuple[str, bytes, int, str]], fmt: int) -> bytes | None:
    """The archive tarfile writes, or None if the format cannot hold these names."""
    buffer = io.BytesIO()
    try:
        with tarfile.open(fileobj=buffer, mode="w", format=fmt, encoding="utf-8") as archive:
            for name, kind, size, linkname in members:
                link = linkname if kind in (tarfile.SYMTYPE, tarfile.LNKTYPE) else ""
                length = size if kind == tarfile.REGTYPE else 0
                member = info(name, size=length, kind=kind, linkname=link)
                archive.addfile(member, io.BytesIO(bytes([length % 251]) * length))
    except ValueError:  # a ustar name or link name too long to split
        return None
    return buffer.getvalue()


@settings(max_examples=60, deadline=None)
@given(
    members=st.lists(_MEMBER, max_size=8),
    fmt=st.sampled_from(sorted(FORMATS)),
)
def test_walk_matches_tarfile(members: list[tuple[str, bytes, int, str]], fmt: str) -> None:
    archive = write_archive(members, FORMATS[fmt])
    if archive is None:
        assert fmt == "ustar"
        return
    with tarfile.open(fileobj=io.BytesIO(archive), mode="r:") as reader:
        expected = [Walked(m.name, m.size, m.type, m.linkname) for m in reader.getmembers()]
    walked = [
        Walked(m.name.rstrip("/"), m.size, m.typeflag, m.linkname)
        if m.typeflag == tarfile.DIRTYPE
        else m
        for m in walk(archive)
    ]
    assert walked == expected


# -- the headers sa1b writes (--layout wds) --------------------------------------------------


@pytest.mark.parametrize(
    ("name", "size", "mtime"),
    [
        ("sa_1.jpg", 1234, 1_680_566_400),
        ("sa_1.json", 0, 0),
        ("sa_223750.jpg", 8**11 - 1, 8**11 - 1),  # the largest a 12-byte octal field holds
        ("a" * 100, 512, 1),  # the longest name a plain header holds
        ("é.json", 5, 1_680_566_400),  # utf-8, as tarfile writes it
    ],
)
def test_ustar_header_is_tarfiles(name: str, size: int, mtime: int) -> None:
    member = info(name, size=size)
    member.mtime = mtime
    assert ustar_header(name, size=size, mtime=mtime) == member.tobuf(tarfile.USTAR_FORMAT)
    assert parse_block(ustar_header(name, size=size, mtime=mtime)) == Header(
        name=name, size=size, typeflag=b"0", linkname="", mtime=mtime
    )


@pytest.mark.parametrize("mtime", [-1, 8**11, 2**64])
def test_ustar_header_writes_an_impossible_time_as_zero(mtime: int) -> None:
    header = parse_block(ustar_header("sa_1.jpg", size=1, mtime=mtime))
    assert header is not None and header.mtime == 0


@pytest.mark.parametrize(
    ("name", "size", "message"),
    [
        ("a" * 101, 1, "1 to 100 bytes"),
        ("é" * 51, 1, "1 to 100 bytes"),  # 102 bytes in utf-8
        ("", 1, "1 to 100 bytes"),
        ("sa_1.jpg", 8**11, "cannot hold"),
        ("sa_1.jpg", -1, "cannot hold"),
    ],
)
def test_ustar_header_refuses_what_it_cannot_say(name: str, size: int, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        ustar_header(name, size=size, mtime=0)


@pytest.mark.parametrize(
    ("sizes", "offsets"),
    [
        ([], []),
        ([0], [512]),
        ([1], [512]),
        ([512, 0, 513, 7], [512, 1536, 2048, 3584]),
    ],
)
def test_data_offsets(sizes: list[int], offsets: list[int]) -> None:
    assert data_offsets(sizes) == offsets


@given(
    st.lists(
        st.tuples(
            st.from_regex(r"sa_[0-9]{1,6}\.(jpg|json)", fullmatch=True), st.binary(max_size=1500)
        ),
        max_size=6,
    )
)
def test_a_tar_of_these_headers_is_what_tarfile_reads(members: list[tuple[str, bytes]]) -> None:
    """Headers, data, padding, end blocks: tarfile reads every member back at the offset
    :func:`data_offsets` gives."""
    archive = bytearray()
    for name, data in members:
        archive += ustar_header(name, size=len(data), mtime=0) + data
        archive += bytes(padded(len(data)) - len(data))
    archive += END_OF_ARCHIVE
    with tarfile.open(fileobj=io.BytesIO(bytes(archive)), mode="r:") as read:
        found = [
            (m.name, read.extractfile(m).read(), m.offset_data)  # type: ignore[union-attr]
            for m in read.getmembers()
        ]
    offsets = data_offsets(len(data) for _, data in members)
    assert found == [(n, d, o) for (n, d), o in zip(members, offsets, strict=True)]
