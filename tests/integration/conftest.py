"""Fixtures for end-to-end tests: real servers on loopback, the real CLI in a subprocess."""

from __future__ import annotations

import hashlib
import os
import re
import subprocess
import sys
import tarfile
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from harness.certs import CertificatePaths
from harness.nginx import NginxServer
from sa1b.cdn.server import CDNServer
from sa1b.cdn.synth import ShardInfo, make_dataset
from tests.scripted import server_context
from tests.wdstar import wds_tar

SHARD_SIZE = 6 * 1024 * 1024
SHARDS = 3

LOOP_DEVICES = pytest.mark.xdist_group("loop-devices")
"""The tests that mount loop devices, run in turn by one worker under pytest-xdist: the
throttled disk holds its dirty bytes for seconds, and a ``sync`` or a count of a device's
writes beside it would wait on it or see its traffic."""


@dataclass
class Result:
    returncode: int
    stdout: str
    stderr: str

    @property
    def output(self) -> str:
        return self.stdout + self.stderr


def sa1b_command(*args: str | os.PathLike[str]) -> list[str]:
    return [sys.executable, "-m", "sa1b", *map(str, args)]


def start_cli(*args: str | os.PathLike[str], **popen: Any) -> subprocess.Popen[Any]:
    """Start ``sa1b ARGS`` as a real process, to signal or kill it mid-run (its output
    piped as text unless ``popen`` says otherwise).

    SIGINT is set back to its default for it (``env --default-signal``): a test runner
    started in the background by a non-interactive shell ignores SIGINT, and a child
    would inherit that and never see a Ctrl-C.
    """
    command = ["env", "--default-signal=INT", *sa1b_command(*args)]
    popen = {"stdout": subprocess.PIPE, "stderr": subprocess.PIPE, "text": True, **popen}
    return subprocess.Popen(command, **popen)


def run_cli(
    *args: str | os.PathLike[str],
    timeout: float = 120,
    env: dict[str, str] | None = None,
    cwd: Path | None = None,
) -> Result:
    """Run ``sa1b ARGS`` as a real process (in ``cwd``, if given); never a terminal, so
    output is plain.

    Proxy variables of the machine are dropped (tests reach loopback directly);
    ``env`` adds variables of the test's own.
    """
    environment = {k: v for k, v in os.environ.items() if not k.lower().endswith("_proxy")}
    env = {**environment, "COLUMNS": "200", **(env or {})}
    done = subprocess.run(
        sa1b_command(*args),
        check=False,
        capture_output=True,
        text=True,
        timeout=timeout,
        env=env,
        cwd=cwd,
    )
    return Result(done.returncode, done.stdout, done.stderr)


@contextmanager
def tmpfs(folder: Path, mib: int, *, inodes: int | None = None) -> Iterator[Path]:
    """A tmpfs of ``mib`` MiB (and room for ``inodes`` files and folders) mounted at
    ``folder`` (made here) while the block runs: a small disk of the test's own. Needs
    root, as CI is."""
    folder.mkdir()
    options = f"size={mib}m" + (f",nr_inodes={inodes}" if inodes else "")
    subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", folder], check=True)
    try:
        yield folder
    finally:
        subprocess.run(["umount", "-l", folder], check=True)


@contextmanager
def loop_disk(
    folder: Path, mib: int, kind: str, *, sector_size: int = 512
) -> Iterator[tuple[Path, str]]:
    """A filesystem of type ``kind`` (``ext2``: no ``fallocate``; ``ext4``; ``xfs``, of
    300 MiB at least) of ``mib`` MiB on a loop device of ``sector_size``-byte sectors,
    mounted at ``folder`` (made here) while the block runs: its mount point and device.
    Its blocks are 4 KiB, as on a real disk. Skips where it cannot be made (mounting needs
    root, as CI is; ``scripts/setup --dev`` installs ``mkfs.xfs``)."""
    if os.geteuid() != 0:
        pytest.skip("mounting a loop device needs root")
    image = folder.with_suffix(".img")
    with open(image, "wb") as handle:
        handle.truncate(mib * 1024 * 1024)
    device = ""
    try:
        try:
            blocks = ["-f", "-b", "size=4096"] if kind == "xfs" else ["-F", "-b", "4096"]
            subprocess.run([f"mkfs.{kind}", "-q", *blocks, image], check=True, capture_output=True)
            found = subprocess.run(
                ["losetup", "--find", "--show", "--sector-size", str(sector_size), image],
                check=True,
                capture_output=True,
                text=True,
            )
            device = found.stdout.strip()
            folder.mkdir()
            subprocess.run(["mount", "-t", kind, device, folder], check=True, capture_output=True)
        except (OSError, subprocess.CalledProcessError) as error:
            pytest.skip(f"cannot mount an {kind} loop device here: {error}")
        try:
            yield folder, device
        finally:
            subprocess.run(["umount", folder], check=True)
    finally:
        if device:
            subprocess.run(["losetup", "-d", device], check=False)
        image.unlink()


