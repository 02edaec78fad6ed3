"""Kestra's webhook trigger: `GET|POST|PUT /executions/webhook/{namespace}/{flowId}/{key}`.

The URL is public (no credentials), so the key in it is the only secret, and this module
treats it like one:

- The key is compared with `hmac.compare_digest` against the *rendered* key of every webhook
  trigger of the flow, always all of them, and against a dummy when there is nothing to
  compare with. A key template that renders empty or fails (an unset `{{ envs.x }}`) matches
  nothing.
- Every failure (unknown namespace or flow, wrong, malformed or disabled key) gets the same
  401 with a byte-identical body, so a caller learns nothing about which part was wrong.
- A client (by IP) with too many failures in the last minute gets 429 with `Retry-After`
  before any comparison is made; successful calls do not count.
- The key is never logged, and error bodies after a successful match name the flow, not the
  URL that carries the key.

A matched call creates an execution whose `trigger.variables` are Kestra's: `body` (a JSON
object or array, else the raw text, null when empty), `headers` and `parameters` (maps of
lists). The trigger's `inputs` are rendered against those variables; flow input defaults
apply. The answer is a `WebhookResponse`, held until the execution ends with `wait: true`,
and only its outputs map with `wait` + `returnOutputs`.
"""

from __future__ import annotations

import hmac
import json
import logging
import math
import secrets
import time
from collections import OrderedDict, deque
from collections.abc import Callable
from typing import Any

from fastapi import APIRouter, FastAPI, Request, Response
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from flowdeck.core.errors import FlowdeckError, NotFoundError, ValidationError
from flowdeck.engine.engine import Engine
from flowdeck.engine.flows import FlowDefinition, WebhookTrigger
from flowdeck.engine.templating import has_expression
from flowdeck.server.dialects.kestra.common import execution_url, get_engine
from flowdeck.server.errors import problem, status_for

log = logging.getLogger("flowdeck.server.webhooks")
router = APIRouter(tags=["webhooks"])

#: The one answer to every failed call; nothing in it depends on the request.
REJECT_STATUS = 401
REJECT_DETAIL = "invalid webhook key"
REJECT_INSTANCE = "/api/v1/main/executions/webhook"
DEFAULT_FAILURES_PER_MINUTE = 20
DEFAULT_WAIT_SECONDS = 3600.0
#: Kestra caps a webhook key at 256 characters; anything much longer is malformed.
MAX_KEY_BYTES = 1024
_DUMMY_KEY = secrets.token_urlsafe(32).encode()
METHODS = ["GET", "POST", "PUT"]


class FailureThrottle:
    """Failed calls per client in a sliding window; bounded in clients and entries."""

    def __init__(self, window: float = 60.0, clock: Callable[[], float] = time.monotonic,
                 max_clients: int = 10_000, max_entries: int = 1_000) -> None:
        self.window = window
        self.clock = clock
        self.max_clients = max_clients
        self.max_entries = max_entries
        self._failures: OrderedDict[str, deque[float]] = OrderedDict()

    def _live(self, client: str, now: float) -> deque[float] | None:
        failures = self._failures.get(client)
        if failures is None:
            return None
        while failures and failures[0] <= now - self.window:
            failures.popleft()
        if not failures:
            del self._failures[client]
            return None
        return failures

    def retry_after(self, client: str, limit: int) -> int | None:
        """Seconds until `client` may call again, or None if it is not throttled."""
        if limit <= 0:
            return None
        now = self.clock()
        failures = self._live(client, now)
        if failures is None or len(failures) < limit:
            return None
        # The call is allowed again once enough of the oldest failures leave the window.
        return max(1, math.ceil(failures[-limit] + self.window - now))

    def record(self, client: str) -> None:
        now = self.clock()
        failures = self._live(client, now)
        if failures is None:
            failures = self._failures[client] = deque(maxlen=self.max_entries)
        failures.append(now)
        self._failures.move_to_end(client)
        while len(self._failures) > self.max_clients:
            self._failures.popitem(last=False)


def throttle_for(app: FastAPI) -> FailureThrottle:
    throttle: FailureThrottle | None = getattr(app.state, "webhook_throttle", None)
    if throttle is None:
        throttle = app.state.webhook_throttle = FailureThrottle()
    return throttle


def _option(request: Request, name: str, default: Any) -> Any:
    options = getattr(request.app.state, "options", None)
    extra = getattr(options, "extra", None) or {}
    return extra.get(name, default)


def _reject() -> Response:
    return problem(REJECT_STATUS, REJECT_DETAIL, REJECT_INSTANCE)


def _redact(text: str, key: str) -> str:
    return text.replace(key, "***") if key else text


def _rendered_key(engine: Engine, flow: FlowDefinition, trigger: WebhookTrigger) -> bytes:
    """The trigger's key as configured, rendered; empty when it cannot be (matches nothing)."""
    key = trigger.key
    if has_expression(key):
        context = {"envs": engine.trigger_envs,  # every ENV_*: keys are never shown
                   "flow": {"id": flow.id, "namespace": flow.namespace,
                            "revision": flow.revision}}
        try:
            key = engine.renderer.render(key, context)
        except FlowdeckError:
            return b""
    if not key.strip():
        return b""
    return key.encode("utf-8")


