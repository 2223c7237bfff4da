"""Credentials and endpoint the usual way (issue 18, item 5), through the real CLI:
``sa1b plan LINKS -o s3://...`` reaches a real SeaweedFS with the AWS variables, with a
profile of the shared config and credentials files (``AWS_PROFILE`` or the default one),
with an instance role (a loopback instance metadata service), with the endpoint from
``AWS_ENDPOINT_URL`` or the profile's ``endpoint_url``; a profile that does not exist is
one line. The secret is never printed nor logged."""

from __future__ import annotations

import json
import os
import socket
import threading
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import ClassVar

import pytest

from harness.seaweedfs import REGION, SeaweedServer
from sa1b.cdn.server import CDNServer
from tests.conftest import aws_environment

from .conftest import Result, run_cli

pytestmark = pytest.mark.xdist_group("seaweedfs")
"""With pytest-xdist, one worker runs the tests on SeaweedFS in turn: one server (eight
ports, a few hundred MB) at a time, not one a worker."""

BUCKET = "sa1b-test"
SETTINGS = ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_ENDPOINT_URL")


def closed_endpoint() -> str:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{sock.getsockname()[1]}"


def keys(server: SeaweedServer) -> str:
    return f"aws_access_key_id = {server.access_key}\naws_secret_access_key = {server.secret_key}\n"


def environment_only(server: SeaweedServer, folder: Path) -> dict[str, str]:
    return server.environment


def named_profile(server: SeaweedServer, folder: Path) -> dict[str, str]:
    """A profile whose config names the endpoint, its keys in the credentials file."""
    (folder / "config").write_text(
        f"[profile store]\nregion = {REGION}\nendpoint_url = {server.endpoint_url}\n"
    )
    (folder / "credentials").write_text(f"[store]\n{keys(server)}")
    return {"AWS_PROFILE": "store"}


def default_profile(server: SeaweedServer, folder: Path) -> dict[str, str]:
    """No AWS_PROFILE: the files' default profile."""
    (folder / "config").write_text(
        f"[default]\nregion = {REGION}\nendpoint_url = {server.endpoint_url}\n"
    )
    (folder / "credentials").write_text(f"[default]\n{keys(server)}")
    return {}


def keys_in_the_config_file(server: SeaweedServer, folder: Path) -> dict[str, str]:
    (folder / "config").write_text(
        f"[profile store]\nregion = {REGION}\nendpoint_url = {server.endpoint_url}\n{keys(server)}"
    )
    return {"AWS_PROFILE": "store"}


def variable_endpoint_over_the_profile_s(server: SeaweedServer, folder: Path) -> dict[str, str]:
    """AWS_ENDPOINT_URL wins over the profile's endpoint_url (here a closed port)."""
    (folder / "config").write_text(
        f"[profile store]\nregion = {REGION}\nendpoint_url = {closed_endpoint()}\n"
    )
    (folder / "credentials").write_text(f"[store]\n{keys(server)}")
    return {"AWS_PROFILE": "store", "AWS_ENDPOINT_URL": server.endpoint_url}


def profile_keys_with_variable_endpoint(server: SeaweedServer, folder: Path) -> dict[str, str]:
    (folder / "credentials").write_text(f"[store]\n{keys(server)}")
    return {"AWS_PROFILE": "store", "AWS_ENDPOINT_URL": server.endpoint_url, "AWS_REGION": REGION}


Setup = Callable[[SeaweedServer, Path], dict[str, str]]
WAYS: list[Setup] = [
    environment_only,
    named_profile,
    default_profile,
    keys_in_the_config_file,
    variable_endpoint_over_the_profile_s,
    profile_keys_with_variable_endpoint,
]


def plan(links: Path, folder: Path, variables: dict[str, str], where: str) -> Result:
    """``sa1b plan`` with these AWS variables alone, the shared files in ``folder``
    (missing ones are simply absent), logging at debug into ``folder/plan.log``."""
    files = {
        "AWS_CONFIG_FILE": str(folder / "config"),
        "AWS_SHARED_CREDENTIALS_FILE": str(folder / "credentials"),
    }
    # run_cli starts from this process's environment: credentials or an endpoint of its own
    # are blanked (botocore reads an empty one as unset).
    blanks = {name: "" for name in os.environ if name in SETTINGS}
    return run_cli(
        "plan", links, "-o", where, "--probe-seconds", "0", "--log-file", folder / "plan.log",
        "--log-level", "debug", env=aws_environment({**blanks, **files, **variables}),
    )  # fmt: skip


