"""Follow an execution over server-sent events, exactly as Kestra streams it.

`GET /executions/{id}/follow` answers `text/event-stream`, chunked, one `id:` line and one
compact JSON `data:` line per event:

- `start`: a partial execution (`id`, `namespace`, `flowId`, `tenantId`) with no `state`, which
  clients skip;
- `progress`: the full Execution JSON, first the current snapshot, then after every committed
  change;
- `end`: the final Execution, once its state is terminal (PAUSED is not), then the stream closes.

An execution that has already finished gets `start` and `end`. An unknown id is a 404
problem+json before anything is streamed (flowdeck is consistent, so there is nothing to wait
for). `: ping` comment lines keep idle streams open (every `sse_keepalive` seconds of
`ServerOptions.extra`, 15 by default).

No update is missed and none is stale: the stream subscribes to the execution's events before
reading the snapshot, and uses events only as wake-ups. On each wake it drains every queued
event and re-reads the execution from the store, so a burst of commits becomes one read and one
event (a slow client never holds the engine back; a lagged subscription changes nothing), and
what is sent is never older than what was sent before.

`GET /executions/{id}/follow-dependencies?destinationOnly=&expandAll=` streams Kestra's
`ExecutionStatusEvent` (`executionId`, `tenantId`, `namespace`, `flowId`, `state`) of the
executions of the flows related to the execution's flow in its correlation
(`engine/execution_dependencies.py`): `progress`, `end` for each that finishes, and `end-all`
(`{"executionId"}` only) when none is left, then the stream closes.

Streams count against the per-client and global caps (`app.state.streams`); over a cap the
answer is a 429 problem+json.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import Response

from flowdeck.core.errors import NotFoundError
from flowdeck.core.models import TENANT, Execution
from flowdeck.core.states import is_terminal
from flowdeck.engine import execution_dependencies
from flowdeck.engine.bus import EXECUTION, Subscription
from flowdeck.engine.engine import Engine
from flowdeck.server.access import VIEWER
from flowdeck.server.deps import bool_param, get_engine
from flowdeck.server.sse import KEEPALIVE, encode, keepalive_interval, open_stream

router = APIRouter(dependencies=VIEWER)

def start_doc(execution: Execution) -> dict[str, Any]:
    """Kestra's first event: enough to name the execution, and no `state`."""
    return {"id": execution.id, "namespace": execution.namespace,
            "flowId": execution.flow_id, "tenantId": TENANT}


def _drain(sub: Subscription) -> None:
    sub.lagged = False
    while not sub.queue.empty():
        sub.queue.get_nowait()


async def execution_events(engine: Engine, execution_id: str,
                           keepalive: float) -> AsyncIterator[bytes]:
    sub = engine.subscribe(EXECUTION, execution_id=execution_id)
    try:
        try:
            execution = await engine.get_execution(execution_id)
        except NotFoundError:
            return  # deleted between the route's check and now
        yield encode("start", start_doc(execution))
        if is_terminal(execution.state.current):
            yield encode("end", execution.to_dict(engine.clock.now()))
            return
        yield encode("progress", execution.to_dict(engine.clock.now()))
        last = execution
        while True:
            try:
                await sub.get(keepalive)
            except TimeoutError:
                yield KEEPALIVE  # then re-check the store anyway: a cheap safety net
            _drain(sub)  # everything queued so far is covered by the read below
            try:
                current = await engine.get_execution(execution_id)
            except NotFoundError:
                return
            if current == last:
                continue
            last = current
            doc = current.to_dict(engine.clock.now())
            if is_terminal(current.state.current):
                yield encode("end", doc)
                return
            yield encode("progress", doc)
    finally:
        sub.close()


@router.get("/executions/{execution_id}/follow", tags=["Executions"],
            summary="Follow an execution (server-sent events: start, progress, end)",
            response_class=Response,
            responses={200: {"content": {"text/event-stream": {}}},
                       404: {"description": "Unknown execution"},
                       429: {"description": "Too many open streams"}})
async def follow_execution(execution_id: str, request: Request) -> Response:
    engine = get_engine(request)
    await engine.get_execution(execution_id)  # a 404 before the stream starts
    events = execution_events(engine, execution_id, keepalive_interval(request))
    return await open_stream(request, events)


def status_event(execution: Execution, engine: Engine) -> dict[str, Any]:
    """Kestra's `ExecutionStatusEvent`."""
    return {"executionId": execution.id, "tenantId": TENANT, "namespace": execution.namespace,
            "flowId": execution.flow_id,
            "state": execution.state.to_dict(engine.clock.now())}


async def dependency_events(engine: Engine, execution_id: str, destination_only: bool,
                            expand_all: bool, keepalive: float) -> AsyncIterator[bytes]:
    async for event in execution_dependencies.follow(
            engine, execution_id, destination_only=destination_only, expand_all=expand_all,
            keepalive=keepalive):
        if event.execution is not None:
            yield encode(event.kind, status_event(event.execution, engine))
        elif event.kind == "end-all":
            yield encode("end-all", {"executionId": event.execution_id})
        else:
            yield KEEPALIVE


@router.get("/executions/{execution_id}/follow-dependencies", tags=["Executions"],
            summary="Follow the executions of an execution's flow dependencies (server-sent "
                    "events: progress, end, end-all)",
            response_class=Response,
            responses={200: {"content": {"text/event-stream": {}}},
                       404: {"description": "Unknown execution"},
                       429: {"description": "Too many open streams"}})
async def follow_dependencies(execution_id: str, request: Request) -> Response:
    engine = get_engine(request)
    await engine.get_execution(execution_id)  # a 404 before the stream starts
    params = request.query_params
    events = dependency_events(engine, execution_id, bool_param(params, "destinationOnly"),
                               bool_param(params, "expandAll"), keepalive_interval(request))
    return await open_stream(request, events)
