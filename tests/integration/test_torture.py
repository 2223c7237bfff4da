"""Crash torture: SIGKILL at random moments, again and again, then let it finish.

Each round starts the real CLI and kills it after a random delay drawn from a seeded
generator: during start-up and reconciliation, mid-download, mid-extraction, during
publishing. After every kill, every file under a final name must be byte-identical to
its source (a kill may leave less, never something wrong). At the end one run completes:
every file byte-identical, no stray file anywhere, every record done and consistent.

The seed is printed at the end of the test run, with the command that replays it.
``SA1B_TORTURE_KILLS`` scales the number of kills (``scripts/torture`` runs a long session).
"""

from __future__ import annotations

import hashlib
import os
import random
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from sa1b.cdn.server import CDNServer
from sa1b.cdn.synth import ShardInfo, make_dataset
from sa1b.layout import LAYOUTS
from sa1b.store.paths import WORK_DIR
from sa1b.store.state import StateStore
from sa1b.store.walks import load_walks
from tests.conftest import REPORT_LINES

from .conftest import extracted_contents, md5, run_cli, start_cli

REPO = Path(__file__).resolve().parents[2]
KILLS = int(os.environ.get("SA1B_TORTURE_KILLS") or 25)
"""Kills per test; three tests (extracting, tars only, ``--only json``) make 75 in
``./test``."""
SEED = int(os.environ.get("SA1B_TORTURE_SEED") or random.SystemRandom().randrange(10**9))
pytestmark = pytest.mark.xdist_group("torture")
"""With pytest-xdist, one worker runs these in turn: each builds its servers once."""
TRANSFER_PER_ROUND = 0.32
"""Seconds a round transfers on average (kills come after 0.05-1 s; start-up takes the
rest): with ``--max-rate`` set from it, the download spans about 85% of the rounds, and
the last ones kill a run that is publishing or has finished."""


