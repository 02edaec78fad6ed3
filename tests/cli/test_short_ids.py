"""Short ids resolve in the client layer, the same way in-process and over HTTP.

One engine with deterministic ids (so every id shares its first 8 characters, as runs started
within a minute do) serves a real uvicorn server; the resolver runs on a read-only
`EmbeddedBackend` beside it (the engine holds the data dir) and on an `HttpBackend`.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from flowdeck.client.backend import Backend
from flowdeck.client.embedded import EmbeddedBackend
from flowdeck.client.http import HttpBackend
from flowdeck.client.resolve import (
    AmbiguousIdError,
    is_fragment,
    resolve_approval_id,
    resolve_execution_id,
)
from flowdeck.core.ids import DeterministicIds
from flowdeck.engine.bus import APPROVAL, ApprovalEvent
from flowdeck.engine.engine import Engine, EngineSettings
from helpers import apply, run_flow, wait_for_state
from live_server import start_server, stop_server

HELLO = """\
id: hello
namespace: ids.test
tasks:
  - id: say
    type: io.kestra.plugin.core.log.Log
    message: hi
"""

GATED = """\
id: gated
namespace: ids.test
tasks:
  - id: first
    type: flowdeck.approval.Request
    title: First gate
  - id: second
    type: flowdeck.approval.Request
    title: Second gate
"""


@pytest.fixture
async def served(tmp_path: Path) -> AsyncIterator[tuple[Engine, str]]:
    engine = await Engine.open(EngineSettings(data_dir=tmp_path / "d", scheduler=False,
                                              envs={}), ids=DeterministicIds())
    server, task, url = await start_server(engine)
    try:
        yield engine, url
    finally:
        await stop_server(server, task)
        await engine.close()


@pytest.fixture(params=["embedded-read-only", "http"])
async def backend(request: pytest.FixtureRequest, served: tuple[Engine, str]
                  ) -> AsyncIterator[Backend]:
    engine, url = served
    made: Backend = (EmbeddedBackend(engine.settings, read_only=True)
                     if request.param == "embedded-read-only" else HttpBackend(url))
    await made.connect()
    try:
        yield made
    finally:
        await made.close()


def test_what_counts_as_a_fragment() -> None:
    assert is_fragment("0123abcd") and is_fragment("0123-ABCD-ef")
    assert not is_fragment("0123abc")  # 7 characters: too short to be taken as a short id
    assert not is_fragment("no-such-id") and not is_fragment("staging-x1")
    assert not is_fragment("019b7c00-0000-7000-8000-000000000001")  # whole: used as it is


async def test_executions_by_first_or_last_characters(served: tuple[Engine, str],
                                                      backend: Backend) -> None:
    engine, _ = served
    await apply(engine, HELLO)
    first = await run_flow(engine, "ids.test", "hello")
    second = await run_flow(engine, "ids.test", "hello")
    assert first.id[:8] == second.id[:8]  # deterministic ids, like runs of one minute

    assert await resolve_execution_id(backend, first.id[-8:]) == first.id  # as the deck shows
    assert await resolve_execution_id(backend, second.id[-12:].upper()) == second.id
    assert await resolve_execution_id(backend, second.id[:13]) == second.id  # a unique prefix
    assert await resolve_execution_id(backend, first.id) == first.id
    with pytest.raises(AmbiguousIdError) as ambiguous:
        await resolve_execution_id(backend, first.id[:8])
    assert {c.id for c in ambiguous.value.candidates} == {first.id, second.id}
    assert all("SUCCESS  ids.test.hello" in c.summary for c in ambiguous.value.candidates)
    assert f"'{first.id[:8]}' is ambiguous: it matches 2 executions" in str(ambiguous.value)
    # Not a match, or not a fragment: passed through for the backend to call unknown.
    assert await resolve_execution_id(backend, "deadbeefdead") == "deadbeefdead"
    assert await resolve_execution_id(backend, first.id[-7:]) == first.id[-7:]


async def test_an_approval_by_its_own_id_or_its_executions(served: tuple[Engine, str],
                                                           backend: Backend) -> None:
    engine, _ = served
    await apply(engine, GATED)
    gated = await engine.create_execution("ids.test", "gated")
    await wait_for_state(engine, gated.id, "PAUSED")
    [first_gate] = await engine.approvals.list("pending", execution_id=gated.id)

    for name in (gated.id, gated.id[-8:], first_gate.id, first_gate.id[-8:]):
        assert await resolve_approval_id(backend, name) == first_gate.id, name

    # Past the first gate the execution waits on the second: its id names the pending one.
    second_gate = await decide_and_wait_for_next(engine, first_gate.id)
    assert second_gate["executionId"] == gated.id
    assert await resolve_approval_id(backend, gated.id[-8:]) == second_gate["id"]
    assert await resolve_approval_id(backend, gated.id) == second_gate["id"]
    # A decided approval is still found by its own id (to report who decided)...
    assert await resolve_approval_id(backend, first_gate.id[-8:]) == first_gate.id
    # ...and a fragment that names it as well as the pending one is ambiguous, not either.
    with pytest.raises(AmbiguousIdError) as ambiguous:
        await resolve_approval_id(backend, first_gate.id[:8])
    assert {c.id for c in ambiguous.value.candidates} == {first_gate.id, second_gate["id"]}
    assert await resolve_approval_id(backend, "no-such-id") == "no-such-id"


async def decide_and_wait_for_next(engine: Engine, approval_id: str) -> dict[str, Any]:
    """Approve `approval_id`, then wait (on events) for the next pending approval."""
    sub = engine.subscribe(APPROVAL)
    try:
        await engine.approvals.decide(approval_id, approve=True, by="ada")
        async with asyncio.timeout(10):
            while True:
                event: ApprovalEvent = await sub.get()
                if event.approval["id"] != approval_id and event.approval["status"] == "pending":
                    return event.approval
    finally:
        sub.close()
