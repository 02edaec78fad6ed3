"""Kestra flows API over a real server: CRUD, search, list, revisions, validate, errors."""

from __future__ import annotations

import textwrap
from collections.abc import AsyncIterator

import httpx
import pytest

from live_server import LiveServer

MAIN = "/api/v1/main"
YAML = {"Content-Type": "application/x-yaml"}
PROBLEMS = "https://kestra.io/docs/api-reference/problems/"


def flow_source(flow_id: str, namespace: str, *, message: str = "hello",
                extra: str = "") -> str:
    head = f"id: {flow_id}\nnamespace: {namespace}\n" + (extra + "\n" if extra else "")
    return head + ("tasks:\n"
                   "  - id: log\n"
                   "    type: io.kestra.plugin.core.log.Log\n"
                   f"    message: {message}\n")


@pytest.fixture
async def api(live: LiveServer) -> AsyncIterator[httpx.AsyncClient]:
    """The live client, checking that no answer is a 5xx or carries a stack trace."""

    async def no_traceback(response: httpx.Response) -> None:
        await response.aread()
        assert "Traceback" not in response.text
        assert response.status_code < 500, response.text

    live.client.event_hooks["response"].append(no_traceback)
    yield live.client


def assert_problem(response: httpx.Response, status: int, contains: str | None = None) -> dict:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/problem+json"
    body = response.json()
    assert body["status"] == status
    assert body["type"].startswith(PROBLEMS)
    assert body["title"] and body["detail"] and body["message"]
    assert body["instance"] == response.request.url.path
    if contains is not None:
        assert contains in body["detail"], body
    return body


async def create(api: httpx.AsyncClient, source: str, prefix: str = MAIN) -> dict:
    response = await api.post(f"{prefix}/flows", content=source, headers=YAML)
    assert response.status_code == 200, response.text
    return response.json()


async def test_flow_lifecycle_create_get_update_delete(api: httpx.AsyncClient) -> None:
    source = flow_source("hello", "company.team", extra="description: says hello\n"
                         "labels:\n  team: data")
    created = await create(api, source)
    assert created["id"] == "hello" and created["namespace"] == "company.team"
    assert created["revision"] == 1 and created["tenantId"] == "main"
    assert created["source"] == source  # the exact YAML submitted
    assert created["labels"] == [{"key": "team", "value": "data"}]
    assert created["description"] == "says hello"
    assert created["tasks"][0] == {"id": "log", "type": "io.kestra.plugin.core.log.Log",
                                   "message": "hello"}
    assert created["disabled"] is False and created["deleted"] is False
    assert created["updated"].endswith("Z")

    got = (await api.get(f"{MAIN}/flows/company.team/hello")).json()
    assert got["source"] == source and got["revision"] == 1
    plain = (await api.get(f"{MAIN}/flows/company.team/hello", params={"source": "false"})).json()
    assert "source" not in plain and plain["id"] == "hello"

    updated_source = flow_source("hello", "company.team", message="bonjour")
    updated = await api.put(f"{MAIN}/flows/company.team/hello", content=updated_source,
                            headers=YAML)
    assert updated.status_code == 200, updated.text
    assert updated.json()["revision"] == 2 and updated.json()["source"] == updated_source
    same = await api.put(f"{MAIN}/flows/company.team/hello", content=updated_source,
                         headers=YAML)
    assert same.json()["revision"] == 2  # an unchanged source is not a new revision

    first = (await api.get(f"{MAIN}/flows/company.team/hello", params={"revision": 1})).json()
    assert first["revision"] == 1 and first["source"] == source
    assert_problem(await api.get(f"{MAIN}/flows/company.team/hello", params={"revision": 9}),
                   404)
    revisions = (await api.get(f"{MAIN}/flows/company.team/hello/revisions")).json()
    assert [r["revision"] for r in revisions] == [1, 2]
    assert revisions[0]["source"] == source and revisions[1]["source"] == updated_source

    deleted = await api.delete(f"{MAIN}/flows/company.team/hello")
    assert deleted.status_code == 204 and deleted.content == b""
    assert_problem(await api.get(f"{MAIN}/flows/company.team/hello"), 404, "hello")
    kept = await api.get(f"{MAIN}/flows/company.team/hello", params={"allowDeleted": "true"})
    assert kept.status_code == 200 and kept.json()["deleted"] is True
    assert kept.json()["revision"] == 2
    assert_problem(await api.delete(f"{MAIN}/flows/company.team/hello"), 404)
    # Spec 001's "Create/Update Flow": a PUT creates a flow that does not exist (any more).
    put_back = await api.put(f"{MAIN}/flows/company.team/hello", content=updated_source,
                             headers=YAML)
    assert put_back.status_code == 200, put_back.text
    assert put_back.json()["revision"] == 3  # re-created after a delete: revisions go on
    assert (await api.delete(f"{MAIN}/flows/company.team/hello")).status_code == 204
    again = await create(api, source)
    assert again["revision"] == 4


