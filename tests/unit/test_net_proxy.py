"""Proxy settings, as the ``*_proxy`` conventions have them."""

from __future__ import annotations

import pytest

from sa1b.net.proxy import Proxies, Proxy, bypassed, parse_proxy


@pytest.mark.parametrize(
    ("given", "url", "shown"),
    [
        ("http://proxy.example:3128", "http://proxy.example:3128", "http://proxy.example:3128"),
        ("proxy.example:3128", "http://proxy.example:3128", "http://proxy.example:3128"),
        ("http://proxy.example", "http://proxy.example:8080", "http://proxy.example:8080"),
        ("https://p", "https://p:443", "https://p:443"),
        ("socks5h://p:1080", "socks5h://p:1080", "socks5h://p:1080"),
        ("SOCKS4://p", "socks4://p:1080", "socks4://p:1080"),
        ("http://ann:s%40cret@p:1", "http://ann:s%40cret@p:1", "http://p:1"),
        ("http://[::1]:3128", "http://[::1]:3128", "http://[::1]:3128"),
    ],
)
def test_parse_proxy_forms(given: str, url: str, shown: str) -> None:
    assert parse_proxy(given) == Proxy(url, shown)


@pytest.mark.parametrize("url", ["ftp://p:21", "http://", "http://p:notaport", "file:///x"])
def test_parse_proxy_refuses_what_libcurl_should_not_speak(url: str) -> None:
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
        {"https_proxy": "http://a:1", "ALL_PROXY": "socks5://b:2", "NO_PROXY": " x.org, ,y.org"}
    )
    assert proxies.https == parse_proxy("http://a:1")
    assert proxies.http == parse_proxy("socks5://b:2")
    assert proxies.no_proxy == ("x.org", "y.org")
    assert proxies.for_url("https://cdn.example/f.tar?oh=1") == parse_proxy("http://a:1")
    assert proxies.for_url("https://www.x.org/f.tar") is None
    assert proxies.for_url("http://cdn.example:8080/f") == parse_proxy("socks5://b:2")
    assert Proxies.from_environment({}).for_url("http://h/f") is None


def test_an_unusable_variable_is_named() -> None:
    with pytest.raises(ValueError, match="HTTPS_PROXY"):
        Proxies.from_environment({"HTTPS_PROXY": "ftp://p:21"})
    with pytest.raises(ValueError, match="ALL_PROXY"):
        Proxies.from_environment({"all_proxy": "gopher://p"})


def test_no_proxy_means_none_whatever_the_environment() -> None:
    assert Proxies().for_url("https://cdn.example/f") is None
