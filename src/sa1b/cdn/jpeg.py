"""A tiny baseline JPEG encoder for solid-colour images, padded to a chosen byte size.

Synthetic shards need JPEGs that real decoders open (a downloader's verification step or a
user's image loader may decode them), of a controllable size (shards must weigh what the test
asks), and cheap to make (gigabytes in seconds). A solid colour needs only one DC coefficient per
8x8 block and no AC coefficients, so the entropy-coded data is one short bit pattern repeated;
the bulk of the file is COM (comment) segments of caller-supplied bytes, which every decoder
skips.

Layout: SOI, JFIF APP0, padding (COM segments, plus up to three 0xFF fill bytes that JPEG allows
before any marker, so any size from the minimum up is exact), DQT, SOF0, DHT, SOS, scan, EOI.
The COM segments go right after the JFIF APP0 rather than right after SOI, because JFIF requires
APP0 to come first. Huffman tables are the standard ones of ITU T.81 Annex K.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence

__all__ = [
    "MAX_COM_PAYLOAD",
    "Chunk",
    "PadSource",
    "encode_solid",
    "iter_solid",
    "minimal_size",
    "rgb_to_ycbcr",
]

MAX_COM_PAYLOAD = 65533  # the 16-bit segment length counts itself (2 bytes)

# Annex K.3: (bits per code length 1..16, values in code order).
_DC_LUMA = (
    (0, 1, 5, 1, 1, 1, 1, 1, 1, 0, 0, 0, 0, 0, 0, 0),
    tuple(range(12)),
)
_DC_CHROMA = (
    (0, 3, 1, 1, 1, 1, 1, 1, 1, 1, 1, 0, 0, 0, 0, 0),
    tuple(range(12)),
)
_AC_LUMA = (
    (0, 2, 1, 3, 3, 2, 4, 3, 5, 5, 4, 4, 0, 0, 1, 0x7D),
    bytes.fromhex(
        "01020300041105122131410613516107227114328191a1082342b1c11552d1f0"
        "2433627282090a161718191a25262728292a3435363738393a43444546474849"
        "4a535455565758595a636465666768696a737475767778797a83848586878889"
        "8a92939495969798999aa2a3a4a5a6a7a8a9aab2b3b4b5b6b7b8b9bac2c3c4c5"
        "c6c7c8c9cad2d3d4d5d6d7d8d9dae1e2e3e4e5e6e7e8e9eaf1f2f3f4f5f6f7f8"
        "f9fa"
    ),
)
_AC_CHROMA = (
    (0, 2, 1, 2, 4, 4, 3, 4, 7, 5, 4, 4, 0, 1, 2, 0x77),
    bytes.fromhex(
        "000102031104052131061241510761711322328108144291a1b1c109233352f0"
        "156272d10a162434e125f11718191a262728292a35363738393a434445464748"
        "494a535455565758595a636465666768696a737475767778797a828384858687"
        "88898a92939495969798999aa2a3a4a5a6a7a8a9aab2b3b4b5b6b7b8b9bac2c3"
        "c4c5c6c7c8c9cad2d3d4d5d6d7d8d9dae2e3e4e5e6e7e8e9eaf2f3f4f5f6f7f8"
        "f9fa"
    ),
)

_DC_QUANT = 8  # DC of a flat block is 8 * (level - 128); this makes the quantised DC exact.

Chunk = bytes | memoryview
PadSource = Callable[[int], Chunk]


def _huffman_codes(bits: Sequence[int], values: Sequence[int]) -> dict[int, str]:
    """Canonical Huffman codes (Annex C) as bit strings, keyed by symbol."""
    codes: dict[int, str] = {}
    code = 0
    k = 0
    for length, count in enumerate(bits, start=1):
        for _ in range(count):
            codes[values[k]] = format(code, f"0{length}b")
            code += 1
            k += 1
        code <<= 1
    return codes


def _dht_table(
    table_class: int, table_id: int, table: tuple[Sequence[int], Sequence[int]]
) -> bytes:
    bits, values = table
    return bytes([table_class << 4 | table_id, *bits, *values])


def _segment(marker: int, payload: bytes) -> bytes:
    return bytes([0xFF, marker]) + (len(payload) + 2).to_bytes(2, "big") + payload


def _dc_bits(diff: int, codes: dict[int, str]) -> str:
    """Huffman code of the size category, then the magnitude bits (Annex F.1.2.1)."""
    size = abs(diff).bit_length()
    if size == 0:
        return codes[0]
    value = diff if diff > 0 else diff + (1 << size) - 1
    return codes[size] + format(value, f"0{size}b")


def rgb_to_ycbcr(rgb: tuple[int, int, int]) -> tuple[int, int, int]:
    """JFIF colour conversion, rounded and clamped to 0..255."""
    r, g, b = rgb
    y = 0.299 * r + 0.587 * g + 0.114 * b
    cb = 128 - 0.168736 * r - 0.331264 * g + 0.5 * b
    cr = 128 + 0.5 * r - 0.418688 * g - 0.081312 * b
    return tuple(min(255, max(0, round(v))) for v in (y, cb, cr))  # type: ignore[return-value]


def _headers(width: int, height: int, grayscale: bool) -> bytes:
    quant = bytes([_DC_QUANT] + [1] * 63)
    n = 1 if grayscale else 3
    sof = bytes([8]) + height.to_bytes(2, "big") + width.to_bytes(2, "big") + bytes([n])
    sos = bytes([n])
    tables = _dht_table(0, 0, _DC_LUMA) + _dht_table(1, 0, _AC_LUMA)
    for comp in range(1, n + 1):
        table_id = 0 if comp == 1 else 1
        sof += bytes([comp, 0x11, 0])  # no chroma subsampling: one block of each per MCU
        sos += bytes([comp, table_id << 4 | table_id])
    if not grayscale:
        tables += _dht_table(0, 1, _DC_CHROMA) + _dht_table(1, 1, _AC_CHROMA)
    sos += bytes([0, 63, 0])
    return (
        _segment(0xDB, bytes([0]) + quant)
        + _segment(0xC0, sof)
        + _segment(0xC4, tables)
        + _segment(0xDA, sos)
    )


def _scan(width: int, height: int, levels: Sequence[int]) -> bytes:
    """Entropy-coded data: the first MCU carries the colour, every later one a zero DC diff."""
    dc_codes = [_huffman_codes(*_DC_LUMA), _huffman_codes(*_DC_CHROMA)]
    eob = [_huffman_codes(*_AC_LUMA)[0x00], _huffman_codes(*_AC_CHROMA)[0x00]]
    first = ""
    repeat = ""
    for i, level in enumerate(levels):
        t = 0 if i == 0 else 1
        first += _dc_bits((level - 128) * 8 // _DC_QUANT, dc_codes[t]) + eob[t]
        repeat += dc_codes[t][0] + eob[t]
    blocks = ((width + 7) // 8) * ((height + 7) // 8)
    bits = first + repeat * (blocks - 1)
    bits += "1" * (-len(bits) % 8)  # pad the last byte with 1s (F.1.2.3)
    data = int(bits, 2).to_bytes(len(bits) // 8, "big")
    return data.replace(b"\xff", b"\xff\x00")  # byte stuffing


_SOI = b"\xff\xd8"
_EOI = b"\xff\xd9"
_APP0 = _segment(0xE0, b"JFIF\x00\x01\x01\x00\x00\x01\x00\x01\x00\x00")


def _body(width: int, height: int, rgb: tuple[int, int, int], grayscale: bool) -> bytes:
    if not (1 <= width <= 65535 and 1 <= height <= 65535):
        raise ValueError(f"JPEG dimensions must be 1..65535, got {width}x{height}")
    if grayscale:
        r, g, b = rgb
        levels: tuple[int, ...] = (min(255, max(0, round(0.299 * r + 0.587 * g + 0.114 * b))),)
    else:
        levels = rgb_to_ycbcr(rgb)
    return _headers(width, height, grayscale) + _scan(width, height, levels) + _EOI


def minimal_size(
    width: int, height: int, rgb: tuple[int, int, int] = (128, 128, 128), *, grayscale: bool = False
) -> int:
    """Size in bytes of the unpadded JPEG; :func:`encode_solid` cannot go below it."""
    return len(_SOI + _APP0) + len(_body(width, height, rgb, grayscale))


def _padding(amount: int, pad_source: PadSource) -> Iterator[Chunk]:
    """``amount`` bytes of COM segments (or 0xFF fill bytes when fewer than 4 are wanted)."""
    if amount <= 0:
        return
    if amount < 4:  # too few for a segment header; fill bytes before a marker are legal
        yield b"\xff" * amount
        return
    count = -(-amount // (MAX_COM_PAYLOAD + 4))
    remaining = amount - 4 * count  # never more than count * MAX_COM_PAYLOAD
    for _ in range(count):
        n = min(MAX_COM_PAYLOAD, remaining)
        remaining -= n
        payload = pad_source(n)
        if len(payload) != n:
            raise ValueError(f"pad_source returned {len(payload)} bytes, expected {n}")
        yield b"\xff\xfe" + (n + 2).to_bytes(2, "big")
        yield payload


def _zeros(n: int) -> bytes:
    return bytes(n)


def iter_solid(
    width: int,
    height: int,
    rgb: tuple[int, int, int] = (128, 128, 128),
    *,
    grayscale: bool = False,
    size: int | None = None,
    pad_source: PadSource | None = None,
) -> Iterator[Chunk]:
    """The pieces of :func:`encode_solid`'s output, to write big files without joining them."""
    body = _body(width, height, rgb, grayscale)
    head = _SOI + _APP0
    yield head
    pad = 0 if size is None else size - len(head) - len(body)
    yield from _padding(pad, pad_source if pad_source is not None else _zeros)
    yield body


def encode_solid(
    width: int,
    height: int,
    rgb: tuple[int, int, int] = (128, 128, 128),
    *,
    grayscale: bool = False,
    size: int | None = None,
    pad_source: PadSource | None = None,
) -> bytes:
    """A baseline JPEG of one colour, exactly ``size`` bytes long when ``size`` is given.

    ``size`` below :func:`minimal_size` yields the minimal file. ``pad_source(n)`` supplies the
    ``n`` bytes of each COM payload (any bytes are legal there); zeros by default. Width and
    height need not be multiples of 8: decoders crop the last block row and column.
    """
    pieces = iter_solid(width, height, rgb, grayscale=grayscale, size=size, pad_source=pad_source)
    return b"".join(pieces)
