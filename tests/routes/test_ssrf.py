"""SSRF guard: forbidden addresses, URL checks, and refusals at connect time with real aiohttp requests."""

from __future__ import annotations

import ipaddress
import pickle
import socket
from collections.abc import Iterator
from dataclasses import dataclass, field

import aiohttp
import pytest
from aiohttp.abc import AbstractResolver, ResolveResult
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse
from starlette.routing import Route

from routes.ssrf import (
    GuardedResolver,
    TargetNotAllowedError,
    check_url,
    forbidden_reason,
    guarded_socket,
    is_forbidden,
    make_connector,
)
from tests.servers import serve_in_thread

# --- is_forbidden -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "ip",
    [
        pytest.param("127.0.0.1", id="loopback"),
        pytest.param("127.255.0.9", id="loopback-range"),
        pytest.param("10.1.2.3", id="rfc1918-10"),
        pytest.param("172.16.0.1", id="rfc1918-172.16"),
        pytest.param("172.31.255.255", id="rfc1918-172.31"),
        pytest.param("192.168.1.1", id="rfc1918-192.168"),
        pytest.param("100.64.0.1", id="cgnat"),
        pytest.param("100.127.255.254", id="cgnat-end"),
        pytest.param("169.254.1.1", id="link-local"),
        pytest.param("169.254.169.254", id="metadata-aws-gcp-azure"),
        pytest.param("100.100.100.200", id="metadata-alibaba"),
        pytest.param("0.0.0.0", id="unspecified"),
        pytest.param("0.1.2.3", id="this-network"),
        pytest.param("224.0.0.1", id="multicast"),
        pytest.param("239.255.255.250", id="multicast-ssdp"),
        pytest.param("240.0.0.1", id="reserved"),
        pytest.param("255.255.255.255", id="broadcast"),
        pytest.param("192.0.0.8", id="ietf-protocol-assignments"),
        pytest.param("198.18.0.1", id="benchmarking"),
        pytest.param("::1", id="ipv6-loopback"),
        pytest.param("::", id="ipv6-unspecified"),
        pytest.param("fe80::1", id="ipv6-link-local"),
        pytest.param("fe80::1%eth0", id="ipv6-link-local-scoped"),
        pytest.param("fc00::1", id="ipv6-unique-local-fc"),
        pytest.param("fd12:3456::1", id="ipv6-unique-local-fd"),
        pytest.param("fd00:ec2::254", id="metadata-aws-ipv6"),
        pytest.param("ff02::1", id="ipv6-multicast"),
        pytest.param("fec0::1", id="ipv6-site-local"),
        pytest.param("::ffff:127.0.0.1", id="ipv4-mapped-loopback"),
        pytest.param("::ffff:169.254.169.254", id="ipv4-mapped-metadata"),
        pytest.param("::ffff:10.0.0.1", id="ipv4-mapped-private"),
        pytest.param("64:ff9b::a00:1", id="nat64-private"),
        pytest.param("::7f00:1", id="ipv4-compatible-loopback"),
        pytest.param("2002:7f00:1::", id="6to4-loopback"),
        pytest.param("2001:db8::1", id="ipv6-documentation"),
    ],
)
def test_is_forbidden_refuses_non_public_addresses(ip: str) -> None:
    assert is_forbidden(ip)
    assert is_forbidden(ipaddress.ip_address(ip.split("%")[0]))


@pytest.mark.parametrize(
    "ip",
    [
        pytest.param("8.8.8.8", id="public-v4"),
        pytest.param("1.1.1.1", id="public-v4-cloudflare"),
        pytest.param("100.63.255.255", id="just-below-cgnat"),
        pytest.param("100.128.0.0", id="just-above-cgnat"),
        pytest.param("172.15.255.255", id="just-below-172.16"),
        pytest.param("172.32.0.0", id="just-above-172.31"),
        pytest.param("2606:4700:4700::1111", id="public-v6"),
        pytest.param("::ffff:8.8.8.8", id="ipv4-mapped-public"),
        pytest.param("64:ff9b::808:808", id="nat64-public"),
    ],
)
def test_is_forbidden_allows_public_addresses(ip: str) -> None:
    assert not is_forbidden(ip)


