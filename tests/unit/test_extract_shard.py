"""Extraction that follows a download: the same files for any arrival pattern, nothing unsafe
written, every way an archive can be broken caught, and publishing into each layout."""

from __future__ import annotations

import contextlib
import hashlib
import io
import os
import shutil
import stat
import tarfile
import tempfile
import threading
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from functools import partial
from pathlib import Path, PurePosixPath

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from sa1b.cdn.synth import MemberStyle, ShardInfo, make_shard
from sa1b.errors import CorruptArchiveError, ExtractionError, NameClashError, UnsafeMemberError
from sa1b.extract import reader as reader_module
from sa1b.extract import shard as extract_module
from sa1b.extract.reader import Wait
from sa1b.extract.shard import ExtractReport, extract_shard, publish
from sa1b.holes import hole_end
from sa1b.layout import LAYOUTS, Layout, whole_units
from sa1b.store.resume import Resume
from sa1b.tarformat import MAX_META
from tests.wdstar import wds_order, wds_tar

SHARD = "sa_000007.tar"
STEM = "sa_000007"
FORMATS = {"ustar": tarfile.USTAR_FORMAT, "gnu": tarfile.GNU_FORMAT, "pax": tarfile.PAX_FORMAT}
STYLES: tuple[MemberStyle, ...] = ("flat", "dotslash", "folder")
BLOCK = tarfile.BLOCKSIZE
MTIME = 1_680_566_400

Member = tuple[str, bytes] | tarfile.TarInfo


def no_wait(end: int) -> None:
    return None


def member_info(
    name: str, *, size: int = 0, kind: bytes = tarfile.REGTYPE, linkname: str = ""
) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.size = size
    info.type = kind
    info.linkname = linkname
    info.mtime = MTIME
    info.mode = 0o755 if kind == tarfile.DIRTYPE else 0o644
    info.uname = info.gname = ""
    return info


