"""End to end: hostile and broken shards through the real ``sa1b`` process and the CDN stand-in.

Every test serves its own tars from a fresh folder, runs the CLI with the working directory
set to an empty folder, and checks afterwards that nothing was written outside the output
folder: not next to it, not in the working directory, not through a link to a sentinel.
"""

from __future__ import annotations

import io
import os
import shutil
import tarfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from sa1b.cdn.server import CDNServer
from sa1b.cdn.synth import ShardInfo, make_shard

from .conftest import Result, assert_extracted, member_bytes, run_cli

GOOD = "sa_000009.tar"
Member = tuple[str, bytes] | tarfile.TarInfo


def member_info(
    name: str, *, size: int = 0, kind: bytes = tarfile.REGTYPE, linkname: str = ""
) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.size = size
    info.type = kind
    info.linkname = linkname
    info.mtime = 1_680_566_400
    info.mode = 0o644
    info.uname = info.gname = ""
    if kind == tarfile.CHRTYPE:
        info.devmajor, info.devminor = 1, 3  # /dev/null
    return info


def tar_bytes(members: Sequence[Member], fmt: int = tarfile.GNU_FORMAT) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=fmt) as archive:
        for member in members:
            if isinstance(member, tarfile.TarInfo):
                archive.addfile(member, io.BytesIO(b"evil" * member.size) if member.size else None)
            else:
                name, data = member
                archive.addfile(member_info(name, size=len(data)), io.BytesIO(data))
    return buffer.getvalue()


def pair(image_id: int, tag: bytes = b"") -> list[tuple[str, bytes]]:
    return [
        (f"sa_{image_id}.jpg", b"\xff\xd8" + tag + str(image_id).encode() * 300),
        (f"sa_{image_id}.json", b'{"image": {"image_id": %d}}' % image_id),
    ]


@pytest.fixture(scope="module")
def good_shard(tmp_path_factory: pytest.TempPathFactory) -> ShardInfo:
    root = tmp_path_factory.mktemp("good")
    return make_shard(root / GOOD, shard_index=9, size=150_000, seed=5)


@dataclass
class Site:
    """A test's own CDN folder, links file, output folder, working directory and sentinel."""

    root: Path
    served: dict[str, bytes] = field(default_factory=dict)
    sent: dict[str, int] = field(default_factory=dict)

    @property
    def cdn(self) -> Path:
        return self.root / "cdn"

    @property
    def out(self) -> Path:
        return self.root / "out"

    @property
    def links(self) -> Path:
        return self.root / "links.tsv"

    @property
    def sentinel(self) -> Path:
        return self.root / "sentinel"

    def serve(self, name: str, data: bytes) -> None:
        (self.cdn / name).write_bytes(data)
        self.served[name] = data

    def serve_good(self, info: ShardInfo) -> ShardInfo:
        shutil.copyfile(info.path, self.cdn / info.name)
        self.served[info.name] = info.path.read_bytes()
        return info

    def run(self, *args: str, rate: float | None = None) -> Result:
        with CDNServer(root=self.cdn, rate_per_connection=rate) as server:
            server.write_links_file(self.links)
            result = run_cli("download", self.links, "-o", self.out, *args, timeout=60)
            self.sent = {name: server.bytes_sent(name) for name in self.served}
            return result

    def assert_contained(self, *, allowed_in_out: set[str]) -> None:
        """Nothing written outside OUT; OUT holds nothing but what is named."""
        assert {p.name for p in self.root.iterdir()} == {
            "cdn",
            "cwd",
            "links.tsv",
            "out",
            "sentinel",
        }
        assert list((self.root / "cwd").iterdir()) == []
        assert {p.name: p.read_bytes() for p in self.cdn.iterdir()} == self.served
        assert {p.name for p in self.sentinel.iterdir()} == {"keep.txt"}
        keep = self.sentinel / "keep.txt"
        assert keep.read_bytes() == b"sentinel"
        assert os.lstat(keep).st_nlink == 1  # no hard link was made to it
        assert {p.name for p in self.out.iterdir()} <= allowed_in_out | {".sa1b", "tars"}
        for path in self.out.rglob("*"):
            assert path.is_dir() or path.is_file(), f"{path} is a link or a device"
            assert not path.is_symlink(), f"{path} is a link"
            assert "escaped" not in path.name
        assert not list(self.root.rglob("escaped*"))


