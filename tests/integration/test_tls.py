"""HTTPS: certificates are always verified; a verified server works end to end."""

from __future__ import annotations

from pathlib import Path

import pytest

from harness.certs import CertificatePaths
from sa1b.cdn.synth import ShardInfo

from .conftest import assert_identical, run_cli


def _links(base: str, shards: list[ShardInfo], path: Path) -> Path:
    path.write_text("".join(f"{base}/{s.name}?oh=00_secret&oe=7FFFFFFF\n" for s in shards))
    return path


def test_unknown_certificate_authority_is_refused_not_retried(
    https_base: str, shards: list[ShardInfo], tmp_path: Path
) -> None:
    links = _links(https_base, shards, tmp_path / "urls.txt")
    out = tmp_path / "out"
    result = run_cli("download", "--no-extract", links, "-o", out, "--log-file", tmp_path / "log")
    assert result.returncode == 1
    assert "TLS verification failed" in result.output
    assert "retrying" not in (tmp_path / "log").read_text()
    assert not (out / "tars").exists()
    assert "00_secret" not in result.output


def test_trusted_certificate_downloads_over_tls(
    https_base: str,
    certificates: CertificatePaths,
    shards: list[ShardInfo],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("SSL_CERT_FILE", str(certificates.ca))  # run_cli passes it on
    links = _links(https_base, shards, tmp_path / "urls.txt")
    out = tmp_path / "out"
    result = run_cli("download", "--no-extract", links, "-o", out, "--connections", "4")
    assert result.returncode == 0, result.output
    assert_identical(out, shards)
