"""Kestra's trigger deletes over a real server: `DELETE /triggers/delete/by-triggers` and
`…/by-query` forget each trigger's state (a paused one is resumed, a schedule starts again
from now), all named triggers checked first; `DELETE /logs/{ns}/{flowId}?triggerId=` deletes
a trigger's own log lines (flowdeck's triggers write none)."""

from __future__ import annotations

from helpers import apply
from live_server import LiveServer

MAIN = "/api/v1/main"
FLOW = """
id: timed
namespace: acme.triggers
tasks:
  - {id: log, type: io.kestra.plugin.core.log.Log, message: tick}
triggers:
  - {id: nightly, type: io.kestra.plugin.core.trigger.Schedule, cron: "0 2 * * *"}
  - {id: hourly, type: io.kestra.plugin.core.trigger.Schedule, cron: "0 * * * *"}
"""


def key(trigger_id: str) -> dict[str, str]:
    return {"namespace": "acme.triggers", "flowId": "timed", "triggerId": trigger_id}


async def paused(live: LiveServer) -> dict[str, bool]:
    page = (await live.client.get(f"{MAIN}/triggers/acme.triggers/timed")).json()
    return {i["state"]["triggerId"]: i["state"]["disabled"] for i in page["results"]}


async def test_deletes_forget_each_triggers_state(live: LiveServer) -> None:
    await apply(live.engine, FLOW)
    pause = await live.client.post(f"{MAIN}/triggers/set-disabled/by-triggers", json={
        "triggers": [key("nightly"), key("hourly")], "disabled": True})
    assert pause.status_code == 200, pause.text
    assert await paused(live) == {"nightly": True, "hourly": True}

    refused = await live.client.request("DELETE", f"{MAIN}/triggers/delete/by-triggers",
                                        json=[key("nightly"), key("nope")])
    assert refused.status_code == 404, refused.text
    assert await paused(live) == {"nightly": True, "hourly": True}  # nothing was touched

    one = await live.client.request("DELETE", f"{MAIN}/triggers/delete/by-triggers",
                                    json=[key("nightly")])
    assert one.status_code == 200 and one.json() == {"count": 1}, one.text
    assert await paused(live) == {"nightly": False, "hourly": True}

    by_query = await live.client.delete(f"{MAIN}/triggers/delete/by-query", params={
        "filters[namespace][EQUALS]": "acme.triggers"})
    assert by_query.status_code == 200 and by_query.json() == {"count": 2}, by_query.text
    assert await paused(live) == {"nightly": False, "hourly": False}


async def test_a_triggers_logs_are_deleted(live: LiveServer) -> None:
    await apply(live.engine, FLOW)
    deleted = await live.client.delete(f"{MAIN}/logs/acme.triggers/timed",
                                       params={"triggerId": "nightly"})
    assert deleted.status_code == 200 and deleted.content == b""
    missing = await live.client.delete(f"{MAIN}/logs/acme.triggers/timed")
    assert missing.status_code == 400, missing.text
    assert missing.headers["content-type"] == "application/problem+json"