@pytest.fixture
def site(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Site:
    made = Site(tmp_path)
    made.cdn.mkdir()
    made.sentinel.mkdir()
    (made.sentinel / "keep.txt").write_bytes(b"sentinel")
    (tmp_path / "cwd").mkdir()
    monkeypatch.chdir(tmp_path / "cwd")  # a relative escape would land here
    return made


def bad_member(kind: str, site: Site) -> tarfile.TarInfo:
    if kind == "absolute path":
        return member_info(str(site.root / "escaped" / "x.jpg"), size=10)
    if kind == "dot-dot":
        return member_info("../../escaped.jpg", size=10)
    if kind == "symlink":
        return member_info("sa_2.jpg", kind=tarfile.SYMTYPE, linkname=str(site.sentinel))
    if kind == "hard link":
        return member_info(
            "sa_2.jpg", kind=tarfile.LNKTYPE, linkname=str(site.sentinel / "keep.txt")
        )
    if kind == "character device":
        return member_info("sa_2.jpg", kind=tarfile.CHRTYPE)
    assert kind == "FIFO"
    return member_info("sa_2.jpg", kind=tarfile.FIFOTYPE)


KINDS = ["absolute path", "dot-dot", "symlink", "hard link", "character device", "FIFO"]


def malicious_shard(index: int, kind: str, site: Site) -> tuple[str, tarfile.TarInfo]:
    name = f"sa_{index:06d}.tar"
    bad = bad_member(kind, site)
    first = index * 100_000 + 1
    site.serve(name, tar_bytes([*pair(first), bad, *pair(first + 2)]))
    return name, bad


def failure_lines(result: Result, shard: str) -> list[str]:
    return [line for line in result.output.splitlines() if shard in line and "failed" in line]


def assert_reported(result: Result, shard: str, member: str) -> None:
    lines = failure_lines(result, shard)
    assert lines, result.output
    assert any(member in line for line in lines), result.output


@pytest.mark.parametrize("kind", KINDS)
def test_malicious_shard_is_left_unextracted(site: Site, good_shard: ShardInfo, kind: str) -> None:
    name, bad = malicious_shard(KINDS.index(kind), kind, site)
    good = site.serve_good(good_shard)
    result = site.run()
    assert result.returncode == 1, result.output
    assert_reported(result, name, bad.name)
    assert not (site.out / name.removesuffix(".tar")).exists()
    if kind == "absolute path":
        assert Path(bad.name).is_relative_to(site.root)
        assert not Path(bad.name).exists()
        assert not Path(bad.name).parent.exists()
    assert_extracted(site.out, [good])
    site.assert_contained(allowed_in_out={good.name.removesuffix(".tar")})
    # Extracted as it streamed: no tar was ever on disk, and nothing of it is kept.
    assert not (site.out / ".sa1b" / "staging" / name).exists()
    assert not (site.out / ".sa1b" / "partial" / f"{name}.part").exists()


def test_every_kind_in_one_run_and_again(site: Site, good_shard: ShardInfo) -> None:
    bad = dict(malicious_shard(index, kind, site) for index, kind in enumerate(KINDS))
    good = site.serve_good(good_shard)
    for _ in range(2):  # a second run does not take a refused shard as done
        result = site.run()
        assert result.returncode == 1, result.output
        for name, member in bad.items():
            assert_reported(result, name, member.name)
            assert not (site.out / name.removesuffix(".tar")).exists()
        assert "1/7 files done" in result.output
        assert_extracted(site.out, [good])
        site.assert_contained(allowed_in_out={good.name.removesuffix(".tar")})


@pytest.mark.parametrize("layout", ["split", "flat"])
def test_malicious_shard_in_other_layouts(site: Site, good_shard: ShardInfo, layout: str) -> None:
    name, bad = malicious_shard(0, "symlink", site)
    good = site.serve_good(good_shard)
    result = site.run("--layout", layout)
    assert result.returncode == 1, result.output
    assert_reported(result, name, bad.name)
    assert_extracted(site.out, [good], layout=layout)
    members = set(member_bytes(good))
    allowed = {"images", "annotations"} if layout == "split" else members
    site.assert_contained(allowed_in_out=allowed)
    for image_id in (1, 3):  # the malicious shard's good members were not published either
        assert not list(site.out.rglob(f"sa_{image_id}.*"))


# -- flat layout: one name, two shards ---------------------------------------------------


def two_shards_with_one_name(site: Site, *, same: bool) -> tuple[bytes, bytes]:
    first, second = pair(1, b"first"), pair(1, b"first" if same else b"second")
    site.serve("sa_000000.tar", tar_bytes([*first, *pair(2)]))
    site.serve("sa_000001.tar", tar_bytes([*second, *pair(3)]))
    return first[0][1], second[0][1]


def test_flat_name_clash_is_reported_and_the_first_is_intact(site: Site) -> None:
    first, _ = two_shards_with_one_name(site, same=False)
    one = site.run("--layout", "flat", "--shards", "0")
    assert one.returncode == 0, one.output
    two = site.run("--layout", "flat", "--shards", "1")
    assert two.returncode == 1, two.output
    assert_reported(two, "sa_000001.tar", "sa_1.jpg")
    assert (site.out / "sa_1.jpg").read_bytes() == first
    assert (site.out / "sa_2.jpg").is_file()
    assert not (site.out / "sa_3.jpg").exists()  # nothing of the clashing shard moved
    assert not (site.out / "sa_3.json").exists()
    site.assert_contained(allowed_in_out={"sa_1.jpg", "sa_1.json", "sa_2.jpg", "sa_2.json"})


def test_flat_name_clash_in_one_run(site: Site) -> None:
    first, second = two_shards_with_one_name(site, same=False)
    result = site.run("--layout", "flat")
    assert result.returncode == 1, result.output
    failed = [n for n in ("sa_000000.tar", "sa_000001.tar") if failure_lines(result, n)]
    assert len(failed) == 1, result.output
    assert_reported(result, failed[0], "sa_1.jpg")
    winner_bytes, winner_id, loser_id = (
        (second, 3, 2) if failed[0] == "sa_000000.tar" else (first, 2, 3)
    )
    assert (site.out / "sa_1.jpg").read_bytes() == winner_bytes
    assert (site.out / f"sa_{winner_id}.json").is_file()
    assert not (site.out / f"sa_{loser_id}.json").exists()


def test_flat_same_bytes_under_one_name_are_fine(site: Site) -> None:
    first, _ = two_shards_with_one_name(site, same=True)
    result = site.run("--layout", "flat")
    assert result.returncode == 0, result.output
    assert (site.out / "sa_1.jpg").read_bytes() == first
    for image_id in (2, 3):
        assert (site.out / f"sa_{image_id}.jpg").is_file()
    site.assert_contained(
        allowed_in_out={f"sa_{i}.{e}" for i in (1, 2, 3) for e in ("jpg", "json")}
    )


# -- broken tars -----------------------------------------------------------------------


def cut_points(data: bytes) -> dict[str, tuple[int, str]]:
    with tarfile.open(fileobj=io.BytesIO(data)) as archive:
        members = [m for m in archive.getmembers() if m.isfile()]
    middle = members[len(members) // 2]
    last = members[-1]
    end = last.offset_data + -(-last.size // 512) * 512
    return {
        "in the middle of a member": (middle.offset_data + middle.size // 2, "cut short"),
        "before the end blocks": (end, "end-of-archive"),
        "after one zero block": (end + 512, "one zero block"),
    }


@pytest.mark.parametrize(
    "where", ["in the middle of a member", "before the end blocks", "after one zero block"]
)
def test_truncated_tar(site: Site, good_shard: ShardInfo, where: str) -> None:
    whole = good_shard.path.read_bytes()
    cut, words = cut_points(whole)[where]
    site.serve("sa_000000.tar", whole[:cut])
    good = site.serve_good(good_shard)
    result = site.run()
    assert result.returncode == 1, result.output
    lines = failure_lines(result, "sa_000000.tar")
    assert any(words in line for line in lines), result.output
    if where == "in the middle of a member":
        with tarfile.open(fileobj=io.BytesIO(whole)) as archive:
            names = {m.name for m in archive.getmembers()}
        assert any(name in line for line in lines for name in names), result.output
    assert not (site.out / "sa_000000").exists()
    assert_extracted(site.out, [good])
    site.assert_contained(allowed_in_out={good.name.removesuffix(".tar")})


def test_not_a_tar(site: Site, good_shard: ShardInfo) -> None:
    site.serve("sa_000000.tar", b"<html>URL signature expired</html>" + bytes(2000))
    good = site.serve_good(good_shard)
    result = site.run()
    assert result.returncode == 1, result.output
    assert failure_lines(result, "sa_000000.tar"), result.output
    assert not (site.out / "sa_000000").exists()
    assert_extracted(site.out, [good])


def test_jpg_without_json_is_a_warning(site: Site) -> None:
    members = [*pair(1), ("sa_2.jpg", b"\xff\xd8lonely"), ("sa_3.json", b"{}")]
    site.serve("sa_000000.tar", tar_bytes(members))
    result = site.run()
    assert result.returncode == 0, result.output
    assert "sa_000000.tar: sa_2.jpg has no sa_2.json" in result.output
    assert "sa_000000.tar: sa_3.json has no sa_3.jpg" in result.output
    for name, data in members:
        assert (site.out / "sa_000000" / name).read_bytes() == data
    site.assert_contained(allowed_in_out={"sa_000000"})


def test_unsafe_member_stops_the_download_early(site: Site, good_shard: ShardInfo) -> None:
    """The shard is refused as soon as the bad header is read (its first part of 8 MiB,
    read as soon as it is whole), not after the whole tar."""
    link = member_info("sa_1.jpg", kind=tarfile.SYMTYPE, linkname="/etc")
    body = os.urandom(1 << 20) * 48
    site.serve("sa_000000.tar", tar_bytes([link, ("sa_2.jpg", body), ("sa_2.json", b"{}")]))
    good = site.serve_good(good_shard)
    result = site.run("--connections-per-file", "1", rate=4e6)  # 12 s for the whole tar
    assert result.returncode == 1, result.output
    assert_reported(result, "sa_000000.tar", "sa_1.jpg")
    assert site.sent["sa_000000.tar"] < len(body) // 2
    assert_extracted(site.out, [good])
    site.assert_contained(allowed_in_out={good.name.removesuffix(".tar")})


# -- flat layout: member names that are sa1b's own folders --------------------------------


def test_flat_member_named_tars_with_keep_tars(site: Site, good_shard: ShardInfo) -> None:
    site.serve("sa_000000.tar", tar_bytes([("tars", b"x" * 100), *pair(1)]))
    first = site.run("--layout", "flat", "--keep-tars")
    assert first.returncode == 1, first.output
    assert_reported(first, "sa_000000.tar", "tars")
    good = site.serve_good(good_shard)
    second = site.run("--layout", "flat", "--keep-tars", "--shards", "9")
    assert second.returncode == 0, second.output
    assert_extracted(site.out, [good], layout="flat")
    assert (site.out / "tars" / GOOD).is_file()


def test_flat_member_named_like_an_existing_folder(site: Site, good_shard: ShardInfo) -> None:
    good = site.serve_good(good_shard)
    first = site.run("--layout", "flat", "--keep-tars")
    assert first.returncode == 0, first.output
    folder_size = (site.out / "tars").stat().st_size
    site.serve("sa_000000.tar", tar_bytes([("tars", b"x" * folder_size), *pair(1)]))
    second = site.run("--layout", "flat", "--keep-tars")
    assert second.returncode == 1, second.output
    assert_reported(second, "sa_000000.tar", "tars")
    assert "cannot publish" not in second.output
    assert (site.out / "tars" / GOOD).is_file()
    assert_extracted(site.out, [good], layout="flat")


@pytest.mark.parametrize("kind", KINDS)
def test_only_json_refuses_a_malicious_shard_exactly_as_extraction(
    site: Site, good_shard: ShardInfo, kind: str
) -> None:
    name, bad = malicious_shard(KINDS.index(kind), kind, site)
    good = site.serve_good(good_shard)
    result = site.run("--only", "json")
    assert result.returncode == 1, result.output
    assert_reported(result, name, bad.name)
    assert "none of its members was published" in result.output  # (no tar to keep)
    assert not (site.out / name.removesuffix(".tar")).exists()  # not even its good members
    wanted = {n: d for n, d in member_bytes(good).items() if n.endswith(".json")}
    stem = good.name.removesuffix(".tar")
    assert {p.name: p.read_bytes() for p in (site.out / stem).iterdir()} == wanted
    site.assert_contained(allowed_in_out={stem})


def test_only_json_in_flat_refuses_a_name_another_shard_holds(site: Site) -> None:
    two_shards_with_one_name(site, same=False)
    site.serve("sa_000000.tar", tar_bytes([*pair(1, b"a"), *pair(2)]))
    site.serve("sa_000001.tar", tar_bytes([(n, d + b" ") for n, d in pair(1)] + pair(3)))
    first = site.run("--layout", "flat", "--only", "json", "--shards", "0")
    assert first.returncode == 0, first.output
    kept = (site.out / "sa_1.json").read_bytes()
    second = site.run("--layout", "flat", "--only", "json", "--shards", "1")
    assert second.returncode == 1, second.output
    assert_reported(second, "sa_000001.tar", "sa_1.json")
    assert (site.out / "sa_1.json").read_bytes() == kept
    assert not (site.out / "sa_3.json").exists()
