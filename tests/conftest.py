"""Fixtures for every test: a private certificate authority for TLS on loopback, a real S3
server on loopback (started only when a test asks for it), and lines shown at the end of
every run."""

from __future__ import annotations

import secrets
from collections.abc import Iterator

import pytest

from harness.certs import CertificatePaths, make_certificates
from harness.seaweedfs import SeaweedServer


@pytest.fixture(scope="session")
def certificates(tmp_path_factory: pytest.TempPathFactory) -> CertificatePaths:
    """A private CA and a certificate it signed for 127.0.0.1 and localhost."""
    return make_certificates(tmp_path_factory.mktemp("tls"))


REPORT_LINES = pytest.StashKey[list[str]]()
"""Lines a test wants shown at the end of every run, even a quiet one (a torture seed)."""


def pytest_configure(config: pytest.Config) -> None:
    config.stash[REPORT_LINES] = []


def pytest_terminal_summary(
    terminalreporter: pytest.TerminalReporter, config: pytest.Config
) -> None:
    for line in config.stash[REPORT_LINES]:
        terminalreporter.write_line(line)


@pytest.fixture(scope="session")
def seaweedfs() -> Iterator[SeaweedServer]:
    """A real S3 server (SeaweedFS) on loopback for the whole run, its bucket
    ``sa1b-test`` created; started only when a test asks for it. Tests share it: each
    writes under a prefix of its own (:func:`s3_prefix`)."""
    with SeaweedServer(buckets=["sa1b-test"]) as server:
        yield server


@pytest.fixture
def s3_prefix(request: pytest.FixtureRequest) -> str:
    """A key prefix no other test uses, named after the test."""
    return f"{request.node.name}-{secrets.token_hex(4)}"
