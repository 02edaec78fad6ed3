"""The `:st` staging screen over a real engine: list, clone with live progress, typed-name
delete, the engine's delete guard, refresh on change, read-only, errors and untrusted text.

Every environment is made by the bundled staging flows on the local provider (a directory per
environment under the test's data dir), through `StagingClient` or through the screen itself.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from textual.message import Message
from textual.widgets import Button, Checkbox, Input

from flowdeck.client.backend import Backend, ExecutionFilter
from flowdeck.client.embedded import EmbeddedBackend
from flowdeck.client.staging import (
    CLONE_FLOW,
    DELETE_FLOW,
    LIST_FLOW,
    NAMESPACE,
    StagingClient,
)
from flowdeck.core.clock import ManualClock
from flowdeck.core.ids import DeterministicIds
from flowdeck.core.states import is_terminal
from flowdeck.engine.engine import EngineSettings
from flowdeck.tui.app import FlowdeckApp
from flowdeck.tui.screens.execution import ExecutionScreen
from flowdeck.tui.screens.help import HelpScreen
from flowdeck.tui.screens.staging import (
    OperationStarted,
    OperationUpdate,
    StagingScreen,
)
from flowdeck.tui.widgets.staging_forms import CloneFormScreen, TypedNameConfirm
from tui.deck_helpers import make_app, remote_backend, screen_text, wait_for

#: The refusal every look-alike gets from the engine's guard (engine/staging/base.py).
REFUSAL = "refusing to delete"
LOOK_ALIKES = ["Staging-x", " staging-x", "staging-x ", "staging-x\n", "prod-staging-x",
               "staging-x/../prod", "\uff53taging-x"]


def staging_backend(tmp_path: Path, clock: ManualClock, *,
                    url_template: str | None = None) -> EmbeddedBackend:
    staging: dict[str, Any] = {"url_template": url_template} if url_template else {}
    settings = EngineSettings(data_dir=tmp_path / "data", scheduler=False, envs={},
                              extra={"staging": staging})
    return EmbeddedBackend(settings, clock=clock, ids=DeterministicIds())


@pytest.fixture
async def staged(tmp_path: Path, clock: ManualClock) -> AsyncIterator[EmbeddedBackend]:
    backend = staging_backend(tmp_path, clock)
    await backend.connect()
    try:
        yield backend
    finally:
        await backend.close()


async def clone(backend: Backend, client: str, name: str | None = None,
                **kwargs: Any) -> dict[str, Any]:
    staging = StagingClient(backend, await backend.connect())
    return await staging.clone(client, environment_name=name, timeout=30, **kwargs)


async def names(backend: Backend) -> list[str]:
    staging = StagingClient(backend, await backend.connect())
    return [env.name for env in await staging.list(timeout=30)]


async def open_staging(app: FlowdeckApp, pilot: Any, rows: int) -> StagingScreen:
    await wait_for(lambda: app.connection == "connected")
    await pilot.press("colon")
    await wait_for(lambda: type(app.screen).__name__ == "CommandPrompt")
    await pilot.press("s", "t", "enter")
    screen: StagingScreen = await wait_for(
        lambda: isinstance(app.screen, StagingScreen) and app.screen)
    await wait_for(lambda: screen.loaded and not screen.busy
                   and screen.source.row_count() == rows,
                   message=f"{rows} environments listed")
    return screen


def panel_text(screen: StagingScreen) -> str:
    return "\n".join(str(screen.query_one(f"#{part}").render())
                     for part in ("op-head", "op-tasks"))


def toasts(app: FlowdeckApp) -> list[str]:
    return [str(n.message) for n in app._notifications]


async def toasted(app: FlowdeckApp, text: str) -> None:
    """A notification containing `text` (notify posts a message: it lands a moment later)."""
    await wait_for(lambda: any(text in t for t in toasts(app)), message=f"toast {text!r}")


async def finished(screen: StagingScreen) -> Any:
    return await wait_for(lambda: screen.operation is not None and screen.operation.finished
                          and screen.operation, message="the run finished")


async def list_runs(backend: Backend) -> int:
    page = await backend.search_executions(ExecutionFilter(namespace=NAMESPACE,
                                                           flow_id=LIST_FLOW, size=500))
    return page.total


# ---- listing ------------------------------------------------------------------------------


async def test_st_lists_environments_newest_first_and_filters(
        staged: EmbeddedBackend, clock: ManualClock, tmp_path: Path) -> None:
    await clone(staged, "acme-corp", "staging-acme")
    clock.advance(timedelta(minutes=90))
    await clone(staged, "beta", "staging-beta", skip_database=True)
    clock.advance(timedelta(minutes=5))
    app = make_app(staged, clock, tmp_path)
    async with app.run_test(size=(120, 40)) as pilot:
        screen = await open_staging(app, pilot, 2)
        assert [screen.source.row_key(i) for i in range(2)] == ["staging-beta", "staging-acme"]
        text = screen_text(app)
        for column in ("NAME", "CLIENT", "SOURCE", "URL", "AGE", "STATUS"):
            assert column in text
        beta = next(line for line in text.splitlines() if "staging-beta " in line)
        acme = next(line for line in text.splitlines() if "staging-acme " in line)
        assert text.index(beta) < text.index(acme)  # newest first
        assert "beta" in beta and "production" in beta and "active" in beta
        assert "http://staging-beta.staging.localhost" in beta and " 5m " in beta
        assert "acme-corp" in acme and "http://staging-acme.staging.localhost" in acme
        assert " 1h " in acme
        assert "Staging environments (2, newest first)" in text
        # the cursor row's details line (full URL, created, id)
        assert "created 2026-01-01T13:30:00Z" in text

        await pilot.press("slash", *"acme")
        await wait_for(lambda: screen.source.row_count() == 1)
        assert screen.source.row_key(0) == "staging-acme"
        assert "filter: acme" in screen_text(app)
        await pilot.press("enter", "escape")
        await wait_for(lambda: screen.source.row_count() == 2 and not screen.filter_text)
        # while a list runs the screen says so (synchronously, before the worker answers)
        screen.reload()
        assert screen.loading
        assert "loading…" in str(screen.query_one("#message").render())
        await wait_for(lambda: not screen.loading)
        assert screen.problem is None


async def test_empty_state(staged: EmbeddedBackend, clock: ManualClock,
                           tmp_path: Path) -> None:
    app = make_app(staged, clock, tmp_path, initial="staging")
    async with app.run_test(size=(80, 24)):
        screen: StagingScreen = await wait_for(
            lambda: isinstance(app.screen, StagingScreen) and app.screen)
        await wait_for(lambda: screen.loaded and not screen.loading)
        await wait_for(lambda: "No staging environments yet. Press c to clone one."
                       in screen_text(app))


async def test_a_server_without_the_staging_flows_is_reported_not_crashed(
        clock: ManualClock, tmp_path: Path) -> None:
    async with remote_backend(tmp_path / "data") as remote:
        app = make_app(remote, clock, tmp_path, initial="staging")
        async with app.run_test(size=(120, 40)) as pilot:
            screen: StagingScreen = await wait_for(
                lambda: isinstance(app.screen, StagingScreen) and app.screen)
            await wait_for(lambda: screen.problem is not None, message="problem shown")
            assert "staging is not available" in screen.problem
            assert "dev.deployment/clone-staging-api" in screen.problem
            await wait_for(lambda: "staging is not available" in screen_text(app))
            await toasted(app, "staging is not available")
            # a clone on such a server fails the same way, in the panel
            await pilot.press("c")
            form = await wait_for(lambda: isinstance(app.screen, CloneFormScreen)
                                  and app.screen)
            form.query_one("#client", Input).value = "acme"
            await pilot.press("ctrl+s")
            op = await finished(screen)
            assert op.reason is not None and "staging is not available" in op.reason
            assert "staging is not available" in panel_text(screen)


# ---- clone --------------------------------------------------------------------------------


async def test_clone_through_the_form_shows_live_progress_and_the_url(
        staged: EmbeddedBackend, clock: ManualClock, tmp_path: Path) -> None:
    await clone(staged, "acme", "staging-acme")
    seen: list[Message] = []
    app = make_app(staged, clock, tmp_path)
    async with app.run_test(size=(120, 40), message_hook=seen.append) as pilot:
        screen = await open_staging(app, pilot, 1)
        await pilot.press("c")
        form = await wait_for(lambda: isinstance(app.screen, CloneFormScreen) and app.screen)
        assert form.query_one("#source", Input).value == "production"
        await pilot.press(*"gamma")
        await pilot.press("tab", "tab", "tab")  # environment name, source, skip database
        assert isinstance(app.focused, Checkbox)
        await pilot.press("space")
        await pilot.press("ctrl+s")
        await wait_for(lambda: app.screen is screen)
        op = await finished(screen)
        assert op.reason is None, op.reason
        name = "staging-gamma-20260101-120000"  # generated: client + the (fixed) UTC time
        url = f"http://{name}.staging.localhost"
        assert op.response["environment_name"] == name
        assert op.response["staging_url"] == url

        # the panel: both task runs with their states, the URL, the live log lines
        text = panel_text(screen)
        assert f"Clone {name}" in text and "SUCCESS" in text
        assert "validate-inputs SUCCESS" in text and "execute-clone SUCCESS" in text
        assert f"ready at {url}" in text
        await wait_for(lambda: any(f"is ready at {url}" in line
                                   for line in screen.run_log.lines_plain()))
        lines = screen.run_log.lines_plain()
        assert any("will clone 'production' to" in line and "(without its database)" in line
                   for line in lines)
        assert any(f"environment '{name}' is ready at {url}" in line for line in lines)
        # live: the panel got the run as started (not terminal yet), then its snapshots
        states = [m.execution.state.current for m in seen
                  if isinstance(m, OperationStarted | OperationUpdate)]
        assert states and not is_terminal(states[0]) and states[-1] == "SUCCESS"
        await toasted(app, url)

        # the list refreshed by itself and shows the new environment with its URL
        await wait_for(lambda: screen.source.row_count() == 2, message="list refreshed")
        assert screen.source.row_key(0) == name
        await wait_for(lambda: name in screen_text(app))

        # the run is an ordinary execution: `o` opens it, enter on the panel's log too
        execution = await staged.get_execution(op.execution_id)
        assert (execution.flow_id, execution.inputs["client_name"]) == (CLONE_FLOW, "gamma")
        assert execution.inputs["skip_database"] is True
        await pilot.press("o")
        detail = await wait_for(lambda: isinstance(app.screen, ExecutionScreen) and app.screen)
        assert detail.execution_id == op.execution_id
        await pilot.press("escape")
        await wait_for(lambda: app.screen is screen)
        screen.run_log.focus()
        await pilot.press("enter")
        detail = await wait_for(lambda: isinstance(app.screen, ExecutionScreen) and app.screen)
        assert detail.execution_id == op.execution_id


async def test_clone_form_requires_a_client_and_a_failed_clone_shows_the_reason(
        staged: EmbeddedBackend, clock: ManualClock, tmp_path: Path) -> None:
    await clone(staged, "acme", "staging-acme")
    app = make_app(staged, clock, tmp_path)
    async with app.run_test(size=(80, 24)) as pilot:
        screen = await open_staging(app, pilot, 1)
        await pilot.press("c")
        form = await wait_for(lambda: isinstance(app.screen, CloneFormScreen) and app.screen)
        await pilot.press("enter")  # no client name: refused here, the form stays
        await wait_for(lambda: "client name is required" in str(
            form.query_one("#problem").render()))
        assert app.screen is form and screen.operation is None
        form.query_one("#client", Input).value = "other"
        form.query_one("#environment", Input).value = "staging-acme"  # taken
        await pilot.press("ctrl+s")
        op = await finished(screen)
        assert op.reason == "environment 'staging-acme' already exists"
        assert "✕ environment 'staging-acme' already exists" in panel_text(screen)
        await toasted(app, "clone failed: environment 'staging-acme' already exists")
        execution = await staged.get_execution(op.execution_id)
        assert execution.state.current == "FAILED"
        assert await names(staged) == ["staging-acme"]


# ---- delete -------------------------------------------------------------------------------


async def test_delete_needs_the_name_typed_exactly(
        staged: EmbeddedBackend, clock: ManualClock, tmp_path: Path) -> None:
    await clone(staged, "x", "staging-x")
    await clone(staged, "y", "staging-y")
    app = make_app(staged, clock, tmp_path)
    async with app.run_test(size=(120, 40)) as pilot:
        screen = await open_staging(app, pilot, 2)
        await wait_for(lambda: screen.current() is not None)
        while screen.current().name != "staging-x":  # type: ignore[union-attr]
            await pilot.press("down")
        # enter on a freshly opened dialog is the safe choice: cancel
        await pilot.press("d")
        dialog = await wait_for(lambda: isinstance(app.screen, TypedNameConfirm)
                                and app.screen)
        assert app.focused is not None and app.focused.id == "cancel"
        assert "staging-x" in screen_text(app)
        await pilot.press("enter")
        await wait_for(lambda: app.screen is screen)
        assert screen.operation is None

        await pilot.press("ctrl+d")
        dialog = await wait_for(lambda: isinstance(app.screen, TypedNameConfirm)
                                and app.screen)
        button = dialog.query_one("#confirm", Button)
        box = dialog.query_one("#typed", Input)
        assert button.disabled
        await pilot.press("tab")
        assert app.focused is box
        for wrong in ("Staging-x", " staging-x", "staging-x ", "staging-", "staging-x\t",
                      "\uff53taging-x", "staging-y", "STAGING-X"):
            box.value = "staging-x"  # enabled on the exact name, then disabled again
            await wait_for(lambda: not button.disabled, message="enabled")
            box.value = wrong
            await wait_for(lambda: button.disabled, message=f"disabled for {wrong!r}")
        await pilot.press("enter")  # a wrong name: nothing happens
        assert app.screen is dialog
        assert "does not match" in str(dialog.query_one("#problem").render())
        box.value = ""
        await pilot.press(*"staging-x")
        await wait_for(lambda: not button.disabled, message="enabled on the exact name")
        await pilot.press("space")
        await wait_for(lambda: button.disabled)
        await pilot.press("backspace")
        await wait_for(lambda: not button.disabled)
        await pilot.press("enter")
        await wait_for(lambda: app.screen is screen)
        op = await finished(screen)
        assert op.reason is None and op.kind == "delete"
        assert "Environment deleted successfully" in panel_text(screen)
        execution = await staged.get_execution(op.execution_id)
        assert (execution.flow_id, execution.inputs) == (DELETE_FLOW,
                                                          {"environment_name": "staging-x"})
        await wait_for(lambda: [screen.source.row_key(i)
                                for i in range(screen.source.row_count())] == ["staging-y"],
                       message="the deleted environment left the list")
        assert await names(staged) == ["staging-y"]


async def test_the_engine_refuses_look_alike_names_and_the_screen_says_why(
        staged: EmbeddedBackend, clock: ManualClock, tmp_path: Path) -> None:
    await clone(staged, "x", "staging-x")
    app = make_app(staged, clock, tmp_path)
    async with app.run_test(size=(160, 40)) as pilot:
        screen = await open_staging(app, pilot, 1)
        for name in LOOK_ALIKES:
            started = screen.start_delete(name)  # the screen's own delete path, no dialog
            assert started is not None
            op = await wait_for(lambda started=started: started.finished and started)
            assert op.reason is not None and REFUSAL in op.reason, (name, op.reason)
            assert "^staging-[a-z0-9][a-z0-9-]{0,62}$" in op.reason
            # the refusal is the engine's: a failed delete run, started with the name as is
            execution = await staged.get_execution(op.execution_id)
            assert execution.flow_id == DELETE_FLOW and execution.state.current == "FAILED"
            assert execution.inputs["environment_name"] == name
            assert REFUSAL in panel_text(screen)
            await wait_for(lambda: REFUSAL in screen_text(app))
        await wait_for(lambda: len([t for t in toasts(app) if "delete failed: " + REFUSAL in t])
                       == len(LOOK_ALIKES), message="one refusal toast per name")
        assert await names(staged) == ["staging-x"]
        await wait_for(lambda: not screen.busy)
        assert [screen.source.row_key(i) for i in range(screen.source.row_count())] \
            == ["staging-x"]
        await pilot.press("escape")  # esc dismisses a finished run's panel
        await wait_for(lambda: screen.operation is None)


# ---- refresh on change --------------------------------------------------------------------


async def test_a_change_made_elsewhere_reloads_the_list_once_and_never_loops(
        staged: EmbeddedBackend, clock: ManualClock, tmp_path: Path) -> None:
    app = make_app(staged, clock, tmp_path)
    async with app.run_test(size=(120, 40)) as pilot:
        screen = await open_staging(app, pilot, 0)
        before = await list_runs(staged)
        await clone(staged, "elsewhere", "staging-elsewhere")  # the CLI, another operator
        await wait_for(lambda: screen.source.row_count() == 1, message="reloaded on change")
        await wait_for(lambda: not screen.busy)
        # one reload for the clone run; the list runs (ours and others') trigger none
        assert await list_runs(staged) == before + 1
        page = await staged.search_executions(ExecutionFilter(
            namespace=NAMESPACE, flow_id=LIST_FLOW, size=1))
        screen.on_live_event(page.results[0])  # a terminal list run, as the app forwards it
        assert not screen.busy and page.results[0].id not in screen._reload_for
        # while another screen is shown, a change only marks the list; it reloads on return
        await pilot.press("colon")
        await wait_for(lambda: type(app.screen).__name__ == "CommandPrompt")
        await pilot.press("e", "x", "enter")
        await wait_for(lambda: not isinstance(app.screen, StagingScreen))
        await clone(staged, "later", "staging-later")
        await wait_for(lambda: screen._dirty, message="marked while hidden")
        assert screen.source.row_count() == 1
        await pilot.press("colon")
        await wait_for(lambda: type(app.screen).__name__ == "CommandPrompt")
        await pilot.press("s", "t", "enter")
        await wait_for(lambda: screen.source.row_count() == 2, message="reloaded on return")


# ---- read-only ----------------------------------------------------------------------------


async def test_read_only_hides_and_disables_clone_and_delete(
        staged: EmbeddedBackend, clock: ManualClock, tmp_path: Path) -> None:
    await clone(staged, "x", "staging-x")
    app = make_app(staged, clock, tmp_path, read_only=True)
    async with app.run_test(size=(120, 40)) as pilot:
        screen = await open_staging(app, pilot, 1)
        footer = screen_text(app).splitlines()[-1]
        assert "Clone" not in footer and "Delete" not in footer and "Filter" in footer
        for key in ("c", "d", "ctrl+d"):
            await pilot.press(key)
            assert app.screen is screen, key
        assert screen.start_delete("staging-x") is None  # inert even when called
        assert screen.operation is None
        assert not screen.check_action("clone_environment", ())
        assert not screen.check_action("delete_environment", ())
        assert "Press c" not in screen_text(app)
        await pilot.press("question_mark")
        help_screen = await wait_for(lambda: isinstance(app.screen, HelpScreen)
                                     and app.screen)
        text = str(help_screen.query_one("#help-text").render())
        assert "This screen (staging)" in text and "Filter" in text
        assert "Clone" not in text and "Delete" not in text
        assert ":st  :staging" in text and "reserved" not in text
        await pilot.press("escape")
        assert await names(staged) == ["staging-x"]


async def test_footer_and_help_list_the_staging_actions(
        staged: EmbeddedBackend, clock: ManualClock, tmp_path: Path) -> None:
    app = make_app(staged, clock, tmp_path)
    async with app.run_test(size=(120, 40)) as pilot:
        screen = await open_staging(app, pilot, 0)
        footer = screen_text(app).splitlines()[-1]
        assert "Clone" in footer and "Delete" in footer and "Open run" in footer
        await pilot.press("question_mark")
        help_screen = await wait_for(lambda: isinstance(app.screen, HelpScreen)
                                     and app.screen)
        text = str(help_screen.query_one("#help-text").render())
        assert "Clone" in text and "d,ctrl+d" in text and "Open run" in text
        await pilot.press("escape")
        await wait_for(lambda: app.screen is screen)


# ---- untrusted text -----------------------------------------------------------------------


async def test_markup_and_escapes_in_urls_reasons_and_logs_render_literally(
        tmp_path: Path, clock: ManualClock) -> None:
    # A provider URL template is operator configuration, but what it yields is shown as is.
    template = "http://{name}.example/[/]?[bold]x\x1b]0;pwned\x07[@click=app.quit]q[/]"
    backend = staging_backend(tmp_path, clock, url_template=template)
    await backend.connect()
    try:
        app = make_app(backend, clock, tmp_path)
        async with app.run_test(size=(200, 40)) as pilot:
            screen = await open_staging(app, pilot, 0)
            await pilot.press("c")
            form = await wait_for(lambda: isinstance(app.screen, CloneFormScreen)
                                  and app.screen)
            form.query_one("#client", Input).value = "inj"
            form.query_one("#environment", Input).value = "staging-inj"
            await pilot.press("ctrl+s")
            op = await finished(screen)
            assert op.reason is None, op.reason
            literal = "http://staging-inj.example/[/]?[bold]x[@click=app.quit]q[/]"
            await wait_for(lambda: screen.source.row_count() == 1)
            await wait_for(lambda: any(literal in line
                                       for line in screen.run_log.lines_plain()))
            # The panel, the row and the details line (each painted on its own refresh).
            await wait_for(lambda: screen_text(app).count(literal) >= 3)
            text = screen_text(app)
            assert "\x1b" not in text and "pwned" not in text
            await toasted(app, literal)

            # The engine refuses a client name with markup; its reason quotes the name.
            await pilot.press("c")
            form = await wait_for(lambda: isinstance(app.screen, CloneFormScreen)
                                  and app.screen)
            form.query_one("#client", Input).value = "[/] [bold]x[/b]"
            await pilot.press("ctrl+s")
            op = await finished(screen)
            assert op.reason is not None and "client_name '[/] [bold]x[/b]'" in op.reason
            shown = "✕ client_name '[/] [bold]x[/b]' must match ^[a-z0-9][a-z0-9-]{0,46}$"
            await wait_for(lambda: shown in screen_text(app))
            await wait_for(lambda: any("'[/] [bold]x[/b]' must match" in line
                                       for line in screen.run_log.lines_plain()))
            await toasted(app, "'[/] [bold]x[/b]'")
            assert app.is_running
    finally:
        await backend.close()
