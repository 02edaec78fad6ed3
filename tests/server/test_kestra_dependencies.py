"""Kestra's flow dependencies over a real server: the flows a flow starts with a Subflow task
and those that start it, directly or (`expandAll`) transitively, and a namespace's."""

from __future__ import annotations

from typing import Any

from helpers import apply
from live_server import LiveServer

MAIN = "/api/v1/main"


def flow(namespace: str, flow_id: str, *starts: str) -> str:
    tasks = "".join(
        f"  - id: run{i}\n    type: io.kestra.plugin.core.flow.Subflow\n"
        f"    namespace: {target.rsplit('.', 1)[0]}\n    flowId: {target.rsplit('.', 1)[1]}\n"
        for i, target in enumerate(starts)) or \
        "  - {id: log, type: io.kestra.plugin.core.log.Log, message: leaf}\n"
    return f"id: {flow_id}\nnamespace: {namespace}\ntasks:\n{tasks}"


def edges(graph: dict[str, Any]) -> set[tuple[str, str]]:
    assert all(e["relation"] == "FLOW_TASK" for e in graph["edges"])
    return {(e["source"], e["target"]) for e in graph["edges"]}


async def test_a_flows_and_a_namespaces_dependencies(live: LiveServer) -> None:
    for source in (flow("acme.a", "top", "acme.b.middle"),
                   flow("acme.b", "middle", "acme.c.leaf"),
                   flow("acme.c", "leaf"),
                   flow("acme.a", "other", "acme.b.middle"),
                   flow("acme.a", "dynamic").replace(
                       "- {id: log", "- {id: sub, type: io.kestra.plugin.core.flow.Subflow, "
                       "namespace: \"{{ flow.namespace }}\", flowId: top}\n  - {id: log")):
        await apply(live.engine, source)
    top, middle, leaf, other = "main_acme.a_top", "main_acme.b_middle", "main_acme.c_leaf", \
        "main_acme.a_other"

    direct = (await live.client.get(f"{MAIN}/flows/acme.b/middle/dependencies")).json()
    assert edges(direct) == {(top, middle), (other, middle), (middle, leaf)}
    assert {"uid": middle, "namespace": "acme.b", "id": "middle"} in direct["nodes"]
    assert len(direct["nodes"]) == 4

    down = (await live.client.get(f"{MAIN}/flows/acme.a/top/dependencies",
                                  params={"destinationOnly": "true"})).json()
    assert edges(down) == {(top, middle)}
    everything = (await live.client.get(f"{MAIN}/flows/acme.a/top/dependencies", params={
        "destinationOnly": "true", "expandAll": "true"})).json()
    assert edges(everything) == {(top, middle), (middle, leaf)}
    lonely = (await live.client.get(f"{MAIN}/flows/acme.a/dynamic/dependencies")).json()
    assert lonely == {"nodes": [{"uid": "main_acme.a_dynamic", "namespace": "acme.a",
                                 "id": "dynamic"}], "edges": []}

    namespace = (await live.client.get(f"{MAIN}/namespaces/acme.b/dependencies")).json()
    assert edges(namespace) == {(top, middle), (other, middle), (middle, leaf)}
    assert (await live.client.get(f"{MAIN}/flows/acme.a/nope/dependencies")).status_code == 404
