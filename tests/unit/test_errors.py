"""The exception tree: every class pickles with its message, hint and data."""

from __future__ import annotations

import copy
import inspect
import pickle
from typing import Any

import pytest

from sa1b import errors
from sa1b.errors import (
    FatalTransferError,
    InputError,
    LinksFileError,
    RetryableError,
    SA1BError,
    ServerError,
    StateError,
    StorageError,
    TransferError,
)

CLASSES = sorted(
    (
        cls
        for cls in vars(errors).values()
        if isinstance(cls, type)
        and issubclass(cls, BaseException)
        and cls.__module__ == errors.__name__
    ),
    key=lambda cls: cls.__name__,
)

# Values for every keyword a constructor in the module may take.
ARGS: dict[str, Any] = {
    "hint": "do something else",
    "path": "/data/links.txt",
    "line": 42,
    "name": "sa_000123.tar",
    "url": "https://scontent.xx.fbcdn.net/m1/v/t6/obj.tar?…",
    "status": 503,
    "retry_after": 12.5,
    "shard": "sa_000123.tar",
    "member": "../evil",
    "bucket": "sa1b-test",
    "code": "InvalidPart",
}


def build(cls: type[SA1BError]) -> tuple[SA1BError, dict[str, Any]]:
    """An instance with every keyword its constructor accepts, and those keywords."""
    accepted: set[str] = set()
    for klass in cls.__mro__:
        init = vars(klass).get("__init__")
        if init is None:
            continue
        parameters = inspect.signature(init).parameters
        accepted |= {
            p.name for p in parameters.values() if p.kind is inspect.Parameter.KEYWORD_ONLY
        }
        if not any(p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters.values()):
            break
    kwargs = {key: ARGS[key] for key in accepted}
    return cls("something went wrong", **kwargs), kwargs


def test_the_module_has_the_documented_classes() -> None:
    names = {cls.__name__ for cls in CLASSES}
    for name in [
        "SA1BError",
        "InputError",
        "LinksFileError",
        "SelectionError",
        "ChecksumsFileError",
        "LinksExpiredError",
        "StateError",
        "StateLockedError",
        "TransferError",
        "RetryableError",
        "ConnectError",
        "StallError",
        "TruncatedBodyError",
        "ServerError",
        "RangeMismatchError",
        "FatalTransferError",
        "LinkExpiredError",
        "HTTPStatusError",
        "TLSVerificationError",
        "SizeMismatchError",
        "ChecksumMismatchError",
        "OutputLocationError",
        "BucketError",
        "StoreUnavailableError",
        "StoreRequestError",
        "NoSuchUploadError",
    ]:
        assert name in names
        assert name in (errors.__doc__ or "")  # drawn in the module docstring


@pytest.mark.parametrize("cls", CLASSES, ids=lambda cls: cls.__name__)
def test_every_class_is_rooted(cls: type[BaseException]) -> None:
    assert issubclass(cls, SA1BError)
    if cls is not SA1BError:
        branches = (InputError, StateError, StorageError, TransferError)
        assert sum(issubclass(cls, b) for b in branches) == 1
    if issubclass(cls, TransferError) and cls not in (TransferError,):
        assert issubclass(cls, RetryableError) != issubclass(cls, FatalTransferError)


@pytest.mark.parametrize("cls", CLASSES, ids=lambda cls: cls.__name__)
@pytest.mark.parametrize("protocol", [0, 2, pickle.HIGHEST_PROTOCOL])
def test_every_class_pickles_with_its_data(cls: type[SA1BError], protocol: int) -> None:
    error, kwargs = build(cls)
    restored = pickle.loads(pickle.dumps(error, protocol=protocol))
    assert type(restored) is cls
    assert str(restored) == str(error)
    assert restored.message == error.message
    assert restored.args == error.args
    assert restored.hint == error.hint
    assert vars(restored) == vars(error)
    for key, value in kwargs.items():
        assert getattr(restored, key) == value
    assert "something went wrong" in str(restored)


@pytest.mark.parametrize("cls", CLASSES, ids=lambda cls: cls.__name__)
def test_every_class_copies(cls: type[SA1BError]) -> None:
    error, _ = build(cls)
    assert vars(copy.deepcopy(error)) == vars(error)
    assert vars(copy.copy(error)) == vars(error)


@pytest.mark.parametrize("cls", CLASSES, ids=lambda cls: cls.__name__)
def test_hints_survive_without_an_explicit_hint(cls: type[SA1BError]) -> None:
    _, kwargs = build(cls)
    kwargs.pop("hint", None)
    plain = cls("x", **kwargs)
    restored = pickle.loads(pickle.dumps(plain))
    assert restored.hint == plain.hint
    assert "hint" not in vars(plain) or cls is LinksFileError  # class hints stay class-level


def test_attributes_set_after_construction_survive() -> None:
    error = errors.ConnectError("refused")
    error.name = "sa_000001.tar"  # the engine fills the name in later
    restored = pickle.loads(pickle.dumps(error))
    assert restored.name == "sa_000001.tar"
    assert restored.retry_after is None


def test_links_file_error_names_path_and_line() -> None:
    error = LinksFileError("bad row", path="links.txt", line=7)
    assert str(error) == "links.txt:7: bad row"
    assert (error.path, error.line) == ("links.txt", 7)
    assert "links file" in error.hint
    whole = LinksFileError("unreadable", path="links.txt")
    assert str(whole) == "links.txt: unreadable"
    assert whole.line is None


def test_hint_override_and_default() -> None:
    assert SA1BError("x").hint == ""
    assert SA1BError("x", hint="h").hint == "h"
    assert errors.LinkExpiredError("x").hint == errors.LinksExpiredError.hint
    assert errors.LinkExpiredError("x", hint="custom").hint == "custom"
    assert errors.StateLockedError("x").hint


def test_server_error_retry_after() -> None:
    error = ServerError("busy", status=429, retry_after=3.0, name="a", url="u")
    restored = pickle.loads(pickle.dumps(error))
    assert (restored.status, restored.retry_after, restored.name, restored.url) == (
        429,
        3.0,
        "a",
        "u",
    )


def test_errors_can_be_raised_and_caught_by_base() -> None:
    with pytest.raises(SA1BError, match="boom"):
        raise errors.TruncatedBodyError("boom", name="x")


# name: (what mkdir raised, the message, the hint says)
CANNOT_CREATE = {
    "a file of that name": (FileExistsError(17, "File exists"), "out is a file, not a folder"),
    "a file on its path": (NotADirectoryError(20, "Not a directory"), "out is below a file"),
    "no permission": (PermissionError(13, "Permission denied"), "out: cannot create it (Perm"),
}


@pytest.mark.parametrize(("raised", "says"), CANNOT_CREATE.values(), ids=CANNOT_CREATE.keys())
def test_an_output_folder_that_cannot_be_made_says_why(raised: OSError, says: str) -> None:
    error = errors.OutputFolderError.cannot_create("out", raised)
    assert error.message.startswith(says)
    file_in_the_way = isinstance(raised, FileExistsError | NotADirectoryError)
    assert ("give -o a folder" in error.hint) is file_in_the_way
    assert ("writable" in error.hint) is not file_in_the_way
