"""What an ``s3://BUCKET/PREFIX`` output holds, judged from the bucket's listings alone
(ListObjectsV2, ListMultipartUploads, ListParts): a machine with no local state gets the
same answers as the one that ran the download. Pure: listings in, verdicts out.

The layout is the local folder's, one mapping for both (:meth:`OutputPaths.final`): a
shard's tar at ``tars/sa_000020.tar``, an extra at ``<name>``, every key relative to
the prefix; sa1b's own objects (state copies) under ``.sa1b/``.

A pending multipart upload is either the one its file resumes from or a **stray**
(:func:`judge_uploads`): the upload the state records, if it is still pending; else the
newest of its key (of two begun in one second, the one holding more bytes), if its parts
fit one part plan. Every other pending upload under the
prefix is a stray: an upload of a key that is not a file of the layout, of a file whose
object is published, an older duplicate, or one whose parts fit no plan. ``sa1b status``
shows strays; only ``sa1b clean`` removes them. The download engine picks the upload a
shard resumes from by the same rule (:func:`resumed_upload`), so that ``clean`` never
removes the upload a run would continue, and a run never continues a stray.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path, PurePosixPath
from typing import Literal

from sa1b.links import is_safe_name, is_shard_name
from sa1b.objectstore.parts import PartPlan
from sa1b.redaction import clean
from sa1b.repack import REPACKS, Output
from sa1b.store.paths import WORK_DIR, OutputPaths
from sa1b.versions import Validator

SIZE_METADATA = "sa1b-size"
"""The user metadata the upload engine gives each multipart upload (and so its object):
the file's expected size in bytes."""
SOURCE_METADATA = "sa1b-source"
"""The user metadata naming the version of the source an upload was begun for: the
CDN's ETag, else its Last-Modified (never a URL, never a signature)."""

OWN_FOLDER = WORK_DIR
"""Under the prefix, as in a local output folder: sa1b's own objects (state copies)."""

_LAYOUT = OutputPaths.of(Path())
TARS_FOLDER = _LAYOUT.tars.as_posix()
"""Under the prefix: the shards' tars."""
_OLDEST = datetime.min.replace(tzinfo=UTC)


def key_of(name: str) -> str:
    """The key (under the prefix) a file of the links file is published at; a tar made
    from a shard (:mod:`sa1b.repack`) is named by its key (``wds/sa_000020.tar``)."""
    if repacked(name) is not None:
        return name
    return _LAYOUT.final(name).as_posix()


def file_of(key: str) -> str | None:
    """The file published at ``key`` (under the prefix), None when ``key`` is not a
    place of the layout. A tar made from a shard is a file of its own, named by its key
    (a shard's tar and its ``wds`` tar may both be in the bucket)."""
    if repacked(key) is not None:
        return key
    name = PurePosixPath(key).name
    return name if is_safe_name(name) and key_of(name) == key else None


def repacked(name: str) -> tuple[Output, str] | None:
    """For a tar made from a shard (``json/sa_000020.tar``): what it is and its shard;
    None for any other name or key."""
    folder, _, shard = name.partition("/")
    for output in REPACKS:
        if folder == output and is_shard_name(shard):
            return output, shard
    return None


def upload_metadata(size: int, validator: Validator) -> dict[str, str]:
    """The metadata a file's multipart upload is begun with (its object keeps it): so
    that a machine with no local state can tell what the object should be."""
    source = clean(validator.etag or validator.last_modified or "", limit=200)
    return {SIZE_METADATA: str(size), SOURCE_METADATA: source}


@dataclass(frozen=True, slots=True)
class Upload:
    """A pending multipart upload, with the parts ListParts reports: ``(number, size)``."""

    key: str
    upload_id: str
    initiated: datetime | None = None
    parts: tuple[tuple[int, int], ...] = ()

    @property
    def bytes(self) -> int:
        return sum(size for _, size in self.parts)


@dataclass(frozen=True, slots=True)
class Verdict:
    """An upload judged: the file it uploads (None outside the layout), and why it is a
    stray (None for the upload its file resumes from)."""

    upload: Upload
    name: str | None
    stray: str | None

    @property
    def resumable(self) -> bool:
        return self.stray is None


