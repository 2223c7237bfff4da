"""Checksums files in ``md5sum`` / ``sha256sum`` format: ``<hex>  <name>`` per line."""

from __future__ import annotations

import hashlib
import os
import re
from dataclasses import dataclass
from pathlib import Path

from sa1b.errors import ChecksumsFileError

_ALGORITHMS = {32: "md5", 40: "sha1", 64: "sha256"}
_LINE = re.compile(r"([0-9A-Fa-f]+) [ *](?:\./)?(\S+)")


@dataclass(frozen=True, slots=True)
class Digest:
    """An expected digest: the hashlib algorithm name and the lowercase hex value."""

    algorithm: str
    hexdigest: str


def parse_checksums(text: str, *, source: str = "<checksums>") -> dict[str, Digest]:
    """Map file name to expected digest; the algorithm follows from the digest length."""
    digests: dict[str, Digest] = {}
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        match = _LINE.fullmatch(line)
        algorithm = _ALGORITHMS.get(len(match.group(1))) if match else None
        if match is None or algorithm is None:
            raise ChecksumsFileError(
                f"{source}:{number}: expected '<md5 or sha256 hex>  <file name>'",
                hint="use the output format of md5sum or sha256sum",
            )
        digests[match.group(2)] = Digest(algorithm, match.group(1).lower())
    return digests


def read_checksums(path: str | Path) -> dict[str, Digest]:
    """Read and parse a checksums file, with errors that name it."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as error:
        raise ChecksumsFileError(f"{path}: cannot read: {error}") from error
    return parse_checksums(text, source=str(path))


def hash_file(fd: int, algorithm: str) -> str:
    """The hex digest of a whole file, read in 4 MiB blocks."""
    digest = hashlib.new(algorithm)
    view = memoryview(bytearray(4 * 1024 * 1024))
    offset = 0
    while n := os.preadv(fd, [view], offset):
        digest.update(view[:n])
        offset += n
    return digest.hexdigest()
