"""Outgoing requests to addresses users supply (webhook targets) reach the public internet only.

A URL's host is resolved, and the request is refused when any address it resolves to is
loopback, private, link-local, multicast, reserved or unspecified (including IPv4-mapped IPv6
forms), unless private targets are explicitly allowed. The caller then connects to the address
that was checked (not to the name again), so a DNS answer cannot change between the check and
the connection.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from dataclasses import dataclass
from urllib.parse import urlsplit

from flowdeck.core.errors import ValidationError

ALLOWED_SCHEMES = ("http", "https")


class TargetRefused(Exception):
    """The target may not be called (scheme, address); the message says why."""


@dataclass(frozen=True, slots=True)
class Resolved:
    """A vetted target: the address to connect to and the name to present (Host, SNI)."""

    scheme: str
    host: str
    address: str
    port: int
    path: str

    @property
    def url(self) -> str:
        """The URL with the checked address in place of the name."""
        literal = f"[{self.address}]" if ":" in self.address else self.address
        return f"{self.scheme}://{literal}:{self.port}{self.path}"

    @property
    def host_header(self) -> str:
        default = 443 if self.scheme == "https" else 80
        name = f"[{self.host}]" if ":" in self.host else self.host
        return name if self.port == default else f"{name}:{self.port}"


def check_url(url: str) -> tuple[str, str, int, str]:
    """(scheme, host, port, path-with-query) of a well-formed http(s) URL, or ValidationError."""
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise ValidationError([("url", f"not a valid URL: {exc}")]) from None
    if parts.scheme not in ALLOWED_SCHEMES:
        raise ValidationError([("url", "must be an http:// or https:// URL")])
    if not parts.hostname:
        raise ValidationError([("url", "has no host")])
    if parts.username or parts.password:
        raise ValidationError([("url", "must not carry credentials")])
    path = parts.path or "/"
    if parts.query:
        path += "?" + parts.query
    return parts.scheme, parts.hostname, port or (443 if parts.scheme == "https" else 80), path


def is_public(address: str) -> bool:
    ip = ipaddress.ip_address(address.split("%", 1)[0])
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return not (ip.is_loopback or ip.is_private or ip.is_link_local or ip.is_multicast
                or ip.is_reserved or ip.is_unspecified or not ip.is_global)


async def resolve(url: str, *, allow_private: bool) -> Resolved:
    """Resolve and vet `url`; raises TargetRefused with the reason."""
    try:
        scheme, host, port, path = check_url(url)
    except ValidationError as exc:
        raise TargetRefused(str(exc)) from None
    try:
        infos = await asyncio.get_running_loop().getaddrinfo(
            host, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError) as exc:
        raise TargetRefused(f"cannot resolve {host}: {exc}") from None
    addresses = [str(info[4][0]) for info in infos]
    if not addresses:
        raise TargetRefused(f"cannot resolve {host}")
    if not allow_private:
        refused = [a for a in addresses if not is_public(a)]
        if refused:
            raise TargetRefused(
                f"{host} resolves to a private, loopback or link-local address ({refused[0]}); "
                "such targets are refused unless [webhooks] allow_private_targets = true")
    return Resolved(scheme, host, addresses[0], port, path)
