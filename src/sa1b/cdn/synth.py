"""Synthetic SA-1B shards: real tar files of real JPEGs and real annotation JSON, made fast.

The downloader's tests and demos need shards that look like Meta's in every way the downloader
(or a user's tool after it) can observe: an uncompressed tar of ``sa_<id>.jpg`` and
``sa_<id>.json`` members in random order (so a jpg is not next to its json), global image ids
(shard ``k`` uses ids from ``k * 100000 + 1``), the three member layouts seen in the wild, JPEGs
that decode, and masks that ``pycocotools`` decodes. They also need to be big (hundreds of MB)
and made in seconds, so the bulk of each JPEG is COM-segment padding cut from a pool of random
bytes instead of per-byte work, and nothing but the pool is drawn from the RNG per byte.

Everything is deterministic from ``(seed, shard_index, size, member_style, pairs)``; a shard
does not depend on which other shards are generated alongside it. ``pairs`` (default: about
twelve per shard, four at least) sets how many image pairs a shard holds: real SA-1B has about
one pair per MB, which benchmarks of per-member work (``--only``) need.
"""

from __future__ import annotations

import contextlib
import hashlib
import itertools
import json
import os
import random
import tarfile
from collections.abc import Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO, Literal

from sa1b.cdn import jpeg, rle

__all__ = [
    "IDS_FILE_NAME",
    "IDS_PER_SHARD",
    "MemberStyle",
    "ShardInfo",
    "make_dataset",
    "make_shard",
    "shard_name",
    "write_checksums",
]

MemberStyle = Literal["flat", "dotslash", "folder"]

IDS_PER_SHARD = 100_000
IDS_FILE_NAME = "sa_images_ids.txt"
PARAMS_SUFFIX = ".params"
_GENERATOR_VERSION = 1
_BLOCK = tarfile.BLOCKSIZE
_POOL_MAX = 8 * 1024 * 1024
_MTIME = 1_680_566_400  # 2023-04-04, SA-1B's release
_LONG_SIDES = (1500, 1875, 2000, 2250)
_SHORT_SIDE = 1500
_MAX_PAIRS = 12
_MIN_PAIRS = 4


@dataclass(frozen=True)
class ShardInfo:
    """A generated file, with the digests a test compares a download against."""

    name: str
    path: Path
    size: int
    md5: str
    sha256: str


def shard_name(index: int) -> str:
    """``sa_000123.tar`` for shard 123."""
    return f"sa_{index:06d}.tar"


class _HashingWriter:
    """Writes to a file while computing the digests, so nothing is read back."""

    def __init__(self, fileobj: BinaryIO) -> None:
        self._f = fileobj
        self.md5 = hashlib.md5()
        self.sha256 = hashlib.sha256()
        self.size = 0

    def write(self, data: bytes | memoryview) -> None:
        self._f.write(data)
        self.md5.update(data)
        self.sha256.update(data)
        self.size += len(data)


def _pad_source(rng: random.Random, pool: bytes) -> jpeg.PadSource:
    """Random-looking bytes: views of ``pool`` at random offsets (no copy, deterministic)."""
    view = memoryview(pool)

    def take(n: int) -> memoryview:
        off = rng.randrange(0, len(pool) - n + 1)
        return view[off : off + n]

    return take


