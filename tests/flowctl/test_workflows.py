"""Workflows on a real engine: the spec's example, retries, priority, cancel, views."""

from __future__ import annotations

import asyncio
import itertools
import os
import sqlite3
from datetime import datetime
from pathlib import Path
from typing import Any

import aiosqlite
import pytest

from flowctl.conftest import flowctl_extra
from flowctl.flowctl_helpers import generic, group_members, read_pid, run, until, workflow
from flowdeck.core.errors import BadRequestError, ConflictError, NotFoundError
from flowdeck.core.flowctl import WorkflowView
from flowdeck.core.timefmt import parse_instant
from flowdeck.engine.engine import Engine
from helpers import open_engine

#: The spec's example, exactly as its curl sends it.
SPEC_EXAMPLE = {
    "name": "Data Processing",
    "description": "Process daily data files",
    "tasks": [
        {"name": "extract_data", "type": "etl",
         "payload": {"source_url": "s3://bucket/data.csv",
                     "target_url": "postgres://db/staging"},
         "priority": 1},
        {"name": "validate_data", "type": "generic", "dependencies": ["extract_data"],
         "payload": {"command": "validate_schema"}, "priority": 2},
    ],
}


def at(text: str | None) -> datetime:
    assert text is not None
    return parse_instant(text)


async def test_the_spec_example_end_to_end(engine: Engine, files: Path, tmp_path: Path) -> None:
    (files / "bucket" / "data.csv").write_text("id,email\n1,ada@example.org\n2,bob@example.org\n")
    tools = tmp_path / "bin"
    tools.mkdir()
    script = tools / "validate_schema"
    script.write_text("#!/bin/sh\necho \"schema ok: $FLOWCTL_TASK_NAME\"\n")
    script.chmod(0o755)
    engine.task_env["PATH"] = f"{tools}:{engine.task_env.get('PATH', '/usr/bin:/bin')}"

    created = await engine.flowctl.submit(SPEC_EXAMPLE, "ops@example.org")
    assert created.status == "pending" and created.name == "Data Processing"
    assert created.description == "Process daily data files"
    assert [t.status for t in created.tasks] == ["pending", "pending"]
    assert all(t.started_at is None and t.completed_at is None for t in created.tasks)
    assert created.config["max_concurrency"] == 10 and created.config["timeout"] == "1h"

    done = await engine.flowctl.wait(created.id, 30)
    assert done.status == "completed", done.to_dict()
    extract, validate = done.tasks
    assert [t.id for t in done.tasks] == [t.id for t in created.tasks]  # stable ids
    assert extract.result == {"rows_read": 2, "rows_written": 2,
                              "source": f"file://{files}/bucket/data.csv",
                              "target": f"sqlite://{files}/db.sqlite#staging",
                              "format": "csv", "transformation": "none"}
    assert validate.result == {"exit_code": 0, "output": "schema ok: validate_data"}
    assert validate.dependencies == ["extract_data"] and validate.priority == 2
    assert at(validate.started_at) >= at(extract.completed_at)
    assert done.started_at and done.completed_at and done.submitted_by == "ops@example.org"
    with sqlite3.connect(files / "db.sqlite") as db:
        assert db.execute("SELECT id, email FROM staging ORDER BY id").fetchall() == [
            ("1", "ada@example.org"), ("2", "bob@example.org")]
    assert await engine.flowctl.task(validate.id) == validate
    body = done.to_dict()
    assert set(body) == {"id", "name", "description", "status", "tasks", "config",
                         "created_at", "updated_at", "started_at", "completed_at"}
    assert set(body["tasks"][0]) == {
        "id", "workflow_id", "name", "type", "status", "payload", "result", "error",
        "retry_count", "max_retries", "priority", "dependencies", "created_at",
        "updated_at", "started_at", "completed_at"}