async def test_put_creates_a_flow_that_does_not_exist(api: httpx.AsyncClient) -> None:
    """Spec 001: `PUT /api/v1/flows/{namespace}/{id}` is "Create/Update Flow"."""
    source = flow_source("fresh", "company.new")
    for prefix in (MAIN, "/api/v1"):
        flow_id = "fresh" if prefix == MAIN else "fresh2"
        body = flow_source(flow_id, "company.new")
        created = await api.put(f"{prefix}/flows/company.new/{flow_id}", content=body,
                                headers=YAML)
        assert created.status_code == 200, created.text
        assert created.json()["revision"] == 1 and created.json()["source"] == body
        got = await api.get(f"{MAIN}/flows/company.new/{flow_id}")
        assert got.status_code == 200 and got.json()["source"] == body
    again = await api.put(f"{MAIN}/flows/company.new/fresh", content=source, headers=YAML)
    assert again.json()["revision"] == 1  # the same source: no new revision
    # The source must define the flow the path names; nothing is created otherwise.
    assert_problem(await api.put(f"{MAIN}/flows/company.new/other", content=source,
                                 headers=YAML), 422, "company.new.fresh")
    assert_problem(await api.get(f"{MAIN}/flows/company.new/other"), 404)
    assert_problem(await api.put(f"{MAIN}/flows/company.new/bad", content=b"tasks: 3\n",
                                 headers=YAML), 422)


async def test_flow_errors_are_problem_json(api: httpx.AsyncClient) -> None:
    bad_yaml = await api.post(f"{MAIN}/flows", content="id: x\nnamespace: [oops\n", headers=YAML)
    assert_problem(bad_yaml, 422, "invalid YAML")
    unknown = await api.post(f"{MAIN}/flows", content=textwrap.dedent("""\
        id: nope
        namespace: company
        tasks:
          - id: t
            type: io.kestra.plugin.nope.Task
        """), headers=YAML)
    body = assert_problem(unknown, 422, "tasks[0].type")
    assert "io.kestra.plugin.nope.Task" in body["message"]
    assert body["type"] == PROBLEMS + "invalid-entity"
    assert {"path": "tasks[0].type",
            "detail": "unknown task type 'io.kestra.plugin.nope.Task'"} in body["errors"]
    missing = await api.post(f"{MAIN}/flows", content="id: x\nnamespace: company\n",
                             headers=YAML)
    assert_problem(missing, 422, "tasks")
    assert_problem(await api.post(f"{MAIN}/flows", content=b"", headers=YAML), 422, "empty")
    assert_problem(await api.post(f"{MAIN}/flows", content=b"\xff\xfe", headers=YAML), 422,
                   "UTF-8")

    source = flow_source("dup", "company")
    await create(api, source)
    # Kestra answers a second create with 422 "Flow id already exists" (clients match it).
    exists = assert_problem(await api.post(f"{MAIN}/flows", content=source, headers=YAML),
                            422, "Flow id already exists")
    assert exists["type"] == PROBLEMS + "invalid-entity"
    assert exists["message"] == "Invalid entity: flow.id: Flow id already exists"
    mismatch = await api.put(f"{MAIN}/flows/company/dup",
                             content=flow_source("other", "company"), headers=YAML)
    assert_problem(mismatch, 422, "company.other")
    invalid_update = await api.put(f"{MAIN}/flows/company/dup", content="tasks: 3\n",
                                   headers=YAML)
    assert_problem(invalid_update, 422)
    assert_problem(await api.get(f"{MAIN}/flows/company/ghost"), 404, "ghost")
    assert_problem(await api.get(f"{MAIN}/flows/company/ghost/revisions"), 404)
    assert_problem(await api.get(f"{MAIN}/flows/company/dup", params={"revision": "x"}), 400,
                   "revision")
    assert_problem(await api.get(f"{MAIN}/flows/company/dup", params={"source": "maybe"}),
                   400, "source")


