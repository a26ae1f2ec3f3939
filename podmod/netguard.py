"""The guard on every outgoing HTTPS request (list downloads, remote photos): the URL parsed once,
its host resolved once, every address checked, and the connection made to the addresses checked,
so that neither a second URL parser nor a second DNS answer can lead podmod into its own network.
"""

from __future__ import annotations

import contextlib
import ipaddress
import re
import socket
import weakref
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import requests
import urllib3.connection
import urllib3.exceptions
from requests.adapters import HTTPAdapter
from urllib3.util import connection

from podmod.errors import PodmodError

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

# Addresses taken as public although they are not. Only the tests set it, to serve photos from
# loopback; nothing in podmod or its configuration changes it.
EXEMPT: frozenset[IPAddress] = frozenset()

_NAT64 = ipaddress.ip_network("64:ff9b::/96")  # the IPv4 address in the last 32 bits
_LOCAL_NAT64 = ipaddress.ip_network("64:ff9b:1::/48")  # a site's own translator: never public
_SITE_LOCAL = ipaddress.ip_network("fec0::/10")  # deprecated, still routed inside some sites
_HOST_NAME = re.compile(
    r"[a-z0-9_](?:[a-z0-9_-]*[a-z0-9_])?(?:\.[a-z0-9_](?:[a-z0-9_-]*[a-z0-9_])?)*\.?"
)


class Refused(PodmodError):
    """A URL podmod will not fetch from; the message is a phrase naming why."""


class Unresolved(Refused):
    """A URL whose host this server's resolver does not know."""


@dataclass(frozen=True)
class Target:
    """A URL's host and port as the guard reads it (the only reading that counts)."""

    host: str
    port: int
    has_userinfo: bool


@dataclass(frozen=True)
class Destination:
    """A host and port and the addresses it resolved to, every one checked."""

    host: str
    port: int
    addresses: tuple[str, ...]


def parse(url: str) -> Target:
    """Read an https:// URL's host and port, refusing what parsers disagree on: a backslash or a
    control character anywhere, a space or non-ASCII in the authority, a host that is not a plain
    name or an IP address."""
    if "\\" in url:
        raise Refused("the URL holds a backslash, which URL parsers read differently")
    if any(ord(char) < 32 or ord(char) == 127 for char in url):
        raise Refused("the URL holds a control character, which URL parsers drop or keep")
    try:
        parts = urlsplit(url)
        host, port = parts.hostname or "", parts.port or 443
    except ValueError:  # a bracket that closes no IPv6 address, a port that is not a number
        raise Refused("the URL's host or port cannot be read") from None
    if parts.scheme.lower() != "https":
        raise Refused("only https:// URLs are fetched")
    if not parts.netloc.isascii() or " " in parts.netloc:
        raise Refused(
            "the URL's host part holds a space or a character other than ASCII (write an"
            " international name in its xn-- form)"
        )
    if not _is_address(host) and not _HOST_NAME.fullmatch(host):
        raise Refused(f"the URL's host {host!r} is not a host name or an IP address")
    return Target(host, port, "@" in parts.netloc)


def resolve(target: Target, *, trusted: bool = False) -> Destination:
    """Resolve the host once and check every address it has: none may be on a private network
    (loopback, private, link-local, site-local, multicast, reserved, or such an IPv4 address
    inside an IPv6 one), nor may the URL carry a user name, unless the host is `trusted`."""
    if target.has_userinfo and not trusted:
        raise Refused("the URL holds a user name or password, which is refused")
    try:
        infos = socket.getaddrinfo(target.host, target.port, type=socket.SOCK_STREAM)
    except (OSError, UnicodeError):
        raise Unresolved(f"the host {target.host} could not be resolved") from None
    addresses = tuple(dict.fromkeys(str(info[4][0]) for info in infos))
    if not addresses:
        raise Unresolved(f"the host {target.host} could not be resolved")
    for address in addresses if not trusted else ():
        reason = not_public(ipaddress.ip_address(address))
        if reason:
            raise Refused(f"the host {target.host} is on a private network ({reason})")
    return Destination(target.host, target.port, addresses)


