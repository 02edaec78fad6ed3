"""What Kestra's CSV exports (`GET /{flows,executions,triggers}/export/by-query/csv`) list:
everything a search matches, not one page of it. Executions are read a page at a time so a
big export is never held in memory at once.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import TYPE_CHECKING

from flowdeck.core.models import Execution
from flowdeck.engine.flow_search import FlowQuery
from flowdeck.engine.flows import FlowDefinition
from flowdeck.engine.query import ExecutionQuery
from flowdeck.engine.triggers import TriggerQuery, TriggerState

if TYPE_CHECKING:
    from flowdeck.engine.engine import Engine

#: Executions read per page of an export.
EXPORT_PAGE = 500
#: Far more flows or triggers than any data dir holds: "every match".
EVERYTHING = 1_000_000_000


async def executions_matching(engine: Engine,
                              query: ExecutionQuery) -> AsyncIterator[list[Execution]]:
    """Every execution the query matches, in its order, a page at a time."""
    query.page, query.size = 1, EXPORT_PAGE
    seen = 0
    while True:
        page, total = await engine.search_executions(query)
        if page:
            yield page
        seen += len(page)
        if not page or seen >= total:
            return
        query.page += 1


def flows_matching(engine: Engine, query: FlowQuery) -> list[FlowDefinition]:
    query.page, query.size = 1, EVERYTHING
    flows, _ = engine.flows.search(query)
    return flows


async def triggers_matching(engine: Engine, query: TriggerQuery) -> list[TriggerState]:
    query.page, query.size = 1, EVERYTHING
    found, _ = await engine.triggers.search(query)
    return found
