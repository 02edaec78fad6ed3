"""Webhook triggers: a call with a flow's key in it starts an execution of that flow.

The key is the only secret of such a call (its URL needs no credentials), so it is treated like
one:

- It is compared with `hmac.compare_digest` against the *rendered* key of every webhook trigger
  of the flow, always all of them, and against a dummy when there is nothing to compare with. A
  key template that renders empty or fails (an unset `{{ envs.x }}`) matches nothing.
- Every failure (unknown namespace or flow, wrong, malformed or disabled key) is the same
  `WebhookRejected`, so a caller learns nothing about which part was wrong.
- A client with too many failed calls of a flow in the last minute gets `WebhookThrottled`
  for its next wrong keys of that flow; the comparison is cheap and made first, so a call with
  the right key always goes through (from the same address too: behind a proxy, everyone), and
  successful calls do not count.
- The key is never logged.

A matched call creates an execution whose `trigger.variables` are Kestra's: `body`, `headers`
and `parameters` (maps of lists), as the caller's HTTP layer parsed them. The trigger's `inputs`
are rendered against those variables; flow input defaults apply. With `wait: true` the call
returns once the execution has ended (or the wait timed out).
"""

from __future__ import annotations

import hmac
import logging
import math
import secrets
import time
from collections import OrderedDict, deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from flowdeck.core.errors import ConflictError, FlowdeckError, NotFoundError
from flowdeck.core.models import Execution
from flowdeck.engine.flows import FlowDefinition, WebhookTrigger
from flowdeck.engine.templating import has_expression

if TYPE_CHECKING:
    from flowdeck.engine.engine import Engine

log = logging.getLogger("flowdeck.engine.webhooks")

DEFAULT_FAILURES_PER_MINUTE = 20
DEFAULT_WAIT_SECONDS = 3600.0
#: Kestra caps a webhook key at 256 characters; anything much longer is malformed.
MAX_KEY_BYTES = 1024
_DUMMY_KEY = secrets.token_urlsafe(32).encode()


class WebhookRejected(FlowdeckError):
    """The one answer to every call whose key matched nothing (whatever the reason)."""

    def __init__(self) -> None:
        super().__init__("invalid webhook key")


class WebhookThrottled(FlowdeckError):
    """Too many failed calls from this client in the last minute."""

    def __init__(self, retry_after: int) -> None:
        super().__init__("too many failed webhook calls; retry later")
        self.retry_after = retry_after


_UNREAD: Any = object()


@dataclass(slots=True)
class WebhookCall:
    """What arrived with the call, as the trigger's variables, and who sent it. The body is
    read only once the key has matched (`read_body`: Kestra's parse of it)."""

    headers: dict[str, list[str]]
    parameters: dict[str, list[str]]
    client: str
    read_body: Callable[[], Awaitable[Any]]
    _body: Any = _UNREAD

    async def body(self) -> Any:
        if self._body is _UNREAD:
            self._body = await self.read_body()
        return self._body

    async def variables(self) -> dict[str, Any]:
        return {"body": await self.body(), "headers": self.headers,
                "parameters": self.parameters}


@dataclass(frozen=True, slots=True)
class WebhookStart:
    """The execution a call started (ended, with `wait`), and the trigger that matched."""

    flow: FlowDefinition
    trigger: WebhookTrigger
    execution: Execution


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


class WebhookTriggers:
    """Matches keys and starts executions for the webhook triggers of one engine."""

    def __init__(self, engine: Engine) -> None:
        self._engine = engine
        self.throttle = FailureThrottle()

    def _rendered_key(self, flow: FlowDefinition, trigger: WebhookTrigger) -> bytes:
        """The trigger's key as configured, rendered; empty when it cannot be (matches
        nothing)."""
        key = trigger.key
        if has_expression(key):
            context = {"envs": self._engine.trigger_envs,  # every ENV_*: keys are never shown
                       "flow": {"id": flow.id, "namespace": flow.namespace,
                                "revision": flow.revision}}
            try:
                key = self._engine.renderer.render(key, context)
            except FlowdeckError:
                return b""
        if not key.strip():
            return b""
        return key.encode("utf-8")

    def match(self, namespace: str, flow_id: str,
              key: str) -> tuple[FlowDefinition, WebhookTrigger] | None:
        """The flow and the webhook trigger whose rendered key is `key`, in constant time per
        key: every trigger's key is compared (no early exit), and a dummy when the flow is
        unknown or has no webhook, so the time spent says nothing about a guess."""
        given = key.encode("utf-8", "replace")
        well_formed = 0 < len(given) <= MAX_KEY_BYTES
        try:
            flow: FlowDefinition | None = self._engine.get_flow(namespace, flow_id)
        except NotFoundError:
            flow = None
        candidates: list[tuple[WebhookTrigger, bytes]] = []
        if flow is not None:
            candidates = [(t, self._rendered_key(flow, t)) for t in flow.webhooks]
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

    async def trigger(self, namespace: str, flow_id: str, key: str, call: WebhookCall, *,
                      failures_per_minute: int = DEFAULT_FAILURES_PER_MINUTE,
                      wait_timeout: float = DEFAULT_WAIT_SECONDS,
                      accept: Callable[[WebhookCall], Awaitable[None]] | None = None
                      ) -> WebhookStart:
        """Start the flow whose trigger holds `key`; `accept` may refuse the call's content
        once the key matched (its error does not count as a failed call)."""
        where = f"{namespace!r}/{flow_id!r}/***"
        matched = self.match(namespace, flow_id, key)
        if matched is None:
            # Failures count per (caller, flow): a guesser throttles its own guesses, while
            # a caller with the right key, from the same address too, is never held back.
            counted = f"{call.client} {namespace}/{flow_id}"
            wait = self.throttle.retry_after(counted, failures_per_minute)
            if wait is not None:
                log.info("webhook %s: %s throttled after %d failed calls in a minute",
                         where, call.client, failures_per_minute)
                raise WebhookThrottled(wait)
            self.throttle.record(counted)
            log.warning("webhook %s: rejected a call from %s", where, call.client)
            raise WebhookRejected()
        flow, trigger = matched
        if accept is not None:
            await accept(call)
        if flow.disabled:
            raise ConflictError(f"flow '{namespace}.{flow_id}' is disabled")
        execution = await self._start(flow, trigger, call)
        log.info("webhook %s: started an execution for %s", where, call.client)
        if trigger.wait:
            try:
                execution = await self._engine.wait_until_terminal(execution.id,
                                                                   timeout=wait_timeout)
            except TimeoutError:
                execution = await self._engine.get_execution(execution.id)
        return WebhookStart(flow, trigger, execution)

    async def _start(self, flow: FlowDefinition, trigger: WebhookTrigger,
                     call: WebhookCall) -> Execution:
        variables = await call.variables()
        inputs: dict[str, Any] = {}
        if trigger.inputs:
            context = {"trigger": variables, "envs": self._engine.envs,
                       "flow": {"id": flow.id, "namespace": flow.namespace,
                                "revision": flow.revision}}
            inputs = self._engine.renderer.render_value(dict(trigger.inputs), context)
        return await self._engine.create_execution(
            flow.namespace, flow.id, inputs=inputs, source="trigger",
            trigger={"id": trigger.id, "type": trigger.type, "variables": variables})
