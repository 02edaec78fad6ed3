"""Execution actions on many executions at once: by ids, or on every match of a query.

As in Kestra, every execution named is checked before any is touched: one unknown id or one in
the wrong state refuses the whole request (`BulkRefused`, with each invalid id and why), so a
bulk action never half-happens because of a typo. An execution that changes state between the
check and its turn is skipped; the count says how many the action was applied to.

`force_run` and `unqueue` start a QUEUED execution past its flow's concurrency limit (unqueue
may instead end it in another state, e.g. CANCELLED); a CREATED one starts on its own anyway.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from flowdeck.core.errors import BadRequestError, ConflictError, FlowdeckError, NotFoundError
from flowdeck.core.models import Execution
from flowdeck.core.states import TERMINAL_STATES, is_terminal
from flowdeck.engine.bus import EXECUTION
from flowdeck.engine.query import ExecutionQuery

if TYPE_CHECKING:
    from flowdeck.engine.engine import Engine

#: At most this many executions in one bulk request (by ids or by query).
MAX_BULK = 10_000
WAITING = frozenset({"CREATED", "QUEUED"})


class BulkRefused(BadRequestError):
    """Some executions named cannot take the action; nothing was done."""

    def __init__(self, action: str, invalids: list[tuple[str, str]]) -> None:
        super().__init__(f"invalid bulk {action}: " + "; ".join(
            f"{value}: {why}" for value, why in invalids[:10]))
        self.action = action
        self.invalids = invalids


@dataclass(slots=True)
class BulkRequest:
    action: str
    ids: list[str]
    labels: list[tuple[str, str]] = field(default_factory=list)
    status: str | None = None  # change-status: the new state; unqueue: where it goes
    latest_revision: bool = False  # replay with the flow's current revision


Check = Callable[[Execution, BulkRequest], "str | None"]
Act = Callable[["Engine", Execution, BulkRequest], Awaitable[Any]]
ActAll = Callable[["Engine", list[Execution], BulkRequest], Awaitable[int]]


def _not_terminal(ex: Execution, _: BulkRequest) -> str | None:
    return "execution already finished" if is_terminal(ex.state.current) else None


def _terminal(ex: Execution, _: BulkRequest) -> str | None:
    return None if is_terminal(ex.state.current) else "execution is not terminated"


def _in(*states: str) -> Check:
    def check(ex: Execution, _: BulkRequest) -> str | None:
        return None if ex.state.current in states else f"execution is {ex.state.current}"
    return check


def _restartable(ex: Execution, _: BulkRequest) -> str | None:
    ok = is_terminal(ex.state.current) or ex.state.current == "PAUSED"
    return None if ok else f"execution is {ex.state.current}"


def _any(ex: Execution, _: BulkRequest) -> str | None:
    return None


def _new_status(ex: Execution, request: BulkRequest) -> str | None:
    if request.status not in TERMINAL_STATES:
        return f"'{request.status}' is not a final state"
    return _terminal(ex, request)


async def _kill(engine: Engine, ex: Execution, _: BulkRequest) -> Any:
    return await engine.kill(ex.id)


async def _delete(engine: Engine, ex: Execution, _: BulkRequest) -> Any:
    await engine.settled(ex.id)
    await engine.delete_execution(ex.id)


async def _pause(engine: Engine, ex: Execution, _: BulkRequest) -> Any:
    return await engine.pause(ex.id)


async def _resume(engine: Engine, ex: Execution, _: BulkRequest) -> Any:
    return await engine.resume(ex.id, {})


async def _restart(engine: Engine, ex: Execution, _: BulkRequest) -> Any:
    await engine.settled(ex.id)
    return await engine.restart(ex.id)


async def _replay(engine: Engine, ex: Execution, request: BulkRequest) -> Any:
    await engine.settled(ex.id)
    revision = engine.get_flow(ex.namespace, ex.flow_id).revision \
        if request.latest_revision else None
    return await engine.replay(ex.id, revision=revision)


async def _labels(engine: Engine, found: list[Execution], request: BulkRequest) -> int:
    return await engine.executions.set_labels_many([e.id for e in found], request.labels)


async def _change_status(engine: Engine, ex: Execution, request: BulkRequest) -> Any:
    assert request.status is not None
    await engine.settled(ex.id)
    return await engine.change_status(ex.id, request.status)


async def _force(engine: Engine, ex: Execution, request: BulkRequest) -> Any:
    return await force_run(engine, ex.id)


async def _unqueue(engine: Engine, ex: Execution, request: BulkRequest) -> Any:
    return await unqueue(engine, ex.id, request.status)


ACTIONS: dict[str, tuple[Check, Act]] = {
    "kill": (_not_terminal, _kill),
    "delete": (_any, _delete),
    "pause": (_in("RUNNING"), _pause),
    "resume": (_in("PAUSED"), _resume),
    "restart": (_restartable, _restart),
    "replay": (_any, _replay),
    "change-status": (_new_status, _change_status),
    "force-run": (_in(*WAITING), _force),
    "unqueue": (_in("QUEUED"), _unqueue),
}
#: Actions applied to all the executions at once (one commit) rather than one by one.
BATCHED: dict[str, tuple[Check, ActAll]] = {
    "labels": (_terminal, _labels),
}


async def apply(engine: Engine, request: BulkRequest) -> int:
    """Check every execution, then act on each; returns how many the action was applied to."""
    check = (ACTIONS.get(request.action) or BATCHED[request.action])[0]
    ids = list(dict.fromkeys(request.ids))
    if len(ids) > MAX_BULK:
        raise BadRequestError(f"at most {MAX_BULK} executions per bulk request, got {len(ids)}")
    found: list[Execution] = []
    invalids: list[tuple[str, str]] = []
    for execution_id in ids:
        try:
            execution = await engine.get_execution(execution_id)
        except NotFoundError:
            invalids.append((execution_id, "execution not found"))
            continue
        reason = check(execution, request)
        if reason:
            invalids.append((execution_id, reason))
        else:
            found.append(execution)
    if invalids:
        raise BulkRefused(request.action, invalids)
    if request.action in BATCHED:
        return await BATCHED[request.action][1](engine, found, request)
    act = ACTIONS[request.action][1]
    done = 0
    for execution in found:
        try:
            await act(engine, execution, request)
        except (ConflictError, NotFoundError):
            continue  # it moved on since the check
        done += 1
    return done


async def matching(engine: Engine, query: ExecutionQuery) -> list[str]:
    """The ids of every execution the query matches (at most `MAX_BULK`)."""
    query.page, query.size = 1, 1_000
    ids: list[str] = []
    while len(ids) < MAX_BULK:
        page, total = await engine.search_executions(query)
        ids.extend(e.id for e in page)
        if not page or len(ids) >= total:
            break
        query.page += 1
    return ids[:MAX_BULK]


async def force_run(engine: Engine, execution_id: str) -> Execution:
    """Start a waiting execution now: a QUEUED one past its flow's limit."""
    execution = await engine.get_execution(execution_id)
    if execution.state.current not in WAITING:
        raise ConflictError(f"execution {execution_id} is {execution.state.current}; only a "
                            "CREATED or QUEUED execution can be forced to run")
    engine._launcher.force_run(execution_id)
    return await _moved_on(engine, execution_id, "QUEUED")


