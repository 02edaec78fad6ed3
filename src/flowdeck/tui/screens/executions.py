"""The executions list (the default screen): live, filtered, sorted, virtualised.

Rows come one page at a time from `search_executions` (only the pages on screen are
fetched, at most MAX_PAGES are kept), so 100,000 executions cost what 100 do. Live
snapshots from the app's `watch_executions` worker update rows in place; a new execution
re-fetches the visible pages. Workers only fetch and post; handlers own the state.

The cursor stays on its execution while rows move under it: after each page the list looks
for the selected id among the loaded pages and, if it is not there, reads a few more pages
(`SEEK_PAGES`) before saying it left the list (then nothing is selected).
"""

from __future__ import annotations

from collections import OrderedDict
from typing import TYPE_CHECKING

from rich.text import Text
from textual import work
from textual.app import ComposeResult
from textual.content import Content
from textual.timer import Timer
from textual.widgets import Footer, Input, Static

from flowdeck.client.backend import ExecutionFilter
from flowdeck.core.errors import BackendUnavailable, FlowdeckError
from flowdeck.core.models import Approval, Execution
from flowdeck.core.sanitize import sanitize_line
from flowdeck.core.states import ACTIVE_STATES, RESTARTABLE_STATES, is_terminal
from flowdeck.tui.commands import bindings_for
from flowdeck.tui.filters import FilterSpec, parse_filter
from flowdeck.tui.format import (
    duration_text,
    execution_seconds,
    local_time,
    progress,
    safe_text,
    short_id,
)
from flowdeck.tui.messages import (
    ActionDone,
    ActionFailed,
    ConnectionLost,
    ExecutionsPage,
    FlowsLoaded,
)
from flowdeck.tui.screens.base import ListScreen
from flowdeck.tui.theme import rich_style, state_variable
from flowdeck.tui.widgets.confirm import ConfirmScreen
from flowdeck.tui.widgets.status import StatusBar
from flowdeck.tui.widgets.table import GONE, Column, VirtualTable, compact_time

if TYPE_CHECKING:
    from flowdeck.tui.app import FlowdeckApp

PAGE = 100
MAX_PAGES = 60
LIVE_KEPT = 5000
#: Pages read beyond those on screen to find where the selected execution went.
SEEK_PAGES = 5
#: Executions a confirmation names one by one (the rest are counted).
NAMED = 8


def version(ex: Execution) -> int:
    """Grows with every state change of the execution or its task runs."""
    return len(ex.state.histories) + sum(1 + len(tr.state.histories) + len(tr.attempts)
                                         for tr in ex.task_runs)


COLUMNS = [Column("id", "ID", 8), Column("state", "STATE", 10),
           Column("flow", "FLOW", min_width=28),
           Column("start", "STARTED", 19, narrow=11, compact=compact_time),
           Column("duration", "DURATION", 8, "right"), Column("tasks", "TASKS", 7, "right")]
SORTS: list[tuple[str, str]] = [("state.startDate", "started"), ("state.current", "state"),
                                ("flowId", "flow"), ("namespace", "namespace"),
                                ("state.endDate", "ended")]


def execution_cells(app: FlowdeckApp, ex: Execution, in_flow: int = 0) -> list[Text]:
    state = ex.state.current
    done, total = progress(ex, in_flow)
    return [
        Text(short_id(ex.id), style=rich_style(app, "secondary")),
        safe_text(state, 20, rich_style(app, state_variable(state), bold=True)),
        safe_text(f"{ex.namespace}.{ex.flow_id}"),
        Text(local_time(ex.state.start_date)),
        Text(duration_text(execution_seconds(ex, app.clock.now()))),
        Text(f"{done}/{total}"),
    ]


def execution_line(ex: Execution | None, execution_id: str) -> str:
    """One execution named in full for a dialog: id, flow, state."""
    if ex is None:
        return f"  {execution_id}"
    return (f"  {ex.id}  {sanitize_line(ex.namespace + '.' + ex.flow_id, 60)}  "
            f"{ex.state.current}")


