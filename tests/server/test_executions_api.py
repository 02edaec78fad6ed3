"""Kestra executions API over a real server: create, get, search, delete and every action
in both the 2.x (`/actions/<x>`, 200 + Execution) and 1.x (`/<x>`) styles."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from helpers import apply
from live_server import LiveServer

MAIN = "/api/v1/main"
EX = f"{MAIN}/executions"
PROBLEMS = "https://kestra.io/docs/api-reference/problems/"
TERMINAL = {"SUCCESS", "WARNING", "FAILED", "KILLED", "CANCELLED"}

HELLO = """
id: hello
namespace: acme.team
labels:
  team: data
inputs:
  - id: name
    type: STRING
    defaults: world
  - id: count
    type: INT
    required: false
  - id: doc
    type: FILE
    required: false
tasks:
  - id: greet
    type: io.kestra.plugin.core.log.Log
    message: "hello {{ inputs.name }}"
"""
STRICT = """
id: strict
namespace: acme.team
inputs:
  - id: amount
    type: INT
tasks:
  - id: log
    type: io.kestra.plugin.core.log.Log
    message: "{{ inputs.amount }}"
"""
SLOW = """
id: slow
namespace: acme.ops
tasks:
  - id: nap
    type: io.kestra.plugin.core.flow.Sleep
    duration: PT30S
"""
STEPS = """
id: steps
namespace: acme.ops
tasks:
  - id: first
    type: io.kestra.plugin.core.flow.Sleep
    duration: PT1S
  - id: second
    type: io.kestra.plugin.core.log.Log
    message: second
"""
GATE = """
id: gate
namespace: acme.ops
tasks:
  - id: approve
    type: io.kestra.plugin.core.flow.Pause
    onResume:
      - id: reason
        type: STRING
  - id: after
    type: io.kestra.plugin.core.log.Log
    message: "reason={{ outputs.approve.onResume.reason }}"
"""
FLAKY = """
id: flaky
namespace: acme.ops
tasks:
  - id: first
    type: io.kestra.plugin.core.log.Log
    message: first
  - id: boom
    type: io.kestra.plugin.core.execution.Fail
    condition: "{{ 'fixed' not in labels }}"
    errorMessage: not fixed yet
"""
DISABLED = """
id: dormant
namespace: acme.ops
disabled: true
tasks:
  - id: log
    type: io.kestra.plugin.core.log.Log
    message: never
