"""``-o`` through the real CLI: what sa1b cannot write is refused in one line (exit 2, no
folder named after a scheme), and ``sa1b plan -o s3://...`` checks a real bucket
(SeaweedFS on loopback) with the credentials a user would set, never showing the secret."""

from __future__ import annotations

import io
import json
import os
import socket
import tarfile
from pathlib import Path

import pytest

from harness.seaweedfs import SeaweedServer
from sa1b.cdn.server import CDNServer
from tests.conftest import aws_environment

from .conftest import Result, run_cli

pytestmark = pytest.mark.xdist_group("seaweedfs")
"""With pytest-xdist, one worker runs the tests on SeaweedFS in turn: one server (eight
ports, a few hundred MB) at a time, not one a worker."""

# -o given: what the error line says
NOT_WRITABLE = {
    "gs://bucket/sa1b": "cannot write to gs://",
    "az://container/sa1b": "cannot write to az://",
    "hf://datasets/me/sa1b": "cannot write to hf://",
    "https://host/sa1b": "cannot write to https://",
    "s3:/bucket/sa1b": "not an S3 URL",
    "s3//bucket/sa1b": "not an S3 URL",
    "s3://Not_A_Bucket/x": "is not a bucket name",
}


def tar_of(members: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.GNU_FORMAT) as archive:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            archive.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


def error_lines(result: Result) -> list[str]:
    return [line for line in result.stderr.splitlines() if line.startswith("error:")]


def assert_refused_in_one_line(result: Result, says: str) -> None:
    assert result.returncode == 2, result.output
    assert len(error_lines(result)) == 1, result.output
    assert says in error_lines(result)[0]
    assert "Traceback" not in result.output
    assert "usage:" not in result.output


@pytest.mark.parametrize(("out", "says"), NOT_WRITABLE.items(), ids=NOT_WRITABLE.keys())
def test_an_output_sa1b_cannot_write_is_refused_and_nothing_is_made(
    out: str, says: str, links: Path, tmp_path: Path
) -> None:
    work = tmp_path / "work"
    work.mkdir()
    result = run_cli("download", links, "-o", out, "--no-extract", cwd=work)
    assert_refused_in_one_line(result, says)
    assert list(work.iterdir()) == []  # no folder 'gs:', 's3:' or 's3'


@pytest.mark.parametrize("command", ["status", "verify", "index"])
def test_a_command_that_reads_says_it_cannot_read_another_scheme(
    command: str, tmp_path: Path
) -> None:
    result = run_cli(command, "gs://bucket/sa1b", cwd=tmp_path)
    assert_refused_in_one_line(result, "sa1b cannot read gs://")
    assert "write" not in result.output
    assert list(tmp_path.iterdir()) == []


def test_a_local_folder_named_like_a_scheme_is_written_with_dot_slash(
    cdn: CDNServer, links: Path, tmp_path: Path
) -> None:
    result = run_cli(
        "download", links, "-o", "./gs:data", "--shards", "0", "--no-extract", cwd=tmp_path
    )
    assert result.returncode == 0, result.output
    assert (tmp_path / "gs:data" / "tars" / "sa_000000.tar").is_file()


@pytest.mark.parametrize("command", ["index"])
def test_s3_where_it_is_not_supported_yet_says_so(
    command: str, links: Path, tmp_path: Path
) -> None:
    result = run_cli(command, "s3://sa1b-test/x", cwd=tmp_path)
    assert_refused_in_one_line(result, f"sa1b {command} cannot use an s3:// output yet")
    assert "s3://sa1b-test/x" in error_lines(result)[0]
    assert list(tmp_path.iterdir()) == [links]  # no folder 's3:' beside the links file


def test_plan_checks_the_bucket_and_shows_no_disk_figure(
    seaweedfs: SeaweedServer, cdn: CDNServer, links: Path, tmp_path: Path, s3_prefix: str
) -> None:
    env = aws_environment(seaweedfs.environment)
    where = f"s3://sa1b-test/{s3_prefix}"
    log = tmp_path / "plan.log"
    text = run_cli(
        "plan", links, "-o", where, "--probe-seconds", "0", "--log-file", log,
        "--log-level", "debug", env=env, cwd=tmp_path,
    )  # fmt: skip
    assert text.returncode == 0, text.output
    assert f"into {where}" in text.stdout
    assert f"  bucket          reachable and writable ({seaweedfs.endpoint_url})" in text.stdout
    assert not [line for line in text.stdout.splitlines() if line.startswith("  disk")]
    assert "ok: the bucket takes writes" in text.stdout
    assert "server sizes    18.0 MiB (3 of 3 answered)" in text.stdout
    as_json = run_cli("plan", links, "-o", where, "--probe-seconds", "0", "--json", env=env)
    assert as_json.returncode == 0, as_json.output
    plan = json.loads(as_json.stdout)
    assert plan["bucket"] == {"url": where, "endpoint": seaweedfs.endpoint_url, "writable": True}
    assert plan["free_bytes"] is None and plan["fits"] is None and plan["ok"] is True
    # The probe is gone, nothing else was written, and no secret was shown or logged.
    listed = seaweedfs.client().list_objects_v2(Bucket="sa1b-test", Prefix=s3_prefix)
    assert listed.get("Contents", []) == []
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(["plan.log", links.name])
    for shown in (text.output, as_json.output, log.read_text()):
        assert seaweedfs.secret_key not in shown


