"""Where each shard's members are, over an output folder's stores, in one precedence.

Two things record a shard's members: its extraction (every member, each in its place,
:meth:`~sa1b.store.state.StateStore.member_index`) and its walk by range reads
(``--only``: every member in the catalog, in place only those of the kinds published,
:class:`~sa1b.store.walks.WalkRecord`). Every reader (``sa1b index``, ``verify`` and
its repair, the loader) takes them from :func:`shard_members`, which decides:

1. a shard's extraction over its walk: the extraction placed every member, the walk
   only the kinds it fetched (a shard walked, then downloaded whole, is read whole);
2. among the folder's stores, the first that has the shard: the folder's own, then
   each worker's by name (:func:`~sa1b.store.state.folder_stores`). A store that
   cannot be read is passed over.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from sa1b.errors import StateError
from sa1b.store.state import StateStore, folder_stores
from sa1b.store.walks import WalkRecord, load_walks

Index = list[tuple[str, int, int]]
"""A shard's members in place: path in the output folder, data offset in the tar, size."""


@dataclass(frozen=True, slots=True)
class Member:
    """One member of a shard: where its data is in the tar, and where it is in the folder."""

    name: str
    offset: int
    size: int
    path: str | None
    """Its path in the output folder; None when a walk fetched other kinds only."""


def shard_members(out: Path, state: Path | None = None) -> dict[str, list[Member]]:
    """Every extracted or walked (to its end) shard's members, by shard name; ``state``
    names the one store to read when it lives elsewhere (``--state-dir``)."""
    extracted: dict[str, list[Member]] = {}
    walked: dict[str, list[Member]] = {}
    for paths in folder_stores(out, state):
        try:
            with StateStore(out, state=paths.state, lock=False, create=False) as store:
                walks = load_walks(store)
                for record in store.records():
                    name = record.name
                    if record.extracted and name not in extracted:
                        index = store.member_index(name)
                        if index is not None:
                            extracted[name] = [_placed(*row) for row in index]
                    walk = walks.get(record.id)
                    if walk is not None and walk.complete and name not in walked:
                        walked[name] = _catalog(name, walk)
        except StateError:
            continue
    return walked | extracted


def member_indexes(out: Path, state: Path | None = None) -> dict[str, Index]:
    """Every shard's members that are in the folder (:func:`shard_members`), as the
    index extraction records, by shard name."""
    return {
        shard: [(m.path, m.offset, m.size) for m in members if m.path is not None]
        for shard, members in shard_members(out, state).items()
    }


def _placed(path: str, offset: int, size: int) -> Member:
    """A member of an extraction's index (which names its path, the tar name's end)."""
    return Member(PurePosixPath(path).name, offset, size, path)


def _catalog(shard: str, walk: WalkRecord) -> list[Member]:
    paths = (walk.published_path(shard, entry) for entry in walk.entries)
    return [
        Member(entry.name, entry.offset, entry.size, None if path is None else str(path))
        for entry, path in zip(walk.entries, paths, strict=True)
    ]
