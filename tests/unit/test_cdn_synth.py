"""Synthetic shards: decodable JPEGs, valid annotation JSON, layout, determinism, reuse."""

from __future__ import annotations

import hashlib
import io
import itertools
import json
import random
import tarfile
from pathlib import Path

import pytest
from PIL import Image

from sa1b.cdn import jpeg, rle
from sa1b.cdn.synth import (
    IDS_FILE_NAME,
    make_dataset,
    make_shard,
    shard_name,
    write_checksums,
)

MiB = 1024 * 1024


def _segments(data: bytes) -> list[tuple[int, bytes]]:
    """(marker, payload) of each segment up to SOS, skipping 0xFF fill bytes."""
    out: list[tuple[int, bytes]] = []
    i = 2
    while True:
        assert data[i] == 0xFF
        while data[i + 1] == 0xFF:
            i += 1
        marker = data[i + 1]
        length = int.from_bytes(data[i + 2 : i + 4], "big")
        out.append((marker, data[i + 4 : i + 2 + length]))
        if marker == 0xDA:
            return out
        i += 2 + length


def _decode(data: bytes) -> Image.Image:
    image = Image.open(io.BytesIO(data))
    image.load()
    return image


# -- JPEG ----------------------------------------------------------------------------------


@pytest.mark.parametrize(("width", "height"), [(8, 8), (16, 24), (33, 17), (1500, 2250)])
@pytest.mark.parametrize("grayscale", [False, True])
def test_jpeg_decodes_at_its_size_and_colour(width: int, height: int, grayscale: bool) -> None:
    data = jpeg.encode_solid(width, height, (200, 30, 90), grayscale=grayscale)
    image = _decode(data)
    assert image.size == (width, height)
    assert image.mode == ("L" if grayscale else "RGB")
    corners = {image.getpixel((0, 0)), image.getpixel((width - 1, height - 1))}
    assert len(corners) == 1  # solid
    if grayscale:
        assert abs(image.getpixel((0, 0)) - 88) <= 1  # type: ignore[operator]
    else:
        pixel = image.getpixel((width // 2, height // 2))
        assert isinstance(pixel, tuple)
        assert all(abs(a - b) <= 2 for a, b in zip(pixel, (200, 30, 90), strict=True))


def test_jpeg_padded_to_exact_sizes() -> None:
    colour = (10, 200, 30)
    base = jpeg.minimal_size(64, 48, colour)
    rng = random.Random(5)
    for extra in (0, 1, 2, 3, 4, 5, 65537, 65538, 65540, 200_000, 3 * 65537 + 7):
        data = jpeg.encode_solid(64, 48, colour, size=base + extra, pad_source=rng.randbytes)
        assert len(data) == base + extra
        assert _decode(data).size == (64, 48)
        comments = [p for m, p in _segments(data) if m == 0xFE]
        assert all(len(p) <= jpeg.MAX_COM_PAYLOAD for p in comments)
        # Four or more bytes become COM segments; fewer become 0xFF fill bytes.
        assert sum(len(p) + 4 for p in comments) == (extra if extra >= 4 else 0)
    assert len(jpeg.encode_solid(64, 48, colour, size=10)) == base  # cannot go below minimal


def test_jpeg_padding_comes_from_pad_source() -> None:
    data = jpeg.encode_solid(8, 8, size=10_000, pad_source=lambda n: b"\xab" * n)
    assert data.count(b"\xab") >= 9_000
    assert data.startswith(b"\xff\xd8\xff\xe0") and data.endswith(b"\xff\xd9")


def test_jpeg_huffman_tables_are_the_standard_ones() -> None:
    ours = [p for m, p in _segments(jpeg.encode_solid(16, 16, (1, 2, 3))) if m == 0xC4]
    buffer = io.BytesIO()
    Image.new("RGB", (16, 16)).save(buffer, "JPEG", optimize=False, subsampling=0)
    pillow = [p for m, p in _segments(buffer.getvalue()) if m == 0xC4]
    assert sorted(_split_dht(b"".join(ours))) == sorted(_split_dht(b"".join(pillow)))
    assert len(_split_dht(b"".join(ours))) == 4  # DC and AC, luminance and chrominance


def _split_dht(payload: bytes) -> list[bytes]:
    tables = []
    i = 0
    while i < len(payload):
        n = sum(payload[i + 1 : i + 17])
        tables.append(payload[i : i + 17 + n])
        i += 17 + n
    return tables


# -- shards --------------------------------------------------------------------------------


def _members(path: Path) -> list[tarfile.TarInfo]:
    with tarfile.open(path) as tar:
        return tar.getmembers()


def _read(path: Path) -> dict[str, bytes]:
    with tarfile.open(path) as tar:
        out = {}
        for m in tar.getmembers():
            f = tar.extractfile(m)
            if f is not None and m.isfile():
                out[m.name] = f.read()
        return out


@pytest.fixture(scope="module")
def shard(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("shard") / shard_name(3)
    make_shard(path, shard_index=3, size=2 * MiB, seed=7)
    return path


def test_shard_is_a_plain_tar_of_exact_size_with_pairs(shard: Path) -> None:
    assert shard.stat().st_size == 2 * MiB
    assert shard.read_bytes()[:2] != b"\x1f\x8b"  # not gzip
    members = _members(shard)
    names = [m.name for m in members]
    jpgs = {n[:-4] for n in names if n.endswith(".jpg")}
    jsons = {n[:-5] for n in names if n.endswith(".json")}
    assert jpgs == jsons and len(jpgs) >= 4
    ids = sorted(int(stem[3:]) for stem in jpgs)
    assert ids == list(range(300_001, 300_001 + len(ids)))
    stems = [n.rsplit(".", 1)[0] for n in names]
    assert all(a != b for a, b in itertools.pairwise(stems))  # pairs not adjacent
    assert all(m.isfile() for m in members)


def test_shard_members_decode(shard: Path) -> None:
    files = _read(shard)
    for name, data in files.items():
        if not name.endswith(".json"):
            continue
        doc = json.loads(data)
        image = doc["image"]
        stem = name[:-5]
        assert image["file_name"] == f"{stem}.jpg"
        assert image["image_id"] == int(stem[3:])
        decoded = _decode(files[f"{stem}.jpg"])
        assert decoded.size == (image["width"], image["height"])
        assert doc["annotations"]
        for ann in doc["annotations"]:
            seg = ann["segmentation"]
            assert seg["size"] == [image["height"], image["width"]]
            runs = rle.decode_counts(seg["counts"])
            assert sum(runs) == image["width"] * image["height"]
            assert ann["area"] == rle.area(runs) > 0
            assert ann["bbox"] == [float(v) for v in rle.bbox(runs, image["height"])]
            assert all(isinstance(v, float) for v in ann["bbox"] + ann["crop_box"])
            assert isinstance(ann["id"], int)
            assert ann["predicted_iou"] > 0
            assert 0 < ann["stability_score"] <= 1
            [[px, py]] = ann["point_coords"]
            bx, by, bw, bh = ann["bbox"]
            assert bx <= px <= bx + bw and by <= py <= by + bh


def test_shard_is_deterministic_and_seed_dependent(tmp_path: Path, shard: Path) -> None:
    again = make_shard(tmp_path / "a.tar", shard_index=3, size=2 * MiB, seed=7)
    other = make_shard(tmp_path / "b.tar", shard_index=3, size=2 * MiB, seed=8)
    assert again.path.read_bytes() == shard.read_bytes()
    assert other.md5 != again.md5
    data = again.path.read_bytes()
    assert again.md5 == hashlib.md5(data).hexdigest()
    assert again.sha256 == hashlib.sha256(data).hexdigest()
    assert again.size == len(data) and again.name == "a.tar"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.tar", "b.tar"]  # no temp left


@pytest.mark.parametrize(
    ("style", "prefix"), [("dotslash", "./"), ("folder", "sa_000012/"), ("flat", "")]
)
def test_member_styles(tmp_path: Path, style: str, prefix: str) -> None:
    path = tmp_path / shard_name(12)
    make_shard(path, shard_index=12, size=200_000, seed=0, member_style=style)  # type: ignore[arg-type]
    members = _members(path)
    files = [m for m in members if m.isfile()]
    dirs = [m for m in members if m.isdir()]
    assert len(files) >= 8
    assert all(m.name.startswith(prefix + "sa_1200") for m in files)
    assert [d.name.rstrip("/") for d in dirs] == ([prefix.rstrip("/")] if prefix else [])


def test_tiny_shard_still_has_four_pairs(tmp_path: Path) -> None:
    info = make_shard(tmp_path / "t.tar", shard_index=0, size=1, seed=0)
    names = [m.name for m in _members(info.path)]
    assert len(names) == 8 and "sa_1.jpg" in names and "sa_4.json" in names
    assert info.size % 512 == 0


def test_pairs_sets_the_pair_count(tmp_path: Path) -> None:
    info = make_shard(tmp_path / shard_name(2), shard_index=2, size=4 * MiB, seed=0, pairs=30)
    assert info.size == 4 * MiB  # still the size asked for
    members = _members(info.path)
    assert all(m.isfile() for m in members)
    jpgs = sorted(int(m.name[3:-4]) for m in members if m.name.endswith(".jpg"))
    jsons = sorted(int(m.name[3:-5]) for m in members if m.name.endswith(".json"))
    assert jpgs == jsons == list(range(200_001, 200_031))
    assert len(members) == 60
    stems = [m.name.rsplit(".", 1)[0] for m in members]
    assert all(a != b for a, b in itertools.pairwise(stems))
    again = make_shard(tmp_path / "again.tar", shard_index=2, size=4 * MiB, seed=0, pairs=30)
    assert again.md5 == info.md5  # deterministic
    with pytest.raises(ValueError, match="pairs"):
        make_shard(tmp_path / "none.tar", shard_index=2, size=MiB, seed=0, pairs=0)


def test_pairs_default_is_unchanged(tmp_path: Path, shard: Path) -> None:
    # Digests of shards made before ``pairs`` existed: the default output must not change.
    small = make_shard(tmp_path / "s.tar", shard_index=3, size=200_000, seed=7, pairs=None)
    assert small.md5 == "16517d755da31caa8960d5398a2deee1"
    assert hashlib.md5(shard.read_bytes()).hexdigest() == "cc076adc998aa2d2f8fc2547dc1a239f"
    # Twelve pairs is what a 2 MiB shard gets by default: asking for them changes nothing.
    twelve = make_shard(tmp_path / "t.tar", shard_index=3, size=2 * MiB, seed=7, pairs=12)
    assert twelve.md5 == "cc076adc998aa2d2f8fc2547dc1a239f"
    infos = make_dataset(tmp_path / "d", shard_indices=[0], shard_size=300_000, pairs=None)
    assert "pairs" not in (tmp_path / "d" / "sa_000000.tar.params").read_text()
    ids = (tmp_path / "d" / IDS_FILE_NAME).read_text().split()
    assert len(ids) == 4 and infos[0].size == 300_032  # 300_000 // 64 KiB = 4 pairs
    denser = make_dataset(tmp_path / "e", shard_indices=[0], shard_size=300_000, pairs=10)
    assert len((tmp_path / "e" / IDS_FILE_NAME).read_text().split()) == 10
    assert denser[0].md5 != infos[0].md5


# -- datasets ------------------------------------------------------------------------------


def test_make_dataset_writes_shards_ids_and_reuses(tmp_path: Path) -> None:
    infos = make_dataset(tmp_path, shard_indices=[5, 2], shard_size=300_000, seed=1)
    assert [i.name for i in infos] == ["sa_000005.tar", "sa_000002.tar", IDS_FILE_NAME]
    ids = (tmp_path / IDS_FILE_NAME).read_text().split()
    shard_ids = {int(n[3:-4]) for n in _read(tmp_path / "sa_000005.tar") if n.endswith(".jpg")}
    assert shard_ids <= {int(i) for i in ids}
    assert any(i.startswith("2000") for i in ids)

    stamps = {p.name: p.stat().st_mtime_ns for p in tmp_path.iterdir()}
    again = make_dataset(tmp_path, shard_indices=[5, 2], shard_size=300_000, seed=1)
    assert again == infos
    assert {p.name: p.stat().st_mtime_ns for p in tmp_path.iterdir()} == stamps

    # Different parameters or a damaged file: regenerated.
    bigger = make_dataset(tmp_path, shard_indices=[5], shard_size=400_000, seed=1, extras=False)
    assert bigger[0].size != infos[0].size and len(bigger) == 1
    with (tmp_path / "sa_000002.tar").open("r+b") as f:
        f.truncate(1000)
    repaired = make_dataset(tmp_path, shard_indices=[2], shard_size=300_000, seed=1)
    assert repaired[0] == infos[1]


def test_write_checksums_md5sum_format(tmp_path: Path) -> None:
    infos = make_dataset(tmp_path / "d", shard_indices=[0], shard_size=100_000)
    out = tmp_path / "sums.md5"
    write_checksums(infos, out)
    lines = out.read_text().splitlines()
    digest = hashlib.md5((tmp_path / "d" / "sa_000000.tar").read_bytes()).hexdigest()
    assert lines[0] == f"{digest}  sa_000000.tar"
    assert lines[1].endswith(f"  {IDS_FILE_NAME}")
    write_checksums(infos, out, algo="sha256")
    assert out.read_text().split()[0] == infos[0].sha256
