"""End to end: what the transport accepts and refuses, through the real ``sa1b`` process.

Each server here is a scripted one (``tests/scripted.py``) that serves a real shard with one
misbehaviour; the run must either bring the shard out byte for byte or refuse it with a
plain message, exit 1 and publish nothing.
"""

from __future__ import annotations

import re
import signal
import subprocess
from pathlib import Path

import pytest

from harness.certs import CertificatePaths
from sa1b.cdn.faults import Fault
from sa1b.cdn.server import CDNServer
from sa1b.cdn.synth import ShardInfo, make_dataset
from tests.scripted import (
    Peer,
    chunked,
    ranged,
    redirecting,
    serve_ranges,
    server_context,
    serving,
)
from tests.waiting import wait_for

from .conftest import assert_identical, run_cli, start_cli

pytestmark = pytest.mark.timeout(60)

MiB = 1024 * 1024


def links_to(base: str, shard: ShardInfo, path: Path) -> Path:
    path.write_text(
        f"file_name\tcdn_link\n{shard.name}\t{base}/{shard.name}?oh=00_sig&oe=7FFFFFFF\n"
    )
    return path


def download(links: Path, out: Path, *args: str, env: dict[str, str] | None = None) -> str:
    result = run_cli("download", "--no-extract", links, "-o", out, *args, env=env)
    return f"{result.returncode}\n{result.output}"


def test_chunked_ranges_are_decoded_never_written_framed(
    shards: list[ShardInfo], tmp_path: Path
) -> None:
    shard, data = shards[0], shards[0].path.read_bytes()

    def chunked_206(data: bytes, start: int, end: int) -> bytes:
        head = (
            "HTTP/1.1 206 Partial Content\r\nTransfer-Encoding: chunked\r\n"
            f'Content-Range: bytes {start}-{end - 1}/{len(data)}\r\nETag: "v1"\r\n\r\n'
        )
        return head.encode() + chunked(data[start:end], size=10_000)

    with serving(default=serve_ranges(data, chunked_206)) as server:
        outcome = download(links_to(server.base, shard, tmp_path / "l.tsv"), tmp_path / "out")
    assert outcome.startswith("0\n"), outcome
    assert_identical(tmp_path / "out", [shard])


def test_early_hints_before_every_answer_are_skipped(
    shards: list[ShardInfo], tmp_path: Path
) -> None:
    shard, data = shards[0], shards[0].path.read_bytes()

    def hinted(data: bytes, start: int, end: int) -> bytes:
        return b"HTTP/1.1 103 Early Hints\r\nLink: </a>; rel=preload\r\n\r\n" + ranged(
            data, start, end
        )

    with serving(default=serve_ranges(data, hinted)) as server:
        outcome = download(links_to(server.base, shard, tmp_path / "l.tsv"), tmp_path / "out")
    assert outcome.startswith("0\n"), outcome
    assert_identical(tmp_path / "out", [shard])


def test_a_body_in_another_coding_is_refused(shards: list[ShardInfo], tmp_path: Path) -> None:
    shard, data = shards[0], shards[0].path.read_bytes()

    def gzipped(data: bytes, start: int, end: int) -> bytes:
        return ranged(data, start, end, "Content-Encoding: gzip")

    with serving(default=serve_ranges(data, gzipped)) as server:
        links = links_to(server.base, shard, tmp_path / "l.tsv")
        outcome = download(links, tmp_path / "out", "--retries", "1")
    assert outcome.startswith("1\n"), outcome
    assert "'gzip'-encoded body" in outcome
    assert not (tmp_path / "out" / "tars").exists()


def test_https_to_http_redirect_is_refused(
    shards: list[ShardInfo], certificates: CertificatePaths, tmp_path: Path
) -> None:
    shard, data = shards[0], shards[0].path.read_bytes()
    with serving(default=serve_ranges(data)) as plain:
        downgrade = redirecting(f"{plain.base}/{shard.name}")
        with serving(default=downgrade, tls=server_context(certificates)) as secure:
            links = links_to(secure.base, shard, tmp_path / "l.tsv")
            outcome = download(links, tmp_path / "out", "--ca-bundle", str(certificates.ca))
        assert plain.requests == []
    assert outcome.startswith("1\n"), outcome
    assert "not followed" in outcome
    assert "00_sig" not in outcome


def test_https_to_https_redirect_is_followed_with_tls_verified(
    shards: list[ShardInfo], certificates: CertificatePaths, tmp_path: Path
) -> None:
    shard, data = shards[0], shards[0].path.read_bytes()
    with serving(default=serve_ranges(data), tls=server_context(certificates)) as target:
        move = redirecting(f"{target.base}/{shard.name}", "307 Temporary Redirect")
        with serving(default=move, tls=server_context(certificates)) as first:
            links = links_to(first.base, shard, tmp_path / "l.tsv")
            outcome = download(links, tmp_path / "out", env={"SSL_CERT_FILE": str(certificates.ca)})
    assert outcome.startswith("0\n"), outcome
    assert_identical(tmp_path / "out", [shard])


def dripping_head(peer: Peer) -> None:
    peer.request()
    for byte in b"HTTP/1.1 206 Partial Content\r\n" + b"X-Drip: " + b"a" * 10_000:
        peer.send(bytes([byte]))
        if peer.server.stopped.wait(0.2):
            return


