"""Where a webhook may send: the checks that keep webhooks from reaching inside a deployment.

A partner chooses its webhook's URL, and the platform then makes requests to it from
inside the deployment. Without checks that is a port scanner for the inside (the API,
registry, broker and metrics ports on loopback, cloud metadata on link-local, private
networks). So, by default:

- only ``https``; plain ``http`` only to a host the operator allows;
- no credentials in the URL, no host that is not a plain DNS name or IP literal;
- the host is resolved and *every* address it resolves to must be public: loopback,
  unspecified, link-local, private, unique-local, multicast, reserved and other
  non-global addresses are refused, as are the platform's own listeners;
- the request then goes to one of the checked addresses (never a second lookup, so
  DNS rebinding does not help), with ``Host`` and TLS SNI of the name.

The operator allowlist (``ECOSHARE_API_WEBHOOK_ALLOWED_HOSTS``) opens explicit
exceptions: entries are host names or IP literals, optionally with ``:port``, or
networks in CIDR form (``10.20.0.0/16``). A host allowed by name (or an address in an
allowed network) may use plain ``http`` and non-public addresses; the platform's own
listeners stay refused whatever the allowlist says.

Everything here is pure except :func:`system_resolver`; resolution is passed in.
"""

from __future__ import annotations

import ipaddress
import socket
import string
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from urllib.parse import urlsplit

from ecoshare.errors import ConfigurationError, EcoshareError

IpAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IpNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
Resolver = Callable[[str, int], Sequence[IpAddress]]
"""(host name, port) -> the addresses it resolves to; raises OSError when it does not."""

_NAME_CHARACTERS = frozenset(string.ascii_lowercase + string.digits + "-.")
_DEFAULT_PORTS = {"http": 80, "https": 443}


