"""SECRET inputs are masked wherever an execution is read or logged, yet usable by its tasks,
also after a restart of the engine; their clear values are gone once the execution ends."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from flowdeck.core.errors import ConflictError, InvalidInputsError
from flowdeck.engine.engine import Engine
from helpers import apply, open_engine, wait_for_state

SECRET = "s3cr3t-Value\"42"
FLOW = """
    id: deploy
    namespace: t.secret
    inputs:
      - id: token
        type: SECRET
      - id: name
        type: STRING
        defaults: app
    tasks:
      - id: say
        type: io.kestra.plugin.core.log.Log
        message: "deploying {{ inputs.name }} with {{ inputs.token }}"
      - id: hold
        type: io.kestra.plugin.core.flow.Pause
      - id: use
        type: io.kestra.plugin.scripts.shell.Commands
        env:
          TOKEN: "{{ inputs.token }}"
        commands:
          - echo "token=$TOKEN"
          - printf '%s' "$TOKEN" | wc -c
          - printf '::{"outputs":{"echo":"%s"}}::\\n' "$(printf '%s' "$TOKEN" | sed 's/"/\\\\"/g')"
      - id: keep
        type: io.kestra.plugin.core.output.OutputValues
        values:
          copy: "{{ inputs.token }}"
          json: "{{ inputs | toJson }}"
      - id: fail
        type: io.kestra.plugin.core.execution.Fail
        errorMessage: "giving up on {{ inputs.token }}"
    """


def stored_text(db: Path) -> str:
    """Everything the executions and logs tables hold, as one text."""
    conn = sqlite3.connect(db)
    try:
        docs = [r[0] for r in conn.execute("SELECT doc FROM executions")]
        lines = [r[0] for r in conn.execute("SELECT message FROM logs")]
    finally:
        conn.close()
    return "\n".join(docs + lines)


def secrets_rows(db: Path) -> int:
    conn = sqlite3.connect(db)
    try:
        return int(conn.execute("SELECT COUNT(*) FROM execution_secrets").fetchone()[0])
    finally:
        conn.close()


async def test_a_secret_is_masked_everywhere_but_reaches_its_tasks(tmp_path: Path) -> None:
    data = tmp_path / "data"
    engine = await open_engine(data)
    try:
        await apply(engine, FLOW)
        created = await engine.create_execution("t.secret", "deploy",
                                                inputs={"token": SECRET})
        assert created.inputs == {"token": "******", "name": "app"}
        paused = await wait_for_state(engine, created.id, "PAUSED")
        assert paused.inputs["token"] == "******"
        assert secrets_rows(engine.store.db_path) == 1  # kept while the execution may run
    finally:
        await engine.close()
    # A restart of the engine: the paused execution resumes and still has its secret.
    engine = await open_engine(data)
    try:
        await wait_for_state(engine, created.id, "PAUSED")
        await engine.resume(created.id)
        final = await engine.wait_until_terminal(created.id, 15)
        assert final.state.current == "FAILED"  # the Fail task, on purpose
        messages = [e.message for e in await engine.logs.fetch(created.id)]
        assert "deploying app with ******" in messages
        assert "token=******" in messages
        assert str(len(SECRET)) in messages  # the task had the real value
        assert any(m == "task 'fail' failed: giving up on ******" for m in messages)
        by_task = {tr.task_id: tr for tr in final.task_runs}
        assert by_task["keep"].outputs == {"values": {
            "copy": "******", "json": '{"token":"******","name":"app"}'}}
        assert by_task["use"].outputs is not None
        assert by_task["use"].outputs["vars"] == {"echo": "******"}
        assert final.inputs["token"] == "******"
        await engine.store.flush()
        text = stored_text(engine.store.db_path)
        assert SECRET not in text and SECRET.replace('"', '\\"') not in text
        assert secrets_rows(engine.store.db_path) == 0  # deleted once it ended
        # Its clear value is gone: a restart cannot use it, a replay must be given it again.
        with pytest.raises(ConflictError, match="SECRET"):
            await engine.restart(created.id)
        with pytest.raises(InvalidInputsError, match=r"inputs\.token"):
            await engine.replay(created.id)
        again = await engine.replay(created.id, inputs={"token": "other-secret"})
        assert again.inputs["token"] == "******"
        await wait_for_state(engine, again.id, "PAUSED")
        await engine.kill(again.id)
        await engine.wait_until_terminal(again.id, 10)
        await engine.store.flush()
        assert secrets_rows(engine.store.db_path) == 0
    finally:
        await engine.close()


async def test_credential_headers_are_not_kept_in_trigger_data(engine: Engine) -> None:
    await apply(engine, """
        id: hook
        namespace: t.secret
        tasks:
          - id: say
            type: io.kestra.plugin.core.log.Log
            message: "{{ trigger.headers }}"
        """)
    execution = await engine.create_execution(
        "t.secret", "hook", source="trigger",
        trigger={"id": "webhook", "type": "io.kestra.plugin.core.trigger.Webhook",
                 "variables": {"body": {"a": 1}, "headers": {
                     "authorization": ["Bearer abc"], "Cookie": ["sid=1"],
                     "proxy-authorization": ["Basic eA=="], "x-request-id": ["r1"]}}})
    done = await engine.wait_until_terminal(execution.id, 10)
    assert done.trigger is not None
    assert done.trigger["variables"]["headers"] == {"x-request-id": ["r1"]}
    assert [e.message for e in await engine.logs.fetch(done.id)] == ['{"x-request-id":["r1"]}']