@pytest.mark.parametrize(
    ("ip", "reason"),
    [
        pytest.param("169.254.169.254", "cloud metadata", id="metadata"),
        pytest.param("::ffff:169.254.169.254", "cloud metadata", id="mapped-metadata"),
        pytest.param("127.0.0.1", "loopback", id="loopback"),
        pytest.param("10.0.0.1", "private", id="private"),
        pytest.param("fd00::1", "unique-local", id="unique-local"),
    ],
)
def test_forbidden_reason_names_the_range(ip: str, reason: str) -> None:
    assert reason == forbidden_reason(ip)


def test_is_forbidden_rejects_a_host_name() -> None:
    with pytest.raises(ValueError):
        is_forbidden("localhost")


# --- check_url --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "url",
    [
        "https://example.com/hooks/callboard",
        "http://example.com:8080/x?y=1",
        "HTTPS://Example.COM/",
        "https://hooks.example.com./trailing-dot",
        "http://8.8.8.8/",
        "http://[2606:4700:4700::1111]:8443/",
        "https://bücher.example/",
    ],
)
def test_check_url_accepts_public_http_and_https_urls(url: str) -> None:
    check_url(url)


@pytest.mark.parametrize(
    ("url", "message"),
    [
        pytest.param("", "empty", id="empty"),
        pytest.param("ftp://example.com/", "'ftp'; use http or https", id="ftp"),
        pytest.param("file:///etc/passwd", "'file'; use http or https", id="file"),
        pytest.param("example.com/hook", "no scheme", id="no-scheme"),
        pytest.param("http:///hook", "has no host", id="no-host"),
        pytest.param("https://", "has no host", id="scheme-only"),
        pytest.param(" https://example.com/", "whitespace", id="leading-space"),
        pytest.param("https://exa mple.com/", "whitespace", id="space-in-host"),
        pytest.param("https://example.com/\nX: y", "whitespace", id="header-injection"),
        pytest.param("http://example.com:99999/", "not a valid URL", id="port-out-of-range"),
        pytest.param("http://evil.com\\@127.0.0.1/", "not a valid URL", id="backslash-authority"),
        pytest.param("http://127.0.0.1:8000/", "loopback address", id="loopback-literal"),
        pytest.param("http://10.0.0.5/", "private address", id="private-literal"),
        pytest.param(
            "http://169.254.169.254/latest/meta-data/", "cloud metadata address", id="metadata-literal"
        ),
        pytest.param("http://[::1]/", "loopback address", id="ipv6-loopback-literal"),
        pytest.param("http://[::ffff:127.0.0.1]/", "loopback address", id="ipv4-mapped-literal"),
        pytest.param("http://[fd00:ec2::254]/", "cloud metadata address", id="ipv6-metadata-literal"),
        pytest.param("http://localhost:8000/", "loopback name", id="localhost"),
        pytest.param("http://api.localhost/", "loopback name", id="localhost-subdomain"),
        pytest.param("http://2130706433/", "dotted-quad", id="decimal-ipv4"),
        pytest.param("http://127.1/", "dotted-quad", id="short-ipv4"),
        pytest.param("http://0x7f.0.0.1/", "dotted-quad", id="hex-ipv4"),
        pytest.param("http://exa_mple!.com/", "not a valid host name", id="bad-host-chars"),
    ],
)
def test_check_url_refuses_with_a_clear_message(url: str, message: str) -> None:
    with pytest.raises(TargetNotAllowedError, match=message):
        check_url(url)


@pytest.mark.parametrize(
    "url", ["http://127.0.0.1:8000/hook", "http://localhost:8000/", "http://[::1]/", "http://10.0.0.5/"]
)
def test_check_url_with_allow_private_accepts_private_targets(url: str) -> None:
    check_url(url, allow_private=True)


def test_check_url_with_allow_private_still_requires_http() -> None:
    with pytest.raises(TargetNotAllowedError, match="use http or https"):
        check_url("gopher://127.0.0.1/", allow_private=True)


