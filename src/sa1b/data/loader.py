"""Samples of a downloaded SA-1B, from any layout: an image with its annotations.

:func:`open_dataset` (``sa1b.open``) lists the samples of an output folder from the
member index each shard's extraction recorded (``sa1b download`` keeps it in the
folder's stores): every ``.jpg`` paired with its ``.json``, in shard order, then by
name; in the ``wds`` layout both are read from the shard's tar, where the index says.
A shard walked by ``--only json`` (or ``--only jpg``) alone gives samples with no image
(no annotations); a tar kept whole (``--no-extract``) is read where its headers put each
member. A folder with no sample is an error, not an empty dataset.
An ``s3://BUCKET/PREFIX`` output is read in the bucket (:mod:`sa1b.data.bucket`): its
shards' tars by their headers and every member by a ranged GET, the same samples as the
same tars in a local folder.
A folder extracted by another tool, with no store, is walked instead: a ``.jpg`` beside
its ``.json`` (``shard`` and ``flat`` layouts), under ``images/`` with its ``.json``
under ``annotations/`` (``split``), or both inside a ``.tar`` (``wds`` tars, or SA-1B's
own shards; only their headers are read to list them).

A :class:`Sample` reads lazily: the JSON when asked for, the image as bytes or as a
Pillow image, the masks decoded with pycocotools (``pip install 'sa1b[masks]'``).
:class:`Samples` is a map-style dataset (``len`` and indexing), which
``torch.utils.data.DataLoader`` takes as it is; :meth:`Samples.torch` wraps it as a
``torch.utils.data.Dataset`` of tensors (:mod:`sa1b.data.torch`, torch imported then).
"""

from __future__ import annotations

import io
import json
import tarfile
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING, Any, Protocol

from sa1b.errors import InputError
from sa1b.extract.extents import Extent, locate
from sa1b.extract.masks import decode_mask
from sa1b.links import is_shard_name
from sa1b.objectstore.location import BucketLocation, parse_output
from sa1b.store.members import member_indexes
from sa1b.store.paths import OutputPaths
from sa1b.store.state import folder_stores

if TYPE_CHECKING:
    from sa1b.data.torch import SA1BDataset


class Readable(Protocol):
    """Where a member's bytes are: a local file's :class:`Extent`, a bucket's
    :class:`~sa1b.data.bucket.BucketExtent`."""

    def read(self) -> bytes: ...


@dataclass(frozen=True)
class Sample:
    """One image of SA-1B and its annotation file, wherever their bytes are."""

    key: str
    """The image's name without ``.jpg`` (``sa_1``), as webdataset calls a sample."""
    image_file: Readable | None
    """None where only the annotations were downloaded (``--only json``)."""
    annotation_file: Readable | None
    """None where only the images were downloaded (``--only jpg``)."""
    shard: str | None = None
    """The shard it came from, when the folder's index says so."""

    @cached_property
    def document(self) -> dict[str, Any]:
        """The parsed annotation file: ``{"image": {...}, "annotations": [...]}``."""
        if self.annotation_file is None:
            raise _missing(self.key, "annotations", "--only jpg", "json")
        parsed: dict[str, Any] = json.loads(self.annotation_file.read())
        return parsed

    @property
    def annotations(self) -> list[dict[str, Any]]:
        annotations: list[dict[str, Any]] = self.document["annotations"]
        return annotations

    def image_bytes(self) -> bytes:
        if self.image_file is None:
            raise _missing(self.key, "image", "--only json", "jpg")
        return self.image_file.read()

    def image(self) -> Any:
        """The image, opened with Pillow (from its bytes: no file stays open)."""
        from PIL import Image

        return Image.open(io.BytesIO(self.image_bytes()))

    def masks(self) -> list[Any]:
        """Each annotation's mask as a ``height x width`` array of 0 and 1 (pycocotools)."""
        return [decode_mask(annotation["segmentation"]) for annotation in self.annotations]


def _missing(key: str, part: str, only: str, kind: str) -> InputError:
    return InputError(
        f"{key}: no {part} here (the download was {only})",
        hint=f"fetch them too: sa1b download LINKS -o OUT --only {kind}",
    )


class Samples(Sequence[Sample]):
    """The samples of one output folder, in a stable order."""

    def __init__(self, samples: list[Sample]) -> None:
        self._samples = samples

    def __len__(self) -> int:
        return len(self._samples)

    def __getitem__(self, index: int) -> Sample:  # type: ignore[override]
        return self._samples[index]

    def __iter__(self) -> Iterator[Sample]:
        return iter(self._samples)

    def torch(
        self, *, transform: Callable[[Any], Any] | None = None, masks: bool = False
    ) -> SA1BDataset:
        """These samples as a ``torch.utils.data.Dataset`` (see :mod:`sa1b.data.torch`);
        torch is imported now, not before (``pip install 'sa1b[torch]'``)."""
        from sa1b.data.torch import SA1BDataset

        return SA1BDataset(self, transform=transform, masks=masks)


