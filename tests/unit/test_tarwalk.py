"""The tar walk by range reads (sa1b.tarwalk), against archives Python's tarfile writes."""

from __future__ import annotations

import io
import tarfile

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sa1b.errors import CorruptArchiveError, UnsafeMemberError
from sa1b.tarwalk import CHUNK, Entry, Found, TarWalk, headers_only


def make_tar(members: list[tuple[str, bytes]], *, fmt: int = tarfile.GNU_FORMAT) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=fmt) as tar:
        for name, data in members:
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


def wants_json(name: str) -> bool:
    return name.endswith(".json")


def walk_by_ranges(archive: bytes, walk: TarWalk) -> tuple[dict[str, bytes], int, int]:
    """Drive the walk as the downloader does, one range request at a time: the members'
    data, the bytes fetched and the number of requests."""
    got: dict[str, bytearray] = {}
    fetched = requests = 0
    while (need := walk.need()) is not None:
        start, end = need
        data = archive[start:end]
        fetched, requests = fetched + len(data), requests + 1
        for piece in walk.feed(start, data):
            got.setdefault(piece.entry.name, bytearray())[piece.at : piece.at + len(piece.data)] = (
                piece.data
            )
    assert walk.finished
    return {name: bytes(data) for name, data in got.items()}, fetched, requests


def catalog(archive: bytes) -> list[Entry]:
    """What tarfile says: every regular member's name, data offset and size."""
    with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
        return [
            Entry(m.name.removeprefix("./").removeprefix("sa_000000/"), m.offset_data, m.size)
            for m in tar.getmembers()
            if m.isfile()
        ]


PAIRS = [
    (f"sa_{i}.{ext}", bytes([i]) * (700 * i + 13)) for i in range(1, 6) for ext in ("jpg", "json")
]


@pytest.mark.parametrize(
    ("members", "fmt"),
    [
        (PAIRS, tarfile.GNU_FORMAT),
        (PAIRS[::-1], tarfile.USTAR_FORMAT),
        ([("./" + n, d) for n, d in PAIRS], tarfile.GNU_FORMAT),
        ([("sa_000000/" + n, d) for n, d in PAIRS], tarfile.PAX_FORMAT),
        ([("x" * 150 + ".json", b"{}"), *PAIRS], tarfile.GNU_FORMAT),  # a GNU long name
        ([("y" * 150 + ".json", b"[]"), *PAIRS], tarfile.PAX_FORMAT),  # a pax path
        ([("empty.json", b""), *PAIRS], tarfile.GNU_FORMAT),
    ],
    ids=["gnu", "ustar-reversed", "dot-slash", "shard-folder-pax", "gnu-long", "pax-long", "empty"],
)
def test_the_walk_finds_every_member_and_fetches_only_the_wanted_data(
    members: list[tuple[str, bytes]], fmt: int
) -> None:
    archive = make_tar(members, fmt=fmt)
    walk = TarWalk("sa_000000.tar", len(archive), wants_json)
    got, fetched, _ = walk_by_ranges(archive, walk)
    assert walk.entries == catalog(archive)
    expected = {e.name: archive[e.offset : e.offset + e.size] for e in walk.entries}
    assert got == {n: d for n, d in expected.items() if n.endswith(".json") and d}
    json_bytes = sum(len(d) for n, d in expected.items() if n.endswith(".json"))
    headers = len(archive) // 512  # an upper bound on header blocks
    assert fetched <= 1.3 * json_bytes + 512 * min(headers, 3 * len(members) + 2)


def test_a_wanted_member_comes_with_the_next_header_in_one_request() -> None:
    members = [(f"sa_{i}.json", b"{}" * 300) for i in range(10)]
    archive = make_tar(members)
    _, _, requests = walk_by_ranges(archive, TarWalk("s.tar", len(archive), wants_json))
    assert requests == 1 + 10 + 1  # the first header, each member with the next, the trailer


def test_a_stream_of_the_whole_archive_gives_the_same_as_range_reads() -> None:
    archive = make_tar(PAIRS)
    walk = TarWalk("s.tar", len(archive), wants_json)
    got: dict[str, bytes] = {}
    for offset in range(0, len(archive), 1000):  # chunks that straddle everything
        for piece in walk.feed(offset, archive[offset : offset + 1000]):
            got[piece.entry.name] = got.get(piece.entry.name, b"") + piece.data
    assert walk.finished
    assert got == {n: d for n, d in PAIRS if n.endswith(".json")}


