"""Execution detail: task tree + Gantt, inputs/outputs, and every log-pane action."""

from __future__ import annotations

from pathlib import Path

from flowdeck.client.embedded import EmbeddedBackend
from flowdeck.core.clock import ManualClock
from flowdeck.tui.screens.execution import ExecutionScreen
from flowdeck.tui.widgets.log_view import LogView
from tui.deck_helpers import both_backends, make_app, screen_text, wait_for

NOISY = """
id: noisy
namespace: team.logs
inputs:
  - id: who
    type: STRING
    defaults: ops
tasks:
  - id: chatter
    type: io.kestra.plugin.scripts.shell.Commands
    commands:
      - for i in $(seq 1 60); do echo "line $i needle$i"; done
      - echo "disk almost full" >&2
  - id: bad
    type: io.kestra.plugin.core.log.Log
    level: ERROR
    message: "the error line"
  - id: out
    type: io.kestra.plugin.core.output.OutputValues
    values:
      answer: "42 for {{ inputs.who }}"
"""


@both_backends
async def test_detail_tree_io_and_log_actions(backend: EmbeddedBackend, clock: ManualClock,
                                              tmp_path: Path) -> None:
    await backend.apply_flow(NOISY)
    ex = await backend.create_execution("team.logs", "noisy")
    copied: list[str] = []
    app = make_app(backend, clock, tmp_path)
    app.copy_to_clipboard = copied.append  # type: ignore[method-assign]
    async with app.run_test(size=(120, 40)) as pilot:
        await wait_for(lambda: app.connection == "connected")
        app.push_screen(ExecutionScreen(ex.id))
        screen = await wait_for(lambda: isinstance(app.screen, ExecutionScreen) and app.screen)
        log = await wait_for(lambda: screen.query_one(LogView))
        await wait_for(lambda: screen.execution is not None
                       and screen.execution.state.current == "SUCCESS", timeout=20)
        await wait_for(lambda: any("the error line" in t for t in log.lines_plain()))
        # tree + gantt strip (painted after the snapshot arrives: wait for the frame)
        await wait_for(lambda: all(part in screen_text(app) for part in ("chatter", "bad", "▕")),
                       message="task tree painted")
        # follow is on and the end is shown; scrolling up turns it off, End back on
        assert log.follow
        await wait_for(lambda: app.focused is log)
        await pilot.press("up")
        assert not log.follow and "paused" in screen_text(app)
        await pilot.press("end")
        await wait_for(lambda: log.follow)
        # wrap and timestamps
        await pilot.press("w")
        assert log.wrap
        await pilot.press("w", "t")
        assert not log.wrap and not log.timestamps
        # level filter hides lower levels
        before = log.line_count
        for _ in range(4):
            await pilot.press("v")  # TRACE -> DEBUG -> INFO -> WARN -> ERROR
        await wait_for(lambda: log.min_level == "ERROR")
        assert 0 < log.line_count < before
        assert all("ERROR" in line for line in log.lines_plain())
        await pilot.press("v")  # back to TRACE
        await wait_for(lambda: log.line_count == before)
        # search, next / previous match
        await pilot.press("slash", *"needle1", "enter")
        await wait_for(lambda: "needle1" in log.line_text(log.cursor))
        first = log.cursor
        await pilot.press("n")
        await wait_for(lambda: log.cursor != first and "needle1" in log.line_text(log.cursor))
        await pilot.press("N")
        await wait_for(lambda: log.cursor == first)
        # jump to the next error
        await pilot.press("e")
        await wait_for(lambda: "the error line" in log.line_text(log.cursor))
        # copy the line (sanitized) and save the log
        await pilot.press("c")
        assert copied and "the error line" in copied[-1]
        await pilot.press("ctrl+s")
        saved = tmp_path / f"flowdeck-{ex.id}.log"
        await wait_for(lambda: saved.exists())
        assert "the error line" in saved.read_text()
        # inputs / outputs
        await pilot.press("i")
        await wait_for(lambda: "42 for ops" in screen_text(app))
        assert '"who": "ops"' in screen_text(app)


async def test_log_view_caps_lines_and_marks_attempts() -> None:
    from flowdeck.core.models import LogEntry

    view = LogView(max_lines=5)

    def entry(seq: int, attempt: int) -> LogEntry:
        return LogEntry("e", seq, "ns", "f", "t", "tr1", attempt, "2026-01-01T00:00:00.000000Z",
                        "INFO", f"m{seq}")

    # outside an app: only the data side (no rendering)
    view.rows.extend([])
    from textual.app import App

    class Host(App[None]):
        def compose(self):  # type: ignore[no-untyped-def]
            yield view

    async with Host().run_test(size=(80, 10)):
        view.add_entries([entry(1, 1), entry(2, 1), entry(3, 2)])
        lines = view.lines_plain()
        assert any("attempt 2" in ln for ln in lines)
        view.add_entries([entry(i, 2) for i in range(4, 12)])
        assert len(view.rows) == 5 and view.dropped == 6
        # the dropped rows' display lines went too (trimmed from the front, no re-layout)
        lines = view.lines_plain()
        assert len(lines) == 5 and "m7" in lines[0] and "m11" in lines[-1]
        view.add_entries([entry(5, 2)])  # a repeated sequence number is not shown twice
        assert len(view.rows) == 5


TICKER = """
id: ticker
namespace: team.logs
inputs:
  - id: gate
    type: STRING
tasks:
  - id: tick
    type: io.kestra.plugin.scripts.shell.Commands
    commands:
      - echo "tick-one"
      - while [ ! -e "{{ inputs.gate }}" ]; do sleep 0.05; done
      - echo "tick-two"
      - sleep 30
"""


@both_backends
async def test_log_pane_follows_a_running_execution(backend: EmbeddedBackend,
                                                    clock: ManualClock,
                                                    tmp_path: Path) -> None:
    """Lines printed while the pane is open arrive without a keypress, and follow stays on."""
    await backend.apply_flow(TICKER)
    gate = tmp_path / "gate"
    ex = await backend.create_execution("team.logs", "ticker", {"gate": str(gate)})
    app = make_app(backend, clock, tmp_path)
    async with app.run_test(size=(100, 30)):
        await wait_for(lambda: app.connection == "connected")
        app.push_screen(ExecutionScreen(ex.id))
        screen = await wait_for(lambda: isinstance(app.screen, ExecutionScreen) and app.screen)
        log = await wait_for(lambda: screen.query_one(LogView))
        await wait_for(lambda: any("tick-one" in t for t in log.lines_plain()), timeout=15)
        assert not any("tick-two" in t for t in log.lines_plain())
        assert screen.execution is not None and screen.execution.state.current == "RUNNING"
        gate.touch()  # the task prints its next line only now, with the pane open
        await wait_for(lambda: any("tick-two" in t for t in log.lines_plain()), timeout=15,
                       message="a live line")
        assert log.follow
        await wait_for(lambda: "tick-two" in screen_text(app))
        await backend.kill(ex.id)
        await wait_for(lambda: screen.execution is not None
                       and screen.execution.state.current == "KILLED", timeout=20)
