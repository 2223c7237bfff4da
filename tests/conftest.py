"""Fixtures for every test: a private certificate authority for TLS on loopback, and
lines shown at the end of every run."""

from __future__ import annotations

import pytest

from harness.certs import CertificatePaths, make_certificates


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