def match_trigger(engine: Engine, namespace: str, flow_id: str,
                  key: str) -> tuple[FlowDefinition, WebhookTrigger] | None:
    """The flow and the webhook trigger whose rendered key is `key`, in constant time per key.

    Every trigger's key is compared (no early exit), and a dummy is compared when the flow is
    unknown or has no webhook, so the time spent says nothing about how close a guess was.
    """
    given = key.encode("utf-8", "replace")
    well_formed = 0 < len(given) <= MAX_KEY_BYTES
    try:
        flow: FlowDefinition | None = engine.get_flow(namespace, flow_id)
    except NotFoundError:
        flow = None
    candidates: list[tuple[WebhookTrigger, bytes]] = []
    if flow is not None:
        candidates = [(t, _rendered_key(engine, flow, t)) for t in flow.webhooks]
    if not candidates:
        hmac.compare_digest(given, _DUMMY_KEY)
        return None
    found: WebhookTrigger | None = None
    for trigger, expected in candidates:
        same = hmac.compare_digest(given, expected or _DUMMY_KEY)
        if same and expected and well_formed and not trigger.disabled and found is None:
            found = trigger
    if found is None or flow is None:
        return None
    return flow, found


def _body(raw: bytes) -> Any:
    """Kestra's rule: a JSON object, else a JSON array, else the raw text; null when empty."""
    if not raw:
        return None
    try:
        parsed = json.loads(raw)
    except (ValueError, RecursionError):
        parsed = None
    if isinstance(parsed, dict | list):
        return parsed
    return raw.decode("utf-8", "replace")


def _multimap(items: list[tuple[str, str]], lower: bool = False) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for name, value in items:
        out.setdefault(name.lower() if lower else name, []).append(value)
    return out


async def _start(request: Request, engine: Engine, flow: FlowDefinition,
                 trigger: WebhookTrigger) -> Response:
    variables = {
        "body": _body(await request.body()),
        "headers": _multimap(list(request.headers.items()), lower=True),
        "parameters": _multimap(request.query_params.multi_items()),
    }
    inputs: dict[str, Any] = {}
    if trigger.inputs:
        context = {"trigger": variables, "envs": engine.envs,
                   "flow": {"id": flow.id, "namespace": flow.namespace,
                            "revision": flow.revision}}
        inputs = engine.renderer.render_value(dict(trigger.inputs), context)
    execution = await engine.create_execution(
        flow.namespace, flow.id, inputs=inputs, source="trigger",
        trigger={"id": trigger.id, "type": trigger.type, "variables": variables})
    if trigger.wait:
        timeout = float(_option(request, "webhook_wait_seconds", DEFAULT_WAIT_SECONDS))
        try:
            execution = await engine.wait_until_terminal(execution.id, timeout=timeout)
        except TimeoutError:
            execution = await engine.get_execution(execution.id)
        if trigger.returnOutputs:
            return JSONResponse(execution.outputs or {})
    doc = execution.to_dict(engine.clock.now())
    body: dict[str, Any] = {k: doc[k] for k in ("tenantId", "id", "namespace", "flowId",
                                                  "flowRevision")}
    body["trigger"] = doc.get("trigger")
    if doc.get("outputs"):
        body["outputs"] = doc["outputs"]
    body["labels"] = doc["labels"]
    body["state"] = doc["state"]
    body["url"] = execution_url(request, flow.namespace, flow.id, execution.id)
    return JSONResponse(body)


async def handle(request: Request, namespace: str, flow_id: str, key: str) -> Response:
    client = request.client.host if request.client else "unknown"
    where = f"{namespace!r}/{flow_id!r}/***"
    throttle = throttle_for(request.app)
    limit = int(_option(request, "webhook_failures_per_minute", DEFAULT_FAILURES_PER_MINUTE))
    wait = throttle.retry_after(client, limit)
    if wait is not None:
        log.info("webhook %s: %s throttled after %d failed calls in a minute",
                 where, client, limit)
        return problem(429, "too many failed webhook calls; retry later", REJECT_INSTANCE,
                       headers={"Retry-After": str(wait)})
    engine = get_engine(request)
    matched = match_trigger(engine, namespace, flow_id, key)
    if matched is None:
        throttle.record(client)
        log.warning("webhook %s: rejected a call from %s", where, client)
        return _reject()
    flow, trigger = matched
    instance = f"{REJECT_INSTANCE}/{namespace}/{flow_id}"
    try:
        if flow.disabled:
            return problem(409, f"flow '{namespace}.{flow_id}' is disabled", instance)
        response = await _start(request, engine, flow, trigger)
    except FlowdeckError as exc:
        extra = None
        if isinstance(exc, ValidationError) and exc.problems:
            extra = {"errors": [{"path": path, "detail": _redact(msg, key)}
                                for path, msg in exc.problems]}
        return problem(status_for(exc), _redact(str(exc), key), instance, extra=extra)
    except StarletteHTTPException:
        raise  # a 413 and the like are answers, not errors
    except Exception as exc:  # keep the key out of the generic handler's log line
        log.error("webhook %s: unexpected %s: %.200s", where, type(exc).__name__,
                  _redact(str(exc), key))
        return problem(500, "an unexpected error occurred; see the server log", instance)
    log.info("webhook %s: started an execution for %s", where, client)
    return response


async def webhook(namespace: str, flow_id: str, key: str, request: Request) -> Response:
    return await handle(request, namespace, flow_id, key)


async def webhook_with_path(namespace: str, flow_id: str, key: str, path: str,
                            request: Request) -> Response:
    return await handle(request, namespace, flow_id, key)


# One route per method, so each has its own OpenAPI operation id; they behave the same.
for _method in METHODS:
    router.add_api_route("/executions/webhook/{namespace}/{flow_id}/{key}", webhook,
                         methods=[_method], name=f"webhook_{_method.lower()}",
                         summary="Trigger a flow from its webhook (no credentials)")
    router.add_api_route("/executions/webhook/{namespace}/{flow_id}/{key}/{path:path}",
                         webhook_with_path, methods=[_method],
                         name=f"webhook_with_path_{_method.lower()}",
                         summary="Trigger a flow from its webhook, with a path suffix")
