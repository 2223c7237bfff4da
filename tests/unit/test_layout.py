"""Where each member goes, and which members make a shard unsafe. Pure: no files are touched."""

from __future__ import annotations

import pickle
from pathlib import PurePosixPath

import pytest
from hypothesis import given
from hypothesis import strategies as st

from sa1b.errors import ExtractionError, UnsafeMemberError
from sa1b.layout import (
    LAYOUTS,
    RULES,
    Layout,
    archive_of,
    archived,
    member_target,
    normalise,
    partner,
    sample_key,
    sample_order,
    shard_stem,
)
from sa1b.tarformat import Header

SHARD = "sa_000123.tar"
STEM = "sa_000123"


def regular(name: str, size: int = 10) -> Header:
    return Header(name=name, size=size, typeflag=b"0")


def target(name: str, layout: Layout = "shard", *, typeflag: bytes = b"0") -> PurePosixPath | None:
    return member_target(Header(name=name, size=0, typeflag=typeflag), shard=SHARD, layout=layout)


def refused(header: Header, layout: Layout = "shard") -> UnsafeMemberError:
    with pytest.raises(UnsafeMemberError) as caught:
        member_target(header, shard=SHARD, layout=layout)
    error = caught.value
    assert error.shard == SHARD
    assert error.name == SHARD
    assert error.member == header.name
    return error


# -- normalise ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("member", "expected"),
    [
        ("sa_1.jpg", "sa_1.jpg"),
        ("./sa_1.jpg", "sa_1.jpg"),
        ("././sa_1.jpg", "sa_1.jpg"),
        (".//sa_1.jpg", "sa_1.jpg"),
        (f"{STEM}/sa_1.jpg", "sa_1.jpg"),
        (f"./{STEM}/sa_1.jpg", "sa_1.jpg"),
        (f"./{STEM}/./sa_1.jpg", "sa_1.jpg"),
        (f"{STEM}//sa_1.jpg", "sa_1.jpg"),
        (f"{STEM}/", ""),
        ("./", ""),
        (".", ""),
        ("", ""),
        # only one inner shard folder, and only the shard's own, is removed
        (f"{STEM}/{STEM}/sa_1.jpg", f"{STEM}/sa_1.jpg"),
        ("sa_000124/sa_1.jpg", "sa_000124/sa_1.jpg"),
        (f"sub/{STEM}/sa_1.jpg", f"sub/{STEM}/sa_1.jpg"),
        (f"{STEM}/sub/sa_1.jpg", "sub/sa_1.jpg"),
        (f"{STEM}.tar/sa_1.jpg", f"{STEM}.tar/sa_1.jpg"),
    ],
)
def test_normalise(member: str, expected: str) -> None:
    assert normalise(member, shard=SHARD) == expected
    assert normalise(member, shard=STEM) == expected  # the shard with or without .tar


def test_shard_stem() -> None:
    assert shard_stem("sa_000123.tar") == "sa_000123"
    assert shard_stem("sa_000123") == "sa_000123"


@given(st.lists(st.sampled_from([".", "", STEM]), max_size=4))
def test_normalise_prefixes_never_change_the_file_name(prefix: list[str]) -> None:
    name = "/".join([*prefix, "sa_1.jpg"])
    result = normalise(name, shard=SHARD)
    if prefix.count(STEM) <= 1:
        assert result == "sa_1.jpg"
    assert result.endswith("sa_1.jpg")
    assert not result.startswith(("/", "./"))


# -- member_target: where good members go -------------------------------------------------