def build(members: Sequence[Member], fmt: int = tarfile.GNU_FORMAT) -> bytes:
    """An archive as Python's tarfile writes it (padded to its 10 KiB record)."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=fmt, encoding="utf-8") as archive:
        for member in members:
            if isinstance(member, tarfile.TarInfo):
                archive.addfile(member)
            else:
                name, data = member
                archive.addfile(member_info(name, size=len(data)), io.BytesIO(data))
    return buffer.getvalue()


def pair(image_id: int, prefix: str = "") -> list[tuple[str, bytes]]:
    return [
        (f"{prefix}sa_{image_id}.jpg", b"\xff\xd8" + bytes([image_id % 256]) * (700 + image_id)),
        (f"{prefix}sa_{image_id}.json", b'{"image": {"image_id": %d}}' % image_id),
    ]


def end_of_members(raw: bytes) -> int:
    """The offset of the first end-of-archive block (tarfile's own view)."""
    with tarfile.open(fileobj=io.BytesIO(raw), mode="r:") as archive:
        last = archive.getmembers()[-1]
    return last.offset_data + -(-last.size // BLOCK) * BLOCK


def offsets(raw: bytes) -> list[tarfile.TarInfo]:
    with tarfile.open(fileobj=io.BytesIO(raw), mode="r:") as archive:
        return archive.getmembers()


def files_under(root: Path) -> dict[str, bytes]:
    """Every regular file below ``root`` by relative path; fails on anything else."""
    found: dict[str, bytes] = {}
    if not root.exists():
        return found
    for folder, dirs, names in os.walk(root):
        for name in [*dirs, *names]:
            mode = os.lstat(Path(folder, name)).st_mode
            assert stat.S_ISDIR(mode) or stat.S_ISREG(mode), f"{folder}/{name} is neither"
        for name in names:
            path = Path(folder, name)
            found[path.relative_to(root).as_posix()] = path.read_bytes()
    return found


def expected_files(
    members: Sequence[tuple[str, bytes]], layout: Layout, shard: str = SHARD
) -> dict[str, bytes]:
    stem = shard.removesuffix(".tar")
    if layout == "wds":
        return {f"wds/{stem}.tar": wds_tar(members, mtime=MTIME)}
    result = {}
    for name, data in members:
        base = name.rsplit("/", 1)[-1]
        if layout == "shard":
            result[f"{stem}/{base}"] = data
        elif layout == "split":
            kind = {".jpg": "images", ".json": "annotations"}.get(Path(base).suffix, "other")
            result[f"{kind}/{stem}/{base}"] = data
        else:
            result[base] = data
    return result


def expected_index(
    members: Sequence[tuple[str, bytes]], layout: Layout, shard: str = SHARD
) -> list[str]:
    """The members' paths as the report lists them: their files, or their places in the
    one wds tar (in its order)."""
    if layout != "wds":
        return list(expected_files(members, layout, shard))
    stem = shard.removesuffix(".tar")
    names = sorted((name.rsplit("/", 1)[-1] for name, _ in members), key=wds_order)
    return [f"wds/{stem}.tar/{name}" for name in names]


def staged_before_a_failure(
    members: Sequence[tuple[str, bytes]], layout: Layout
) -> dict[str, bytes]:
    """What a refused shard leaves in staging: the files of the members before the bad one;
    nothing in ``wds``, whose tar is written only once the whole shard is found sound."""
    return {} if layout == "wds" else expected_files(members, layout)


def tar_members(raw: bytes) -> list[tuple[str, bytes]]:
    members = []
    with tarfile.open(fileobj=io.BytesIO(raw), mode="r:") as archive:
        for info in archive.getmembers():
            if info.isfile():
                data = archive.extractfile(info)
                assert data is not None
                members.append((info.name, data.read()))
    return members


@dataclass
class Box:
    """A tar, a staging folder and an output folder, next to a sentinel that must not change."""

    root: Path

    def __post_init__(self) -> None:
        self.tar = self.root / "shard.tar.part"
        self.staging = self.root / "staging" / SHARD
        self.out = self.root / "out"
        self.sentinel = self.root / "sentinel"
        self.sentinel.mkdir(parents=True)
        (self.sentinel / "keep.txt").write_bytes(b"sentinel")
        self.out.mkdir()

    def extract(
        self,
        raw: bytes,
        *,
        layout: Layout = "shard",
        wait: Wait = no_wait,
        digest_algorithm: str | None = None,
        shard: str = SHARD,
        size: int | None = None,
    ) -> ExtractReport:
        if not self.tar.exists() or self.tar.read_bytes() != raw:
            self.tar.write_bytes(raw)
        fd = os.open(self.tar, os.O_RDONLY)
        try:
            return extract_shard(
                fd,
                len(raw) if size is None else size,
                shard=shard,
                staging=self.staging,
                layout=layout,
                wait=wait,
                digest_algorithm=digest_algorithm,
            )
        finally:
            os.close(fd)

    def staged(self) -> dict[str, bytes]:
        return files_under(self.staging)

    def check_contained(self) -> None:
        """Nothing outside staging and out; the sentinel untouched, its file not linked."""
        allowed = {"shard.tar.part", "staging", "out", "sentinel"}
        assert {p.name for p in self.root.iterdir()} <= allowed
        assert files_under(self.sentinel) == {"keep.txt": b"sentinel"}
        assert os.stat(self.sentinel / "keep.txt").st_nlink == 1
        files_under(self.root / "staging")  # only files and folders
        files_under(self.out)


@pytest.fixture
def box(tmp_path: Path) -> Iterator[Box]:
    made = Box(tmp_path / "box")
    yield made
    made.check_contained()


class Trickle:
    """Write ``data`` into ``path`` chunk by chunk from another thread, each chunk released only
    when the extractor waits for bytes past what is written; ``wait(end)`` follows it.

    The file has its final size from the start (as the downloader preallocates it), filled with
    a pattern that is not a tar, so reading a byte that was not waited for breaks the result.
    """

    FILLER = b"\xa5"

    def __init__(self, path: Path, data: bytes, cuts: Sequence[int]) -> None:
        self.path = path
        self.data = data
        self.bounds = [*sorted({c for c in cuts if 0 < c < len(data)}), len(data)]
        self.cond = threading.Condition()
        self.written = 0
        self.asked = 0
        self.highest = 0
        self.done = False
        path.write_bytes(self.FILLER * len(data))
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        fd = os.open(self.path, os.O_WRONLY)
        try:
            start = 0
            for end in self.bounds:
                with self.cond:
                    self.cond.wait_for(lambda: self.done or self.asked > self.written, timeout=10)
                os.pwrite(fd, self.data[start:end], start)
                with self.cond:
                    self.written = end
                    self.cond.notify_all()
                start = end
        finally:
            os.close(fd)

    def wait(self, end: int) -> None:
        assert end <= len(self.data), f"waited for byte {end} of a {len(self.data)}-byte file"
        with self.cond:
            self.highest = max(self.highest, end)
            if end > self.written:
                self.asked = max(self.asked, end)
                self.cond.notify_all()
                if not self.cond.wait_for(lambda: self.written >= end, timeout=10):
                    raise TimeoutError(f"byte {end} never arrived")

    @contextlib.contextmanager
    def running(self) -> Iterator[Trickle]:
        self.thread.start()
        try:
            yield self
        finally:
            with self.cond:
                self.done = True
                self.cond.notify_all()
            self.thread.join(timeout=10)


def extract_trickled(
    root: Path,
    raw: bytes,
    cuts: Sequence[int],
    *,
    layout: Layout = "shard",
    digest_algorithm: str | None = None,
) -> tuple[ExtractReport, dict[str, bytes], Trickle]:
    path = root / "arriving.tar.part"
    staging = root / "staging" / SHARD
    trickle = Trickle(path, raw, cuts)
    with trickle.running():
        fd = os.open(path, os.O_RDONLY)
        try:
            report = extract_shard(
                fd,
                len(raw),
                shard=SHARD,
                staging=staging,
                layout=layout,
                wait=trickle.wait,
                digest_algorithm=digest_algorithm,
            )
        finally:
            os.close(fd)
    return report, files_under(staging), trickle


@pytest.fixture(scope="module")
def synth_shards(tmp_path_factory: pytest.TempPathFactory) -> dict[MemberStyle, ShardInfo]:
    root = tmp_path_factory.mktemp("synth")
    return {
        style: make_shard(
            root / f"{style}.tar", shard_index=7, size=160_000, seed=11, member_style=style
        )
        for style in STYLES
    }


# -- well-formed archives -----------------------------------------------------------------


@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("fmt", FORMATS)
def test_extracts_what_tarfile_reads(box: Box, fmt: str, layout: Layout) -> None:
    members = [*pair(1), *pair(2), *pair(300)]
    members = [members[0], members[3], members[1], members[4], members[2], members[5]]
    raw = build(members, FORMATS[fmt])
    report = box.extract(raw, layout=layout)
    assert box.staged() == expected_files(members, layout)
    assert report.shard == SHARD
    assert [str(m) for m in report.members] == expected_index(members, layout)
    assert report.warnings == ()
    assert report.digest is None


@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("style", STYLES)
def test_extracts_synthetic_shards(
    box: Box, synth_shards: dict[MemberStyle, ShardInfo], style: MemberStyle, layout: Layout
) -> None:
    info = synth_shards[style]
    raw = info.path.read_bytes()
    report = box.extract(raw, layout=layout, digest_algorithm="md5")
    members = tar_members(raw)
    assert len(members) >= 8
    assert box.staged() == expected_files(members, layout)
    assert len(report.members) == len(members)
    assert report.warnings == ()
    assert report.digest == info.md5


def test_empty_archive(box: Box) -> None:
    report = box.extract(build([]))
    assert report.members == ()
    assert report.warnings == ()
    assert box.staged() == {}
    assert box.staging.is_dir()


def test_directories_and_empty_files(box: Box) -> None:
    raw = build(
        [
            member_info("./", kind=tarfile.DIRTYPE),
            member_info(f"./{STEM}/", kind=tarfile.DIRTYPE),
            (f"./{STEM}/sa_1.jpg", b""),
            (f"./{STEM}/sa_1.json", b"{}"),
        ]
    )
    report = box.extract(raw)
    assert box.staged() == {f"{STEM}/sa_1.jpg": b"", f"{STEM}/sa_1.json": b"{}"}
    assert len(report.members) == 2


@pytest.mark.parametrize("size", [0, 1, 511, 512, 513, 1024, 8191])
def test_member_sizes_around_block_boundaries(box: Box, size: int) -> None:
    data = bytes(range(256)) * (size // 256 + 1)
    members = [("sa_1.jpg", data[:size]), ("sa_1.json", data[:size][::-1])]
    box.extract(build(members))
    assert box.staged() == expected_files(members, "shard")


def test_staging_is_emptied_first(box: Box) -> None:
    box.staging.mkdir(parents=True)
    (box.staging / "left-over.jpg").write_bytes(b"old")
    (box.staging / STEM).mkdir()
    (box.staging / STEM / "sa_1.jpg").write_bytes(b"old")
    members = pair(1)
    box.extract(build(members))
    assert box.staged() == expected_files(members, "shard")


@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("fmt", ["gnu", "pax"])
@pytest.mark.parametrize("prefix", ["", "./", f"{STEM}/", f"./{STEM}/"])
def test_long_names(box: Box, fmt: str, prefix: str, layout: Layout) -> None:
    long_id = "1" * 150
    members = [
        (f"{prefix}sa_{long_id}.jpg", b"image" * 100),
        (f"{prefix}sa_{long_id}.json", b"{}"),
        (f"{prefix}sa_{'2' * 190}.json", b"[]"),
        (f"{prefix}sa_{'2' * 190}.jpg", b"\xff\xd8"),
    ]
    raw = build(members, FORMATS[fmt])
    kinds = {m.type for m in offsets(raw)}
    assert kinds == {tarfile.REGTYPE}
    assert len(raw) > 4 * 2 * BLOCK  # long-name records were written
    if layout == "wds":  # a plain ustar header holds 100 bytes of name
        with pytest.raises(UnsafeMemberError, match="longer than a ustar header holds"):
            box.extract(raw, layout=layout)
        assert box.staged() == {}
        return
    box.extract(raw, layout=layout)
    assert box.staged() == expected_files(members, layout)


def test_ustar_prefix_names(box: Box) -> None:
    members = [(f"./{STEM}/sa_{'3' * 90}.jpg", b"abc")]
    members.append((members[0][0].replace(".jpg", ".json"), b"{}"))
    raw = build(members, tarfile.USTAR_FORMAT)
    assert len(members[0][0]) > 100
    box.extract(raw)
    assert box.staged() == expected_files(members, "shard")


def test_pax_size_override(box: Box) -> None:
    data = b"z" * 3000
    info = member_info("sa_1.jpg", size=len(data))
    info.pax_headers = {"size": str(len(data))}
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.PAX_FORMAT) as archive:
        archive.addfile(info, io.BytesIO(data))
        archive.addfile(member_info("sa_1.json", size=2), io.BytesIO(b"{}"))
    box.extract(buffer.getvalue())
    assert box.staged() == {f"{STEM}/sa_1.jpg": data, f"{STEM}/sa_1.json": b"{}"}


# -- following the download: any arrival pattern gives the same files -----------------------

_NAMES = st.lists(st.integers(1, 10**6), min_size=0, max_size=6, unique=True)


@st.composite
def archives(draw: st.DrawFn) -> tuple[bytes, list[tuple[str, bytes]]]:
    ids = draw(_NAMES)
    prefix = draw(st.sampled_from(["", "./", f"{STEM}/"]))
    long = draw(st.booleans())
    members = []
    for image_id in ids:
        stem = f"sa_{image_id:0{120 if long else 1}d}"
        for ext in ("jpg", "json"):
            size = draw(st.integers(0, 3000))
            members.append((f"{prefix}{stem}.{ext}", bytes([image_id % 256 ^ len(ext)]) * size))
    order = draw(st.permutations(members))
    fmt = draw(st.sampled_from(["gnu", "pax"] if long else sorted(FORMATS)))
    head: list[Member] = [member_info(prefix, kind=tarfile.DIRTYPE)] if prefix else []
    return build([*head, *order], FORMATS[fmt]), list(order)


@settings(
    max_examples=100,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    archive=archives(),
    cuts=st.lists(st.integers(0, 40_000), max_size=12),
    options=st.tuples(
        st.sampled_from([None, 700, 4096]),  # copy chunk size
        st.sampled_from(LAYOUTS),
        st.sampled_from([None, "md5", "sha256"]),  # digest algorithm
    ),
)
def test_any_arrival_pattern_gives_the_same_files(
    tmp_path: Path,
    archive: tuple[bytes, list[tuple[str, bytes]]],
    cuts: list[int],
    options: tuple[int | None, Layout, str | None],
) -> None:
    raw, members = archive
    chunk, layout, digest = options
    # Names over 100 bytes are refused in wds (test_long_names); the rest must extract.
    assume(layout != "wds" or all(len(name.rsplit("/", 1)[-1]) <= 100 for name, _ in members))
    with (
        tempfile.TemporaryDirectory(dir=tmp_path) as work,
        pytest.MonkeyPatch.context() as patch,
    ):
        if chunk is not None:
            patch.setattr(extract_module, "COPY_CHUNK", chunk)
            patch.setattr(reader_module, "COPY_CHUNK", chunk)
        report, staged, trickle = extract_trickled(
            Path(work), raw, cuts, layout=layout, digest_algorithm=digest
        )
        assert sorted(os.listdir(work)) == ["arriving.tar.part", "staging"]
    assert staged == expected_files(members, layout)
    assert [str(m) for m in report.members] == expected_index(members, layout)
    assert trickle.highest == len(raw)  # read to the end, and not a byte past it
    if digest is None:
        assert report.digest is None
    else:
        assert report.digest == hashlib.new(digest, raw).hexdigest()


@settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    style=st.sampled_from(STYLES),
    cuts=st.lists(st.integers(0, 170_000), max_size=20),
)
def test_synthetic_shard_arriving_in_chunks(
    tmp_path: Path,
    synth_shards: dict[MemberStyle, ShardInfo],
    style: MemberStyle,
    cuts: list[int],
) -> None:
    info = synth_shards[style]
    raw = info.path.read_bytes()
    with tempfile.TemporaryDirectory(dir=tmp_path) as work:
        report, staged, _ = extract_trickled(Path(work), raw, cuts, digest_algorithm="sha256")
    assert staged == expected_files(tar_members(raw), "shard")
    assert report.digest == info.sha256


def test_trickle_is_strict(tmp_path: Path) -> None:
    """The harness itself: reading without waiting sees the filler, not the archive."""
    raw = build(pair(1))
    trickle = Trickle(tmp_path / "t.part", raw, [BLOCK])
    with trickle.running():
        trickle.wait(BLOCK)
        with (tmp_path / "t.part").open("rb") as f:
            head = f.read(2 * BLOCK)
    assert head[:BLOCK] == raw[:BLOCK]
    assert head[BLOCK:] != raw[BLOCK : 2 * BLOCK]


def test_wait_that_raises_aborts(box: Box) -> None:
    raw = build([*pair(1), *pair(2)])
    stop_at = offsets(raw)[2].offset  # the header of the third member

    class Stop(Exception):
        pass

    def wait(end: int) -> None:
        if end > stop_at:
            raise Stop

    with pytest.raises(Stop):
        box.extract(raw, wait=wait)
    assert set(box.staged()) == {f"{STEM}/sa_1.jpg", f"{STEM}/sa_1.json"}


# -- digests ------------------------------------------------------------------------------


@pytest.mark.parametrize("algorithm", ["md5", "sha1", "sha256"])
@pytest.mark.parametrize("fmt", FORMATS)
def test_digest_covers_the_whole_file(box: Box, fmt: str, algorithm: str) -> None:
    members: list[Member] = [
        member_info("./", kind=tarfile.DIRTYPE),
        *pair(1, "./"),
        member_info("./sub/", kind=tarfile.DIRTYPE),
        *pair(2, "./"),
    ]
    raw = build(members, FORMATS[fmt]) + bytes(3 * BLOCK + 100)  # extra zeros at the end
    report = box.extract(raw, digest_algorithm=algorithm)
    assert report.digest == hashlib.new(algorithm, raw).hexdigest()
    without = box.extract(raw)
    assert without.digest is None
    assert without.members == report.members


def test_digest_with_small_copy_chunks(box: Box, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(extract_module, "COPY_CHUNK", 1000)
    monkeypatch.setattr(reader_module, "COPY_CHUNK", 1000)
    members = [("sa_1.jpg", os.urandom(10_000)), ("sa_1.json", os.urandom(2_500))]
    raw = build(members, tarfile.PAX_FORMAT)
    report = box.extract(raw, digest_algorithm="sha256")
    assert report.digest == hashlib.sha256(raw).hexdigest()
    assert box.staged() == expected_files(members, "shard")


def test_negative_pax_size_is_corrupt(box: Box) -> None:
    info = member_info("sa_1.jpg")
    info.pax_headers = {"size": "-1"}
    raw = build([info, ("sa_1.json", b"{}")], tarfile.PAX_FORMAT)
    with pytest.raises(CorruptArchiveError):
        box.extract(raw, digest_algorithm="md5")


# -- broken archives ----------------------------------------------------------------------


def _good() -> bytes:
    return build([*pair(1), *pair(2)], tarfile.GNU_FORMAT)


def _cuts() -> dict[str, int]:
    raw = _good()
    members = offsets(raw)
    end = end_of_members(raw)
    return {
        "inside the first header": 300,
        "after the first header": BLOCK,
        "inside member data": members[0].offset_data + 100,
        "inside the padding of a member": members[0].offset_data + members[0].size + 1,
        "inside a later header": members[2].offset + 17,
        "inside the last member": members[-1].offset_data + 1,
        "before the end blocks": end,
        "inside the first zero block": end + 100,
        "after only one zero block": end + BLOCK,
        "inside the second zero block": end + BLOCK + 511,
    }


@pytest.mark.parametrize(("where", "cut"), list(_cuts().items()))
def test_truncated_archive(box: Box, where: str, cut: int) -> None:
    raw = _good()[:cut]
    with pytest.raises(CorruptArchiveError) as caught:
        box.extract(raw)
    assert caught.value.shard == SHARD
    assert caught.value.message


def test_cut_member_is_named(box: Box) -> None:
    raw = _good()
    cut = offsets(raw)[2].offset_data + 10
    with pytest.raises(CorruptArchiveError, match="cut short") as caught:
        box.extract(raw[:cut])
    assert caught.value.member == "sa_2.jpg"
    assert "sa_2.jpg" in caught.value.message


def test_one_zero_block_is_named(box: Box) -> None:
    raw = _good()
    with pytest.raises(CorruptArchiveError, match="one zero block"):
        box.extract(raw[: end_of_members(raw) + BLOCK])


def test_truncated_long_name_records(box: Box) -> None:
    for fmt in (tarfile.GNU_FORMAT, tarfile.PAX_FORMAT):
        raw = build([(f"sa_{'9' * 150}.jpg", b"x" * 5000)], fmt)
        with pytest.raises(CorruptArchiveError):
            box.extract(raw[: BLOCK + 50])  # inside the long-name record


@pytest.mark.parametrize("extra", [0, 1, 100, 1024 * 3])
def test_exact_end_variants_are_fine(box: Box, extra: int) -> None:
    raw = _good()
    end = end_of_members(raw)
    trimmed = raw[: end + 2 * BLOCK] + bytes(extra)
    assert len(box.extract(trimmed).members) == 4


def test_size_smaller_than_the_file_is_what_counts(box: Box) -> None:
    """``size`` is the download's size: bytes past it are never looked at."""
    raw = _good()
    end = end_of_members(raw)
    report = box.extract(raw + b"garbage", size=end + 2 * BLOCK)
    assert len(report.members) == 4


@pytest.mark.parametrize(
    "tail",
    [
        pytest.param(b"x", id="one byte"),
        pytest.param(b"\x00" * 5000 + b"\x01", id="a byte deep in the zeros"),
        pytest.param(build(pair(9)), id="another archive"),
        pytest.param(bytes(BLOCK) + b"trailing text" + bytes(BLOCK), id="text"),
    ],
)
def test_garbage_after_the_end(box: Box, tail: bytes) -> None:
    raw = _good()
    end = end_of_members(raw)
    with pytest.raises(CorruptArchiveError, match="after the end"):
        box.extract(raw[: end + 2 * BLOCK] + tail)


def test_member_after_a_single_zero_block(box: Box) -> None:
    raw = _good()
    end = end_of_members(raw)
    with pytest.raises(CorruptArchiveError):
        box.extract(raw[: end + BLOCK] + build(pair(9)))


def test_garbage_instead_of_a_header(box: Box) -> None:
    raw = _good()
    second = offsets(raw)[1].offset
    broken = raw[:second] + b"\xff" * BLOCK + raw[second + BLOCK :]
    with pytest.raises(CorruptArchiveError, match=f"byte {second}"):
        box.extract(broken)


def test_not_a_tar_at_all(box: Box) -> None:
    with pytest.raises(CorruptArchiveError):
        box.extract(b"URL signature expired" + bytes(4 * BLOCK))
    with pytest.raises(CorruptArchiveError):
        box.extract(b"")


def test_bad_pax_record(box: Box) -> None:
    raw = bytearray(build([(f"sa_{'1' * 150}.jpg", b"x")], tarfile.PAX_FORMAT))
    assert raw[BLOCK : BLOCK + 4].split(b" ")[0].isdigit()
    raw[BLOCK : BLOCK + 3] = b"zz "
    with pytest.raises(CorruptArchiveError, match="pax"):
        box.extract(bytes(raw))


def test_huge_name_record_is_refused(box: Box) -> None:
    name = "a" * (MAX_META + 10)
    raw = build([member_info(name, kind=tarfile.DIRTYPE)], tarfile.GNU_FORMAT)
    with pytest.raises(CorruptArchiveError, match="name record"):
        box.extract(raw)


@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize(
    "names",
    [
        ("sa_1.jpg", "sa_1.jpg"),
        ("./sa_1.jpg", "sa_1.jpg"),
        (f"{STEM}/sa_1.jpg", "./sa_1.jpg"),
        ("sa_1.json", f"./{STEM}/sa_1.json"),
    ],
)
def test_duplicate_member(box: Box, layout: Layout, names: tuple[str, str]) -> None:
    first, second = names
    raw = build([(first, b"one"), ("sa_1.x", b""), (second, b"two")])
    with pytest.raises(CorruptArchiveError, match="twice") as caught:
        box.extract(raw, layout=layout)
    assert caught.value.member == second
    staged = box.staged()
    assert list(staged.values()).count(b"one") == (layout != "wds")
    assert b"two" not in staged.values()


# -- partners ------------------------------------------------------------------------------


@pytest.mark.parametrize("layout", LAYOUTS)
def test_missing_partners_are_warnings(box: Box, layout: Layout) -> None:
    members = [
        *pair(1),
        ("sa_2.jpg", b"no annotation"),
        ("./sa_3.json", b"{}"),
        ("README.txt", b"no partner needed"),
    ]
    report = box.extract(build(members), layout=layout)
    assert box.staged() == expected_files(members, layout)
    assert report.warnings == (
        f"{SHARD}: sa_2.jpg has no sa_2.json",
        f"{SHARD}: sa_3.json has no sa_3.jpg",
    )


# -- unsafe members ------------------------------------------------------------------------


def _unsafe_members(outside: Path) -> dict[str, tarfile.TarInfo]:
    escape = outside / "escaped.jpg"
    return {
        "absolute": member_info(str(escape), size=0),
        "dot-dot": member_info("../escaped.jpg"),
        "deep dot-dot": member_info("../../../../../../../../tmp/sa1b-escaped.jpg"),
        "dot-dot in folder": member_info(f"./{STEM}/../../sentinel/keep.txt"),
        "symlink": member_info("sa_2.jpg", kind=tarfile.SYMTYPE, linkname=str(outside)),
        "relative symlink": member_info("sa_2.jpg", kind=tarfile.SYMTYPE, linkname="../.."),
        "hard link": member_info(
            "sa_2.jpg", kind=tarfile.LNKTYPE, linkname=str(outside / "sentinel" / "keep.txt")
        ),
        "character device": member_info("sa_2.jpg", kind=tarfile.CHRTYPE),
        "block device": member_info("sa_2.jpg", kind=tarfile.BLKTYPE),
        "fifo": member_info("sa_2.jpg", kind=tarfile.FIFOTYPE),
        "hidden": member_info(".sa_2.jpg"),
        "nested": member_info("sub/sa_2.jpg"),
        "backslash": member_info("..\\sa_2.jpg"),
    }


UNSAFE = list(_unsafe_members(Path("/x")))


@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("kind", UNSAFE)
@pytest.mark.parametrize("fmt", ["gnu", "pax"])
def test_unsafe_member_stops_before_it_is_written(
    box: Box, kind: str, layout: Layout, fmt: str
) -> None:
    bad = _unsafe_members(box.root)[kind]
    data = b"evil" * 300
    if bad.type == tarfile.REGTYPE:
        bad.size = len(data)
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=FORMATS[fmt]) as archive:
        for name, payload in pair(1):
            archive.addfile(member_info(name, size=len(payload)), io.BytesIO(payload))
        archive.addfile(bad, io.BytesIO(data) if bad.size else None)
        for name, payload in pair(3):
            archive.addfile(member_info(name, size=len(payload)), io.BytesIO(payload))
    raw = buffer.getvalue()
    bad_header_end = offsets(raw)[2].offset_data  # the unsafe member's data starts here
    asked: list[int] = []
    with pytest.raises(UnsafeMemberError) as caught:
        box.extract(raw, layout=layout, wait=asked.append)
    assert caught.value.shard == SHARD
    assert caught.value.member == bad.name
    assert repr(bad.name[:30])[1:-1] in caught.value.message
    # nothing of it, nor of anything after it: only the members before it are staged
    assert box.staged() == staged_before_a_failure(pair(1), layout)
    assert max(asked) <= bad_header_end  # its data was never even read
    assert not (box.root / "escaped.jpg").exists()
    assert not (box.root.parent / "escaped.jpg").exists()
    assert not Path("/tmp/sa1b-escaped.jpg").exists()
    assert files_under(box.out) == {}


@pytest.mark.parametrize("kind", ["symlink", "dot-dot", "absolute", "fifo"])
def test_unsafe_first_member_leaves_staging_empty(box: Box, kind: str) -> None:
    bad = _unsafe_members(box.root)[kind]
    raw = build([bad, *pair(1)])
    with pytest.raises(UnsafeMemberError):
        box.extract(raw)
    assert box.staged() == {}


@pytest.mark.parametrize("prefix", ["..", "/etc", f"{STEM}/.."])
def test_unsafe_name_hidden_in_the_ustar_prefix_field(box: Box, prefix: str) -> None:
    name = f"{prefix}/sa_{'1' * 93}.jpg"
    raw = build([*pair(1), (name, b"evil")], tarfile.USTAR_FORMAT)
    header = offsets(raw)[2].offset
    assert raw[header + 345 : header + 345 + len(prefix)] == prefix.encode()
    with pytest.raises(UnsafeMemberError) as caught:
        box.extract(raw)
    assert caught.value.member == name
    assert box.staged() == expected_files(pair(1), "shard")


def test_extraction_errors_share_a_base() -> None:
    for cls in (UnsafeMemberError, CorruptArchiveError, NameClashError):
        assert issubclass(cls, ExtractionError)


# -- publish -------------------------------------------------------------------------------


def _extract_and_publish(
    box: Box, members: Sequence[tuple[str, bytes]], layout: Layout, shard: str = SHARD
) -> ExtractReport:
    report = box.extract(build(members), layout=layout, shard=shard)
    publish(report, staging=box.staging, out=box.out, layout=layout)
    return report


@pytest.mark.parametrize("layout", LAYOUTS)
def test_publish_each_layout(box: Box, layout: Layout) -> None:
    members = [*pair(1, "./"), *pair(2, "./"), ("./notes.txt", b"other")]
    _extract_and_publish(box, members, layout)
    assert files_under(box.out) == expected_files(members, layout)
    assert not box.staging.exists()


def test_whole_units() -> None:
    assert whole_units("shard", SHARD) == (PurePosixPath(STEM),)
    assert whole_units("split", SHARD) == (
        PurePosixPath("images", STEM),
        PurePosixPath("annotations", STEM),
        PurePosixPath("other", STEM),
    )
    assert whole_units("flat", SHARD) == ()


@pytest.mark.parametrize("layout", ["shard", "split"])
def test_publish_replaces_what_a_crash_left(box: Box, layout: Layout) -> None:
    members = [*pair(1), *pair(2)]
    for unit in whole_units(layout, SHARD)[:2]:
        stale = box.out / unit
        stale.mkdir(parents=True)
        (stale / "sa_1.jpg").write_bytes(b"half-written")
        (stale / "stale.jpg").write_bytes(b"from an older attempt")
    _extract_and_publish(box, members, layout)
    assert files_under(box.out) == expected_files(members, layout)


def test_publish_replaces_a_wds_tar_a_crash_left(box: Box) -> None:
    """Renamed into place, then killed before the record: the next run's tar replaces it."""
    stale = box.out / "wds" / f"{STEM}.tar"
    stale.parent.mkdir()
    stale.write_bytes(b"half of an older attempt")
    members = [*pair(2), *pair(1)]
    _extract_and_publish(box, members, "wds")
    assert files_under(box.out) == expected_files(members, "wds")


@pytest.mark.parametrize("layout", ["shard", "split", "wds"])
def test_publish_leaves_other_shards_alone(box: Box, layout: Layout) -> None:
    first = [*pair(1)]
    _extract_and_publish(box, first, layout, shard="sa_000001.tar")
    second = [*pair(2)]
    _extract_and_publish(box, second, layout, shard="sa_000002.tar")
    expected = expected_files(first, layout, "sa_000001.tar")
    expected.update(expected_files(second, layout, "sa_000002.tar"))
    assert files_under(box.out) == expected


def test_flat_clash_with_different_bytes(box: Box) -> None:
    first = [*pair(1), *pair(2)]
    _extract_and_publish(box, first, "flat", shard="sa_000001.tar")
    before = files_under(box.out)
    second = [("sa_1.jpg", b"different image"), ("sa_1.json", pair(1)[1][1]), *pair(5)]
    report = box.extract(build(second), layout="flat", shard="sa_000002.tar")
    with pytest.raises(NameClashError) as caught:
        publish(report, staging=box.staging, out=box.out, layout="flat")
    assert caught.value.shard == "sa_000002.tar"
    assert caught.value.member == "sa_1.jpg"
    assert "sa_1.jpg" in caught.value.message
    # the first shard's files are intact, and nothing of the second was moved
    assert files_under(box.out) == before


def test_flat_clash_with_same_size_different_bytes(box: Box) -> None:
    _extract_and_publish(box, [("sa_1.jpg", b"a" * 5000)], "flat", shard="sa_000001.tar")
    report = box.extract(build([("sa_1.jpg", b"a" * 4999 + b"b")]), layout="flat")
    with pytest.raises(NameClashError):
        publish(report, staging=box.staging, out=box.out, layout="flat")
    assert (box.out / "sa_1.jpg").read_bytes() == b"a" * 5000


def test_flat_clash_with_a_folder(box: Box) -> None:
    (box.out / "sa_1.jpg").mkdir()
    report = box.extract(build([("sa_1.jpg", b"not the folder's size")]), layout="flat")
    with pytest.raises(NameClashError):
        publish(report, staging=box.staging, out=box.out, layout="flat")
    assert (box.out / "sa_1.jpg").is_dir()


def test_flat_clash_with_a_folder_of_the_same_size(box: Box) -> None:
    folder = box.out / "sa_1.jpg"
    folder.mkdir()
    size = folder.stat().st_size
    report = box.extract(build([("sa_1.jpg", b"x" * size)]), layout="flat")
    with pytest.raises(NameClashError):
        publish(report, staging=box.staging, out=box.out, layout="flat")


def test_flat_identical_bytes_are_fine(box: Box) -> None:
    big = os.urandom(3 * 1024 * 1024 + 5)  # more than one comparison chunk
    first = [("sa_1.jpg", big), ("sa_1.json", b"{}")]
    _extract_and_publish(box, first, "flat", shard="sa_000001.tar")
    second = [("sa_1.jpg", big), ("sa_1.json", b"{}"), *pair(5)]
    _extract_and_publish(box, second, "flat", shard="sa_000002.tar")
    assert files_under(box.out) == expected_files(second, "flat")


def test_flat_publish_twice_after_a_crash(box: Box) -> None:
    """A crash after the files moved but before the shard was recorded: do it again."""
    members = [*pair(1), *pair(2)]
    _extract_and_publish(box, members, "flat")
    _extract_and_publish(box, members, "flat")
    assert files_under(box.out) == expected_files(members, "flat")


def test_publish_of_an_empty_shard(box: Box) -> None:
    for layout in LAYOUTS:
        _extract_and_publish(box, [], layout)
    # Nothing but an empty wds tar (which says the shard was extracted, as its file).
    assert files_under(box.out) == {f"wds/{STEM}.tar": bytes(2 * BLOCK)}


# -- containment under every failure at once -----------------------------------------------


def _everything(box: Box) -> Iterator[tuple[Callable[[], object], bool]]:
    """Every kind of extraction and publish above, and whether it must be refused."""
    for bad in _unsafe_members(box.root).values():
        yield partial(box.extract, build([*pair(1), bad])), True
    for cut in _cuts().values():
        yield partial(box.extract, _good()[:cut]), True
    for layout in LAYOUTS:
        yield partial(_extract_and_publish, box, pair(1), layout), False


def test_nothing_outside_staging_and_out(box: Box) -> None:
    for step, refused in _everything(box):
        if refused:
            with pytest.raises(ExtractionError):
                step()
        else:
            step()
        box.check_contained()
    everything = {p.name for p in box.root.parent.iterdir()}
    assert everything == {"box"}


# -- resuming from a checkpoint (the tar freed below it) ---------------------------------


def _checkpoints(box: Box, raw: bytes, layout: Layout) -> tuple[ExtractReport, list[Resume]]:
    """One pass with a checkpoint at every member boundary; the report and every one."""
    box.tar.write_bytes(raw)
    saved: list[Resume] = []
    fd = os.open(box.tar, os.O_RDONLY)
    try:
        report = extract_shard(
            fd,
            len(raw),
            shard=SHARD,
            staging=box.staging,
            layout=layout,
            wait=no_wait,
            on_checkpoint=lambda packed: saved.append(packed.unpacked()),
            checkpoint_every=1,
        )
    finally:
        os.close(fd)
    return report, saved


def _resume(box: Box, size: int, resume: Resume, layout: Layout) -> ExtractReport:
    fd = os.open(box.tar, os.O_RDONLY)
    try:
        return extract_shard(
            fd, size, shard=SHARD, staging=box.staging, layout=layout, wait=no_wait, resume=resume
        )
    finally:
        os.close(fd)


def _crash_at(box: Box, raw: bytes, resume: Resume) -> None:
    """What a SIGKILL after this checkpoint leaves: its members staged, the next one
    half-written, a stray file, and the tar freed (zeros) below the checkpoint."""
    assert resume.next is not None
    kept = {box.staging / path for path, _, _ in resume.members}
    later = sorted(p for p in box.staging.rglob("*") if p.is_file() and p not in kept)
    for path in later:
        path.unlink()
    if later:
        later[0].write_bytes(b"half")
    (box.staging / "stray").write_bytes(b"from the killed run")
    end = hole_end(resume.next)
    box.tar.write_bytes(bytes(end) + raw[end:])


@pytest.mark.parametrize("layout", ["shard", "split", "flat"])
def test_a_resumed_extraction_gives_what_one_pass_gives(box: Box, layout: Layout) -> None:
    members = [member for image in range(1, 9) for member in pair(image)]
    raw = build(members, tarfile.PAX_FORMAT)
    whole, checkpoints = _checkpoints(box, raw, layout)
    middle = [c for c in checkpoints if c.next is not None]
    assert len(middle) >= len(members) - 1 and checkpoints[-1].next is None
    for resume in middle:
        assert all(offset < (resume.next or 0) for _, offset, _ in resume.members)
        box.tar.write_bytes(raw)
        box.extract(raw, layout=layout)  # every member staged again, then the crash
        _crash_at(box, raw, resume)
        report = _resume(box, len(raw), resume, layout)
        assert _places(report) == _places(whole)
        assert box.staged() == expected_files(members, layout)
    publish(whole, staging=box.staging, out=box.out, layout=layout)


def _places(report: ExtractReport) -> list[tuple[PurePosixPath, int, int]]:
    return [(member.path, member.offset, member.size) for member in report.index]


@pytest.mark.parametrize("layout", ["shard", "split", "flat"])
def test_a_crash_while_publishing_resumes_at_the_end(box: Box, layout: Layout) -> None:
    """Every member staged, some moved into place, then killed: the resumed extraction
    reads nothing of the freed tar, and publishing finishes the move."""
    members = [*pair(1), *pair(2), *pair(3)]
    raw = build(members)
    whole, checkpoints = _checkpoints(box, raw, layout)
    files = sorted(p.relative_to(box.staging) for p in box.staging.rglob("*") if p.is_file())
    for moved in whole_units(layout, SHARD)[:1] or files[:3]:  # as publish moves them
        (box.out / moved).parent.mkdir(parents=True, exist_ok=True)
        (box.staging / moved).rename(box.out / moved)
    box.tar.write_bytes(bytes(len(raw)))
    report = _resume(box, len(raw), checkpoints[-1], layout)
    assert _places(report) == _places(whole) and report.warnings == whole.warnings
    publish(report, staging=box.staging, out=box.out, layout=layout)
    assert files_under(box.out) == expected_files(members, layout)


def test_a_staged_member_gone_before_the_checkpoint_is_corrupt(box: Box) -> None:
    """Its bytes in the tar are freed: the shard must be fetched again."""
    raw = build([*pair(1), *pair(2)])
    _, checkpoints = _checkpoints(box, raw, "shard")
    resume = checkpoints[2]
    path = box.staging / resume.members[0][0]
    path.unlink()
    with pytest.raises(CorruptArchiveError, match="gone from"):
        _resume(box, len(raw), resume, "shard")
    shutil.rmtree(box.staging)
