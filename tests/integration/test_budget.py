"""Budgets through the real CLI: the same shards for everyone, an impossible budget refused."""

from __future__ import annotations

from pathlib import Path

from sa1b.cdn.server import CDNServer

from .conftest import run_cli


def test_a_fraction_fetches_the_lowest_ids_only(
    cdn: CDNServer, links: Path, tmp_path: Path
) -> None:
    out = tmp_path / "out"
    result = run_cli("download", "--no-extract", links, "-o", out, "--fraction", "1/3")
    assert result.returncode == 0, result.output
    assert "budget: 1 of 3 shards (sa_000000.tar to sa_000000.tar)" in result.output
    assert [p.name for p in (out / "tars").iterdir()] == ["sa_000000.tar"]


def test_a_budget_under_one_shard_is_one_line_and_exit_2(links: Path, tmp_path: Path) -> None:
    result = run_cli("download", links, "-o", tmp_path / "out", "--max-bytes", "5G")
    assert result.returncode == 2
    assert "less than one shard" in result.output and "Traceback" not in result.output
    both = run_cli("download", links, "--max-bytes", "20G", "--fraction", "0.5")
    assert both.returncode == 2 and "not allowed with argument" in both.output
