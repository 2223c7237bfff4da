"""What the progress displays print: no invented totals, one unit system, 80 columns."""

from __future__ import annotations

import io
import time

import pytest
from rich.console import Console

from sa1b.cli.display import PlainDisplay, waiting_text
from sa1b.cli.live import LiveDisplay
from sa1b.progress import FileProgress, FileState, Snapshot

MiB = 1024 * 1024


def snapshot(*files: tuple[str, FileState, int | None, int]) -> Snapshot:
    progress = tuple(FileProgress(name, state, size, done, 4) for name, state, size, done in files)
    return Snapshot(
        progress, fetched=sum(f.done for f in progress), elapsed=2.0, speed=3 * MiB, connections=8
    )


def plain(snap: Snapshot) -> str:
    stream = io.StringIO()
    PlainDisplay(stream, interval=0).update(snap)
    return stream.getvalue()


def test_no_total_is_invented_before_any_size_is_known() -> None:
    line = plain(
        snapshot(("sa_000000.tar", "active", None, 0), ("sa_000001.tar", "pending", None, 0))
    )
    assert line.startswith("sa1b: waiting for the first answers; 0/2 files done; 8 conn")
    assert "GiB" not in line


def test_a_total_with_unknown_sizes_says_about() -> None:
    line = plain(
        snapshot(
            ("sa_000000.tar", "active", 10 * MiB, 5 * MiB), ("sa_000001.tar", "pending", None, 0)
        )
    )
    assert "5.0 MiB of about 20.0 MiB (25%), 3.0 MiB/s" in line


def test_failures_are_counted_only_when_there_are_some() -> None:
    line = plain(snapshot(("a.tar", "done", MiB, MiB), ("b.tar", "failed", MiB, 0)))
    assert "1/2 files done, 1 failed; 8 conn" in line and "expired" not in line


@pytest.mark.parametrize("width", [80, 120])
def test_the_live_display_fits_the_terminal(width: int) -> None:
    files = [(f"sa_{i:06d}.tar", "active", 10_900 * MiB, i * 700 * MiB) for i in range(8)]
    display = LiveDisplay(Console(file=io.StringIO(), width=width))
    display.update(snapshot(*files))  # type: ignore[arg-type]
    screen = io.StringIO()  # one frame, as the terminal shows it
    Console(file=screen, width=width, color_system=None).print(display.progress.get_renderable())
    lines = screen.getvalue().splitlines()
    assert len(lines) == 7, lines  # the total, then six active files, one line each
    assert all(len(line) <= width for line in lines), lines
    assert lines[0].startswith("total: 0/8 files done; 8 conn")
    assert "0.7/10.6 GiB" in lines[2]
    assert "MB/s" not in screen.getvalue()  # one unit system: KiB, MiB, GiB


def test_the_live_display_invents_no_total_either() -> None:
    display = LiveDisplay(Console(file=io.StringIO(), width=100))
    display.update(snapshot(("sa_000000.tar", "active", None, 0)))
    screen = io.StringIO()
    Console(file=screen, width=100, color_system=None).print(display.progress.get_renderable())
    lines = screen.getvalue().splitlines()
    assert lines[0].startswith("total: 0/1 files done; 8 conn"), lines  # drawn, sizes unknown
    assert "sa_000000.tar" in lines[1], lines
    assert "GiB" not in screen.getvalue()


def _waiting(
    name: str, until: float, reason: str = "the server asked to retry after 300 s"
) -> FileProgress:
    return FileProgress(name, "pending", None, 0, 0, retry_at=until, retry_reason=reason)


UNTIL = 1_800_000_000.0
CLOCK = time.strftime("%H:%M:%S", time.localtime(UNTIL))

# name: (files, what the display says the run waits for; None: nothing)
WAITS = {
    "nothing waits": ((FileProgress("a.tar", "active", None, 0, 1),), None),
    "one file": (
        (_waiting("sa_000001.tar", UNTIL), FileProgress("b.tar", "active", None, 0, 1)),
        f"sa_000001.tar: the server asked to retry after 300 s; waiting until {CLOCK}",
    ),
    "the one due first, and how many more": (
        (_waiting("b.tar", UNTIL + 60, "server answered 503"), _waiting("a.tar", UNTIL)),
        f"a.tar: the server asked to retry after 300 s; waiting until {CLOCK} "
        "(1 more files waiting)",
    ),
}


@pytest.mark.parametrize(("files", "text"), WAITS.values(), ids=WAITS.keys())
def test_what_the_run_waits_for(files: tuple[FileProgress, ...], text: str | None) -> None:
    snap = Snapshot(files, fetched=0, elapsed=1.0, speed=0.0)
    assert waiting_text(snap) == text
    line = plain(snap)
    if text is None:
        assert line.startswith("sa1b: waiting for the first answers;")
    else:
        assert line.startswith(f"sa1b: {text}; 0/{len(files)} files done")
    live = LiveDisplay(Console(file=io.StringIO(), width=300))
    live.update(snap)
    screen = io.StringIO()
    Console(file=screen, width=300, color_system=None).print(live.progress.get_renderable())
    assert (text or "total: 0/") in screen.getvalue()


def test_a_wait_beside_a_running_total_gets_its_own_line() -> None:
    running = FileProgress("a.tar", "active", 10 * MiB, 5 * MiB, 4)
    snap = Snapshot((running, _waiting("b.tar", UNTIL)), fetched=0, elapsed=1.0, speed=MiB)
    first, second = plain(snap).splitlines()
    assert "5.0 MiB of about 20.0 MiB" in first
    assert second == f"sa1b: b.tar: the server asked to retry after 300 s; waiting until {CLOCK}"