async def test_tenant_less_paths_and_other_tenants(api: httpx.AsyncClient) -> None:
    source = flow_source("legacy", "old.school")
    created = await create(api, source, prefix="/api/v1")
    assert created["revision"] == 1
    assert (await api.get("/api/v1/flows/old.school/legacy")).json()["source"] == source
    assert (await api.get(f"{MAIN}/flows/old.school/legacy")).status_code == 200
    assert [f["id"] for f in (await api.get("/api/v1/flows/old.school")).json()] == ["legacy"]
    for path in ("/api/v1/acme/flows/old.school/legacy", "/api/v1/acme/flows/search",
                 "/api/v1/acme/flows/old.school"):
        assert_problem(await api.get(path), 404)
    assert_problem(await api.post("/api/v1/acme/flows", content=source, headers=YAML), 404)
    assert (await api.delete("/api/v1/flows/old.school/legacy")).status_code == 204


async def seed_search_flows(api: httpx.AsyncClient) -> None:
    await create(api, flow_source("alpha", "company", extra="labels:\n  team: data"))
    await create(api, flow_source("beta", "company.team",
                                  extra="description: nightly load\nlabels:\n  team: ops"))
    await create(api, flow_source("gamma", "company.team.sub", extra="labels:\n  team: data"))
    await create(api, flow_source("delta", "companyx"))
    await create(api, flow_source("cleanup", "system"))


async def search(api: httpx.AsyncClient, **params: object) -> dict:
    response = await api.get(f"{MAIN}/flows/search", params=params)  # type: ignore[arg-type]
    assert response.status_code == 200, response.text
    return response.json()


def ids(page: dict) -> list[str]:
    return [item["id"] for item in page["results"]]


