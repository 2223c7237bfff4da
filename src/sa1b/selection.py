"""Choose which links a run downloads: shards by id, extras only when asked.

Row order in the official links file differs between its versions, so "the first N
lines" is neither shards 0..N-1 nor reproducible. Selection is by shard id only.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Sequence
from fractions import Fraction

from sa1b.errors import SelectionError
from sa1b.links import Link
from sa1b.sizes import NOMINAL_SHARD_SIZE

MAX_SHARD = 999
_SHARD_TOKEN = re.compile(r"(?:sa_)?(\d{1,6})(?:\.tar)?")


def parse_shard_spec(spec: str) -> frozenset[int]:
    """Parse ``0-99,120,sa_000777`` into shard ids.

    Items are separated by commas; each is an id (``7``, ``sa_000007``,
    ``sa_000007.tar``) or an inclusive range of them (``0-99``).
    """
    ids: set[int] = set()
    for raw in spec.split(","):
        item = raw.strip()
        if not item:
            raise SelectionError(f"--shards {spec!r}: empty item", hint="write e.g. 0-99,120")
        low_text, dash, high_text = item.partition("-")
        low = _shard_id(low_text, spec)
        high = _shard_id(high_text, spec) if dash else low
        if high < low:
            raise SelectionError(
                f"--shards {spec!r}: range {item!r} runs backwards", hint="write it low-high"
            )
        ids.update(range(low, high + 1))
    return frozenset(ids)


def _shard_id(token: str, spec: str) -> int:
    match = _SHARD_TOKEN.fullmatch(token.strip())
    if not match or int(match.group(1)) > MAX_SHARD:
        raise SelectionError(
            f"--shards {spec!r}: {token!r} is not a shard id 0-{MAX_SHARD}",
            hint="write ids like 0-99,120,sa_000777",
        )
    return int(match.group(1))


def select_links(
    links: Sequence[Link], *, shards: Iterable[int] | None = None, extras: bool = False
) -> list[Link]:
    """The links to download, sorted by name.

    ``shards=None`` means every shard in the file. Non-shard files
    (``sa_images_ids.txt``, ``sa_co_gold.tar``, anything else) only with ``extras``.
    Asking for a shard the file does not list is an error, never a silent gap.
    """
    wanted = None if shards is None else frozenset(shards)
    chosen = [
        link
        for link in links
        if (link.shard_id is None and extras)
        or (link.shard_id is not None and (wanted is None or link.shard_id in wanted))
    ]
    if wanted is not None:
        missing = sorted(wanted - {link.shard_id for link in links})
        if missing:
            shown = ", ".join(f"sa_{i:06d}" for i in missing[:5])
            more = f" and {len(missing) - 5} more" if len(missing) > 5 else ""
            raise SelectionError(
                f"the links file has no row for {shown}{more}",
                hint="check --shards, or use a complete links file",
            )
    if not chosen:
        raise SelectionError(
            "nothing selected: the links file lists no shards sa_NNNNNN.tar",
            hint="pass --extras to download the other files it lists",
        )
    return sorted(chosen, key=lambda link: link.name)


def within_budget(
    links: Sequence[Link], *, max_bytes: int | None = None, fraction: Fraction | None = None
) -> list[Link]:
    """The selected shards up to a budget, lowest ids first; extras are kept as selected.

    The order is the shards' ids, so that "10% of SA-1B" (``fraction=1/10`` of the 1000
    shards: ``sa_000000`` to ``sa_000099``) is the same subset for every user and every
    copy of the links file. ``fraction`` takes that share of the selected shards (at
    least one); ``max_bytes`` as many as fit at the nominal 10.5 GiB a shard (real sizes
    differ by a few percent; none is known before the server answers).
    """
    shards = sorted((link for link in links if link.shard_id is not None), key=_shard_order)
    extras = [link for link in links if link.shard_id is None]
    if not shards and (fraction is not None or max_bytes is not None):
        raise SelectionError("a budget (--fraction, --max-bytes) selects shards: none is selected")
    if fraction is not None:
        if not 0 < fraction <= 1:
            raise SelectionError(f"--fraction {fraction}: not above 0 and at most 1")
        count = max(1, math.floor(fraction * len(shards)))
    elif max_bytes is not None:
        count = max_bytes // NOMINAL_SHARD_SIZE
        if count < 1:
            raise SelectionError(
                f"--max-bytes {max_bytes}: less than one shard (about 10.5 GiB)",
                hint="give 11G or more",
            )
    else:
        return list(links)
    kept = {link.name for link in shards[:count]} | {link.name for link in extras}
    return [link for link in links if link.name in kept]


def _shard_order(link: Link) -> int:
    assert link.shard_id is not None
    return link.shard_id
