"""Retries, timeouts, allowFailure, errors/finally, kill, restart, replay and concurrency."""

from __future__ import annotations

import asyncio
import os
import signal
from pathlib import Path

import pytest

from flowdeck.core.errors import ConflictError
from flowdeck.engine.engine import Engine
from helpers import apply, run_flow, states, wait_for_state


async def test_retry_runs_exact_number_of_attempts(engine: Engine) -> None:
    await apply(engine, """
        id: retry
        namespace: t.fail
        tasks:
          - id: always-fails
            type: io.kestra.plugin.scripts.shell.Commands
            retry:
              type: constant
              interval: PT0.05S
              maxAttempts: 3
            commands: ["echo try; exit 3"]
        """)
    final = await run_flow(engine, "t.fail", "retry")
    assert final.state.current == "FAILED"
    tr = final.task_runs[0]
    assert len(tr.attempts) == 3
    assert [a.state.current for a in tr.attempts] == ["FAILED", "FAILED", "FAILED"]
    assert [h.state for h in tr.state.histories].count("RETRYING") == 2
    messages = [e.message for e in await engine.logs.fetch(final.id)]
    assert messages.count("try") == 3
    assert "task 'always-fails' failed: command failed with exit code 3" in messages


async def test_retry_stops_once_an_attempt_succeeds(engine: Engine, tmp_path: Path) -> None:
    marker = tmp_path / "count"
    await apply(engine, f"""
        id: flaky
        namespace: t.fail
        tasks:
          - id: flaky
            type: io.kestra.plugin.scripts.shell.Commands
            retry:
              type: exponential
              interval: PT0.02S
              maxInterval: PT0.1S
              maxAttempts: 5
            commands:
              - n=$(cat {marker} 2>/dev/null || echo 0); n=$((n+1)); echo $n > {marker}
              - test "$n" -ge 2
        """)
    final = await run_flow(engine, "t.fail", "flaky")
    assert final.state.current == "SUCCESS"
    assert [a.state.current for a in final.task_runs[0].attempts] == ["FAILED", "SUCCESS"]


async def test_timeout_kills_the_attempt(engine: Engine) -> None:
    await apply(engine, """
        id: slow
        namespace: t.fail
        tasks:
          - id: slow
            type: io.kestra.plugin.scripts.shell.Commands
            timeout: PT0.3S
            commands: ["sleep 20"]
        """)
    started = asyncio.get_running_loop().time()
    final = await run_flow(engine, "t.fail", "slow")
    assert asyncio.get_running_loop().time() - started < 5
    assert final.state.current == "FAILED"
    assert len(final.task_runs[0].attempts) == 1
    errors = [e.message for e in await engine.logs.fetch(final.id) if e.level == "ERROR"]
    assert errors == ["task 'slow' failed: timed out after PT0.3S"]


async def test_allow_failure_gives_warning_and_errors_finally_run(engine: Engine) -> None:
    await apply(engine, """
        id: handlers
        namespace: t.fail
        tasks:
          - id: soft
            type: io.kestra.plugin.core.execution.Fail
            allowFailure: true
          - id: hard
            type: io.kestra.plugin.core.execution.Fail
            errorMessage: "boom {{ flow.id }}"
          - id: never
            type: io.kestra.plugin.core.log.Log
            message: unreachable
        errors:
          - id: on-error
            type: io.kestra.plugin.core.log.Log
            message: handling
        finally:
          - id: always
            type: io.kestra.plugin.core.log.Log
            message: cleanup
        """)
    final = await run_flow(engine, "t.fail", "handlers")
    assert final.state.current == "FAILED"
    assert states(final) == {"soft": "WARNING", "hard": "FAILED", "on-error": "SUCCESS",
                             "always": "SUCCESS"}
    messages = [e.message for e in await engine.logs.fetch(final.id)]
    assert "task 'hard' failed: boom handlers" in messages
    assert messages[-2:] == ["handling", "cleanup"]


def _sleep_pids(marker: str) -> list[int]:
    pids = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode()
        except OSError:
            continue
        if cmdline.startswith("sleep ") and marker in cmdline:
            pids.append(int(entry.name))
    return pids


