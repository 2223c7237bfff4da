"""Where ``-o`` points: a local folder, or ``s3://BUCKET/PREFIX``; what sa1b cannot write,
refused.

:func:`parse_output` is the one place that reads the text given to ``-o``. ``s3://`` gives a
frozen :class:`BucketLocation`; a local path gives a :class:`~pathlib.Path`. Everything that
looks like another URL or a mistyped one is refused with an
:class:`~sa1b.errors.OutputLocationError` (CLI exit code 2), never written as a local
folder named ``gs:`` or ``s3:``:

- another scheme, ``NAME:...`` (``gs://``, ``az://``, ``hf://``, ``http://``, ``file://``);
- ``s3:`` without its two slashes (``s3:/bucket``, ``s3:bucket``), ``s3//bucket``;
- an ``s3://`` URL with no bucket, a bucket name S3 refuses, a query or fragment, or a
  prefix with empty, ``.`` or ``..`` segments or control characters.

A folder whose name really is ``gs:x`` is written ``./gs:x``: a path starting with ``/``
or ``.`` is always local. Pure: no I/O.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from sa1b.errors import OutputLocationError
from sa1b.redaction import clean

SCHEME = "s3://"
_SCHEME_LIKE = re.compile(r"^(?P<scheme>[A-Za-z][A-Za-z0-9+.-]*)(?P<sep>:|//)")
#: S3's rules for a bucket name (general purpose buckets): 3-63 characters, lowercase
#: letters, digits, dots and hyphens, starting and ending with a letter or digit.
_BUCKET = re.compile(r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")
_IP_ADDRESS = re.compile(r"^\d+\.\d+\.\d+\.\d+$")

#: What to say for the schemes people try, beyond "sa1b writes local folders and s3://".
_OTHER_SCHEMES = {
    "gs": "Google Cloud Storage speaks S3 too: -o s3://BUCKET/PREFIX with "
    "AWS_ENDPOINT_URL=https://storage.googleapis.com and an HMAC key",
    "gcs": "Google Cloud Storage speaks S3 too: -o s3://BUCKET/PREFIX with "
    "AWS_ENDPOINT_URL=https://storage.googleapis.com and an HMAC key",
    "r2": "Cloudflare R2 speaks S3: -o s3://BUCKET/PREFIX with "
    "AWS_ENDPOINT_URL=https://ACCOUNT.r2.cloudflarestorage.com",
    "file": "give the folder's path itself: -o /path/to/folder",
}


@dataclass(frozen=True, slots=True)
class BucketLocation:
    """``s3://bucket/prefix``: every object sa1b writes has a key under ``prefix``
    (no leading or trailing slash; empty for the bucket's root)."""

    bucket: str
    prefix: str = ""

    @property
    def url(self) -> str:
        return f"{SCHEME}{self.bucket}/{self.prefix}" if self.prefix else f"{SCHEME}{self.bucket}"

    def key(self, name: str) -> str:
        """The key of ``name`` (a relative path, '/'-separated) under the prefix."""
        return f"{self.prefix}/{name}" if self.prefix else name

    def __str__(self) -> str:
        return self.url


def parse_output(text: str, *, verb: str = "write to") -> Path | BucketLocation:
    """``text`` as given to ``-o`` (or OUT): a local folder, or an ``s3://`` location.
    ``verb`` is what the command does with it ("write to", "read"), for the line refusing
    another scheme."""
    if text.startswith((".", "/")):
        return Path(text)
    found = _SCHEME_LIKE.match(text)
    if found is None:
        return Path(text)
    if text.startswith(SCHEME):
        return parse_bucket_url(text)
    scheme = found["scheme"].lower()
    shown = clean(text, limit=120)
    if scheme == "s3":  # s3:/bucket, s3:bucket, s3//bucket
        raise OutputLocationError(
            f"{shown}: not an S3 URL (write s3://BUCKET/PREFIX, with two slashes)",
        )
    raise OutputLocationError(
        f"{shown}: sa1b cannot {verb} {scheme}:// (it knows local folders and s3://)",
        hint=_OTHER_SCHEMES.get(scheme),
    )


def parse_bucket_url(text: str) -> BucketLocation:
    """``s3://BUCKET[/PREFIX]`` as a :class:`BucketLocation`, or an
    :class:`~sa1b.errors.OutputLocationError` naming what is wrong with it."""
    shown = clean(text, limit=120)
    if not text.startswith(SCHEME):
        raise OutputLocationError(f"{shown}: not an s3:// URL")
    rest = text[len(SCHEME) :]
    bucket, _, prefix = rest.partition("/")
    if not bucket:
        raise OutputLocationError(f"{shown}: no bucket (write s3://BUCKET/PREFIX)")
    if "?" in text or "#" in text:
        raise OutputLocationError(
            f"{shown}: a query or fragment has no place in an s3:// output",
            hint="settings go in the environment (AWS_ENDPOINT_URL, AWS_PROFILE, AWS_REGION)",
        )
    if not _BUCKET.match(bucket) or ".." in bucket or _IP_ADDRESS.match(bucket):
        raise OutputLocationError(
            f"{shown}: {bucket!r} is not a bucket name "
            "(3-63 lowercase letters, digits, '.' and '-')"
        )
    prefix = prefix.strip("/")
    if any(ord(ch) < 0x20 or ch == "\x7f" for ch in prefix):
        raise OutputLocationError(f"{shown}: the prefix holds control characters")
    if prefix and any(part in ("", ".", "..") for part in prefix.split("/")):
        raise OutputLocationError(
            f"{shown}: the prefix has an empty, '.' or '..' part",
            hint="write the prefix as its parts separated by single slashes",
        )
    return BucketLocation(bucket, prefix)