def md5(path: Path) -> str:
    return hashlib.md5(path.read_bytes()).hexdigest()


def assert_identical(out: Path, shards: Sequence[ShardInfo]) -> None:
    """Every shard is published under its final name with the source's bytes."""
    for shard in shards:
        target = out / "tars" / shard.name
        assert target.exists(), f"{shard.name} missing"
        assert target.stat().st_size == shard.size
        assert md5(target) == shard.md5, f"{shard.name} differs from the source"


@pytest.fixture(scope="session")
def dataset(tmp_path_factory: pytest.TempPathFactory) -> list[ShardInfo]:
    root = tmp_path_factory.mktemp("cdn")
    return make_dataset(root, shard_indices=range(SHARDS), shard_size=SHARD_SIZE, seed=1)


@pytest.fixture
def shards(dataset: list[ShardInfo]) -> list[ShardInfo]:
    return [info for info in dataset if info.name.endswith(".tar")]


@pytest.fixture
def cdn(dataset: list[ShardInfo]) -> Iterator[CDNServer]:
    with CDNServer(root=dataset[0].path.parent) as server:
        yield server


@pytest.fixture
def links(cdn: CDNServer, tmp_path: Path) -> Path:
    path = tmp_path / "links.tsv"
    cdn.write_links_file(path)
    return path


@pytest.fixture
def slow_cdn(dataset: list[ShardInfo]) -> Iterator[CDNServer]:
    """The stand-in at 1.5 MiB/s per connection: slow enough to interrupt mid-way."""
    with CDNServer(root=dataset[0].path.parent, rate_per_connection=1.5 * 1024 * 1024) as server:
        yield server


@pytest.fixture(scope="session")
def bucket_shards(tmp_path_factory: pytest.TempPathFactory) -> list[ShardInfo]:
    """Two shards of 24 MiB for the tests of an ``s3://`` output: five parts of 5 MiB
    each, the last one shorter (:mod:`tests.integration.buckets`)."""
    root = tmp_path_factory.mktemp("bucket-shards")
    made = make_dataset(root, shard_indices=range(2), shard_size=24 * 1024 * 1024, seed=18,
                        extras=False)  # fmt: skip
    return [info for info in made if info.name.endswith(".tar")]


@pytest.fixture
def bucket_cdn(bucket_shards: list[ShardInfo]) -> Iterator[CDNServer]:
    with CDNServer(root=bucket_shards[0].path.parent) as server:
        yield server


@pytest.fixture
def bucket_links(bucket_cdn: CDNServer, tmp_path: Path) -> Path:
    path = tmp_path / "links.tsv"
    bucket_cdn.write_links_file(path)
    return path


@pytest.fixture
def slow_bucket_cdn(bucket_shards: list[ShardInfo]) -> Iterator[CDNServer]:
    """The stand-in of :func:`bucket_shards` at 1 MiB/s per connection: a shard's part
    takes 5 s, slow enough to stop a run between two."""
    with CDNServer(root=bucket_shards[0].path.parent, rate_per_connection=1024 * 1024) as server:
        yield server