async def test_kill_stops_the_whole_process_group_quickly(engine: Engine) -> None:
    # A distinctive sleep argument to find our processes: unique to this test process, since
    # other runs of this suite on the same machine start the same commands.
    marker = f"30.{os.getpid()}"
    await apply(engine, f"""
        id: long
        namespace: t.kill
        tasks:
          - id: nap
            type: io.kestra.plugin.scripts.shell.Commands
            commands:
              - sleep {marker} &
              - sleep {marker}
        """)
    execution = await engine.create_execution("t.kill", "long")
    await wait_for_state(engine, execution.id, "RUNNING")
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 10
    while len(_sleep_pids(marker)) < 2 and loop.time() < deadline:
        await asyncio.sleep(0.02)
    assert len(_sleep_pids(marker)) == 2
    started = loop.time()
    killing = await engine.kill(execution.id)
    assert killing.state.current == "KILLING"
    final = await engine.wait_until_terminal(execution.id, timeout=10)
    # Far below the 30 s the sleeps would take (SIGTERM, at most one grace, SIGKILL), with
    # room for a loaded machine: the bound is about not waiting for the task, not speed.
    assert loop.time() - started < 5.0
    assert final.state.current == "KILLED"
    assert [h.state for h in final.state.histories][-2:] == ["KILLING", "KILLED"]
    assert final.task_runs[0].state.current == "KILLED"
    # SIGKILL is delivered at once but a process leaves /proc when it has been reaped, which
    # a loaded machine may do a moment after the run is KILLED.
    deadline = loop.time() + 5
    while _sleep_pids(marker) and loop.time() < deadline:
        await asyncio.sleep(0.02)
    assert _sleep_pids(marker) == []
    with pytest.raises(ConflictError):
        await engine.kill(execution.id)


async def test_restart_resumes_from_the_failed_task(engine: Engine, tmp_path: Path) -> None:
    gate = tmp_path / "gate"
    await apply(engine, f"""
        id: restartable
        namespace: t.restart
        tasks:
          - id: first
            type: io.kestra.plugin.core.log.Log
            message: first
          - id: gated
            type: io.kestra.plugin.scripts.shell.Commands
            commands: ["test -f {gate}"]
          - id: last
            type: io.kestra.plugin.core.log.Log
            message: last
        """)
    failed = await run_flow(engine, "t.restart", "restartable")
    assert states(failed) == {"first": "SUCCESS", "gated": "FAILED"}
    first_id = failed.task_runs[0].id
    gate.write_text("open")
    restarted = await engine.restart(failed.id)
    assert restarted.id == failed.id
    final = await engine.wait_until_terminal(failed.id, timeout=30)
    assert final.state.current == "SUCCESS"
    assert [h.state for h in final.state.histories] == [
        "CREATED", "RUNNING", "FAILED", "RESTARTED", "RUNNING", "SUCCESS"]
    assert final.attempt_number == 2
    by_id = {tr.task_id: tr for tr in final.task_runs}
    assert by_id["first"].id == first_id and len(by_id["first"].attempts) == 1
    assert [a.state.current for a in by_id["gated"].attempts] == ["FAILED", "SUCCESS"]
    assert "RESTARTED" in [h.state for h in by_id["gated"].state.histories]
    assert [e.message for e in await engine.logs.fetch(final.id)].count("first") == 1
    with pytest.raises(ConflictError):
        await engine.restart(final.id)


async def test_replay_from_a_task_creates_a_new_execution(engine: Engine) -> None:
    await apply(engine, """
        id: replayable
        namespace: t.replay
        tasks:
          - id: a
            type: io.kestra.plugin.core.debug.Return
            format: "a-{{ execution.id }}"
          - id: b
            type: io.kestra.plugin.core.debug.Return
            format: "b saw {{ outputs.a.value }}"
        """)
    original = await run_flow(engine, "t.replay", "replayable")
    task_b = original.task_runs[1]
    replay = await engine.replay(original.id, task_run_id=task_b.id)
    assert replay.id != original.id
    final = await engine.wait_until_terminal(replay.id, timeout=30)
    assert final.state.current == "SUCCESS"
    assert final.original_id == original.id
    a_run = final.task_runs[0]
    assert a_run.outputs == {"value": f"a-{original.id}"}  # copied, not re-run
    assert final.task_runs[1].outputs == {"value": f"b saw a-{original.id}"}
    logs = await engine.logs.fetch(final.id)
    assert logs == []
    full = await engine.replay(original.id)
    again = await engine.wait_until_terminal(full.id, timeout=30)
    assert again.task_runs[0].outputs == {"value": f"a-{full.id}"}