@pytest.mark.parametrize("setup", WAYS, ids=[way.__name__ for way in WAYS])
def test_plan_reaches_the_bucket_with_credentials_set_the_usual_way(
    setup: Setup, seaweedfs: SeaweedServer, links: Path, tmp_path: Path, s3_prefix: str
) -> None:
    variables = setup(seaweedfs, tmp_path)
    result = plan(links, tmp_path, variables, f"s3://{BUCKET}/{s3_prefix}")
    assert result.returncode == 0, result.output
    assert f"  bucket          reachable and writable ({seaweedfs.endpoint_url})" in result.stdout
    shown = result.output + (tmp_path / "plan.log").read_text()
    assert seaweedfs.secret_key not in shown
    assert seaweedfs.access_key not in shown


def test_a_profile_that_does_not_exist_is_one_line(
    seaweedfs: SeaweedServer, cdn: CDNServer, links: Path, tmp_path: Path
) -> None:
    named_profile(seaweedfs, tmp_path)
    result = plan(links, tmp_path, {"AWS_PROFILE": "stroe"}, f"s3://{BUCKET}/x")
    assert result.returncode == 2, result.output
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert errors == ["error: s3://sa1b-test: no AWS profile named 'stroe'"]
    assert "hint: check AWS_PROFILE" in result.stderr
    assert "Traceback" not in result.output
    assert cdn.requests == []
    assert seaweedfs.secret_key not in result.output + (tmp_path / "plan.log").read_text()


class InstanceMetadata(BaseHTTPRequestHandler):
    """EC2's instance metadata service as botocore asks it (IMDSv2): a token, the role's
    name, then the role's temporary credentials (here the server's keys)."""

    credentials: ClassVar[dict[str, str]]  # set by the fixture, per test
    asked: ClassVar[list[str]]

    def do_PUT(self) -> None:
        self._send(b"imds-token" if self.path == "/latest/api/token" else None)

    def do_GET(self) -> None:
        roles = "/latest/meta-data/iam/security-credentials/"
        if self.headers.get("X-aws-ec2-metadata-token") != "imds-token":
            self._send(None)
        elif self.path == roles:
            self._send(b"sa1b-role")
        elif self.path == f"{roles}sa1b-role":
            self._send(json.dumps(self.credentials).encode())
        else:
            self._send(None)

    def _send(self, body: bytes | None) -> None:
        self.asked.append(f"{self.command} {self.path}")
        self.send_response(200 if body is not None else 404)
        self.send_header("Content-Length", str(len(body or b"")))
        self.end_headers()
        self.wfile.write(body or b"")

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def instance_metadata(seaweedfs: SeaweedServer) -> Iterator[tuple[str, list[str]]]:
    """A loopback instance metadata service handing out the server's keys as a role's;
    its URL and the requests it was asked."""
    expires = datetime.now(UTC) + timedelta(hours=1)
    handler = type(
        "Handler",
        (InstanceMetadata,),
        {
            "credentials": {
                "Code": "Success",
                "Type": "AWS-HMAC",
                "AccessKeyId": seaweedfs.access_key,
                "SecretAccessKey": seaweedfs.secret_key,
                # Empty: SeaweedFS looks a request with a session token up among the
                # credentials its own STS issued, and refuses its static keys with one.
                "Token": "",
                "Expiration": expires.strftime("%Y-%m-%dT%H:%M:%SZ"),
            },
            "asked": [],
        },
    )
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/", handler.asked
    finally:
        server.shutdown()
        server.server_close()


def test_plan_reaches_the_bucket_with_an_instance_role(
    instance_metadata: tuple[str, list[str]],
    seaweedfs: SeaweedServer,
    links: Path,
    tmp_path: Path,
    s3_prefix: str,
) -> None:
    url, asked = instance_metadata
    variables = {
        "AWS_EC2_METADATA_DISABLED": "false",
        "AWS_EC2_METADATA_SERVICE_ENDPOINT": url,
        "AWS_ENDPOINT_URL": seaweedfs.endpoint_url,
        "AWS_REGION": REGION,
    }
    result = plan(links, tmp_path, variables, f"s3://{BUCKET}/{s3_prefix}")
    assert result.returncode == 0, result.output
    assert f"  bucket          reachable and writable ({seaweedfs.endpoint_url})" in result.stdout
    assert "GET /latest/meta-data/iam/security-credentials/sa1b-role" in asked
    shown = result.output + (tmp_path / "plan.log").read_text()
    assert seaweedfs.secret_key not in shown
