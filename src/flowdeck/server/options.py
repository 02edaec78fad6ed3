"""How the server is exposed, as handed down by whoever starts it (the CLI, the deck, a test)."""

from __future__ import annotations

from dataclasses import dataclass, field
from importlib.metadata import PackageNotFoundError, version
from typing import Any

MAX_BODY = 10 * 1024 * 1024


@dataclass(slots=True)
class ServerOptions:
    """Host, port, credentials and limits; the auth layer decides from these.

    `auth_required=None` means: required unless bound to loopback without Basic credentials
    (`flowdeck serve` also counts API tokens, and refuses a network host with neither).
    `extra` holds tunables: the brute-force guard's `auth_max_failures` (10),
    `auth_failure_window` (300 s), `auth_lockout` (1800 s), `auth_cache_ttl` (300 s); the event
    streams' `sse_keepalive` (15 s); the webhook trigger's `webhook_failures_per_minute` (20) and
    `webhook_wait_seconds` (3600); and whatever a dialect documents (Kestra's
    `kestra_version`, "2.0.0" by default).
    """

    host: str = "127.0.0.1"
    port: int = 8080
    basic_username: str | None = None
    basic_password_hash: str | None = None
    auth_required: bool | None = None
    max_body_bytes: int = MAX_BODY
    sse_total: int = 100
    sse_per_client: int = 5
    #: Addresses or networks (`10.0.0.0/8`) of reverse proxies whose `X-Forwarded-For` names
    #: the client; from any other peer the header is ignored.
    trusted_proxies: tuple[str, ...] = ()
    extra: dict[str, Any] = field(default_factory=dict)

    def number(self, name: str, default: float) -> float:
        """`extra[name]` as a number of 0 or more, else `default`."""
        try:
            value = float(self.extra.get(name, default))
        except (TypeError, ValueError):
            return default
        return value if value >= 0 else default


def flowdeck_version() -> str:
    try:
        return version("flowdeck")
    except PackageNotFoundError:  # pragma: no cover - running from a source tree
        return "0.0.0"
