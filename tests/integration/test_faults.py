"""Every scripted fault of the stand-in, through the real CLI: the bytes still come out right."""

from __future__ import annotations

import re
import signal
import time
from pathlib import Path

import pytest

from sa1b.cdn.faults import Fault
from sa1b.cdn.server import CDNServer
from sa1b.cdn.synth import ShardInfo, make_dataset

from .conftest import assert_extracted, assert_identical, run_cli, start_cli

MiB = 1024 * 1024

RECOVERABLE = {
    "cut-fin": Fault("cut", after=MiB + 123, times=3, mode="fin"),
    "cut-rst": Fault("cut", after=2 * MiB + 7, times=3, mode="rst"),
    "status-500": Fault("status", status=500, times=2),
    "status-503": Fault("status", status=503, times=3),
    "status-408": Fault("status", status=408, times=1),
    "throttle-429": Fault("throttle", retry_after=1, times=2),
    "stall": Fault("stall", after=300_000, seconds=4, times=1),
    "ignore-range": Fault("ignore_range", times=2),
    "wrong-range": Fault("wrong_range", times=2),
}


@pytest.mark.parametrize("fault", RECOVERABLE.values(), ids=RECOVERABLE.keys())
def test_recovers_from_transient_faults(
    fault: Fault, cdn: CDNServer, links: Path, shards: list[ShardInfo], tmp_path: Path
) -> None:
    cdn.add_fault("*", fault)
    out = tmp_path / "out"
    result = run_cli(
        "download",
        "--no-extract",
        links,
        "-o",
        out,
        "--read-timeout",
        "1",
        "--log-file",
        tmp_path / "log",
        "--log-level",
        "debug",
    )
    assert result.returncode == 0, result.output + (tmp_path / "log").read_text()
    assert cdn.pending_faults() == 0, "the fault was never exercised"
    assert_identical(out, shards)


def test_server_ignoring_range_restarts_as_one_stream(
    cdn: CDNServer, links: Path, shards: list[ShardInfo], tmp_path: Path
) -> None:
    cdn.add_fault("sa_000001.tar", Fault("ignore_range", times=1000))
    out = tmp_path / "out"
    result = run_cli("download", "--no-extract", links, "-o", out, "--log-file", tmp_path / "log")
    assert result.returncode == 0, result.output
    assert "ignored Range" in (tmp_path / "log").read_text()
    assert_identical(out, shards)


@pytest.mark.parametrize("extract", [False, True], ids=["tars", "extracted-as-it-streams"])
def test_object_changed_midway_starts_over(
    cdn: CDNServer, links: Path, shards: list[ShardInfo], tmp_path: Path, extract: bool
) -> None:
    # The ETag changes after the first answer: If-Range then gets a whole 200 body (a
    # streamed shard's next ranged answer says so by its ETag).
    cdn.add_fault("sa_000000.tar", Fault("cut", after=3 * MiB))
    cdn.add_fault("sa_000000.tar", Fault("change_etag"))
    out = tmp_path / "out"
    tars = [] if extract else ["--no-extract"]
    result = run_cli(
        "download", *tars, links, "-o", out, "--log-file", tmp_path / "log", "--connections", "2"
    )
    assert result.returncode == 0, result.output
    if extract:
        assert "changed on the server" in (tmp_path / "log").read_text()
        assert_extracted(out, shards)
    else:
        assert_identical(out, shards)


def test_expired_on_403_stops_that_file_keeps_bytes_then_fresh_links_continue(
    cdn: CDNServer, links: Path, shards: list[ShardInfo], tmp_path: Path
) -> None:
    # A cut leaves bytes on disk; then the CDN says the signature expired.
    cdn.add_fault("sa_000002.tar", Fault("cut", after=3 * MiB))
    cdn.add_fault("sa_000002.tar", Fault("forbidden", times=1000))
    out = tmp_path / "out"
    # --no-space-check: the space check's one-byte request would take the cut.
    args = ("--connections", "1", "--no-space-check")
    result = run_cli("download", "--no-extract", links, "-o", out, *args)
    assert result.returncode == 1
    assert "expired" in result.output and "fresh links file" in result.output
    assert (out / "tars" / "sa_000000.tar").exists()
    assert not (out / "tars" / "sa_000002.tar").exists()
    status = run_cli("status", out)
    assert "expired" in status.output
    kept = out / ".sa1b" / "partial" / "sa_000002.tar.part"
    assert kept.exists()

    # Expiry is not retried: a handful of requests, not a retry storm.
    assert sum(1 for r in cdn.requests if r.name == "sa_000002.tar" and r.status == 403) <= 2

    cdn.clear_faults()
    cdn.clear_requests()
    fresh = tmp_path / "fresh.tsv"
    cdn.write_links_file(fresh)
    again = run_cli("download", "--no-extract", fresh, "-o", out)
    assert again.returncode == 0, again.output
    assert_identical(out, shards)
    # Only what was missing of sa_000002 was fetched again.
    assert cdn.bytes_sent_total <= shards[2].size - 3 * MiB + MiB


def test_not_found_fails_that_file_only(
    cdn: CDNServer, links: Path, shards: list[ShardInfo], tmp_path: Path
) -> None:
    cdn.add_fault("sa_000001.tar", Fault("not_found", times=1000))
    out = tmp_path / "out"
    result = run_cli("download", "--no-extract", links, "-o", out)
    assert result.returncode == 1
    assert "404" in result.output and "sa_000001.tar" in result.output
    assert_identical(out, [shards[0], shards[2]])
    assert not (out / "tars" / "sa_000001.tar").exists()


