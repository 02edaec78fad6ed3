"""Kestra's flow source search, revision deletion and CSV exports over a real server, every
JSON answer read with kestrapy 2.0.3's own models."""

from __future__ import annotations

import asyncio
import csv
import io
import time
from typing import Any

import pytest

from helpers import apply, wait_for_state
from live_server import LiveServer

pytest.importorskip("regex", reason="kestrapy 2.0.3 needs the undeclared 'regex' package")

MAIN = "/api/v1/main"
ALPHA = """id: alpha
namespace: acme.data
description: Loads the Warehouse
inputs:
  - {id: table, type: STRING, defaults: warehouse}
tasks:
  - id: load
    type: io.kestra.plugin.core.log.Log
    message: loading warehouse_raw
triggers:
  - id: nightly
    type: io.kestra.plugin.core.trigger.Schedule
    cron: "0 2 * * *"
"""
BETA = """id: beta
namespace: acme.ops
tasks:
  - id: say
    type: io.kestra.plugin.core.log.Log
    message: "hello, \\"world\\""
"""


def page(body: Any) -> Any:
    from kestrapy.models.paged_results_source_search_result import (
        PagedResultsSourceSearchResult,
    )

    parsed = PagedResultsSourceSearchResult.from_dict(body)
    assert parsed is not None and not parsed.additional_properties
    return parsed


async def source(live: LiveServer, **params: Any) -> Any:
    response = await live.client.get(f"{MAIN}/flows/source", params=params)
    assert response.status_code == 200, response.text
    return page(response.json())


async def test_source_search_finds_lines_columns_and_snippets(live: LiveServer) -> None:
    await apply(live.engine, ALPHA)
    await apply(live.engine, BETA)
    found = await source(live, q="warehouse")
    assert found.total == 1
    [hit] = found.results
    assert (hit.namespace, hit.id, hit.editable) == ("acme.data", "alpha", True)
    assert [(m.line, m.column, m.snippet) for m in hit.matches] == [
        (3, 23, "description: Loads the [mark]Warehouse[/mark]"),
        (5, 40, "  - {id: table, type: STRING, defaults: [mark]warehouse[/mark]}"),
        (9, 21, "    message: loading [mark]warehouse[/mark]_raw")]

    exact = await source(live, q="warehouse", caseSensitive="true", wholeWord="true")
    assert [m.line for m in exact.results[0].matches] == [5]
    assert [m.line for m in (await source(live, q="warehouse", scope="TASKS"))
            .results[0].matches] == [9]
    assert (await source(live, q="warehouse", scope="triggers")).total == 0
    assert [m.snippet for m in (await source(live, q=r"cron: \"\d", regex="true"))
            .results[0].matches] == ['    [mark]cron: "0[/mark] 2 * * *"']
    assert (await source(live, q="io.kestra", namespace="acme.ops")).results[0].id == "beta"
    assert (await source(live, q="io.kestra", namespace="acme.o")).total == 0
    everything = await source(live, sort="id:desc")
    assert [r.id for r in everything.results] == ["beta", "alpha"]
    assert all(r.matches == [] for r in everything.results)
    second = await source(live, q="type", size=1, page=2)
    assert second.total == 2 and [r.id for r in second.results] == ["beta"]


@pytest.mark.parametrize("params", [
    {"q": "(unclosed", "regex": "true"},
    {"q": "(a+)+$" + "a" * 20 + "!", "regex": "true"},
    {"q": "x" * 5_000},
    {"q": "x", "scope": "EVERYWHERE"},
    {"q": "x", "sort": "revision"},
    {"q": "x", "size": "0"},
    {"q": "x", "caseSensitive": "maybe"},
])
async def test_a_bad_source_search_is_a_400(live: LiveServer, params: dict[str, str]) -> None:
    await apply(live.engine, ALPHA.replace("loading warehouse_raw", "a" * 5_000))
    response = await live.client.get(f"{MAIN}/flows/source", params=params)
    assert response.status_code == 400, response.text
    assert response.headers["content-type"] == "application/problem+json"


async def test_delete_revisions_keeps_the_current_one(live: LiveServer) -> None:
    await apply(live.engine, BETA)
    for word in ("two", "three"):
        await apply(live.engine, BETA.replace("world", word))
    url = f"{MAIN}/flows/acme.ops/beta/revisions"
    refused = await live.client.delete(url, params={"revisions": "1,3"})
    assert refused.status_code == 422
    assert "current revision" in refused.json()["detail"]
    for bad in ({}, {"revisions": "one"}, {"revisions": "-1"}, {"revisions": "9" * 40}):
        assert (await live.client.delete(url, params=bad)).status_code == 400, bad
    assert (await live.client.delete(f"{MAIN}/flows/acme.ops/nope/revisions",
                                     params={"revisions": "1"})).status_code == 404

    deleted = await live.client.delete(url, params={"revisions": "1,2,7"})
    assert deleted.status_code == 204, deleted.text
    kept = (await live.client.get(url)).json()
    assert [f["revision"] for f in kept] == [3]
    assert (await live.client.get(f"{MAIN}/flows/acme.ops/beta",
                                  params={"revision": 1})).status_code == 404
    await apply(live.engine, BETA)
    assert (await live.client.get(f"{MAIN}/flows/acme.ops/beta")).json()["revision"] == 4


