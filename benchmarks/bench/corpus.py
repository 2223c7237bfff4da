"""The synthetic shards (``sa1b.cdn.synth``), generated once and hashed once, member by member."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import shutil
import tarfile
import time
from pathlib import Path
from typing import Any

from sa1b.cdn.synth import make_dataset
from sa1b.layout import shard_stem

from .common import HASH_CHUNK, MB, BenchError, log

Members = dict[str, tuple[int, str]]  # normalised member name -> (size, md5)


@dataclasses.dataclass(frozen=True, kw_only=True)
class Shard:
    name: str
    path: Path
    size: int
    md5: str
    # Every regular member of the tar, keyed by normalised name (None: not hashed yet).
    # Hashed once and kept in the manifest.
    members: Members | None = dataclasses.field(default=None, compare=False)


def normalise_member(member: str, *, stem: str) -> str:
    """A member name as sa1b extracts it: ``./`` parts and an inner ``<stem>/`` folder removed."""
    parts = [part for part in member.split("/") if part not in ("", ".")]
    if parts and parts[0] == stem:
        parts = parts[1:]
    return "/".join(parts)


def hash_members(path: Path) -> Members:
    """md5 and size of every regular member of the tar at ``path``, by normalised name.

    A later member with the same normalised name replaces an earlier one, as ``tar -x`` does.
    Raises ``tarfile.TarError`` (or OSError) when ``path`` is not a readable tar.
    """
    stem = shard_stem(path.name)
    members: Members = {}
    with tarfile.open(path, "r:") as archive:
        for info in archive:
            if not info.isreg():
                continue
            handle = archive.extractfile(info)
            if handle is None:
                continue
            digest = hashlib.md5(usedforsecurity=False)
            while chunk := handle.read(HASH_CHUNK):
                digest.update(chunk)
            members[normalise_member(info.name, stem=stem)] = (info.size, digest.hexdigest())
    return members


def _manifest_entry(shard: Shard) -> dict[str, Any]:
    entry: dict[str, Any] = {"name": shard.name, "size": shard.size, "md5": shard.md5}
    if shard.members is not None:
        entry["members"] = {k: {"size": v[0], "md5": v[1]} for k, v in shard.members.items()}
    return entry


def _shard_from_entry(directory: Path, entry: dict[str, Any]) -> Shard:
    members: Members | None = None
    if isinstance(entry.get("members"), dict):
        members = {k: (int(v["size"]), str(v["md5"])) for k, v in entry["members"].items()}
    return Shard(
        name=entry["name"],
        path=directory / entry["name"],
        size=entry["size"],
        md5=entry["md5"],
        members=members,
    )


def _with_members(shards: list[Shard]) -> list[Shard]:
    """Hash the members of every shard that has not had it done (done once: see manifest)."""
    log("hashing the members of every shard (once; kept in the manifest)")
    started = time.monotonic()
    done = []
    for shard in shards:
        if shard.members is not None:
            done.append(shard)
            continue
        try:
            members = hash_members(shard.path)
        except (OSError, tarfile.TarError) as exc:
            raise BenchError(f"{shard.path}: cannot list its tar members: {exc}") from exc
        done.append(dataclasses.replace(shard, members=members))
    log(f"hashed in {time.monotonic() - started:.1f} s")
    return done


def prepare_shards(workdir: Path, *, count: int, shard_size: int, seed: int = 0) -> list[Shard]:
    """Generate (or reuse) the synthetic shards; md5s are computed once and kept in a manifest.

    With make_dataset the md5 of every tar member is computed once too and kept in the same
    manifest (the extract scenario checks each extracted file against it).
    """
    directory = workdir / f"shards-make_dataset-{count}x{shard_size}-seed{seed}"
    manifest_path = directory / "manifest.json"
    shards: list[Shard] | None = None
    if manifest_path.is_file():
        try:
            entries = json.loads(manifest_path.read_text())
            found = [_shard_from_entry(directory, e) for e in entries]
            if len(found) == count and all(
                s.path.is_file() and s.path.stat().st_size == s.size for s in found
            ):
                log(f"reusing {count} shards in {directory}")
                shards = found
        except (OSError, ValueError, KeyError, TypeError, AttributeError):
            pass
    if shards is None:
        shutil.rmtree(directory, ignore_errors=True)
        directory.mkdir(parents=True)
        log(f"generating {count} shards of ~{shard_size / MB:.0f} MB in {directory}")
        started = time.monotonic()
        infos = make_dataset(
            directory, shard_indices=range(count), shard_size=shard_size, seed=seed, extras=False
        )
        shards = [Shard(name=i.name, path=i.path, size=i.size, md5=i.md5) for i in infos]
        for shard in shards:
            if shard.path.parent.resolve() != directory.resolve():
                raise BenchError(f"make_dataset put {shard.name} outside {directory}")
        log(f"generated in {time.monotonic() - started:.1f} s")
    elif all(s.members is not None for s in shards):
        return shards
    shards = _with_members(shards)
    manifest_path.write_text(json.dumps([_manifest_entry(s) for s in shards], indent=1))
    return shards
