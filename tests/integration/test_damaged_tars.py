"""One verdict per tar: the same damaged (and the same sound but unusual) tars, served by
nginx, through download and extraction, ``--only json``, and ``verify`` of a kept tar.

Each tar goes through the real CLI three ways; all three must agree on whether it is
sound (exit code 0) or damaged (exit code 1), and a damaged one is named with the same
kind of damage by each: one tar reader (:class:`sa1b.tarwalk.TarWalk`) judges for all.
"""

from __future__ import annotations

import io
import re
import tarfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from harness.nginx import NginxServer

from .conftest import Result, run_cli

BLOCK = tarfile.BLOCKSIZE
SHARD = "sa_000000.tar"


def tar_of(members: list[tuple[str, bytes]], fmt: int = tarfile.GNU_FORMAT) -> bytes:
    """A tar as Python's tarfile writes it: members, two end blocks, zeros to 10 KiB."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=fmt) as archive:
        for name, data in members:
            info = tarfile.TarInfo(name)
            info.size, info.mtime, info.mode = len(data), 1_680_566_400, 0o644
            archive.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


def pair(image_id: int, name: str | None = None) -> list[tuple[str, bytes]]:
    stem = name or f"sa_{image_id}"
    return [
        (f"{stem}.jpg", b"\xff\xd8" + bytes([image_id]) * 3000),
        (f"{stem}.json", b'{"image": {"image_id": %d}}' % image_id),
    ]


MEMBERS = [*pair(1), *pair(2), *pair(3)]
SOUND = tar_of(MEMBERS)


def _headers(raw: bytes) -> list[tarfile.TarInfo]:
    with tarfile.open(fileobj=io.BytesIO(raw)) as archive:
        return archive.getmembers()


def _end_of_members(raw: bytes) -> int:
    last = _headers(raw)[-1]
    return last.offset_data + -(-last.size // BLOCK) * BLOCK


def garbage_after_the_end() -> bytes:
    return SOUND[: _end_of_members(SOUND) + 2 * BLOCK] + b"garbage after the end"


def no_end_blocks() -> bytes:
    return SOUND[: _end_of_members(SOUND)]


def bad_header_checksum() -> bytes:
    at = _headers(SOUND)[2].offset  # sa_2.jpg's header: a byte of its name changes
    return SOUND[:at] + b"t" + SOUND[at + 1 :]


def truncated_member() -> bytes:
    return SOUND[: _headers(SOUND)[-2].offset_data + 1000]  # inside sa_3.jpg


def duplicate_name() -> bytes:
    return tar_of([*MEMBERS, pair(2)[1]])


def member_past_the_end() -> bytes:
    """A well-formed tar whose last header (its checksum right) claims more bytes than follow."""
    info = tarfile.TarInfo("sa_4.jpg")
    info.size, info.mtime = 1_000_000, 1_680_566_400
    body = SOUND[: _end_of_members(SOUND)] + info.tobuf(tarfile.GNU_FORMAT) + b"x" * 100
    return body + bytes(-len(body) % BLOCK + 2 * BLOCK)


LONG = "sa_" + "7" * 140


@dataclass(frozen=True)
class Case:
    tar: Callable[[], bytes]
    damage: str | None
    """What every message names (a regular expression); None: the tar is sound."""
    json: tuple[str, ...] = ("sa_1.json", "sa_2.json", "sa_3.json")
    """The annotations of a sound tar."""


CASES = {
    "garbage after the end blocks": Case(garbage_after_the_end, "after the end-of-archive"),
    "no end blocks": Case(no_end_blocks, "without its end-of-archive blocks"),
    "bad header checksum": Case(bad_header_checksum, r"bad header at byte \d+: header checksum"),
    "truncated member": Case(truncated_member, "'sa_3.jpg' is cut short"),
    "duplicate name": Case(duplicate_name, "'sa_2.json' appears twice"),
    "member past the end": Case(member_past_the_end, "'sa_4.jpg' is cut short"),
    "pax long names": Case(
        lambda: tar_of([*MEMBERS, *pair(7, LONG)], tarfile.PAX_FORMAT),
        None,
        ("sa_1.json", "sa_2.json", "sa_3.json", f"{LONG}.json"),
    ),
    "gnu long names": Case(
        lambda: tar_of([*MEMBERS, *pair(7, LONG)], tarfile.GNU_FORMAT),
        None,
        ("sa_1.json", "sa_2.json", "sa_3.json", f"{LONG}.json"),
    ),
}


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[NginxServer]:
    """Each case's tar, in a folder of its own under nginx's root (one shard name for all)."""
    root = tmp_path_factory.mktemp("damaged")
    for number, case in enumerate(CASES.values()):
        (root / str(number)).mkdir()
        (root / str(number) / SHARD).write_bytes(case.tar())
    with NginxServer(root=root, workdir=tmp_path_factory.mktemp("nginx")) as server:
        yield server


def _verdict(result: Result, case: Case) -> None:
    """Sound: exit 0. Damaged: exit 1, the shard and the damage named, no traceback."""
    assert "Traceback" not in result.output
    if case.damage is None:
        assert result.returncode == 0, result.output
        return
    assert result.returncode == 1, result.output
    assert SHARD in result.output
    assert re.search(case.damage, result.output), result.output


def _annotations(out: Path) -> set[str]:
    return {p.name for p in out.rglob("*.json") if ".sa1b" not in p.parts}


@pytest.mark.parametrize("name", list(CASES))
def test_every_reader_gives_one_verdict(served: NginxServer, tmp_path: Path, name: str) -> None:
    case = CASES[name]
    links = tmp_path / "urls.txt"
    links.write_text(served.url_for(f"{list(CASES).index(name)}/{SHARD}") + "\n")
    published = set(case.json) if case.damage is None else set()

    extracted = run_cli("download", links, "-o", tmp_path / "extracted")
    _verdict(extracted, case)
    assert _annotations(tmp_path / "extracted") == published

    walked = run_cli("download", links, "-o", tmp_path / "walked", "--only", "json")
    _verdict(walked, case)
    assert _annotations(tmp_path / "walked") == published

    kept = tmp_path / "kept"
    download = run_cli("download", links, "-o", kept, "--no-extract")
    assert download.returncode == 0, download.output  # the bytes are the server's: no verdict
    _verdict(run_cli("verify", kept), case)