async def test_a_failing_task_retries_with_backoff_then_fails(engine: Engine) -> None:
    done = await run(engine, workflow(
        generic("flaky", "echo attempt; exit 3", max_retries=2),
        generic("after", "true", dependencies=["flaky"]),
        retry_policy={"initial_delay": "50ms", "backoff_factor": 2.0, "max_delay": "1s"}))
    assert done.status == "failed"
    flaky, after = done.tasks
    assert (flaky.status, flaky.retry_count, flaky.max_retries) == ("failed", 2, 2)
    assert flaky.error == "command failed with exit code 3"
    assert flaky.result == {"exit_code": 3, "output": "attempt"}
    assert after.status == "cancelled" and after.started_at is None
    execution = await engine.get_execution(done.execution_id)
    [run_of_flaky] = [tr for tr in execution.task_runs if tr.task_id == "flaky"]
    starts = [a.state.histories[0].date for a in run_of_flaky.attempts]
    ends = [a.state.histories[-1].date for a in run_of_flaky.attempts]
    assert len(starts) == 3
    assert (starts[1] - ends[0]).total_seconds() >= 0.05  # initial_delay
    assert (starts[2] - ends[1]).total_seconds() >= 0.1  # times backoff_factor
    kinds = [e.kind for e in await engine.event_reader.after(0, source="flowctl")
             if e.payload["data"].get("task_name") == "flaky"]
    assert kinds == ["task.started", "task.retrying", "task.retrying", "task.failed"]


async def test_priority_decides_among_ready_tasks(engine: Engine) -> None:
    done = await run(engine, workflow(
        generic("low", "true", priority=1),
        generic("high", "true", priority=5),
        generic("mid-a", "true", priority=3),
        generic("mid-b", "true", priority=3),
        generic("urgent-after-high", "true", priority=10, dependencies=["high"]),
        max_concurrency=1))
    assert done.status == "completed"
    order = sorted(done.tasks, key=lambda t: at(t.started_at))
    assert [t.name for t in order] == ["high", "urgent-after-high", "mid-a", "mid-b", "low"]
    for before, after in itertools.pairwise(order):
        assert at(after.started_at) >= at(before.completed_at)  # one at a time


async def test_max_concurrency_bounds_running_tasks(engine: Engine) -> None:
    done = await run(engine, workflow(*(generic(f"t{i}", "sleep 0.2") for i in range(4)),
                                      max_concurrency=2))
    spans = [(at(t.started_at), at(t.completed_at)) for t in done.tasks]
    peak = max(sum(1 for s, e in spans if s <= moment < e) for moment, _ in spans)
    assert peak == 2


async def test_cancel_kills_the_process_group_and_cancels_unfinished_tasks(
        engine: Engine, tmp_path: Path) -> None:
    pidfile = tmp_path / "pid"
    view = await engine.flowctl.submit(workflow(
        generic("long", f"echo $$ > {pidfile}; sleep 60 & sleep 60; wait"),
        generic("next", "true", dependencies=["long"])), "tester")
    await until(lambda: read_pid(pidfile) is not None, what="the task never started")
    pgid = read_pid(pidfile)
    assert pgid is not None
    await until(lambda: len(group_members(pgid)) == 3, what="sh and two sleeps")
    cancelled = await engine.flowctl.cancel(view.id, "ops")
    assert cancelled.status == "cancelled"
    assert [t.status for t in cancelled.tasks] == ["cancelled", "cancelled"]
    assert cancelled.tasks[0].completed_at is not None
    assert cancelled.tasks[0].error == "the task was stopped before it finished"
    assert cancelled.tasks[1].error is None
    # SIGTERM then SIGKILL went to the whole group; the sleeps are gone within moments
    await until(lambda: group_members(pgid) == [], timeout=3, what="the group outlived it")
    with pytest.raises(ConflictError, match="Workflow is already cancelled"):
        await engine.flowctl.cancel(view.id, "ops")
    with pytest.raises(NotFoundError, match="Workflow not found"):
        await engine.flowctl.cancel("0190c6e0-0000-7000-8000-00000000dead", "ops")
    done = await run(engine, workflow(generic("quick", "true")))
    with pytest.raises(ConflictError, match="Workflow is already completed"):
        await engine.flowctl.cancel(done.id, "ops")
    kinds = [e.kind for e in await engine.event_reader.after(0, source="flowctl")
             if e.subject == view.id]
    assert kinds == ["workflow.created", "workflow.started", "workflow.cancelled"]


