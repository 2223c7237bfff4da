"""What identifies one version of an object on the server. Pure."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Validator:
    """What identifies one version of an object: its ETag and Last-Modified."""

    etag: str | None = None
    last_modified: str | None = None

    @classmethod
    def from_headers(cls, headers: Mapping[str, str]) -> Validator:
        return cls(headers.get("etag"), headers.get("last-modified"))

    def if_range(self) -> str | None:
        """The ``If-Range`` value: a strong ETag, else Last-Modified (RFC 9110 13.1.5)."""
        if self.etag and not self.etag.startswith("W/"):
            return self.etag
        return self.last_modified

    def contradicts(self, other: Validator) -> bool:
        """True when both name a version and the versions differ."""
        if self.etag and other.etag:
            return self.etag != other.etag
        if self.last_modified and other.last_modified:
            return self.last_modified != other.last_modified
        return False