def parts_fit(parts: Sequence[tuple[int, int]], plan: PartPlan | None = None) -> bool:
    """Whether these parts can be of one upload of sa1b's: with the file's ``plan``, each
    part has the length the plan gives it; without (S3 returns no metadata of a pending
    upload), every part but the highest-numbered has one size and that one is no larger."""
    if plan is not None:
        return all(1 <= n <= plan.count and size == plan.length(n) for n, size in parts)
    if not parts:
        return True
    *rest, (_, last) = sorted(parts)
    sizes = {size for _, size in rest}
    return len(sizes) <= 1 and last <= min(sizes, default=last)


def judge_uploads(
    uploads: Iterable[Upload],
    *,
    published: Collection[str],
    recorded: Mapping[str, str] | None = None,
    plans: Mapping[str, PartPlan] | None = None,
) -> list[Verdict]:
    """Each pending upload under the prefix, judged (in key order, newest first).

    ``published``: the names of the files whose object exists; ``recorded``: the upload
    id the state records for a file, by name; ``plans``: a file's part plan when its size
    is known."""
    recorded, plans = recorded or {}, plans or {}
    by_key: dict[str, list[Upload]] = {}
    for upload in uploads:
        by_key.setdefault(upload.key, []).append(upload)
    verdicts = []
    for key, group in sorted(by_key.items()):
        group.sort(key=_age, reverse=True)
        name = file_of(key)
        chosen = None
        if name is not None and name not in published:
            ids = {upload.upload_id: upload for upload in group}
            chosen = ids.get(recorded.get(name, ""), group[0])
        plan = plans.get(name) if name is not None else None
        for upload in group:
            why = _why_stray(upload, chosen, name, published, plan)
            verdicts.append(Verdict(upload, name, why))
    return verdicts


def resumed_upload(
    uploads: Iterable[Upload], name: str, *, recorded: str | None, plan: PartPlan | None
) -> Upload | None:
    """Of the pending uploads of file ``name``'s key, the one a download resumes from
    (None: it begins a new one), by the rule of :func:`judge_uploads`: ``recorded`` is
    the upload the state records, ``plan`` the file's part plan when its size is known.
    (The engine judges an unpublished file: it finds a published one done first.)"""
    verdicts = judge_uploads(
        uploads,
        published=(),
        recorded={name: recorded} if recorded else None,
        plans={name: plan} if plan else None,
    )
    return next((v.upload for v in verdicts if v.resumable and v.name == name), None)


def _age(upload: Upload) -> tuple[datetime, int, str]:
    """Oldest first: an upload with no date the oldest; stores date uploads to the second
    only, so uploads begun in one second go by the bytes they hold (the one holding more
    is kept), then by id (one order on every machine)."""
    return upload.initiated or _OLDEST, upload.bytes, upload.upload_id


def _why_stray(
    upload: Upload,
    chosen: Upload | None,
    name: str | None,
    published: Collection[str],
    plan: PartPlan | None,
) -> str | None:
    if name is None:
        return "not a file of the layout"
    if name in published:
        return "its file is published"
    if chosen is not None and upload is not chosen:
        if _age(upload) < _age(chosen):
            return "an older upload of its file"
        return "a newer upload of its file than the one the state records"
    if not parts_fit(upload.parts, plan):
        return "its parts fit no part plan of sa1b's"
    return None


State = Literal["done", "uploading"]


@dataclass(frozen=True, slots=True)
class BucketFile:
    """A file of the layout as the bucket holds it: ``done`` (its object published, of
    ``bytes``) or ``uploading`` (``bytes`` in the parts of the upload it resumes from)."""

    name: str
    state: State
    bytes: int
    parts: int = 0


def bucket_files(
    objects: Iterable[tuple[str, int]], verdicts: Iterable[Verdict]
) -> list[BucketFile]:
    """Each file of the layout that has an object (``(key, size)``) or an upload to
    resume, by name; other objects (sa1b's own under ``.sa1b/``, a user's) are not files."""
    files = {
        name: BucketFile(name, "done", size)
        for key, size in objects
        if (name := file_of(key)) is not None
    }
    for verdict in verdicts:
        if verdict.resumable and verdict.name is not None and verdict.name not in files:
            upload = verdict.upload
            files[verdict.name] = BucketFile(
                verdict.name, "uploading", upload.bytes, len(upload.parts)
            )
    return sorted(files.values(), key=lambda file: file.name)