@pytest.fixture(scope="module")
def torture_cdn(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[tuple[CDNServer, list[ShardInfo]]]:
    root = tmp_path_factory.mktemp("torture-cdn")
    shards = make_dataset(
        root, shard_indices=range(4), shard_size=8 * 1024 * 1024, seed=7, extras=False
    )
    with CDNServer(root=root) as server:
        yield server, shards


def _generator(test: str) -> random.Random:
    """The delays (and layout) of ``test``'s rounds: from SEED and the test's id, so each
    test draws its own and replays alone."""
    return random.Random(f"{SEED}:{test}")


def _test_id(request: pytest.FixtureRequest) -> str:
    """The test's id as ``./test`` takes it: without the ``@torture`` that names its group
    in a pytest-xdist worker (tests/conftest.py), so that a replay draws the same rounds."""
    return request.node.nodeid.removesuffix("@torture")


def _replay(test: str) -> str:
    """The command that replays ``test``'s rounds, as its report and its failures say it."""
    return f"replay: SA1B_TORTURE_SEED={SEED} SA1B_TORTURE_KILLS={KILLS} ./test '{test}'"


def _expected(out: Path, shards: list[ShardInfo], layout: str | None) -> dict[Path, str]:
    """Every final path of the run and the md5 of what belongs there."""
    if layout is None:
        return {out / "tars" / shard.name: shard.md5 for shard in shards}
    return {
        path: hashlib.md5(data).hexdigest()
        for shard in shards
        for path, data in extracted_contents(out, shard, layout).items()
    }


def _published(out: Path) -> list[Path]:
    """Every file under a final name (outside the state folder)."""
    return [
        path for path in out.rglob("*") if path.is_file() and (out / WORK_DIR) not in path.parents
    ]


def _kill_repeatedly(
    args: list[str | Path], out: Path, expected: dict[Path, str], rng: random.Random, where: str
) -> int:
    """``KILLS`` rounds of ``sa1b ARGS`` killed after a random delay; after each, every
    file under a final name is one of ``expected`` and byte-identical. Returns how many
    rounds finished before their kill (fewer than half, or there was nothing to torture)."""
    finished_early = 0
    for kill in range(KILLS):
        proc = start_cli(*args, "--quiet", stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        time.sleep(rng.uniform(0.05, 1.0))  # on purpose: a kill at a moment nobody chose
        proc.send_signal(signal.SIGKILL)
        _, stderr = proc.communicate(timeout=60)
        if proc.returncode != -signal.SIGKILL:  # it finished first: fine, and said so
            assert proc.returncode == 0, f"kill {kill} {where}: {stderr}"
            finished_early += 1
        for path in _published(out):
            assert path in expected, f"kill {kill} {where}: stray file {path}"
            assert md5(path) == expected[path], f"kill {kill} {where}: {path} is wrong"
    assert finished_early < KILLS // 2, f"the run finished too early to torture it {where}"
    return finished_early


def _finish(args: list[str | Path], out: Path, expected: dict[Path, str], where: str) -> None:
    """One run to the end: every expected file there, byte-identical, nothing else."""
    result = run_cli(*args)
    assert result.returncode == 0, f"{where}: {result.output}"
    assert "Traceback" not in result.output
    published = _published(out)
    assert sorted(published) == sorted(expected), f"{where}: missing or stray files"
    assert all(md5(path) == expected[path] for path in published), where


@pytest.mark.parametrize("extracting", [True, False], ids=["extracting", "tars"])
def test_random_sigkills_never_publish_a_wrong_byte(
    torture_cdn: tuple[CDNServer, list[ShardInfo]],
    tmp_path: Path,
    request: pytest.FixtureRequest,
    extracting: bool,
) -> None:
    cdn, shards = torture_cdn
    test = _test_id(request)
    rng = _generator(test)
    layout = rng.choice(sorted(LAYOUTS)) if extracting else None
    report = request.config.stash[REPORT_LINES]
    line = len(report)
    report.append(
        f"torture ({'extracting, ' + str(layout) + ' layout' if layout else 'tars'}): "
        f"{KILLS} SIGKILLs, seed {SEED} ({_replay(test)})"
    )
    links, out = tmp_path / "links.tsv", tmp_path / "out"
    cdn.write_links_file(links)
    rate = int(sum(shard.size for shard in shards) / (0.85 * KILLS * TRANSFER_PER_ROUND))
    args = ["download", links, "-o", out, "--max-rate", str(rate)]
    args += ["--layout", layout] if layout else ["--no-extract"]
    args += ["--tar-window", "1M"] if layout else []  # tars freed behind their extraction
    expected = _expected(out, shards, layout)
    where = f"(seed {SEED}; {_replay(test)})"

    finished_early = _kill_repeatedly(args, out, expected, rng, where)
    report[line] += f"; {KILLS - finished_early} killed mid-run, {finished_early} finished first"
    _finish(args, out, expected, where)
    leftovers = [
        p
        for p in (out / WORK_DIR).rglob("*")
        if p.is_file() and ("partial" in p.parts or "staging" in p.parts)
    ]
    assert not leftovers, f"{where}: left behind {leftovers}"
    with StateStore(out, lock=False, create=False) as store:
        records = store.records()
    assert [r.name for r in records] == [s.name for s in shards]
    assert all(r.status == "done" and r.consistent for r in records), f"{where}: {records}"


@pytest.fixture(scope="module")
def dense_cdn(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[tuple[CDNServer, list[ShardInfo]]]:
    """Shards with SA-1B's density of members (about one pair per 100 KB here): a walk
    of many steps, with checkpoints between them."""
    root = tmp_path_factory.mktemp("torture-dense")
    shards = make_dataset(
        root, shard_indices=range(8), shard_size=4 * 1024 * 1024, seed=8, extras=False, pairs=40
    )
    with CDNServer(root=root) as server:
        yield server, shards


def test_random_sigkills_mid_walk_never_publish_a_wrong_json(
    dense_cdn: tuple[CDNServer, list[ShardInfo]], tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    """``--only json``: killed while walking, writing staged members, saving checkpoints
    and publishing; every JSON under its final name is always the source's."""
    cdn, shards = dense_cdn
    test = _test_id(request)
    rng = _generator(test)
    report = request.config.stash[REPORT_LINES]
    line = len(report)
    report.append(f"torture (--only json): {KILLS} SIGKILLs, seed {SEED} ({_replay(test)})")
    links, out = tmp_path / "links.tsv", tmp_path / "out"
    cdn.write_links_file(links)
    expected = {
        path: hashlib.md5(data).hexdigest()
        for shard in shards
        for path, data in extracted_contents(out, shard, "shard").items()
        if path.suffix == ".json"
    }
    rate = 32 * 1024  # each round walks its burst (64 KiB) and a little: about 26 rounds
    args = ["download", links, "-o", out, "--only", "json", "--max-rate", str(rate)]
    where = f"(seed {SEED}; {_replay(test)})"
    finished_early = _kill_repeatedly(args, out, expected, rng, where)
    report[line] += f"; {KILLS - finished_early} killed mid-run, {finished_early} finished first"
    _finish(args, out, expected, where)
    staging = out / WORK_DIR / "staging"
    assert not any(p.is_file() for p in staging.rglob("*")), f"{where}: staging left behind"
    with StateStore(out, lock=False, create=False) as store:
        walks = load_walks(store)
        records = store.records()
    assert all(r.consistent for r in records), f"{where}: {records}"
    assert [walks[r.id].complete for r in records] == [True] * len(shards), where


def test_the_printed_seed_replays_the_rounds() -> None:
    """What a torture test prints, at the end and in each failure, replays it: a run given
    that seed draws the same rounds (the seed printed was once the replayed one plus 1)."""
    test = "tests/integration/test_torture.py::test_random_sigkills_never_publish_a_wrong_byte"
    printed = re.search(r"SA1B_TORTURE_SEED=(\d+) ", _replay(test))
    assert printed is not None and f"./test '{test}'" in _replay(test)
    rounds = _generator(test)
    draws = [rounds.uniform(0.05, 1.0) for _ in range(3)]
    code = (
        "from tests.integration.test_torture import _generator; "
        f"rounds = _generator({test!r}); print([rounds.uniform(0.05, 1.0) for _ in range(3)])"
    )
    replayed = subprocess.run(
        [sys.executable, "-c", code],
        cwd=REPO,
        env={**os.environ, "SA1B_TORTURE_SEED": printed[1]},
        check=True,
        capture_output=True,
        text=True,
    )
    assert replayed.stdout == f"{draws}\n"
