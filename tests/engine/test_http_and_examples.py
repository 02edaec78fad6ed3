"""The HTTP task against a loopback server, and every bundled example flow end to end."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from importlib import resources

import pytest

from flowdeck.engine.engine import Engine
from flowdeck.engine.flows import parse_flow
from helpers import apply, run_flow, states, wait_for_state


class Handler(BaseHTTPRequestHandler):
    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length", 0))
        body = json.loads(self.rfile.read(length) or b"null")
        status = 201 if self.path == "/ok" else 503
        payload = json.dumps({"echo": body, "auth": self.headers.get("X-Token")}).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def server() -> Iterator[str]:
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}"
    finally:
        httpd.shutdown()
        httpd.server_close()


async def test_http_request_outputs_and_failure(engine: Engine, server: str) -> None:
    await apply(engine, f"""
        id: call
        namespace: t.http
        inputs:
          - id: path
            type: STRING
        tasks:
          - id: post
            type: io.kestra.plugin.core.http.Request
            uri: "{server}/{{{{ inputs.path }}}}"
            method: POST
            contentType: application/json
            headers:
              X-Token: "secret-{{{{ flow.id }}}}"
            body:
              n: 7
        """)
    ok = await run_flow(engine, "t.http", "call", inputs={"path": "ok"})
    assert ok.state.current == "SUCCESS"
    outputs = ok.task_runs[0].outputs
    assert outputs is not None
    assert outputs["code"] == 201
    assert outputs["body"] == {"echo": {"n": 7}, "auth": "secret-call"}
    assert outputs["headers"]["content-type"] == ["application/json"]
    bad = await run_flow(engine, "t.http", "call", inputs={"path": "down"})
    assert bad.state.current == "FAILED"
    errors = [e.message for e in await engine.logs.fetch(bad.id) if e.level == "ERROR"]
    assert errors == [f"task 'post' failed: POST {server}/down answered 503"]


def example_sources() -> dict[str, str]:
    folder = resources.files("flowdeck.examples")
    return {item.name: item.read_text() for item in folder.iterdir() if item.name.endswith(".yml")}


def test_every_bundled_example_is_valid() -> None:
    sources = example_sources()
    assert len(sources) >= 7
    kinds = set()
    for source in sources.values():
        flow = parse_flow(source)
        kinds |= {type(t).__name__ for t in flow.tasks_by_id.values()}
        kinds |= {"Schedule"} if flow.schedules else set()
    assert {"Log", "Commands", "Script", "Parallel", "If", "ForEach", "Pause", "Subflow",
            "ApprovalRequest", "Fail", "OutputValues", "Set", "Get", "Schedule"} <= kinds


async def test_bundled_examples_run(engine: Engine) -> None:
    for source in example_sources().values():
        await engine.apply_flow(source)
    ns = "flowdeck.demo"
    assert (await run_flow(engine, ns, "hello")).state.current == "SUCCESS"
    dag = await run_flow(engine, ns, "build-dag")
    assert dag.state.current == "SUCCESS"
    assert {k: v for k, v in states(dag).items() if k.startswith("deploy-region")} == {
        "deploy-region[eu-west]": "SUCCESS", "deploy-region[us-east]": "SUCCESS",
        "deploy-region[ap-south]": "SUCCESS"}
    failing = await run_flow(engine, ns, "failing-with-errors")
    assert failing.state.current == "FAILED"
    assert states(failing)["alert"] == "SUCCESS" and states(failing)["cleanup"] == "SUCCESS"
    flaky = await run_flow(engine, ns, "flaky-retry")
    assert flaky.state.current == "SUCCESS" and len(flaky.task_runs[0].attempts) == 3
    counter = await run_flow(engine, ns, "kv-counter")
    assert counter.state.current == "SUCCESS"
    assert (await engine.kv.get(ns, "runs")).value == 1
    release = await engine.create_execution(ns, "release-approval")
    await wait_for_state(engine, release.id, "PAUSED")
    approval = (await engine.approvals.list("pending", execution_id=release.id))[0]
    assert [row["service"] for row in approval.rows] == ["api", "billing", "web"]
    await engine.approvals.decide(approval.id, approve=True, by="reviewer")
    assert (await engine.wait_until_terminal(release.id, 10)).state.current == "SUCCESS"
    paused = await engine.create_execution(ns, "pause-and-resume")
    await wait_for_state(engine, paused.id, "PAUSED")
    await engine.resume(paused.id, {"reason": "go"})
    resumed = await engine.wait_until_terminal(paused.id, 10)
    messages = [e.message for e in await engine.logs.fetch(resumed.id)]
    assert "resumed: go" in messages
