"""Fixtures for every test: a private certificate authority for TLS on loopback."""

from __future__ import annotations

import pytest

from sa1b.cdn.certs import CertificatePaths, make_certificates


@pytest.fixture(scope="session")
def certificates(tmp_path_factory: pytest.TempPathFactory) -> CertificatePaths:
    """A private CA and a certificate it signed for 127.0.0.1 and localhost."""
    return make_certificates(tmp_path_factory.mktemp("tls"))
