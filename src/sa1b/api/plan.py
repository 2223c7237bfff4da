"""What a download needs, asked of the server and the disk without downloading."""

from __future__ import annotations

import shutil
import time
from collections.abc import Mapping, Sequence
from dataclasses import replace
from pathlib import Path

from sa1b.api.bucket import check_bucket
from sa1b.api.status import status
from sa1b.config import DownloadConfig, ExtractOptions
from sa1b.errors import LinkExpiredError, NoSpaceError
from sa1b.holes import punches
from sa1b.links import Link
from sa1b.net.probe import SizeAnswer, probe_sizes, probe_speed
from sa1b.objectstore.location import BucketLocation
from sa1b.planning import FileFacts, Plan, disk_needed
from sa1b.records import FileRecord
from sa1b.store.shards import shard_state
from sa1b.store.state import folder_stores
from sa1b.store.usage import in_flight_taken
from sa1b.units import human_bytes
from sa1b.versions import Validator


def plan(
    links: Sequence[Link],
    config: DownloadConfig,
    *,
    probe_seconds: float = 4.0,
    bucket: BucketLocation | None = None,
) -> Plan:
    """What a download of ``links`` into ``config.out`` needs, asked of the server and
    the disk without downloading: each file's size (one-byte range requests, many at
    once), what the folder holds, the free space, and a speed probe of
    ``probe_seconds`` (0: none) on the download's own connections.

    With ``bucket`` (an ``s3://`` output), the bucket is checked first, reachable and
    writable (:func:`~sa1b.api.bucket.check_bucket`: a
    :class:`~sa1b.errors.BucketError` before anything else is asked), and no local disk
    figure is made: ``config.out`` is not looked at."""
    if bucket is not None:
        facts = check_bucket(bucket)
        answers = _sizes(links, {}, config, ask_known=True)
        checked = _plan(links, config, {}, answers, probe_seconds=probe_seconds, local=False)
        return replace(checked, bucket=facts)
    held = _held(config.out)
    answers = _sizes(_wanted(links, held), held, config, ask_known=True)
    return _plan(links, config, held, answers, probe_seconds=probe_seconds)


def check_space(
    links: Sequence[Link], config: DownloadConfig, held: Mapping[str, FileRecord] | None = None
) -> dict[str, tuple[int, Validator]]:
    """Raise :class:`NoSpaceError` when the download cannot fit, by :func:`plan`'s
    reckoning (the worst case) without its speed probe: the sizes the folder's stores
    know (``held``, read from them when not given), the rest asked of the server (one
    byte each). Return what the server said (size and validators, by file name), for
    the download to start from rather than ask again."""
    known = _held(config.out) if held is None else held
    answers = _sizes(_wanted(links, known), known, config, ask_known=False)
    checked = _plan(links, config, known, answers, probe_seconds=0)
    if not checked.fits:
        raise NoSpaceError(
            f"{config.out}: the download needs {human_bytes(checked.needed)} more and "
            f"{human_bytes(checked.free)} are free"
        )
    return {
        name: (answer.size, answer.validator)
        for name, answer in answers.items()
        if answer.size is not None and answer.validator is not None
    }


def _held(out: Path) -> dict[str, FileRecord]:
    """What the folder's stores know of each file (the furthest record of it)."""
    return {r.name: r for r in status(out).files} if folder_stores(out) else {}


def _plan(
    links: Sequence[Link],
    config: DownloadConfig,
    held: Mapping[str, FileRecord],
    answers: Mapping[str, SizeAnswer],
    *,
    probe_seconds: float,
    local: bool = True,
) -> Plan:
    """:func:`plan`, from what the folder holds and each wanted file's size (``local``:
    with the disk's figures, else none)."""
    wanted = _wanted(links, held)
    facts = tuple(
        _facts(link, held.get(link.name), answers.get(link.name), config, local=local)
        for link in links
    )
    speed = None
    sized = [(link, answers[link.name].size or 0) for link in wanted if answers[link.name].size]
    if probe_seconds > 0 and sized:
        policy = config.connection_policy()
        speed = probe_speed(
            sized[: config.max_files], config.transport, policy, seconds=probe_seconds
        )
    free = needed = keeping = without = 0  # an s3:// output takes no local disk
    if local:
        at_once = config.max_files
        extract, keep_tars = (
            config.extract is not None,
            bool(config.extract and config.extract.keep_tars),
        )
        options = config.extract or ExtractOptions()
        streamed = punches(digest=bool(config.checksums), keep_tars=False, layout=options.layout)
        window = 0 if streamed else None  # (sa1b.engine.unpack: no tar on disk)
        free = _free_space(config.out)
        needed = disk_needed(
            facts, extract=extract, keep_tars=keep_tars, at_once=at_once, window=window
        )
        keeping = disk_needed(facts, extract=True, keep_tars=True, at_once=at_once)
        without = disk_needed(facts, extract=True, keep_tars=False, at_once=at_once, window=window)
    return Plan(
        files=facts,
        free=free,
        needed=needed,
        needed_keeping_tars=keeping,
        needed_without_tars=without,
        speed=speed,
        expires=tuple(stamp for link in wanted if (stamp := link.expires_at) is not None),
        now=time.time(),
        max_rate=config.max_rate,
    )


def _wanted(links: Sequence[Link], held: Mapping[str, FileRecord]) -> list[Link]:
    """The links whose file is not finished."""
    return [link for link in links if not _finished(held.get(link.name))]


def _sizes(
    links: Sequence[Link],
    held: Mapping[str, FileRecord],
    config: DownloadConfig,
    *,
    ask_known: bool,
) -> dict[str, SizeAnswer]:
    """Each file's size: the store's where it knows it (unless ``ask_known``), none for a
    link expired already (it could only say so), the server's for the rest."""
    answers, asked, now = {}, [], time.time()
    for link in links:
        record = held.get(link.name)
        if not ask_known and record is not None and record.size is not None:
            answers[link.name] = SizeAnswer(link.name, record.size)
        elif (stamp := link.expires_at) is not None and stamp <= now:
            error = LinkExpiredError("the signed link has expired", name=link.name)
            answers[link.name] = SizeAnswer(link.name, error=error)
        else:
            asked.append(link)
    answers |= {a.name: a for a in probe_sizes(asked, config.transport)} if asked else {}
    return answers


def _finished(record: FileRecord | None) -> bool:
    return record is not None and shard_state(record).finished


def _facts(
    link: Link,
    record: FileRecord | None,
    answer: SizeAnswer | None,
    config: DownloadConfig,
    *,
    local: bool = True,
) -> FileFacts:
    shard = link.shard_id is not None
    if _finished(record):
        assert record is not None
        return FileFacts(link.name, record.size, shard, done=True, kept=record.size or 0)
    if answer is None or answer.size is None:
        error = answer.error.message if answer and answer.error else "no answer"
        return FileFacts(link.name, None, shard, error=error)
    allocated = in_flight_taken(config.paths, link.name) if local else 0
    same = record is not None and record.size == answer.size
    kept = record.done_bytes if same and record is not None else 0
    return FileFacts(link.name, answer.size, shard, kept=kept, allocated=allocated)


def _free_space(out: Path) -> int:
    """Free bytes on the filesystem ``out`` is (or will be) on."""
    folder = out.absolute()
    while not folder.exists():
        folder = folder.parent
    return shutil.disk_usage(folder).free
