"""``sa1b status`` and ``sa1b clean`` of an ``s3://BUCKET/PREFIX`` output: what the bucket
holds, in the look of a local folder's status, and its stray uploads."""

from __future__ import annotations

from collections.abc import Sequence

from sa1b import api
from sa1b.cli.output import Output
from sa1b.inventory import Verdict
from sa1b.objectstore.location import BucketLocation
from sa1b.redaction import clean
from sa1b.units import human_bytes, plural

EXIT_OK = 0


def show_status(location: BucketLocation, console: Output) -> int:
    """One line a file (``done``, or ``uploading`` with its parts), one a stray, the
    tally; exit 0 (nothing in a bucket says a file failed)."""
    found = api.bucket_status(location)
    for file in found.files:
        held = (
            human_bytes(file.bytes)
            if file.state == "done"
            else f"{plural(file.parts, 'part')}, {human_bytes(file.bytes)}"
        )
        console.line(clean(f"{file.name}  {file.state:<19} {held}", limit=1000))
    for verdict in found.strays:
        console.line(clean(f"stray upload  {_stray(location, verdict)}", limit=1000))
    counts: dict[str, int] = {}
    for file in found.files:
        counts[file.state] = counts.get(file.state, 0) + 1
    summary = ", ".join(f"{n} {state}" for state, n in sorted(counts.items())) or "none"
    held = human_bytes(sum(file.bytes for file in found.files))
    console.line(f"{plural(len(found.files), 'file')}: {summary}; {held} in the bucket")
    if found.strays:
        them = "it" if len(found.strays) == 1 else "them"
        console.line(
            f"{plural(len(found.strays), 'stray upload')} ({human_bytes(found.stray_bytes)}): "
            f"sa1b clean {location} removes {them}"
        )
    return EXIT_OK


def show_clean(location: BucketLocation, console: Output, *, dry_run: bool) -> int:
    """Each stray removed (or, with ``dry_run``, that would be), then how many."""
    report = api.clean_bucket(location, dry_run=dry_run)
    shown: Sequence[Verdict] = report.strays if dry_run else report.removed
    verb = "would remove" if dry_run else "removed"
    for verdict in shown:
        console.line(clean(f"{verb}  {_stray(location, verdict)}", limit=1000))
    held = human_bytes(sum(verdict.upload.bytes for verdict in shown))
    what = f"{plural(len(shown), 'stray upload')} ({held})"
    if dry_run:
        console.line(f"{what} would be removed from {location}: sa1b clean {location} does it")
    else:
        console.line(f"{what} removed from {location}")
    return EXIT_OK


def _stray(location: BucketLocation, verdict: Verdict) -> str:
    """``s3://b/p/tars/sa_000001.tar  (upload ID, begun 2026-12-06 14:00:00 UTC) 2 parts,
    10.0 MiB: an older upload of its file``: the whole id (stores give uploads of one key
    ids that differ only at the end)."""
    upload = verdict.upload
    begun = f", begun {upload.initiated:%Y-%m-%d %H:%M:%S %Z}" if upload.initiated else ""
    held = f"{plural(len(upload.parts), 'part')}, {human_bytes(upload.bytes)}"
    where = f"s3://{location.bucket}/{location.key(upload.key)}"
    return f"{where}  (upload {upload.upload_id}{begun}) {held}: {verdict.stray}"
