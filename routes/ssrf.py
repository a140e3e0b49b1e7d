"""SSRF guard: subscription URLs must not reach loopback, private, link-local or metadata addresses.

Why: a subscription URL is chosen by whoever holds the admin token, and Callboard POSTs to it from
inside the operator's network. Without a guard, `http://169.254.169.254/…` or
`http://localhost:5432/` turns the delivery worker into a proxy into that network.

Checking the URL when the subscription is created is not enough: a name can resolve to a public
address today and to 127.0.0.1 tomorrow (DNS rebinding), so the authoritative check happens at
connect time, on the very addresses the connection uses. Two layers do that for aiohttp:

- `GuardedResolver` wraps aiohttp's resolver and refuses a host when ANY address it resolves to is
  forbidden (not just the first: happy eyeballs may try any of them).
- aiohttp does not call the resolver for IP literals (`http://127.0.0.1/`, `http://[::1]/`), so
  `make_connector` also installs a socket factory (`guarded_socket`) that checks every address
  right before a socket is opened for it.

Refusals raise `TargetNotAllowedError`, a `ValueError` (for `check_url` callers) that is also an
`OSError`, because aiohttp turns a resolver's or socket factory's `OSError` into a
`ClientConnectorError` (a connection failure the worker records and retries like any other);
a non-`OSError` would escape the session as an unexpected exception.

`CALLBOARD_ALLOW_PRIVATE_TARGETS` (`allow_private=True`) turns all of this off, for tests and
local development. Note the guard applies to the address aiohttp connects to: a worker using an
HTTP proxy (`trust_env=True`) would be checking the proxy, not the target.
"""

from __future__ import annotations

import errno
import ipaddress
import re
import socket

import aiohttp
import yarl
from aiohttp.abc import AbstractResolver, ResolveResult
from aiohttp.resolver import DefaultResolver

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

ALLOWED_SCHEMES = frozenset({"http", "https"})

#: Cloud instance-metadata endpoints (AWS/GCP/Azure/OpenStack/Oracle, AWS IPv6, Alibaba).
METADATA_ADDRESSES = frozenset(
    ipaddress.ip_address(a) for a in ("169.254.169.254", "fd00:ec2::254", "100.100.100.200")
)

_V4 = ipaddress.IPv4Network
_V6 = ipaddress.IPv6Network

#: Forbidden ranges with the reason shown in errors. Listed explicitly rather than relying on
#: `ipaddress.is_private`, whose tables changed between Python patch releases.
_FORBIDDEN_V4: tuple[tuple[ipaddress.IPv4Network, str], ...] = (
    (_V4("0.0.0.0/8"), "unspecified"),
    (_V4("10.0.0.0/8"), "private"),
    (_V4("100.64.0.0/10"), "private (carrier-grade NAT)"),
    (_V4("127.0.0.0/8"), "loopback"),
    (_V4("169.254.0.0/16"), "link-local"),
    (_V4("172.16.0.0/12"), "private"),
    (_V4("192.0.0.0/24"), "reserved (IETF protocol assignments)"),
    (_V4("192.0.2.0/24"), "reserved (documentation)"),
    (_V4("192.168.0.0/16"), "private"),
    (_V4("198.18.0.0/15"), "reserved (benchmarking)"),
    (_V4("198.51.100.0/24"), "reserved (documentation)"),
    (_V4("203.0.113.0/24"), "reserved (documentation)"),
    (_V4("224.0.0.0/4"), "multicast"),
    (_V4("240.0.0.0/4"), "reserved"),  # includes 255.255.255.255
)
_FORBIDDEN_V6: tuple[tuple[ipaddress.IPv6Network, str], ...] = (
    (_V6("::/128"), "unspecified"),
    (_V6("::1/128"), "loopback"),
    (_V6("64:ff9b:1::/48"), "private (local-use NAT64)"),
    (_V6("100::/64"), "reserved (discard-only)"),
    (_V6("2001:db8::/32"), "reserved (documentation)"),
    (_V6("fc00::/7"), "unique-local"),
    (_V6("fe80::/10"), "link-local"),
    (_V6("fec0::/10"), "site-local"),
    (_V6("ff00::/8"), "multicast"),
)
_NAT64 = _V6("64:ff9b::/96")
_IPV4_COMPATIBLE = _V6("::/96")  # deprecated ::a.b.c.d form

