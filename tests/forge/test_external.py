"""External workers: a `flowdeck.pipeline.External` task waits for a worker's task and step
status reports; engine-run tasks refuse them; a restart keeps what was reported."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from flowdeck.core.errors import ConflictError, NotFoundError, ValidationError
from flowdeck.core.forge import PipelineRun
from flowdeck.engine.engine import Engine
from forge.conftest import SHA, install, open_forge
from helpers import wait_for_state

PIPELINE = """
    id: shop
    namespace: pipelines.acme
    tasks:
      - id: discover
        type: io.kestra.plugin.core.log.Log
        message: found api
      - id: ci
        type: io.kestra.plugin.core.flow.Parallel
        tasks:
          - id: api
            type: flowdeck.pipeline.External
            worker: earthly
            steps: [build, test]
          - id: lint
            type: io.kestra.plugin.core.log.Log
            message: linted
    """


async def waiting_run(engine: Engine) -> PipelineRun:
    await install(engine, PIPELINE)
    created = await engine.forge.create_run("acme/shop", "main", SHA, "bob", "push", by="bob")
    async with asyncio.timeout(10):
        while True:
            lines = [e.message for e in await engine.logs.fetch(created.id)]
            if any(line.startswith("waiting for a worker (earthly)") for line in lines):
                return await engine.forge.get_run(created.id)
            await wait_for_state(engine, created.id, "RUNNING")
            await asyncio.sleep(0.02)


async def test_a_worker_reports_steps_and_the_task(engine: Engine) -> None:
    run = await waiting_run(engine)
    api = run.phases[1].tasks[0]
    assert (api.project_name, api.status, api.external) == ("api", "pending", True)
    build, test = api.steps
    assert [(s.name, s.status) for s in api.steps] == [("build", "pending"), ("test", "pending")]
    step = await engine.forge.update_step_status(build.id, "running")
    assert step.status == "running"
    assert (await engine.forge.get_run(run.id)).phases[1].tasks[0].status == "running"
    step = await engine.forge.update_step_status(build.id, "success", 0,
                                                 "pipeline-runs/x/logs/ci/api/build.log")
    assert (step.status, step.exit_code, step.logs_s3_key) == (
        "success", 0, "pipeline-runs/x/logs/ci/api/build.log")
    step = await engine.forge.update_step_status(test.id, "failed", 2, "k/test.log")
    task = await engine.forge.update_task_status(api.id, "failed", "2 tests failed")
    assert (task.status, task.error) == ("failed", "2 tests failed")
    execution = await engine.wait_until_terminal(run.id, 10)
    assert execution.state.current == "FAILED"
    final = await engine.forge.get_run(run.id)
    api = final.phases[1].tasks[0]
    assert [(s.status, s.exit_code, s.logs_s3_key) for s in api.steps] == [
        ("success", 0, "pipeline-runs/x/logs/ci/api/build.log"), ("failed", 2, "k/test.log")]
    assert final.status == "failed" and final.phases[1].status == "failed"
    logs = await engine.forge.step_logs(run.id, build.id)
    assert "[build] success (exit code 0, logs at pipeline-runs/x/logs/ci/api/build.log)" in logs
    assert "[test]" not in logs
    [failed] = await engine.event_reader.after(0, source="forge", kinds=["pipeline.run.failed"])
    assert failed.payload["data"]["failed_phase"] == "ci"
    assert failed.payload["data"]["error_message"] == "2 tests failed"
    with pytest.raises(ConflictError):
        await engine.forge.update_task_status(api.id, "success")


async def test_success_finishes_the_run(engine: Engine) -> None:
    run = await waiting_run(engine)
    api = run.phases[1].tasks[0]
    await engine.forge.update_task_status(api.id, "running")
    for step in api.steps:
        await engine.forge.update_step_status(step.id, "success", 0)
    task = await engine.forge.update_task_status(api.id, "success")
    assert task.status == "success"
    assert (await engine.wait_until_terminal(run.id, 10)).state.current == "SUCCESS"
    assert (await engine.forge.get_run(run.id)).status == "success"
    with pytest.raises(ConflictError, match="already success"):
        await engine.forge.update_step_status(api.steps[0].id, "running")


async def test_engine_run_tasks_and_unknown_ids_refuse_reports(engine: Engine) -> None:
    run = await waiting_run(engine)
    discover, lint = run.phases[0].tasks[0], run.phases[1].tasks[1]
    for task_id in (discover.id, lint.id):
        with pytest.raises(ConflictError, match="run by the engine"):
            await engine.forge.update_task_status(task_id, "success")
    with pytest.raises(ConflictError, match="run by the engine"):
        await engine.forge.update_step_status(discover.steps[0].id, "success", 0)
    with pytest.raises(NotFoundError):
        await engine.forge.update_task_status("00000000-0000-5000-8000-000000000000", "running")
    with pytest.raises(NotFoundError):  # a step id is not a task id
        await engine.forge.update_task_status(run.phases[1].tasks[0].steps[0].id, "running")
    with pytest.raises(ValidationError):
        await engine.forge.update_task_status(run.phases[1].tasks[0].id, "pending")
    with pytest.raises(ValidationError):
        await engine.forge.update_step_status(run.phases[1].tasks[0].steps[0].id, "success",
                                              2**40)
    await engine.forge.cancel_run(run.id)
    with pytest.raises(ConflictError, match="already cancelled"):
        await engine.forge.update_task_status(run.phases[1].tasks[0].id, "success")


async def test_reports_survive_a_restart(tmp_path: Path) -> None:
    engine = await open_forge(tmp_path / "data")
    try:
        run = await waiting_run(engine)
        api = run.phases[1].tasks[0]
        await engine.forge.update_step_status(api.steps[0].id, "success", 0)
    finally:
        await engine.close()
    engine = await open_forge(tmp_path / "data")
    try:
        await wait_for_state(engine, run.id, "RUNNING")
        resumed = await engine.forge.get_run(run.id)
        assert resumed.phases[1].tasks[0].steps[0].status == "success"
        await engine.forge.update_task_status(api.id, "success")
        assert (await engine.wait_until_terminal(run.id, 10)).state.current == "SUCCESS"
    finally:
        await engine.close()


async def test_a_worker_that_never_reports_times_out(engine: Engine) -> None:
    await install(engine, """
        id: shop
        namespace: pipelines.acme
        tasks:
          - id: build
            type: flowdeck.pipeline.External
            timeout: PT0.3S
        """)
    created = await engine.forge.create_run("acme/shop", "main", SHA, "bob", "push", by="bob")
    assert (await engine.wait_until_terminal(created.id, 10)).state.current == "FAILED"
    run = await engine.forge.get_run(created.id)
    task = run.phases[0].tasks[0]
    # the phase's own timeout (the task is a phase) stopped the wait
    assert task.status == "failed" and "timed out after PT0.3S" in (task.error or "")
    with pytest.raises(ConflictError):
        await engine.forge.update_task_status(task.id, "success")


async def test_a_worker_that_never_reports_inside_a_phase_times_out(engine: Engine) -> None:
    await install(engine, """
        id: shop
        namespace: pipelines.acme
        tasks:
          - id: build
            type: io.kestra.plugin.core.flow.Parallel
            tasks:
              - id: api
                type: flowdeck.pipeline.External
                timeout: PT0.3S
        """)
    created = await engine.forge.create_run("acme/shop", "main", SHA, "bob", "push", by="bob")
    assert (await engine.wait_until_terminal(created.id, 10)).state.current == "FAILED"
    task = (await engine.forge.get_run(created.id)).phases[0].tasks[0]
    assert task.status == "failed"
    assert task.error == "no worker finished the task within PT0.3S"


async def test_external_tasks_must_be_phases_or_their_tasks(engine: Engine) -> None:
    await install(engine, """
        id: shop
        namespace: pipelines.acme
        tasks:
          - id: outer
            type: io.kestra.plugin.core.flow.Sequential
            tasks:
              - id: inner
                type: io.kestra.plugin.core.flow.Sequential
                tasks:
                  - id: deep
                    type: flowdeck.pipeline.External
        """)
    with pytest.raises(ValidationError, match="'deep'"):
        await engine.forge.create_run("acme/shop", "main", SHA, "bob", "push", by="bob")