def not_public(address: IPAddress) -> str | None:
    """Why connecting to `address` could reach a private network (the address, and the IPv4
    address it carries where it carries one), or None for a public address."""
    if address in EXEMPT:
        return None
    if isinstance(address, ipaddress.IPv6Address):
        inner = _embedded_ipv4(address)
        if inner is not None and not_public(inner):
            return f"{address}, which carries {inner}"
        if inner is not None and (address.ipv4_mapped or address in _NAT64):
            return None  # leads to its public IPv4 address (DNS64 answers so on IPv6-only hosts)
        if address in _SITE_LOCAL or address in _LOCAL_NAT64:
            return str(address)
    if not address.is_global or address.is_multicast or address.is_reserved:
        return str(address)
    return None


def _embedded_ipv4(address: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    """The IPv4 address an IPv6 one leads to: mapped, Teredo (its client), 6to4, NAT64, or the
    deprecated IPv4-compatible ::a.b.c.d."""
    if address.ipv4_mapped:
        return address.ipv4_mapped
    if address.teredo:
        return address.teredo[1]
    if address.sixtofour:
        return address.sixtofour
    if address in _NAT64 or 1 < int(address) < 2**32:
        return ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    return None


def _is_address(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


class GuardedSession(requests.Session):
    """A requests session whose every request goes through the guard and to the addresses the
    guard checked. Redirects are never followed here: each is the caller's next request, and
    checked again. With `trust_first_host`, the first URL's host and port (the one a podmin typed)
    may be on a private network and carry a user name; no other host may."""

    def __init__(self, *, trust_first_host: bool = False, proxy: str | None = None) -> None:
        super().__init__()
        self.trust_first_host = trust_first_host
        self.typed: tuple[str, int] | None = None
        self.proxy = proxy or None
        self.adapter: _PinnedAdapter | _ProxiedAdapter = (
            _ProxiedAdapter() if self.proxy else _PinnedAdapter()
        )
        self.mount("https://", self.adapter)
        self.mount("http://", self.adapter)

    def request(self, method: str | bytes, url: str | bytes, *args: Any, **kwargs: Any) -> Any:
        target = parse(url.decode() if isinstance(url, bytes) else url)
        if self.trust_first_host and self.typed is None:
            self.typed = (target.host, target.port)
        trusted = (target.host, target.port) == self.typed
        try:
            self.adapter.destination = resolve(target, trusted=trusted)
        except Unresolved:
            if not self.proxy:
                raise
            # Behind a proxy, this server's resolver may know only its own network's names: a
            # name it cannot resolve is not one of them, and the proxy resolves it.
            self.adapter.destination = Destination(target.host, target.port, ())
        # The configured proxy alone, per request: one from the environment (HTTPS_PROXY) would
        # otherwise take its place.
        kwargs["proxies"] = {"https": self.proxy} if self.proxy else {}
        return super().request(method, url, *args, **kwargs)

    def get_redirect_target(self, response: requests.Response) -> None:
        return None  # the caller follows redirects, each through request() and the guard

    def cut(self) -> None:
        """Shut down every connection this session opened, in use or not: a request blocked
        reading from one, in a thread its caller gave up on at a deadline, then ends at once
        (and its socket with it) instead of reading on as long as a server trickles bytes."""
        self.adapter.cut()


def _checked(
    adapter: HTTPAdapter,
    destination: Destination | None,
    request: requests.PreparedRequest,
    verify: Any,
    cert: Any,
) -> tuple[Destination, dict[str, Any]]:
    """The destination the guard checked, and the connection pool's settings, when requests reads
    the request's URL as naming that host and port; else Refused (two parsers disagreeing)."""
    host, pool_kwargs = adapter.build_connection_pool_key_attributes(request, verify, cert)
    if destination is None or (host["scheme"], host["host"], host["port"] or 443) != (
        "https",
        destination.host,
        destination.port,
    ):
        raise Refused("the URL is read as naming another host than the one checked")
    return destination, pool_kwargs


class _PinnedAdapter(HTTPAdapter):
    """Connections only to the checked destination, never through a proxy (which would resolve
    the name again itself); a request whose URL requests reads as another host is refused."""

    def __init__(self) -> None:
        super().__init__()
        self.destination: Destination | None = None
        self.pools: dict[tuple[Any, ...], _PinnedPool] = {}
        self.cut_off = False

    def cut(self) -> None:
        self.cut_off = True  # (a pool made after this, by a thread still on its way, is cut too)
        for pool in list(self.pools.values()):
            pool.cut()

    def get_connection_with_tls_context(
        self, request: requests.PreparedRequest, verify: Any, proxies: Any = None, cert: Any = None
    ) -> _PinnedPool:
        destination, pool_kwargs = _checked(self, self.destination, request, verify, cert)
        key = (destination, *sorted(pool_kwargs.items()))
        if key not in self.pools:
            self.pools[key] = _PinnedPool(
                destination.host, destination.port, addresses=destination.addresses, **pool_kwargs
            )
        if self.cut_off:
            self.pools[key].cut()
        return self.pools[key]

    def close(self) -> None:
        super().close()
        for pool in self.pools.values():
            pool.close()
        self.pools.clear()


class _ProxiedAdapter(HTTPAdapter):
    """Connections through the proxy a podmin configured (list_sync.proxy), where the server
    reaches the internet only through one: a tunnel (CONNECT) to the host's name, TLS and the
    certificate check end to end. The guard has checked every address of the name first, so a
    private one is refused before the proxy is asked; the proxy resolves the name again itself,
    and what it then reaches is its own policy's to bound."""

    def __init__(self) -> None:
        super().__init__()
        self.destination: Destination | None = None
        self.pools: weakref.WeakSet[_CuttablePool] = weakref.WeakSet()
        self.cut_off = False

    def get_connection_with_tls_context(
        self, request: requests.PreparedRequest, verify: Any, proxies: Any = None, cert: Any = None
    ) -> Any:
        _checked(self, self.destination, request, verify, cert)
        pool = super().get_connection_with_tls_context(request, verify, proxies, cert)
        if isinstance(pool, _CuttablePool):
            self.pools.add(pool)
            if self.cut_off:
                pool.cut()
        return pool

    def proxy_manager_for(self, proxy: str, **proxy_kwargs: Any) -> Any:
        manager = super().proxy_manager_for(proxy, **proxy_kwargs)
        manager.pool_classes_by_scheme = {**manager.pool_classes_by_scheme, "https": _CuttablePool}
        return manager

    def cut(self) -> None:
        self.cut_off = True
        for pool in list(self.pools):
            pool.cut()


class _CuttableConnection(urllib3.connection.HTTPSConnection):
    """A connection that can be shut down from another thread at any moment, its TLS handshake
    included: it keeps a second handle (dup) on its socket, which TLS does not take over. Cut
    before it connects, its socket is shut down as soon as it is made."""

    cut_handle: socket.socket | None = None
    cut_off = False

    def _new_conn(self) -> socket.socket:
        return self._cuttable(super()._new_conn())

    def _cuttable(self, sock: socket.socket) -> socket.socket:
        self.cut_handle = sock.dup()
        if self.cut_off:
            self.cut()
        return sock

    def cut(self) -> None:
        self.cut_off = True
        handle = self.cut_handle
        if handle is not None:
            with contextlib.suppress(OSError):
                handle.shutdown(socket.SHUT_RDWR)

    def close(self) -> None:
        try:
            super().close()
        finally:
            handle, self.cut_handle = self.cut_handle, None
            if handle is not None:
                handle.close()


class _CuttablePool(urllib3.HTTPSConnectionPool):
    """A pool that knows every connection it made, to cut them all (GuardedSession.cut())."""

    ConnectionCls = _CuttableConnection

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.made: weakref.WeakSet[_CuttableConnection] = weakref.WeakSet()
        self.cut_off = False

    def _new_conn(self) -> Any:
        conn = super()._new_conn()
        if isinstance(conn, _CuttableConnection):
            self.made.add(conn)
            if self.cut_off:
                conn.cut()
        return conn

    def cut(self) -> None:
        self.cut_off = True
        for conn in list(self.made):
            conn.cut()


class _PinnedConnection(_CuttableConnection):
    """A connection to the checked addresses, tried in order; the Host header, SNI and the
    certificate check still use the host's name."""

    def __init__(self, *args: Any, addresses: tuple[str, ...], **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.addresses = addresses

    def _new_conn(self) -> socket.socket:
        failure: OSError = OSError("no address")
        for address in self.addresses:
            try:
                sock = connection.create_connection(
                    (address, self.port),
                    self.timeout,
                    source_address=self.source_address,
                    socket_options=self.socket_options,
                )
            except OSError as error:  # refused, unreachable, timed out: try the next address
                failure = error
                continue
            return self._cuttable(sock)
        if isinstance(failure, TimeoutError):
            raise urllib3.exceptions.ConnectTimeoutError(
                self, f"Connection to {self.host} timed out."
            ) from failure
        raise urllib3.exceptions.NewConnectionError(
            self, f"Failed to establish a new connection: {failure}"
        ) from failure


class _PinnedPool(_CuttablePool):
    ConnectionCls = _PinnedConnection