def test_plan_with_a_missing_bucket_says_so_before_asking_the_cdn(
    seaweedfs: SeaweedServer, cdn: CDNServer, links: Path
) -> None:
    env = aws_environment(seaweedfs.environment)
    result = run_cli("plan", links, "-o", "s3://no-such-bucket/x", env=env)
    assert_refused_in_one_line(result, "s3://no-such-bucket: no such bucket")
    assert "hint: create the bucket first" in result.stderr
    assert result.stdout == ""
    assert cdn.requests == []  # the bucket is checked first


def test_plan_with_a_wrong_secret_says_so_and_never_shows_it(
    seaweedfs: SeaweedServer, cdn: CDNServer, links: Path
) -> None:
    wrong = "not-the-secret-" + "q" * 24
    env = aws_environment({**seaweedfs.environment, "AWS_SECRET_ACCESS_KEY": wrong})
    result = run_cli("plan", links, "-o", "s3://sa1b-test/x", env=env)
    assert_refused_in_one_line(result, "s3://sa1b-test: the credentials are refused")
    assert "AWS_SECRET_ACCESS_KEY" in result.stderr  # the hint says what to set
    assert wrong not in result.output and seaweedfs.secret_key not in result.output


def test_plan_without_credentials_says_where_they_come_from(
    seaweedfs: SeaweedServer, cdn: CDNServer, links: Path
) -> None:
    variables = {"AWS_ENDPOINT_URL": seaweedfs.endpoint_url, "AWS_REGION": "us-east-1"}
    result = run_cli("plan", links, "-o", "s3://sa1b-test/x", env=aws_environment(variables))
    assert_refused_in_one_line(result, "s3://sa1b-test: no usable credentials")
    assert "AWS_PROFILE" in result.stderr


def test_plan_without_botocore_says_which_extra_to_install(links: Path, tmp_path: Path) -> None:
    # A Python where botocore cannot be imported, as after a plain `pip install sa1b`.
    shadow = tmp_path / "no-botocore" / "botocore"
    shadow.mkdir(parents=True)
    (shadow / "__init__.py").write_text(
        "raise ModuleNotFoundError(\"No module named 'botocore'\", name='botocore')\n"
    )
    path = os.pathsep.join([str(shadow.parent), os.environ.get("PYTHONPATH", "")])
    env = aws_environment({"PYTHONPATH": path})
    result = run_cli("plan", links, "-o", "s3://sa1b-test/x", env=env)
    assert_refused_in_one_line(result, "s3:// outputs need botocore (botocore is not installed)")
    assert "pip install 'sa1b[s3]'" in result.stderr


def test_plan_with_a_store_that_cannot_be_reached(links: Path) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        closed = sock.getsockname()[1]
    variables = {
        "AWS_ACCESS_KEY_ID": "SA1BTESTKEY",
        "AWS_SECRET_ACCESS_KEY": "not-a-real-secret-0123456789",
        "AWS_ENDPOINT_URL": f"http://127.0.0.1:{closed}",
        "AWS_REGION": "us-east-1",
    }
    result = run_cli("plan", links, "-o", "s3://sa1b-test/x", env=aws_environment(variables))
    assert result.returncode == 1, result.output  # a problem found, not bad input
    assert error_lines(result) == [
        "error: s3://sa1b-test: the connection to the store failed (HeadBucket) "
        "(EndpointConnectionError)"
    ]
    assert "hint: check the endpoint (AWS_ENDPOINT_URL" in result.stderr
    assert "not-a-real-secret" not in result.output


def test_a_shard_refused_for_an_unsafe_member_says_what_the_bucket_keeps(
    seaweedfs: SeaweedServer, tmp_path: Path, s3_prefix: str
) -> None:
    served = tmp_path / "cdn"
    served.mkdir()
    good = {"sa_1.jpg": b"\xff\xd8" + b"1" * 600, "sa_1.json": b'{"image": {"image_id": 1}}'}
    (served / "sa_000000.tar").write_bytes(tar_of({**good, "../../escaped.jpg": b"evil"}))
    links = tmp_path / "links.tsv"
    with CDNServer(root=served) as cdn:
        cdn.write_links_file(links)
        result = run_cli(
            "download", links, "-o", f"s3://sa1b-test/{s3_prefix}", "--no-extract",
            env=aws_environment(seaweedfs.environment), cwd=tmp_path,
        )  # fmt: skip
    assert result.returncode == 1, result.output
    assert "sa_000000.tar  failed" in result.output
    assert "../../escaped.jpg" in result.output
    hints = [line for line in result.output.splitlines() if line.startswith("  hint:")]
    assert hints == [
        "  hint: the shard is not an SA-1B shard as published; its upload was aborted: "
        "nothing of it is kept in the bucket"
    ], result.output
    client = seaweedfs.client()
    assert (
        client.list_objects_v2(Bucket="sa1b-test", Prefix=f"{s3_prefix}/sa_").get("Contents", [])
        == []
    )
    pending = client.list_multipart_uploads(Bucket="sa1b-test", Prefix=s3_prefix)
    assert pending.get("Uploads", []) == []
