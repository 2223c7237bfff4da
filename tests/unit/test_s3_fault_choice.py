"""The fault proxy's pure parts (harness.s3_faults): which S3 call a request is, and
which requests a fault applies to, as tables."""

from __future__ import annotations

import pytest

from harness.s3_faults import FaultBook, StoreFault, operation

B, K = "/sa1b-test", "/sa1b-test/p/tars/sa_000001.tar"
# (method, target) -> S3's name of the call, as botocore sends them (path style)
OPERATIONS = {
    ("HEAD", B): "HeadBucket",
    ("GET", f"{B}?list-type=2&prefix=p&max-keys=1&encoding-type=url"): "ListObjectsV2",
    ("GET", f"{B}?uploads&prefix=p%2F&max-uploads=1000&encoding-type=url"): (
        "ListMultipartUploads"
    ),
    ("GET", f"{B}?prefix=p"): "ListObjects",
    ("PUT", B): "CreateBucket",
    ("POST", f"{B}?delete"): "DeleteObjects",
    ("DELETE", B): "DeleteBucket",
    ("HEAD", K): "HeadObject",
    ("GET", K): "GetObject",
    ("GET", f"{K}?uploadId=abc&part-number-marker=0&max-parts=1000"): "ListParts",
    ("PUT", f"{K}?partNumber=3&uploadId=abc"): "UploadPart",
    ("PUT", K): "PutObject",
    ("POST", f"{K}?uploads"): "CreateMultipartUpload",
    ("POST", f"{K}?uploadId=abc"): "CompleteMultipartUpload",
    ("DELETE", f"{K}?uploadId=abc"): "AbortMultipartUpload",
    ("DELETE", K): "DeleteObject",
    ("PATCH", K): "Unknown",
    ("POST", K): "Unknown",
}


@pytest.mark.parametrize(("request_", "name"), OPERATIONS.items(), ids=OPERATIONS.values())
def test_the_operation_of_a_request(request_: tuple[str, str], name: str) -> None:
    assert operation(*request_) == name


# fault, the operations of the requests made in turn -> which of them it fails
APPLIES = [
    (StoreFault(kind="slow_down"), ["HeadBucket", "PutObject"], [True, False]),
    (StoreFault(kind="slow_down", times=2), ["A", "B", "C"], [True, True, False]),
    (StoreFault(kind="slow_down", times=None), ["A"] * 4, [True] * 4),
    (
        StoreFault(kind="internal_error", operation="UploadPart", times=2),
        ["CreateMultipartUpload", "UploadPart", "ListParts", "UploadPart", "UploadPart"],
        [False, True, False, True, False],
    ),
    (
        StoreFault(kind="slow_down", operation="UploadPart", every=3, times=None),
        ["UploadPart", "HeadObject"] * 6,
        [False, False, False, False, True, False] * 2,
    ),
    (StoreFault(kind="cut_answer", every=2, times=1), ["A"] * 6, [False, True] + [False] * 4),
    (StoreFault(kind="expired_token", after=3, times=None), ["A"] * 5, [False] * 3 + [True] * 2),
    (
        StoreFault(kind="slow_down", operation="UploadPart", after=1, every=2, times=1),
        ["UploadPart", "ListParts", "UploadPart", "UploadPart", "UploadPart", "UploadPart"],
        [False, False, False, True, False, False],
    ),
]


@pytest.mark.parametrize(("fault", "operations", "failed"), APPLIES)
def test_which_requests_a_fault_applies_to(
    fault: StoreFault, operations: list[str], failed: list[bool]
) -> None:
    book = FaultBook()
    book.set(fault)
    assert [book.take(name) is not None for name in operations] == failed


def test_setting_a_fault_starts_its_count_again_and_none_passes_all() -> None:
    book = FaultBook()
    book.set(StoreFault(kind="slow_down", every=2, times=None))
    assert [book.take("A") is not None for _ in range(3)] == [False, True, False]
    book.set(StoreFault(kind="slow_down", every=2, times=None))
    assert book.take("A") is None  # the first of the new count
    book.set(None)
    assert [book.take("A") for _ in range(4)] == [None] * 4


@pytest.mark.parametrize(
    "arguments",
    [
        {"kind": "teapot"},
        {"kind": "slow_down", "times": 0},
        {"kind": "slow_down", "every": 0},
        {"kind": "slow_down", "after": -1},
    ],
)
def test_a_fault_that_cannot_be_acted_out_is_refused(arguments: dict[str, object]) -> None:
    with pytest.raises(ValueError):
        StoreFault(**arguments)  # type: ignore[arg-type]
