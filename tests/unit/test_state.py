"""The SQLite state store: files, ranges by generation, runs, and the folder lock."""

from __future__ import annotations

import shutil
import sqlite3
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from sa1b.errors import StateError, StateLockedError
from sa1b.ranges import RangeSet
from sa1b.records import FileRecord, RunRecord
from sa1b.store import state as state_module
from sa1b.store.paths import WORK_DIR
from sa1b.store.state import StateStore
from sa1b.versions import Validator

KEY = "scontent.xx.fbcdn.net/m1/v/t6/obj0.tar"


class FakeTime:
    def __init__(self) -> None:
        self.now = 1_700_000_000.0

    def time(self) -> float:
        return self.now


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> FakeTime:
    fake = FakeTime()
    monkeypatch.setattr(state_module, "time", fake)
    return fake


@pytest.fixture
def store(tmp_path: Path) -> Iterator[StateStore]:
    with StateStore(tmp_path) as opened:
        yield opened


def test_creates_the_state_in_the_output_folder(tmp_path: Path) -> None:
    out = tmp_path / "out"
    with StateStore(out):
        assert (out / WORK_DIR / "state.db").is_file()
        assert (out / WORK_DIR / "lock").is_file()


def test_the_state_can_live_elsewhere(tmp_path: Path) -> None:
    out, local = tmp_path / "shared" / "out", tmp_path / "local" / "state"
    out.mkdir(parents=True)
    with StateStore(out, state=local) as store:
        store.register("sa_000001.tar", KEY)
        assert (local / "state.db").is_file() and (local / "lock").is_file()
        assert not (out / WORK_DIR / "state.db").exists()
    with StateStore(out, state=local, lock=False, create=False) as again:
        assert [r.name for r in again.records()] == ["sa_000001.tar"]


def test_create_false_on_a_folder_without_state(tmp_path: Path) -> None:
    with pytest.raises(StateError) as info:
        StateStore(tmp_path, create=False)
    assert str(tmp_path) in str(info.value)
    assert info.value.hint
    assert not (tmp_path / WORK_DIR).exists()


def test_register_and_get(store: StateStore) -> None:
    record = store.register("sa_000001.tar", KEY)
    assert isinstance(record, FileRecord)
    assert record.name == "sa_000001.tar"
    assert record.object_key == KEY
    assert record.size is None
    assert record.validator == Validator(None, None)
    assert record.generation == 0
    assert record.status == "pending"
    assert record.error is None
    assert record.ranges == RangeSet()
    assert record.done_bytes == 0
    assert store.get("sa_000001.tar") == record
    assert store.get("sa_000002.tar") is None


def test_register_again_keeps_id_and_updates_object_key(store: StateStore) -> None:
    first = store.register("sa_000001.tar", KEY)
    store.set_identity(first.id, 100, Validator('"e"', None))
    again = store.register("sa_000001.tar", KEY + "-reissued")
    assert again.id == first.id
    assert again.object_key == KEY + "-reissued"
    assert again.size == 100  # what was known survives a re-register


def test_records_sorted_by_name(store: StateStore) -> None:
    for name in ["sa_000020.tar", "sa_000003.tar", "sa_images_ids.txt", "sa_000100.tar"]:
        store.register(name, KEY + name)
    names = [record.name for record in store.records()]
    assert names == sorted(names)
    assert len(names) == 4
    assert len({record.id for record in store.records()}) == 4


def test_set_identity(store: StateStore) -> None:
    record = store.register("sa_000001.tar", KEY)
    validator = Validator('"abc"', "Wed, 21 Oct 2015 07:28:00 GMT")
    store.set_status(record.id, "failed", "boom")
    store.set_identity(record.id, 10_737_418_240, validator)
    got = store.get("sa_000001.tar")
    assert got is not None
    assert got.size == 10_737_418_240
    assert got.validator == validator
    assert got.status == "partial"
    assert got.error is None


def test_set_sizes_registers_and_keeps_a_known_size(store: StateStore) -> None:
    known = store.register("a.tar", KEY)
    store.set_identity(known.id, 500, Validator('"old"'))
    store.set_sizes(
        [("a.tar", KEY, 900, Validator('"new"')), ("b.tar", "h/b", 1000, Validator('"b"'))]
    )
    found = {r.name: (r.size, r.validator.etag, r.status, r.object_key) for r in store.records()}
    assert found == {
        "a.tar": (500, '"old"', "partial", KEY),
        "b.tar": (1000, '"b"', "pending", "h/b"),
    }


