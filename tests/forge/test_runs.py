"""Pipeline runs on a real engine: phases from the flow, steps from attempts, spec statuses,
listing, cancel mid-phase, step logs, timeouts, the per-repository limit and the events."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import pytest

from flowdeck.core.errors import ConflictError, NotFoundError, ValidationError
from flowdeck.core.forge import example_pipeline_sources
from flowdeck.engine.engine import Engine
from flowdeck.engine.forge.timeouts import phase_kind
from forge.conftest import SHA, install, open_forge
from helpers import wait_for_state

PIPELINE = """
    id: shop
    namespace: pipelines.acme
    inputs:
      - id: branch
        type: STRING
    tasks:
      - id: discover
        type: io.kestra.plugin.core.log.Log
        message: "discovering {{ trigger.commit_sha }} on {{ inputs.branch }}"
      - id: build
        type: io.kestra.plugin.core.flow.Parallel
        tasks:
          - id: api
            type: io.kestra.plugin.scripts.shell.Commands
            commands: ["echo api built"]
          - id: web
            type: io.kestra.plugin.scripts.shell.Commands
            commands: ["echo web built"]
      - id: release
        type: io.kestra.plugin.core.flow.Sequential
        tasks:
          - id: flaky
            type: io.kestra.plugin.scripts.shell.Commands
            commands: ["test -f marker || { touch marker; exit 3; }"]
            retry: {type: constant, interval: PT0.01S, maxAttempts: 2}
      - id: skipped-one
        type: io.kestra.plugin.core.log.Log
        message: never
        disabled: true
    """


async def test_a_run_is_an_execution_seen_as_phases(engine: Engine) -> None:
    await install(engine, PIPELINE)
    created = await engine.forge.create_run("acme/shop", "main", SHA, "alice@company.com",
                                            "push", by="ci-token")
    assert created.status == "pending" and created.started_at.endswith("Z")
    assert [(p.name, p.group_number, p.status) for p in created.phases] == [
        ("discover", 1, "pending"), ("build", 2, "pending"), ("release", 3, "pending")]
    execution = await engine.wait_until_terminal(created.id, 30)
    assert execution.label("forge.commit_sha") == SHA
    assert execution.inputs == {"branch": "main"}
    run = await engine.forge.get_run(created.id)
    assert (run.repository, run.branch, run.commit_sha, run.triggered_by, run.trigger_type) == (
        "acme/shop", "main", SHA, "alice@company.com", "push")
    assert run.completed_at is not None
    discover, build, release = run.phases
    assert discover.tasks[0].project_name == "discover"
    assert [t.project_name for t in build.tasks] == ["api", "web"]
    assert [t.project_name for t in release.tasks] == ["flaky"]
    # the retried task: two attempts are two steps, the first failed with its exit code
    steps = release.tasks[0].steps
    assert [(s.name, s.status, s.exit_code) for s in steps] == [
        ("attempt 1", "failed", 3), ("attempt 2", "success", 0)]
    assert all(s.logs_url == f"/v1/runs/{run.id}/steps/{s.id}/logs" for s in steps)
    # ids are stable and unique
    again = await engine.forge.get_run(created.id)
    assert again == run
    ids = [p.id for p in run.phases] + [t.id for p in run.phases for t in p.tasks] + [
        s.id for p in run.phases for t in p.tasks for s in t.steps]
    assert len(ids) == len(set(ids)) and created.phases[1].tasks[0].id == build.tasks[0].id
    logs = await engine.forge.step_logs(run.id, steps[0].id)
    assert "ERROR task 'flaky' failed: command failed with exit code 3" in logs
    assert "attempt" not in await engine.forge.step_logs(run.id, build.tasks[0].steps[0].id)
    assert "api built" in await engine.forge.step_logs(run.id, build.tasks[0].steps[0].id)
    first = await engine.forge.step_logs(run.id, discover.tasks[0].steps[0].id)
    assert f"discovering {SHA} on main" in first
    with pytest.raises(NotFoundError):
        await engine.forge.step_logs(run.id, run.id)


async def test_failed_run_skips_later_phases_and_reports_the_phase(engine: Engine) -> None:
    await install(engine, """
        id: shop
        namespace: pipelines.acme
        tasks:
          - id: build
            type: io.kestra.plugin.scripts.shell.Commands
            commands: ["echo compiling", "exit 7"]
          - id: deploy
            type: io.kestra.plugin.core.log.Log
            message: never
        """)
    created = await engine.forge.create_run("acme/shop", "main", SHA, "bob", "manual", by="bob")
    await engine.wait_until_terminal(created.id, 30)
    run = await engine.forge.get_run(created.id)
    assert run.status == "failed"
    assert [(p.name, p.status) for p in run.phases] == [("build", "failed"),
                                                          ("deploy", "skipped")]
    assert run.phases[0].tasks[0].steps[0].exit_code == 7
    events = await engine.event_reader.after(0, source="forge")
    kinds = [e.kind for e in events]
    assert kinds == ["pipeline.run.created", "pipeline.run.completed", "pipeline.run.failed"]
    created_event, completed, failed = events
    assert created_event.payload == {
        "event_type": "pipeline.run.created", "timestamp": run.started_at,
        "data": {"run_id": run.id, "repository": "acme/shop", "branch": "main",
                 "commit_sha": SHA, "triggered_by": "bob"}}
    assert completed.payload["data"]["status"] == "failed"
    assert set(completed.payload["data"]) == {"run_id", "repository", "commit_sha", "status",
                                              "duration_seconds"}
    assert failed.payload["data"] == {"run_id": run.id, "repository": "acme/shop",
                                      "commit_sha": SHA, "failed_phase": "build",
                                      "error_message": "task 'build' failed"}


async def test_cancel_mid_phase(engine: Engine) -> None:
    await install(engine, """
        id: shop
        namespace: pipelines.acme
        tasks:
          - id: build
            type: io.kestra.plugin.core.log.Log
            message: built
          - id: test
            type: io.kestra.plugin.core.flow.Parallel
            tasks:
              - id: slow
                type: io.kestra.plugin.scripts.shell.Commands
                commands: ["echo started", "sleep 30"]
          - id: publish
            type: io.kestra.plugin.core.log.Log
            message: never
        """)
    created = await engine.forge.create_run("acme/shop", "main", SHA, "bob", "push", by="bob")
    async with asyncio.timeout(20):
        while (await engine.forge.get_run(created.id)).phases[1].status != "running":
            await wait_for_state(engine, created.id, "RUNNING")
            await asyncio.sleep(0.02)
    run = await engine.forge.cancel_run(created.id)
    assert run.status == "cancelled"
    assert [p.status for p in run.phases] == ["success", "failed", "skipped"]
    assert run.phases[1].tasks[0].status == "failed"
    with pytest.raises(ConflictError, match="already cancelled"):
        await engine.forge.cancel_run(created.id)
    kinds = [e.payload["data"].get("status") for e in
             await engine.event_reader.after(0, source="forge", kinds=["pipeline.run.completed"])]
    assert kinds == ["cancelled"]


async def test_listing_by_repository_and_branch(engine: Engine) -> None:
    await install(engine, PIPELINE.replace("retry: {type: constant, interval: PT0.01S, "
                                           "maxAttempts: 2}", "allowFailure: true"))
    ids = []
    for i, branch in enumerate(["main", "dev", "main"]):
        run = await engine.forge.create_run("acme/shop", branch, f"{i:07x}", "bob", "push",
                                            by="bob")
        ids.append(run.id)
    page = await engine.forge.list_runs("acme/shop", limit=2)
    assert page.total == 3 and [r.id for r in page.items] == ids[::-1][:2]
    assert (await engine.forge.list_runs("acme/shop", limit=2, offset=2)).items[0].id == ids[0]
    mains = await engine.forge.list_runs("acme/shop", branch="main")
    assert mains.total == 2 and {r.branch for r in mains.items} == {"main"}
    assert (await engine.forge.list_runs("acme/other")).total == 0
    for run_id in ids:
        await engine.wait_until_terminal(run_id, 30)


@pytest.mark.parametrize(("field", "args"), [
    ("repository", ("acme", "main", SHA, "bob", "push")),
    ("repository", ("acme/../x", "main", SHA, "bob", "push")),
    ("repository", ("a.b/shop", "main", SHA, "bob", "push")),
    ("branch", ("acme/shop", "a..b", SHA, "bob", "push")),
    ("commit_sha", ("acme/shop", "main", "xyz", "bob", "push")),
    ("triggered_by", ("acme/shop", "main", SHA, "\ud800", "push")),
    ("triggered_by", ("acme/shop", "main", SHA, "a\x1b[31m", "push")),
    ("trigger_type", ("acme/shop", "main", SHA, "bob", "cron")),
])
async def test_hostile_run_requests_are_refused(engine: Engine, field: str,
                                                args: tuple[str, ...]) -> None:
    with pytest.raises(ValidationError) as caught:
        await engine.forge.create_run(*args, by="bob")
    assert caught.value.problems[0][0] == field
    with pytest.raises(ValidationError):
        await engine.forge.list_runs("acme/shop", limit=10**30)


async def test_missing_pipeline_names_the_flow_to_create(engine: Engine) -> None:
    with pytest.raises(NotFoundError, match=r"create the flow 'shop' in namespace "
                                            r"'pipelines\.acme'"):
        await engine.forge.create_run("acme/shop", "main", SHA, "bob", "push", by="bob")
    with pytest.raises(NotFoundError):
        await engine.forge.get_run("00000000-0000-7000-8000-000000000000")


async def test_phase_timeouts_default_by_kind_and_bound_a_block(engine: Engine) -> None:
    assert phase_kind("discover-projects") == ("discovery", timedelta(minutes=10))
    assert phase_kind("build")[1] == timedelta(minutes=30)
    assert phase_kind("artifacts")[1] == timedelta(minutes=20)
    assert phase_kind("release")[1] == timedelta(minutes=15)
    assert phase_kind("deploy-prod")[1] == timedelta(minutes=10)
    await install(engine, """
        id: shop
        namespace: pipelines.acme
        tasks:
          - id: discover
            type: io.kestra.plugin.core.log.Log
            message: ok
          - id: build
            type: io.kestra.plugin.core.flow.Sequential
            timeout: PT0.5S
            tasks:
              - id: compile
                type: io.kestra.plugin.scripts.shell.Commands
                commands: ["sleep 30"]
          - id: release
            type: io.kestra.plugin.core.log.Log
            message: never
        """)
    created = await engine.forge.create_run("acme/shop", "main", SHA, "bob", "push", by="bob")
    assert [p.timeout_seconds for p in created.phases] == [600, 0.5, 900]
    execution = await engine.wait_until_terminal(created.id, 20)
    assert execution.state.current == "FAILED"
    run = await engine.forge.get_run(created.id)
    assert [p.status for p in run.phases] == ["success", "failed", "skipped"]
    assert run.phases[1].tasks[0].status == "failed"
    lines = [e.message for e in await engine.logs.fetch(created.id) if e.level == "ERROR"]
    assert "task 'build' failed: timed out after PT0.5S" in lines


async def test_runs_of_one_repository_queue_beyond_the_limit(tmp_path: object) -> None:
    from pathlib import Path

    engine = await open_forge(Path(str(tmp_path)) / "data", max_runs_per_repository=2)
    try:
        await install(engine, """
            id: shop
            namespace: pipelines.acme
            tasks:
              - id: work
                type: flowdeck.pipeline.External
            """)
        runs = [await engine.forge.create_run("acme/shop", "main", f"{i:07x}", "bob", "push",
                                              by="bob") for i in range(3)]
        await wait_for_state(engine, runs[2].id, "QUEUED")
        for run in runs[:2]:
            await wait_for_state(engine, run.id, "RUNNING")
        assert (await engine.forge.get_run(runs[2].id)).status == "pending"
        first = await engine.forge.get_run(runs[0].id)
        await engine.forge.update_task_status(first.phases[0].tasks[0].id, "success")
        await engine.wait_until_terminal(runs[0].id, 10)
        await wait_for_state(engine, runs[2].id, "RUNNING")
        for run in runs[1:]:
            await engine.forge.cancel_run(run.id)
    finally:
        await engine.close()


async def test_the_bundled_example_pipeline_runs(engine: Engine) -> None:
    for source in example_pipeline_sources():
        await engine.apply_flow(source)
    created = await engine.forge.create_run("example/shop", "main", SHA, "demo", "manual",
                                            by="demo")
    await engine.wait_until_terminal(created.id, 30)
    run = await engine.forge.get_run(created.id)
    assert run.status == "success"
    assert [p.name for p in run.phases] == ["discover", "ci", "artifacts", "release"]
    assert all(p.status == "success" for p in run.phases)