def test_target_not_allowed_error_is_a_value_error_and_an_os_error() -> None:
    err = TargetNotAllowedError("nope", host="h", address="10.0.0.1")
    assert isinstance(err, ValueError)
    assert isinstance(err, OSError)
    assert "nope" == str(err)
    assert "nope" == err.strerror  # what aiohttp's ClientConnectorError shows
    copy = pickle.loads(pickle.dumps(err))
    assert ("nope", "h", "10.0.0.1") == (str(copy), copy.host, copy.address)


# --- GuardedResolver, with a static inner resolver standing in for DNS ------------------------


@dataclass
class StaticResolver(AbstractResolver):
    """Resolves names from a table, as DNS would (including to private addresses)."""

    table: dict[str, list[str]]
    closed: bool = False
    asked: list[str] = field(default_factory=list)

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        self.asked.append(host)
        if host not in self.table:
            raise OSError(f"no such host {host!r}")
        return [
            ResolveResult(
                hostname=host,
                host=address,
                port=port,
                family=socket.AF_INET6 if ":" in address else socket.AF_INET,
                proto=0,
                flags=socket.AI_NUMERICHOST,
            )
            for address in self.table[host]
        ]

    async def close(self) -> None:
        self.closed = True


async def test_guarded_resolver_refuses_when_any_address_is_forbidden() -> None:
    inner = StaticResolver({"mixed.example": ["8.8.8.8", "10.0.0.7", "1.1.1.1"]})
    with pytest.raises(TargetNotAllowedError, match="'mixed.example' resolves to 10.0.0.7") as info:
        await GuardedResolver(inner).resolve("mixed.example", 443)
    assert ("mixed.example", "10.0.0.7") == (info.value.host, info.value.address)


async def test_guarded_resolver_passes_public_answers_through_unchanged() -> None:
    inner = StaticResolver({"public.example": ["8.8.8.8", "2606:4700:4700::1111"]})
    results = await GuardedResolver(inner).resolve("public.example", 443)
    assert ["8.8.8.8", "2606:4700:4700::1111"] == [r["host"] for r in results]


async def test_guarded_resolver_with_allow_private_passes_everything_through() -> None:
    inner = StaticResolver({"internal.example": ["127.0.0.1", "fd00::1"]})
    results = await GuardedResolver(inner, allow_private=True).resolve("internal.example", 80)
    assert ["127.0.0.1", "fd00::1"] == [r["host"] for r in results]


async def test_guarded_resolver_close_closes_the_inner_resolver() -> None:
    inner = StaticResolver({})
    await GuardedResolver(inner).close()
    assert inner.closed


def test_guarded_socket_refuses_a_forbidden_address_before_creating_a_socket() -> None:
    with pytest.raises(TargetNotAllowedError, match="'169.254.169.254' is a cloud metadata address"):
        guarded_socket((socket.AF_INET, socket.SOCK_STREAM, 6, "", ("169.254.169.254", 80)))


def test_guarded_socket_creates_a_socket_for_a_public_address() -> None:
    with guarded_socket((socket.AF_INET, socket.SOCK_STREAM, 6, "", ("8.8.8.8", 80))) as sock:
        assert socket.AF_INET == sock.family


# --- real requests through aiohttp to a real server on 127.0.0.1 ------------------------------


@dataclass
class Hits:
    count: int = 0
    hosts: list[str] = field(default_factory=list)


@pytest.fixture(scope="module")
def server() -> Iterator[tuple[str, Hits]]:
    hits = Hits()

    async def hook(request: Request) -> PlainTextResponse:
        hits.count += 1
        hits.hosts.append(request.headers.get("host", ""))
        return PlainTextResponse("ok")

    app = Starlette(routes=[Route("/hook", hook, methods=["POST"])])
    with serve_in_thread(app) as base:
        yield base, hits


def _port(base: str) -> int:
    return int(base.rsplit(":", 1)[1])


async def _post(connector: aiohttp.BaseConnector, url: str) -> int:
    timeout = aiohttp.ClientTimeout(total=5)
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:
        async with session.post(
            url, json={"type": "transcript.completed"}, allow_redirects=False
        ) as response:
            return response.status


