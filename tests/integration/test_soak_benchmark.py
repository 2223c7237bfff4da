"""benchmarks/soak.py, for a few seconds against the real CDN stand-in over HTTPS: its
machinery (faults, expiring links and the fresh links file, checks, sampling, the report and
its verdict) keeps working. How flat sa1b stays is the benchmark's business, not this test's."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

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
    assert re.search(r"fds: [\d.]+ -> [\d.]+ += [\d.]+x", report), report
    assert re.search(r"FLAT: (yes|NO)$", report, re.MULTILINE), report
    assert int(re.search(r"(\d+) fresh links files after expiry", report)[1]) >= 1  # type: ignore[index]
    assert int(re.search(r"(\d+) shards checked and deleted", report)[1]) >= 1  # type: ignore[index]
    assert int(re.search(r"(\d+) faults used", report)[1]) >= 1  # type: ignore[index]
    assert (done.returncode == 0) == report.rstrip().endswith("FLAT: yes")
    assert list(tmp_path.iterdir()) == []  # everything it wrote is deleted
