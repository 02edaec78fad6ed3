"""Execution actions that wait for the engine to catch up before they answer.

- `settled`: an execution that just finished may still have its runner letting go of it
  (writing the last logs, releasing slots); actions on finished executions (restart, replay,
  labels, status, delete) wait for that, briefly, so they never see a half-finished one.
- `resume_and_wait`: Kestra answers a resume with the execution already RUNNING again; the
  runner makes that move a moment after the resume is committed, so this waits (briefly) for it.
  Resuming an execution that waits on an approval decides that approval, which takes the
  `approver` role.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import TYPE_CHECKING, Any

from flowdeck.core.errors import PermissionDenied
from flowdeck.core.models import Execution
from flowdeck.core.states import is_terminal
from flowdeck.engine.bus import EXECUTION, ExecutionEvent
from flowdeck.engine.keys import Role, role_allows

if TYPE_CHECKING:
    from flowdeck.engine.engine import Engine

#: How long an action on a just-finished execution waits for its runner to let go.
SETTLE_TIMEOUT = 10.0
#: How long resume waits for the resumed execution to leave PAUSED before it answers.
RESUME_SETTLE_TIMEOUT = 2.0


async def settled(engine: Engine, execution_id: str,
                  timeout: float = SETTLE_TIMEOUT) -> Execution:
    """The execution; if it is finished, once its runner has let go of it too."""
    execution = await engine.get_execution(execution_id)
    if is_terminal(execution.state.current) and engine.is_running(execution_id):
        with contextlib.suppress(TimeoutError):  # then the action's own check answers 409
            return await engine.wait_until_terminal(execution_id, timeout=timeout)
    return execution


async def resume_and_wait(engine: Engine, execution_id: str, inputs: dict[str, Any], *,
                          by: str | None = None, role: str | None = None,
                          timeout: float = RESUME_SETTLE_TIMEOUT) -> Execution:
    """Resume a PAUSED execution and return it once it has moved on (or `timeout` passed).

    `role` is the caller's (None: anyone, as with auth off); below `approver` it may not
    resume past a pending approval.
    """
    if role is not None and not role_allows(role, Role.APPROVER):
        pending = await engine.approvals.list("pending", execution_id=execution_id, limit=1)
        if pending:
            raise PermissionDenied(
                f"execution {execution_id} waits on an approval; resuming it decides the "
                f"approval, which needs the 'approver' role (role '{role}' given)")
    subscription = engine.subscribe(EXECUTION, execution_id=execution_id)
    try:
        resumed = await engine.resume(execution_id, inputs, by)
        if resumed.state.current != "PAUSED":
            return resumed
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(timeout):
                while True:
                    event: ExecutionEvent = await subscription.get()
                    if event.state != "PAUSED":
                        return Execution.from_dict(dict(event.doc))
    finally:
        subscription.close()
    return await engine.get_execution(execution_id)
