"""Kestra's `GET /executions/{id}/follow-dependencies` over a real server: the executions of
the flows related to the execution's flow, in its correlation, each event read with
kestrapy 2.0.3's `ExecutionStatusEvent`."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from compat import kestra_errata
from helpers import apply, run_flow
from live_server import LiveServer
from server.test_sse_and_logs import sse

pytest.importorskip("regex", reason="kestrapy 2.0.3 needs the undeclared 'regex' package")

MAIN = "/api/v1/main"
CHILD = """id: child
namespace: acme.c
tasks:
  - {id: log, type: io.kestra.plugin.core.log.Log, message: child}
"""
PARENT = """id: parent
namespace: acme.p
tasks:
  - id: run
    type: io.kestra.plugin.core.flow.Subflow
    namespace: acme.c
    flowId: child
"""
CALLER = PARENT.replace("id: parent", "id: caller").replace(
    "namespace: acme.c\n    flowId: child", "namespace: acme.p\n    flowId: parent")


def status(data: dict[str, Any]) -> Any:
    """The event read strictly with kestrapy's model, the errata of Kestra's document relaxed
    (`State`'s getters)."""
    import kestrapy.models as models
    from kestrapy.models.execution_status_event import ExecutionStatusEvent

    kestra_errata.parse(models, "ExecutionStatusEvent", data)
    parsed = ExecutionStatusEvent.from_dict(kestra_errata.relaxed("ExecutionStatusEvent", data))
    assert parsed is not None and not parsed.additional_properties
    return parsed


async def test_follow_dependencies_reports_each_related_execution(live: LiveServer) -> None:
    for source in (CHILD, PARENT, CALLER):
        await apply(live.engine, source)
    parent = await run_flow(live.engine, "acme.p", "parent")
    url = f"{MAIN}/executions/{parent.id}/follow-dependencies"
    async with asyncio.timeout(20):
        async with sse(live.client, url + "?destinationOnly=true") as reader:
            frames = await reader.rest()
    assert [f.id for f in frames] == ["end", "end", "end-all"]
    first, second = status(frames[0].data), status(frames[1].data)
    assert (first.execution_id, first.flow_id, first.state.current) == \
        (parent.id, "parent", "SUCCESS")
    assert (second.namespace, second.flow_id, second.tenant_id) == ("acme.c", "child", "main")
    assert frames[2].data == {"executionId": second.execution_id}

    # `caller` starts `parent` but never ran in this correlation: the stream stays open.
    async with asyncio.timeout(20):
        async with sse(live.client, url) as reader:
            frames = await reader.until(lambda f: f.id == "end" and
                                        f.data["flowId"] == "child")
    assert [f.id for f in frames] == ["end", "end"]

    missing = await live.client.get(f"{MAIN}/executions/nope/follow-dependencies")
    assert missing.status_code == 404
