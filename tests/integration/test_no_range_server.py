"""Resume from Python's ``http.server``, which ignores Range: every answer is the whole file.

A user's own quick server is often this one. An interrupted file cannot be continued from
it, so sa1b restarts that file as one stream, says so, and ends byte-identical; no rerun
ever fails for good.
"""

from __future__ import annotations

import signal
from pathlib import Path

import pytest

from sa1b.cdn.synth import ShardInfo
from sa1b.store.state import StateStore
from tests.waiting import wait_for

from .conftest import assert_extracted, assert_identical, run_cli, start_cli

pytestmark = pytest.mark.timeout(120)


def _kept(out: Path) -> int:
    with StateStore(out, lock=False, create=False) as store:
        return sum(record.done_bytes for record in store.records())


@pytest.mark.parametrize(
    ("stop", "extra"),
    [(signal.SIGINT, ()), (signal.SIGKILL, ("--no-extract",))],
    ids=["ctrl-c-extracting", "sigkill-tars"],
)
def test_interrupted_download_from_http_server_finishes_on_a_rerun(
    http_server: str,
    shards: list[ShardInfo],
    tmp_path: Path,
    stop: signal.Signals,
    extra: tuple[str, ...],
) -> None:
    links, out = tmp_path / "links.txt", tmp_path / "out"
    links.write_text("".join(f"{http_server}/{shard.name}\n" for shard in shards))
    args = ["download", links, "-o", out, *extra]
    proc = start_cli(*args, "--max-rate", "6M")
    total = sum(shard.size for shard in shards)
    wait_for(
        lambda: (out / ".sa1b" / "state.db").exists() and _kept(out) >= total // 4,
        timeout=60,
        message="a quarter of the bytes kept",
        process=proc,
    )
    proc.send_signal(stop)
    _, stderr = proc.communicate(timeout=30)
    assert proc.returncode in (130, -signal.SIGKILL), stderr
    assert "Traceback" not in stderr

    outputs = []
    for _ in range(2):  # the rerun finishes; a second one finds everything done
        result = run_cli(*args)
        assert result.returncode == 0, result.output
        assert "Traceback" not in result.output and "internal error" not in result.output
        outputs.append(result.output)
    assert "server ignored Range; fetching it as one stream" in outputs[0]
    if extra:
        assert_identical(out, shards)
    else:
        assert_extracted(out, shards)