@pytest.mark.parametrize(
    "host",
    [
        pytest.param("localhost", id="name"),
        pytest.param("127.0.0.1", id="ipv4-literal"),
        pytest.param("[::1]", id="ipv6-literal"),
    ],
)
async def test_guarded_connector_refuses_loopback_at_connect_time(
    server: tuple[str, Hits], host: str
) -> None:
    base, hits = server
    before = hits.count
    with pytest.raises(aiohttp.ClientConnectorError) as info:
        await _post(make_connector(allow_private=False, limit=10), f"http://{host}:{_port(base)}/hook")
    assert isinstance(info.value.os_error, TargetNotAllowedError)
    assert "loopback address" in str(info.value)
    assert before == hits.count


@pytest.mark.parametrize(
    "url",
    [
        pytest.param("http://169.254.169.254/latest/meta-data/", id="metadata"),
        pytest.param("http://10.255.255.1:81/", id="private"),
        pytest.param("http://[fd00:ec2::254]/", id="ipv6-metadata"),
    ],
)
async def test_guarded_connector_refuses_private_literals_without_connecting(url: str) -> None:
    with pytest.raises(aiohttp.ClientConnectorError) as info:
        await _post(make_connector(allow_private=False, limit=10), url)
    assert isinstance(info.value.os_error, TargetNotAllowedError)


@pytest.mark.parametrize(
    "host", [pytest.param("localhost", id="name"), pytest.param("127.0.0.1", id="ipv4-literal")]
)
async def test_connector_with_allow_private_reaches_loopback(server: tuple[str, Hits], host: str) -> None:
    base, hits = server
    before = hits.count
    assert 200 == await _post(
        make_connector(allow_private=True, limit=10), f"http://{host}:{_port(base)}/hook"
    )
    assert before + 1 == hits.count


async def test_guarded_connector_refuses_a_public_name_that_resolves_to_loopback(
    server: tuple[str, Hits],
) -> None:
    """DNS rebinding: the name passed `check_url`, but now resolves to 127.0.0.1."""
    base, hits = server
    inner = StaticResolver({"hooks.example.com": ["127.0.0.1"]})
    connector = aiohttp.TCPConnector(resolver=GuardedResolver(inner), socket_factory=guarded_socket)
    url = f"http://hooks.example.com:{_port(base)}/hook"
    check_url(url)
    before = hits.count
    with pytest.raises(aiohttp.ClientConnectorError) as info:
        await _post(connector, url)
    assert isinstance(info.value.os_error, TargetNotAllowedError)
    assert "'hooks.example.com' resolves to 127.0.0.1" in str(info.value)
    assert before == hits.count


async def test_guarded_resolver_with_allow_private_lets_the_name_through(server: tuple[str, Hits]) -> None:
    base, hits = server
    inner = StaticResolver({"hooks.example.com": ["127.0.0.1"]})
    connector = aiohttp.TCPConnector(resolver=GuardedResolver(inner, allow_private=True))
    assert 200 == await _post(connector, f"http://hooks.example.com:{_port(base)}/hook")
    assert f"hooks.example.com:{_port(base)}" == hits.hosts[-1]
    assert ["hooks.example.com"] == inner.asked


async def test_aiohttp_skips_the_resolver_for_ip_literals_so_the_socket_factory_is_needed(
    server: tuple[str, Hits],
) -> None:
    """Pins aiohttp behaviour the guard relies on: a resolver alone does not see IP literals."""
    base, _ = server
    inner = StaticResolver({})
    connector = aiohttp.TCPConnector(resolver=GuardedResolver(inner))
    assert 200 == await _post(connector, f"{base}/hook")
    assert [] == inner.asked


async def test_aiohttp_rejects_legacy_numeric_ipv4_hosts(server: tuple[str, Hits]) -> None:
    """`http://2130706433/` is 127.0.0.1 to getaddrinfo; aiohttp refuses it before any lookup."""
    base, hits = server
    before = hits.count
    with pytest.raises(aiohttp.InvalidURL):
        await _post(make_connector(allow_private=True, limit=10), f"http://2130706433:{_port(base)}/hook")
    assert before == hits.count
