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


async def test_log_view_toggles_reindex_without_losing_the_cursor_row() -> None:
    """The display index holds no text: timestamps (unwrapped) keep the very same index, wrap
    and the level filter re-index the kept rows, and the cursor stays on its row."""
    from textual.app import App

    from flowdeck.core.models import LogEntry

    def entry(seq: int, level: str, attempt: int, message: str) -> LogEntry:
        return LogEntry("e", seq, "ns", "f", "job", "tr1", attempt,
                        f"2026-01-01T00:00:{seq:02d}.000000Z", level, message)

    view = LogView(max_lines=40)

    class Host(App[None]):
        def compose(self):  # type: ignore[no-untyped-def]
            yield view

    entries = [entry(i, "ERROR" if i % 3 == 0 else "INFO", 1 if i < 20 else 2,
                     f"m{i} " + ("x" * 90 if i == 7 else "short")) for i in range(1, 31)]
    async with Host().run_test(size=(60, 10)) as pilot:
        view.add_entries(entries)
        lines = view.lines_plain()
        assert len(lines) == 31 and "attempt 2" in lines[19]  # 30 rows and one separator
        assert lines[0] == "00:00:01.000 INFO  job  m1 short"
        region = view.scrollable_content_region.width
        assert view.virtual_size.width == 13 + len("INFO  job  m7 " + "x" * 90) > region
        view._set_cursor(9)  # the row of m10 (no separator before it)
        assert view.line_text(9).endswith("m10 short")

        index = view._lines
        view.timestamps = False  # unwrapped: nothing re-indexed, only the width changes
        await pilot.pause()
        assert view._lines is index and view.cursor == 9
        assert view.line_text(9) == "INFO  job  m10 short"
        assert view.virtual_size.width == len("INFO  job  m7 " + "x" * 90)

        view.wrap = True  # the long line becomes pieces no wider than the pane
        await pilot.pause()
        width = view._wrap_width
        assert all(len(text) <= width for text in view.lines_plain())
        pieces = [view.line_text(n) for n, ln in enumerate(view._lines) if view._row(ln).seq
                  == 7 and ln.row >= 0]
        assert len(pieces) > 1 and "".join(pieces) == "INFO  job  m7 " + "x" * 90
        assert view.line_text(view.cursor).endswith("m10 short")  # still on its row
        view.timestamps = True  # wrapped: the pieces move, so it re-indexes
        await pilot.pause()
        pieces = [view.line_text(n) for n, ln in enumerate(view._lines) if view._row(ln).seq
                  == 7 and ln.row >= 0]
        assert "".join(pieces) == "00:00:07.000 INFO  job  m7 " + "x" * 90
        assert view.line_text(view.cursor).endswith("m10 short")

        await pilot.resize_terminal(40, 10)  # narrower: every wrapped line is cut again
        await pilot.pause()
        assert view._wrap_width < width
        pieces = [view.line_text(n) for n, ln in enumerate(view._lines) if view._row(ln).seq
                  == 7 and ln.row >= 0]
        assert all(len(p) <= view._wrap_width for p in pieces)
        assert "".join(pieces) == "00:00:07.000 INFO  job  m7 " + "x" * 90
        assert view.line_text(view.cursor).endswith("m10 short")
        view.add_entries([entry(31, "INFO", 2, "y" * 50)])  # cut for the new width too
        pieces = [view.line_text(n) for n, ln in enumerate(view._lines) if view._row(ln).seq
                  == 31 and ln.row >= 0]
        assert len(pieces) > 1 and all(len(p) <= view._wrap_width for p in pieces)
        assert "".join(pieces) == "00:00:31.000 INFO  job  " + "y" * 50

        view.wrap = False
        view.min_level = "ERROR"  # only ERROR rows (the separator opens an INFO row: hidden)
        await pilot.pause()
        texts = view.lines_plain()
        assert len(texts) == 10 and all(" ERROR " in t for t in texts)
        view.min_level = "TRACE"
        await pilot.pause()
        assert view.line_count == 32

        # more rows than kept: the front is trimmed (separators with their row)
        view.add_entries([entry(i, "INFO", 3 if i >= 60 else 2, f"n{i}") for i in range(32, 71)])
        texts = view.lines_plain()
        assert len(view.rows) == 40 and view.dropped == 30
        assert texts[0].endswith("y" * 50) and "attempt 3" in texts[29] and texts[-1].endswith(
            "n70")
        assert view.follow and view.scroll_offset.y == view.max_scroll_y
        # the pane grew without a screen layout: its scrollbar still knows the new size
        assert view.show_vertical_scrollbar
        assert view.vertical_scrollbar.window_virtual_size == view.line_count
        assert view.vertical_scrollbar.position == view.scroll_offset.y
        await pilot.pause()
        assert "n70" in screen_text(pilot.app)  # painted: the end shows while following


async def test_log_view_wrapped_error_pieces_are_error_coloured_throughout() -> None:
    """Every piece of a wrapped ERROR line has the error colour from its first cell (a
    negative start once counted from the piece's end, leaving its head uncoloured)."""
    from textual.app import App

    from flowdeck.core.models import LogEntry
    from flowdeck.tui.theme import rich_style

    view = LogView(max_lines=10)

    class Host(App[None]):
        def get_theme_variable_defaults(self) -> dict[str, str]:
            return {"level-error": "#ff2020"}

        def compose(self):  # type: ignore[no-untyped-def]
            yield view

    async with Host().run_test(size=(40, 8)) as pilot:
        view.wrap = True
        view.add_entries([LogEntry("e", 1, "ns", "f", "job", "tr1", 1,
                                   "2026-01-01T00:00:01.000000Z", "ERROR", "z" * 100)])
        await pilot.pause()
        assert view.line_count >= 3
        colour = rich_style(pilot.app, "level-error").color
        assert colour is not None
        for y in range(1, view.line_count):  # the continuation pieces
            cells = [seg for seg in view.render_line(y) if seg.text.strip()]
            assert cells and all(seg.style is not None and seg.style.color == colour
                                 for seg in cells), y


async def test_a_following_log_pane_that_shrinks_still_shows_the_last_line() -> None:
    """The execution screen shrinks the log pane when the task details open (after the log
    may already be in): a follower keeps the last line in view."""
    from textual.app import App
    from textual.containers import Vertical
    from textual.widgets import Static

    from flowdeck.core.models import LogEntry

    view = LogView(max_lines=40)

    class Host(App[None]):
        CSS = "#top { height: 2; } Host.-tall #top { height: 14; } LogView { height: 1fr; }"

        def compose(self):  # type: ignore[no-untyped-def]
            with Vertical():
                yield Static("top", id="top")
                yield view

    async with Host().run_test(size=(60, 20)) as pilot:
        view.add_entries([LogEntry("e", i, "ns", "f", "job", "tr1", 1,
                                   f"2026-01-01T00:00:{i:02d}.000000Z", "INFO", f"line {i}")
                          for i in range(1, 11)])
        await pilot.pause()
        assert view.follow and "line 10" in screen_text(pilot.app)  # everything fits
        pilot.app.add_class("-tall")  # the pane above grows: the log pane gets 6 rows
        await wait_for(lambda: view.size.height == 6)
        await pilot.pause()
        assert view.scroll_offset.y == view.max_scroll_y > 0
        assert "line 10" in screen_text(pilot.app) and "line 1\n" not in screen_text(pilot.app)
