"""The S3 test server (harness.seaweedfs) against a real SeaweedFS on loopback."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import botocore.session
import pytest
from botocore.exceptions import ClientError

from harness.seaweedfs import SeaweedServer

pytestmark = pytest.mark.xdist_group("seaweedfs")
"""With pytest-xdist, one worker runs the tests on SeaweedFS in turn: one server (eight
ports, a few hundred MB) at a time, not one a worker."""


def test_an_object_put_comes_back_whole_and_by_range(
    seaweedfs: SeaweedServer, s3_prefix: str
) -> None:
    client = seaweedfs.client()
    key = f"{s3_prefix}/object.bin"
    body = bytes(range(256)) * 4096
    client.put_object(Bucket="sa1b-test", Key=key, Body=body)
    assert client.get_object(Bucket="sa1b-test", Key=key)["Body"].read() == body
    ranged = client.get_object(Bucket="sa1b-test", Key=key, Range="bytes=1000-1999")
    assert ranged["Body"].read() == body[1000:2000]


def test_the_environment_a_user_would_set_reaches_it(
    seaweedfs: SeaweedServer, s3_prefix: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Only the variables, as a user would set them: the standard chain finds everything.
    for name in ("AWS_PROFILE", "AWS_CONFIG_FILE", "AWS_SHARED_CREDENTIALS_FILE"):
        monkeypatch.delenv(name, raising=False)
    for name, value in seaweedfs.environment.items():
        monkeypatch.setenv(name, value)
    client = botocore.session.Session().create_client("s3")
    client.put_object(Bucket="sa1b-test", Key=f"{s3_prefix}/x", Body=b"x")
    listed = client.list_objects_v2(Bucket="sa1b-test", Prefix=s3_prefix)
    assert [entry["Key"] for entry in listed["Contents"]] == [f"{s3_prefix}/x"]


def test_a_wrong_secret_is_refused(seaweedfs: SeaweedServer) -> None:
    client = botocore.session.Session().create_client(
        "s3",
        endpoint_url=seaweedfs.endpoint_url,
        region_name="us-east-1",
        aws_access_key_id=seaweedfs.access_key,
        aws_secret_access_key="not-the-secret",
    )
    with pytest.raises(ClientError) as raised:
        client.put_object(Bucket="sa1b-test", Key="refused", Body=b"x")
    assert raised.value.response["Error"]["Code"] == "SignatureDoesNotMatch"


def test_stop_leaves_no_process_folder_nor_socket() -> None:
    server = SeaweedServer(buckets=["first", "second"])
    server.start()
    try:
        root, pid, port = server.root, server.pid, server.port
        assert pid is not None
        buckets = server.client().list_buckets()["Buckets"]
        assert {"first", "second"} <= {bucket["Name"] for bucket in buckets}
    finally:
        server.stop()
    assert not root.exists()
    assert not server.running
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)
    assert not list(Path(tempfile.gettempdir()).glob(f"seaweedfs-*-{port}.sock"))