def test_save_ranges_replaces_them(store: StateStore) -> None:
    a = store.register("a.tar", KEY + "a")
    b = store.register("b.tar", KEY + "b")
    store.save_ranges({a.id: (0, RangeSet([(0, 10), (20, 30)])), b.id: (0, RangeSet([(5, 6)]))})
    got_a, got_b = store.get("a.tar"), store.get("b.tar")
    assert got_a is not None
    assert got_b is not None
    assert list(got_a.ranges) == [(0, 10), (20, 30)]
    assert got_a.done_bytes == 20
    assert list(got_b.ranges) == [(5, 6)]
    store.save_ranges({a.id: (0, RangeSet([(0, 40)]))})
    got_a, got_b = store.get("a.tar"), store.get("b.tar")
    assert got_a is not None
    assert got_b is not None
    assert list(got_a.ranges) == [(0, 40)]  # replaced, not merged
    assert list(got_b.ranges) == [(5, 6)]  # untouched
    store.save_ranges({a.id: (0, RangeSet())})
    got_a = store.get("a.tar")
    assert got_a is not None
    assert not got_a.ranges


def test_save_ranges_empty_mapping_and_unknown_file(store: StateStore) -> None:
    record = store.register("a.tar", KEY)
    store.save_ranges({})
    store.save_ranges({record.id + 999: (0, RangeSet([(0, 5)]))})
    assert store.records()[0].ranges == RangeSet()


def test_restart_bumps_generation_clears_ranges_and_identity(store: StateStore) -> None:
    record = store.register("a.tar", KEY)
    store.set_identity(record.id, 1000, Validator('"e"', "lm"))
    store.save_ranges({record.id: (0, RangeSet([(0, 500)]))})
    assert store.restart(record.id) == 1
    got = store.get("a.tar")
    assert got is not None
    assert got.generation == 1
    assert got.ranges == RangeSet()
    assert got.size is None
    assert got.validator == Validator(None, None)
    assert got.status == "pending"
    assert store.restart(record.id) == 2


def test_save_ranges_skips_a_stale_generation(store: StateStore) -> None:
    a = store.register("a.tar", KEY + "a")
    b = store.register("b.tar", KEY + "b")
    generation = store.restart(a.id)
    store.save_ranges(
        {
            a.id: (generation - 1, RangeSet([(0, 100)])),  # written before the restart
            b.id: (0, RangeSet([(0, 7)])),
        }
    )
    got_a, got_b = store.get("a.tar"), store.get("b.tar")
    assert got_a is not None
    assert got_b is not None
    assert got_a.ranges == RangeSet()
    assert list(got_b.ranges) == [(0, 7)]  # the rest of the batch is still saved
    store.save_ranges({a.id: (generation, RangeSet([(0, 3)]))})
    got_a = store.get("a.tar")
    assert got_a is not None
    assert list(got_a.ranges) == [(0, 3)]


def test_status_and_done_bytes(store: StateStore) -> None:
    record = store.register("a.tar", KEY)
    store.set_identity(record.id, 1000, Validator())
    store.save_ranges({record.id: (0, RangeSet([(0, 10)]))})
    store.set_status(record.id, "expired", "link expired")
    got = store.get("a.tar")
    assert got is not None
    assert (got.status, got.error, got.done_bytes) == ("expired", "link expired", 10)
    store.set_status(record.id, "done")
    got = store.get("a.tar")
    assert got is not None
    assert (got.status, got.error, got.done_bytes) == ("done", None, 1000)


def test_set_statuses_records_several_files_and_clears_their_errors(store: StateStore) -> None:
    first, second = store.register("a.tar", KEY), store.register("b.tar", KEY)
    store.register("c.tar", KEY)
    store.set_status(first.id, "failed", "boom")
    store.set_statuses([first.id, second.id], "done")
    found = {record.name: (record.status, record.error) for record in store.records()}
    assert found == {"a.tar": ("done", None), "b.tar": ("done", None), "c.tar": ("pending", None)}


def test_runs_and_last_run_speed(store: StateStore, clock: FakeTime) -> None:
    assert store.last_run() is None
    first = store.start_run()
    assert store.last_run() is None  # unfinished runs do not count
    clock.now += 100
    store.finish_run(first, fetched=500_000_000, outcome="ok")
    second = store.start_run()
    assert second != first
    last = store.last_run()
    assert isinstance(last, RunRecord)
    assert last.id == first
    assert last.bytes == 500_000_000
    assert last.outcome == "ok"
    assert last.speed == pytest.approx(5_000_000)
    clock.now += 10
    store.finish_run(second, fetched=1000, outcome="interrupted")
    last = store.last_run()
    assert last is not None
    assert (last.id, last.outcome, last.speed) == (second, "interrupted", pytest.approx(100))


