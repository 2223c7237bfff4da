"""Proxy settings, as the ``*_proxy`` conventions have them."""

from __future__ import annotations

import base64

import pytest

from sa1b.proxy import Proxies, Proxy, bypassed, parse_proxy


def test_parse_proxy_forms() -> None:
    assert parse_proxy("http://proxy.example:3128") == Proxy("proxy.example", 3128)
    assert parse_proxy("proxy.example:3128") == Proxy("proxy.example", 3128)
    assert parse_proxy("http://proxy.example") == Proxy("proxy.example", 8080)
    auth = parse_proxy("http://ann:s%40cret@p:1").authorization
    assert auth == "Basic " + base64.b64encode(b"ann:s@cret").decode()


@pytest.mark.parametrize("url", ["socks5://p:1080", "https://p:443", "http://"])
def test_parse_proxy_refuses_what_it_cannot_speak(url: str) -> None:
    with pytest.raises(ValueError, match="proxy"):
        parse_proxy(url)


@pytest.mark.parametrize(
    ("host", "port", "no_proxy", "expected"),
    [
        ("cdn.example.com", 443, ("example.com",), True),
        ("cdn.example.com", 443, (".example.com",), True),
        ("example.com", 443, ("example.com",), True),
        ("badexample.com", 443, ("example.com",), False),
        ("anything", 80, ("*",), True),
        ("127.0.0.1", 8080, ("127.0.0.1:8080",), True),
        ("127.0.0.1", 8081, ("127.0.0.1:8080",), False),
        ("::1", 80, ("::1",), True),
        ("[::1]", 80, ("[::1]",), True),
        ("CDN.Example.COM", 443, ("example.com",), True),
        ("cdn.example.com", 443, (), False),
    ],
)
def test_bypassed(host: str, port: int, no_proxy: tuple[str, ...], expected: bool) -> None:
    assert bypassed(host, port, no_proxy) is expected


def test_from_environment_reads_both_cases_and_all_proxy() -> None:
    proxies = Proxies.from_environment(
        {"https_proxy": "http://a:1", "ALL_PROXY": "http://b:2", "NO_PROXY": " x.org, ,y.org"}
    )
    assert proxies.https == Proxy("a", 1)
    assert proxies.http == Proxy("b", 2)
    assert proxies.no_proxy == ("x.org", "y.org")
    assert proxies.for_origin("https", "cdn.example", 443) == Proxy("a", 1)
    assert proxies.for_origin("https", "www.x.org", 443) is None
    assert Proxies.from_environment({}).for_origin("http", "h", 80) is None
