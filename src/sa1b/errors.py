"""Every error sa1b raises, in one tree.

::

    SA1BError                       base; carries a one-line message and a hint
    ├── InputError                  the user's input is wrong (CLI exit code 2)
    │   ├── LinksFileError          a links file line cannot be used (names file and line)
    │   ├── SelectionError          a --shards or worker split (--shard-index) is wrong
    │   ├── ChecksumsFileError      a --checksums file line cannot be used
    │   ├── OutputFolderError       the -o folder cannot be created or written
    │   ├── OutputLocationError     -o names a place sa1b cannot use (gs://, a typo, ...)
    │   ├── BucketError             the -o bucket cannot be used: missing, access denied,
    │   │                           bad or no credentials (names the bucket)
    │   ├── NoSpaceError            the download cannot fit on the output folder's disk
    │   └── ClusterError            the Ray engine cannot run: Ray missing, no cluster
    ├── StateError                  the state store cannot be used
    │   ├── NoStateError            no state store there: no such folder (CLI exit code 2)
    │   ├── NewerStateError         a store written by a newer sa1b (exit 2)
    │   └── StateLockedError        another sa1b process owns the output folder (exit 2)
    ├── StorageError                the output folder cannot be written (disk full, I/O)
    └── TransferError               one file's transfer went wrong (names the file)
        ├── RetryableError          worth another attempt from the bytes on disk
        │   ├── ConnectError        could not connect (refused, DNS, TLS handshake)
        │   ├── StallError          no byte arrived within the read timeout
        │   ├── TruncatedBodyError  the connection ended before the body did (FIN or RST)
        │   ├── ServerError         408, 429 or 5xx; may carry Retry-After
        │   ├── BadResponseError    an answer that breaks HTTP (framing, coding, length)
        │   ├── RangeMismatchError  a 206 for other bytes than asked
        │   └── StoreUnavailableError  the object store answered 500/503 (SlowDown) or the
        │                              connection to it failed
        └── FatalTransferError      another attempt cannot help
            ├── LinkExpiredError    the signed link expired: fetch a new links file
            │   └── LinksExpiredError   every link the run needs expired before it started
            ├── HTTPStatusError     404, 410, a 403 that is not expiry, other 4xx
            ├── RedirectError       a redirect to http from https, to another scheme, or a loop
            ├── UnstableSourceError the server keeps changing the file while it downloads
            ├── ImplausibleSizeError the server announces a size no SA-1B file has
            ├── TLSVerificationError  the server's certificate did not verify
            ├── SizeMismatchError   the finished file has the wrong size
            ├── ExtractionError     a shard cannot be extracted (names shard and member)
            │   ├── UnsafeMemberError   a link, device, absolute or '..' path: left unextracted
            │   ├── CorruptArchiveError a header does not parse, a member is cut short
            │   └── NameClashError      two shards hold different files of one name (flat)
            ├── ChecksumMismatchError  the digest differs from --checksums, twice
            └── StoreRequestError   the object store refused a request (names bucket and key)
                └── NoSuchUploadError   the multipart upload is gone (aborted or completed)

libcurl's error codes are translated to this tree in one place,
:mod:`sa1b.net.failures`; nothing above the transport sees a libcurl code. The object
store client's errors likewise, in :mod:`sa1b.objectstore.failures`.
Every exception pickles with its data, because distributed workers send them back
to the coordinator.
"""

from __future__ import annotations

from typing import Any

from sa1b.redaction import clean


def _rebuild(cls: type[SA1BError], args: tuple[Any, ...], state: dict[str, Any]) -> SA1BError:
    error = cls.__new__(cls)
    Exception.__init__(error, *args)
    error.__dict__.update(state)
    return error


class SA1BError(Exception):
    """Base of every sa1b error: a one-line ``message`` and a ``hint`` for the user."""

    hint: str = ""

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        if hint is not None:
            self.hint = hint

    def __reduce__(self) -> tuple[Any, ...]:
        return (_rebuild, (type(self), self.args, dict(self.__dict__)))

    def __str__(self) -> str:
        return self.message


class InputError(SA1BError):
    """The user's input (a file, a flag) cannot be used as given."""


class LinksFileError(InputError):
    """A links file, or one of its lines, cannot be used."""

    hint = "fix that line, or download a fresh links file from Meta's SA-1B page"

    def __init__(
        self, message: str, *, path: str, line: int | None = None, hint: str | None = None
    ) -> None:
        where = f"{path}:{line}" if line is not None else path
        # clean(): a quoted line may hold a signature or terminal escapes.
        super().__init__(f"{where}: {clean(message)}", hint=hint)
        self.path = path
        self.line = line


