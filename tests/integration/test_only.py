"""``sa1b download --only json`` / ``--only jpg``: members fetched by range reads, never
the tars, through the real CLI against the CDN stand-in (and a server without ranges)."""

from __future__ import annotations

import os
import re
import signal
from pathlib import Path

import pytest

import sa1b
from sa1b.cdn.faults import Fault
from sa1b.cdn.server import CDNServer
from sa1b.cdn.synth import ShardInfo
from tests.waiting import wait_for

from .conftest import extracted_path, member_bytes, run_cli, start_cli


def only(shards: list[ShardInfo], kind: str) -> dict[tuple[str, str], bytes]:
    return {
        (shard.name, name): data
        for shard in shards
        for name, data in member_bytes(shard).items()
        if name.endswith(f".{kind}")
    }


def files_in(out: Path) -> set[Path]:
    return {p for p in out.rglob("*") if p.is_file() and ".sa1b" not in p.parts}


def assert_members(out: Path, wanted: dict[tuple[str, str], bytes], layout: str) -> None:
    paths = {extracted_path(out, shard, name, layout) for shard, name in wanted}
    assert files_in(out) == paths, "only the wanted members, nothing else"
    for (shard, name), data in wanted.items():
        assert extracted_path(out, shard, name, layout).read_bytes() == data


@pytest.mark.parametrize("layout", ["shard", "split", "flat"])
def test_only_json_fetches_each_annotation_and_little_else(
    cdn: CDNServer, links: Path, shards: list[ShardInfo], tmp_path: Path, layout: str
) -> None:
    out = tmp_path / "out"
    result = run_cli("download", links, "-o", out, "--only", "json", "--layout", layout)
    assert result.returncode == 0, result.output
    wanted = only(shards, "json")
    assert_members(out, wanted, layout)
    served = sum(r.bytes_sent for r in cdn.requests)
    headers = sum(len(member_bytes(shard)) + 3 for shard in shards)  # + folder, 2 end blocks
    assert served <= 1.3 * sum(map(len, wanted.values())) + 512 * headers
    assert "% of the" in result.output  # the bytes fetched against the shard sizes
    assert not (out / "tars").exists()


def test_a_rerun_fetches_nothing_and_jpg_later_needs_no_second_walk(
    cdn: CDNServer, links: Path, shards: list[ShardInfo], tmp_path: Path
) -> None:
    out = tmp_path / "out"
    assert run_cli("download", links, "-o", out, "--only", "json").returncode == 0
    cdn.clear_requests()
    again = run_cli("download", links, "-o", out, "--only", "json")
    assert again.returncode == 0, again.output
    assert cdn.requests == []
    assert f"all 3 files are already done in {out}; nothing to download" in again.output
    jpgs = run_cli("download", links, "-o", out, "--only", "jpg")
    assert jpgs.returncode == 0, jpgs.output
    member_count = len(only(shards, "jpg"))
    assert len(cdn.requests) == member_count, "one request per image, no header read"
    assert_members(out, only(shards, "json") | only(shards, "jpg"), "shard")


def test_the_index_lists_every_member_of_a_walked_shard(
    cdn: CDNServer, links: Path, shards: list[ShardInfo], tmp_path: Path
) -> None:
    out = tmp_path / "out"
    assert run_cli("download", links, "-o", out, "--only", "json").returncode == 0
    result = run_cli("index", out)
    assert result.returncode == 0, result.output
    by_shard = {shard.name: shard for shard in shards}
    seen: dict[str, set[str]] = {}
    for row in result.stdout.splitlines()[1:]:
        shard, member, offset, size, path = row.split("\t")
        with by_shard[shard].path.open("rb") as tar:
            tar.seek(int(offset))
            assert tar.read(int(size)) == member_bytes(by_shard[shard])[member]
        assert (path != "") == member.endswith(".json"), row  # published ones have a path
        seen.setdefault(shard, set()).add(member)
    assert seen == {s.name: set(member_bytes(s)) for s in shards}


