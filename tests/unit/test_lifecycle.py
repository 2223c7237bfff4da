"""An item's life as a table: every edge walked, every other (state, event) refused."""

from __future__ import annotations

from itertools import product
from typing import get_args

import pytest

from sa1b.lifecycle import TRANSITIONS, Event, IllegalTransition, next_state
from sa1b.progress import FINAL_STATES, FileState

STATES: tuple[FileState, ...] = get_args(FileState)
EVENTS: tuple[Event, ...] = get_args(Event)

EDGES = {
    "start-up finds it done": ("pending", "found-done", "done"),
    "start-up finds its link expired": ("pending", "found-expired", "expired"),
    "a connection opens it": ("pending", "open", "opening"),
    "a connection asks for its size": ("pending", "first-request", "active"),
    "a walk begins (no partial file)": ("pending", "begin", "active"),
    "its first request fails fatally": ("pending", "fail", "failed"),
    "its first request finds the link expired": ("pending", "expire", "expired"),
    "its partial file is ready": ("opening", "opened", "active"),
    "sized again before its file is ready": ("opening", "sized", "opening"),
    "halted while its file is made ready": ("opening", "fail", "failed"),
    "its link expires while its file is made ready": ("opening", "expire", "expired"),
    "its first answer sizes it, or it restarts": ("active", "sized", "opening"),
    "its first request fails, to be retried": ("active", "first-request-failed", "pending"),
    "every byte is in": ("active", "all-in", "verifying"),
    "a transfer fails for good": ("active", "fail", "failed"),
    "the link expires mid-download": ("active", "expire", "expired"),
    "verified and published": ("verifying", "published", "done"),
    "a checksum mismatch: once more": ("verifying", "redownload", "opening"),
    "verification fails": ("verifying", "fail", "failed"),
}


@pytest.mark.parametrize(("state", "event", "after"), EDGES.values(), ids=EDGES.keys())
def test_every_edge(state: FileState, event: Event, after: FileState) -> None:
    assert next_state(state, event) == after


def test_the_table_is_exactly_these_edges() -> None:
    assert {(s, e): a for s, e, a in EDGES.values()} == TRANSITIONS


ILLEGAL = [(s, e) for s, e in product(STATES, EVENTS) if (s, e) not in TRANSITIONS]


@pytest.mark.parametrize(("state", "event"), ILLEGAL, ids=[f"{s}-{e}" for s, e in ILLEGAL])
def test_every_other_pair_is_refused(state: FileState, event: Event) -> None:
    with pytest.raises(IllegalTransition, match=event):
        next_state(state, event)


def test_final_states_are_final() -> None:
    assert not [pair for pair in TRANSITIONS if pair[0] in FINAL_STATES]


def test_every_state_is_reachable_from_pending() -> None:
    seen, frontier = {"pending"}, ["pending"]
    while frontier:
        state = frontier.pop()
        for (source, _), after in TRANSITIONS.items():
            if source == state and after not in seen:
                seen.add(after)
                frontier.append(after)
    assert seen == set(STATES)