@pytest.mark.parametrize(
    ("member", "layout", "expected"),
    [
        ("sa_1.jpg", "shard", f"{STEM}/sa_1.jpg"),
        ("sa_1.json", "shard", f"{STEM}/sa_1.json"),
        ("./sa_1.jpg", "shard", f"{STEM}/sa_1.jpg"),
        (f"{STEM}/sa_1.json", "shard", f"{STEM}/sa_1.json"),
        ("sa_1.jpg", "split", f"images/{STEM}/sa_1.jpg"),
        ("sa_1.JPG", "split", f"images/{STEM}/sa_1.JPG"),
        ("./sa_1.json", "split", f"annotations/{STEM}/sa_1.json"),
        (f"{STEM}/sa_1.Json", "split", f"annotations/{STEM}/sa_1.Json"),
        ("README.txt", "split", f"other/{STEM}/README.txt"),
        ("sa_1", "split", f"other/{STEM}/sa_1"),
        ("sa_1.jpeg", "split", f"other/{STEM}/sa_1.jpeg"),
        ("sa_1.jpg", "flat", "sa_1.jpg"),
        (f"./{STEM}/sa_1.json", "flat", "sa_1.json"),
        ("README.txt", "flat", "README.txt"),
        ("a" * 200, "shard", f"{STEM}/{'a' * 200}"),
        ("sa_1.jpg", "wds", f"wds/{STEM}.tar/sa_1.jpg"),
        (f"./{STEM}/sa_1.json", "wds", f"wds/{STEM}.tar/sa_1.json"),
        ("README.txt", "wds", f"wds/{STEM}.tar/README.txt"),
        ("a" * 100, "wds", f"wds/{STEM}.tar/{'a' * 100}"),
    ],
)
def test_member_target(member: str, layout: Layout, expected: str) -> None:
    assert member_target(regular(member), shard=SHARD, layout=layout) == PurePosixPath(expected)


@pytest.mark.parametrize("layout", LAYOUTS)
def test_old_style_regular_typeflag(layout: Layout) -> None:
    assert target("sa_1.jpg", layout, typeflag=b"\x00") is not None


@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("name", ["./", f"{STEM}/", f"./{STEM}/", "anything/", "sub/dir"])
def test_directories_are_skipped(layout: Layout, name: str) -> None:
    assert target(name, layout, typeflag=b"5") is None


@pytest.mark.parametrize("layout", LAYOUTS)
def test_targets_are_relative_and_plain(layout: Layout) -> None:
    path = target(f"./{STEM}/sa_42.jpg", layout)
    assert path is not None
    assert not path.is_absolute()
    assert ".." not in path.parts
    assert path.name == "sa_42.jpg"


# -- member_target: what makes a shard unsafe ---------------------------------------------


@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize(
    ("typeflag", "linkname", "words"),
    [
        (b"1", "sa_1.json", "hard link"),
        (b"1", "/etc/passwd", "hard link"),
        (b"2", "/etc/passwd", "symbolic link"),
        (b"2", "../../outside", "symbolic link"),
        (b"2", "sa_1.json", "symbolic link"),
        (b"3", "", "character device"),
        (b"4", "", "block device"),
        (b"6", "", "FIFO"),
        (b"7", "", "contiguous file"),
        (b"S", "", "unknown"),
        (b"V", "", "unknown"),
    ],
)
def test_links_and_devices_are_unsafe(
    layout: Layout, typeflag: bytes, linkname: str, words: str
) -> None:
    header = Header(name="./sa_1.jpg", size=0, typeflag=typeflag, linkname=linkname)
    error = refused(header, layout)
    assert words in error.message
    assert "./sa_1.jpg" in error.message
    if linkname:
        assert linkname in error.message


def test_unsafe_error_is_an_extraction_error_that_pickles() -> None:
    error = refused(Header(name="sa_1.jpg", size=0, typeflag=b"2", linkname="/etc/shadow"))
    assert isinstance(error, ExtractionError)
    assert error.hint  # tells the user the shard is left unextracted
    copy = pickle.loads(pickle.dumps(error))
    assert type(copy) is UnsafeMemberError
    assert (copy.shard, copy.member, copy.message) == (error.shard, error.member, error.message)


@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize(
    "name",
    [
        "/etc/passwd",
        "/tmp/x",
        "/sa_1.jpg",
        "//sa_1.jpg",
        f"/{STEM}/sa_1.jpg",
        "/",
    ],
)
@pytest.mark.parametrize("typeflag", [b"0", b"5", b"2"])
def test_absolute_paths(layout: Layout, name: str, typeflag: bytes) -> None:
    error = refused(Header(name=name, size=0, typeflag=typeflag), layout)
    assert "absolute" in error.message


@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize(
    "name",
    [
        "..",
        "../sa_1.jpg",
        "../../../../etc/passwd",
        "./../sa_1.jpg",
        f"{STEM}/../sa_1.jpg",
        f"{STEM}/../../x",
        "a/b/../../../x",
        "sa_1.jpg/..",
        f"{STEM}/..",
        "./..",
    ],
)
@pytest.mark.parametrize("typeflag", [b"0", b"5"])
def test_dot_dot_anywhere(layout: Layout, name: str, typeflag: bytes) -> None:
    error = refused(Header(name=name, size=0, typeflag=typeflag), layout)
    assert ".." in error.message


