"""Download links into an output folder through the engine: whole files, or with
``--only`` the members of each shard by range reads; resumes what an earlier run left."""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, replace
from itertools import chain

from sa1b.api.bucket import check_bucket, fetch_state_copy
from sa1b.api.plan import check_space
from sa1b.api.runs import recorded_run
from sa1b.api.stores import other_records
from sa1b.config import DownloadConfig
from sa1b.engine import Engine
from sa1b.errors import OutputFolderError
from sa1b.expiry import refuse_expired
from sa1b.links import Link, mirror_link, object_key, redact
from sa1b.progress import FileOutcome, NullListener, ProgressListener
from sa1b.records import furthest
from sa1b.store.resume import OtherRecord
from sa1b.store.state import StateStore
from sa1b.versions import Validator

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class DownloadResult:
    """The outcome of every selected file, and what this run fetched."""

    outcomes: tuple[FileOutcome, ...]
    fetched: int
    seconds: float
    walked: int | None = None
    """With ``--only``: the sizes of the shards walked, which ``fetched`` is a part of."""

    @property
    def ok(self) -> bool:
        return all(outcome.state == "done" for outcome in self.outcomes)

    def with_state(self, state: str) -> list[FileOutcome]:
        return [outcome for outcome in self.outcomes if outcome.state == state]


def download(
    links: Sequence[Link],
    config: DownloadConfig,
    *,
    listener: ProgressListener | None = None,
) -> DownloadResult:
    """Download ``links`` into ``config.out`` (or stream the tars into the bucket of
    ``config.upload``); resumes whatever an earlier run left.

    Raises :class:`~sa1b.errors.LinksExpiredError` before fetching anything if every
    link still needed has expired (a file whose link alone expired ends ``expired``),
    :class:`~sa1b.errors.NoSpaceError` if the download cannot fit (``check_space``),
    :class:`~sa1b.errors.OutputFolderError` if ``config.out`` cannot be written, and
    :class:`~sa1b.errors.StateLockedError` if another process owns the folder;
    per-file failures are outcomes, not exceptions.
    KeyboardInterrupt is re-raised after the state is saved. ``seconds`` is the whole
    call, the size check's answers (and a server slow to give them) included.
    """
    started = time.monotonic()
    paths, bucket = config.paths, config.upload.location if config.upload else None
    if bucket is not None:  # before anything is downloaded
        check_bucket(bucket)
    try:
        config.out.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise OutputFolderError.cannot_create(config.out, error) from None
    fresh = not paths.database.exists()  # another machine's run may have left a copy
    worker = config.worker.folder if config.worker else None
    if bucket is not None and fresh and fetch_state_copy(bucket, paths.database, worker=worker):
        log.info("no local state: continuing from the state copy in %s", bucket)
    listener = listener or NullListener()
    with StateStore(config.out, state=paths.state) as store:
        others = other_records(paths, config.worker, config.state_copy)
        known = [*store.records(), *(o.record for o in chain.from_iterable(others.values()))]
        done = {record.name for record in known if record.status == "done"}
        if not config.mirrors:  # with mirrors, an expired link is the mirrors' to stand in for
            needed = [link for link in links if link.name not in done]
            refuse_expired(needed, now=time.time(), bucket=bucket is not None)
        only = config.extract.only if config.extract else None
        if config.check_space and only is None:  # from the records just read
            learned = check_space(links, config, furthest(known))
            keys = {link.name: object_key(link.url) for link in links}
            store.set_sizes([(name, keys[name], *said) for name, said in learned.items()])
        return _fetch_files(links, config, store, others, listener, started=started)


def _fetch_files(
    links: Sequence[Link],
    config: DownloadConfig,
    store: StateStore,
    others: Mapping[str, list[OtherRecord]],
    listener: ProgressListener,
    *,
    started: float,
) -> DownloadResult:
    """Every file by the engine (or with ``--only``, the members of every shard): from
    their own links, then from each mirror."""
    walked: int | None = None
    with recorded_run(store, started=started, copy_to=config.state_copy) as run:
        outcomes: dict[str, FileOutcome] = {}
        for base, batch in _sources(links, config, outcomes):
            if base is not None:
                _ready_for_mirror(store, batch, config)
            engine = Engine(batch, config, store, listener=listener, others=others)
            try:
                ended = engine.run()
            finally:
                run.fetched += engine.fetched
                walked = engine.walked
            outcomes |= {o.name: replace(o, source=base) if base else o for o in ended}
        run.ended(outcomes.values())
    ordered = tuple(outcomes[link.name] for link in links)
    return DownloadResult(ordered, run.fetched, run.seconds, walked=walked)


def _sources(
    links: Sequence[Link], config: DownloadConfig, outcomes: Mapping[str, FileOutcome]
) -> Iterator[tuple[str | None, list[Link]]]:
    """The links to run, first their own, then each mirror's for the files still not
    done (read from ``outcomes`` as the runs before fill it)."""
    yield None, list(links)
    for base in config.mirrors:
        missing = [link for link in links if outcomes[link.name].state != "done"]
        if not missing:
            return
        log.info("trying %d file(s) at the mirror %s", len(missing), redact(base))
        yield base, [mirror_link(base, link) for link in missing]


def _ready_for_mirror(store: StateStore, links: Sequence[Link], config: DownloadConfig) -> None:
    """Bytes kept from another server are continued only when they are sure to be the
    same file: the size must match (any answer checks that), and the ETag too unless
    a checksum will check the finished file. So the validator is forgotten where a
    checksum is known, and kept (to be compared) where none is."""
    for link in links:
        record = store.get(link.name)
        if record is not None and record.size is not None and link.name in config.checksums:
            store.set_identity(record.id, record.size, Validator(None, None))