def _annotation(rng: random.Random, *, ann_id: int, width: int, height: int) -> dict[str, Any]:
    """One SA-1B annotation: a rectangle or ellipse mask with consistent area, box and point."""
    sw = rng.randint(max(2, width // 16), max(2, width // 3))
    sh = rng.randint(max(2, height // 16), max(2, height // 3))
    x = rng.randint(0, width - sw)
    y = rng.randint(0, height - sh)
    if rng.random() < 0.5:
        runs = rle.rectangle_runs(height, width, x=x, y=y, w=sw, h=sh)
    else:
        runs = rle.ellipse_runs(height, width, cx=x + sw / 2, cy=y + sh / 2, rx=sw / 2, ry=sh / 2)
    bx, by, bw, bh = rle.bbox(runs, height)
    return {
        "id": ann_id,
        "segmentation": rle.to_rle(runs, height, width),
        "bbox": [float(bx), float(by), float(bw), float(bh)],
        "area": rle.area(runs),
        "predicted_iou": rng.uniform(0.88, 1.02),
        "stability_score": rng.uniform(0.92, 1.0),
        "crop_box": [0.0, 0.0, float(width), float(height)],
        "point_coords": [[x + sw / 2, y + sh / 2]],
    }


def _annotation_json(rng: random.Random, *, image_id: int, width: int, height: int) -> bytes:
    count = rng.randint(3, 12)
    doc = {
        "image": {
            "image_id": image_id,
            "width": width,
            "height": height,
            "file_name": f"sa_{image_id}.jpg",
        },
        "annotations": [
            _annotation(rng, ann_id=image_id * 1000 + j, width=width, height=height)
            for j in range(count)
        ],
    }
    return json.dumps(doc).encode()


def _dimensions(rng: random.Random, budget: int) -> tuple[int, int]:
    """SA-1B-like dimensions (short side 1500), halved until the bare JPEG fits the budget."""
    long_side = rng.choice(_LONG_SIDES)
    w, h = (long_side, _SHORT_SIDE) if rng.random() < 0.5 else (_SHORT_SIDE, long_side)
    # A flat YCbCr JPEG costs about 14 bits per 8x8 block plus ~600 bytes of headers.
    while w > 32 and h > 32 and ((w + 7) // 8) * ((h + 7) // 8) * 14 // 8 + 700 > budget // 2:
        w, h = w // 2, h // 2
    return w, h


def _pair_count(size: int, pairs: int | None = None) -> int:
    """``pairs`` if given, else about twelve image pairs per shard, at least four however
    small the shard."""
    if pairs is not None:
        return pairs
    return max(_MIN_PAIRS, min(_MAX_PAIRS, size // (64 * 1024)))


def _check_pairs(pairs: int | None) -> None:
    if pairs is not None and pairs < 1:
        raise ValueError(f"pairs must be at least 1: {pairs}")


def _ceil_block(n: int) -> int:
    return -(-n // _BLOCK) * _BLOCK


def _no_adjacent_pairs(rng: random.Random, names: list[str]) -> list[str]:
    """Shuffle so that no ``.jpg`` sits next to its ``.json`` (as reported for real shards)."""
    order = list(names)
    for _ in range(1000):
        rng.shuffle(order)
        stems = [n.rsplit(".", 1)[0] for n in order]
        if all(a != b for a, b in itertools.pairwise(stems)):
            return order
    return order  # two pairs or fewer cannot always be separated; random is what we have


def _member_prefix(style: MemberStyle, shard_index: int) -> str:
    if style == "dotslash":
        return "./"
    if style == "folder":
        return f"sa_{shard_index:06d}/"
    return ""


def _tar_header(name: str, size: int, *, directory: bool = False) -> bytes:
    info = tarfile.TarInfo(name)
    info.size = 0 if directory else size
    info.mtime = _MTIME
    info.mode = 0o755 if directory else 0o644
    info.type = tarfile.DIRTYPE if directory else tarfile.REGTYPE
    info.uname = info.gname = ""
    return info.tobuf(tarfile.GNU_FORMAT, "utf-8", "surrogateescape")


def _write_tar(
    out: _HashingWriter,
    *,
    shard_index: int,
    size: int,
    rng: random.Random,
    member_style: MemberStyle,
    pairs: int | None = None,
) -> None:
    """Plan member sizes so the archive is ``size`` bytes (rounded up to 512), then write it."""
    pairs = _pair_count(size, pairs)
    per_pair = size // pairs
    first_id = shard_index * IDS_PER_SHARD + 1
    ids = list(range(first_id, first_id + pairs))
    dims = {i: _dimensions(rng, per_pair) for i in ids}
    colours = {i: (rng.randrange(256), rng.randrange(256), rng.randrange(256)) for i in ids}
    docs = {i: _annotation_json(rng, image_id=i, width=dims[i][0], height=dims[i][1]) for i in ids}
    prefix = _member_prefix(member_style, shard_index)
    fixed = _BLOCK if prefix else 0  # the directory entry of "./" or "sa_000123/"
    fixed += sum(_BLOCK + _ceil_block(len(d)) for d in docs.values())
    fixed += pairs * _BLOCK + 2 * _BLOCK  # jpg headers and the end-of-archive marker
    budget = max(0, size - fixed) // _BLOCK  # in blocks, for all JPEG bodies together
    weights = [rng.uniform(0.7, 1.3) for _ in ids]
    slots = [int(budget * w / sum(weights)) for w in weights]
    slots[-1] += budget - sum(slots)
    jpegs: dict[int, int] = {}
    for i, slot in zip(ids, slots, strict=True):
        floor = jpeg.minimal_size(*dims[i], colours[i])
        jpegs[i] = max(floor, slot * _BLOCK - rng.randrange(_BLOCK))

    pool_size = max(2 * jpeg.MAX_COM_PAYLOAD, min(_POOL_MAX, size))
    pad = _pad_source(rng, rng.randbytes(pool_size))
    names = [f"sa_{i}.{ext}" for i in ids for ext in ("jpg", "json")]
    if prefix:
        out.write(_tar_header(prefix, 0, directory=True))
    for name in _no_adjacent_pairs(rng, names):
        stem, ext = name.rsplit(".", 1)
        image_id = int(stem[3:])
        pieces: Iterable[jpeg.Chunk]
        if ext == "json":
            length = len(docs[image_id])
            pieces = [docs[image_id]]
        else:
            w, h = dims[image_id]
            length = jpegs[image_id]
            pieces = jpeg.iter_solid(w, h, colours[image_id], size=length, pad_source=pad)
        out.write(_tar_header(prefix + name, length))
        before = out.size
        for piece in pieces:  # streamed: a 15 MB JPEG is never joined in memory
            out.write(piece)
        if out.size - before != length:
            raise RuntimeError(f"{name}: wrote {out.size - before} bytes, planned {length}")
        out.write(bytes(-length % _BLOCK))
    # End of archive: at least two zero blocks, more to reach the requested size exactly.
    out.write(bytes(max(2 * _BLOCK, _ceil_block(size) - out.size)))


def _atomic_target(path: Path) -> Path:
    return path.with_name(f".{path.name}.{os.getpid()}.tmp")


def make_shard(
    path: Path,
    *,
    shard_index: int,
    size: int,
    seed: int,
    member_style: MemberStyle = "flat",
    pairs: int | None = None,
) -> ShardInfo:
    """Write one synthetic shard to ``path`` (atomically) and return its digests.

    The file is ``size`` rounded up to 512 bytes, unless ``size`` is below what its image
    pairs need at their smallest, in which case it is that minimum. ``pairs`` is how many
    image pairs it holds (None: about twelve, at least four).
    """
    if shard_index < 0 or size < 0:
        raise ValueError("shard_index and size must be non-negative")
    _check_pairs(pairs)
    path = Path(path)
    rng = random.Random(f"sa1b-synth:{_GENERATOR_VERSION}:{seed}:{shard_index}")
    tmp = _atomic_target(path)
    try:
        with tmp.open("wb") as f:
            out = _HashingWriter(f)
            _write_tar(
                out,
                shard_index=shard_index,
                size=size,
                rng=rng,
                member_style=member_style,
                pairs=pairs,
            )
        os.replace(tmp, path)
    finally:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
    return ShardInfo(path.name, path, out.size, out.md5.hexdigest(), out.sha256.hexdigest())


def _write_bytes_atomic(path: Path, data: bytes) -> None:
    tmp = _atomic_target(path)
    try:
        tmp.write_bytes(data)
        os.replace(tmp, path)
    finally:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()


def _params(
    shard_index: int, size: int, seed: int, style: MemberStyle, pairs: int | None
) -> dict[str, Any]:
    params: dict[str, Any] = {
        "generator": _GENERATOR_VERSION,
        "shard_index": shard_index,
        "size": size,
        "seed": seed,
        "member_style": style,
    }
    if pairs is not None:  # absent otherwise: sidecars written before it stay valid
        params["pairs"] = pairs
    return params


def _reuse(path: Path, params: dict[str, Any]) -> ShardInfo | None:
    """The recorded info of an existing shard made with the same parameters, if intact."""
    sidecar = path.with_name(path.name + PARAMS_SUFFIX)
    try:
        recorded = json.loads(sidecar.read_text())
        actual = path.stat().st_size
    except (OSError, ValueError):
        return None
    if not isinstance(recorded, dict) or recorded.get("params") != params:
        return None
    if recorded.get("bytes") != actual:
        return None
    return ShardInfo(path.name, path, actual, str(recorded["md5"]), str(recorded["sha256"]))


def _make_or_reuse(
    directory: Path, index: int, size: int, seed: int, style: MemberStyle, *, pairs: int | None
) -> ShardInfo:
    path = directory / shard_name(index)
    params = _params(index, size, seed, style, pairs)
    found = _reuse(path, params)
    if found is not None:
        return found
    info = make_shard(
        path, shard_index=index, size=size, seed=seed, member_style=style, pairs=pairs
    )
    record = {"params": params, "bytes": info.size, "md5": info.md5, "sha256": info.sha256}
    _write_bytes_atomic(path.with_name(path.name + PARAMS_SUFFIX), json.dumps(record).encode())
    return info


def _info_for_bytes(path: Path, data: bytes) -> ShardInfo:
    md5 = hashlib.md5(data).hexdigest()
    sha256 = hashlib.sha256(data).hexdigest()
    return ShardInfo(path.name, path, len(data), md5, sha256)


def _ids_file(directory: Path, indices: Sequence[int], size: int, pairs: int | None) -> ShardInfo:
    """``sa_images_ids.txt``: the image ids of the generated shards, one per line."""
    count = _pair_count(size, pairs)
    lines = [str(k * IDS_PER_SHARD + 1 + j) for k in sorted(set(indices)) for j in range(count)]
    data = ("\n".join(lines) + "\n").encode()
    path = directory / IDS_FILE_NAME
    try:
        unchanged = path.read_bytes() == data
    except OSError:
        unchanged = False
    if not unchanged:  # rewriting would change the mtime, hence the served ETag
        _write_bytes_atomic(path, data)
    return _info_for_bytes(path, data)


def make_dataset(
    directory: Path,
    *,
    shard_indices: Iterable[int],
    shard_size: int,
    seed: int = 0,
    extras: bool = True,
    member_style: MemberStyle = "flat",
    pairs: int | None = None,
) -> list[ShardInfo]:
    """Write ``sa_%06d.tar`` for each index into ``directory``, reusing up-to-date files.

    A shard is reused when its ``.params`` sidecar records the same parameters and the file
    still has the recorded size. Returns one info per shard, in the order of
    ``shard_indices``, followed by the info of ``sa_images_ids.txt`` when ``extras``.
    ``pairs`` is the number of image pairs per shard (None: about twelve, see
    :func:`make_shard`).
    """
    _check_pairs(pairs)
    indices = list(dict.fromkeys(shard_indices))
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    # Hashing and writing release the GIL, so shards overlap well on several cores.
    workers = max(1, min(len(indices), os.cpu_count() or 1))
    with ThreadPoolExecutor(max_workers=workers) as pool:
        infos = list(
            pool.map(
                lambda i: _make_or_reuse(directory, i, shard_size, seed, member_style, pairs=pairs),
                indices,
            )
        )
    if extras:
        infos.append(_ids_file(directory, indices, shard_size, pairs))
    return infos


def write_checksums(
    infos: Iterable[ShardInfo], path: Path, algo: Literal["md5", "sha256"] = "md5"
) -> None:
    """Write ``<hex>  <name>`` lines (``md5sum``/``sha256sum`` format), atomically."""
    lines = [f"{info.md5 if algo == 'md5' else info.sha256}  {info.name}\n" for info in infos]
    _write_bytes_atomic(Path(path), "".join(lines).encode())