async def test_the_timeout_bounds_the_workflow(engine: Engine, tmp_path: Path) -> None:
    pidfile = tmp_path / "pid"
    done = await run(engine, workflow(generic("slow", f"echo $$ > {pidfile}; exec sleep 30"),
                                      timeout="500ms"))
    assert done.status == "failed"
    assert done.tasks[0].status == "failed"
    assert done.tasks[0].error == "workflow timed out after 500ms"
    pgid = read_pid(pidfile)
    assert pgid is not None
    await until(lambda: group_members(pgid) == [], timeout=3, what="the group outlived it")


async def test_views_lists_and_lookups(tmp_path: Path, files: Path) -> None:
    data = tmp_path / "data"
    engine = await open_engine(data, extra={"flowctl": flowctl_extra(files)})
    try:
        ids = []
        for i in range(3):
            view = await run(engine, workflow(generic("ok", "true"), name=f"w{i}"))
            ids.append(view.id)
        failed = await run(engine, workflow(generic("bad", "exit 1", max_retries=0),
                                            name="broken"))
        page = await engine.flowctl.list_workflows(page=1, limit=2)
        assert (page.total, page.total_pages, page.page, page.limit) == (4, 2, 1, 2)
        assert [w.id for w in page.workflows] == [failed.id, ids[2]]  # newest first
        second = await engine.flowctl.list_workflows(page=2, limit=2)
        assert [w.id for w in second.workflows] == [ids[1], ids[0]]
        assert (await engine.flowctl.list_workflows(page=3, limit=2)).workflows == []
        only_failed = await engine.flowctl.list_workflows(status="failed")
        assert [w.name for w in only_failed.workflows] == ["broken"]
        assert (await engine.flowctl.list_workflows(limit=500)).limit == 100
        body = page.to_dict()
        assert set(body) == {"workflows", "total", "page", "limit", "total_pages"}
        assert set(body["workflows"][0]) == {"id", "name", "description", "status", "tasks",
                                             "created_at", "updated_at"}
        for bad in ({"page": 0}, {"limit": 0}, {"status": "done"}):
            with pytest.raises(BadRequestError):
                await engine.flowctl.list_workflows(**bad)  # type: ignore[arg-type]
        for missing in ("nope", "\ud800", "0190c6e0-0000-7000-8000-00000000dead"):
            with pytest.raises(NotFoundError, match="Workflow not found"):
                await engine.flowctl.get(missing)
            with pytest.raises(NotFoundError, match="Task not found"):
                await engine.flowctl.task(missing)
        summaries = [t.summary() for t in await engine.flowctl.tasks(failed.id)]
        assert summaries[0]["status"] == "failed" and "payload" not in summaries[0]
    finally:
        await engine.close()
    engine = await open_engine(data, extra={"flowctl": flowctl_extra(files)})
    try:  # everything is durable: the same views after a restart
        again = await engine.flowctl.get(failed.id)
        assert again == failed
        assert await engine.flowctl.task(failed.tasks[0].id) == failed.tasks[0]
    finally:
        await engine.close()


async def test_a_task_cut_short_by_a_stop_fails_after_the_restart(tmp_path: Path,
                                                                   files: Path) -> None:
    """A generic task may have had side effects: recovery does not run it again."""
    data, pidfile = tmp_path / "data", tmp_path / "pid"
    extra = {"flowctl": flowctl_extra(files)}
    engine = await open_engine(data, extra=extra)
    try:
        view = await engine.flowctl.submit(workflow(
            generic("long", f"echo $$ > {pidfile}; exec sleep 30"),
            generic("next", "true", dependencies=["long"])), "t")
        await until(lambda: read_pid(pidfile) is not None)
    finally:
        await engine.close()
    pgid = read_pid(pidfile)
    assert pgid is not None
    await until(lambda: group_members(pgid) == [], timeout=3, what="the group outlived it")
    engine = await open_engine(data, extra=extra)
    try:
        final = await engine.flowctl.wait(view.id, 30)
    finally:
        await engine.close()
    assert final.status == "failed"
    assert [t.status for t in final.tasks] == ["failed", "cancelled"]
    assert final.tasks[0].error == "the task was stopped before it finished"


