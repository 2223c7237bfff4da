"""A private certificate authority and a server certificate for loopback HTTPS.

Benchmarks and tests serve HTTPS from a local nginx (:class:`harness.nginx.NginxServer` with
``tls=``). Clients must verify the server as they would verify Meta's CDN, so the certificate
is signed by a private CA that the client is told to trust (``curl --cacert``,
``aria2c --ca-certificate``, ``SSL_CERT_FILE`` for Python)::

    paths = make_certificates(workdir / "tls")
    with NginxServer(root=shards, tls=(paths.certificate, paths.key), http2=True) as server:
        context = ssl.create_default_context(cafile=paths.ca)
        ...

Everything is made by the ``openssl`` command-line tool (OpenSSL 1.1.1 or 3.x) in a
subprocess: no Python dependency. Keys are ECDSA P-256, which is what large CDNs mostly serve
and makes handshakes cheap. The CA is a self-signed root (``CA:TRUE``, critical, key usage
``keyCertSign``); the server certificate (``CA:FALSE``, ``serverAuth``) names every host given
(by default ``127.0.0.1`` as an IP address and ``localhost`` as a DNS name) and carries the
key identifiers that strict verifiers (Python >= 3.13's ``VERIFY_X509_STRICT``) insist on. The
CA's private key is deleted once the server certificate is signed.

Standard library only; this module never prints.
"""

from __future__ import annotations

import ipaddress
import logging
import os
import secrets
import shutil
import subprocess
from collections.abc import Sequence
from pathlib import Path
from typing import NamedTuple

__all__ = [
    "OPENSSL_NOT_FOUND_MESSAGE",
    "CertificateError",
    "CertificatePaths",
    "find_openssl",
    "make_certificates",
]

logger = logging.getLogger(__name__)

OPENSSL_NOT_FOUND_MESSAGE = "openssl not found: install it (apt-get install openssl)"

#: Default names the server certificate is valid for.
DEFAULT_HOSTS = ("127.0.0.1", "localhost")

_CURVE = "prime256v1"  # NIST P-256
_OPENSSL_TIMEOUT = 60.0


class CertificateError(RuntimeError):
    """``openssl`` is missing or failed; the message includes its error output."""


class CertificatePaths(NamedTuple):
    """Where :func:`make_certificates` put its files (all PEM)."""

    ca: Path  # the CA certificate a client must trust
    certificate: Path  # the server certificate (nginx ``ssl_certificate``)
    key: Path  # the server's private key (nginx ``ssl_certificate_key``), mode 0600


def find_openssl() -> str:
    """Return the path of the ``openssl`` binary, or raise :class:`CertificateError`."""
    found = shutil.which("openssl")
    if found is None:
        raise CertificateError(OPENSSL_NOT_FOUND_MESSAGE)
    return found


def _subject_alt_names(hosts: Sequence[str]) -> str:
    names = []
    for host in hosts:
        if not host or any(ch in host for ch in ",\n\r\t =\"'\\/"):
            raise ValueError(f"not a host name or IP address: {host!r}")
        try:
            names.append(f"IP:{ipaddress.ip_address(host)}")
        except ValueError:
            names.append(f"DNS:{host}")
    if not names:
        raise ValueError("at least one host is needed")
    return ", ".join(names)


def _config(common_name: str, alt_names: str) -> str:
    """A self-contained openssl configuration (the system's openssl.cnf is not read)."""
    return (
        "[req]\n"
        "distinguished_name = dn\n"
        "prompt = no\n"
        "[dn]\n"
        f"CN = {common_name}\n"
        "[v3_ca]\n"
        "basicConstraints = critical, CA:TRUE\n"
        "keyUsage = critical, keyCertSign, cRLSign\n"
        "subjectKeyIdentifier = hash\n"
        "[v3_server]\n"
        "basicConstraints = critical, CA:FALSE\n"
        "keyUsage = critical, digitalSignature\n"
        "extendedKeyUsage = serverAuth\n"
        f"subjectAltName = {alt_names}\n"
        "subjectKeyIdentifier = hash\n"
        "authorityKeyIdentifier = keyid\n"
    )


def _run(openssl: str, args: list[str], *, cwd: Path) -> None:
    argv = [openssl, *args]
    logger.debug("running %s", " ".join(argv))
    try:
        done = subprocess.run(
            argv,
            cwd=cwd,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=_OPENSSL_TIMEOUT,
            check=False,
            env={**os.environ, "OPENSSL_CONF": os.devnull},
        )
    except (OSError, subprocess.TimeoutExpired) as error:
        raise CertificateError(f"openssl {args[0]} could not run: {error}") from error
    if done.returncode != 0:
        output = (done.stderr or done.stdout).strip()
        raise CertificateError(f"openssl {args[0]} failed ({done.returncode}): {output}")


def make_certificates(
    directory: Path,
    *,
    hosts: Sequence[str] = DEFAULT_HOSTS,
    days: int = 30,
    openssl: str | None = None,
) -> CertificatePaths:
    """Make a private CA and a server certificate for ``hosts``, signed by it, in ``directory``.

    Writes ``ca.pem``, ``server.pem`` and ``server.key`` (replacing earlier ones), valid from
    now for ``days`` days, and returns their paths. ``hosts`` are IP addresses (put in the
    certificate as IP names) or DNS names. Raises :class:`CertificateError` when ``openssl`` is
    missing or fails, ``ValueError`` for an unusable host or ``days``.
    """
    if days < 1:
        raise ValueError(f"days must be >= 1: {days}")
    alt_names = _subject_alt_names(hosts)
    binary = openssl or find_openssl()
    directory = Path(directory).resolve()
    directory.mkdir(parents=True, exist_ok=True)
    paths = CertificatePaths(
        ca=directory / "ca.pem",
        certificate=directory / "server.pem",
        key=directory / "server.key",
    )
    ca_key = directory / "ca.key"
    csr = directory / "server.csr"
    ca_conf = directory / "ca.cnf"
    server_conf = directory / "server.cnf"
    ca_conf.write_text(_config("sa1b benchmark CA", alt_names), encoding="utf-8")
    server_conf.write_text(_config(hosts[0], alt_names), encoding="utf-8")
    curve = ["-newkey", "ec", "-pkeyopt", f"ec_paramgen_curve:{_CURVE}", "-nodes"]
    try:
        _run(
            binary,
            [
                "req",
                "-x509",
                "-config",
                str(ca_conf),
                "-extensions",
                "v3_ca",
                *curve,
                "-keyout",
                str(ca_key),
                "-out",
                str(paths.ca),
                "-days",
                str(days),
                "-sha256",
            ],
            cwd=directory,
        )
        _run(
            binary,
            [
                "req",
                "-new",
                "-config",
                str(server_conf),
                *curve,
                "-keyout",
                str(paths.key),
                "-out",
                str(csr),
            ],
            cwd=directory,
        )
        os.chmod(paths.key, 0o600)
        _run(
            binary,
            [
                "x509",
                "-req",
                "-in",
                str(csr),
                "-CA",
                str(paths.ca),
                "-CAkey",
                str(ca_key),
                "-set_serial",
                f"0x{secrets.token_hex(16)}",
                "-days",
                str(days),
                "-sha256",
                "-extfile",
                str(server_conf),
                "-extensions",
                "v3_server",
                "-out",
                str(paths.certificate),
            ],
            cwd=directory,
        )
    finally:
        for leftover in (ca_key, csr, ca_conf, server_conf):
            leftover.unlink(missing_ok=True)
    logger.debug("made a CA and a certificate for %s in %s", alt_names, directory)
    return paths