@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize(
    "name",
    [
        "..\\sa_1.jpg",
        "sub\\sa_1.jpg",
        "C:\\Windows\\x",
        "sa_1.jpg\\",
        "sa_1.jpg\x00.png",
        "\x00",
        "./\x00/sa_1.jpg",
    ],
)
def test_backslashes_and_nuls(layout: Layout, name: str) -> None:
    refused(regular(name), layout)


@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize(
    "name",
    [
        ".hidden",
        ".sa1b",
        "._sa_1.jpg",
        "./.DS_Store",
        f"{STEM}/.sa_1.jpg",
        "...",
        "sa..1.jpg",
    ],
)
def test_hidden_and_dotted_names(layout: Layout, name: str) -> None:
    error = refused(regular(name), layout)
    assert name[:20] in error.message


@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize(
    "name",
    [
        "",
        ".",
        "./",
        STEM,  # the shard folder as a regular file: nothing is left of the name
        f"./{STEM}",
        "sub/sa_1.jpg",  # nested folders stay: not a plain name
        f"{STEM}/sub/sa_1.jpg",
        f"{STEM}/{STEM}/sa_1.jpg",
        "sa_000124/sa_1.jpg",  # another shard's folder
        "-sa_1.jpg",
        "_sa_1.jpg",
        "sa 1.jpg",
        "sa_1.jpg\n",
        "sa_1:jpg",
        "sa_1*.jpg",
        "画像.jpg",
        "sa_1é.jpg",
        "a" * 201,
    ],
)
def test_names_that_are_not_plain_after_normalisation(layout: Layout, name: str) -> None:
    refused(regular(name), layout)


def test_refusal_message_is_bounded() -> None:
    name = "x/" * 2000 + "sa_1.jpg"
    error = refused(regular(name))
    assert len(error.message) < 300
    assert error.member == name  # the full name stays available


@given(st.text(max_size=60))
def test_accepted_targets_never_escape(name: str) -> None:
    for layout in LAYOUTS:
        try:
            path = member_target(regular(name), shard=SHARD, layout=layout)
        except UnsafeMemberError:
            continue
        assert path is not None
        assert not path.is_absolute()
        assert all(part not in ("", ".", "..") for part in path.parts)
        assert "\\" not in str(path)
        assert "\x00" not in str(path)
        assert not path.name.startswith(".")
        expected_depth = {"shard": 2, "split": 3, "flat": 1, "wds": 3}[layout]
        assert len(path.parts) == expected_depth


# -- partner ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("sa_1.jpg", "sa_1.json"),
        ("sa_1.json", "sa_1.jpg"),
        ("sa_1.JPG", "sa_1.json"),
        ("sa_1.JSON", "sa_1.jpg"),
        ("sa_226381.json", "sa_226381.jpg"),
        (f"{STEM}/sa_1.jpg", f"{STEM}/sa_1.json"),
        ("sa_1.txt", None),
        ("sa_1", None),
        ("sa_1.jpeg", None),
        ("README", None),
    ],
)
def test_partner(name: str, expected: str | None) -> None:
    assert partner(name) == expected


@given(st.from_regex(r"sa_[0-9]{1,8}", fullmatch=True))
def test_partner_is_an_involution(stem: str) -> None:
    for name in (f"{stem}.jpg", f"{stem}.json"):
        other = partner(name)
        assert other is not None
        assert other != name
        assert partner(other) == name


def test_every_layout_the_cli_offers_is_one_rule() -> None:
    assert tuple(RULES) == LAYOUTS
    for rule in RULES.values():  # a rule's units contain every member it places
        units = rule.units("sa_000001")
        for name in ("sa_1.jpg", "sa_1.json", "readme.txt"):
            place = rule.place(name, "sa_000001")
            assert not units or any(unit in place.parents for unit in units), (rule, place)


# -- wds: one tar per shard, grouped by sample ---------------------------------------------


def test_wds_refuses_a_name_a_ustar_header_cannot_hold() -> None:
    error = refused(regular("a" * 101), "wds")
    assert "longer than a ustar header holds (100 bytes)" in error.message
    assert target("a" * 101, "shard") is not None  # the other layouts take it


@pytest.mark.parametrize("name", ["wds", "tars"])
def test_flat_never_replaces_sa1bs_own_folders(name: str) -> None:
    assert "sa1b's own folder" in refused(regular(name), "flat").message