@pytest.mark.parametrize("stop", [signal.SIGKILL, signal.SIGINT], ids=["SIGKILL", "Ctrl-C"])
def test_a_walk_stopped_mid_way_goes_on_from_its_checkpoint(
    cdn: CDNServer, links: Path, shards: list[ShardInfo], tmp_path: Path, stop: signal.Signals
) -> None:
    assert run_cli("download", links, "-o", tmp_path / "whole", "--only", "json").returncode == 0
    unbroken = len(cdn.requests)
    cdn.clear_requests()
    out = tmp_path / "out"
    slowly = ("--connections", "1", "--max-rate", "50K", "-q")  # a walk of about 6 s
    args = ("download", links, "-o", out, "--only", "json", *slowly)
    process = start_cli(*args)
    wait_for(
        lambda: len(cdn.requests) >= unbroken // 3,
        timeout=60,
        message="a third of the requests",
        process=process,
    )
    # Killed once the saved checkpoints have gone past two thirds of the requests made:
    # however late a loaded machine lets the run save them, the rerun has that to skip.
    wait_for(
        lambda: 3 * _requests_behind_checkpoints(cdn, out) >= 2 * len(cdn.requests),
        timeout=60,
        message="checkpoints past two thirds of the requests",
        process=process,
    )
    os.kill(process.pid, stop)
    _, errors = process.communicate()
    assert process.returncode == (130 if stop == signal.SIGINT else -signal.SIGKILL), errors
    assert "Traceback" not in errors
    before = len(cdn.requests)
    assert 5 < before < unbroken, "killed mid-walk"
    cdn.clear_requests()
    result = run_cli(*args)
    assert result.returncode == 0, result.output
    assert_members(out, only(shards, "json"), "shard")
    after = len(cdn.requests)
    assert after <= unbroken - before // 2, "the rerun went on from the checkpoints"
    assert not any((out / ".sa1b" / "staging").rglob("*.json")), "staging emptied"


def _requests_behind_checkpoints(cdn: CDNServer, out: Path) -> int:
    """How many of the requests made so far asked for bytes that a walk's saved
    checkpoint (``sa1b.status`` of ``out``) has gone past: a rerun need not ask again."""
    try:
        walks = sa1b.status(out).walks
    except sa1b.SA1BError:  # no store yet
        return 0
    behind = 0
    for request in cdn.requests:
        walk = walks.get(request.name or "")
        start = re.match(r"bytes=(\d+)-", request.range_header or "")
        behind += walk is not None and start is not None and int(start[1]) < walk.next
    return behind


def test_a_server_without_ranges_is_read_as_one_stream(
    shards: list[ShardInfo], tmp_path: Path, http_server: str
) -> None:
    links = tmp_path / "links.txt"
    links.write_text("".join(f"{s.name}\t{http_server}/{s.name}\n" for s in shards))
    out = tmp_path / "out"
    result = run_cli("download", links, "-o", out, "--only", "json")
    assert result.returncode == 0, result.output
    assert_members(out, only(shards, "json"), "shard")


@pytest.mark.parametrize(
    "option",
    [
        ["--no-extract"],
        ["--keep-tars"],
        ["--extras"],
        ["--engine", "ray"],
        ["--layout", "wds"],
        ["--mirror", "https://mirror.example/sa1b"],
    ],
)
def test_only_refuses_options_about_whole_files(
    links: Path, tmp_path: Path, option: list[str]
) -> None:
    result = run_cli("download", links, "-o", tmp_path / "out", "--only", "json", *option)
    assert result.returncode == 2
    assert f"drop {' '.join(option) if option[0] == '--layout' else option[0]}" in result.output
    assert "Traceback" not in result.output


def test_status_shows_walked_shards_and_a_failed_walk_fails_it(
    cdn: CDNServer, links: Path, shards: list[ShardInfo], tmp_path: Path
) -> None:
    out = tmp_path / "out"
    cdn.add_fault(shards[0].name, Fault("not_found"))
    first = run_cli("download", links, "-o", out, "--only", "json")
    assert first.returncode == 1, first.output
    assert f"{shards[0].name}  failed" in first.output
    status = run_cli("status", out)
    assert status.returncode == 1, status.output
    assert f"{shards[0].name}  failed" in status.output
    assert f"{shards[1].name}  walked: json" in status.output
    assert "3 files: 1 failed, 2 walked" in status.output
    again = run_cli("download", links, "-o", out, "--only", "json")
    assert again.returncode == 0, again.output
    status = run_cli("status", out)
    assert status.returncode == 0, status.output
    assert "3 files: 3 walked" in status.output


@pytest.mark.parametrize(
    "fault",
    [
        Fault("cut", after=100, times=3),
        Fault("cut", after=0, times=2, mode="rst"),
        Fault("status", status=503, times=2),
        Fault("throttle", retry_after=0.2),
        Fault("wrong_range", times=2),
        Fault("ignore_range"),
        Fault("stall", after=10, seconds=3),
    ],
    ids=["cut", "reset", "503", "429", "wrong-range", "ignore-range", "stall"],
)
def test_a_walk_survives_transient_faults(
    cdn: CDNServer, links: Path, shards: list[ShardInfo], tmp_path: Path, fault: Fault
) -> None:
    for shard in shards:
        cdn.add_fault(shard.name, fault)
    out = tmp_path / "out"
    result = run_cli("download", links, "-o", out, "--only", "json", "--read-timeout", "1")
    assert result.returncode == 0, result.output
    assert_members(out, only(shards, "json"), "shard")