class SelectionError(InputError):
    """A ``--shards`` selection is malformed or names shards the links file lacks, or a
    worker split (``--shard-index``, ``--shard-count``, a scheduler's index) is wrong."""


class ChecksumsFileError(InputError):
    """A ``--checksums`` file, or one of its lines, cannot be used."""


class OutputFolderError(InputError):
    """The output folder cannot be created or written (read-only, no permission)."""

    hint = "pick another -o folder, or make this one writable"

    @classmethod
    def cannot_create(cls, folder: object, error: OSError) -> OutputFolderError:
        """Why ``folder`` could not be made: a file in the way is named as one."""
        if isinstance(error, FileExistsError | NotADirectoryError):
            what = "is a file" if isinstance(error, FileExistsError) else "is below a file"
            return cls(
                f"{folder} {what}, not a folder",
                hint="give -o a folder: an existing one, or a new name that sa1b creates",
            )
        return cls(f"{folder}: cannot create it ({error.strerror})")


class OutputLocationError(InputError):
    """``-o`` (or OUT) names a place sa1b cannot use: another scheme (``gs://``, ``hf://``, ...),
    a malformed ``s3://`` URL, or an ``s3://`` output where it is not supported yet. Never
    a local folder named after a scheme."""

    hint = (
        "give a local folder, or s3://BUCKET/PREFIX for S3 or an S3-compatible store "
        "(AWS_ENDPOINT_URL); a local folder of that name is written ./NAME"
    )


class BucketError(InputError):
    """The ``-o s3://`` bucket cannot be used: it does not exist, access is denied, or the
    credentials are missing or wrong. ``bucket`` names it. Never carries a secret."""

    def __init__(self, message: str, *, bucket: str = "", hint: str | None = None) -> None:
        super().__init__(message, hint=hint)
        self.bucket = bucket


class ClusterError(InputError):
    """The Ray engine cannot run: Ray is not installed, or no cluster answers."""

    hint = "install the extra (pip install 'sa1b[ray]') and check --ray-address"


class NoSpaceError(InputError):
    """The download needs more space than the output folder's disk has free."""

    hint = (
        "free some space, pick another -o, or take less (--shards, --fraction); "
        "sa1b plan shows the figures, --no-space-check runs anyway"
    )


class StateError(SA1BError):
    """The state store in the output folder cannot be used."""


class NoStateError(StateError):
    """The folder holds no sa1b state: it does not exist, or no download wrote there
    (bad input: CLI exit code 2)."""

    hint = "pass the folder given to sa1b download -o (and its --state-dir, if one was given)"


class NewerStateError(StateError):
    """The folder's state store was written by a newer sa1b, whose records this one
    cannot read safely (bad input: CLI exit code 2)."""

    hint = "upgrade sa1b (pip install -U sa1b), or give another output folder"


class StateLockedError(StateError):
    """Another sa1b process is working on the same output folder."""

    hint = "wait for it to finish, or stop it; two processes would corrupt each other's files"


class StorageError(SA1BError):
    """The output folder cannot be written (disk full, I/O error): the run stops."""

    hint = "free some space (or pick another -o folder) and run the same command again"


class TransferError(SA1BError):
    """One file's transfer went wrong. ``name`` is the file; ``url`` is redacted."""

    def __init__(
        self, message: str, *, name: str = "", url: str = "", hint: str | None = None
    ) -> None:
        super().__init__(message, hint=hint)
        self.name = name
        self.url = url


class RetryableError(TransferError):
    """A transient failure: try again from the bytes already on disk."""

    retry_after: float | None = None


class ConnectError(RetryableError):
    """The connection could not be opened."""

    hint = (
        "check the network (can this machine reach the host?); behind a proxy, set "
        "HTTPS_PROXY; then run the same command again"
    )


class StallError(RetryableError):
    """No byte arrived within the read timeout."""


class TruncatedBodyError(RetryableError):
    """The connection ended before the announced body did."""


class ServerError(RetryableError):
    """The server answered 408, 429 or 5xx."""

    def __init__(
        self, message: str, *, status: int, retry_after: float | None = None, **kw: Any
    ) -> None:
        super().__init__(message, **kw)
        self.status = status
        self.retry_after = retry_after


class BadResponseError(RetryableError):
    """The answer breaks HTTP: bad framing, a coding not asked for, a wrong length."""


class RangeMismatchError(RetryableError):
    """A 206 answer whose Content-Range is not the range asked for."""


class StoreUnavailableError(RetryableError):
    """The object store answered 500 or 503 (``SlowDown``), or the connection to it failed
    or was cut: retried with backoff, apart from the CDN's failures. ``status`` is None for
    a connection failure; ``name`` is the object's key, ``url`` its ``s3://`` URL."""

    hint = (
        "check the endpoint (AWS_ENDPOINT_URL, or the profile's endpoint_url) and the "
        "network; a busy store is retried by itself: run the same command again later"
    )

    def __init__(
        self,
        message: str,
        *,
        status: int | None = None,
        retry_after: float | None = None,
        **kw: Any,
    ) -> None:
        super().__init__(message, **kw)
        self.status = status
        self.retry_after = retry_after


