"""End to end: links that redirect to the CDN, and the demo (``sa1b demo``, bare ``download``)."""

from __future__ import annotations

import socketserver
import subprocess
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from sa1b.cdn.server import CDNServer
from sa1b.cdn.synth import ShardInfo

from .conftest import assert_extracted, assert_identical, md5, run_cli


class _Redirector(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, location_for: Callable[[str], str]) -> None:
        self.location_for = location_for
        self.paths: list[str] = []
        super().__init__(("127.0.0.1", 0), _RedirectHandler)

    def server_bind(self) -> None:
        # HTTPServer.server_bind resolves the host name, which can hang without DNS.
        socketserver.TCPServer.server_bind(self)


class _RedirectHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _Redirector

    def do_GET(self) -> None:
        self.server.paths.append(self.path)
        self.send_response(302)
        self.send_header("Location", self.server.location_for(self.path))
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, format: str, *args: Any) -> None:
        pass


@contextmanager
def redirector(location_for: Callable[[str], str]) -> Iterator[_Redirector]:
    """An HTTP server on 127.0.0.1 answering every GET with 302 to ``location_for(path)``."""
    server = _Redirector(location_for)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


def test_links_that_redirect_to_the_cdn_are_followed(
    cdn: CDNServer, shards: list[ShardInfo], tmp_path: Path
) -> None:
    def signed_url_for(path: str) -> str:
        return cdn.url_for(path.partition("?")[0].rsplit("/", 1)[-1])

    with redirector(signed_url_for) as server:
        base = f"http://127.0.0.1:{server.server_address[1]}"
        links = tmp_path / "links.tsv"
        rows = [f"{s.name}\t{base}/dl/{s.name}?token=abc" for s in shards]
        links.write_text("file_name\tcdn_link\n" + "\n".join(rows) + "\n")
        out = tmp_path / "out"
        result = run_cli("download", "--no-extract", links, "-o", out, "--connections", "8")
        assert result.returncode == 0, result.output
        assert_identical(out, shards)
        # Every request went through the redirector, and the CDN served the bytes.
        requested = {path.partition("?")[0] for path in server.paths}
        assert requested == {f"/dl/{s.name}" for s in shards}
        assert cdn.requests
        assert {r.name for r in cdn.requests} == {s.name for s in shards}
        assert all(r.status in (200, 206) for r in cdn.requests)


def _demo_shards(out: Path) -> list[ShardInfo]:
    return [
        ShardInfo(p.name, p, p.stat().st_size, md5(p), "")
        for p in sorted((out / "cdn").glob("*.tar"))
    ]


def test_demo_downloads_and_extracts_the_shards_it_made(tmp_path: Path) -> None:
    out = tmp_path / "demo"
    args = ("--count", "2", "--shard-size", "3M", "--rate", "50M", "-q")
    result = run_cli("demo", "-o", out, *args, timeout=60)
    assert result.returncode == 0, result.output
    made = _demo_shards(out)
    assert [s.name for s in made] == ["sa_000000.tar", "sa_000001.tar"]
    assert all(s.size == 3 * 1024 * 1024 for s in made)
    assert_extracted(out / "data", made)
    assert "2/2 files done" in result.output


def test_a_second_demo_starts_afresh(tmp_path: Path) -> None:
    out = tmp_path / "demo"
    args = ("--count", "1", "--shard-size", "2M", "--rate", "50M")
    run_cli("demo", "-o", out, *args, "-q", timeout=60)
    again = run_cli("demo", "-o", out, *args, timeout=60)
    assert again.returncode == 0, again.output
    assert "1/1 files done; fetched 2.0 MiB" in again.output
    assert "demo: making 1 synthetic shard of 2.0 MiB" in again.output
    assert "1 file selected, 1 still to fetch" in again.output


def test_the_demo_says_where_it_wrote_and_what_to_try_next(tmp_path: Path) -> None:
    """Run by ./run, whose .venv is not on PATH: the commands it suggests run as printed."""
    out = tmp_path / "demo"
    args = ("--count", "1", "--shard-size", "2M", "--rate", "50M")
    shown = run_cli("demo", "-o", out, *args, env={"PATH": "/usr/bin:/bin"}, timeout=60)
    assert shown.returncode == 0, shown.output
    assert f"demo: the shards are extracted in {out / 'data'}" in shown.output
    lines = shown.output.splitlines()
    tries = [line.split("    # ")[0] for line in lines[lines.index("try next:") + 1 :]]
    said = {}
    for command in tries:
        done = subprocess.run(
            ["bash", "-c", command], check=False, capture_output=True, text=True, timeout=60
        )
        assert done.returncode == 0, (command, done.stdout + done.stderr)
        said[command.split()[1]] = done.stdout
    assert "sa_000000.tar  extracted" in said["status"] and "sa_000000.tar  ok" in said["verify"]
    assert said["index"].startswith("shard\tmember\toffset")
    assert "samples; the first, sa_" in said["-c"]


def test_download_without_a_links_file_is_an_error_not_the_demo(tmp_path: Path) -> None:
    out = tmp_path / "SA-1B"
    result = run_cli("download", "-o", out, "--shards", "0")
    assert result.returncode == 2, result.output
    assert "a links file is needed" in result.output and "sa1b demo" in result.output
    assert not out.exists()


def test_an_unusable_redirect_fails_the_file_cleanly(
    shards: list[ShardInfo], tmp_path: Path
) -> None:
    with redirector(lambda path: "/no such/file.tar") as server:
        base = f"http://127.0.0.1:{server.server_address[1]}"
        links = tmp_path / "links.tsv"
        links.write_text(f"{shards[0].name}\t{base}/dl/{shards[0].name}\n")
        result = run_cli(
            "download", "--no-extract", links, "-o", tmp_path / "out", "--retries", "1"
        )
    assert result.returncode == 1, result.output
    assert "Traceback" not in result.output
    assert "interrupted" not in result.output
    assert shards[0].name in result.output


def test_a_demo_never_deletes_a_folder_it_did_not_make(tmp_path: Path) -> None:
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "precious.txt").write_text("mine")
    result = run_cli("demo", "-o", tmp_path, "--count", "1", "--shard-size", "1M", "-q")
    assert result.returncode == 2, result.output
    assert "is not a demo's" in result.output
    assert (tmp_path / "data" / "precious.txt").read_text() == "mine"
