"""One call of every operation of the Kestra dialect against a live server, recorded with the
model Kestra's OpenAPI document gives its answer, for the tests that read each answer with a
Kestra client's own models (kestrapy) and check it against the document's schemas.

`exercise` sets up what the calls need (flows with inputs, a pause, a schedule and a webhook
trigger, a queue, KV entries, namespace files) and returns the `Call`s in order.
"""

from __future__ import annotations

import asyncio
import io
import textwrap
import zipfile
from dataclasses import dataclass
from typing import Any

import httpx

from flowdeck.core.staging import bundled_flow_sources
from flowdeck.engine.engine import Engine
from helpers import wait_for_state

MAIN = "/api/v1/main"
YAML = {"Content-Type": "application/x-yaml"}
NS = "compat.team"

GATE = textwrap.dedent(f"""\
    id: gate
    namespace: {NS}
    description: Every input type with a default, and a gate.
    labels:
      team: data
    inputs:
      - {{id: name, type: STRING, defaults: world}}
      - {{id: flag, type: BOOLEAN, defaults: false}}
      - {{id: count, type: INT, defaults: 5}}
      - {{id: ratio, type: FLOAT, defaults: 1.5}}
      - {{id: tags, type: ARRAY, itemType: STRING, defaults: [a, b]}}
      - {{id: doc, type: JSON, defaults: {{k: v}}}}
    tasks:
      - id: hello
        type: io.kestra.plugin.core.log.Log
        message: "hello {{{{ inputs.name }}}}"
        runIf: "{{{{ inputs.count > 0 }}}}"
        allowWarning: true
        logLevel: INFO
        timeout: PT1M
      - id: approve
        type: io.kestra.plugin.core.flow.Pause
        onResume:
          - {{id: reason, type: STRING, defaults: ok}}
    triggers:
      - id: nightly
        type: io.kestra.plugin.core.trigger.Schedule
        cron: "0 2 * * *"
      - id: hook
        type: io.kestra.plugin.core.trigger.Webhook
        key: k3y
    """)
QUICK = textwrap.dedent(f"""\
    id: quick
    namespace: {NS}
    tasks:
      - {{id: say, type: io.kestra.plugin.core.log.Log, message: quick}}
    """)
SLOW = textwrap.dedent(f"""\
    id: slow
    namespace: {NS}
    concurrency: {{limit: 1}}
    tasks:
      - {{id: nap, type: io.kestra.plugin.core.flow.Sleep, duration: PT30S}}
    """)


@dataclass(slots=True)
class Call:
    name: str
    method: str
    path: str
    status: int
    body: Any
    #: kestrapy model of the answer ("[Model]" for a list of them), or None when the
    #: document types it as a bare JSON value (a list of strings, a map, nothing).
    model: str | None


class Recorder:
    def __init__(self, client: httpx.AsyncClient) -> None:
        self.client = client
        self.calls: list[Call] = []

    async def __call__(self, name: str, method: str, path: str, model: str | None,
                       expect: int = 200, **kwargs: Any) -> Any:
        response = await self.client.request(method, MAIN + path, **kwargs)
        assert response.status_code == expect, (name, response.status_code, response.text)
        body = response.json() if response.content and "json" in response.headers.get(
            "content-type", "") else None
        self.calls.append(Call(name, method, path, response.status_code, body, model))
        return body


