"""The plan of a tar made from a shard's member map (sa1b.repack), and the map as the
store keeps it (sa1b.store.repacks)."""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from sa1b.errors import ExtractionError
from sa1b.repack import Copied, Made, Mapped, Output, output_key, plan_output
from sa1b.store.repacks import (
    MapForgotten,
    MapReached,
    MapStart,
    load_map,
    save_maps,
)
from sa1b.store.state import StateStore
from sa1b.tarformat import ustar_header
from sa1b.tarwalk import Entry
from sa1b.versions import Validator
from tests.wdstar import wds_tar

T = 1_680_566_400
SOURCE = bytes(range(256)) * 40  # what the member offsets point into
# A shard's members in random order, as SA-1B's are: sa_10 before sa_2, a json before its jpg.
MAP = (
    Mapped("sa_10.json", 512, 700, T),
    Mapped("sa_2.jpg", 2048, 1000, T),
    Mapped("sa_10.jpg", 3584, 3, T),
    Mapped("sa_2.json", 4096, 0, T),
    Mapped("notes.txt", 4608, 40, T + 1),
)


def assembled(map_: tuple[Mapped, ...], output: Output, cuts: list[int]) -> bytes:
    """The new tar, filled cut by cut as parts are."""
    plan = plan_output(map_, output, shard="sa_000001.tar")
    out = bytearray(plan.size)
    edges = sorted({0, plan.size, *(c % (plan.size + 1) for c in cuts)})
    for start, end in itertools.pairwise(edges):
        covered = start
        for piece in plan.fill(start, end):
            assert piece.at == covered  # in order, no gap, no overlap
            if isinstance(piece, Made):
                out[piece.at : piece.at + len(piece.data)] = piece.data
                covered += len(piece.data)
            else:
                out[piece.at : piece.at + piece.length] = SOURCE[piece.source :][: piece.length]
                covered += piece.length
        assert covered == end
    return bytes(out)


def expected(map_: tuple[Mapped, ...], keep: str) -> bytes:
    chosen = [m for m in map_ if keep == "wds" or m.name.endswith(f".{keep}")]
    return wds_tar(((m.name, SOURCE[m.offset : m.offset + m.size]) for m in chosen), mtime=T)


PLANS = {  # output: the members in the new tar, in order
    "wds": ["sa_2.jpg", "sa_2.json", "sa_10.jpg", "sa_10.json", "notes.txt"],
    "json": ["sa_2.json", "sa_10.json"],
    "jpg": ["sa_2.jpg", "sa_10.jpg"],
}


@pytest.mark.parametrize(("output", "names"), PLANS.items(), ids=PLANS.keys())
def test_a_plan_keeps_its_members_in_sample_order_and_its_catalog_says_where(
    output: Output, names: list[str]
) -> None:
    plan = plan_output(MAP, output, shard="sa_000001.tar")
    data = assembled(MAP, output, [])
    assert [entry.name for entry in plan.entries] == names
    by_name = {m.name: m for m in MAP}
    for entry in plan.entries:  # the catalog: each member's data in the new tar
        source = by_name[entry.name]
        assert (
            data[entry.offset : entry.offset + entry.size] == SOURCE[source.offset :][: source.size]
        )
    assert plan.size == len(data)
    assert output_key(output, "sa_000001.tar") == f"{output}/sa_000001.tar"


def test_a_wds_plan_makes_the_tar_python_s_tarfile_makes() -> None:
    mtime_one = tuple(Mapped(m.name, m.offset, m.size, T) for m in MAP)
    assert assembled(mtime_one, "wds", []) == expected(mtime_one, "wds")
    assert assembled(mtime_one, "json", []) == expected(mtime_one, "json")


def test_a_header_keeps_its_member_s_mtime() -> None:
    plan = plan_output(MAP, "wds", shard="sa_000001.tar")
    data = assembled(MAP, "wds", [])
    notes = next(e for e in plan.entries if e.name == "notes.txt")
    assert data[notes.offset - 512 : notes.offset] == ustar_header(
        "notes.txt", size=40, mtime=T + 1
    )


FILLS = {  # (start, end) of the json tar: what fills it
    "a header, then data": (
        (0, 600),
        [Made, Copied],
    ),
    "inside one member's data": ((600, 700), [Copied]),
    "data, its padding, the next header, its data": ((1000, 2100), [Copied, Made, Made, Copied]),
    "the end blocks alone": ((-1024, 0), [Made]),
}


@pytest.mark.parametrize(("span", "kinds"), FILLS.values(), ids=FILLS.keys())
def test_a_part_is_made_bytes_and_copied_spans(span: tuple[int, int], kinds: list[type]) -> None:
    map_ = (Mapped("sa_1.json", 10_000, 900, T), Mapped("sa_2.json", 20_000, 100, T))
    plan = plan_output(map_, "json", shard="sa_000001.tar")
    start, end = span if span[0] >= 0 else (plan.size + span[0], plan.size)
    pieces = list(plan.fill(start, end))
    assert [type(p) for p in pieces] == kinds
    copied = [p for p in pieces if isinstance(p, Copied)]
    if span == (600, 700):  # bytes 600-700 of the tar: 88-188 of sa_1.json's data
        assert copied == [Copied(600, 10_088, 100)]


@given(st.lists(st.integers(min_value=0, max_value=20_000), max_size=12))
def test_any_cut_into_parts_fills_the_same_tar(cuts: list[int]) -> None:
    assert assembled(MAP, "wds", cuts) == assembled(MAP, "wds", [])


def test_a_name_no_ustar_header_holds_fails_the_shard_before_any_request() -> None:
    with pytest.raises(ExtractionError, match="cannot write"):
        plan_output([Mapped("x" * 101 + ".json", 512, 1, T)], "json", shard="sa_000001.tar")


def test_an_empty_map_is_the_end_blocks_alone() -> None:
    plan = plan_output([], "json", shard="sa_000001.tar")
    assert plan.size == 1024 and list(plan.fill(0, 1024)) == [Made(0, bytes(1024))]


@pytest.fixture
def store(tmp_path: Path) -> Iterator[StateStore]:
    with StateStore(tmp_path / "state", state=tmp_path / "state") as opened:
        yield opened


def test_a_map_is_saved_as_it_goes_and_forgotten_when_done(store: StateStore) -> None:
    file_id = store.register("sa_000001.tar", "sa_000001.tar").id
    source = Validator('"etag-1"', None)
    first, second = MAP[:2], MAP[2:]
    save_maps(store, [MapStart(file_id, 8192, source), MapReached(file_id, 2048, first)])
    save_maps(store, [MapReached(file_id, 4096, second[:1]), MapReached(file_id, 8192, second[1:])])
    saved = load_map(store, file_id)
    assert saved is not None
    assert (saved.size, saved.validator, saved.next, saved.complete) == (8192, source, 8192, True)
    assert saved.members == MAP  # mtimes too
    save_maps(store, [MapStart(file_id, 9000, source)])  # a new version: the map starts again
    restarted = load_map(store, file_id)
    assert restarted is not None and restarted.members == () and not restarted.complete
    save_maps(store, [MapForgotten(file_id)])
    assert load_map(store, file_id) is None


def test_an_entry_keeps_no_mtime() -> None:  # the catalog's format is unchanged
    plan = plan_output(MAP[:1], "json", shard="sa_000001.tar")
    assert plan.entries == [Entry("sa_10.json", 512, 700)]
