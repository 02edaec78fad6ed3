"""Kestra's concurrency limits (`GET /concurrency-limit/search`): every flow whose executions
are limited (its own `concurrency`, or a domain's policy) with how many of them run now.

Kestra keeps that count in a table an operator may correct (`PUT /concurrency-limit/...`);
flowdeck counts the running executions themselves, so there is nothing to correct.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from flowdeck.core.errors import ConflictError

if TYPE_CHECKING:
    from flowdeck.engine.engine import Engine


@dataclass(frozen=True, slots=True)
class ConcurrencyLimit:
    namespace: str
    flow_id: str
    limit: int
    running: int


def limits(engine: Engine) -> list[ConcurrencyLimit]:
    out = []
    for flow in engine.list_flows():
        concurrency = engine.flow_policies.concurrency(flow)
        if concurrency is not None:
            out.append(ConcurrencyLimit(flow.namespace, flow.id, concurrency.limit,
                                        engine._launcher.running_count(flow.namespace,
                                                                       flow.id)))
    return out


def set_running(engine: Engine, namespace: str, flow_id: str, running: int) -> ConcurrencyLimit:
    """Kestra's correction of a flow's running count: accepted when it says what is true,
    a 409 otherwise (flowdeck's count is the running executions, it cannot drift)."""
    engine.get_flow(namespace, flow_id)  # a 404 for an unknown flow
    found = next((c for c in limits(engine) if (c.namespace, c.flow_id) == (namespace, flow_id)),
                 None)
    if found is None:
        raise ConflictError(f"flow '{namespace}.{flow_id}' has no concurrency limit")
    if running != found.running:
        raise ConflictError(f"flowdeck counts the running executions of '{namespace}.{flow_id}'"
                            f" itself ({found.running} now); the count cannot be set")
    return found