def test_a_new_version_mid_walk_starts_the_walk_again(
    cdn: CDNServer, links: Path, shards: list[ShardInfo], tmp_path: Path
) -> None:
    name = shards[0].name
    cdn.add_fault(name, Fault("cut", after=1 << 40, times=5))  # five whole answers, then
    cdn.add_fault(name, Fault("change_etag"))  # the object is replaced
    out = tmp_path / "out"
    result = run_cli("download", links, "-o", out, "--only", "json")
    assert result.returncode == 0, result.output
    assert_members(out, only(shards, "json"), "shard")
    firsts = [r for r in cdn.requests if r.name == name and r.range_header == "bytes=0-511"]
    assert len(firsts) == 2, "walked from the start again"


def test_an_expired_link_stops_that_shard_with_a_plain_message(
    cdn: CDNServer, links: Path, shards: list[ShardInfo], tmp_path: Path
) -> None:
    cdn.add_fault(shards[1].name, Fault("forbidden"))
    result = run_cli("download", links, "-o", tmp_path / "out", "--only", "json")
    assert result.returncode == 1
    assert f"{shards[1].name}  expired: the signed link has expired" in result.output
    assert "Traceback" not in result.output
    assert "oh=" not in result.output


def test_verify_checks_walked_members_and_repair_fetches_a_bad_one_again(
    cdn: CDNServer, links: Path, shards: list[ShardInfo], tmp_path: Path
) -> None:
    out = tmp_path / "out"
    assert run_cli("download", links, "-o", out, "--only", "json").returncode == 0
    good = run_cli("verify", out)
    assert good.returncode == 0, good.output
    assert f"{shards[0].name}  ok   walked (json)" in good.output
    victim = sorted((out / shards[0].name.removesuffix(".tar")).glob("*.json"))[0]
    victim.write_bytes(victim.read_bytes()[:-1])
    bad = run_cli("verify", out, "--repair")
    assert bad.returncode == 1, bad.output
    assert f"{victim.relative_to(out)} is" in bad.output
    cdn.clear_requests()
    again = run_cli("download", links, "-o", out, "--only", "json")
    assert again.returncode == 0, again.output
    assert_members(out, only(shards, "json"), "shard")
    assert {r.name for r in cdn.requests} == {shards[0].name}, "only the repaired shard"
    assert all(r.range_header != "bytes=0-511" for r in cdn.requests), "no second walk"


def test_the_loader_pairs_what_only_json_and_only_jpg_published(
    cdn: CDNServer, links: Path, shards: list[ShardInfo], tmp_path: Path
) -> None:
    out = tmp_path / "out"
    for kind in ("json", "jpg"):
        result = run_cli("download", links, "-o", out, "--only", kind, "--layout", "split")
        assert result.returncode == 0, result.output
    samples = sa1b.open(out)
    pairs = only(shards, "jpg")
    assert len(samples) == len(pairs)
    for sample in samples:
        assert sample.shard is not None
        assert sample.image_bytes() == pairs[(sample.shard, f"{sample.key}.jpg")]
        assert sample.document["image"]["file_name"] == f"{sample.key}.jpg"


def test_a_walk_waits_out_a_retry_after_as_a_download_does_and_shows_the_current_speed(
    cdn: CDNServer, links: Path, shards: list[ShardInfo], tmp_path: Path
) -> None:
    """One engine: a shard whose server asks for 30 s says so (the log line, then the
    progress line name the shard and when the wait ends), as a whole file does
    (test_faults), and the speed shown is that of the last seconds: once the other
    shards are done and nothing arrives, it falls to 0 B/s (a mean since the start, as
    the walk once showed, stays above 0)."""
    waiter = shards[1].name
    cdn.add_fault(waiter, Fault("throttle", retry_after=30))
    proc = start_cli("download", links, "-o", tmp_path / "out", "--only", "json")
    assert proc.stderr is not None
    said = re.compile(rf"{re.escape(waiter)}: the server asked to retry after 30 s; waiting until")
    seen: dict[str, str] = {}
    try:
        for line in proc.stderr:
            if said.search(line):
                seen.setdefault("logged" if "WARNING" in line else "shown", line)
            elif "2/3 files done" in line and ", 0 B/s," in line:
                seen["idle"] = line
            if len(seen) == 3:
                break
    finally:
        proc.send_signal(signal.SIGINT)
        rest = proc.communicate(timeout=30)[1]
    assert proc.returncode == 130, rest
    assert seen["logged"].startswith("sa1b: WARNING: "), seen
    assert seen["shown"].startswith(f"sa1b: {waiter}:"), seen  # the progress line