def rows(text: str) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(text)))


async def test_csv_exports_list_what_the_search_matches(live: LiveServer) -> None:
    await apply(live.engine, ALPHA)
    await apply(live.engine, BETA)
    flows = await live.client.get(f"{MAIN}/flows/export/by-query/csv",
                                  params={"filters[namespace][PREFIX]": "acme"})
    assert flows.status_code == 200
    assert flows.headers["content-type"].startswith("text/csv")
    assert flows.headers["content-disposition"] == "attachment; filename=flows.csv"
    assert flows.text.endswith("\r\n")
    listed = rows(flows.text)
    assert [(r["namespace"], r["id"]) for r in listed] == [("acme.data", "alpha"),
                                                           ("acme.ops", "beta")]
    assert listed[0]["disabled"] == "false" and "source" not in listed[0]
    assert listed[1]["tasks"].startswith("[{id=say, type=io.kestra.plugin.core.log.Log")
    only = await live.client.get(f"{MAIN}/flows/export/by-query/csv",
                                 params={"filters[namespace][EQUALS]": "nowhere"})
    assert only.status_code == 200 and only.text == ""

    runs = [(await live.client.post(f"{MAIN}/executions/acme.ops/beta")).json()["id"]
            for _ in range(2)]
    for run in runs:
        await wait_for_state(live.engine, run, "SUCCESS")
    executions = await live.client.get(f"{MAIN}/executions/export/by-query/csv",
                                       params={"filters[flowId][EQUALS]": "beta"})
    assert executions.status_code == 200, executions.text
    assert executions.headers["content-disposition"] == "attachment; filename=executions.csv"
    exported = rows(executions.text)
    assert sorted(r["id"] for r in exported) == sorted(runs)
    assert {r["flowId"] for r in exported} == {"beta"}
    assert exported[0]["state"].startswith("{current=SUCCESS, histories=[")
    bad = await live.client.get(f"{MAIN}/executions/export/by-query/csv",
                                params={"filters[state][IN]": "NAPPING"})
    assert bad.status_code == 400

    triggers = await live.client.get(f"{MAIN}/triggers/export/by-query/csv",
                                     params={"filters[namespace][EQUALS]": "acme.data"})
    assert triggers.headers["content-disposition"] == "attachment; filename=triggers.csv"
    [nightly] = rows(triggers.text)
    assert (nightly["flowId"], nightly["triggerId"], nightly["disabled"]) == \
        ("alpha", "nightly", "false")


async def test_distinct_field_values_of_executions(live: LiveServer) -> None:
    await apply(live.engine, BETA)
    await apply(live.engine, BETA.replace("id: beta", "id: gamma"))
    runs = [(await live.client.post(f"{MAIN}/executions/acme.ops/{flow}")).json()["id"]
            for flow in ("beta", "gamma", "gamma")]
    for run in runs:
        await wait_for_state(live.engine, run, "SUCCESS")
    url = f"{MAIN}/executions/distinct-field-values"

    async def values(**params: str) -> Any:
        response = await live.client.get(url, params=params)
        assert response.status_code == 200, response.text
        return response.json()

    assert await values(field="FLOW_ID") == ["beta", "gamma"]
    assert await values(field="FLOW_ID", size="1") == ["beta"]
    assert await values(field="NAMESPACE") == ["acme.ops"]
    assert await values(field="STATE", **{"filters[flowId][EQUALS]": "gamma"}) == ["SUCCESS"]
    assert await values(field="FLOW_ID", **{"filters[state][IN]": "FAILED"}) == []
    for bad in ({}, {"field": "PASSWORD"}, {"field": "FLOW_ID", "size": "0"},
                {"field": "STATE", "filters[state][IN]": "NAPPING"}):
        response = await live.client.get(url, params=bad)
        assert response.status_code == 400, (bad, response.text)


def parsed(model: str, body: Any) -> Any:
    import kestrapy.models as models

    value = getattr(models, model).from_dict(body)
    assert value is not None and not value.additional_properties, body
    return value