def open_dataset(out: Path | str) -> Samples:
    """The samples in ``out``, the folder (or ``s3://BUCKET/PREFIX``) given to ``sa1b
    download -o``; an :class:`~sa1b.errors.InputError` if it holds none."""
    where = parse_output(out, verb="read") if isinstance(out, str) else out
    if isinstance(where, BucketLocation):
        return Samples(_from_bucket(where))
    folder = Path(where)
    if not folder.is_dir():
        raise InputError(f"{folder}: no such folder", hint="pass the folder given to -o")
    indexed = _from_index(folder)
    samples = indexed if indexed is not None else _from_walk(folder)
    if not samples and indexed is None:
        raise InputError(
            f"{folder}: no samples here (no .jpg with its .json, no .tar)",
            hint="pass the folder given to sa1b download -o",
        )
    if not samples:
        raise InputError(
            f"{folder}: no samples here yet", hint="sa1b status shows how far the download got"
        )
    return Samples(samples)


def _from_index(out: Path) -> list[Sample] | None:
    """The samples the folder's stores know, None without any store: from the member
    indexes of extracted shards and of the members walked shards published (``--only``:
    annotations or images alone where the other kind is absent), then from the tars kept
    whole (``--no-extract``), read where their headers put each member."""
    if not folder_stores(out):
        return None
    samples = []
    indexes = member_indexes(out)  # a shard's extraction over its walk (store.members)
    for shard, index in sorted(indexes.items()):
        paths = (PurePosixPath(path) for path, _, _ in index)
        samples += _pairs(dict(zip(paths, locate(out, index), strict=True)), shard)
    for tar in sorted(OutputPaths.of(out).tars.glob("*.tar")):
        if is_shard_name(tar.name) and tar.name not in indexes:
            samples += _from_tar(tar, shard=tar.name)
    return samples


def _pairs(extents: dict[PurePosixPath, Extent], shard: str) -> list[Sample]:
    """Each image with its annotation file; where a shard has only one of the two
    kinds (``--only``), each file of that kind alone."""
    images = sorted(p for p in extents if p.suffix == ".jpg")
    if not images:
        jsons = sorted(p for p in extents if p.suffix == ".json")
        return [Sample(p.stem, None, extents[p], shard) for p in jsons]
    if not any(p.suffix == ".json" for p in extents):
        return [Sample(p.stem, extents[p], None, shard) for p in images]
    return [
        Sample(image.stem, extents[image], extents[partner], shard)
        for image in images
        if (partner := _partner(image)) in extents
    ]


def _partner(image: PurePosixPath) -> PurePosixPath:
    """Where an image's annotation file is: beside it, or under ``annotations/``."""
    parts = image.with_suffix(".json").parts
    if len(parts) >= 3 and parts[0] == "images":
        return PurePosixPath("annotations", *parts[1:])
    return PurePosixPath(*parts)


def _from_walk(out: Path) -> list[Sample]:
    samples = []
    for image in sorted(out.rglob("*.jpg")):
        relative = image.relative_to(out)
        partner = out / _partner(PurePosixPath(*relative.parts))
        if partner.is_file():
            samples.append(Sample(image.stem, Extent(image), Extent(partner)))
    for tar in sorted(out.rglob("*.tar")):
        samples += _from_tar(tar)
    return samples


def _from_tar(tar: Path, *, shard: str | None = None) -> list[Sample]:
    """The pairs inside one tar, by name; its headers are read, its data skipped."""
    try:
        with tarfile.open(tar, "r:") as archive:
            members = {
                member.name: Extent(tar, member.offset_data, member.size)
                for member in archive
                if member.isfile()
            }
    except tarfile.TarError as error:
        raise InputError(f"{tar}: not a tar that can be read ({error})") from None
    return _tar_pairs(members, shard)


def _from_bucket(location: BucketLocation) -> list[Sample]:
    """The pairs inside every shard published in the bucket, shard by shard."""
    from sa1b.data.bucket import shard_members  # threads and a client: for s3:// alone

    return [
        sample
        for shard, members in sorted(shard_members(location).items())
        for sample in _tar_pairs(dict(members), shard)
    ]


def _tar_pairs(members: Mapping[str, Readable], shard: str | None) -> list[Sample]:
    """Each ``.jpg`` member with its ``.json`` beside it, by name."""
    return [
        Sample(PurePosixPath(name).stem, members[name], members[partner], shard)
        for name in sorted(members)
        if name.endswith(".jpg") and (partner := name[: -len(".jpg")] + ".json") in members
    ]
