"""Scripted misbehaviour for the stand-in CDN, consumed one request at a time.

Every failure a downloader must survive (or must refuse to be fooled by) is a :class:`Fault`
value a test registers for a file name (or ``"*"`` for any file); the server takes the next
pending fault for each request and acts it out. Kinds:

=============== ==========================================================================
``cut``          send ``after`` body bytes, then close (``mode="fin"``) or reset (``"rst"``)
``status``       answer ``status`` (500, 503, 408, ...) with a short body (and
                 ``Retry-After: retry_after`` when given)
``throttle``     answer 429 with ``Retry-After: retry_after``
``stall``        send ``after`` body bytes, hold the connection ``seconds``, then close
``trickle``      send ``after`` body bytes, then one byte every ``seconds`` to the end
``ignore_range`` answer 200 with the whole file even when a range was asked
``wrong_range``  answer 206 from a start other than the one asked (usually start + 4096)
``change_etag``  the file's ETag and Last-Modified change from now on (object replaced)
``forbidden``    answer 403 ``URL signature expired`` whatever the link's ``oe``
``not_found``    answer 404
=============== ==========================================================================

Faults queued for one name apply in order. Faults that shape a body (``cut``, ``stall``,
``trickle``, ``ignore_range``, ``wrong_range``) are taken only by GET requests, so a HEAD probe
neither uses them up nor jumps past them; the others are taken by HEAD too.
"""

from __future__ import annotations

import threading
from dataclasses import KW_ONLY, dataclass
from typing import Literal, get_args

__all__ = ["ANY_FILE", "BODY_KINDS", "Fault", "FaultBook", "FaultKind"]

FaultKind = Literal[
    "cut",
    "status",
    "throttle",
    "stall",
    "trickle",
    "ignore_range",
    "wrong_range",
    "change_etag",
    "forbidden",
    "not_found",
]

ANY_FILE = "*"
BODY_KINDS: frozenset[str] = frozenset({"cut", "stall", "trickle", "ignore_range", "wrong_range"})


@dataclass(frozen=True)
class Fault:
    """One scripted misbehaviour, applied to the next ``times`` matching requests."""

    kind: FaultKind
    _: KW_ONLY
    after: int = 0
    times: int = 1
    status: int = 503
    retry_after: float | None = None
    seconds: float = 0.0
    mode: Literal["fin", "rst"] = "fin"

    def __post_init__(self) -> None:
        if self.kind not in get_args(FaultKind):
            raise ValueError(f"unknown fault kind {self.kind!r}")
        if self.times < 1 or self.after < 0 or self.seconds < 0:
            raise ValueError("times must be >= 1; after and seconds must be >= 0")
        if self.mode not in ("fin", "rst"):
            raise ValueError(f"mode must be 'fin' or 'rst', got {self.mode!r}")
        if not 100 <= self.status <= 599:
            raise ValueError(f"status must be an HTTP status code, got {self.status}")


@dataclass
class _Pending:
    fault: Fault
    left: int


class FaultBook:
    """Pending faults per file name, safe to use from many handler threads."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._pending: dict[str, list[_Pending]] = {}

    def add(self, name: str, fault: Fault) -> None:
        """Queue ``fault`` for ``name`` (or for every file when ``name`` is ``"*"``)."""
        with self._lock:
            self._pending.setdefault(name, []).append(_Pending(fault, fault.times))

    def clear(self) -> None:
        with self._lock:
            self._pending.clear()

    def pending(self) -> int:
        """How many uses of faults are left, over all names."""
        with self._lock:
            return sum(p.left for queue in self._pending.values() for p in queue)

    def take(self, name: str, *, method: str) -> Fault | None:
        """Use up one application of the next fault for this request, if any.

        Each name's faults apply in the order they were added; the exact name's queue is
        asked before the ``"*"`` queue. A HEAD leaves a body fault at the head of a queue in
        place, and with it everything queued behind it, so a script like "cut, then expire"
        keeps its order whatever probes the client sends.
        """
        with self._lock:
            for key in (name, ANY_FILE):
                queue = self._pending.get(key)
                if not queue:
                    continue
                entry = queue[0]
                if method != "GET" and entry.fault.kind in BODY_KINDS:
                    continue
                entry.left -= 1
                if entry.left == 0:
                    queue.pop(0)
                return entry.fault
            return None