def test_only_wds_writes_an_archive() -> None:
    assert archive_of("wds", SHARD) == PurePosixPath(f"wds/{STEM}.tar")
    assert [layout for layout in LAYOUTS if archive_of(layout, SHARD)] == ["wds"]


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        (f"wds/{STEM}.tar/sa_1.jpg", (f"wds/{STEM}.tar", "sa_1.jpg")),
        (f"wds/{STEM}.tar/README.txt", (f"wds/{STEM}.tar", "README.txt")),
        (f"{STEM}/sa_1.jpg", None),  # shard
        (f"images/{STEM}/sa_1.jpg", None),  # split
        ("sa_1.jpg", None),  # flat
        (f"other/{STEM}/x.tar", None),  # a member named .tar is a file of its own
        (f"wds/{STEM}.tar", None),  # the tar itself
        (f"wds/{STEM}/sa_1.jpg", None),
    ],
)
def test_archived(path: str, expected: tuple[str, str] | None) -> None:
    found = archived(PurePosixPath(path))
    assert (None if found is None else (str(found[0]), found[1])) == expected


@given(
    st.sampled_from(LAYOUTS),
    st.from_regex(r"[A-Za-z0-9][A-Za-z0-9_-]{0,40}(\.[A-Za-z0-9_-]{1,8}){0,2}", fullmatch=True),
)
def test_only_a_wds_place_is_inside_an_archive(layout: Layout, name: str) -> None:
    try:
        path = member_target(regular(name), shard=SHARD, layout=layout)
    except UnsafeMemberError:  # flat refuses sa1b's own folder names, "tars" and "wds"
        assert layout == "flat" and name in ("tars", "wds")
        return
    assert path is not None
    found = archived(path)
    assert (found is not None) == (layout == "wds")
    if found is not None:
        assert found == (archive_of(layout, SHARD), name)


@pytest.mark.parametrize(
    ("name", "key"),
    [
        ("sa_1.jpg", ("sa_1", "jpg")),
        ("sa_1.json", ("sa_1", "json")),
        ("sa_1.seg.json", ("sa_1", "seg.json")),  # webdataset: up to the first dot
        ("README", ("README", "")),
    ],
)
def test_sample_key(name: str, key: tuple[str, str]) -> None:
    assert sample_key(name) == key


@pytest.mark.parametrize(
    ("names", "ordered"),
    [
        (["sa_1.json", "sa_1.jpg"], ["sa_1.jpg", "sa_1.json"]),
        (["sa_10.jpg", "sa_2.json", "sa_10.json", "sa_2.jpg"],
         ["sa_2.jpg", "sa_2.json", "sa_10.jpg", "sa_10.json"]),  # by number, not text
        (["sa_223750.json", "sa_1.jpg", "sa_223750.jpg", "sa_1.json"],
         ["sa_1.jpg", "sa_1.json", "sa_223750.jpg", "sa_223750.json"]),
        (["README.txt", "sa_3.jpg", "notes.md", "sa_3.json"],
         ["sa_3.jpg", "sa_3.json", "README.txt", "notes.md"]),  # other names after, by name
        (["sa_1.txt", "sa_1.json", "sa_2.jpg", "sa_1.jpg"],
         ["sa_1.jpg", "sa_1.json", "sa_1.txt", "sa_2.jpg"]),  # every part of sa_1 together
        (["sa_01.jpg", "sa_1.jpg", "sa_1.json", "sa_01.json"],
         ["sa_01.jpg", "sa_01.json", "sa_1.jpg", "sa_1.json"]),  # one id, two samples
        (["sa_x.jpg", "sa_.jpg", "sa_9.jpg"], ["sa_9.jpg", "sa_.jpg", "sa_x.jpg"]),
    ],
)  # fmt: skip
def test_sample_order(names: list[str], ordered: list[str]) -> None:
    assert sorted(names, key=sample_order) == ordered


@given(st.lists(st.integers(0, 10**9), unique=True, max_size=30))
def test_sample_order_puts_each_images_parts_together(ids: list[int]) -> None:
    names = [f"sa_{i}.{ext}" for i in ids for ext in ("json", "jpg")]
    ordered = sorted(names, key=sample_order)
    assert ordered == [f"sa_{i}.{ext}" for i in sorted(ids) for ext in ("jpg", "json")]