class FatalTransferError(TransferError):
    """Another attempt cannot help; the file stops here for this run."""


def expired_link_hint(*, bucket: bool = False) -> str:
    """What to do about an expired link, and what of the file is kept: its bytes on
    disk, or (``bucket``: an ``s3://`` output) the parts its upload holds."""
    kept = "the parts already uploaded" if bucket else "the bytes already on disk"
    return (
        "download a fresh links file from Meta's SA-1B page and run the same command "
        f"with it; {kept} are kept and continued"
    )


class LinkExpiredError(FatalTransferError):
    """The signed link expired (403 ``URL signature expired``, or ``oe`` has passed)."""

    hint = expired_link_hint()


class LinksExpiredError(LinkExpiredError):
    """Every link the run needs expired before it started: each file would end as
    expired, so none is asked for. Files that failed (exit code 1), not bad input."""


class HTTPStatusError(FatalTransferError):
    """A status that retrying cannot fix: 404, 410, a 403 that is not expiry, other 4xx."""

    def __init__(self, message: str, *, status: int, **kw: Any) -> None:
        kw.setdefault("hint", _STATUS_HINTS.get(status))
        super().__init__(message, **kw)
        self.status = status


_STATUS_HINTS = {
    407: "put the proxy's credentials in its URL: http://USER:PASSWORD@HOST:PORT",
    403: "the server refuses this link: fetch a fresh links file from Meta's SA-1B page",
    404: "nothing is at this link any more: fetch a fresh links file from Meta's SA-1B page",
    410: "nothing is at this link any more: fetch a fresh links file from Meta's SA-1B page",
}


class RedirectError(FatalTransferError):
    """A redirect that is never followed: from https to http, to a scheme other than
    http(s), to a malformed URL, or one too many."""


class UnstableSourceError(FatalTransferError):
    """The file's version (ETag, Last-Modified or size) keeps changing between answers,
    as load-balanced origins out of step do: restarting again would never end."""

    hint = "the server is serving different versions; try again later, or another mirror"


class ImplausibleSizeError(FatalTransferError):
    """The server announces a size larger than any SA-1B file: nothing is allocated."""


class TLSVerificationError(FatalTransferError):
    """The server's TLS certificate did not verify. Verification is never turned off."""

    hint = "check the system's CA certificates (or SSL_CERT_FILE) and the clock"


class SizeMismatchError(FatalTransferError):
    """The file on disk does not have the size the server announced."""


class ExtractionError(FatalTransferError):
    """A shard cannot be extracted; ``shard`` and ``member`` say where."""

    def __init__(self, message: str, *, shard: str = "", member: str = "", **kw: Any) -> None:
        kw.setdefault("name", shard)
        super().__init__(message, **kw)
        self.shard = shard or self.name
        self.member = member


def unsafe_member_hint(*, kept: str = "its tar is kept for inspection") -> str:
    """What to know of a shard refused for an unsafe member, and what is ``kept`` of it:
    its tar on disk, or (into a bucket, or with ``--only``) nothing."""
    return f"the shard is not an SA-1B shard as published; {kept}"


class UnsafeMemberError(ExtractionError):
    """A member that must never be written: the shard is left unextracted (its upload
    into a bucket aborted)."""

    hint = unsafe_member_hint()


class CorruptArchiveError(ExtractionError):
    """The tar does not parse, a member is cut short, or the archive does not end."""

    hint = (
        "the bytes the server sent are not a whole tar (an error page, or a damaged copy): "
        "run again to fetch the shard afresh; if it fails again, try a fresh links file"
    )


class NameClashError(ExtractionError):
    """Two shards hold different files under one name (``--layout flat``)."""

    hint = "use the default layout (one folder per shard) for these shards"


class ChecksumMismatchError(FatalTransferError):
    """The digest differs from the one in ``--checksums``, even after a clean re-download."""

    hint = "the source may be corrupt: try a mirror, or check the checksums file"


class StoreRequestError(FatalTransferError):
    """The object store refused a request that another attempt cannot fix (a bad part
    list, an object too large, ...); ``code`` is the store's error code."""

    def __init__(self, message: str, *, code: str = "", **kw: Any) -> None:
        super().__init__(message, **kw)
        self.code = code


class NoSuchUploadError(StoreRequestError):
    """The multipart upload is gone: aborted (by a person or a lifecycle rule) or
    completed already. Its parts are lost; the shard starts a new upload."""
