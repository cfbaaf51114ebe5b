"""Client addresses behind proxies: forwarding headers count only when a trusted proxy sent them."""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Iterable, Sequence

from tornado import httputil
from traitlets import List, TraitError, Unicode
from tornado.httpserver import HTTPServer

Network = ipaddress.IPv4Network | ipaddress.IPv6Network

# configurable-http-proxy on this host: it connects to the hub and services from loopback and appends
# the address it saw to X-Forwarded-For. Only these two addresses, not all of 127.0.0.0/8, so that a
# local client keeps an address of its own.
LOOPBACK_PROXIES = ("127.0.0.1", "::1")


def parse_networks(entries: Iterable[str]) -> tuple[Network, ...]:
    """IPs or CIDRs (``10.0.0.0/8``) as networks; ValueError names the entry that is neither."""
    out = []
    for entry in entries:
        try:
            out.append(ipaddress.ip_network(str(entry).strip(), strict=False))
        except ValueError:
            raise ValueError(f"{entry!r} is not an IP address or network (CIDR)") from None
    return tuple(out)


class Networks(List):
    """A traitlets list of IP addresses or CIDR networks, checked when set (a bad entry fails at start)."""

    def __init__(self, default_value=LOOPBACK_PROXIES, **kwargs):
        super().__init__(Unicode(), list(default_value), **kwargs)

    def validate(self, obj, value):
        value = super().validate(obj, value)
        try:
            parse_networks(value)
        except ValueError as e:
            raise TraitError(f"{type(obj).__name__}.{self.name}: {e}") from None
        return value


def normalize(address: str | None) -> str | None:
    """The canonical text of an IP address (IPv4-mapped IPv6 as IPv4), or None if it is not one."""
    if not address:
        return None
    try:
        ip = ipaddress.ip_address(address.strip())
    except ValueError:
        return None
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return str(ip)


def is_trusted(peer: str | None, trusted: Sequence[Network]) -> bool:
    """Whether ``peer`` is one of the ``trusted`` proxies; None (a Unix socket) is; garbage is not."""
    if peer is None:
        return True
    address = normalize(peer)
    if address is None:
        return False
    ip = ipaddress.ip_address(address)
    return any(ip.version == net.version and ip in net for net in trusted)


def client_address(peer: str | None, forwarded_for: Iterable[str], trusted: Sequence[Network]) -> str | None:
    """The address of the client a request came from.

    ``peer`` is the TCP peer (None for a Unix socket: a local process, trusted like a proxy);
    ``forwarded_for`` the X-Forwarded-For header values. Unless the peer is a ``trusted`` proxy, it
    is the client and the header is the client's own say. From a trusted peer, the header is read
    from the right (each proxy appends the address it saw) past trusted proxies; the first address
    that is not one is the client. X-Real-Ip is never read: nothing says which hop set it.
    """
    if not is_trusted(peer, trusted):
        return normalize(peer) or peer
    hop = normalize(peer) if peer is not None else None
    hops = [h.strip() for value in forwarded_for for h in value.split(",") if h.strip()]
    for entry in reversed(hops):
        address = normalize(entry)
        if address is None:  # a hop no proxy of ours wrote: what lies beyond it is the client's say
            break
        hop = address
        if not is_trusted(address, trusted):
            break
    return hop


def peer_address(request: httputil.HTTPServerRequest) -> str | None:
    """The TCP peer of ``request`` whatever tornado's ``xheaders`` made of ``remote_ip``; None for a
    Unix socket."""
    context = getattr(request.connection, "context", None)
    if context is None or not hasattr(context, "address"):  # not a tornado HTTP/1 connection
        return request.remote_ip
    return _socket_peer(context)


def _socket_peer(context) -> str | None:
    # tornado keeps the accepted socket's address on the connection's context, untouched by xheaders
    if getattr(context, "address_family", None) in (socket.AF_INET, socket.AF_INET6) and context.address:
        return context.address[0]
    return None


def request_client_address(request: httputil.HTTPServerRequest, trusted: Sequence[Network]) -> str | None:
    """:func:`client_address` of a tornado request."""
    return client_address(peer_address(request), request.headers.get_list("X-Forwarded-For"), trusted)


class ProxiedHTTPServer(HTTPServer):
    """An HTTP server behind proxies: ``remote_ip`` is :func:`client_address` (forwarding headers
    only from ``trusted_proxies``) and ``protocol`` the last X-Forwarded-Proto/X-Scheme a trusted
    proxy passed on. Use it instead of ``xheaders=True``, which believes X-Real-Ip and X-Forwarded-For
    from anyone."""

    def initialize(self, *args, trusted_proxies: Iterable[str] = LOOPBACK_PROXIES, **kwargs) -> None:
        # tornado's Configurable: HTTPServer takes its arguments in initialize, not __init__
        if kwargs.get("xheaders"):
            raise ValueError("ProxiedHTTPServer reads forwarding headers itself: do not pass xheaders")
        super().initialize(*args, **kwargs)
        self.trusted_proxies = parse_networks(trusted_proxies)

    def start_request(self, server_conn, request_conn: httputil.HTTPConnection) -> httputil.HTTPMessageDelegate:
        return _ForwardedAdapter(super().start_request(server_conn, request_conn), request_conn,
                                 self.trusted_proxies)


class _ForwardedAdapter(httputil.HTTPMessageDelegate):
    """Rewrites the connection's remote_ip and protocol for one request (as tornado's xheaders do)."""

    def __init__(self, delegate: httputil.HTTPMessageDelegate, request_conn, trusted: Sequence[Network]):
        self.delegate, self.connection, self.trusted = delegate, request_conn, trusted
        self.saved = None

    def headers_received(self, start_line, headers: httputil.HTTPHeaders):
        context = getattr(self.connection, "context", None)
        if context is not None and hasattr(context, "remote_ip"):
            self.saved = (context.remote_ip, context.protocol)
            peer = _socket_peer(context)
            address = client_address(peer, headers.get_list("X-Forwarded-For"), self.trusted)
            if address:
                context.remote_ip = address
            if is_trusted(peer, self.trusted):
                proto = headers.get("X-Scheme") or headers.get("X-Forwarded-Proto") or ""
                proto = proto.split(",")[-1].strip().lower()
                if proto in ("http", "https"):
                    context.protocol = proto
        return self.delegate.headers_received(start_line, headers)

    def data_received(self, chunk: bytes):
        return self.delegate.data_received(chunk)

    def finish(self) -> None:
        self.delegate.finish()
        self._restore()

    def on_connection_close(self) -> None:
        self.delegate.on_connection_close()
        self._restore()

    def _restore(self) -> None:
        # the connection may carry further requests (keep-alive): each is judged by its own headers
        if self.saved is not None:
            self.connection.context.remote_ip, self.connection.context.protocol = self.saved
            self.saved = None
