"""Which proxy, if any, carries a request: the ``*_proxy`` conventions, pure.

Cluster nodes often reach the internet only through an HTTP proxy. The CLI reads
``HTTPS_PROXY``/``HTTP_PROXY``/``ALL_PROXY`` and ``NO_PROXY`` (either case) once, at
the edge, into a frozen :class:`Proxies`; :mod:`sa1b.http` tunnels HTTPS through it
with ``CONNECT`` (TLS is still verified end to end, against the origin's name) and
sends plain HTTP to it in absolute form.
"""

from __future__ import annotations

import base64
from collections.abc import Mapping
from dataclasses import dataclass
from urllib.parse import unquote, urlsplit


@dataclass(frozen=True, slots=True)
class Proxy:
    """A proxy server, and the ``Proxy-Authorization`` its URL's credentials make."""

    host: str
    port: int
    authorization: str | None = None


def parse_proxy(url: str) -> Proxy:
    """``http://user:pass@proxy:3128`` -> Proxy; a bare ``proxy:3128`` is taken as http."""
    parts = urlsplit(url if "://" in url else f"http://{url}")
    if parts.scheme != "http" or not parts.hostname:
        raise ValueError(
            f"unsupported proxy {parts.scheme}://{parts.hostname}: use http://HOST:PORT"
        )
    authorization = None
    if parts.username is not None:
        secret = f"{unquote(parts.username)}:{unquote(parts.password or '')}"
        authorization = "Basic " + base64.b64encode(secret.encode()).decode()
    return Proxy(parts.hostname, parts.port or 8080, authorization)


def bypassed(host: str, port: int, no_proxy: tuple[str, ...]) -> bool:
    """True when ``NO_PROXY`` names the host: ``*``, a domain suffix, ``host:port``."""
    host = host.lower().strip("[]")
    for entry in no_proxy:
        name, entry_port = entry.lower(), ""
        if name.count(":") == 1:  # host:port (an IPv6 address has more colons)
            name, entry_port = name.split(":")
        if entry_port and entry_port != str(port):
            continue
        name = name.lstrip(".").strip("[]")
        if name in ("*", host) or host.endswith(f".{name}"):
            return True
    return False


@dataclass(frozen=True, slots=True, kw_only=True)
class Proxies:
    """The proxies for ``http`` and ``https`` URLs, and the hosts that bypass them."""

    http: Proxy | None = None
    https: Proxy | None = None
    no_proxy: tuple[str, ...] = ()

    @classmethod
    def from_environment(cls, env: Mapping[str, str]) -> Proxies:
        def read(name: str) -> str | None:
            return env.get(name.lower()) or env.get(name.upper()) or None

        every = read("all_proxy")
        http, https = read("http_proxy") or every, read("https_proxy") or every
        no_proxy = tuple(
            item.strip() for item in (read("no_proxy") or "").split(",") if item.strip()
        )
        return cls(
            http=parse_proxy(http) if http else None,
            https=parse_proxy(https) if https else None,
            no_proxy=no_proxy,
        )

    def for_origin(self, scheme: str, host: str, port: int) -> Proxy | None:
        proxy = self.https if scheme == "https" else self.http
        if proxy is None or bypassed(host, port, self.no_proxy):
            return None
        return proxy
