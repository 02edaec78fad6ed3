"""Kestra's concurrency limits over a real server: each limited flow with how many of its
executions run now; the count can only be "corrected" to what it is (flowdeck counts the
running executions themselves)."""

from __future__ import annotations

from helpers import apply, wait_for_state
from live_server import LiveServer

MAIN = "/api/v1/main"
LIMITED = """
id: limited
namespace: acme.limits
concurrency: {limit: 1}
tasks:
  - {id: nap, type: io.kestra.plugin.core.flow.Sleep, duration: PT30S}
"""
FREE = """
id: free
namespace: acme.limits
tasks:
  - {id: log, type: io.kestra.plugin.core.log.Log, message: hi}
"""


async def test_limits_say_what_runs_and_cannot_be_set_otherwise(live: LiveServer) -> None:
    await apply(live.engine, LIMITED)
    await apply(live.engine, FREE)
    first = await live.engine.create_execution("acme.limits", "limited")
    second = await live.engine.create_execution("acme.limits", "limited")
    await wait_for_state(live.engine, first.id, "RUNNING")
    await wait_for_state(live.engine, second.id, "QUEUED")
    try:
        page = (await live.client.get(f"{MAIN}/concurrency-limit/search")).json()
        limited = {"tenantId": "main", "namespace": "acme.limits", "flowId": "limited",
                   "running": 1}
        assert page == {"results": [limited], "total": 1}

        path = f"{MAIN}/concurrency-limit/acme.limits/limited"
        same = await live.client.put(path, json={**limited})
        assert same.status_code == 200 and same.json() == limited, same.text
        other = await live.client.put(path, json={**limited, "running": 0})
        assert other.status_code == 409 and "cannot be set" in other.json()["detail"]
        free = await live.client.put(f"{MAIN}/concurrency-limit/acme.limits/free",
                                     json={"running": 0})
        assert free.status_code == 409, free.text
        assert (await live.client.put(f"{MAIN}/concurrency-limit/acme.limits/nope",
                                      json={"running": 0})).status_code == 404
        assert (await live.client.put(path, json={"running": "one"})).status_code == 422
    finally:
        for execution in (first, second):
            await live.engine.kill_and_wait(execution.id)