class ExecutionsSource:
    """The pages of the current query that are loaded; everything else is `None`."""

    def __init__(self, screen: ExecutionsScreen) -> None:
        self.screen = screen
        self.pages: OrderedDict[int, list[Execution]] = OrderedDict()
        self.total = 0
        self.generation = 0
        self.requested: set[int] = set()
        self.live: OrderedDict[str, Execution] = OrderedDict()
        #: Tasks per flow, for "n done / m in flow".
        self.flow_tasks: dict[tuple[str, str], int] = {}
        #: Still reading pages to find the selected execution.
        self.seeking = False
        self.seek_budget = SEEK_PAGES

    def row_count(self) -> int:
        return self.total

    def execution(self, index: int) -> Execution | None:
        page = self.pages.get(index // PAGE)
        if page is None:
            return None
        offset = index % PAGE
        return page[offset] if offset < len(page) else None

    def row(self, index: int) -> list[Text] | None:
        ex = self.execution(index)
        if ex is None:
            return None
        return execution_cells(self.screen.deck, ex,
                               self.flow_tasks.get((ex.namespace, ex.flow_id), 0))

    def row_key(self, index: int) -> str | None:
        ex = self.execution(index)
        return None if ex is None else ex.id

    def locate(self, key: str) -> int | None:
        for page, results in self.pages.items():
            for offset, ex in enumerate(results):
                if ex.id == key:
                    return page * PAGE + offset
        return None

    def index_of(self, key: str) -> int | None:
        found = self.locate(key)
        if found is not None:
            return found
        return None if self.seeking else GONE

    def page_count(self) -> int:
        return (self.total + PAGE - 1) // PAGE

    def store(self, page: int, results: list[Execution], total: int) -> None:
        # A page fetched before a live snapshot arrived must not bring back older state.
        results = [self._newest(ex) for ex in results]
        self.pages[page] = results
        self.pages.move_to_end(page)
        self.total = total
        while len(self.pages) > MAX_PAGES:
            self.pages.popitem(last=False)

    def _newest(self, ex: Execution) -> Execution:
        live = self.live.get(ex.id)
        return live if live is not None and version(live) >= version(ex) else ex

    def replace(self, execution: Execution) -> bool:
        self.live[execution.id] = execution
        self.live.move_to_end(execution.id)
        while len(self.live) > LIVE_KEPT:
            self.live.popitem(last=False)
        for results in self.pages.values():
            for i, ex in enumerate(results):
                if ex.id == execution.id:
                    results[i] = execution
                    return True
        return False

    def loaded(self) -> list[Execution]:
        return [ex for results in self.pages.values() for ex in results]

    def find(self, execution_id: str) -> Execution | None:
        return next((ex for ex in self.loaded() if ex.id == execution_id), None)


class ExecutionsScreen(ListScreen):
    SCOPE = "executions"
    AUTO_FOCUS = ""  # the table, from on_mount
    BINDINGS = bindings_for("executions")
    DEFAULT_CSS = """
    ExecutionsScreen #title { height: 1; background: $boost; padding: 0 1; }
    ExecutionsScreen #filter { dock: bottom; display: none; }
    ExecutionsScreen #filter.-shown { display: block; }
    ExecutionsScreen.-stale VirtualTable { opacity: 60%; }
    """

    def __init__(self) -> None:
        super().__init__()
        self.source = ExecutionsSource(self)
        self.filter_text = ""
        self.spec = FilterSpec()
        self.sort_index = 0
        self.sort_desc = True
        self._reload_timer: Timer | None = None

    def compose(self) -> ComposeResult:
        yield StatusBar()
        yield Static(id="title")
        yield VirtualTable(COLUMNS, self.source, id="table")
        yield Input(placeholder="filter: state:FAILED ns:prod flow:x label:k=v since:1h words",
                    id="filter")
        yield Footer()

    def on_mount(self) -> None:
        self.table.focus()
        self.update_title()
        self.reload()
        self.set_interval(1.0, self.tick)
        self.set_interval(self.deck.refresh_seconds, self.poll)

    def on_screen_resume(self) -> None:
        if self.updated_at is not None:
            self.reload()

    # -- querying -----------------------------------------------------------------------

    def current_filter(self, page: int) -> ExecutionFilter:
        query = self.spec.to_filter(self.deck.clock.now(), namespace=self.deck.namespace)
        query.page = page + 1
        query.size = PAGE
        query.sort = [(SORTS[self.sort_index][0], self.sort_desc)]
        return query

    def reset_for_backend(self) -> None:
        """Another backend (`:profile`): forget every row and mark; the reload refills."""
        self.source.generation += 1
        self.source.pages.clear()
        self.source.requested.clear()
        self.source.flow_tasks.clear()
        self.source.total = 0
        self.table.marked.clear()
        self.table.forget()
        self.updated_at = None
        self.table.reset()
        self.update_title()

    def namespace_changed(self) -> None:
        self.reload(new_query=True)

    def reload(self, new_query: bool = False) -> None:
        """Re-fetch what is on screen and drop the pages that are not. A new query (filter,
        sort, namespace) starts a new generation: answers to older ones are dropped."""
        source = self.source
        if new_query:
            source.generation += 1
            if self.table.cursor:
                self.table.cursor = 0  # from the top; the selection follows its item
        source.requested.clear()
        source.seek_budget = SEEK_PAGES
        source.seeking = self.table.selected_key is not None
        if self.deck.capabilities is None:
            return  # not connected yet: the app reloads every screen once it is
        first, last = self.table.visible_rows()
        wanted = set(range(first // PAGE, last // PAGE + 1))
        wanted.add(self.table.cursor // PAGE)
        for page in list(source.pages):
            if page not in wanted:
                del source.pages[page]
        for page in sorted(wanted):
            self.request_page(page)
        self.load_flow_tasks()

    def request_page(self, page: int) -> None:
        if page in self.source.requested or self.deck.capabilities is None:
            return
        self.source.requested.add(page)
        self.fetch_page(self.source.generation, page, self.current_filter(page))

    @work(group="pages")
    async def fetch_page(self, generation: int, page: int, query: ExecutionFilter) -> None:
        try:
            result = await self.deck.backend.search_executions(query)
        except BackendUnavailable as exc:
            self.post_message(ConnectionLost(str(exc)))
            return
        except FlowdeckError as exc:
            self.post_message(ActionFailed(f"cannot list executions: {exc}"))
            return
        self.post_message(ExecutionsPage(generation, page, result.results, result.total))

    @work(group="flow-tasks", exclusive=True)
    async def load_flow_tasks(self) -> None:
        try:
            flows = await self.deck.backend.list_flows(self.deck.namespace)
        except FlowdeckError:
            return  # the counts then say only the tasks that have run
        self.post_message(FlowsLoaded(flows))

    def on_flows_loaded(self, message: FlowsLoaded) -> None:
        message.stop()
        counts = {(f.namespace, f.id): f.task_count for f in message.flows}
        if counts != self.source.flow_tasks:
            self.source.flow_tasks = counts
            self.table.refresh()

    def on_executions_page(self, message: ExecutionsPage) -> None:
        if message.generation != self.source.generation:
            return
        self.source.store(message.page, message.results, message.total)
        self._seek_selected()
        self.stamp()
        self.deck.mark_connected()
        self.table.reset()
        self.update_title()

    def _seek_selected(self) -> None:
        """Where did the selected execution go? Look in the loaded pages; if it is not there
        and every page asked for has arrived, read the next one (a few at most)."""
        source, table = self.source, self.table
        key = table.selected_key
        if not table.has_selection or key is None or source.locate(key) is not None:
            source.seeking = False
            return
        if source.requested - set(source.pages):
            source.seeking = True  # pages still coming
            return
        nxt = next((p for p in range(source.page_count()) if p not in source.pages), None)
        if nxt is not None and source.seek_budget > 0:
            source.seek_budget -= 1
            source.seeking = True
            self.request_page(nxt)
        else:
            source.seeking = False

    def on_virtual_table_need_rows(self, message: VirtualTable.NeedRows) -> None:
        for page in range(message.first // PAGE, message.last // PAGE + 1):
            self.request_page(page)

    def on_virtual_table_cursor_moved(self, message: VirtualTable.CursorMoved) -> None:
        """Fetch the page one screen further down before it is on screen, so paging down
        rarely waits for a query (never upwards: what was above was on screen already)."""
        first, last = self.table.visible_rows()
        ahead = min(last + (last - first + 1), self.source.total - 1)
        if ahead >= 0 and (ahead // PAGE) not in self.source.pages:
            self.request_page(ahead // PAGE)

    def on_live_event(self, item: Execution | Approval) -> None:
        if not isinstance(item, Execution) or not self.query("#table"):
            return
        if self.source.replace(item):
            self.table.refresh()
        elif self._reload_timer is None:
            # A new execution (or one that now matches): re-fetch, at most a few times a second.
            self._reload_timer = self.set_timer(0.3, self._debounced_reload)

    def _debounced_reload(self) -> None:
        self._reload_timer = None
        self.reload()

    def tick(self) -> None:
        """Durations of running and waiting rows tick; nothing else changes between events."""
        first, last = self.table.visible_rows()
        for index in range(first, min(last + 1, self.source.total)):
            ex = self.source.execution(index)
            if ex is not None and ex.state.current in ACTIVE_STATES:
                self.table.refresh()
                return

    def poll(self) -> None:
        """A polite safety net for missed events: only when this screen is on top."""
        if self.app.screen is self:
            self.reload()

    def update_title(self) -> None:
        parts = [f"Executions ({self.source.total})"]
        if self.filter_text:
            parts.append(f"filter: {sanitize_line(self.filter_text, 40)}")
        if self.spec.problems:
            parts.append("⚠ " + "; ".join(self.spec.problems))
        parts.append(f"sort: {SORTS[self.sort_index][1]} {'↓' if self.sort_desc else '↑'}")
        if self.table.marked:
            parts.append(f"{len(self.table.marked)} marked")
        self.query_one("#title", Static).update(Content("  │  ".join(parts)))
        self.table.empty = self.empty_text()

    def empty_text(self) -> str:
        if self.updated_at is None:
            return "loading…"
        if self.filter_text or self.deck.namespace:
            return "No execution matches (esc clears the filter, :ns alone shows every namespace)."
        if not self.deck.may("operator"):
            return "No executions yet."
        return "No executions yet: :flows, pick a flow, ctrl+o runs it."

    # -- filter and sort ----------------------------------------------------------------

    def apply_filter(self) -> None:
        self.spec = parse_filter(self.filter_text)
        self.reload(new_query=True)
        self.update_title()

    def handle_back(self) -> bool:
        if self.close_filter():
            return True
        if self.table.marked:
            self.table.marked.clear()
            self.table.refresh()
            self.update_title()
            return True
        return False

    def action_sort(self) -> None:
        self.sort_index = (self.sort_index + 1) % len(SORTS)
        self.reload(new_query=True)
        self.update_title()

    def action_sort_reverse(self) -> None:
        self.sort_desc = not self.sort_desc
        self.reload(new_query=True)
        self.update_title()

    def action_reload(self) -> None:
        self.reload()

    def action_mark(self) -> None:
        if self.table.current_key() is None:
            self.nothing_selected()
            return
        self.table.toggle_mark()
        self.update_title()

    # -- drill in and act ---------------------------------------------------------------

    def action_open(self) -> None:
        key = self.table.current_key()
        if key is None:
            self.nothing_selected()
            return
        from flowdeck.tui.screens.execution import ExecutionScreen

        self.app.push_screen(ExecutionScreen(key))

    def targets(self) -> list[str]:
        """The marked executions, or the selected one; [] (and a word) when neither."""
        if self.table.marked:
            return sorted(self.table.marked)
        key = self.table.current_key()
        if key is None:
            self.nothing_selected()
            return []
        return [key]

    def named(self, ids: list[str]) -> str:
        lines = [execution_line(self.source.find(i), i) for i in ids[:NAMED]]
        if len(ids) > NAMED:
            lines.append(f"  … and {len(ids) - NAMED} more")
        return "\n".join(lines)

    def confirm_then(self, verb: str, ids: list[str], body: str) -> None:
        """Ask (naming every execution; Cancel focused) unless `[deck] confirm` is off."""
        if not self.deck.confirm:
            self.run_action_on(ids, verb)
            return

        def answered(yes: bool | None) -> None:
            if yes:
                self.run_action_on(ids, verb)

        what = "1 execution" if len(ids) == 1 else f"{len(ids)} executions"
        self.app.push_screen(ConfirmScreen(
            f"{verb.capitalize()} {what}?", f"{self.named(ids)}\n\n{body}",
            confirm=verb.capitalize()), answered)

    def action_kill(self) -> None:
        ids = self.targets()
        if not ids:
            return
        finished = [i for i in ids if (ex := self.source.find(i)) is not None
                    and is_terminal(ex.state.current)]
        body = ("Running tasks are stopped; this cannot be undone." if len(finished) < len(ids)
                else "They look finished already; the engine will say so.")
        self.confirm_then("kill", ids, body)

    def action_restart(self) -> None:
        ids = self.targets()
        if not ids:
            return
        bad = [i for i in ids if (ex := self.source.find(i)) is not None
               and ex.state.current not in RESTARTABLE_STATES]
        if bad:
            state = ex.state.current if (ex := self.source.find(bad[0])) else "?"
            self.deck.toast(f"only failed, killed or warning executions restart "
                            f"({short_id(bad[0])} is {state})", severity="warning")
            if len(bad) == len(ids):
                return
        ok = [i for i in ids if i not in bad]
        self.confirm_then("restart", ok, "Each runs again from its failed task, in the same "
                          "execution.")

    def action_replay(self) -> None:
        ids = self.targets()
        if ids:
            self.confirm_then("replay", ids, "Each runs again from the start, as a new "
                              "execution with the same inputs.")

    def run_action_on(self, ids: list[str], verb: str) -> None:
        if ids:
            self.act(ids, verb)
            self.table.marked.clear()
            self.update_title()

    @work(group="actions")
    async def act(self, ids: list[str], verb: str) -> None:
        backend = self.deck.backend
        done: list[str] = []
        for execution_id in ids:
            try:
                if verb == "kill":
                    await backend.kill(execution_id)
                elif verb == "restart":
                    await backend.restart(execution_id)
                else:
                    new = await backend.replay(execution_id)
                    done.append(short_id(new.id))
                    continue
                done.append(short_id(execution_id))
            except FlowdeckError as exc:
                self.post_message(ActionFailed(f"{verb} {short_id(execution_id)}: {exc}"))
        if done:
            past = {"kill": "killed", "restart": "restarted", "replay": "replayed as"}[verb]
            self.post_message(ActionDone(f"{past} {', '.join(done)}"))

    def on_action_done(self, message: ActionDone) -> None:
        self.deck.toast(message.text)
        if message.refresh:
            self.reload()


__all__ = ["PAGE", "ExecutionsScreen"]