def test_a_large_wanted_member_arrives_in_chunks() -> None:
    big = bytes(range(256)) * (CHUNK // 256 * 2 + 3)
    archive = make_tar([("big.jpg", big), ("a.json", b"{}")])
    got, _, _ = walk_by_ranges(archive, TarWalk("s.tar", len(archive), lambda n: n.endswith("jpg")))
    assert got == {"big.jpg": big}


@pytest.mark.parametrize("cut", [0, 1, 2])
def test_a_walk_resumed_at_its_checkpoint_ends_as_an_unbroken_one(cut: int) -> None:
    archive = make_tar(PAIRS)
    first = TarWalk("s.tar", len(archive), wants_json)
    for _ in range(3 + cut * 2):
        start, end = first.need() or (0, 0)
        first.feed(start, archive[start:end])
    start, count = first.checkpoint
    resumed = TarWalk("s.tar", len(archive), wants_json, start=start, entries=first.entries[:count])
    walk_by_ranges(archive, resumed)
    assert resumed.entries == catalog(archive)


def unsafe(kind: str) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.GNU_FORMAT) as tar:
        tar.addfile(tarfile.TarInfo("sa_1.jpg"), io.BytesIO())
        info = tarfile.TarInfo("../evil.json" if kind == "climb" else "sa_2.json")
        if kind == "symlink":
            info.type, info.linkname = tarfile.SYMTYPE, "/etc/passwd"
        tar.addfile(info, io.BytesIO())
    return buffer.getvalue()


@pytest.mark.parametrize("kind", ["symlink", "climb"])
def test_an_unsafe_member_stops_the_walk_even_when_not_wanted(kind: str) -> None:
    archive = unsafe(kind)
    with pytest.raises(UnsafeMemberError):
        walk_by_ranges(archive, TarWalk("s.tar", len(archive), lambda n: False))