async def test_metrics_count_by_status_and_workers_are_slots(engine: Engine,
                                                             tmp_path: Path) -> None:
    await run(engine, workflow(generic("a", "true"), generic("b", "true")))
    await run(engine, workflow(generic("bad", "exit 1", max_retries=0),
                               generic("never", "true", dependencies=["bad"])))
    pidfile = tmp_path / "pid"
    running = await engine.flowctl.submit(workflow(
        generic("sleepy", f"echo $$ > {pidfile}; exec sleep 30"),
        generic("waits", "true", dependencies=["sleepy"])), "t")
    await until(lambda: read_pid(pidfile) is not None)
    metrics = await engine.flowctl.metrics()
    assert metrics.workflows == {"total": 3, "pending": 0, "running": 1, "completed": 1,
                                 "failed": 1, "cancelled": 0}
    assert metrics.tasks == {"total": 6, "pending": 1, "running": 1, "completed": 2,
                             "failed": 1, "retrying": 0, "cancelled": 1}
    limit = engine._launcher.global_slots.limit
    assert metrics.workers == {"active": 1, "idle": limit - 1}
    await engine.flowctl.cancel(running.id, "t")
    after = await engine.flowctl.metrics()
    assert after.workers == {"active": 0, "idle": limit}
    assert after.workflows["cancelled"] == 1 and after.tasks["cancelled"] == 3


async def test_health_needs_a_committed_write(engine: Engine) -> None:
    assert (await engine.flowctl.health()).status == "healthy"
    release = asyncio.Event()

    async def hold_the_writer(conn: aiosqlite.Connection) -> None:
        await release.wait()  # a write transaction that does not finish

    held = asyncio.create_task(engine.store.run(hold_the_writer))
    try:
        sick = await engine.flowctl.health(timeout=0.2)
        assert sick.status == "unhealthy" and "did not commit" in (sick.reason or "")
        assert sick.to_dict().keys() == {"status", "timestamp"}
    finally:
        release.set()
        await held
    assert (await engine.flowctl.health()).status == "healthy"


async def test_prometheus_text(engine: Engine) -> None:
    await run(engine, workflow(generic("a", "true")))
    text = await engine.flowctl.prometheus()
    assert text.endswith("\n")
    typed: set[str] = set()
    for line in text.splitlines():
        if line.startswith("# HELP "):
            continue
        if line.startswith("# TYPE "):
            _, _, name, kind = line.split(" ")
            assert kind in ("gauge", "counter") and name not in typed
            typed.add(name)
            continue
        name = line.split("{")[0].split(" ")[0]
        assert name in typed, line
        value = line.rsplit(" ", 1)[1]
        float(value)
    assert 'flowdeck_flowctl_workflows{status="completed"} 1' in text
    assert 'flowdeck_flowctl_tasks{status="completed"} 1' in text
    assert 'flowdeck_executions{state="SUCCESS"} 1' in text
    assert "flowdeck_store_commits_total " in text


async def test_workflow_ids_are_uuids_and_executions_are_visible(engine: Engine) -> None:
    view: WorkflowView = await run(engine, workflow(generic("a", "true")))
    execution = await engine.get_execution(view.execution_id)
    assert execution.namespace == "flowctl" and execution.flow_id == f"wf-{view.id}"
    assert dict(execution.labels)["flowctl.workflow_name"] == "test"
    assert os.path.isdir(engine.work_dir / execution.id)


async def test_a_large_definition_is_read_off_the_event_loop(
        engine: Engine, monkeypatch: pytest.MonkeyPatch) -> None:
    """1,000 tasks held the loop ~0.4 s while their definition was read and written out as a
    flow; a definition that large is handled in the parse pool, a small one inline."""
    import threading

    import flowdeck.engine.flowctl.service as service

    threads: list[tuple[str, bool]] = []
    for name in ("parse_definition", "flow_source"):
        real = getattr(service, name)

        def spy(*args: Any, _real: Any = real, _name: str = name) -> Any:
            threads.append((_name, threading.current_thread() is threading.main_thread()))
            return _real(*args)

        monkeypatch.setattr(service, name, spy)
    big = workflow(*(generic(f"t{i}", "true") for i in range(service.INLINE_TASKS + 1)),
                   name="big", max_concurrency=1)
    view = await engine.flowctl.submit(big, "tester")
    assert threads == [("parse_definition", False), ("flow_source", False)]
    await engine.flowctl.cancel(view.id, "tester")
    threads.clear()
    small = await run(engine, workflow(generic("one", "true")))
    assert threads == [("parse_definition", True), ("flow_source", True)]
    assert small.status == "completed"
