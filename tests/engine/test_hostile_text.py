"""Lone surrogates are made valid where text enters the engine, so they never reach SQLite.

Each test sends a lone surrogate through one entry point (labels, inputs, resume inputs, a Log
message, task outputs, a shell task's `::{"outputs":..}::` line, an HTTP response, KV, an
approval comment, trigger variables) and checks that what is stored says U+FFFD instead, and
that the store still takes other writes afterwards.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
import yaml

from flowdeck.engine.engine import Engine
from helpers import apply, run_flow, wait_for_state, wait_for_task_state

BAD = "\ud800"
FIXED = "\ufffd"

ECHO = """
    id: echo
    namespace: t.hostile
    inputs:
      - id: text
        type: STRING
        defaults: plain
      - id: doc
        type: JSON
        defaults: "{}"
    tasks:
      - id: say
        type: io.kestra.plugin.core.log.Log
        message: "{{ inputs.text }}"
    """


async def still_writes(engine: Engine) -> None:
    """Another flow runs to the end and a KV write commits: nothing is blocked."""
    await engine.kv.put("t.hostile", "after", "ok")
    assert (await engine.kv.get("t.hostile", "after")).value == "ok"
    done = await run_flow(engine, "t.hostile", "echo", timeout=10)
    assert done.state.current == "SUCCESS"


async def test_labels_inputs_and_trigger_variables_are_cleaned(engine: Engine) -> None:
    await apply(engine, ECHO)
    execution = await engine.create_execution(
        "t.hostile", "echo", inputs={"text": f"a{BAD}b", "doc": {f"k{BAD}": [BAD]}},
        labels=[("team", f"x{BAD}")],
        trigger={"id": "hook", "type": "Webhook", "variables": {"body": {"q": BAD}}})
    done = await engine.wait_until_terminal(execution.id, 10)
    assert done.state.current == "SUCCESS"
    assert done.inputs == {"text": f"a{FIXED}b", "doc": {f"k{FIXED}": [FIXED]}}
    assert done.label("team") == f"x{FIXED}"
    assert done.trigger is not None
    assert done.trigger["variables"] == {"body": {"q": FIXED}}
    assert [e.message for e in await engine.logs.fetch(done.id)] == [f"a{FIXED}b"]
    relabelled = await engine.set_labels(done.id, [("note", BAD)])
    assert relabelled.label("note") == FIXED
    assert (await engine.get_execution(done.id)).label("note") == FIXED
    await still_writes(engine)


async def test_log_messages_outputs_and_flow_sources_are_cleaned(engine: Engine) -> None:
    await apply(engine, ECHO)
    # Jinja escapes make lone surrogates out of plain ASCII sources (libyaml refuses them
    # in YAML escapes; the pure-Python reader accepts them: the parsed source is cleaned too).
    await apply(engine, r"""
        id: escapes
        namespace: t.hostile
        tasks:
          - id: log
            type: io.kestra.plugin.core.log.Log
            message: "{{ 'yaml \\ud800' }}"
          - id: values
            type: io.kestra.plugin.core.output.OutputValues
            values:
              jinja: "{{ 'x\\udfff' }}"
          - id: shell
            type: io.kestra.plugin.scripts.shell.Commands
            commands:
              - printf '%s\n' '::{"outputs":{"v":"\ud800"}}::'
              - printf 'raw \355\240\200 bytes\n'
        outputs:
          - id: out
            type: STRING
            value: "{{ outputs['values']['values']['jinja'] }}{{ 'y\\ud800' }}"
        """)
    done = await run_flow(engine, "t.hostile", "escapes", timeout=15)
    assert done.state.current == "SUCCESS", [e.message for e in await engine.logs.fetch(done.id)]
    by_task = {tr.task_id: tr for tr in done.task_runs}
    assert by_task["values"].outputs == {"values": {"jinja": f"x{FIXED}"}}
    assert by_task["shell"].outputs is not None
    assert by_task["shell"].outputs["vars"] == {"v": FIXED}
    assert done.outputs == {"out": f"x{FIXED}y{FIXED}"}
    messages = [e.message for e in await engine.logs.fetch(done.id)]
    assert f"yaml {FIXED}" in messages
    assert any(m.startswith("raw ") and m.endswith(" bytes") for m in messages)
    await still_writes(engine)


def test_a_parsed_flow_source_is_cleaned() -> None:
    from flowdeck.core.yamlsafe import _PureLoader
    from flowdeck.engine.flows import parse_flow

    assert yaml.load('x: "\\ud800"', Loader=_PureLoader) == {"x": BAD}  # what it guards
    flow = parse_flow("id: f\nnamespace: n\nlabels: {a: 'x\ud800'}\n"
                      "tasks: [{id: t, type: io.kestra.plugin.core.log.Log, message: m}]\n")
    assert flow.labels == [("a", f"x{FIXED}")]
    assert FIXED in flow.source


class Handler(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        payload = b'{"text": "\\ud800 in a body", "\\udfff": 1}'
        self.send_response(200)
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


async def test_an_http_response_body_is_cleaned(engine: Engine, server: str) -> None:
    await apply(engine, ECHO)
    await apply(engine, f"""
        id: fetch
        namespace: t.hostile
        tasks:
          - id: get
            type: io.kestra.plugin.core.http.Request
            uri: "{server}/doc"
        """)
    done = await run_flow(engine, "t.hostile", "fetch", timeout=15)
    assert done.state.current == "SUCCESS"
    outputs = done.task_runs[0].outputs
    assert outputs is not None
    assert outputs["body"] == {"text": f"{FIXED} in a body", FIXED: 1}
    row = await engine.store.fetchone("SELECT doc FROM executions WHERE id = ?", (done.id,))
    assert row is not None and FIXED in json.loads(row[0])["taskRunList"][0]["outputs"]["body"]
    await still_writes(engine)


async def test_kv_values_and_approval_comments_are_cleaned(engine: Engine) -> None:
    await apply(engine, ECHO)
    entry = await engine.kv.put("t.hostile", "k", {"v": BAD}, description=BAD)
    assert (entry.value, entry.description) == ({"v": FIXED}, FIXED)
    await apply(engine, r"""
        id: gate
        namespace: t.hostile
        tasks:
          - id: set
            type: io.kestra.plugin.core.kv.Set
            key: from-task
            value: "{{ 'task \\ud800' }}"
          - id: review
            type: flowdeck.approval.Request
            title: "{{ 'Title \\ud800' }}"
            rows:
              - {name: "{{ 'row \\ud800' }}"}
          - id: hold
            type: io.kestra.plugin.core.flow.Pause
            onResume:
              - id: why
                type: STRING
        """)
    execution = await engine.create_execution("t.hostile", "gate")
    await wait_for_state(engine, execution.id, "PAUSED")
    assert (await engine.kv.get("t.hostile", "from-task")).value == f"task {FIXED}"
    approval = (await engine.approvals.list("pending", execution_id=execution.id))[0]
    assert approval.title == f"Title {FIXED}"
    assert approval.rows == [{"name": f"row {FIXED}"}]
    decided = await engine.approvals.decide(approval.id, approve=True, by=f"ada{BAD}",
                                            comment=f"ok {BAD}")
    assert (decided.decided_by, decided.comment) == (f"ada{FIXED}", f"ok {FIXED}")
    await wait_for_task_state(engine, execution.id, "hold", "PAUSED")
    await engine.resume(execution.id, {"why": f"because {BAD}"})
    done = await engine.wait_until_terminal(execution.id, 10)
    assert done.state.current == "SUCCESS"
    hold = next(tr for tr in done.task_runs if tr.task_id == "hold")
    assert hold.outputs == {"onResume": {"why": f"because {FIXED}"}}
    await still_writes(engine)
