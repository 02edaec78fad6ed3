"""flowdeck's extensions for watching the forge: its event log and a projects overview.

- `GET /v1/events?after=N&limit=M`: the forge's events after sequence number N, oldest first,
  each the document's event schema (`event_type`, `timestamp`, `data`) plus its `seq`;
- `GET /v1/events/follow`: the same as server-sent events (`id:` the sequence, `data:` the
  event), stored ones first, then live; resume with `Last-Event-ID` or `?after=N`;
- `GET /v1/projects`: every project with releases, its newest release and what runs in each
  environment, and the environments this server deploys to.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import StreamingResponse

from flowdeck.core.errors import ValidationError
from flowdeck.engine.engine import Engine
from flowdeck.engine.events import Event
from flowdeck.server.access import VIEWER
from flowdeck.server.deps import EngineDep
from flowdeck.server.sse import KEEPALIVE, encode, keepalive_interval, open_stream

router = APIRouter(tags=["forge"])
SOURCE = "forge"
MAX_SEQ = 2**63 - 1
PAGE = 100


def event_document(event: Event) -> dict[str, Any]:
    return {"seq": event.seq, **event.payload}


def sequence(raw: str | None, name: str) -> int:
    if raw is None or raw.strip() == "":
        return 0
    text = raw.strip()
    if not (text.isascii() and text.isdigit()) or len(text) > 19 or int(text) > MAX_SEQ:
        raise ValidationError([(name, f"must be an event sequence number (0 or more), "
                                      f"got '{raw[:40]}'")])
    return int(text)


@router.get("/v1/events", dependencies=VIEWER)
async def events(request: Request, engine: EngineDep) -> dict[str, Any]:
    after = sequence(request.query_params.get("after"), "after")
    raw_limit = request.query_params.get("limit")
    limit = sequence(raw_limit, "limit") if raw_limit else PAGE
    if not 1 <= limit <= 1000:
        raise ValidationError([("limit", "must be between 1 and 1000")])
    found = await engine.event_reader.after(after, source=SOURCE, limit=limit)
    return {"events": [event_document(e) for e in found],
            "after": after, "next_after": found[-1].seq if found else after}


async def stream(engine: Engine, after: int, keepalive: float) -> AsyncIterator[bytes]:
    async for event in engine.event_reader.follow(after, source=SOURCE, heartbeat=keepalive):
        yield KEEPALIVE if event is None else encode(str(event.seq), event_document(event))


@router.get("/v1/events/follow", dependencies=VIEWER)
async def follow(request: Request, engine: EngineDep) -> StreamingResponse:
    resume = request.headers.get("last-event-id")
    after = (sequence(resume, "Last-Event-ID") if resume
             else sequence(request.query_params.get("after"), "after"))
    return await open_stream(request, stream(engine, after, keepalive_interval(request)))


@router.get("/v1/projects", dependencies=VIEWER)
async def projects(engine: EngineDep) -> dict[str, Any]:
    found = []
    for item in await engine.forge.list_projects():
        latest = item.latest_release
        found.append({
            "repository": item.repository, "project": item.project,
            "releases": item.releases,
            "latest_release": latest.to_dict() if latest is not None else None,
            "current": {env: d.current() for env, d in sorted(item.current.items())}})
    return {"projects": found, "environments": list(engine.forge.environments),
            "approval_environments": list(engine.forge.settings.approval_environments)}
