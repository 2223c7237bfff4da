"""The crash journal: slots recovered in the same boot, torn slots and other boots ignored."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sa1b.ranges import RangeSet
from sa1b.store import journal as journal_module
from sa1b.store.journal import Journal, Span, fold

BOOT_A = b"0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0"
BOOT_B = b"11111111-2222-3333-4444-555555555555"
HEADER = 48  # magic (8) + boot id (36) + padding (4)
SLOT = 32
RING = 0  # most tests look at the connection slots alone


@pytest.fixture
def boot(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[bytes | None]]:
    """The current boot id, changeable by the test (``boot[0] = ...``)."""
    current: list[bytes | None] = [BOOT_A]
    monkeypatch.setattr(journal_module, "boot_id", lambda: current[0])
    yield current


@pytest.fixture
def path(tmp_path: Path) -> Path:
    return tmp_path / "journal"


def test_real_boot_id_shape() -> None:
    value = journal_module.boot_id()
    if value is not None:  # Linux: 36 bytes, padded if shorter
        assert len(value) == 36


def test_recover_returns_written_slots(boot: list[bytes | None], path: Path) -> None:
    jnl = Journal(path, slots=4, ring=RING)
    try:
        jnl.write(0, file_id=1, generation=0, start=0, pos=4096)
        jnl.write(2, file_id=7, generation=3, start=10**12, pos=10**12 + 5)
        jnl.write(3, file_id=2**32 - 1, generation=2**32 - 1, start=0, pos=2**64 - 1)
        assert Journal.recover(path) == [
            Span(1, 0, 0, 4096),
            Span(7, 3, 10**12, 10**12 + 5),
            Span(2**32 - 1, 2**32 - 1, 0, 2**64 - 1),
        ]
    finally:
        jnl.close()
    assert len(Journal.recover(path)) == 3  # survives the writer's close (and death)


def test_later_write_to_a_slot_replaces_it(boot: list[bytes | None], path: Path) -> None:
    jnl = Journal(path, slots=2, ring=RING)
    jnl.write(1, 5, 0, 100, 200)
    jnl.write(1, 5, 0, 100, 300)
    jnl.close()
    assert Journal.recover(path) == [Span(5, 0, 100, 300)]


def test_empty_slots_and_empty_spans_are_skipped(boot: list[bytes | None], path: Path) -> None:
    jnl = Journal(path, slots=3, ring=RING)  # slot 0 is never written
    jnl.write(1, 2, 0, 0, 10)
    jnl.write(2, 3, 0, 50, 50)  # nothing written yet: pos == start
    jnl.close()
    assert Journal.recover(path) == [Span(2, 0, 0, 10)]


def test_file_id_zero_means_unused(boot: list[bytes | None], path: Path) -> None:
    jnl = Journal(path, slots=1, ring=RING)
    jnl.write(0, 0, 0, 0, 10)
    jnl.close()
    assert Journal.recover(path) == []


def test_file_layout(boot: list[bytes | None], path: Path) -> None:
    jnl = Journal(path, slots=5, ring=RING)
    jnl.close()
    data = path.read_bytes()
    assert len(data) == HEADER + 5 * SLOT
    assert data[:8] == b"SA1BJNL1"
    assert data[8:44] == BOOT_A


@pytest.mark.parametrize("offset", range(28))  # every byte of the body and its crc
def test_torn_slot_is_ignored(boot: list[bytes | None], path: Path, offset: int) -> None:
    jnl = Journal(path, slots=2, ring=RING)
    jnl.write(0, 1, 2, 1000, 5000)
    jnl.write(1, 9, 0, 0, 77)
    jnl.close()
    data = bytearray(path.read_bytes())
    data[HEADER + offset] ^= 0x5A
    path.write_bytes(bytes(data))
    assert Journal.recover(path) == [Span(9, 0, 0, 77)]


def test_other_boot_returns_nothing(boot: list[bytes | None], path: Path) -> None:
    jnl = Journal(path, slots=2, ring=RING)
    jnl.write(0, 1, 0, 0, 10)
    jnl.close()
    boot[0] = BOOT_B
    assert Journal.recover(path) == []
    boot[0] = BOOT_A
    assert Journal.recover(path) == [Span(1, 0, 0, 10)]


def test_unknown_boot_returns_nothing(boot: list[bytes | None], path: Path) -> None:
    jnl = Journal(path, slots=1, ring=RING)
    jnl.write(0, 1, 0, 0, 10)
    jnl.close()
    boot[0] = None
    assert Journal.recover(path) == []


def test_journal_written_without_boot_id_is_never_trusted(
    boot: list[bytes | None], path: Path
) -> None:
    boot[0] = None
    jnl = Journal(path, slots=1, ring=RING)
    jnl.write(0, 1, 0, 0, 10)
    jnl.close()
    boot[0] = b" " * 36
    assert Journal.recover(path) == []
    boot[0] = BOOT_A
    assert Journal.recover(path) == []


def test_new_journal_clears_the_old_one(boot: list[bytes | None], path: Path) -> None:
    old = Journal(path, slots=4, ring=RING)
    for slot in range(4):
        old.write(slot, slot + 1, 0, 0, 100)
    old.close()
    assert len(Journal.recover(path)) == 4
    new = Journal(path, slots=2, ring=RING)
    try:
        assert Journal.recover(path) == []
        assert len(path.read_bytes()) == HEADER + 2 * SLOT
    finally:
        new.close()


@pytest.mark.parametrize(
    "content", [b"", b"SA1BJNL1", b"NOTAJRNL" + BOOT_A + bytes(4 + SLOT), b"\x00" * 100]
)
def test_garbage_files_recover_nothing(
    boot: list[bytes | None], path: Path, content: bytes
) -> None:
    path.write_bytes(content)
    assert Journal.recover(path) == []


def test_missing_file_recovers_nothing(boot: list[bytes | None], path: Path) -> None:
    assert Journal.recover(path) == []


def test_truncated_last_slot_is_ignored(boot: list[bytes | None], path: Path) -> None:
    jnl = Journal(path, slots=2, ring=RING)
    jnl.write(0, 1, 0, 0, 10)
    jnl.write(1, 2, 0, 0, 20)
    jnl.close()
    path.write_bytes(path.read_bytes()[:-1])
    assert Journal.recover(path) == [Span(1, 0, 0, 10)]


@settings(max_examples=30, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    writes=st.lists(
        st.tuples(
            st.integers(0, 7),
            st.integers(1, 2**32 - 1),
            st.integers(0, 2**32 - 1),
            st.integers(0, 2**40),
            st.integers(0, 2**40),
        ),
        max_size=20,
    )
)
def test_recover_returns_the_last_write_of_each_slot(
    boot: list[bytes | None], tmp_path: Path, writes: list[tuple[int, int, int, int, int]]
) -> None:
    path = tmp_path / "prop-journal"
    jnl = Journal(path, slots=8, ring=RING)
    last: dict[int, Span] = {}
    for slot, file_id, generation, start, length in writes:
        jnl.write(slot, file_id, generation, start, start + length)
        last[slot] = Span(file_id, generation, start, start + length)
    jnl.close()
    expected = [last[slot] for slot in sorted(last) if last[slot].pos > last[slot].start]
    assert Journal.recover(path) == expected


def test_finished_segments_survive_in_the_ring(boot: list[bytes | None], path: Path) -> None:
    jnl = Journal(path, slots=1, ring=3)
    jnl.write(0, file_id=1, generation=0, start=0, pos=10)
    jnl.log(1, 0, 0, 10)  # the connection moves on: its slot is overwritten
    jnl.write(0, file_id=1, generation=0, start=50, pos=60)
    jnl.log(2, 0, 100, 200)
    jnl.close()
    spans = set(Journal.recover(path))
    assert spans == {Span(1, 0, 50, 60), Span(1, 0, 0, 10), Span(2, 0, 100, 200)}


def test_ring_wraps_around_keeping_the_latest(boot: list[bytes | None], path: Path) -> None:
    jnl = Journal(path, slots=1, ring=2)
    for start in range(0, 50, 10):
        jnl.log(7, 0, start, start + 10)
    jnl.close()
    assert set(Journal.recover(path)) == {Span(7, 0, 30, 40), Span(7, 0, 40, 50)}
    assert path.stat().st_size == HEADER + 3 * SLOT


def test_fold_adds_only_this_files_spans_of_this_generation_clipped_to_its_size() -> None:
    spans = [
        Span(file_id=1, generation=2, start=100, pos=200),  # counted
        Span(file_id=1, generation=1, start=300, pos=400),  # an older version: void
        Span(file_id=2, generation=2, start=500, pos=600),  # another file
        Span(file_id=1, generation=2, start=900, pos=1200),  # past the end: clipped
        Span(file_id=1, generation=2, start=1100, pos=1200),  # wholly past the end
    ]
    kept = RangeSet([(0, 50)])
    folded = fold(kept, spans, file_id=1, generation=2, size=1000)
    assert list(folded) == [(0, 50), (100, 200), (900, 1000)]
    assert list(kept) == [(0, 50)]  # a new set