async def test_search_flows_filters_legacy_sort_and_paging(api: httpx.AsyncClient) -> None:
    await seed_search_flows(api)
    everything = await search(api, size=100)
    assert everything["total"] == 5
    assert ids(everything) == ["alpha", "beta", "gamma", "delta", "cleanup"]  # by namespace
    assert all("source" not in item for item in everything["results"])

    prefix = await search(api, **{"filters[namespace][PREFIX]": "company"})
    assert sorted(ids(prefix)) == ["alpha", "beta", "gamma"]  # not companyx
    equals = await search(api, **{"filters[namespace][EQUALS]": "company.team"})
    assert ids(equals) == ["beta"]
    starts = await search(api, **{"filters[namespace][STARTS_WITH]": "company"})
    assert starts["total"] == 4
    assert ids(await search(api, **{"filters[flowId][EQUALS]": "gamma"})) == ["gamma"]
    assert ids(await search(api, **{"filters[flowId][CONTAINS]": "ELT"})) == ["delta"]
    assert sorted(ids(await search(api, **{"filters[labels][EQUALS][team]": "data"}))) == [
        "alpha", "gamma"]
    assert ids(await search(api, **{"filters[labels][EQUALS]": "team:ops"})) == ["beta"]
    assert ids(await search(api, **{"filters[q][EQUALS]": "nightly"})) == ["beta"]
    assert ids(await search(api, **{"filters[scope][EQUALS]": "SYSTEM"})) == ["cleanup"]
    assert (await search(api, **{"filters[scope][EQUALS]": "USER"}))["total"] == 4
    combined = await search(api, **{"filters[namespace][PREFIX]": "company",
                                    "filters[labels][EQUALS][team]": "data",
                                    "filters[flowId][NOT_EQUALS]": "alpha"})
    assert ids(combined) == ["gamma"]

    assert sorted(ids(await search(api, namespace="company.team"))) == ["beta", "gamma"]
    assert sorted(ids(await search(api, labels="team:data"))) == ["alpha", "gamma"]
    assert ids(await search(api, q="gam")) == ["gamma"]
    assert ids(await search(api, scope="SYSTEM")) == ["cleanup"]

    ascending = await search(api, sort="id:asc", size=100)
    assert ids(ascending) == ["alpha", "beta", "cleanup", "delta", "gamma"]
    descending = await search(api, sort="id:desc", size=100)
    assert ids(descending) == ids(ascending)[::-1]
    page2 = await search(api, sort="id:asc", size=2, page=2)
    assert ids(page2) == ["cleanup", "delta"] and page2["total"] == 5
    page3 = await search(api, sort="id:asc", size=2, page=3)
    assert ids(page3) == ["gamma"] and page3["total"] == 5
    assert (await search(api, page=9))["results"] == []

    for params, where in ((({"filters[bogus][EQUALS]": "x"}), "bogus"),
                          ({"filters[namespace][NOPE]": "x"}, "NOPE"),
                          ({"filters[namespace][IS_NULL]": "x"}, "IS_NULL"),
                          ({"sort": "nope:asc"}, "nope"),
                          ({"sort": "id:up"}, "asc or desc"),
                          ({"page": "0"}, "page"),
                          ({"size": "many"}, "size"),
                          ({"labels": "novalue"}, "key:value"),
                          ({"filters[scope][EQUALS]": "ALL"}, "USER or SYSTEM")):
        assert_problem(await api.get(f"{MAIN}/flows/search", params=params), 400, where)


async def test_namespace_list_and_distinct_namespaces(api: httpx.AsyncClient) -> None:
    await seed_search_flows(api)
    listed = (await api.get(f"{MAIN}/flows/company.team")).json()
    assert [f["id"] for f in listed] == ["beta"]  # not the child namespace's flows
    assert "source" not in listed[0]
    assert (await api.get(f"{MAIN}/flows/nowhere")).json() == []
    namespaces = (await api.get(f"{MAIN}/flows/distinct-namespaces")).json()
    assert namespaces == ["company", "company.team", "company.team.sub", "companyx", "system"]
    filtered = (await api.get(f"{MAIN}/flows/distinct-namespaces", params={"q": "TEAM"})).json()
    assert filtered == ["company.team", "company.team.sub"]


async def test_validate_reports_problems_in_the_body(api: httpx.AsyncClient) -> None:
    good = flow_source("ok", "company")
    unknown_task = textwrap.dedent("""\
        id: broken
        namespace: company
        tasks:
          - id: t
            type: io.kestra.plugin.nope.Task
        """)
    body = good + "---\n" + unknown_task + "---\nid: [unclosed\n"
    response = await api.post(f"{MAIN}/flows/validate", content=body, headers=YAML)
    assert response.status_code == 200, response.text
    results = response.json()
    assert [r["index"] for r in results] == [0, 1, 2]
    assert results[0] == {"index": 0, "flow": "ok", "namespace": "company", "outdated": False,
                          "deprecationPaths": [], "warnings": [], "infos": []}
    assert results[1]["flow"] == "broken" and results[1]["namespace"] == "company"
    assert "tasks[0].type" in results[1]["constraints"]
    assert "invalid YAML" in results[2]["constraints"] and "flow" not in results[2]
    # validating creates nothing
    assert_problem(await api.get(f"{MAIN}/flows/company/ok"), 404)
    single = (await api.post(f"{MAIN}/flows/validate", content=good, headers=YAML)).json()
    assert len(single) == 1 and "constraints" not in single[0]
    empty = (await api.post(f"{MAIN}/flows/validate", content=b"", headers=YAML)).json()
    assert empty[0]["constraints"]
