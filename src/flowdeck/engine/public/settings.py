"""`EngineSettings.extra["public"]`: the agents' namespace and where agents deliver messages.

```
{"namespace": "agents",
 "delivery": {"url": "https://gateway.example.com/messages",   # default: the local outbox
              "token_env": "FLOWDECK_DELIVERY_TOKEN",          # Bearer token, from this
              "timeout": 10.0}}                                #   variable at send time
```
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from flowdeck.core.public import DEFAULT_NAMESPACE


@dataclass(frozen=True, slots=True)
class DeliverySettings:
    """Where agent messages go: an HTTP endpoint (`url`), else the local outbox table."""

    url: str | None = None
    #: The environment variable holding the endpoint's Bearer token (read when sending).
    token_env: str | None = None
    timeout: float = 10.0

    @classmethod
    def from_extra(cls, extra: dict[str, Any] | None) -> DeliverySettings:
        extra = extra or {}
        return cls(url=extra.get("url") or None, token_env=extra.get("token_env") or None,
                   timeout=float(extra.get("timeout", 10.0)))


@dataclass(frozen=True, slots=True)
class PublicSettings:
    namespace: str = DEFAULT_NAMESPACE
    delivery: DeliverySettings = field(default_factory=DeliverySettings)

    @classmethod
    def from_extra(cls, extra: dict[str, Any] | None) -> PublicSettings:
        extra = extra or {}
        return cls(namespace=str(extra.get("namespace") or DEFAULT_NAMESPACE),
                   delivery=DeliverySettings.from_extra(extra.get("delivery")))
