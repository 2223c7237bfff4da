"""benchmarks/soak.py, for a few seconds against the real CDN stand-in over HTTPS: its
machinery (faults, expiring links and the fresh links file, checks, sampling, the report and
its verdict) keeps working. How flat sa1b stays is the benchmark's business, not this test's."""

from __future__ import annotations

import importlib.util
import re
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import pytest

SOAK = Path(__file__).resolve().parents[2] / "benchmarks" / "soak.py"


def test_a_short_soak_samples_and_judges(tmp_path: Path) -> None:
    done = subprocess.run(
        [
            sys.executable,
            str(SOAK),
            *("--minutes", "0.15", "--warmup", "0.02", "--workdir", str(tmp_path)),
            *("--names", "12", "--distinct", "2", "--shard-size", "4M", "--max-rate", "8M"),
            *("--link-minutes", "0.07", "--fault-every", "1"),
            *("--sample-every", "0.5", "--status-every", "3", "--margin", "0"),
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    report = done.stdout
    assert done.returncode in (0, 1), done.stderr[-3000:]  # 1: not flat, judged all the same
    assert "FAILED" not in report, report
    samples = int(re.search(r"^(\d+) samples over", report, re.MULTILINE)[1])  # type: ignore[index]
    assert samples >= 5, report
    assert re.search(r"^\| 0 \| \d+/\d+ \| \d+/\d+ \(\d+\) \| \d+ \|", report, re.MULTILINE)
    ratio = re.search(r"rss: ([\d.]+) -> ([\d.]+) MB = ([\d.]+)x \(tolerance 1.1x\)", report)
    assert ratio is not None, report
    first, last, judged = (float(v) for v in ratio.groups())
    assert first > 10 and last > 10 and abs(judged - last / first) < 0.01  # sa1b's RSS, in MB
    assert re.search(r"files: [\d.]+ -> [\d.]+ = [\d.]+x", report), report
    assert re.search(r"FLAT: (yes|NO)$", report, re.MULTILINE), report
    assert int(re.search(r"(\d+) fresh links files after expiry", report)[1]) >= 1  # type: ignore[index]
    assert int(re.search(r"(\d+) shards checked and deleted", report)[1]) >= 1  # type: ignore[index]
    assert int(re.search(r"(\d+) faults used", report)[1]) >= 1  # type: ignore[index]
    assert (done.returncode == 0) == report.rstrip().endswith("FLAT: yes")
    assert list(tmp_path.iterdir()) == []  # everything it wrote is deleted


def _soak_module() -> ModuleType:
    spec = importlib.util.spec_from_file_location("soak", SOAK)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["soak"] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize(
    ("rss_growth", "fds_step", "commit_ms", "probe_ms", "flat", "grows"),
    [
        (0.0, 0, (20, 20), (5, 5), True, []),
        (0.02, 10, (20, 30), (5, 5), True, []),  # within 1.05x/1.10x, 1.25x and 2x
        (0.30, 0, (20, 20), (5, 5), False, ["rss", "rss-in-run 1"]),  # +30% in 20 minutes
        (0.0, 60, (20, 20), (5, 5), False, ["files"]),  # 68 -> 128 descriptors of files
        (0.0, 0, (20, 60), (5, 5), False, ["commit"]),  # commits 3x slower, the disk not
        (0.0, 0, (20, 60), (5, 15), True, []),  # the disk 3x slower too: not sa1b's doing
        (0.0, 0, (20, None), (5, 5), True, []),  # no commit in a window: not judged
    ],
)
def test_the_verdict_is_a_ratio_of_the_first_and_last_windows(
    *,
    rss_growth: float,
    fds_step: int,
    commit_ms: tuple[float, float | None],
    probe_ms: tuple[float, float],
    flat: bool,
    grows: list[str],
) -> None:
    soak = _soak_module()

    def sample(t: int) -> object:
        late = t > 600
        commit = commit_ms[late]
        return soak.Sample(
            at=float(t),
            run=1,
            rss_kib=int(50_000 * (1 + rss_growth * t / 1200)),
            fds=100 + (fds_step if late else 0),
            sockets=32,
            threads=15,
            store=0,
            journal=0,
            served=0,
            faults=0,
            checked=t // 10,
            commits_ms=[] if commit is None else [commit],
            probe_ms=probe_ms[late],
        )

    samples = [sample(t) for t in range(0, 1200, 5)]
    ratios = soak.verdict(samples, warmup_s=60.0)
    assert sorted(r.name for r in ratios if not r.flat) == grows
    judged, lines = soak.describe_verdict(samples, warmup_s=60.0)
    assert judged == flat and lines[-1].endswith("yes" if flat else "NO")
    slope = soak.slope_per_hour([(s.at, s.rss_kib / 1024) for s in samples])
    assert slope == pytest.approx(50_000 / 1024 * rss_growth * 3, rel=0.01)  # per hour