def test_a_dripping_server_never_holds_the_run(shards: list[ShardInfo], tmp_path: Path) -> None:
    with serving(default=dripping_head) as server:
        links = links_to(server.base, shards[0], tmp_path / "l.tsv")
        # a head that drips for half an hour: only the head deadline ends this run
        outcome = download(links, tmp_path / "out", "--head-timeout", "1", "--retries", "2")
    assert outcome.startswith("1\n"), outcome
    assert "no complete response head within 1 s" in outcome


def test_a_stop_reaches_a_request_still_waiting_for_its_head(
    shards: list[ShardInfo], tmp_path: Path
) -> None:
    with serving(default=dripping_head) as server:
        links = links_to(server.base, shards[0], tmp_path / "l.tsv")
        # No deadline ends the request for ten minutes: only the stop can.
        args = ("download", "--no-extract", links, "-o", tmp_path / "out", "--head-timeout", "600")
        process = start_cli(*args, stderr=subprocess.STDOUT)
        wait_for(lambda: server.requests, timeout=60, message="the request", process=process)
        process.send_signal(signal.SIGTERM)
        output, _ = process.communicate(timeout=60)  # a hang guard, far below ten minutes
    assert process.returncode == 130, output
    assert "run the same command to resume" in output


def test_a_missing_ca_bundle_is_an_input_error(shards: list[ShardInfo], tmp_path: Path) -> None:
    links = links_to("https://127.0.0.1:9", shards[0], tmp_path / "l.tsv")
    outcome = download(links, tmp_path / "out", "--ca-bundle", str(tmp_path / "nope.pem"))
    assert outcome.startswith("2\n"), outcome
    assert "nope.pem: no such CA bundle" in outcome
    assert "Traceback" not in outcome


def test_credentials_in_a_link_reach_neither_host_header_nor_state_nor_screen(
    shards: list[ShardInfo], tmp_path: Path
) -> None:
    shard, data = shards[0], shards[0].path.read_bytes()
    with serving(default=serve_ranges(data)) as server:
        base = server.base.replace("http://", "http://ann:s3cret@")
        outcome = download(
            links_to(base, shard, tmp_path / "l.tsv"),
            tmp_path / "out",
            "--log-file",
            str(tmp_path / "log"),
        )
        requests = b"".join(server.requests).decode("latin-1")
    assert outcome.startswith("0\n"), outcome
    assert_identical(tmp_path / "out", [shard])
    assert f"\r\nHost: 127.0.0.1:{server.port}\r\n" in requests
    state = b"".join(p.read_bytes() for p in (tmp_path / "out" / ".sa1b").glob("state.db*"))
    assert b"s3cret" not in state and b"ann:" not in state
    assert "s3cret" not in outcome + (tmp_path / "log").read_text()


@pytest.mark.xdist_group("torture")  # growth needs spare CPU: not beside the torture's runs
def test_connections_grow_where_each_one_is_capped(tmp_path: Path) -> None:
    """A server that caps every connection rewards more of them: the count grows past
    the 32 it starts with, twice. The shard is 256 MiB: a request in flight is never cut
    (segments.py), so the work a new connection finds is what no request has asked for
    yet, and 96 MiB in first requests of 4 MiB leaves none for a 33rd."""
    (shard,) = make_dataset(
        tmp_path / "cdn", shard_indices=[0], shard_size=256 * MiB, seed=3, extras=False
    )
    with CDNServer(root=shard.path.parent, rate_per_connection=256 * 1024) as server:
        links = tmp_path / "links.tsv"
        server.write_links_file(links)
        log = tmp_path / "log"
        outcome = download(links, tmp_path / "out", "--log-file", str(log), "--log-level", "debug")
    assert outcome.startswith("0\n"), outcome
    assert_identical(tmp_path / "out", [shard])
    changes = [
        (int(a), int(b)) for a, b in re.findall(r"connections: (\d+) -> (\d+)", log.read_text())
    ]
    # 64 doubled, or leapt to 256 after a step that paid in full (net/governor.py)
    assert changes[:2] in ([(32, 64), (64, 128)], [(32, 64), (64, 256)]), changes


def test_connections_back_off_when_the_server_pushes_back(
    cdn: CDNServer, links: Path, shards: list[ShardInfo], tmp_path: Path
) -> None:
    cdn.add_fault("*", Fault("throttle", retry_after=0, times=4))
    log = tmp_path / "log"
    outcome = download(links, tmp_path / "out", "--log-file", str(log))
    assert outcome.startswith("0\n"), outcome
    assert_identical(tmp_path / "out", shards)
    assert "the server pushes back: connections 32 -> 24" in log.read_text()


def test_a_fixed_count_is_kept_whatever_the_server_says(
    cdn: CDNServer, links: Path, shards: list[ShardInfo], tmp_path: Path
) -> None:
    cdn.add_fault("*", Fault("throttle", retry_after=0, times=4))
    log = tmp_path / "log"
    outcome = download(
        links,
        tmp_path / "out",
        "--connections",
        "5",
        "--log-file",
        str(log),
        "--log-level",
        "debug",
    )
    assert outcome.startswith("0\n"), outcome
    assert_identical(tmp_path / "out", shards)
    text = log.read_text()
    assert "connections:" not in text and "pushes back" not in text