class WebhookTargetRefusedError(EcoshareError):
    """A webhook URL the platform will not send to; ``reason`` is a stable code."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message


@dataclass(frozen=True, slots=True)
class WebhookTarget:
    """A parsed webhook URL: ``host`` lower-case, without brackets or a trailing dot."""

    scheme: str
    host: str
    port: int
    path: str
    literal: IpAddress | None
    """The address when the host is an IP literal (any spelling ``inet_aton`` accepts)."""

    @property
    def host_header(self) -> str:
        shown = f"[{self.host}]" if ":" in self.host else self.host
        return shown if self.port == _DEFAULT_PORTS[self.scheme] else f"{shown}:{self.port}"

    def url_for(self, address: IpAddress) -> str:
        """The URL that reaches ``address`` directly (the name goes in Host and SNI)."""
        shown = f"[{address}]" if address.version == 6 else str(address)
        return f"{self.scheme}://{shown}:{self.port}{self.path}"


def _ip_literal(host: str) -> IpAddress | None:
    """The address a host spells, in any form a resolver would accept without DNS.

    ``inet_aton`` forms (``127.1``, ``2130706433``, ``0x7f000001``, ``0177.0.0.1``) count:
    resolvers read them as addresses, so the checks must too.
    """
    if ":" in host:
        try:
            return ipaddress.IPv6Address(host)
        except ValueError:
            return None
    if host and all(c in "0123456789abcdefx." for c in host) and host[0].isdigit():
        try:
            return ipaddress.IPv4Address(socket.inet_aton(host))
        except OSError:
            return None
    return None


def parse_target(url: str) -> WebhookTarget:
    """The target of a webhook URL, or :class:`WebhookTargetRefusedError` (``invalid_url``)."""

    def refuse(message: str) -> WebhookTargetRefusedError:
        return WebhookTargetRefusedError("invalid_url", message)

    if any(ord(c) < 0x21 or ord(c) == 0x7F for c in url):
        raise refuse("the webhook URL contains spaces or control characters")
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise refuse(f"not a usable URL: {exc}") from exc
    scheme = parts.scheme.lower()
    if scheme not in _DEFAULT_PORTS:
        raise refuse("the webhook URL must start with https:// (or http:// where allowed)")
    if parts.username is not None or parts.password is not None or "@" in parts.netloc:
        raise refuse("credentials in the webhook URL are not accepted")
    host = (parts.hostname or "").lower()
    if host.endswith("."):
        host = host[:-1]
    if not host:
        raise refuse("the webhook URL names no host")
    if "%" in host:
        raise refuse("scoped IPv6 addresses are not destinations")
    literal = _ip_literal(host)
    if literal is None:
        if ":" in host:
            raise refuse(f"{host!r} is not an IP address")
        if not set(host) <= _NAME_CHARACTERS or ".." in host or len(host) > 253:
            raise refuse(f"{host!r} is not a DNS name (use the ASCII form of the name)")
    if port == 0:
        raise refuse("port 0 is not a destination")
    path = parts.path or "/"
    if parts.query:
        path = f"{path}?{parts.query}"
    return WebhookTarget(scheme, host, port or _DEFAULT_PORTS[scheme], path, literal)


@dataclass(frozen=True, slots=True)
class AllowedTarget:
    """One allowlist entry: a host (name or address) or a network, optionally one port."""

    host: str | None = None
    address: IpAddress | None = None
    network: IpNetwork | None = None
    port: int | None = None

    def allows_name(self, target: WebhookTarget) -> bool:
        if self.port is not None and self.port != target.port:
            return False
        if self.host is not None and self.host == target.host:
            return True
        literal = target.literal
        return literal is not None and self.allows_address(_unmapped(literal), target.port)

    def allows_address(self, address: IpAddress, port: int) -> bool:
        if self.port is not None and self.port != port:
            return False
        if self.address is not None:
            return self.address == address
        return self.network is not None and address in self.network


def parse_allowlist(text: str) -> tuple[AllowedTarget, ...]:
    """Entries of a comma-separated allowlist; ConfigurationError names a bad entry."""
    entries: list[AllowedTarget] = []
    for raw in text.split(","):
        entry = raw.strip().lower()
        if not entry:
            continue
        try:
            if "/" in entry:
                entries.append(AllowedTarget(network=ipaddress.ip_network(entry, strict=False)))
                continue
            parts = urlsplit(f"//{entry}")
            host = (parts.hostname or "").rstrip(".")
            port = parts.port
        except ValueError as exc:
            raise ConfigurationError(f"webhook allowlist entry {raw.strip()!r}: {exc}") from exc
        if not host or parts.path or parts.username is not None:
            raise ConfigurationError(
                f"webhook allowlist entry {raw.strip()!r}: expected host, host:port or CIDR"
            )
        literal = _ip_literal(host)
        if literal is not None:
            entries.append(AllowedTarget(address=literal, port=port))
        else:
            entries.append(AllowedTarget(host=host, port=port))
    return tuple(entries)


def address_refusal(address: IpAddress) -> str | None:
    """Why an address is not a public destination (a class name), or None when it is."""
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address_refusal(address.ipv4_mapped)
    if address.is_unspecified:
        return "unspecified"
    if address.is_loopback:
        return "loopback"
    if address.is_link_local:
        return "link-local"
    if address.is_multicast:
        return "multicast"
    if isinstance(address, ipaddress.IPv6Address) and address in _UNIQUE_LOCAL:
        return "unique-local"
    if address.is_private:
        return "private"
    if address.is_reserved:
        return "reserved"
    if not address.is_global:
        return "non-public"
    return None


_UNIQUE_LOCAL = ipaddress.IPv6Network("fc00::/7")


@dataclass(frozen=True, slots=True)
class Listener:
    """An address and port the platform itself serves on."""

    address: IpAddress
    port: int

    def covers(self, address: IpAddress, port: int) -> bool:
        if port != self.port:
            return False
        if self.address.is_unspecified or address == self.address:
            return True
        # Every loopback (and the unspecified) address reaches a loopback listener.
        local = (address.is_loopback or address.is_unspecified) and self.address.is_loopback
        return bool(local)


def _unmapped(address: IpAddress) -> IpAddress:
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


@dataclass(frozen=True)
class TargetPolicy:
    """The rules a webhook target must pass, at registration and before every attempt."""

    allowed: tuple[AllowedTarget, ...] = ()
    listeners: Callable[[], Iterable[Listener]] = field(default=lambda: ())

    def check(self, target: WebhookTarget, resolve: Resolver) -> tuple[IpAddress, ...]:
        """The checked addresses to connect to, or :class:`WebhookTargetRefusedError`.

        Resolution happens only for names, and only after the scheme rule, so a refused
        ``http`` URL costs no lookup.
        """
        by_name = any(entry.allows_name(target) for entry in self.allowed)
        if target.scheme == "http" and not by_name:
            raise WebhookTargetRefusedError(
                "plain_http",
                f"plain http is not allowed to {target.host!r}; use https",
            )
        if target.literal is not None:
            addresses: tuple[IpAddress, ...] = (target.literal,)
        else:
            try:
                addresses = tuple(dict.fromkeys(resolve(target.host, target.port)))
            except OSError as exc:
                raise WebhookTargetRefusedError(
                    "unresolvable", f"the host {target.host!r} does not resolve"
                ) from exc
            if not addresses:
                raise WebhookTargetRefusedError(
                    "unresolvable", f"the host {target.host!r} does not resolve"
                )
        listeners = tuple(self.listeners())
        for address in addresses:
            plain = _unmapped(address)
            if any(listener.covers(plain, target.port) for listener in listeners):
                raise WebhookTargetRefusedError(
                    "platform_listener",
                    f"{target.host!r} port {target.port} is one of the platform's own services",
                )
            refusal = address_refusal(plain)
            if refusal is None or by_name:
                continue
            if any(entry.allows_address(plain, target.port) for entry in self.allowed):
                continue
            raise WebhookTargetRefusedError(
                "address_not_allowed",
                f"{target.host!r} resolves to a {refusal} address; webhooks go to public "
                "addresses unless the operator allows the host",
            )
        return addresses


def system_resolver(host: str, port: int) -> list[IpAddress]:
    """The addresses the system resolver gives for ``host`` (one lookup)."""
    found = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    addresses: list[IpAddress] = []
    for _family, _type, _proto, _name, sockaddr in found:
        text = str(sockaddr[0]).split("%", 1)[0]
        addresses.append(ipaddress.ip_address(text))
    return addresses


def listeners_of(endpoints: Iterable[str], resolve: Resolver) -> list[Listener]:
    """Listeners from ``host:port`` or URL strings; names are resolved, failures skipped."""
    found: list[Listener] = []
    for endpoint in endpoints:
        text = endpoint.strip()
        if not text:
            continue
        try:
            parts = urlsplit(text if "//" in text else f"//{text}")
            host, port = (parts.hostname or "").lower(), parts.port
        except ValueError:
            continue
        if not host or port is None:
            continue
        literal = _ip_literal(host)
        try:
            addresses = [literal] if literal is not None else list(resolve(host, port))
        except OSError:
            continue
        found.extend(Listener(_unmapped(address), port) for address in addresses)
    return found
