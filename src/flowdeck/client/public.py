"""The public API's administration through any backend: API keys, webhook deliveries and the
messages agents delivered.

`public_admin(backend)` answers a `PublicAdmin` for the connected backend: the engine in this
process (`EmbeddedBackend`) or flowdeck's own admin routes over HTTP (`/api-keys`,
`/webhook-deliveries`, `/agent-messages`). A Kestra server has none of these:
`PublicAdminUnavailable` says so. (The CLI also manages a data dir's keys directly, beside a
running engine, as `flowdeck token` does.)

The backends are told apart by what they offer (`engine_call`, `request_json`), not by their
classes, so this module imports no engine code and the deck may use it.

Both backends answer the same types, read from the same JSON: the embedded one hands over the
engine's own `to_dict()` bodies, the HTTP one the server's; so a screen or a command cannot
tell them apart, and never sees a secret other than a new key's.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Protocol, runtime_checkable
from urllib.parse import quote

from flowdeck.client.backend import Backend, Capabilities
from flowdeck.core.errors import FlowdeckError, NotFoundError
from flowdeck.core.public import DEFAULT_USAGE_LIMIT
from flowdeck.core.timefmt import format_duration, parse_instant

#: Deliveries and messages a list asks for at most.
MAX_PAGE = 1000


class PublicAdminUnavailable(FlowdeckError):
    """The backend has no public API to administer (a Kestra server, an older flowdeck)."""


def _when(value: Any) -> datetime | None:
    if isinstance(value, str) and value:
        try:
            return parse_instant(value)
        except ValueError:
            return None
    return None


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) else None


def _int(value: Any, default: int = 0) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) else default


def _texts(value: Any) -> list[str]:
    return [v for v in value if isinstance(v, str)] if isinstance(value, list) else []


@dataclass(frozen=True, slots=True)
class KeyInfo:
    """A public API key as listed: never its secret."""

    id: str
    name: str
    prefix: str
    status: str  # active | inactive | expired
    allowed_workflows: list[str] = field(default_factory=list)
    usage_limit: int = DEFAULT_USAGE_LIMIT
    usage_count: int = 0
    usage_month: str | None = None
    webhook_url: str | None = None
    webhook_events: list[str] = field(default_factory=list)
    has_webhook_secret: bool = False
    created_at: datetime | None = None
    expires_at: datetime | None = None
    revoked_at: datetime | None = None
    last_used_at: datetime | None = None
    #: The body it was read from (for `--json`), without any secret.
    raw: dict[str, Any] = field(default_factory=dict, compare=False, repr=False)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> KeyInfo:
        return cls(id=str(data.get("id") or ""), name=str(data.get("name") or ""),
                   prefix=str(data.get("prefix") or ""), status=str(data.get("status") or "?"),
                   allowed_workflows=_texts(data.get("allowedWorkflows")),
                   usage_limit=_int(data.get("usageLimit"), DEFAULT_USAGE_LIMIT),
                   usage_count=_int(data.get("usageCount")),
                   usage_month=_text(data.get("usageMonth")),
                   webhook_url=_text(data.get("webhookUrl")),
                   webhook_events=_texts(data.get("webhookEvents")),
                   has_webhook_secret=bool(data.get("hasWebhookSecret")),
                   created_at=_when(data.get("createdAt")),
                   expires_at=_when(data.get("expiresAt")),
                   revoked_at=_when(data.get("revokedAt")),
                   last_used_at=_when(data.get("lastUsedAt")),
                   raw={k: v for k, v in data.items() if k != "key"})


@dataclass(frozen=True, slots=True)
class NewKey:
    """A key just created and its secret, shown this once."""

    key: KeyInfo
    secret: str


@dataclass(frozen=True, slots=True)
class KeySpec:
    """What a new key is made with (`flowdeck api-key create`'s options)."""

    name: str
    workflows: tuple[str, ...] = ()
    usage_limit: int = DEFAULT_USAGE_LIMIT
    expires_in: timedelta | None = None
    webhook_url: str | None = None
    webhook_events: tuple[str, ...] | None = None
    webhook_secret: str | None = None

    def to_body(self) -> dict[str, Any]:
        body: dict[str, Any] = {"name": self.name, "workflows": list(self.workflows),
                                "usageLimit": self.usage_limit}
        if self.expires_in is not None:
            body["expiresIn"] = format_duration(self.expires_in)
        if self.webhook_url is not None:
            body["webhookUrl"] = self.webhook_url
        if self.webhook_events is not None:
            body["webhookEvents"] = list(self.webhook_events)
        if self.webhook_secret is not None:
            body["webhookSecret"] = self.webhook_secret
        return body


@dataclass(frozen=True, slots=True)
class DeliveryInfo:
    """One event sent (or to send) to one webhook target."""

    id: str
    event: str
    source: str
    execution_id: str | None
    target: str
    url: str
    status: str  # pending | delivered | dead
    attempts: int
    next_at: datetime | None
    last_status: int | None
    last_error: str | None
    created: datetime | None
    updated: datetime | None
    event_seq: int = 0
    raw: dict[str, Any] = field(default_factory=dict, compare=False, repr=False)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> DeliveryInfo:
        last = data.get("lastStatus")
        return cls(id=str(data.get("id") or ""), event=str(data.get("event") or ""),
                   source=str(data.get("source") or ""),
                   execution_id=_text(data.get("executionId")),
                   target=str(data.get("target") or ""), url=str(data.get("url") or ""),
                   status=str(data.get("status") or "?"), attempts=_int(data.get("attempts")),
                   next_at=_when(data.get("nextAt")),
                   last_status=last if isinstance(last, int) else None,
                   last_error=_text(data.get("lastError")),
                   created=_when(data.get("created")), updated=_when(data.get("updated")),
                   event_seq=_int(data.get("eventSeq")), raw=dict(data))


@dataclass(frozen=True, slots=True)
class MessageInfo:
    """A message an agent delivered."""

    id: str
    message_id: str
    execution_id: str
    workflow_id: str
    customer_id: str | None
    recipient: str | None
    channel: str
    content: str
    transport: str
    status: str
    error: str | None
    created_at: datetime | None
    raw: dict[str, Any] = field(default_factory=dict, compare=False, repr=False)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> MessageInfo:
        return cls(id=str(data.get("id") or ""), message_id=str(data.get("messageId") or ""),
                   execution_id=str(data.get("executionId") or ""),
                   workflow_id=str(data.get("workflowId") or ""),
                   customer_id=_text(data.get("customerId")),
                   recipient=_text(data.get("recipient")),
                   channel=str(data.get("channel") or ""), content=str(data.get("content") or ""),
                   transport=str(data.get("transport") or ""),
                   status=str(data.get("status") or "?"), error=_text(data.get("error")),
                   created_at=_when(data.get("createdAt")), raw=dict(data))


class PublicAdmin(Protocol):
    """Keys, webhook deliveries and agent messages of one backend."""

    async def list_keys(self) -> list[KeyInfo]: ...

    async def get_key(self, key_id: str) -> KeyInfo: ...

    async def create_key(self, spec: KeySpec) -> NewKey: ...

    async def revoke_key(self, key_id: str) -> KeyInfo: ...

    async def deliveries(self, *, status: str | None = None, target: str | None = None,
                         page: int = 1, size: int = 100) -> tuple[list[DeliveryInfo], int]: ...

    async def get_delivery(self, delivery_id: str) -> DeliveryInfo: ...

    async def redeliver(self, delivery_id: str) -> DeliveryInfo: ...

    async def messages(self, *, execution_id: str | None = None, page: int = 1,
                       size: int = 100) -> tuple[list[MessageInfo], int]: ...


def _paging(page: int, size: int) -> tuple[int, int]:
    size = max(1, min(MAX_PAGE, size))
    return size, (max(1, page) - 1) * size


# -- the engine in this process ------------------------------------------------------------


#: An engine, as the functions run on its loop see it (`flowdeck.engine.engine.Engine`; not
#: imported here, so the deck can use this module).
InProcessEngine = Any


@runtime_checkable
class EngineCalls(Protocol):
    """A backend that runs a function of its in-process engine on the engine's loop."""

    async def engine_call(self, fn: Callable[[InProcessEngine], Awaitable[Any]]) -> Any: ...


@runtime_checkable
class JsonCalls(Protocol):
    """A backend that calls routes under a flowdeck server's API prefix."""

    async def request_json(self, method: str, path: str, *, json: Any = None,
                           params: Any = None) -> Any: ...


class EngineAdmin:
    """`PublicAdmin` over an in-process engine: each call runs on the engine's loop, and what
    comes back is read from the engine's JSON bodies."""

    def __init__(self, backend: EngineCalls) -> None:
        self._backend = backend

    async def _run(self, work: Callable[[InProcessEngine], Awaitable[Any]]) -> Any:
        return await self._backend.engine_call(work)

    async def list_keys(self) -> list[KeyInfo]:
        async def run(engine: InProcessEngine) -> list[dict[str, Any]]:
            now = engine.clock.now()
            return [k.to_dict(now) for k in await engine.public.list_keys()]

        return [KeyInfo.from_dict(d) for d in await self._run(run)]

    async def get_key(self, key_id: str) -> KeyInfo:
        async def run(engine: InProcessEngine) -> dict[str, Any]:
            body: dict[str, Any] = (await engine.public.get_key(key_id)).to_dict(engine.clock.now())
            return body

        return KeyInfo.from_dict(await self._run(run))

    async def create_key(self, spec: KeySpec) -> NewKey:
        async def run(engine: InProcessEngine) -> dict[str, Any]:
            created = await engine.public.create_key(
                spec.name, workflows=list(spec.workflows), usage_limit=spec.usage_limit,
                expires_in=spec.expires_in, webhook_url=spec.webhook_url,
                webhook_events=list(spec.webhook_events) if spec.webhook_events is not None
                else None, webhook_secret=spec.webhook_secret)
            body: dict[str, Any] = created.to_dict(engine.clock.now())
            return body

        body = await self._run(run)
        return NewKey(KeyInfo.from_dict(body), str(body["key"]))

    async def revoke_key(self, key_id: str) -> KeyInfo:
        async def run(engine: InProcessEngine) -> dict[str, Any]:
            revoked = await engine.public.revoke_key(key_id)
            body: dict[str, Any] = revoked.to_dict(engine.clock.now())
            return body

        return KeyInfo.from_dict(await self._run(run))

    async def deliveries(self, *, status: str | None = None, target: str | None = None,
                         page: int = 1, size: int = 100) -> tuple[list[DeliveryInfo], int]:
        limit, offset = _paging(page, size)

        async def run(engine: InProcessEngine) -> tuple[list[dict[str, Any]], int]:
            found, total = await engine.outbox.deliveries(status=status, target=target,
                                                          limit=limit, offset=offset)
            return [d.to_dict() for d in found], total

        rows, total = await self._run(run)
        return [DeliveryInfo.from_dict(d) for d in rows], total

    async def get_delivery(self, delivery_id: str) -> DeliveryInfo:
        async def run(engine: InProcessEngine) -> dict[str, Any]:
            body: dict[str, Any] = (await engine.outbox.get(delivery_id)).to_dict()
            return body

        return DeliveryInfo.from_dict(await self._run(run))

    async def redeliver(self, delivery_id: str) -> DeliveryInfo:
        async def run(engine: InProcessEngine) -> dict[str, Any]:
            body: dict[str, Any] = (await engine.outbox.redeliver(delivery_id)).to_dict()
            return body

        return DeliveryInfo.from_dict(await self._run(run))

    async def messages(self, *, execution_id: str | None = None, page: int = 1,
                       size: int = 100) -> tuple[list[MessageInfo], int]:
        limit, offset = _paging(page, size)

        async def run(engine: InProcessEngine) -> tuple[list[dict[str, Any]], int]:
            found, total = await engine.public.list_messages(
                execution_id=execution_id, limit=limit, offset=offset)
            return [m.to_dict() for m in found], total

        rows, total = await self._run(run)
        return [MessageInfo.from_dict(d) for d in rows], total


# -- flowdeck's server over HTTP -------------------------------------------------------------


class HttpAdmin:
    """`PublicAdmin` over flowdeck's admin routes (keys and deliveries need the admin role;
    messages the viewer role)."""

    def __init__(self, backend: JsonCalls) -> None:
        self._backend = backend

    async def _json(self, method: str, path: str, **kwargs: Any) -> Any:
        try:
            return await self._backend.request_json(method, path, **kwargs)
        except NotFoundError as exc:
            if "no route" in str(exc):
                raise PublicAdminUnavailable(
                    "this server does not serve the public API's administration (an older "
                    "flowdeck)") from None
            raise

    async def list_keys(self) -> list[KeyInfo]:
        body = await self._json("GET", "/api-keys")
        return [KeyInfo.from_dict(d) for d in body if isinstance(d, dict)]

    async def get_key(self, key_id: str) -> KeyInfo:
        return KeyInfo.from_dict(await self._json("GET", f"/api-keys/{_segment(key_id)}"))

    async def create_key(self, spec: KeySpec) -> NewKey:
        body = await self._json("POST", "/api-keys", json=spec.to_body())
        return NewKey(KeyInfo.from_dict(body), str(body["key"]))

    async def revoke_key(self, key_id: str) -> KeyInfo:
        return KeyInfo.from_dict(await self._json("POST",
                                                  f"/api-keys/{_segment(key_id)}/revoke"))

    async def deliveries(self, *, status: str | None = None, target: str | None = None,
                         page: int = 1, size: int = 100) -> tuple[list[DeliveryInfo], int]:
        params: dict[str, Any] = {"page": max(1, page), "size": max(1, min(MAX_PAGE, size))}
        if status:
            params["status"] = status
        if target:
            params["target"] = target
        body = await self._json("GET", "/webhook-deliveries", params=params)
        return ([DeliveryInfo.from_dict(d) for d in body.get("results") or []
                 if isinstance(d, dict)], _int(body.get("total")))

    async def get_delivery(self, delivery_id: str) -> DeliveryInfo:
        return DeliveryInfo.from_dict(await self._json(
            "GET", f"/webhook-deliveries/{_segment(delivery_id)}"))

    async def redeliver(self, delivery_id: str) -> DeliveryInfo:
        return DeliveryInfo.from_dict(await self._json(
            "POST", f"/webhook-deliveries/{_segment(delivery_id)}/redeliver"))

    async def messages(self, *, execution_id: str | None = None, page: int = 1,
                       size: int = 100) -> tuple[list[MessageInfo], int]:
        params: dict[str, Any] = {"page": max(1, page), "size": max(1, min(MAX_PAGE, size))}
        if execution_id:
            params["executionId"] = execution_id
        body = await self._json("GET", "/agent-messages", params=params)
        return ([MessageInfo.from_dict(d) for d in body.get("results") or []
                 if isinstance(d, dict)], _int(body.get("total")))


def _segment(text: str) -> str:
    return quote(text, safe="")


def public_admin(backend: Backend, capabilities: Capabilities | None = None) -> PublicAdmin:
    """The `PublicAdmin` of a connected backend; PublicAdminUnavailable for a Kestra."""
    kind = capabilities.kind if capabilities is not None else None
    if isinstance(backend, EngineCalls) and kind in (None, "embedded"):
        return EngineAdmin(backend)
    if isinstance(backend, JsonCalls) and kind in (None, "flowdeck"):
        return HttpAdmin(backend)
    what = f"{backend.name} is a {kind} server" if kind else f"{backend.name} has no engine"
    raise PublicAdminUnavailable(
        f"{what}: API keys, webhook deliveries and agent messages come with flowdeck (its "
        "embedded engine or its server)")