def _end_of_members(archive: bytes) -> int:
    last = catalog(archive)[-1]
    return last.offset + -(-last.size // 512) * 512


@pytest.mark.parametrize(
    ("damage", "message"),
    [
        (lambda a: a[: _end_of_members(a)], "end-of-archive"),
        (lambda a: a[: _end_of_members(a) + 512], "one zero block"),
        (lambda a: a[:100] + b"x" + a[101:], "checksum"),
        (lambda a: a[: len(a) - 512 * 21], "cut short|end-of-archive"),
    ],
    ids=["no-end-blocks", "one-end-block", "bad-checksum", "cut-member"],
)
def test_a_damaged_archive_is_refused(damage, message: str) -> None:  # type: ignore[no-untyped-def]
    archive = damage(make_tar(PAIRS))
    with pytest.raises(CorruptArchiveError, match=message):
        walk_by_ranges(archive, TarWalk("s.tar", len(archive), wants_json))


def test_bytes_past_what_is_needed_are_a_caller_error() -> None:
    archive = make_tar(PAIRS)
    with pytest.raises(ValueError, match="needed"):
        TarWalk("s.tar", len(archive), wants_json).feed(512, archive[512:1024])


MEMBERS = st.lists(
    st.tuples(st.integers(1, 40), st.sampled_from(["jpg", "json"]), st.integers(0, 3000)),
    min_size=1,
    max_size=12,
    unique_by=lambda t: (t[0], t[1]),
)
"""Members (number, extension, size) of a tar, in any order."""


def members_of(members: list[tuple[int, str, int]]) -> list[tuple[str, bytes]]:
    return [(f"sa_{i}.{ext}", bytes([i % 251]) * size) for i, ext, size in members]


@settings(max_examples=60, deadline=None)
@given(
    MEMBERS,
    st.sampled_from([tarfile.GNU_FORMAT, tarfile.PAX_FORMAT, tarfile.USTAR_FORMAT]),
)
def test_any_order_and_sizes(members: list[tuple[int, str, int]], fmt: int) -> None:
    files = members_of(members)
    archive = make_tar(files, fmt=fmt)
    walk = TarWalk("s.tar", len(archive), wants_json)
    got, _, _ = walk_by_ranges(archive, walk)
    assert walk.entries == catalog(archive)
    assert got == {n: d for n, d in files if n.endswith(".json") and d}


@settings(max_examples=60, deadline=None)
@given(
    MEMBERS,
    st.integers(1, 5000),
)
def test_data_handed_out_as_it_comes_is_every_byte_in_views(
    members: list[tuple[int, str, int]], step: int
) -> None:
    """``gather=False`` (a streamed shard's parts): a member cut by the end of a feed comes
    in pieces, each a view of what was fed (no copy), none empty, in order."""
    files = members_of(members)
    archive = make_tar(files)
    walk = TarWalk("s.tar", len(archive), lambda name: True, gather=False)
    got: dict[str, bytes] = {}
    for offset in range(0, len(archive), step):
        for piece in walk.feed(offset, memoryview(archive)[offset : offset + step]):
            assert isinstance(piece.data, memoryview) and len(piece.data) > 0
            assert piece.at == len(got.get(piece.entry.name, b""))
            got[piece.entry.name] = got.get(piece.entry.name, b"") + bytes(piece.data)
    assert walk.finished
    assert walk.entries == catalog(archive)
    assert got == {n: d for n, d in files if d}


# -- one definition of a damaged archive: the verdicts of the one tar reader ----------------


def _header(name: str, size: int) -> bytes:
    info = tarfile.TarInfo(name)
    info.size = size
    return info.tobuf(tarfile.GNU_FORMAT)


def _sound() -> bytes:
    return make_tar(PAIRS)


def _with_end_blocks(members: bytes, tail: bytes = b"") -> bytes:
    return members + bytes(1024) + tail


def _flip_a_header(archive: bytes, number: int) -> bytes:
    """A byte of the name in member ``number``'s header changed, its checksum not."""
    with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
        at = tar.getmembers()[number].offset + 3
    return archive[:at] + bytes([archive[at] ^ 1]) + archive[at + 1 :]


VERDICTS: dict[str, tuple[bytes, type[Exception] | None, str]] = {
    "sound": (_sound(), None, ""),
    "sound, exactly two end blocks": (
        _with_end_blocks(_sound()[: _end_of_members(_sound())]),
        None,
        "",
    ),
    "sound, zeros past a chunk": (_sound() + bytes(CHUNK + 3000), None, ""),
    "pax long names": (
        make_tar([("p" * 150 + ".json", b"{}"), *PAIRS], fmt=tarfile.PAX_FORMAT),
        None,
        "",
    ),
    "gnu long names": (make_tar([("g" * 150 + ".json", b"{}"), *PAIRS]), None, ""),
    "empty": (b"", CorruptArchiveError, "without its end-of-archive blocks"),
    "garbage after the end blocks": (
        _sound()[: _end_of_members(_sound()) + 1024] + b"garbage",
        CorruptArchiveError,
        "after the end-of-archive blocks at byte",
    ),
    "garbage deep in the zeros": (
        _sound() + bytes(CHUNK + 100) + b"\x01",
        CorruptArchiveError,
        f"after the end-of-archive blocks at byte {len(_sound()) + CHUNK + 100}$",
    ),
    "another archive after one zero block": (
        _sound()[: _end_of_members(_sound()) + 512] + make_tar(PAIRS[:2]),
        CorruptArchiveError,
        "one zero block at byte",
    ),
    "no end blocks": (
        _sound()[: _end_of_members(_sound())],
        CorruptArchiveError,
        "without its end-of-archive",
    ),
    "one end block": (
        _sound()[: _end_of_members(_sound()) + 512],
        CorruptArchiveError,
        "one zero block instead of two",
    ),
    "bad header checksum": (_flip_a_header(_sound(), 2), CorruptArchiveError, "checksum"),
    "truncated member": (_sound()[:1000], CorruptArchiveError, "'sa_1.jpg' is cut short"),
    "duplicate name": (
        make_tar([*PAIRS, PAIRS[3]]),
        CorruptArchiveError,
        f"{PAIRS[3][0]!r} appears twice",
    ),
    "duplicate after normalising": (
        make_tar([*PAIRS, ("./" + PAIRS[3][0], b"")]),
        CorruptArchiveError,
        "appears twice",
    ),
    "member past the end": (
        _with_end_blocks(
            _sound()[: _end_of_members(_sound())] + _header("sa_9.jpg", 10**6) + bytes(512)
        ),
        CorruptArchiveError,
        "'sa_9.jpg' is cut short",
    ),
    "a symbolic link": (unsafe("symlink"), UnsafeMemberError, "symbolic link"),
    "a name climbing out": (unsafe("climb"), UnsafeMemberError, "climbs out"),
}


def walk_as_a_stream(archive: bytes, walk: TarWalk, step: int) -> None:
    """Drive the walk as extraction and a server without ranges do: every byte in order."""
    for offset in range(0, len(archive), step):
        walk.feed(offset, archive[offset : offset + step])
    assert walk.finished


@pytest.mark.parametrize("case", list(VERDICTS))
@pytest.mark.parametrize(
    "drive", ["ranges", "stream of 1000", "stream of 512", "ungathered stream of 700"]
)
def test_one_verdict_however_the_walk_is_driven(case: str, drive: str) -> None:
    archive, error, message = VERDICTS[case]

    def walk() -> None:
        gather = not drive.startswith("ungathered")  # extraction's walk: every member's data
        wanted = wants_json if gather else (lambda name: True)
        walker = TarWalk("s.tar", len(archive), wanted, gather=gather)
        if drive == "ranges":
            walk_by_ranges(archive, walker)
        else:
            walk_as_a_stream(archive, walker, int(drive.rsplit(" ", 1)[1]))

    if error is None:
        walk()
        return
    with pytest.raises(error, match=message) as caught:
        walk()
    assert caught.value.shard == "s.tar"  # type: ignore[attr-defined]


def test_each_regular_member_is_announced_before_the_bytes_after_its_data() -> None:
    """Extraction copies an announced member's data before it reads the next bytes."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.GNU_FORMAT) as tar:
        folder = tarfile.TarInfo("sa_000001")
        folder.type = tarfile.DIRTYPE
        tar.addfile(folder)
        for name, data in PAIRS[:2]:
            info = tarfile.TarInfo(f"sa_000001/{name}")
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    archive = buffer.getvalue()
    found: list[Found] = []
    walk = TarWalk("sa_000001.tar", len(archive), headers_only, on_member=found.append)
    while (need := walk.need()) is not None:
        start, end = need
        assert all(f.entry.offset + f.entry.size <= start for f in found)
        announced = len(found)
        walk.feed(start, archive[start:end])
        assert len(found) <= announced + 1  # one header read, at most one member
    assert [f.entry for f in found] == walk.entries
    assert [str(f.target) for f in found] == [f"sa_000001/{n}" for n, _ in PAIRS[:2]]


@settings(max_examples=60, deadline=None)
@given(
    fmt=st.sampled_from([tarfile.GNU_FORMAT, tarfile.PAX_FORMAT, tarfile.USTAR_FORMAT]),
    sizes=st.lists(st.integers(0, 3000), min_size=1, max_size=8),
    long_name=st.booleans(),
    part=st.integers(1, 12).map(lambda blocks: 512 * blocks - (blocks % 3)),
    stop=st.integers(0, 40),
)
def test_a_headers_walk_resumed_at_its_resume_point_ends_as_an_unbroken_one(
    fmt: int, sizes: list[int], long_name: bool, part: int, stop: int
) -> None:
    """Fed in parts of any size (as an upload reads them in order), stopped after any
    part, and resumed at its resume point from the part that holds it: the same catalog,
    and the resume point never behind the checkpoint."""
    names = [f"sa_{i}.jpg" for i in range(len(sizes))]
    if long_name and fmt != tarfile.USTAR_FORMAT:
        names[-1] = "z" * 150 + ".json"  # a pax or GNU record before its header
    members = [(n, bytes([i]) * size) for i, (n, size) in enumerate(zip(names, sizes, strict=True))]
    archive = make_tar(members, fmt=fmt)
    first = TarWalk("s.tar", len(archive), headers_only)
    for start in range(0, min(stop * part, len(archive)), part):
        first.feed(start, archive[start : start + part])
    at, count = first.resume_point
    assert at >= first.checkpoint[0] and count >= first.checkpoint[1]
    resumed = TarWalk(
        "s.tar",
        len(archive),
        headers_only,
        start=None if first.finished else at,
        entries=first.entries[:count],
    )
    for start in range(at // part * part, len(archive), part):
        resumed.feed(start, archive[start : start + part])
    assert resumed.finished
    assert resumed.entries == catalog(archive)


def test_the_resume_point_of_a_headers_walk_is_the_next_header() -> None:
    archive = make_tar(PAIRS)
    walk = TarWalk("s.tar", len(archive), headers_only)
    walk.feed(0, archive[:512])
    second = catalog(archive)[1].offset - 512
    assert walk.resume_point == (second, 1)  # past the first member's data, not its header
    assert walk.checkpoint == (0, 0)
    walk.feed(0, archive)
    assert walk.finished and walk.resume_point == (len(archive), len(PAIRS))
