"""FlowCtl workflows on the deck: an execution in namespace `flowctl` opens on its task details
(type, status, priority, dependencies, retries, payload, result or error, in the FlowCtl API's
words); `d` switches between them and the task tree, for any flow.

Snapshots at 120x40 and 80x24: a fixed ManualClock, deterministic ids, TZ=UTC, no toasts; the
workflow is submitted through the engine of the app's own backend and has finished (a task
retried once, a task failed, one never ran) before the screen is opened.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

import pytest
from textual.pilot import Pilot

from flowdeck.client.backend import Backend
from flowdeck.client.embedded import EmbeddedBackend
from flowdeck.core.clock import ManualClock
from flowdeck.core.flowctl import WorkflowView
from flowdeck.engine.engine import Engine
from flowdeck.tui.app import FlowdeckApp
from flowdeck.tui.screens.execution import ExecutionScreen
from flowdeck.tui.screens.executions import ExecutionsScreen
from tui.deck_flows import FAIL
from tui.deck_helpers import START, make_app, make_backend, screen_text, wait_for

SIZES = [(120, 40), (80, 24)]
WORKFLOW = {
    "name": "nightly-report", "description": "extract, check, publish",
    "config": {"max_concurrency": 2, "timeout": "10m",
               "retry_policy": {"initial_delay": "10ms", "max_delay": "20ms"}},
    "tasks": [
        {"name": "extract", "type": "generic", "priority": 5,
         "payload": {"command": "echo", "args": ["rows: 3"]}},
        {"name": "check", "type": "generic", "dependencies": ["extract"], "max_retries": 2,
         "payload": {"command": "test -f .tried || { touch .tried; exit 1; }; echo checked"}},
        {"name": "publish", "type": "generic", "dependencies": ["check"], "max_retries": 0,
         "payload": {"command": "echo cannot publish >&2; exit 4"}},
        {"name": "notify", "type": "generic", "dependencies": ["publish"],
         "payload": {"command": "echo done"}},
    ],
}
RUNS: dict[str, WorkflowView] = {}


async def submit(backend: Backend) -> WorkflowView:
    assert isinstance(backend, EmbeddedBackend)

    async def run(engine: Engine) -> WorkflowView:
        view = await engine.flowctl.submit(WORKFLOW, "tester")
        return await engine.flowctl.wait(view.id, 30)

    done: WorkflowView = await backend.engine_call(run)
    RUNS["workflow"] = done
    return done


def deck(tmp: Path) -> FlowdeckApp:
    clock = ManualClock(START)
    return FlowdeckApp(make_backend(tmp / "data", clock), clock=clock, user="tester",
                       save_dir=tmp, show_toasts=False, refresh_seconds=3600, startup=submit,
                       close_backend=True)


def painted(app: Any) -> bool:
    """The flow read and its details drawn, every log line in and the pane following them to
    the last one (also after the details shrank it), the header stamped."""
    screen = app.screen
    if not (isinstance(screen, ExecutionScreen) and screen.flow is not None
            and screen.execution is not None and screen.execution.state.current == "FAILED"
            and any("task 'publish' failed" in line for line in screen.log_view.lines_plain())):
        return False
    shown = screen_text(app)
    return ("updated 0s ago" in shown and "max concurrency 2  timeout 10m" in shown
            and "ERROR publish  task 'publish' failed" in shown)


async def go_workflow(pilot: Pilot[Any]) -> None:
    app: Any = pilot.app
    await wait_for(lambda: app.connection == "connected" and "workflow" in RUNS, timeout=30)
    await wait_for(lambda: isinstance(app.screen, ExecutionsScreen)
                   and app.screen.source.total == 1)
    app.push_screen(ExecutionScreen(RUNS["workflow"].execution_id))
    await wait_for(lambda: isinstance(app.screen, ExecutionScreen)
                   and app.screen.has_class("-details") and painted(app))


@pytest.mark.parametrize("size", SIZES, ids=lambda s: f"{s[0]}x{s[1]}")
def test_workflow_snapshot(snap_compare: Any, size: tuple[int, int]) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        assert snap_compare(deck(Path(tmp)), terminal_size=size, run_before=go_workflow)


async def test_the_details_speak_flowctl_and_d_switches(tmp_path: Path) -> None:
    clock = ManualClock(START)
    backend = make_backend(tmp_path / "data", clock)
    app = make_app(backend, clock, tmp_path, startup=submit, close_backend=True,
                   show_toasts=False)
    async with app.run_test(size=(120, 40)) as pilot:
        await go_workflow(pilot)
        screen: ExecutionScreen = app.screen  # type: ignore[assignment]
        text = screen_text(app)
        for expected in (
                "nightly-report", "max concurrency 2  timeout 10m",
                "extract", "priority 5  retries 0/3", "args=[\"rows: 3\"]",
                "result exit_code=0 output=rows: 3",
                "check", "retries 1/2", "depends on extract",
                "publish", "failed", "error command failed with exit code 4",
                "notify", "cancelled", "depends on publish"):
            assert expected in text, (expected, text)
        await pilot.press("d")  # the task tree, as for any flow
        await wait_for(lambda: not screen.has_class("-details")
                       and "workflow" in screen_text(app) and "2x" in screen_text(app))
        assert "priority 5" not in screen_text(app)
        await pilot.press("i", "d")  # from inputs/outputs, `d` goes to the details
        await wait_for(lambda: screen.has_class("-details") and not screen.has_class("-io"))


async def test_any_flow_has_details_too(tmp_path: Path) -> None:
    clock = ManualClock(START)
    backend = make_backend(tmp_path / "data", clock)
    await backend.connect()
    await backend.apply_flow(FAIL)
    execution = await backend.create_execution("team.alpha", "broken")
    app = make_app(backend, clock, tmp_path, close_backend=True, show_toasts=False)
    async with app.run_test(size=(120, 40)) as pilot:
        await wait_for(lambda: app.connection == "connected"
                       and isinstance(app.screen, ExecutionsScreen), timeout=20)
        app.push_screen(ExecutionScreen(execution.id))
        screen = await wait_for(lambda: isinstance(app.screen, ExecutionScreen) and app.screen)
        await wait_for(lambda: screen.flow is not None and screen.execution is not None
                       and screen.execution.state.current == "FAILED")
        assert not screen.has_class("-details")  # the tree: nothing describes itself here
        await pilot.press("d")
        await wait_for(lambda: "properties" in screen_text(app))
        text = screen_text(app)
        assert "boom" in text and "Fail" in text and "attempts 1" in text


async def test_over_http_the_same_details(tmp_path: Path) -> None:
    """A deck on a server: the flow's task definitions come through Kestra's flow API."""
    from flowdeck.client.backend import ExecutionFilter
    from flowdeck.client.flowctl import HttpFlowctl
    from tui.deck_helpers import remote_backend

    async with remote_backend(tmp_path / "data") as backend:
        flowctl = HttpFlowctl(backend, poll_interval=0.05)
        view = await flowctl.submit({"name": "remote", "tasks": [
            {"name": "hello", "type": "generic", "priority": 3,
             "payload": {"command": "echo over http"}}]}, "")
        await flowctl.wait(view.id, timeout=30)
        [execution] = (await backend.search_executions(
            ExecutionFilter(namespace="flowctl"))).results
        clock = ManualClock(START)
        app = make_app(backend, clock, tmp_path, show_toasts=False)
        async with app.run_test(size=(120, 40)):
            await wait_for(lambda: app.connection == "connected"
                           and isinstance(app.screen, ExecutionsScreen), timeout=20)
            app.push_screen(ExecutionScreen(execution.id))
            await wait_for(lambda: isinstance(app.screen, ExecutionScreen)
                           and app.screen.has_class("-details")
                           and "output=over http" in screen_text(app), timeout=20)
            text = screen_text(app)
            assert "remote" in text and "priority 3  retries 0/3" in text