"""


@pytest.fixture
async def api(live: LiveServer) -> AsyncIterator[httpx.AsyncClient]:
    """The live client with every flow applied; no answer may be a 5xx or a stack trace."""

    async def no_traceback(response: httpx.Response) -> None:
        await response.aread()
        assert "Traceback" not in response.text
        assert response.status_code < 500, response.text

    for source in (HELLO, STRICT, SLOW, STEPS, GATE, FLAKY, DISABLED):
        await apply(live.engine, source)
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


async def start(api: httpx.AsyncClient, namespace: str, flow_id: str, **kwargs: Any) -> dict:
    response = await api.post(f"{EX}/{namespace}/{flow_id}", **kwargs)
    assert response.status_code == 200, response.text
    return response.json()


async def wait_for(api: httpx.AsyncClient, execution_id: str,
                   ready: Callable[[dict], bool], timeout: float = 10) -> dict:
    """Poll GET at short intervals until `ready`, bounded by a deadline."""
    deadline = time.monotonic() + timeout
    while True:
        response = await api.get(f"{EX}/{execution_id}")
        assert response.status_code == 200, response.text
        body = response.json()
        if ready(body):
            return body
        assert time.monotonic() < deadline, f"gave up waiting; last state {body['state']}"
        await asyncio.sleep(0.02)


def in_state(*states: str) -> Callable[[dict], bool]:
    return lambda body: body["state"]["current"] in states


async def finished(live: LiveServer, execution_id: str) -> dict:
    execution = await live.engine.wait_until_terminal(execution_id, timeout=15)
    return execution.to_dict(live.engine.clock.now())


def history(body: dict) -> list[str]:
    return [h["state"] for h in body["state"]["histories"]]


def task_run(body: dict, task_id: str) -> dict:
    return next(tr for tr in body["taskRunList"] if tr["taskId"] == task_id)


# -- create / get -----------------------------------------------------------------------------


async def test_create_with_multipart_urlencoded_and_empty_bodies(
        api: httpx.AsyncClient, live: LiveServer) -> None:
    created = await start(api, "acme.team", "hello",
                          data={"name": "Ada", "count": "3"},
                          files={"doc": ("notes.txt", b"file body", "text/plain")},
                          params=[("labels", "env:prod"), ("labels", "owner:ops")])
    assert created["state"]["current"] == "CREATED"
    assert history(created) == ["CREATED"] and "endDate" not in created["state"]
    assert created["namespace"] == "acme.team" and created["flowId"] == "hello"
    assert created["flowRevision"] == 1 and created["tenantId"] == "main"
    assert created["inputs"]["name"] == "Ada" and created["inputs"]["count"] == 3
    uploaded = created["inputs"]["doc"]
    assert uploaded.startswith("file://") and uploaded.endswith("/notes.txt")
    labels = {lbl["key"]: lbl["value"] for lbl in created["labels"]}
    assert labels["env"] == "prod" and labels["owner"] == "ops" and labels["team"] == "data"
    assert labels["system.correlationId"] == created["id"] and labels["system.from"] == "api"
    assert created["url"].endswith(f"/ui/main/executions/acme.team/hello/{created['id']}")
    assert created["originalId"] == created["id"] and created["metadata"]["attemptNumber"] == 1

    done = await wait_for(api, created["id"], in_state("SUCCESS"))
    assert "url" not in done and done["id"] == created["id"]
    assert history(done) == ["CREATED", "RUNNING", "SUCCESS"]
    assert done["state"]["duration"].startswith("PT") and done["state"]["endDate"].endswith("Z")
    assert task_run(done, "greet")["state"]["current"] == "SUCCESS"

    form = await start(api, "acme.team", "hello", data={"name": "Bob"})  # urlencoded
    assert form["inputs"]["name"] == "Bob"
    # what kestrapy sends with no inputs: no body at all, no Content-Type
    empty = await api.post(f"{EX}/acme.team/hello")
    assert empty.status_code == 200, empty.text
    assert "content-type" not in empty.request.headers
    assert empty.json()["inputs"] == {"name": "world"}
    as_json = await start(api, "acme.team", "hello", json={"name": "Cy", "count": 2})
    assert as_json["inputs"] == {"name": "Cy", "count": 2}

    waited = await start(api, "acme.team", "hello", params={"wait": "true"},
                         data={"name": "Wait"})
    assert waited["state"]["current"] == "SUCCESS"
    assert waited["url"].endswith(waited["id"]) and "endDate" in waited["state"]

    legacy = await api.post(f"{EX}/trigger/acme.team/hello", data={"name": "Old"})
    assert legacy.status_code == 200 and legacy.json()["inputs"]["name"] == "Old"
    tenantless = await api.post("/api/v1/executions/acme.team/hello", files={"name": (None, "T")})
    assert tenantless.status_code == 200 and tenantless.json()["inputs"]["name"] == "T"
    got = await api.get(f"/api/v1/executions/{tenantless.json()['id']}")
    assert got.status_code == 200 and got.json()["id"] == tenantless.json()["id"]
    for execution in (form, empty.json(), as_json, legacy.json(), tenantless.json()):
        await finished(live, execution["id"])


async def test_create_revision_and_errors(api: httpx.AsyncClient, live: LiveServer) -> None:
    await apply(live.engine, HELLO.replace("hello {{", "hi {{"))
    old = await start(api, "acme.team", "hello", params={"revision": 1})
    new = await start(api, "acme.team", "hello")
    assert old["flowRevision"] == 1 and new["flowRevision"] == 2
    assert_problem(await api.post(f"{EX}/acme.team/hello", params={"revision": 7}), 404, "7")

    assert_problem(await api.post(f"{EX}/acme.team/ghost"), 404, "ghost")
    assert_problem(await api.post(f"{EX}/acme.ops/dormant"), 409, "disabled")
    missing = assert_problem(await api.post(f"{EX}/acme.team/strict"), 422, "inputs.amount")
    assert missing["errors"] == [{"path": "inputs.amount", "detail": "is required"}]
    assert_problem(await api.post(f"{EX}/acme.team/strict", files={"amount": (None, "abc")}),
                   422, "inputs.amount")
    assert_problem(await api.post(f"{EX}/acme.team/hello",
                                  params={"labels": "system.secret:x"}), 422, "system.secret")
    assert_problem(await api.post(f"{EX}/acme.team/hello", params={"labels": "novalue"}),
                   400, "key:value")
    assert_problem(await api.post(f"{EX}/acme.team/hello", params={"wait": "perhaps"}), 400)
    assert_problem(await api.post(f"{EX}/acme.team/hello", content=b"{not json",
                                  headers={"Content-Type": "application/json"}), 422, "JSON")
    broken = await api.post(f"{EX}/acme.team/hello", content=b"garbage",
                            headers={"Content-Type": "multipart/form-data; boundary=x"})
    assert_problem(broken, 400)
    # A multipart body cut before its closing boundary is refused, not read as fewer inputs.
    cut = (b'--xyz\r\nContent-Disposition: form-data; name="name"\r\n\r\nada\r\n')
    assert_problem(await api.post(f"{EX}/acme.team/hello", content=cut, headers={
        "Content-Type": "multipart/form-data; boundary=xyz"}), 400, "closing boundary")
    assert_problem(await api.post(f"{EX}/acme.team/hello", params={"breakpoints": "greet"}),
                   422, "breakpoints")
    later = (datetime.now(UTC) + timedelta(hours=1)).isoformat()
    assert_problem(await api.post(f"{EX}/acme.team/hello", params={"scheduleDate": later}),
                   422, "scheduleDate")
    assert_problem(await api.get(f"{EX}/no-such-execution"), 404, "no-such-execution")
    assert_problem(await api.get("/api/v1/acme/executions/search"), 404)
    assert_problem(await api.post("/api/v1/acme/executions/acme.team/hello"), 404)
    for execution in (old, new):
        await finished(live, execution["id"])


# -- search -----------------------------------------------------------------------------------


async def test_search_filters_legacy_sort_and_paging(api: httpx.AsyncClient,
                                                    live: LiveServer) -> None:
    ids = []
    for params in ([("labels", "env:prod")], [("labels", "env:dev")], []):
        ids.append((await start(api, "acme.team", "hello", params=params))["id"])
        await finished(live, ids[-1])
    failed = (await start(api, "acme.ops", "flaky"))["id"]
    await finished(live, failed)
    await apply(live.engine, HELLO.replace("acme.team", "acme"))
    parent_ns = (await start(api, "acme", "hello"))["id"]
    await finished(live, parent_ns)
    everything = [*ids, failed, parent_ns]

    async def search(params: Any, path: str = f"{EX}/search") -> dict:
        response = await api.get(path, params=params)
        assert response.status_code == 200, response.text
        return response.json()

    def found(page: dict) -> list[str]:
        return [item["id"] for item in page["results"]]

    default = await search({"size": 50})
    assert default["total"] == 5 and found(default) == everything[::-1]  # newest first
    assert set(default["results"][0]) >= {"id", "state", "labels", "taskRunList"}
    assert found(await search({"sort": "state.startDate:asc", "size": 50})) == everything
    assert found(await search({"sort": "state.startDate:desc", "size": 50})) == everything[::-1]
    page = await search({"sort": "state.startDate:asc", "size": 2, "page": 2})
    assert found(page) == everything[2:4] and page["total"] == 5
    assert (await search({"size": 2, "page": 9}))["results"] == []

    assert found(await search({"filters[state][IN]": "FAILED,KILLED"})) == [failed]
    assert set(found(await search({"filters[state][NOT_IN]": "FAILED", "size": 50}))) == {
        *ids, parent_ns}
    assert set(found(await search({"filters[namespace][PREFIX]": "acme.team"}))) == set(ids)
    prefix = await search({"filters[namespace][PREFIX]": "acme", "size": 50})
    assert prefix["total"] == 5
    assert found(await search({"filters[namespace][EQUALS]": "acme"})) == [parent_ns]
    assert found(await search({"filters[labels][EQUALS][env]": "prod"})) == [ids[0]]
    assert found(await search({"filters[flowId][EQUALS]": "flaky"})) == [failed]
    assert (await search({"filters[timeRange][EQUALS]": "PT1H"}))["total"] == 5
    future = (datetime.now(UTC) + timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M:%SZ")
    assert (await search({"filters[startDate][GREATER_THAN]": future}))["total"] == 0
    combined = await search({"filters[namespace][PREFIX]": "acme",
                             "filters[state][IN]": "SUCCESS",
                             "filters[labels][EQUALS][team]": "data", "size": 50})
    assert combined["total"] == 4

    legacy = await search([("namespace", "acme.team"), ("state", "SUCCESS"),
                           ("labels", "env:dev")])
    assert found(legacy) == [ids[1]]
    assert found(await search({"state": "FAILED"})) == [failed]
    assert (await search({"timeRange": "PT1H"}))["total"] == 5

    by_flow = await search({"namespace": "acme", "flowId": "hello"}, path=EX)
    assert found(by_flow) == [parent_ns]  # the namespace itself, not acme.team
    spec = await search({"namespace": "acme.team", "flowId": "hello", "state": "SUCCESS",
                         "page": 1, "size": 2}, path="/api/v1/executions")
    assert spec["total"] == 3 and len(spec["results"]) == 2

    for params, where in (({"filters[bogus][EQUALS]": "x"}, "bogus"),
                          ({"filters[state][IN]": "NOPE"}, "NOPE"),
                          ({"filters[state]": "x"}, "filters[state]"),
                          ({"sort": "nope:asc"}, "nope"),
                          ({"page": "0"}, "page"),
                          ({"size": "lots"}, "size"),
                          ({"timeRange": "yesterday"}, "timeRange"),
                          ({"filters[startDate][GREATER_THAN]": "soon"}, "startDate")):
        assert_problem(await api.get(f"{EX}/search", params=params), 400, where)


# -- kill -------------------------------------------------------------------------------------


async def test_kill_both_styles(api: httpx.AsyncClient, live: LiveServer) -> None:
    first = await start(api, "acme.ops", "slow")
    await wait_for(api, first["id"], in_state("RUNNING"))
    killed = await api.delete(f"{EX}/{first['id']}/actions/kill")
    assert killed.status_code == 200, killed.text
    assert killed.headers["content-type"] == "application/json"
    assert killed.json()["id"] == first["id"]
    assert killed.json()["state"]["current"] in ("KILLING", "KILLED")
    final = await finished(live, first["id"])
    assert final["state"]["current"] == "KILLED"
    assert task_run(final, "nap")["state"]["current"] == "KILLED"

    again = await api.delete(f"{EX}/{first['id']}/actions/kill")  # cascade defaults to true
    assert again.status_code == 200 and again.json()["state"]["current"] == "KILLED"
    assert_problem(await api.delete(f"{EX}/{first['id']}/actions/kill",
                                    params={"isOnKillCascade": "false"}), 409, "KILLED")
    old_again = await api.delete(f"{EX}/{first['id']}/kill")
    assert old_again.status_code == 202 and old_again.content == b""

    second = await start(api, "acme.ops", "slow")
    legacy = await api.delete(f"{EX}/{second['id']}/kill")  # 1.x: 202, empty body
    assert legacy.status_code == 202 and legacy.content == b""
    assert (await finished(live, second["id"]))["state"]["current"] == "KILLED"

    third = await start(api, "acme.ops", "slow")
    spec = await api.delete(f"/api/v1/executions/{third['id']}/kill")  # spec 001's path
    assert spec.status_code == 202
    assert (await finished(live, third["id"]))["state"]["current"] == "KILLED"

    assert_problem(await api.delete(f"{EX}/missing/actions/kill"), 404, "missing")
    assert_problem(await api.delete(f"{EX}/missing/kill"), 404, "missing")


# -- pause / resume ---------------------------------------------------------------------------


async def test_manual_pause_and_resume_both_styles(api: httpx.AsyncClient,
                                                   live: LiveServer) -> None:
    # The engine pauses between tasks: both pause while `first` (1 s) runs.
    modern = await start(api, "acme.ops", "steps")
    legacy = await start(api, "acme.ops", "steps")
    await wait_for(api, modern["id"], in_state("RUNNING"))
    await wait_for(api, legacy["id"], in_state("RUNNING"))
    paused = await api.post(f"{EX}/{modern['id']}/actions/pause")  # 2.x: 200 + Execution
    assert paused.status_code == 200, paused.text
    assert paused.json()["id"] == modern["id"] and "state" in paused.json()
    old_pause = await api.post(f"{EX}/{legacy['id']}/pause")  # 1.x: 200, empty body
    assert old_pause.status_code == 200 and old_pause.content == b""
    await wait_for(api, modern["id"], in_state("PAUSED"))
    await wait_for(api, legacy["id"], in_state("PAUSED"))
    assert_problem(await api.post(f"{EX}/{legacy['id']}/actions/pause"), 409, "PAUSED")

    resumed = await api.post(f"{EX}/{modern['id']}/actions/resume")  # 2.x: 200 + Execution
    assert resumed.status_code == 200, resumed.text
    assert resumed.json()["id"] == modern["id"]
    assert resumed.json()["state"]["current"] in ("RUNNING", "SUCCESS")  # no longer PAUSED
    old_resume = await api.post(f"{EX}/{legacy['id']}/resume")  # 1.x: 204
    assert old_resume.status_code == 204 and old_resume.content == b""
    for execution in (modern, legacy):
        done = await finished(live, execution["id"])
        assert done["state"]["current"] == "SUCCESS" and "PAUSED" in history(done)
        assert task_run(done, "second")["state"]["current"] == "SUCCESS"

    assert_problem(await api.post(f"{EX}/{legacy['id']}/actions/pause"), 409, "SUCCESS")
    assert_problem(await api.post(f"{EX}/{legacy['id']}/pause"), 409)
    assert_problem(await api.post(f"{EX}/{legacy['id']}/actions/resume"), 409, "SUCCESS")
    assert_problem(await api.post(f"{EX}/{legacy['id']}/resume"), 409)
    assert_problem(await api.post(f"{EX}/missing/actions/pause"), 404)
    assert_problem(await api.post(f"{EX}/missing/resume"), 404, "missing")


async def test_pause_task_resumes_with_on_resume_inputs(api: httpx.AsyncClient,
                                                        live: LiveServer) -> None:
    execution = await start(api, "acme.ops", "gate")
    paused = await wait_for(api, execution["id"], in_state("PAUSED"))
    assert task_run(paused, "approve")["state"]["current"] == "PAUSED"
    assert "endDate" in paused["state"]  # PAUSED carries an endDate
    assert_problem(await api.post(f"{EX}/{execution['id']}/actions/resume"), 422,
                   "onResume.reason")
    resumed = await api.post(f"{EX}/{execution['id']}/actions/resume",
                             files={"reason": (None, "looks good")})
    assert resumed.status_code == 200, resumed.text
    assert resumed.json()["id"] == execution["id"]
    assert resumed.json()["state"]["current"] != "PAUSED"
    done = await finished(live, execution["id"])
    assert done["state"]["current"] == "SUCCESS"
    assert task_run(done, "approve")["outputs"] == {"onResume": {"reason": "looks good"}}
    logs = [entry.message for entry in await live.engine.logs_for(execution["id"])]
    assert "reason=looks good" in logs

    legacy = await start(api, "acme.ops", "gate")
    await wait_for(api, legacy["id"], in_state("PAUSED"))
    old = await api.post(f"{EX}/{legacy['id']}/resume", data={"reason": "form"})
    assert old.status_code == 204
    done = await finished(live, legacy["id"])
    assert task_run(done, "approve")["outputs"] == {"onResume": {"reason": "form"}}


# -- restart / replay -------------------------------------------------------------------------


async def test_restart_both_styles_and_from_a_task_run(api: httpx.AsyncClient,
                                                       live: LiveServer) -> None:
    execution = await start(api, "acme.ops", "flaky")
    failed = await finished(live, execution["id"])
    assert failed["state"]["current"] == "FAILED"
    first_run = task_run(failed, "first")

    from_task = await api.post(f"{EX}/{execution['id']}/restart",  # spec 001's example
                               params={"taskRunId": first_run["id"]})
    assert from_task.status_code == 200, from_task.text
    body = from_task.json()
    assert body["id"] == execution["id"] and body["state"]["current"] == "RESTARTED"
    assert body["metadata"]["attemptNumber"] == 2
    again = await finished(live, execution["id"])
    assert again["state"]["current"] == "FAILED"
    assert "RESTARTED" in history(task_run(again, "first"))  # re-ran from `first`

    labelled = await api.post(f"{EX}/{execution['id']}/actions/labels",
                              json=[{"key": "fixed", "value": "yes"}])
    assert labelled.status_code == 200, labelled.text
    restarted = await api.post(f"{EX}/{execution['id']}/actions/restart")
    assert restarted.status_code == 200, restarted.text
    assert restarted.json()["id"] == execution["id"]
    assert restarted.json()["metadata"]["attemptNumber"] == 3
    done = await finished(live, execution["id"])
    assert done["state"]["current"] == "SUCCESS"
    assert history(done)[-4:] == ["FAILED", "RESTARTED", "RUNNING", "SUCCESS"]
    # a plain restart only re-runs what failed
    assert history(task_run(done, "first")).count("RESTARTED") == 1  # the earlier restart

    assert_problem(await api.post(f"{EX}/{execution['id']}/actions/restart"), 409, "SUCCESS")
    assert_problem(await api.post(f"{EX}/{execution['id']}/restart"), 409)
    other = await start(api, "acme.ops", "flaky")
    await finished(live, other["id"])
    assert_problem(await api.post(f"{EX}/{other['id']}/actions/restart",
                                  params={"taskRunId": "nope"}), 404, "nope")
    assert_problem(await api.post(f"{EX}/{other['id']}/actions/restart",
                                  params={"revision": 5}), 422, "revision")
    assert_problem(await api.post(f"{EX}/missing/actions/restart"), 404)


async def test_replay_both_styles_and_with_inputs(api: httpx.AsyncClient,
                                                  live: LiveServer) -> None:
    source = await start(api, "acme.team", "hello", data={"name": "Ada", "count": "1"})
    done = await finished(live, source["id"])

    replay = await api.post(f"{EX}/{source['id']}/actions/replay")
    assert replay.status_code == 200, replay.text
    copy = replay.json()
    assert copy["id"] != source["id"] and copy["originalId"] == source["id"]
    assert copy["inputs"] == {"name": "Ada", "count": 1}
    assert (await finished(live, copy["id"]))["state"]["current"] == "SUCCESS"

    from_task = await api.post(f"{EX}/{source['id']}/replay",  # 1.x path
                               params={"taskRunId": task_run(done, "greet")["id"]})
    assert from_task.status_code == 200, from_task.text
    assert from_task.json()["originalId"] == source["id"]
    assert (await finished(live, from_task.json()["id"]))["state"]["current"] == "SUCCESS"

    with_inputs = await api.post(f"{EX}/{source['id']}/actions/replay-with-inputs",
                                 files={"name": (None, "Grace")})
    assert with_inputs.status_code == 200, with_inputs.text
    assert with_inputs.json()["inputs"] == {"name": "Grace", "count": 1}
    empty = await api.post(f"{EX}/{source['id']}/replay-with-inputs", files={"": (None, "")})
    assert empty.status_code == 200 and empty.json()["inputs"]["name"] == "Ada"
    bad = await api.post(f"{EX}/{source['id']}/actions/replay-with-inputs",
                         files={"count": (None, "many")})
    assert_problem(bad, 422, "inputs.count")

    await apply(live.engine, HELLO.replace("hello {{", "hey {{"))
    newer = await api.post(f"{EX}/{source['id']}/actions/replay", params={"revision": 2})
    assert newer.status_code == 200 and newer.json()["flowRevision"] == 2
    assert_problem(await api.post(f"{EX}/{source['id']}/actions/replay",
                                  params={"revision": 9}), 404)
    for execution in (with_inputs.json(), empty.json(), newer.json()):
        await finished(live, execution["id"])

    running = await start(api, "acme.ops", "slow")
    assert_problem(await api.post(f"{EX}/{running['id']}/actions/replay"), 409)
    await api.delete(f"{EX}/{running['id']}/actions/kill")
    await finished(live, running["id"])
    assert_problem(await api.post(f"{EX}/missing/actions/replay"), 404)


# -- labels, change-status, delete --------------------------------------------------------------


async def test_labels_change_status_and_delete(api: httpx.AsyncClient, live: LiveServer) -> None:
    running = await start(api, "acme.ops", "slow")
    not_done = await api.post(f"{EX}/{running['id']}/actions/labels",
                              json=[{"key": "a", "value": "b"}])
    assert_problem(not_done, 400, "terminated")
    assert_problem(await api.post(f"{EX}/{running['id']}/actions/change-status",
                                  params={"status": "SUCCESS"}), 409)
    assert_problem(await api.delete(f"{EX}/{running['id']}"), 409)
    await api.delete(f"{EX}/{running['id']}/actions/kill")
    await finished(live, running["id"])

    execution = await start(api, "acme.team", "hello")
    await finished(live, execution["id"])
    path = f"{EX}/{execution['id']}"
    labelled = await api.post(f"{path}/actions/labels",
                              json=[{"key": "reviewed", "value": "yes"},
                                    {"key": "team", "value": "ops"}])
    assert labelled.status_code == 200, labelled.text
    labels = {lbl["key"]: lbl["value"] for lbl in labelled.json()["labels"]}
    assert labels["reviewed"] == "yes" and labels["team"] == "ops"
    assert labels["system.correlationId"] == execution["id"]
    legacy = await api.post(f"{path}/labels", json=[{"key": "round", "value": "2"}])
    assert legacy.status_code == 200
    assert {"key": "round", "value": "2"} in legacy.json()["labels"]
    search = (await api.get(f"{EX}/search",
                            params={"filters[labels][EQUALS][reviewed]": "yes"})).json()
    assert [item["id"] for item in search["results"]] == [execution["id"]]

    for content, where in ((b"{not json", "invalid JSON"), (b'{"key": "a"}', "list"),
                           (b'[{"value": "x"}]', "key"), (b'[{"key": "a"}]', "value"),
                           (b"[1]", "object")):
        response = await api.post(f"{path}/actions/labels", content=content,
                                  headers={"Content-Type": "application/json"})
        assert_problem(response, 422, where)
    assert_problem(await api.post(f"{path}/actions/labels",
                                  json=[{"key": "system.mine", "value": "x"}]), 422, "system")

    changed = await api.post(f"{path}/actions/change-status", params={"status": "WARNING"})
    assert changed.status_code == 200, changed.text
    assert changed.json()["state"]["current"] == "WARNING"
    old = await api.post(f"{path}/change-status", params={"status": "failed"})
    assert old.status_code == 200 and old.json()["state"]["current"] == "FAILED"
    assert_problem(await api.post(f"{path}/actions/change-status",
                                  params={"status": "RUNNING"}), 422, "RUNNING")
    assert_problem(await api.post(f"{path}/actions/change-status"), 400, "status")
    assert_problem(await api.post(f"{EX}/missing/actions/change-status",
                                  params={"status": "SUCCESS"}), 404)

    deleted = await api.delete(path)
    assert deleted.status_code == 204 and deleted.content == b""
    assert_problem(await api.get(path), 404)
    assert_problem(await api.delete(path), 404)
    assert_problem(await api.post(f"{path}/actions/labels", json=[]), 404)


async def test_legacy_action_path_falls_back_to_a_flow_of_that_name(
        api: httpx.AsyncClient, live: LiveServer) -> None:
    await apply(live.engine, HELLO.replace("id: hello", "id: restart"))
    created = await api.post(f"{EX}/acme.team/restart")  # a flow named like an action
    assert created.status_code == 200, created.text
    assert created.json()["flowId"] == "restart" and "url" in created.json()
    await finished(live, created.json()["id"])
    assert_problem(await api.post(f"{EX}/acme.team/pause"), 404, "acme.team")


async def test_kestrapy_client_round_trip(api: httpx.AsyncClient, live: LiveServer) -> None:
    """The official Python client (2.x, `/actions/` paths) works against this server."""
    pytest.importorskip("regex", reason="kestrapy 2.0.3 needs the undeclared 'regex' package")
    from kestrapy import KestraClient

    client = KestraClient(host=live.url, timeout=15)

    def scenario() -> tuple[Any, ...]:
        flow = client.flows.create_flow("main", "id: kp\nnamespace: kestrapy\ntasks:\n"
                                        "  - id: nap\n"
                                        "    type: io.kestra.plugin.core.flow.Sleep\n"
                                        "    duration: PT30S\n")
        created = client.executions.create_execution("main", "kestrapy", "kp",
                                                     labels=["via:kestrapy"])
        got = client.executions.execution(created.id, "main")
        killed = client.executions.kill_execution(created.id, "main")
        found = client.executions.search_executions("main", page=1, size=5)
        return flow, created, got, killed, found

    flow, created, got, killed, found = await asyncio.to_thread(scenario)
    assert flow.revision == 1 and got.id == created.id == killed.id
    assert found["total"] == 1 and found["results"][0]["id"] == created.id
    assert (await finished(live, created.id))["state"]["current"] == "KILLED"


async def test_kestrapy_flow_lifecycle_pause_resume_and_logs(api: httpx.AsyncClient,
                                                             live: LiveServer) -> None:
    """kestrapy drives flow update/delete, pause with onResume inputs, and log listing."""
    from kestrapy import KestraClient

    client = KestraClient(host=live.url, timeout=15)
    source = ("id: gate\nnamespace: kestrapy\ntasks:\n"
              "  - id: hold\n    type: io.kestra.plugin.core.flow.Pause\n"
              "    onResume:\n      - id: reason\n        type: STRING\n"
              "  - id: say\n    type: io.kestra.plugin.core.log.Log\n"
              "    message: \"resumed: {{ outputs.hold.onResume.reason }}\"\n")

    def create() -> tuple[Any, Any, Any]:
        first = client.flows.create_flow("main", source)
        second = client.flows.update_flow("kestrapy", "gate", "main",
                                          source.replace("resumed:", "go:"))
        run = client.executions.create_execution("main", "kestrapy", "gate")
        return first, second, run

    first, second, run = await asyncio.to_thread(create)
    assert (first.revision, second.revision) == (1, 2)
    from helpers import wait_for_state

    await wait_for_state(live.engine, run.id, "PAUSED")

    def resume_and_read() -> tuple[Any, Any]:
        resumed = client.executions.resume_execution(run.id, "main", inputs={"reason": "ok"})
        return resumed, None

    resumed, _ = await asyncio.to_thread(resume_and_read)
    assert resumed.id == run.id
    final = await finished(live, run.id)
    assert final["state"]["current"] == "SUCCESS"

    def logs_and_delete() -> tuple[Any, Any]:
        lines = client.logs.list_logs_from_execution(run.id, "main")
        client.flows.delete_flow("kestrapy", "gate", "main")
        return lines, None

    lines, _ = await asyncio.to_thread(logs_and_delete)
    assert [line.message for line in lines][-1] == "go: ok"
    assert (await api.get("/api/v1/main/flows/kestrapy/gate")).status_code == 404