async def test_source_replace_previews_applies_and_replaces_one_line(live: LiveServer) -> None:
    await apply(live.engine, ALPHA)
    await apply(live.engine, BETA)
    base = f"{MAIN}/flows/source/replace"
    preview = await live.client.post(f"{base}/preview", json={
        "query": r"warehouse(_raw)?", "regex": True, "caseSensitive": True,
        "replacement": r"lake$1\$", "scope": "TASKS"})
    assert preview.status_code == 200, preview.text
    shown = parsed("SourceSearchReplacePreviewResponse", preview.json())
    assert (shown.total_matches, shown.total_flows, shown.editable_flow_count) == (1, 1, 1)
    [match] = shown.flows[0].matches
    assert (match.line, match.before, match.after) == (
        9, "    message: loading warehouse_raw", "    message: loading lake_raw$")
    assert (await live.client.get(f"{MAIN}/flows/acme.data/alpha")).json()["revision"] == 1

    done = await live.client.post(f"{base}/apply", json={
        "query": "warehouse", "replacement": "lake", "flows": [
            {"namespace": "acme.data", "id": "alpha"}, {"namespace": "acme.ops", "id": "beta"},
            {"namespace": "acme.ops", "id": "gone"}]})
    assert done.status_code == 200, done.text
    result = parsed("SourceSearchReplaceApplyResponse", done.json())
    [updated] = result.updated
    assert updated.revision == 2 and "warehouse" not in updated.source.lower()
    assert [(s.id, s.reason.value) for s in result.skipped] == [("beta", "NO_MATCH"),
                                                               ("gone", "NOT_FOUND")]
    broken = await live.client.post(f"{base}/apply", json={
        "query": "id: beta", "replacement": "id: other", "flows": [
            {"namespace": "acme.ops", "id": "beta"}]})
    [skipped] = parsed("SourceSearchReplaceApplyResponse", broken.json()).skipped
    assert skipped.reason.value == "INVALID_FLOW" and skipped.message

    one = await live.client.post(f"{base}/line", json={
        "query": "lake", "replacement": "pond", "namespace": "acme.data", "id": "alpha",
        "line": 5, "column": 40})
    assert one.status_code == 200, one.text
    [flow] = parsed("SourceSearchReplaceApplyResponse", one.json()).updated
    assert "defaults: pond}" in flow.source and "loading lake_raw" in flow.source
    missed = await live.client.post(f"{base}/line", json={
        "query": "lake", "replacement": "x", "namespace": "acme.data", "id": "alpha",
        "line": 5, "column": 3})
    assert missed.json() == {"updated": [], "skipped": [
        {"namespace": "acme.data", "id": "alpha", "reason": "NO_MATCH"}]}


@pytest.mark.parametrize(("path", "body", "status"), [
    ("preview", {"query": "", "replacement": "x"}, 422),
    ("preview", {"query": "x"}, 422),
    ("preview", [1, 2], 422),
    ("preview", {"query": "(", "regex": True, "replacement": "x"}, 400),
    ("preview", {"query": "(a)", "regex": True, "replacement": "$9"}, 400),
    ("preview", {"query": "a", "replacement": "x", "scope": "NOWHERE"}, 422),
    ("apply", {"query": "a", "replacement": "x", "flows": []}, 422),
    ("apply", {"query": "a", "replacement": "x", "flows": [{"id": 1}]}, 422),
    ("line", {"query": "a", "replacement": "x", "namespace": "acme.data", "id": "alpha",
              "line": 0}, 422),
    ("line", {"query": "a", "replacement": "x", "id": "alpha"}, 422),
])
async def test_a_bad_replace_is_refused(live: LiveServer, path: str, body: Any,
                                        status: int) -> None:
    await apply(live.engine, ALPHA)
    response = await live.client.post(f"{MAIN}/flows/source/replace/{path}", json=body)
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/problem+json"


async def test_a_slow_pattern_does_not_hold_the_server_back(live: LiveServer) -> None:
    await apply(live.engine, ALPHA.replace("loading warehouse_raw", "a" * 5_000))
    hostile = asyncio.create_task(live.client.get(f"{MAIN}/flows/source", params={
        "q": "(a|aa)+b", "regex": "true"}))
    await asyncio.sleep(0.2)
    started = time.monotonic()
    other = await live.client.get(f"{MAIN}/flows/search")
    assert other.status_code == 200 and not hostile.done()
    assert time.monotonic() - started < 1.0
    assert (await hostile).status_code == 400


@pytest.mark.parametrize("path", [
    "/flows/source?q=alpha", "/flows/export/by-query/csv",
    "/executions/export/by-query/csv", "/triggers/export/by-query/csv",
    "/executions/distinct-field-values?field=NAMESPACE",
])
async def test_the_tenant_less_paths_answer_too(live: LiveServer, path: str) -> None:
    await apply(live.engine, ALPHA)
    response = await live.client.get("/api/v1" + path)
    assert response.status_code == 200, response.text


async def test_a_revision_an_unfinished_execution_runs_is_kept(live: LiveServer) -> None:
    paused = BETA + "  - {id: wait, type: io.kestra.plugin.core.flow.Pause}\n"
    await apply(live.engine, paused)
    run = (await live.client.post(f"{MAIN}/executions/acme.ops/beta")).json()["id"]
    await wait_for_state(live.engine, run, "PAUSED")
    await apply(live.engine, paused.replace("world", "two"))
    url = f"{MAIN}/flows/acme.ops/beta/revisions"
    refused = await live.client.delete(url, params={"revisions": "1"})
    assert refused.status_code == 409, refused.text
    assert run in refused.json()["detail"]
    await live.client.delete(f"{MAIN}/executions/{run}/kill")
    await wait_for_state(live.engine, run, "KILLED")
    assert (await live.client.delete(url, params={"revisions": "1"})).status_code == 204
