r"""An item's life in one run (a file, or a shard walked member by member), as one
table: (state, event) -> state. Pure.

::

    pending ──open──▶ opening ──opened──▶ active ──all-in──▶ verifying ──published──▶ done
     ▲  │               ▲ ▲                 │ │                  │
     │  │               │ └──────sized──────┘ │                  │
     │  │               └───────────────────────redownload───────┘ (checksum mismatch)
     │  ├──────────────first-request──────────▶ (active: its size still unknown)
     │  └──────────────begin──────────────────▶ (active: a body, no partial file)
     └─────────first-request-failed───────────┘
    pending ──found-done──▶ done;   pending ──found-expired──▶ expired
    opening ──sized──▶ opening (sized again before the disk caught up)
    pending, opening, active, verifying ──fail──▶ failed
    pending, opening, active ──expire──▶ expired

``opening``: the disk worker (:mod:`sa1b.engine.diskworker`) opens, sizes and allocates
the file's partial file, so no new connection takes it; ``sized`` is its size becoming
known or changing (a first answer, a restart), which sends it there again. A file whose
size the store does not know is opened by its first request instead (``first-request``).
An item with a body (:mod:`sa1b.engine.bodies`, a walk) has no partial file to make
ready: it ``begin``\ s, and is ``active`` at once. ``found-*`` are start-up's verdicts
(:mod:`sa1b.reconcile`). Every other pair is a bug, refused with
:class:`IllegalTransition`; ``tests/unit/test_lifecycle.py`` walks every edge and
tries every pair that is not one.
"""

from __future__ import annotations

from typing import Literal

from sa1b.progress import FileState

Event = Literal[
    "found-done",
    "found-expired",
    "open",
    "first-request",
    "begin",
    "opened",
    "sized",
    "first-request-failed",
    "all-in",
    "published",
    "redownload",
    "fail",
    "expire",
]

TRANSITIONS: dict[tuple[FileState, Event], FileState] = {
    ("pending", "found-done"): "done",
    ("pending", "found-expired"): "expired",
    ("pending", "open"): "opening",
    ("pending", "first-request"): "active",
    ("pending", "begin"): "active",
    ("pending", "fail"): "failed",
    ("pending", "expire"): "expired",
    ("opening", "opened"): "active",
    ("opening", "sized"): "opening",
    ("opening", "fail"): "failed",
    ("opening", "expire"): "expired",
    ("active", "sized"): "opening",
    ("active", "first-request-failed"): "pending",
    ("active", "all-in"): "verifying",
    ("active", "fail"): "failed",
    ("active", "expire"): "expired",
    ("verifying", "published"): "done",
    ("verifying", "redownload"): "opening",
    ("verifying", "fail"): "failed",
}


class IllegalTransition(RuntimeError):
    """An event that cannot happen in this state: a bug in sa1b, never an input."""


def next_state(state: FileState, event: Event) -> FileState:
    """The state after ``event``; raises :class:`IllegalTransition` for a pair not in
    :data:`TRANSITIONS`."""
    try:
        return TRANSITIONS[state, event]
    except KeyError:
        raise IllegalTransition(f"{event!r} cannot happen to an item in state {state!r}") from None
