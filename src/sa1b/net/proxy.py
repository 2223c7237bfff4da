"""Which proxy, if any, carries a request: the ``*_proxy`` conventions, pure.

Cluster nodes often reach the internet only through a proxy. The CLI reads
``HTTPS_PROXY``/``HTTP_PROXY``/``ALL_PROXY`` and ``NO_PROXY`` (either case) once, at
the edge, into a frozen :class:`Proxies`; libcurl then speaks to the proxy: a
``CONNECT`` tunnel for HTTPS (TLS still verified end to end, against the origin's
name), absolute-form requests for plain HTTP, SOCKS4/5 handshakes. Credentials in a
proxy URL go to libcurl and nowhere else: :attr:`Proxy.shown` never has them.

The choice is made here, not left to libcurl's own reading of the environment, so
that a library caller's ``Proxies()`` means "no proxy" whatever the process
environment says, and so that ``NO_PROXY`` entries with a port work.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from urllib.parse import urlsplit

SCHEMES = ("http", "https", "socks4", "socks4a", "socks5", "socks5h")
DEFAULT_PORTS = {"http": 8080, "https": 443}


@dataclass(frozen=True, slots=True)
class Proxy:
    """A proxy server: ``url`` for libcurl (credentials included), ``shown`` for people."""

    url: str
    shown: str


def parse_proxy(url: str) -> Proxy:
    """``http://user:pass@proxy:3128`` -> Proxy; a bare ``proxy:3128`` is taken as http."""
    full = url.strip() if "://" in url else f"http://{url.strip()}"
    parts = urlsplit(full)
    scheme = parts.scheme.lower()
    try:
        port = parts.port
    except ValueError:
        port = None
        hostname = None
    else:
        hostname = parts.hostname
    if scheme not in SCHEMES or not hostname:
        raise ValueError(
            f"unsupported proxy {scheme}://{hostname or ''}: use http://, https://, "
            "socks4://, socks5:// or socks5h:// followed by HOST:PORT"
        )
    host = f"[{hostname}]" if ":" in hostname else hostname
    port = port or DEFAULT_PORTS.get(scheme, 1080)
    userinfo = parts.netloc.rpartition("@")[0]
    credentials = f"{userinfo}@" if userinfo else ""
    return Proxy(f"{scheme}://{credentials}{host}:{port}", f"{scheme}://{host}:{port}")


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
        """Read the variables; raises ValueError naming the one that cannot be used."""

        def read(name: str) -> str | None:
            return env.get(name.lower()) or env.get(name.upper()) or None

        def parse(name: str, fallback: str | None) -> Proxy | None:
            value = read(name) or fallback
            if not value:
                return None
            try:
                return parse_proxy(value)
            except ValueError as error:
                source = name.upper() if read(name) else "ALL_PROXY"
                raise ValueError(f"{source}: {error}") from None

        every = read("all_proxy")
        no_proxy = tuple(
            item.strip() for item in (read("no_proxy") or "").split(",") if item.strip()
        )
        return cls(
            http=parse("http_proxy", every), https=parse("https_proxy", every), no_proxy=no_proxy
        )

    def for_url(self, url: str) -> Proxy | None:
        """The proxy for ``url``, or None to connect directly."""
        parts = urlsplit(url)
        proxy = self.https if parts.scheme == "https" else self.http
        if proxy is None or parts.hostname is None:
            return None
        port = parts.port or (443 if parts.scheme == "https" else 80)
        return None if bypassed(parts.hostname, port, self.no_proxy) else proxy