def test_persistent_5xx_gives_up_with_summary(
    cdn: CDNServer, links: Path, shards: list[ShardInfo], tmp_path: Path
) -> None:
    cdn.add_fault("sa_000000.tar", Fault("status", status=503, times=1000))
    out = tmp_path / "out"
    result = run_cli("download", "--no-extract", links, "-o", out, "--retries", "3")
    assert result.returncode == 1
    assert "503" in result.output
    assert_identical(out, shards[1:])


def test_a_burst_of_sixteen_stalls_on_one_file_is_one_outage(tmp_path: Path) -> None:
    """One network blip stalls every connection of a file at once: that is one failure
    of the file, not sixteen (with --retries 3 it would otherwise be given up)."""
    (shard,) = make_dataset(
        tmp_path / "cdn", shard_indices=[0], shard_size=32 * MiB, seed=2, extras=False
    )
    with CDNServer(root=shard.path.parent) as server:
        server.add_fault(shard.name, Fault("stall", after=64 * 1024, seconds=3, times=16))
        links = tmp_path / "links.tsv"
        server.write_links_file(links)
        out, log = tmp_path / "out", tmp_path / "log"
        result = run_cli(
            "download",
            "--no-extract",
            links,
            "-o",
            out,
            "--connections",
            "16",
            "--retries",
            "3",
            "--read-timeout",
            "1",
            "--log-file",
            log,
            "--log-level",
            "debug",
        )
        assert result.returncode == 0, result.output + log.read_text()
        assert server.pending_faults() == 0, "fewer than 16 requests stalled"
    assert_identical(out, [shard])
    assert log.read_text().count("(same outage)") >= 8


def _seconds_of_day(clock: str) -> int:
    hours, minutes, seconds = map(int, clock.split(":"))
    return hours * 3600 + minutes * 60 + seconds


def test_a_long_retry_after_says_what_is_waited_for_and_until_when(
    cdn: CDNServer, links: Path, tmp_path: Path
) -> None:
    """A Retry-After of 30 s: the log line, then the progress line, name the file, the
    server's ask and the time the wait ends (both before the wait is over)."""
    cdn.add_fault("sa_000000.tar", Fault("throttle", retry_after=30))
    asked = time.time()
    args = ("download", links, "-o", tmp_path / "out", "--shards", "0", "--no-space-check")
    proc = start_cli(*args)
    assert proc.stderr is not None
    try:
        said = re.compile(
            r"sa_000000\.tar: the server asked to retry after 30 s; waiting until ([\d:]+)"
        )
        lines = (said.search(line) for line in proc.stderr if "waiting" in line)
        logged = next(found for found in lines if found)
        shown = next(found for found in lines if found)
        assert logged.string.startswith("sa1b: WARNING: ")
        assert shown.string.startswith("sa1b: sa_000000.tar:")  # the progress line
        assert "0/1 files done" in shown.string
    finally:
        proc.send_signal(signal.SIGINT)
        proc.communicate(timeout=30)
    assert proc.returncode == 130
    until = _seconds_of_day(logged.group(1))
    expected = _seconds_of_day(time.strftime("%H:%M:%S", time.localtime(asked + 30)))
    assert 0 <= (until - expected) % 86400 <= 5, (logged.group(1), expected)
    assert shown.group(1) == logged.group(1)


def test_the_summary_counts_the_whole_run(cdn: CDNServer, links: Path, tmp_path: Path) -> None:
    """The size check's request held 4 s by the server is part of the run the summary
    times (it once said 0s)."""
    cdn.add_fault("*", Fault("stall", after=0, seconds=4))
    started = time.monotonic()
    result = run_cli("download", links, "-o", tmp_path / "out", "--shards", "0", "--no-extract")
    took = time.monotonic() - started
    assert result.returncode == 0, result.output
    summary = re.search(r"1/1 files done; fetched 6\.0 MiB in (\d+)s ", result.stderr)
    assert summary, result.stderr
    assert 4 <= int(summary.group(1)) <= took


@pytest.mark.parametrize("only", [(), ("--only", "json")], ids=["whole-file", "only-json"])
def test_a_trickling_server_is_given_up_with_one_clear_line(
    only: tuple[str, ...], cdn: CDNServer, links: Path, shards: list[ShardInfo], tmp_path: Path
) -> None:
    """A server that sends one byte a second is never quite silent: each request stalls,
    and the few bytes it brought are no progress (far below the speed floor), so the
    failures count on and the file is given up after --retries of them."""
    name = shards[0].name
    cdn.add_fault(name, Fault("trickle", seconds=1, times=1000))
    out = tmp_path / "out"
    args = ("--retries", "2", "--read-timeout", "3", *(only or ("--no-extract",)))
    result = run_cli("download", links, "-o", out, *args, timeout=240)  # a hang guard only
    assert result.returncode == 1, result.output
    summary = [line for line in result.output.splitlines() if f"{name}  failed: " in line]
    assert len(summary) == 1, result.output
    assert "below the floor" in summary[0], summary
    assert summary[0].endswith("(gave up after 2 attempts in a row)"), summary
    assert "Traceback" not in result.output