@pytest.fixture(scope="session")
def nginx(
    dataset: list[ShardInfo], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[NginxServer]:
    work = tmp_path_factory.mktemp("nginx")
    with NginxServer(root=dataset[0].path.parent, workdir=work) as server:
        yield server


def member_bytes(shard: ShardInfo) -> dict[str, bytes]:
    """The regular members of a source shard, by normalised name."""
    with tarfile.open(shard.path) as archive:
        members = {}
        for member in archive.getmembers():
            if member.isfile():
                data = archive.extractfile(member)
                assert data is not None
                members[member.name.rsplit("/", 1)[-1]] = data.read()
        return members


def extracted_path(out: Path, shard: str, name: str, layout: str) -> Path:
    """Where member ``name`` of ``shard`` is in ``layout``: its file, or its wds tar."""
    stem = shard.removesuffix(".tar")
    if layout == "shard":
        return out / stem / name
    if layout == "split":
        kind = {".jpg": "images", ".json": "annotations"}.get(Path(name).suffix, "other")
        return out / kind / stem / name
    if layout == "wds":
        return out / "wds" / f"{stem}.tar"
    return out / name


def wds_bytes(shard: ShardInfo) -> bytes:
    """The tar ``--layout wds`` must make of ``shard`` (built by Python's tarfile)."""
    with tarfile.open(shard.path) as archive:
        times = {member.mtime for member in archive.getmembers() if member.isfile()}
    assert len(times) == 1, "the synthetic shards give every member one time"
    return wds_tar(member_bytes(shard).items(), mtime=times.pop())


def extracted_contents(out: Path, shard: ShardInfo, layout: str) -> dict[Path, bytes]:
    """Every file an extraction of ``shard`` in ``layout`` publishes, with its bytes."""
    if layout == "wds":
        return {extracted_path(out, shard.name, "", layout): wds_bytes(shard)}
    return {
        extracted_path(out, shard.name, name, layout): data
        for name, data in member_bytes(shard).items()
    }


def assert_extracted(out: Path, shards: Sequence[ShardInfo], layout: str = "shard") -> None:
    """Every member of every shard is on disk at its layout path, byte for byte (in wds,
    each shard's tar is exactly the expected one); the tars are gone (not kept) and
    nothing is left in staging."""
    for shard in shards:
        for path, data in extracted_contents(out, shard, layout).items():
            assert path.is_file(), f"{path} missing"
            assert path.read_bytes() == data, f"{path} differs from the source member"
        assert not (out / ".sa1b" / "partial" / f"{shard.name}.part").exists()
    staging = out / ".sa1b" / "staging"
    assert not staging.exists() or not any(staging.iterdir())


class _RangeHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    root: Path

    def do_GET(self) -> None:
        path = self.root / self.path.lstrip("/").split("?")[0]
        if not path.is_file():
            self.send_error(404)
            return
        data = path.read_bytes()
        match = re.fullmatch(r"bytes=(\d+)-(\d*)", self.headers.get("Range", ""))
        start, end = 0, len(data) - 1
        if match:
            start = int(match.group(1))
            end = min(int(match.group(2) or end), end)
            self.send_response(206)
            self.send_header("Content-Range", f"bytes {start}-{end}/{len(data)}")
        else:
            self.send_response(200)
        self.send_header("Content-Length", str(end + 1 - start))
        self.send_header("ETag", '"v1"')
        self.end_headers()
        self.wfile.write(data[start : end + 1])

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def https_base(certificates: CertificatePaths, shards: list[ShardInfo]) -> Iterator[str]:
    handler = type("Handler", (_RangeHandler,), {"root": shards[0].path.parent})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    server.daemon_threads = True
    server.socket = server_context(certificates).wrap_socket(server.socket, server_side=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"https://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture
def http_server(shards: list[ShardInfo]) -> Iterator[str]:
    """Python's ``http.server`` serving the shards: it ignores Range (answers 200)."""
    with python_http_server(shards[0].path.parent) as base:
        yield base


@contextmanager
def python_http_server(root: Path) -> Iterator[str]:
    """Python's ``http.server`` serving ``root`` on loopback (it ignores Range)."""
    server = subprocess.Popen(
        # port 0: the server binds a free port itself and names it on its first line
        [
            sys.executable,
            "-u",
            "-m",
            "http.server",
            "--bind",
            "127.0.0.1",
            "--directory",
            root,
            "0",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    try:
        assert server.stdout is not None
        first_line = server.stdout.readline()  # written once it listens
        found = re.search(r" port (\d+) ", first_line)
        assert found, f"http.server did not start: {first_line!r}"
        port = int(found.group(1))
        yield f"http://127.0.0.1:{port}"
    finally:
        server.terminate()
        server.communicate()  # waits, and closes the pipe