def test_run_speed_edge_cases() -> None:
    assert RunRecord(1, 10.0, None, 5, None).speed is None
    assert RunRecord(1, 10.0, 10.0, 5, "ok").speed is None
    assert RunRecord(1, 10.0, 9.0, 5, "ok").speed is None
    assert RunRecord(1, 10.0, 12.0, 5, "ok").speed == 2.5


def test_data_survives_reopening(tmp_path: Path) -> None:
    with StateStore(tmp_path) as first:
        record = first.register("a.tar", KEY)
        first.set_identity(record.id, 99, Validator('"e"', None))
        first.save_ranges({record.id: (0, RangeSet([(0, 9)]))})
    with StateStore(tmp_path, create=False) as second:
        got = second.get("a.tar")
        assert got is not None
        assert (got.size, list(got.ranges), got.validator.etag) == (99, [(0, 9)], '"e"')


def test_second_store_is_locked_out_until_the_first_closes(tmp_path: Path) -> None:
    first = StateStore(tmp_path)
    try:
        with pytest.raises(StateLockedError) as info:
            StateStore(tmp_path)
        assert isinstance(info.value, StateError)
        assert str(tmp_path) in str(info.value)
        assert info.value.hint
        lock_text = (tmp_path / WORK_DIR / "lock").read_text()
        assert lock_text.strip().isdigit()
        assert lock_text.strip() in str(info.value)  # names the holder's pid
    finally:
        first.close()
    with StateStore(tmp_path) as second:
        assert second.register("a.tar", KEY).name == "a.tar"


def test_readers_without_lock_work_while_locked(tmp_path: Path) -> None:
    with StateStore(tmp_path) as writer:
        record = writer.register("a.tar", KEY)
        writer.save_ranges({record.id: (0, RangeSet([(0, 5)]))})
        with StateStore(tmp_path, lock=False, create=False) as reader:
            got = reader.get("a.tar")
            assert got is not None
            assert list(got.ranges) == [(0, 5)]
            writer.save_ranges({record.id: (0, RangeSet([(0, 8)]))})
            got = reader.get("a.tar")
            assert got is not None
            assert list(got.ranges) == [(0, 8)]  # sees committed writes
        with pytest.raises(StateLockedError):
            StateStore(tmp_path)  # the reader did not disturb the lock


def test_close_twice_is_harmless(tmp_path: Path) -> None:
    store = StateStore(tmp_path)
    store.close()
    store.close()
    with StateStore(tmp_path) as again:
        assert again.records() == []


