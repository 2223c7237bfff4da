"""What -o names: a local folder, an s3:// location, or a refusal (a table)."""

from __future__ import annotations

from pathlib import Path

import pytest

from sa1b.errors import InputError, OutputLocationError
from sa1b.objectstore.location import BucketLocation, parse_bucket_url, parse_output

# text given to -o: what it is
ACCEPTED = {
    "SA-1B": Path("SA-1B"),
    "data/sa1b": Path("data/sa1b"),
    "/mnt/data": Path("/mnt/data"),
    "./gs:x": Path("./gs:x"),  # a local folder named like a scheme, written as one
    "./s3//x": Path("./s3//x"),
    "s3/x": Path("s3/x"),  # a folder named s3
    "s3://bucket": BucketLocation("bucket", ""),
    "s3://bucket/": BucketLocation("bucket", ""),
    "s3://my-bucket/sa1b": BucketLocation("my-bucket", "sa1b"),
    "s3://my.bucket.2/a/b/c/": BucketLocation("my.bucket.2", "a/b/c"),
    "s3://b12/SA-1B v2": BucketLocation("b12", "SA-1B v2"),
}

# text given to -o: what the one line says
REFUSED = {
    "gs://bucket/x": "cannot write to gs://",
    "GS://bucket/x": "cannot write to gs://",
    "az://container/x": "cannot write to az://",
    "abfss://c@account.dfs.core.windows.net/x": "cannot write to abfss://",
    "hf://datasets/me/sa1b": "cannot write to hf://",
    "http://host/x": "cannot write to http://",
    "https://host/x": "cannot write to https://",
    "file:///tmp/x": "cannot write to file://",
    "ftp://host": "cannot write to ftp://",
    "s3:/bucket/x": "not an S3 URL",
    "s3:bucket": "not an S3 URL",
    "s3//bucket/x": "not an S3 URL",
    "S3:/bucket": "not an S3 URL",
    "s3://": "no bucket",
    "s3:///prefix": "no bucket",
    "s3://Bucket/x": "is not a bucket name",
    "s3://ab/x": "is not a bucket name",
    "s3://-bucket/x": "is not a bucket name",
    "s3://bucket_name/x": "is not a bucket name",
    "s3://my..bucket/x": "is not a bucket name",
    "s3://192.168.1.1/x": "is not a bucket name",
    "s3://" + "b" * 64: "is not a bucket name",
    "s3://bucket/a//b": "empty, '.' or '..' part",
    "s3://bucket/a/../b": "empty, '.' or '..' part",
    "s3://bucket/./b": "empty, '.' or '..' part",
    "s3://bucket/x?versionId=1": "query or fragment",
    "s3://bucket/x#y": "query or fragment",
    "s3://bucket/x\ny": "control characters",
}


@pytest.mark.parametrize(("text", "expected"), ACCEPTED.items(), ids=ACCEPTED.keys())
def test_what_is_accepted(text: str, expected: Path | BucketLocation) -> None:
    assert parse_output(text) == expected


@pytest.mark.parametrize(("text", "says"), REFUSED.items(), ids=REFUSED.keys())
def test_what_is_refused_says_why_in_one_line(text: str, says: str) -> None:
    with pytest.raises(OutputLocationError) as raised:
        parse_output(text)
    error = raised.value
    assert isinstance(error, InputError)  # exit code 2
    assert says in error.message
    assert "\n" not in error.message
    assert error.hint


@pytest.mark.parametrize("verb", ["write to", "read", "clean up"])
def test_another_scheme_is_refused_with_what_the_command_does(verb: str) -> None:
    with pytest.raises(OutputLocationError) as raised:
        parse_output("hf://datasets/me/sa1b", verb=verb)
    assert raised.value.message == (
        f"hf://datasets/me/sa1b: sa1b cannot {verb} hf:// (it knows local folders and s3://)"
    )


def test_a_location_gives_keys_under_its_prefix() -> None:
    located = BucketLocation("bucket", "data/sa1b")
    assert located.key("sa_000000.tar") == "data/sa1b/sa_000000.tar"
    assert located.url == str(located) == "s3://bucket/data/sa1b"
    root = BucketLocation("bucket")
    assert root.key(".sa1b/state") == ".sa1b/state"
    assert root.url == "s3://bucket"


def test_google_and_r2_are_pointed_at_their_s3_endpoints() -> None:
    with pytest.raises(OutputLocationError) as raised:
        parse_output("gs://bucket")
    assert "AWS_ENDPOINT_URL=https://storage.googleapis.com" in raised.value.hint


def test_parse_bucket_url_refuses_a_local_path() -> None:
    with pytest.raises(OutputLocationError, match="not an s3:// URL"):
        parse_bucket_url("/tmp/x")
