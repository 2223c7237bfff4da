"""What may be shown: no signature and no terminal control, whatever the text's path."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from sa1b.redaction import clean, hide_secrets, quote

SECRET = "00_AfB9secretSIG"

CASES = {
    "url-in-text": (f"see https://h/p.tar?a=1&oh={SECRET} now", "see https://h/p.tar?… now"),
    "broken-line": (f"&oh={SECRET}&oe=6A2B3C4D", "&oh=…&oe=6A2B3C4D"),
    "upper-case-key": (f"X-Amz-Signature={SECRET}", "X-Amz-Signature=…"),
    "nc-token": (f"_nc_ohc={SECRET} rest", "_nc_ohc=… rest"),
    "glued-to-a-word": (f"file_nameoh={SECRET}", "file_nameoh=…"),
    "plain": ("nothing secret here", "nothing secret here"),
}


@pytest.mark.parametrize(("text", "shown"), CASES.values(), ids=CASES.keys())
def test_hide_secrets(text: str, shown: str) -> None:
    assert hide_secrets(text) == shown


def test_clean_escapes_terminal_control_and_caps_length() -> None:
    assert clean("\x1b[2J\x07ok") == "\\x1b[2J\\x07ok"
    assert clean("x" * 500, limit=10) == "x" * 10


@given(st.text(), st.sampled_from(["?oh=", "&oh=", " oh=", "?sig=", "\noh="]))
def test_no_signature_survives(prefix: str, key: str) -> None:
    text = f"{prefix}https://host/f.tar{key}{SECRET}" if key[0] == "?" else prefix + key + SECRET
    shown = clean(text, limit=10_000)
    assert SECRET not in shown
    assert all(c.isprintable() for c in shown)


@pytest.mark.parametrize(
    ("value", "shown"),
    [
        ("1000", "'1000'"),
        ("0" * 5000, "'" + "0" * 40 + "…' (5000 characters)"),
        ("1" * 40, "'" + "1" * 40 + "'"),
        ("x\x1b[31m", "'x\\x1b[31m'"),
        ("\x07" * 20, "'" + "\\x07" * 10 + "…' (20 characters)"),
    ],
    ids=["short", "5000-digits", "at-the-limit", "control", "control-escaped-past-the-limit"],
)
def test_quote_shows_what_a_value_was_never_a_start_that_reads_as_all_of_it(
    value: str, shown: str
) -> None:
    assert quote(value) == shown