def _zip(files: dict[str, str]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for name, text in files.items():
            archive.writestr(name, text)
    return buffer.getvalue()


async def exercise(client: httpx.AsyncClient, engine: Engine) -> list[Call]:
    call = Recorder(client)
    for source in bundled_flow_sources():  # the staging flows (`skip_database: false`, ...)
        await engine.apply_flow(source)
    await call("search staging flows", "GET", "/flows/search", "PagedResultsFlow",
               params={"filters[namespace][EQUALS]": "dev.deployment", "size": 50})
    await _flows(call)
    await _executions(call, engine)
    await _triggers(call)
    await _kv_and_files(call)
    await call("configs", "GET", "/../configs", "MiscControllerEEConfiguration")
    return call.calls


async def _flows(call: Recorder) -> None:
    await call("create flow", "POST", "/flows", "FlowWithSource", content=GATE, headers=YAML)
    await call("create again", "POST", "/flows", None, 422, content=GATE, headers=YAML)
    await call("create quick", "POST", "/flows", "FlowWithSource", content=QUICK,
               headers=YAML)
    await call("get flow", "GET", f"/flows/{NS}/gate", "FlowWithSource")
    await call("update flow", "PUT", f"/flows/{NS}/quick", "FlowWithSource",
               content=QUICK.replace("message: quick", "message: quicker"), headers=YAML)
    await call("search flows", "GET", "/flows/search", "PagedResultsFlow")
    await call("flows of a namespace", "GET", f"/flows/{NS}", "[Flow]")
    await call("revisions", "GET", f"/flows/{NS}/quick/revisions", "[FlowWithSource]")
    await call("source search", "GET", "/flows/source", "PagedResultsSourceSearchResult",
               params={"q": "quicker", "namespace": NS})
    await call("replace preview", "POST", "/flows/source/replace/preview",
               "SourceSearchReplacePreviewResponse",
               json={"query": "quicker", "replacement": "quickest", "namespace": NS})
    await call("replace apply", "POST", "/flows/source/replace/apply",
               "SourceSearchReplaceApplyResponse", json={
                   "query": "quicker", "replacement": "quickest",
                   "flows": [{"namespace": NS, "id": "quick"}, {"namespace": NS, "id": "x"}]})
    await call("delete revisions", "DELETE", f"/flows/{NS}/quick/revisions", None, 204,
               params={"revisions": "1"})
    await call("flows csv", "GET", "/flows/export/by-query/csv", None,
               params={"filters[namespace][EQUALS]": NS})
    await call("validate", "POST", "/flows/validate", "[ValidateConstraintViolation]",
               content=GATE + "---\n" + "id: x\n", headers=YAML)
    await call("validate task", "POST", "/flows/validate/task", "ValidateConstraintViolation",
               json={"id": "t", "type": "io.kestra.plugin.core.log.Log", "message": "m",
                     "runIf": "true"})
    await call("validate trigger", "POST", "/flows/validate/trigger",
               "ValidateConstraintViolation",
               json={"id": "s", "type": "io.kestra.plugin.core.trigger.Schedule",
                     "cron": "not a cron"})
    await call("get task", "GET", f"/flows/{NS}/gate/tasks/hello", "Task")
    await call("patch task", "PATCH", f"/flows/{NS}/quick/say", "FlowWithSource",
               json={"id": "say", "type": "io.kestra.plugin.core.log.Log", "message": "p"})
    await call("flow graph", "GET", f"/flows/{NS}/gate/graph", "FlowGraph")
    await call("flow dependencies", "GET", f"/flows/{NS}/gate/dependencies",
               "FlowTopologyGraph")
    await call("namespace dependencies", "GET", f"/namespaces/{NS}/dependencies",
               "FlowTopologyGraph")
    await call("import yaml", "POST", "/flows/import", None,
               files={"fileUpload": ("flows.yml", SLOW.encode(), "application/x-yaml")})
    await call("import zip", "POST", "/flows/import", None, files={"fileUpload": (
        "flows.zip", _zip({"a.yml": QUICK.replace("id: quick", "id: zipped")}),
        "application/zip")})
    await call("bulk update", "POST", "/flows/bulk", "[FlowInterface]",
               content=QUICK + "---\n" + SLOW, headers=YAML, params={"namespace": NS})
    await call("namespace update", "POST", f"/flows/{NS}", "[FlowInterface]", content=QUICK,
               headers=YAML)
    await call("disable by ids", "POST", "/flows/disable/by-ids", "BulkResponse",
               json=[{"namespace": NS, "id": "zipped"}])
    await call("enable by query", "POST", "/flows/enable/by-query", "BulkResponse",
               params={"filters[q][EQUALS]": "zipped"})
    await call("delete by ids", "DELETE", "/flows/delete/by-ids", "BulkResponse",
               json=[{"namespace": NS, "id": "zipped"}])
    await call("distinct namespaces", "GET", "/flows/distinct-namespaces", None)


async def _executions(call: Recorder, engine: Engine) -> None:
    run = await call("create execution", "POST", f"/executions/{NS}/gate",
                     "ExecutionControllerExecutionResponse")
    await wait_for_state(engine, run["id"], "PAUSED")
    await call("get execution", "GET", f"/executions/{run['id']}", "Execution")
    await call("search executions", "GET", "/executions/search", "Paged[Execution]")
    await call("executions of a flow", "GET", "/executions", "Paged[Execution]",
               params={"namespace": NS, "flowId": "gate"})
    await call("executions csv", "GET", "/executions/export/by-query/csv", None,
               params={"filters[namespace][EQUALS]": NS})
    await call("distinct flow ids", "GET", "/executions/distinct-field-values", None,
               params={"field": "FLOW_ID"})
    await call("execution graph", "GET", f"/executions/{run['id']}/graph", "FlowGraph")
    await call("execution flow", "GET", f"/executions/{run['id']}/flow", "FlowForExecution")
    await call("flow for execution", "GET", f"/executions/flows/{NS}/gate",
               "FlowForExecution")
    await call("executable namespaces", "GET", "/executions/namespaces", None)
    await call("executable flows", "GET", f"/executions/namespaces/{NS}/flows",
               "[FlowForExecution]")
    validation = "ExecutionControllerApiValidateExecutionInputsResponse"
    await call("validate inputs", "POST", f"/executions/{NS}/gate/validate", validation,
               data={"count": "x", "name": "Ada"})
    await call("validate resume", "POST", f"/executions/{run['id']}/actions/resume/validate",
               validation, data={"reason": "fine"})
    await call("resume by ids", "POST", "/executions/resume/by-ids", "BulkResponse",
               json=[run["id"]])
    final = await engine.wait_until_terminal(run["id"], timeout=20)
    await call("kill finished by ids", "DELETE", "/executions/kill/by-ids", None, 400,
               json=[final.id, "nope"])
    await call("follow dependencies", "GET", f"/executions/{final.id}/follow-dependencies",
               None, params={"destinationOnly": "true"})
    await call("labels by ids", "POST", "/executions/labels/by-ids", "BulkResponse",
               json={"executionsId": [final.id],
                     "executionLabels": [{"key": "checked", "value": "yes"}]})
    await call("change status", "POST", f"/executions/{final.id}/actions/change-status",
               "Execution", params={"status": "WARNING"})
    replay = await call("replay", "POST", f"/executions/{final.id}/actions/replay",
                        "Execution")
    await call("latest", "POST", "/executions/latest",
               "[ExecutionControllerLastExecutionResponse]",
               json=[{"namespace": NS, "id": "gate"}])
    await _queue(call, engine)
    await wait_for_state(engine, replay["id"], "PAUSED")
    await call("kill by query", "DELETE", "/executions/kill/by-query", "BulkResponse",
               params={"filters[state][IN]": "PAUSED"})
    await engine.wait_until_terminal(replay["id"], timeout=20)
    await call("eval", "POST", f"/executions/{final.id}/actions/eval/{final.task_runs[0].id}",
               "ExecutionControllerEvalResult", content=b"{{ task.id }}",
               headers={"Content-Type": "text/plain"})
    await call("logs", "GET", f"/logs/{final.id}", "[LogEntry]")
    await call("log search", "GET", "/logs/search", "CursorOrOffsetPagedResultsLogEntry",
               params={"sort": ""})
    await call("delete by ids", "DELETE", "/executions/by-ids", "BulkResponse",
               json=[replay["id"]])


async def _queue(call: Recorder, engine: Engine) -> None:
    first = await call("create slow", "POST", f"/executions/{NS}/slow",
                       "ExecutionControllerExecutionResponse")
    second = await call("create queued", "POST", f"/executions/{NS}/slow",
                        "ExecutionControllerExecutionResponse")
    await wait_for_state(engine, second["id"], "QUEUED")
    await call("concurrency limits", "GET", "/concurrency-limit/search",
               "PagedResultsConcurrencyLimit")
    await call("force run", "POST", f"/executions/{second['id']}/actions/force-run",
               "Execution")
    third = await call("create queued again", "POST", f"/executions/{NS}/slow",
                       "ExecutionControllerExecutionResponse")
    await wait_for_state(engine, third["id"], "QUEUED")
    await call("unqueue", "POST", f"/executions/{third['id']}/actions/unqueue", "Execution",
               params={"state": "CANCELLED"})
    await call("kill by ids", "DELETE", "/executions/kill/by-ids", "BulkResponse",
               json=[first["id"], second["id"]])
    await asyncio.gather(*(engine.wait_until_terminal(e["id"], timeout=20)
                           for e in (first, second)))
    killed = await engine.get_execution(first["id"])
    await call("set task run state", "POST", f"/executions/{first['id']}/actions/state",
               "Execution", json={"taskRunId": killed.task_runs[0].id, "state": "SUCCESS"})
    await engine.wait_until_terminal(first["id"], timeout=20)


async def _triggers(call: Recorder) -> None:
    await call("search triggers", "GET", "/triggers/search", "PagedResultsApiTriggerAndState")
    await call("triggers csv", "GET", "/triggers/export/by-query/csv", None)
    await call("triggers of a flow", "GET", f"/triggers/{NS}/gate",
               "PagedResultsApiTriggerAndState")
    await call("pause trigger", "PUT", "/triggers/set-disabled", None,
               json={"namespace": NS, "flowId": "gate", "triggerId": "nightly",
                     "disabled": True})
    await call("resume triggers", "POST", "/triggers/set-disabled/by-triggers",
               "BulkResponse", json={"triggers": [{"namespace": NS, "flowId": "gate",
                                                   "triggerId": "nightly"}],
                                     "disabled": False})
    await call("unlock", "POST", f"/triggers/{NS}/gate/nightly/unlock", None, 409)
    await call("restart trigger", "POST", f"/triggers/{NS}/gate/nightly/restart", None)
    await call("delete triggers", "DELETE", "/triggers/delete/by-triggers", "BulkResponse",
               json=[{"namespace": NS, "flowId": "gate", "triggerId": "nightly"}])


async def _kv_and_files(call: Recorder) -> None:
    await call("put kv", "PUT", f"/namespaces/{NS}/kv/word", None, content=b"hello",
               headers={"Content-Type": "text/plain"})
    await call("get kv", "GET", f"/namespaces/{NS}/kv/word", "KVControllerKvDetail")
    await call("list kv", "GET", "/kv", "PagedResultsKVEntry")
    await call("kv inheritance", "GET", f"/namespaces/{NS}.child/kv/inheritance",
               "[KVEntry]")
    await call("delete kv", "DELETE", f"/namespaces/{NS}/kv", "KVControllerApiDeleteBulkResponse",
               json={"keys": ["word"]})
    await call("upload file", "POST", f"/namespaces/{NS}/files", None,
               params={"path": "/a/b.txt"}, files={"fileContent": ("b.txt", b"hi")})
    await call("list directory", "GET", f"/namespaces/{NS}/files/directory", "[FileAttributes]",
               params={"path": "/a"})
    await call("file stats", "GET", f"/namespaces/{NS}/files/stats", "FileAttributes",
               params={"path": "/a/b.txt"})
