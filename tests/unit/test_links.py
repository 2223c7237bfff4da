"""Links files: every accepted format, byte-exact URLs, unsafe names, errors with file:line."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sa1b.errors import LinksFileError
from sa1b.links import (
    Link,
    expiry,
    is_safe_name,
    object_key,
    parse_links,
    query_items,
    read_links,
    redact,
)

SIG = "00_AYBcDeFgHiJkLmNoPqRsTuVwXyZ0123456789abcdef"
OE = "6813A2F0"
URL0 = (
    "https://scontent.xx.fbcdn.net/m1/v/t6/An8MNcSV8eixKBYJ2kyw6sfPh-J9U4tH2BV7uPzibNa0pu4.tar"
    f"?_nc_gid&ccb=10-5&oh={SIG}&oe={OE}&_nc_sid=0fdd51"
)
URL1 = (
    "https://scontent.xx.fbcdn.net/m1/v/t6/An-1FzVbHt2Vq5mBfVJmbeqZWqzN_vzAvfD4Dw9kKh1u0jM.tar"
    f"?ccb=10-5&oh={SIG}&oe={OE}&_nc_sid=0fdd51"
)
URL_IDS = (
    "https://scontent.xx.fbcdn.net/m1/v/t6/An9fLUBaU3vNJ4s_0OrpgTsDzCPqgMIhPkhbKKa.txt"
    f"?_nc_gid&ccb=10-5&oh={SIG}&oe={OE}&_nc_sid=0fdd51"
)
ROWS = [("sa_000020.tar", URL0), ("sa_000021.tar", URL1), ("sa_images_ids.txt", URL_IDS)]


def render(
    rows: list[tuple[str, str]],
    *,
    newline: str = "\n",
    sep: str = "\t",
    header: bool = True,
    final_newline: bool = True,
) -> str:
    lines = ([f"file_name{sep}cdn_link"] if header else []) + [f"{n}{sep}{u}" for n, u in rows]
    return newline.join(lines) + (newline if final_newline else "")


def pairs(links: list[Link]) -> list[tuple[str, str]]:
    return [(link.name, link.url) for link in links]


# -- accepted formats ------------------------------------------------------------------


@pytest.mark.parametrize("newline", ["\n", "\r\n"], ids=["LF", "CRLF"])
@pytest.mark.parametrize("final_newline", [True, False], ids=["final-nl", "no-final-nl"])
@pytest.mark.parametrize("sep", ["\t", " ", "  ", " \t "], ids=["tab", "space", "2sp", "mixed"])
@pytest.mark.parametrize("header", [True, False], ids=["header", "headerless"])
def test_formats_parse_to_the_same_links(
    newline: str, final_newline: bool, sep: str, header: bool
) -> None:
    text = render(ROWS, newline=newline, sep=sep, header=header, final_newline=final_newline)
    links = parse_links(text)
    assert pairs(links) == ROWS
    first_row = 2 if header else 1
    assert [link.line for link in links] == [first_row, first_row + 1, first_row + 2]


def test_official_rows_keep_url_exactly_with_bare_nc_gid() -> None:
    links = parse_links(render(ROWS))
    assert links[0].url == URL0
    assert links[0].url.count("_nc_gid&") == 1
    assert links[1].url == URL1
    assert links[2].url == URL_IDS


def test_row_order_is_kept_not_sorted() -> None:
    rows = [ROWS[1], ROWS[2], ROWS[0]]
    assert pairs(parse_links(render(rows))) == rows


def test_plain_url_list_takes_name_from_path() -> None:
    urls = [
        f"https://host.example/data/sa_000000.tar?_nc_gid&oh={SIG}&oe={OE}",
        "https://host.example/data/sa_000001.tar",
        "http://mirror.example/x/y/sa_images_ids.txt#frag",
        "https://host.example/a/sa%5F000002.tar?x=1",
    ]
    links = parse_links("\r\n".join(urls))
    assert [link.name for link in links] == [
        "sa_000000.tar",
        "sa_000001.tar",
        "sa_images_ids.txt",
        "sa_000002.tar",
    ]
    assert [link.url for link in links] == urls
    assert [link.line for link in links] == [1, 2, 3, 4]


def test_blank_lines_comments_and_surrounding_whitespace_are_skipped() -> None:
    text = f"# a comment\n\n   \nfile_name\tcdn_link\n\n  sa_000001.tar\t{URL1}  \n# end\n"
    links = parse_links(text)
    assert pairs(links) == [("sa_000001.tar", URL1)]
    assert links[0].line == 6


def test_repeated_header_before_rows_is_tolerated() -> None:
    text = f"file_name\tcdn_link\nfile_name cdn_link\nsa_000001.tar\t{URL1}\n"
    assert pairs(parse_links(text)) == [("sa_000001.tar", URL1)]


def test_header_after_rows_is_an_error_with_line() -> None:
    text = f"sa_000001.tar\t{URL1}\nfile_name\tcdn_link\n"
    with pytest.raises(LinksFileError) as info:
        parse_links(text, source="links.tsv")
    assert "links.tsv:2" in str(info.value)
    assert info.value.line == 2


def test_mixed_plain_urls_and_rows() -> None:
    text = f"sa_000021.tar\t{URL1}\nhttps://h.example/p/sa_000022.tar?oe={OE}\n"
    assert [link.name for link in parse_links(text)] == ["sa_000021.tar", "sa_000022.tar"]


# -- Link properties ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "shard"),
    [
        ("sa_000000.tar", 0),
        ("sa_000999.tar", 999),
        ("sa_000123.tar", 123),
        ("sa_images_ids.txt", None),
        ("sa_co_gold.tar", None),
        ("sa_00012.tar", None),
        ("sa_0000123.tar", None),
        ("sa_000123.tar.gz", None),
        ("xsa_000123.tar", None),
    ],
)
def test_shard_id(name: str, shard: int | None) -> None:
    assert Link(name, "https://h/x").shard_id == shard


def test_link_expires_at_reads_oe() -> None:
    assert Link("a", URL0).expires_at == int(OE, 16)
    assert Link("a", "https://h/x").expires_at is None


# -- unsafe names ------------------------------------------------------------------------


UNSAFE = [
    "../x",
    "/etc/passwd",
    "a/b",
    ".hidden",
    "..",
    ".",
    "a..b",
    "x\\y",
    "-rf",
    "_x",
    "a\x00b",
    "sa_000000.tar\u200b",  # zero-width space
    "ｓａ_000000.tar",  # fullwidth letters
    "sa_000000.tar\u202egpj",  # right-to-left override
    "sa_٠٠٠٠٠٠.tar",  # Arabic-Indic digits
    "é.tar",
    "a:b",
    "a*b",
    "",
    "x" * 201,
]


@pytest.mark.parametrize("name", UNSAFE)
def test_is_safe_name_rejects(name: str) -> None:
    assert not is_safe_name(name)


@pytest.mark.parametrize(
    "name", ["sa_000000.tar", "sa_images_ids.txt", "sa_co_gold.tar", "A-b_c.9", "x" * 200, "0"]
)
def test_is_safe_name_accepts(name: str) -> None:
    assert is_safe_name(name)


@pytest.mark.parametrize("name", [n for n in UNSAFE if n and not n[0].isspace()])
def test_unsafe_name_in_row_is_rejected_with_line(name: str) -> None:
    text = f"file_name\tcdn_link\nsa_000001.tar\t{URL1}\n{name}\t{URL0}\n"
    with pytest.raises(LinksFileError) as info:
        parse_links(text, source="links.txt")
    assert "links.txt:3" in str(info.value)
    assert info.value.path == "links.txt"
    assert info.value.line == 3


@pytest.mark.parametrize("name", ["a b", "a\tb", "sa_000000.tar x"])
def test_names_with_spaces_are_rejected(name: str) -> None:
    with pytest.raises(LinksFileError) as info:
        parse_links(f"{name}\t{URL0}\n", source="l")
    assert "l:1" in str(info.value)


@pytest.mark.parametrize(
    "url",
    [
        "https://host/dir/..",
        "https://host/dir/%2e%2e",
        "https://host/dir/a%2Fb",
        "https://host/dir/.hidden",
        "https://host/dir/",
        "https://host",
        "https://host/dir/a%00b",
    ],
)
def test_unsafe_name_from_plain_url_is_rejected(url: str) -> None:
    with pytest.raises(LinksFileError) as info:
        parse_links(f"{url}\n", source="urls.txt")
    assert "urls.txt:1" in str(info.value)


# -- other errors ------------------------------------------------------------------------


def test_duplicate_names_name_both_lines() -> None:
    text = f"file_name\tcdn_link\nsa_000001.tar\t{URL1}\n\nsa_000001.tar\t{URL0}\n"
    with pytest.raises(LinksFileError) as info:
        parse_links(text, source="dup.tsv")
    message = str(info.value)
    assert "dup.tsv:4" in message
    assert "line 2" in message
    assert "sa_000001.tar" in message


def test_duplicate_from_plain_url_and_row() -> None:
    text = f"sa_000001.tar\t{URL1}\nhttps://h.example/sa_000001.tar\n"
    with pytest.raises(LinksFileError, match=r"<links>:2: .*line 1"):
        parse_links(text)


@pytest.mark.parametrize(
    ("text", "line"),
    [
        ("sa_000001.tar\tftp://host/x\n", 1),
        ("sa_000001.tar\tfile:///etc/passwd\n", 1),
        ("sa_000001.tar\thttps:///nohost\n", 1),
        ("sa_000001.tar\tnot-a-url\n", 1),
        (f"sa_000001.tar\t{URL1}\nsa_000002.tar\t{URL0}\textra\n", 2),
        (f"sa_000001.tar\t{URL1}\njust-a-word\n", 2),
        (f"file_name\tcdn_link\n\n\nsa_000001.tar {URL1} more\n", 4),
    ],
)
def test_bad_lines_name_file_and_line(text: str, line: int) -> None:
    with pytest.raises(LinksFileError) as info:
        parse_links(text, source="/tmp/x/links.txt")
    assert f"/tmp/x/links.txt:{line}" in str(info.value)
    assert info.value.line == line
    assert info.value.hint


def test_bad_url_error_does_not_leak_signature() -> None:
    url = f"ftp://host/x?oh={SIG}&oe={OE}"
    with pytest.raises(LinksFileError) as info:
        parse_links(f"sa_000001.tar\t{url}\n")
    assert SIG not in str(info.value)
    assert "oh=" not in str(info.value)


@pytest.mark.parametrize("text", ["", "\n\n", "file_name\tcdn_link\n", "# only a comment\n"])
def test_no_links_is_an_error(text: str) -> None:
    with pytest.raises(LinksFileError, match="no links"):
        parse_links(text, source="empty.txt")


@pytest.mark.parametrize("url", ["https://[broken/sa_000001.tar", "https://h]/sa_000001.tar"])
def test_malformed_url_is_a_links_file_error(url: str) -> None:
    with pytest.raises(LinksFileError) as info:
        parse_links(f"sa_000001.tar\t{url}\n", source="links.txt")
    assert "links.txt:1" in str(info.value)


# -- read_links --------------------------------------------------------------------------


def test_read_links_from_disk_with_bom(tmp_path: Path) -> None:
    path = tmp_path / "sa1b_links.txt"
    path.write_bytes(b"\xef\xbb\xbf" + render(ROWS, newline="\r\n").encode())
    assert pairs(read_links(path)) == ROWS


def test_read_links_missing_file_names_it(tmp_path: Path) -> None:
    path = tmp_path / "nope.txt"
    with pytest.raises(LinksFileError) as info:
        read_links(path)
    assert str(path) in str(info.value)


def test_read_links_binary_file_names_it(tmp_path: Path) -> None:
    path = tmp_path / "shard.tar"
    path.write_bytes(b"\xff\xfe\x00garbage\x80")
    with pytest.raises(LinksFileError, match="UTF-8") as info:
        read_links(path)
    assert str(path) in str(info.value)


def test_read_links_errors_name_the_path_and_line(tmp_path: Path) -> None:
    path = tmp_path / "links.tsv"
    path.write_text(f"file_name\tcdn_link\nsa_000001.tar\t{URL1}\n../evil\t{URL0}\n")
    with pytest.raises(LinksFileError) as info:
        read_links(path)
    assert f"{path}:3" in str(info.value)


# -- query_items, expiry, redact, object_key ---------------------------------------------


def test_query_items_keeps_bare_items_in_order() -> None:
    assert query_items(URL0) == [
        ("_nc_gid", None),
        ("ccb", "10-5"),
        ("oh", SIG),
        ("oe", OE),
        ("_nc_sid", "0fdd51"),
    ]


@pytest.mark.parametrize(
    ("url", "items"),
    [
        ("https://h/p", []),
        ("https://h/p?", []),
        ("https://h/p?a", [("a", None)]),
        ("https://h/p?a=", [("a", "")]),
        ("https://h/p?a=b=c", [("a", "b=c")]),
        ("https://h/p?&&a=1&&b&", [("a", "1"), ("b", None)]),
        ("https://h/p?a=%20&b=+", [("a", "%20"), ("b", "+")]),
        ("https://h/p?x=1#oe=ff", [("x", "1")]),
    ],
)
def test_query_items_table(url: str, items: list[tuple[str, str | None]]) -> None:
    assert query_items(url) == items


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        (URL0, 0x6813A2F0),
        ("https://h/p?oe=6813a2f0", 0x6813A2F0),
        ("https://h/p?_nc_gid&oe=0", 0),
        ("https://h/p?oe=ffffffffffffffff", 2**64 - 1),
        ("https://h/p", None),
        ("https://h/p?oe", None),
        ("https://h/p?oe=", None),
        ("https://h/p?oe=zz", None),
        ("https://h/p?oe=0x10", None),
        ("https://h/p?oe=11111111111111111", None),
        ("https://h/p?noe=10", None),
        ("https://h/p?oe=zz&oe=10", 16),
    ],
)
def test_expiry(url: str, expected: int | None) -> None:
    assert expiry(url) == expected


def test_redact_drops_the_query() -> None:
    redacted = redact(URL0)
    assert redacted == (
        "https://scontent.xx.fbcdn.net/m1/v/t6/"
        "An8MNcSV8eixKBYJ2kyw6sfPh-J9U4tH2BV7uPzibNa0pu4.tar?…"
    )
    assert redact("https://h.example/a/b.tar") == "https://h.example/a/b.tar"


@pytest.mark.parametrize("url", [URL0, URL1, URL_IDS, f"https://h/p?oh={SIG}#oh={SIG}"])
def test_redact_never_contains_signature(url: str) -> None:
    redacted = redact(url)
    assert redacted == url.split("?", maxsplit=1)[0] + "?…"  # still says where it pointed
    assert "oh=" not in redacted
    assert SIG not in redacted
    assert "oe=" not in redacted


@given(
    sig=st.text(
        alphabet="ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_-", min_size=8
    ),
    before=st.lists(st.sampled_from(["_nc_gid", "ccb=10-5", "x=1", "_nc_sid=ab"]), max_size=3),
    after=st.lists(st.sampled_from(["_nc_gid", "oe=6813A2F0", "y", "_nc_sid=ab"]), max_size=3),
)
def test_redact_never_contains_signature_property(
    sig: str, before: list[str], after: list[str]
) -> None:
    query = "&".join([*before, f"oh={sig}", *after])
    redacted = redact(f"https://scontent.example.net/m1/v/t6/obj.tar?{query}")
    assert redacted == "https://scontent.example.net/m1/v/t6/obj.tar?…"
    assert "oh=" not in redacted
    assert sig not in redacted


def test_object_key_survives_reissued_signature() -> None:
    reissued = URL0.replace(SIG, "00_other").replace(OE, "6900AAAA")
    assert object_key(URL0) == object_key(reissued)
    assert object_key(URL0) == (
        "scontent.xx.fbcdn.net/m1/v/t6/An8MNcSV8eixKBYJ2kyw6sfPh-J9U4tH2BV7uPzibNa0pu4.tar"
    )
    assert object_key(URL0) != object_key(URL1)


# -- round trip property -----------------------------------------------------------------

_NAME_START = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"
safe_names = st.builds(
    str.__add__,
    st.sampled_from(_NAME_START),
    st.text(alphabet=_NAME_START + "._-", max_size=40),
).filter(lambda n: ".." not in n)
_URL_CHARS = _NAME_START + "-._~!$'()*+,;=:@/%"
url_paths = st.text(alphabet=_URL_CHARS, max_size=40)
query_parts = st.lists(
    st.one_of(
        st.text(alphabet=_NAME_START + "_-", min_size=1, max_size=8),
        st.tuples(
            st.text(alphabet=_NAME_START + "_-", min_size=1, max_size=8),
            st.text(alphabet=_URL_CHARS + "=?", max_size=20),
        ).map("=".join),
    ),
    max_size=6,
)
urls = st.builds(
    lambda scheme, host, path, query: (
        f"{scheme}://{host}/{path}" + (f"?{'&'.join(query)}" if query else "")
    ),
    st.sampled_from(["http", "https"]),
    st.builds(
        "{}{}{}".format,
        st.text(alphabet="abcdefghijklmnopqrstuvwxyz0123456789-.", min_size=1, max_size=20),
        st.sampled_from([".com", ".net", ".example", ""]),
        st.sampled_from(["", ":443", ":8080"]),
    ),
    url_paths,
    query_parts,
)


@given(
    rows=st.lists(st.tuples(safe_names, urls), max_size=12, unique_by=lambda r: r[0]),
    newline=st.sampled_from(["\n", "\r\n"]),
    sep=st.sampled_from(["\t", " "]),
    header=st.booleans(),
    final_newline=st.booleans(),
)
def test_render_then_parse_round_trips(
    rows: list[tuple[str, str]], newline: str, sep: str, header: bool, final_newline: bool
) -> None:
    text = render(rows, newline=newline, sep=sep, header=header, final_newline=final_newline)
    if not rows:
        with pytest.raises(LinksFileError):
            parse_links(text)
        return
    links = parse_links(text, source="gen.tsv")
    assert pairs(links) == rows
    offset = 2 if header else 1
    assert [link.line for link in links] == list(range(offset, offset + len(rows)))
    for link, (_, url) in zip(links, rows, strict=True):
        assert link.url == url  # byte for byte, bare items and all


@settings(max_examples=40)
@given(rows=st.lists(st.tuples(safe_names, urls), min_size=1, max_size=8), data=st.data())
def test_any_duplicate_is_reported_with_both_lines(
    rows: list[tuple[str, str]], data: st.DataObject
) -> None:
    unique = list({name: (name, url) for name, url in rows}.values())
    victim = data.draw(st.integers(0, len(unique) - 1))
    rows = [*unique, (unique[victim][0], unique[-1][1])]
    text = render(rows)
    with pytest.raises(LinksFileError) as info:
        parse_links(text, source="d")
    message = str(info.value)
    assert f"d:{len(rows) + 1}" in message
    assert f"line {victim + 2}" in message


def test_credentials_are_neither_shown_nor_stored() -> None:
    url = "https://ann:s3cret@mirror.example:8443/sa/sa_000001.tar?oh=00_x"
    assert redact(url) == "https://mirror.example:8443/sa/sa_000001.tar?…"
    assert object_key(url) == "mirror.example:8443/sa/sa_000001.tar"
    assert object_key(url) == object_key("https://mirror.example:8443/sa/sa_000001.tar")