async def unqueue(engine: Engine, execution_id: str, state: str | None) -> Execution:
    """Take a QUEUED execution out of its queue: it runs now, or ends in `state`
    (CANCELLED, KILLED, ...) when one is given."""
    execution = await engine.get_execution(execution_id)
    if execution.state.current != "QUEUED":
        raise ConflictError(f"execution {execution_id} is {execution.state.current}, not "
                            "QUEUED")
    target = (state or "RUNNING").upper()
    if target in ("RUNNING", "CREATED"):
        engine._launcher.force_run(execution_id)
        return await _moved_on(engine, execution_id, "QUEUED")
    if target not in TERMINAL_STATES:
        raise BadRequestError(f"an unqueued execution runs or ends; '{target}' is neither")
    await engine.kill(execution_id)
    await engine.wait_until_terminal(execution_id, timeout=30)
    if target != "KILLED":
        await engine.settled(execution_id)
        return await engine.change_status(execution_id, target)
    return await engine.get_execution(execution_id)


async def _moved_on(engine: Engine, execution_id: str, state: str,
                    timeout: float = 2.0) -> Execution:
    """The execution once it has left `state` (or as it is after `timeout`)."""
    subscription = engine.subscribe(EXECUTION, execution_id=execution_id)
    try:
        with contextlib.suppress(TimeoutError, FlowdeckError):
            async with asyncio.timeout(timeout):
                while (await engine.get_execution(execution_id)).state.current == state:
                    with contextlib.suppress(TimeoutError):
                        await subscription.get(0.2)
    finally:
        subscription.close()
    return await engine.get_execution(execution_id)
