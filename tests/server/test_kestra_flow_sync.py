"""Kestra's bulk flow update over a real server: `POST /flows/{namespace}` makes a namespace's
flows those of a multi-document YAML (`?delete=true` removes the others) and `POST /flows/bulk`
creates or updates any (`?namespace=` bounds them, `allowNamespaceChild` lets sub-namespaces
in); one invalid flow refuses the whole body."""

from __future__ import annotations

from helpers import apply
from live_server import LiveServer

FLOWS = "/api/v1/main/flows"
YAML = {"Content-Type": "application/x-yaml"}


def flow(namespace: str, flow_id: str, message: str = "hi") -> str:
    return (f"id: {flow_id}\nnamespace: {namespace}\ntasks:\n  - id: say\n"
            f"    type: io.kestra.plugin.core.log.Log\n    message: {message}\n")


def ids(live: LiveServer, namespace: str) -> list[str]:
    return [f.id for f in live.engine.list_flows(namespace)]


async def test_a_namespace_made_what_the_body_holds(live: LiveServer) -> None:
    for source in (flow("acme.sync", "old"), flow("acme.sync", "a"), flow("acme.other", "x")):
        await apply(live.engine, source)
    body = flow("acme.sync", "a", "changed") + "---\n" + flow("acme.sync", "b")

    kept = await live.client.post(f"{FLOWS}/acme.sync", content=body, headers=YAML)
    assert kept.status_code == 200, kept.text
    assert [(f["id"], f["revision"]) for f in kept.json()] == [("a", 2), ("b", 1)]
    assert kept.json()[0]["source"].endswith("message: changed\n")
    assert ids(live, "acme.sync") == ["a", "b", "old"]  # delete defaults to false

    synced = await live.client.post(f"{FLOWS}/acme.sync", content=body, headers=YAML,
                                    params={"delete": "true"})
    assert synced.status_code == 200, synced.text
    assert ids(live, "acme.sync") == ["a", "b"] and ids(live, "acme.other") == ["x"]

    stranger = flow("acme.sync", "c") + "---\n" + flow("acme.other", "y")
    refused = await live.client.post(f"{FLOWS}/acme.sync", content=stranger, headers=YAML)
    assert refused.status_code == 422, refused.text
    assert "acme.other" in refused.json()["detail"]
    broken = flow("acme.sync", "d") + "---\nid: broken\nnamespace: acme.sync\n"
    assert (await live.client.post(f"{FLOWS}/acme.sync", content=broken,
                                   headers=YAML)).status_code == 422
    assert ids(live, "acme.sync") == ["a", "b"]  # nothing of a refused body applied


async def test_bulk_with_and_without_a_namespace(live: LiveServer) -> None:
    body = flow("acme", "top") + "---\n" + flow("acme.sub", "child")
    inside = await live.client.post(f"{FLOWS}/bulk", content=body, headers=YAML,
                                    params={"namespace": "acme"})
    assert inside.status_code == 422, inside.text
    child = await live.client.post(f"{FLOWS}/bulk", content=body, headers=YAML,
                                   params={"namespace": "acme", "allowNamespaceChild": "true"})
    assert child.status_code == 200, child.text
    assert [(f["namespace"], f["id"]) for f in child.json()] == [("acme", "top"),
                                                                 ("acme.sub", "child")]
    anywhere = await live.client.post(f"{FLOWS}/bulk", content=flow("elsewhere", "z"),
                                      headers=YAML)
    assert anywhere.status_code == 200 and ids(live, "elsewhere") == ["z"]
    assert (await live.client.post(f"{FLOWS}/bulk", content=b"",
                                   headers=YAML)).status_code == 422
    # the literal flow routes are not taken for a namespace
    validate = await live.client.post(f"{FLOWS}/validate", content=flow("acme", "v"),
                                      headers=YAML)
    assert validate.status_code == 200 and isinstance(validate.json(), list)
    assert "v" not in ids(live, "acme")