def _damage_truncated(db: Path) -> None:
    data = db.read_bytes()
    db.write_bytes(data[: len(data) // 2])


def _damage_page(db: Path) -> None:
    data = bytearray(db.read_bytes())
    data[4096 + 8 : 4096 + 400] = b"\xa5" * 392  # inside the second page (a table's b-tree)
    db.write_bytes(bytes(data))


def _damage_version(db: Path) -> None:
    with sqlite3.connect(db) as connection:
        connection.execute("UPDATE meta SET value = 'x1' WHERE key = 'schema'")
    connection.close()


DAMAGE = {
    "not-a-database": lambda db: db.write_bytes(b"this is not a database" * 100),
    "schema-version-unreadable": _damage_version,
    "truncated": _damage_truncated,
    "page-overwritten": _damage_page,
}


def _store_with_a_record(out: Path) -> Path:
    with StateStore(out) as store:
        record = store.register("sa_000001.tar", KEY)
        store.set_identity(record.id, 1000, Validator('"v1"'))
        store.save_ranges({record.id: (record.generation, RangeSet([(0, 500)]))})
        for i in range(200):  # enough rows for several pages
            store.register(f"extra_{i:04d}.txt", f"{KEY}/{i}")
    with StateStore(out) as store:  # a clean close checkpoints the WAL into state.db
        pass
    return (out / WORK_DIR) / "state.db"


@pytest.mark.parametrize("damage", DAMAGE.values(), ids=DAMAGE.keys())
def test_a_damaged_database_is_set_aside_and_trusted_for_nothing(
    damage: Callable[[Path], None], tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    db = _store_with_a_record(tmp_path)
    damage(db)
    with pytest.raises(StateError, match="damaged"):  # a reader only reports it
        StateStore(tmp_path, lock=False, create=False)
    with StateStore(tmp_path) as store:  # the owner sets it aside and starts afresh
        assert store.records() == []
    assert ((tmp_path / WORK_DIR) / "state.db.damaged").exists()
    assert "set aside as state.db.damaged" in caplog.text


def test_a_store_copied_from_another_folder_keeps_only_its_finished_files(tmp_path: Path) -> None:
    first, second = tmp_path / "first", tmp_path / "second"
    first.mkdir()
    _store_with_a_record(first)
    with StateStore(first) as store:
        done = store.register("sa_000002.tar", KEY + "2")
        store.set_identity(done.id, 2000, Validator('"v2"'))
        store.set_status(done.id, "done")
    shutil.copytree((first / WORK_DIR), (second / WORK_DIR))
    with StateStore(second) as store:
        records = {r.name: r for r in store.records()}
    partial, finished = records["sa_000001.tar"], records["sa_000002.tar"]
    assert (partial.size, partial.status, list(partial.ranges)) == (None, "pending", [])
    assert partial.generation == 1  # the journal's spans of generation 0 are void too
    assert (finished.size, finished.status) == (2000, "done")
    with StateStore(first) as store:  # the original is still trusted where it lives
        (record,) = [r for r in store.records() if r.name == "sa_000001.tar"]
        assert (record.size, list(record.ranges)) == (1000, [(0, 500)])


def test_a_folder_renamed_in_place_keeps_its_store(tmp_path: Path) -> None:
    _store_with_a_record(tmp_path / "before")
    (tmp_path / "before").rename(tmp_path / "after")
    with StateStore(tmp_path / "after") as store:
        (record,) = [r for r in store.records() if r.name == "sa_000001.tar"]
        assert list(record.ranges) == [(0, 500)]


def record(**changes: object) -> FileRecord:
    base: dict[str, object] = {
        "id": 1, "name": "sa_000001.tar", "object_key": KEY, "size": 1000,
        "validator": Validator(), "generation": 0, "status": "partial", "error": None,
        "ranges": RangeSet([(0, 500)]),
    }  # fmt: skip
    return FileRecord(**{**base, **changes})  # type: ignore[arg-type]


CONSISTENCY = {
    "partial": (record(), True),
    "done": (record(status="done", ranges=RangeSet([(0, 1000)])), True),
    "pending-unknown-size": (record(size=None, status="pending", ranges=RangeSet()), True),
    "range-past-size": (record(ranges=RangeSet([(0, 1001)])), False),
    "ranges-without-size": (record(size=None, status="pending"), False),
    "partial-without-size": (record(size=None, ranges=RangeSet()), False),
    "zero-size": (record(size=0, ranges=RangeSet()), False),
    "implausible-size": (record(size=2**50), False),
    "unknown-status": (record(status="finished"), False),
    "negative-generation": (record(generation=-1), False),
    "extracted": (record(status="done", extracted="split"), True),
    "extracted-unknown-layout": (record(status="done", extracted="\x1b[2J"), False),
}


@pytest.mark.parametrize(("entry", "expected"), CONSISTENCY.values(), ids=CONSISTENCY.keys())
def test_record_consistency(entry: FileRecord, expected: bool) -> None:
    assert entry.consistent is expected


def test_concurrent_writers_from_threads(store: StateStore) -> None:
    ids = [store.register(f"f{i}.tar", f"{KEY}{i}").id for i in range(8)]

    def work(file_id: int) -> None:
        for end in range(1, 30):
            store.save_ranges({file_id: (0, RangeSet([(0, end)]))})

    threads = [threading.Thread(target=work, args=(file_id,)) for file_id in ids]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert [list(record.ranges) for record in store.records()] == [[(0, 29)]] * 8


def _error_of(action: Callable[[], object]) -> sqlite3.Error:
    with pytest.raises(sqlite3.Error) as info:
        action()
    return info.value


def test_only_damage_to_the_file_counts_as_damage(tmp_path: Path) -> None:
    garbage = tmp_path / "garbage.db"
    garbage.write_bytes(b"not a database at all" * 300)
    busy = tmp_path / "busy.db"
    holder = sqlite3.connect(busy, isolation_level=None)
    holder.execute("CREATE TABLE t (x)")
    holder.execute("BEGIN EXCLUSIVE")
    try:
        locked = _error_of(lambda: sqlite3.connect(busy, timeout=0).execute("SELECT * FROM t"))
    finally:
        holder.close()
    read_only = _error_of(
        lambda: sqlite3.connect(f"file:{busy}?mode=ro", uri=True).execute(
            "INSERT INTO t VALUES (1)"
        )
    )
    assert state_module._is_damage(
        _error_of(lambda: sqlite3.connect(garbage).execute("SELECT 1 FROM sqlite_master"))
    )
    assert not state_module._is_damage(locked)  # a busy store is never thrown away
    assert not state_module._is_damage(read_only)