@pytest.mark.parametrize("behavior,expected", [("CANCEL", "CANCELLED"), ("FAIL", "FAILED")])
async def test_flow_concurrency_cancel_and_fail(engine: Engine, behavior: str,
                                                expected: str) -> None:
    await apply(engine, f"""
        id: single
        namespace: t.conc
        concurrency:
          limit: 1
          behavior: {behavior}
        tasks:
          - id: wait
            type: io.kestra.plugin.core.flow.Pause
        """)
    first = await engine.create_execution("t.conc", "single")
    await wait_for_state(engine, first.id, "PAUSED")
    second = await engine.create_execution("t.conc", "single")
    rejected = await engine.wait_until_terminal(second.id, timeout=10)
    assert rejected.state.current == expected
    assert rejected.task_runs == []
    await engine.resume(first.id)
    assert (await engine.wait_until_terminal(first.id, 10)).state.current == "SUCCESS"


async def test_flow_concurrency_queue_starts_in_order(engine: Engine) -> None:
    await apply(engine, """
        id: queued
        namespace: t.conc
        concurrency:
          limit: 1
        tasks:
          - id: wait
            type: io.kestra.plugin.core.flow.Pause
        """)
    ids = [(await engine.create_execution("t.conc", "queued")).id for _ in range(3)]
    await wait_for_state(engine, ids[0], "PAUSED")
    await wait_for_state(engine, ids[1], "QUEUED")
    await wait_for_state(engine, ids[2], "QUEUED")
    for position, execution_id in enumerate(ids):
        await wait_for_state(engine, execution_id, "PAUSED")
        for later in ids[position + 1:]:
            assert (await engine.get_execution(later)).state.current == "QUEUED"
        await engine.resume(execution_id)
        final = await engine.wait_until_terminal(execution_id, 10)
        assert final.state.current == "SUCCESS"
    queued = await engine.get_execution(ids[2])
    assert [h.state for h in queued.state.histories] == [
        "CREATED", "QUEUED", "RUNNING", "PAUSED", "RUNNING", "SUCCESS"]


async def test_global_limit_bounds_running_executions(tmp_path: Path) -> None:
    from helpers import open_engine

    eng = await open_engine(tmp_path / "d", max_concurrent_executions=2)
    try:
        await apply(eng, """
            id: nap
            namespace: t.conc
            tasks:
              - id: nap
                type: io.kestra.plugin.core.flow.Sleep
                duration: PT0.2S
            """)
        created = [await eng.create_execution("t.conc", "nap") for _ in range(5)]
        finals = [await eng.wait_until_terminal(c.id, 30) for c in created]
        assert [f.state.current for f in finals] == ["SUCCESS"] * 5
        # From the durable histories: how many executions were RUNNING at the same time.
        edges = []
        for f in finals:
            running = [h.date for h in f.state.histories if h.state == "RUNNING"]
            edges += [(running[0], 1), (f.state.histories[-1].date, -1)]
        level = peak = 0
        for _, step in sorted(edges, key=lambda e: (e[0], e[1])):
            level += step
            peak = max(peak, level)
        assert peak == 2
    finally:
        await eng.close()


async def test_process_killed_by_signal_reports_it(engine: Engine) -> None:
    await apply(engine, """
        id: selfkill
        namespace: t.fail
        tasks:
          - id: die
            type: io.kestra.plugin.scripts.shell.Commands
            interpreter: ["/bin/sh", "-c"]
            commands: ["kill -9 $$"]
        """)
    final = await run_flow(engine, "t.fail", "selfkill")
    assert final.state.current == "FAILED"
    errors = [e.message for e in await engine.logs.fetch(final.id) if e.level == "ERROR"]
    assert errors == [f"task 'die' failed: command was killed by signal {int(signal.SIGKILL)}"]


async def test_random_retry_and_max_duration_bound_the_attempts(engine: Engine) -> None:
    await apply(engine, """
        id: bounded
        namespace: t.fail
        tasks:
          - id: random
            type: io.kestra.plugin.core.execution.Fail
            allowFailure: true
            retry:
              type: random
              minInterval: PT0.01S
              maxInterval: PT0.03S
              maxAttempts: 4
          - id: by-duration
            type: io.kestra.plugin.core.execution.Fail
            retry:
              type: constant
              interval: PT0.2S
              maxDuration: PT0.5S
        """)
    final = await run_flow(engine, "t.fail", "bounded")
    by_id = {tr.task_id: tr for tr in final.task_runs}
    assert by_id["random"].state.current == "WARNING"
    assert len(by_id["random"].attempts) == 4
    # 0.2 s apart within 0.5 s: the first try and two retries fit, a third would exceed it
    assert len(by_id["by-duration"].attempts) == 3
    gaps = [(b.state.start_date - a.state.start_date).total_seconds()
            for a, b in zip(by_id["random"].attempts, by_id["random"].attempts[1:], strict=False)]
    assert all(0.01 <= gap < 1.0 for gap in gaps)
    assert final.state.current == "FAILED"