_HOSTNAME = re.compile(r"^[A-Za-z0-9_.-]+$")
_LEGACY_IPV4 = re.compile(r"^[0-9A-Fa-fXx.]+$")


class TargetNotAllowedError(OSError, ValueError):
    """A subscription URL or the address it resolves to is not an allowed delivery target.

    A `ValueError` for callers validating input, and an `OSError` so that aiohttp reports a
    refusal at connect time as a `ClientConnectorError` (its `os_error` is this exception).
    """

    def __init__(self, message: str, *, host: str | None = None, address: str | None = None) -> None:
        super().__init__(errno.EACCES, message)  # aiohttp shows `strerror` in its own message
        self.args = (message,)
        self.message = message
        self.host = host
        self.address = address

    def __str__(self) -> str:
        return self.message

    __reduce__ = BaseException.__reduce__


def _embedded_ipv4(ip: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    """The IPv4 address an IPv6 address stands for (mapped, NAT64, IPv4-compatible, 6to4)."""
    if ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    if ip in _NAT64 or (ip in _IPV4_COMPATIBLE and int(ip) > 1):
        return ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
    return ip.sixtofour


def forbidden_reason(ip: str | IPAddress) -> str | None:
    """Why `ip` may not be a delivery target (e.g. `"loopback"`), or None when it may.

    IPv4 addresses embedded in IPv6 (`::ffff:127.0.0.1`, NAT64 `64:ff9b::a00:1`, 6to4) are judged
    as the IPv4 address they stand for. A scope id (`fe80::1%eth0`) is ignored.

    Raises:
        ValueError: `ip` is not an IP address.
    """
    address = ipaddress.ip_address(ip) if isinstance(ip, str) else ip
    if isinstance(address, ipaddress.IPv6Address):
        if address.scope_id is not None:
            address = ipaddress.IPv6Address(str(address).split("%", 1)[0])
        if address in METADATA_ADDRESSES:
            return "cloud metadata"
        inner = _embedded_ipv4(address)
        if inner is not None:
            reason = forbidden_reason(inner)
            if reason is not None or address.ipv4_mapped is not None:
                return reason
        for network, reason in _FORBIDDEN_V6:
            if address in network:
                return reason
        return None
    if address in METADATA_ADDRESSES:
        return "cloud metadata"
    for network4, reason in _FORBIDDEN_V4:
        if address in network4:
            return reason
    return None


def is_forbidden(ip: str | IPAddress) -> bool:
    """True when `ip` is loopback, private, link-local, unique-local, multicast, unspecified,
    reserved or a cloud metadata address (see `forbidden_reason`)."""
    return forbidden_reason(ip) is not None


def _refusal(host: str, address: str, reason: str) -> TargetNotAllowedError:
    where = f"{host!r}" if host == address else f"{host!r} resolves to {address}, which"
    return TargetNotAllowedError(
        f"delivery target {where} is a {reason} address; set CALLBOARD_ALLOW_PRIVATE_TARGETS "
        "to allow private targets",
        host=host,
        address=address,
    )


def check_url(url: str, *, allow_private: bool = False) -> None:
    """Validate a subscription URL when it is created or changed.

    The URL must be absolute `http`/`https` with a host name or address. Unless `allow_private`,
    a literal IP in a forbidden range and `localhost` are refused too. Names are not resolved
    here: that happens, and is checked, at connect time (`GuardedResolver`).

    Raises:
        TargetNotAllowedError: with a message saying what is wrong.
    """
    if not isinstance(url, str) or not url.strip():
        raise TargetNotAllowedError("subscription URL is empty")
    if url != url.strip() or any(ch.isspace() or ord(ch) < 32 for ch in url):
        raise TargetNotAllowedError(f"subscription URL {url!r} contains whitespace or control characters")
    try:
        parsed = yarl.URL(url)
    except ValueError as exc:
        raise TargetNotAllowedError(f"subscription URL {url!r} is not a valid URL: {exc}") from None
    scheme = parsed.scheme.lower()
    if scheme not in ALLOWED_SCHEMES:
        shown = f"{scheme!r}" if scheme else "no scheme"
        raise TargetNotAllowedError(f"subscription URL {url!r} has {shown}; use http or https")
    host = parsed.host
    raw_host = parsed.raw_host
    if not host or not raw_host:
        raise TargetNotAllowedError(f"subscription URL {url!r} has no host")
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        address = None
    if address is None:
        bare = raw_host.rstrip(".")
        if not _HOSTNAME.match(bare):
            raise TargetNotAllowedError(f"subscription URL {url!r}: {host!r} is not a valid host name")
        if _LEGACY_IPV4.match(bare) and _is_legacy_ipv4(bare):
            raise TargetNotAllowedError(
                f"subscription URL {url!r}: write the IPv4 address {host!r} in dotted-quad form"
            )
        if not allow_private and (bare.lower() == "localhost" or bare.lower().endswith(".localhost")):
            raise TargetNotAllowedError(
                f"delivery target {host!r} is a loopback name; set CALLBOARD_ALLOW_PRIVATE_TARGETS "
                "to allow private targets",
                host=host,
            )
        return
    if not allow_private:
        reason = forbidden_reason(address)
        if reason is not None:
            raise _refusal(host, str(address), reason)


def _is_legacy_ipv4(host: str) -> bool:
    """True for numeric IPv4 forms other than dotted quad (`2130706433`, `127.1`, `0x7f.0.0.1`)."""
    try:
        socket.inet_aton(host)
    except OSError:
        return False
    return True


class GuardedResolver(AbstractResolver):
    """An aiohttp resolver that refuses hosts resolving to any forbidden address.

    Wraps `resolver` (by default aiohttp's `DefaultResolver`, which must be created inside a
    running event loop). With `allow_private=True` it passes every answer through.
    """

    def __init__(self, resolver: AbstractResolver | None = None, *, allow_private: bool = False) -> None:
        self._resolver = resolver if resolver is not None else DefaultResolver()
        self._allow_private = allow_private

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        results = await self._resolver.resolve(host, port, family)
        if not self._allow_private:
            for result in results:
                reason = forbidden_reason(result["host"])
                if reason is not None:
                    raise _refusal(host, result["host"], reason)
        return results

    async def close(self) -> None:
        await self._resolver.close()


def guarded_socket(
    addr_info: tuple[int | socket.AddressFamily, int | socket.SocketKind, int, str, tuple[object, ...]],
) -> socket.socket:
    """aiohttp `socket_factory`: refuse forbidden addresses right before connecting.

    This is what guards IP-literal URLs, which aiohttp connects to without asking the resolver.
    """
    family, type_, proto, _, sockaddr = addr_info
    address = str(sockaddr[0])
    reason = forbidden_reason(address)
    if reason is not None:
        raise _refusal(address, address, reason)
    return socket.socket(family=family, type=type_, proto=proto)


def make_connector(*, allow_private: bool, limit: int) -> aiohttp.TCPConnector:
    """The TCP connector for deliveries: guarded unless `allow_private`.

    Call it inside a running event loop (aiohttp's resolver and connector need one).

    Args:
        allow_private: `CALLBOARD_ALLOW_PRIVATE_TARGETS`; when true nothing is refused.
        limit: maximum simultaneous connections across all subscribers (0 = unlimited).
    """
    resolver = GuardedResolver(allow_private=allow_private)
    if allow_private:
        return aiohttp.TCPConnector(limit=limit, resolver=resolver)
    return aiohttp.TCPConnector(limit=limit, resolver=resolver, socket_factory=guarded_socket)
