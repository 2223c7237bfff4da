"""The transport's settings: frozen values, built once at the edge (CLI or caller)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from sa1b.errors import InputError
from sa1b.net.proxy import Proxies

USER_AGENT = "sa1b/0.2"
MAX_REDIRECTS = 5


@dataclass(frozen=True, slots=True, kw_only=True)
class Timeouts:
    """When a connection is given up, in seconds.

    ``connect`` bounds TCP, the proxy's tunnel and the TLS handshake; ``head`` the
    time from the start of a request to its complete response head; ``read`` is the
    window of the speed floor: a body slower than ``floor`` bytes/s over ``read``
    seconds is a stall. A server that drips one byte a second therefore holds a
    connection for ``read`` seconds, not for ever.
    """

    connect: float = 15.0
    head: float = 30.0
    read: float = 30.0
    floor: float = 4096.0

    def __post_init__(self) -> None:
        if min(self.connect, self.head, self.read) < 0.001:
            raise InputError("timeouts must be at least 1 ms")
        if self.floor < 0:
            raise InputError("the speed floor cannot be negative")


@dataclass(frozen=True, slots=True, kw_only=True)
class TransportOptions:
    """How to reach servers: timeouts, proxies and the CA bundle that TLS trusts.

    ``ca_bundle`` None means the system's (see :func:`find_ca_bundle`). TLS is
    verified whatever the options: there is no setting that turns it off.
    """

    timeouts: Timeouts = field(default_factory=Timeouts)
    proxies: Proxies = field(default_factory=Proxies)
    ca_bundle: Path | None = None
    user_agent: str = USER_AGENT


CA_BUNDLE_VARIABLES = ("SSL_CERT_FILE", "CURL_CA_BUNDLE", "REQUESTS_CA_BUNDLE")


def find_ca_bundle(given: Path | None, env: Mapping[str, str]) -> Path | None:
    """The CA bundle to trust: ``given``, else the first variable of
    :data:`CA_BUNDLE_VARIABLES` that is set, else the system's bundle; None when the
    system has none (libcurl then uses the system's certificate folder).

    The libcurl inside pycurl's wheels looks for a Red Hat path by default, which
    Debian and Ubuntu lack: the bundle is therefore always named explicitly.
    """
    if given is not None:
        if not given.is_file():
            raise InputError(f"{given}: no such CA bundle", hint="check the --ca-bundle path")
        return given
    for name in CA_BUNDLE_VARIABLES:
        if value := env.get(name):
            path = Path(value)
            if not path.is_file():
                raise InputError(f"{name}={value}: no such CA bundle", hint=f"check {name}")
            return path
    import ssl  # here, not at start-up: only for the system's default paths

    defaults = ssl.get_default_verify_paths()
    for candidate in (defaults.cafile, defaults.openssl_cafile):
        if candidate and Path(candidate).is_file():
            return Path(candidate)
    return None


def system_ca_folder() -> Path | None:
    """The system's folder of hashed CA certificates, where one exists."""
    import ssl

    defaults = ssl.get_default_verify_paths()
    for candidate in (defaults.capath, defaults.openssl_capath):
        if candidate and Path(candidate).is_dir():
            return Path(candidate)
    return None
