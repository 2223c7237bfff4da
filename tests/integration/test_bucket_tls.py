"""The S3 client over HTTPS, as every cloud store is reached: SeaweedFS serving TLS with a
private CA on loopback, trusted through AWS_CA_BUNDLE as a user would set it, and refused
in one line when not trusted; an AWS_CA_BUNDLE set but empty is one line too."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from harness.certs import CertificatePaths
from harness.seaweedfs import SeaweedServer
from sa1b.errors import BucketError
from sa1b.objectstore.bucket import Bucket
from sa1b.objectstore.location import BucketLocation
from sa1b.objectstore.parts import MIB
from tests.conftest import AWS_ISOLATION, aws_environment

from .conftest import run_cli

pytestmark = pytest.mark.xdist_group("seaweedfs")
"""With pytest-xdist, one worker runs the tests on SeaweedFS in turn: one server (eight
ports, a few hundred MB) at a time, not one a worker."""


@pytest.fixture(scope="module")
def tls_store(certificates: CertificatePaths) -> Iterator[SeaweedServer]:
    with SeaweedServer(buckets=["sa1b-tls"], tls=certificates) as server:
        yield server


@pytest.fixture
def tls_environment(tls_store: SeaweedServer, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    for name, value in {**AWS_ISOLATION, **tls_store.environment}.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("AWS_PROFILE", raising=False)
    return tls_store.environment


def test_a_multipart_upload_over_https(tls_environment: dict[str, str], s3_prefix: str) -> None:
    assert tls_environment["AWS_ENDPOINT_URL"].startswith("https://")
    bucket = Bucket(BucketLocation("sa1b-tls", s3_prefix))
    bucket.check_writable()
    first, last = os.urandom(5 * MIB), os.urandom(333)
    upload_id = bucket.create_multipart_upload("sa_000001.tar")
    parts = [
        bucket.upload_part("sa_000001.tar", upload_id, 1, first),
        bucket.upload_part("sa_000001.tar", upload_id, 2, last),
    ]
    bucket.complete_multipart_upload("sa_000001.tar", upload_id, parts)
    stored = bucket.head_object("sa_000001.tar")
    assert stored is not None and stored.size == 5 * MIB + 333
    assert bucket.get_range("sa_000001.tar", 5 * MIB - 3, 5 * MIB + 3) == first[-3:] + last[:3]


def test_a_certificate_not_trusted_is_one_line_and_not_retried(
    tls_environment: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("AWS_CA_BUNDLE")
    with pytest.raises(BucketError) as raised:
        Bucket(BucketLocation("sa1b-tls")).check_writable()
    assert raised.value.message == "s3://sa1b-tls: the store's TLS certificate did not verify"
    assert "AWS_CA_BUNDLE" in raised.value.hint


@pytest.mark.parametrize("command", ["status", "download"])
def test_an_empty_ca_bundle_variable_is_one_line_naming_it(
    command: str, seaweedfs: SeaweedServer, links: Path, tmp_path: Path, s3_prefix: str
) -> None:
    out = f"s3://sa1b-test/{s3_prefix}"
    argv = [out] if command == "status" else [links, "-o", out, "--no-extract"]
    result = run_cli(
        command,
        *argv,
        env=aws_environment({**seaweedfs.environment, "AWS_CA_BUNDLE": ""}),
        cwd=tmp_path,
    )
    assert result.returncode == 2, result.output  # a configuration error, as a bad bucket
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert errors == [
        "error: s3://sa1b-test: AWS_CA_BUNDLE is set but empty, so there is no CA bundle to "
        "check the store's certificate with"
    ], result.output
    assert "hint: unset AWS_CA_BUNDLE" in result.stderr
    assert "InvalidConfigError" not in result.output
    assert "Traceback" not in result.output
