"""The approvals queue (oldest first), the decided ones (`h`), and one approval with its
context and decision.

A decision dialog names every approval it acts on in full: title, execution id, flow,
requester and row count (titles repeat: "Deploy?"), and it defaults to No.
"""

from __future__ import annotations

import json
import textwrap
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from rich.text import Text
from textual import work
from textual.app import ComposeResult
from textual.containers import VerticalScroll
from textual.content import Content
from textual.message import Message
from textual.widgets import Footer, Input, Static

from flowdeck.client.backend import FlowInfo
from flowdeck.core.errors import BackendUnavailable, ConflictError, FlowdeckError
from flowdeck.core.models import Approval, Execution
from flowdeck.core.public import API_KEY_NAME_VARIABLE, started_by
from flowdeck.core.sanitize import sanitize, sanitize_line
from flowdeck.tui.commands import bindings_for
from flowdeck.tui.format import local_time, safe_text, short_id, waiting_text
from flowdeck.tui.messages import ActionDone, ActionFailed, ConnectionLost
from flowdeck.tui.screens.base import DeckScreen, ListScreen
from flowdeck.tui.theme import rich_style, state_variable
from flowdeck.tui.widgets.confirm import DecisionScreen
from flowdeck.tui.widgets.list_source import ListSource
from flowdeck.tui.widgets.status import StatusBar
from flowdeck.tui.widgets.table import Column, VirtualTable, compact_time

#: Executions read for the requesters of the approvals listed (the rest show "?").
CONTEXT_LIMIT = 200
#: Approvals a bulk dialog names one by one (the rest are counted).
NAMED = 10
#: Characters of a row's value in a table column, and of one shown on its own lines.
CELL_LIMIT = 60
LONG_CELL_LIMIT = 5000
SCROLLBAR = 2
#: Metadata keys an approval task may set to say who asked.
REQUESTER_KEYS = ("requester", "requestedBy", "requested_by")


@dataclass
class ApprovalContext(Message):
    approval: Approval
    execution: Execution
    flow: FlowInfo | None


@dataclass
class ApprovalsRead(Message):
    """The approvals of one view (pending or decided) and their executions."""

    decided: bool
    approvals: list[Approval]
    executions: dict[str, Execution] = field(default_factory=dict)


PENDING_COLUMNS = [Column("waiting", "WAITING", 7, "right"),
                   Column("flow", "FLOW", min_width=16), Column("title", "TITLE", min_width=16),
                   Column("execution", "EXECUTION", 9), Column("expires", "EXPIRES", 8),
                   Column("rows", "ROWS", 4, "right"), Column("bulk", "BULK", 4)]
DECIDED_COLUMNS = [Column("decided", "DECIDED", 19, narrow=11, compact=compact_time),
                   Column("status", "STATUS", 8), Column("by", "BY", 12),
                   Column("flow", "FLOW", min_width=12), Column("title", "TITLE", min_width=12),
                   Column("comment", "COMMENT", min_width=12)]
STATUS_VARIABLES = {"approved": "state-success", "rejected": "state-failed",
                    "expired": "state-warning", "pending": "state-paused"}


def requester(approval: Approval, execution: Execution | None) -> str:
    """Who asked: the approval task's `metadata.requester` when it says; else what started
    the execution (its trigger, or how it was created: `api`, `trigger`...)."""
    for key in REQUESTER_KEYS:
        value = approval.metadata.get(key)
        if isinstance(value, str) and value.strip():
            return sanitize_line(value, 60)
    if execution is None:
        return "?"
    started = started_by_key(execution)
    if started is not None:
        return sanitize_line(f"API key {started[1] or started[0]}", 60)
    trigger = execution.trigger or {}
    if trigger.get("id"):
        kind = str(trigger.get("type") or "").rsplit(".", 1)[-1].lower()
        return sanitize_line(f"trigger {trigger['id']}" + (f" ({kind})" if kind else ""), 60)
    origin = execution.label("system.from")
    return sanitize_line(f"started via {origin}", 60) if origin else "?"


def rows_text(app: Any, fields: list[str], rows: list[dict[str, Any]], width: int) -> Text:
    """The rows under a header of their fields, as a table when it fits `width`; otherwise
    the widest fields leave the table and follow each row on their own lines, wrapped and in
    full (a reviewer approves the whole text, not its first 80 characters)."""
    def cell(row: dict[str, Any], name: str, limit: int) -> str:
        value = row.get(name, "")
        return sanitize_line(value if isinstance(value, str) else json.dumps(
            value, ensure_ascii=False, default=str), limit)

    widths = {f: max(len(sanitize_line(f, 40)), *(len(cell(r, f, CELL_LIMIT)) for r in rows))
              for f in fields}
    columns = list(fields)
    below: list[str] = []
    while len(columns) > 1 and sum(widths[f] for f in columns) + 2 * (len(columns) - 1) \
            > width:
        widest = max(columns, key=lambda f: widths[f])
        columns.remove(widest)
        below.append(widest)
    below = [f for f in fields if f in below]  # in the flow's order
    head = rich_style(app, "secondary", bold=True)
    text = Text(end="")
    text.append("  ".join(sanitize_line(f, 40).ljust(widths[f]) for f in columns) + "\n",
                style=head)
    for number, row in enumerate(rows):
        if below and number:
            text.append("\n")
        text.append("  ".join(cell(row, f, CELL_LIMIT).ljust(widths[f])
                              for f in columns) + "\n")
        for name in below:
            label = f"  {sanitize_line(name, 40)}: "
            lines = textwrap.wrap(cell(row, name, LONG_CELL_LIMIT), max(20, width),
                                  initial_indent=" " * len(label), subsequent_indent="    ")
            text.append(label, style=head)
            text.append("\n".join([lines[0][len(label):], *lines[1:]]) if lines else "")
            text.append("\n")
    return text


def started_by_key(execution: Execution) -> tuple[str, str | None] | None:
    """(key id, key name) of the public API key that started the execution, if one did."""
    key_id = started_by(execution.variables, dict(execution.labels))
    if key_id is None:
        return None
    name = (execution.variables or {}).get(API_KEY_NAME_VARIABLE)
    return key_id, name if isinstance(name, str) and name else None


def expiry_text(approval: Approval, now: datetime) -> str:
    if approval.expires_at is None:
        return "-"
    left = (approval.expires_at - now).total_seconds()
    return "due" if left <= 0 else f"in {waiting_text(left)}"


def approval_lines(approval: Approval, execution: Execution | None, now: datetime) -> list[str]:
    """One approval named in full, for a dialog (titles repeat: the rest tells them apart)."""
    rows = len(approval.rows)
    expires = (f" · expires {local_time(approval.expires_at)}" if approval.expires_at
               else "")
    return [f"{sanitize_line(approval.title, 80)} — "
            f"{sanitize_line(approval.namespace + '.' + approval.flow_id, 80)}",
            f"  execution {approval.execution_id} · {rows} row{'s' if rows != 1 else ''}",
            f"  requested by {requester(approval, execution)} · waiting "
            f"{waiting_text((now - approval.created_at).total_seconds())}{expires}"]


class Decider:
    """Approve/reject with the comment rules, shared by the queue and the detail screen."""

    deck: Any

    def context_for(self, approval: Approval) -> Execution | None:
        return None

    def ask_decision(self, approvals: list[Approval], approve: bool) -> None:
        if not approvals:
            return
        verb = "Approve" if approve else "Reject"
        required = any(a.require_comment for a in approvals)
        ids = [a.id for a in approvals]
        if not self.deck.confirm and not required:  # `[deck] confirm = false`
            self.decide_worker(ids, approve, None)  # type: ignore[attr-defined]
            return
        now = self.deck.clock.now()
        lines: list[str] = []
        for approval in approvals[:NAMED]:
            lines.extend(approval_lines(approval, self.context_for(approval), now))
        if len(approvals) > NAMED:
            lines.append(f"… and {len(approvals) - NAMED} more")
        if required:
            lines.append("A comment is required.")
        title = (f"{verb} this approval?" if len(approvals) == 1
                 else f"{verb} these {len(approvals)} approvals?")

        def answered(comment: str | None) -> None:
            if comment is not None:
                self.decide_worker(ids, approve, comment or None)  # type: ignore[attr-defined]

        self.deck.push_screen(DecisionScreen(title, lines, verb=verb, required=required),
                              answered)

    async def _decide(self, ids: list[str], approve: bool, comment: str | None) -> None:
        backend = self.deck.backend
        by = self.deck.user
        post = self.post_message  # type: ignore[attr-defined]
        try:
            if approve and len(ids) > 1:
                decided = await backend.decide_many(ids, by=by, comment=comment)
                post(ActionDone(f"approved {len(decided)} approvals"))
                return
            for approval_id in ids:
                result = await backend.decide(approval_id, approve=approve, by=by,
                                              comment=comment)
                post(ActionDone(f"{result.status} by {result.decided_by}: {result.title} "
                                f"({short_id(result.execution_id)})"))
        except ConflictError as exc:
            post(ActionFailed(f"not changed — {exc}"))
            post(ActionDone("", refresh=True))
        except BackendUnavailable as exc:
            post(ConnectionLost(str(exc)))
        except FlowdeckError as exc:
            post(ActionFailed(str(exc)))


class ApprovalsScreen(ListScreen, Decider):
    SCOPE = "approvals"
    AUTO_FOCUS = ""  # the table, from on_mount
    BINDINGS = bindings_for("approvals")
    DEFAULT_CSS = """
    ApprovalsScreen #title { height: 1; background: $boost; padding: 0 1; }
    ApprovalsScreen #filter { dock: bottom; display: none; }
    ApprovalsScreen #filter.-shown { display: block; }
    ApprovalsScreen.-stale VirtualTable { opacity: 60%; }
    """

    def __init__(self) -> None:
        super().__init__()
        self.source = ListSource()
        self.approvals: dict[str, Approval] = {}
        self.executions: dict[str, Execution] = {}
        self.filter_text = ""
        #: Showing the decided approvals (history) instead of the pending queue.
        self.decided = False

    def compose(self) -> ComposeResult:
        yield StatusBar()
        yield Static(id="title")
        yield VirtualTable(PENDING_COLUMNS, self.source, id="table")
        yield Input(placeholder="filter approvals", id="filter")
        yield Footer()

    def on_mount(self) -> None:
        self.table.focus()
        self.rebuild()
        self.reload()
        self.set_interval(1.0, self.tick)
        self.set_interval(self.deck.refresh_seconds, self.poll)

    def reset_for_backend(self) -> None:
        """Another backend (`:profile`): forget every row and mark; the reload refills."""
        self.approvals = {}
        self.executions = {}
        self.table.marked.clear()
        self.updated_at = None
        self.rebuild()

    def reload(self) -> None:
        if self.deck.capabilities is None:
            return  # the app reloads every screen once connected
        self.load(self.decided, set(self.executions))

    @work(group="load", exclusive=True)
    async def load(self, decided: bool, known: set[str]) -> None:
        backend = self.deck.backend
        try:
            if decided:
                items = [a for a in await backend.list_approvals("all")
                         if a.status != "pending"]
            else:
                items = await backend.list_approvals("pending")
            executions: dict[str, Execution] = {}
            for approval in items[:CONTEXT_LIMIT]:
                if approval.execution_id in known or approval.execution_id in executions:
                    continue
                try:
                    executions[approval.execution_id] = await backend.get_execution(
                        approval.execution_id)
                except BackendUnavailable:
                    raise
                except FlowdeckError:
                    continue  # deleted since: its requester shows as "?"
        except BackendUnavailable as exc:
            self.post_message(ConnectionLost(str(exc)))
            return
        except FlowdeckError as exc:
            self.post_message(ActionFailed(f"cannot list approvals: {exc}"))
            return
        self.post_message(ApprovalsRead(decided, items, executions))

    def on_approvals_read(self, message: ApprovalsRead) -> None:
        message.stop()
        if message.decided != self.decided:
            return  # the operator switched views meanwhile
        self.approvals = {a.id: a for a in message.approvals}
        self.executions.update(message.executions)
        self.stamp()
        self.deck.mark_connected()
        self.rebuild()

    def on_live_event(self, item: Execution | Approval) -> None:
        if isinstance(item, Execution):
            if item.id in self.executions:
                self.executions[item.id] = item
            return
        if (item.status == "pending") != self.decided:
            self.approvals[item.id] = item
            if item.execution_id not in self.executions:
                self.reload()  # its requester
        else:
            self.approvals.pop(item.id, None)
            self.table.marked.discard(item.id)
        self.stamp()
        self.rebuild()

    def poll(self) -> None:
        if self.app.screen is self:
            self.reload()

    def tick(self) -> None:
        if self.approvals and not self.decided:
            self.rebuild()

    def context_for(self, approval: Approval) -> Execution | None:
        return self.executions.get(approval.execution_id)

    def shown_approvals(self) -> list[Approval]:
        items = list(self.approvals.values())
        if self.decided:
            items.sort(key=lambda a: a.decided_at or a.expires_at or a.created_at,
                       reverse=True)
        else:
            items.sort(key=lambda a: a.created_at)
        if self.filter_text:
            needle = self.filter_text.lower()
            items = [a for a in items if needle in " ".join((
                f"{a.namespace}.{a.flow_id}", a.title, a.id, a.execution_id, a.status,
                a.decided_by or "", a.comment or "",
                requester(a, self.context_for(a)))).lower()]
        return items

    def rebuild(self) -> None:
        if not self.query("#table"):
            return
        now = self.deck.clock.now()
        app = self.deck
        rows: list[tuple[str, list[Text]]] = []
        for a in self.shown_approvals():
            if self.decided:
                rows.append((a.id, [
                    Text(local_time(a.decided_at)),
                    safe_text(a.status, 10, rich_style(app, STATUS_VARIABLES.get(
                        a.status, "foreground"), bold=True)),
                    safe_text(a.decided_by or ("timer" if a.status == "expired" else "-"), 60),
                    safe_text(f"{a.namespace}.{a.flow_id}", 120), safe_text(a.title, 300),
                    safe_text(a.comment or "-", 300)]))
            else:
                rows.append((a.id, [
                    Text(waiting_text((now - a.created_at).total_seconds()),
                         style=rich_style(app, "state-paused")),
                    safe_text(f"{a.namespace}.{a.flow_id}", 120), safe_text(a.title, 300),
                    Text(short_id(a.execution_id)), Text(expiry_text(a, now)),
                    Text(str(len(a.rows))), Text("yes" if a.allow_bulk_approval else "-")]))
        table = self.table
        table.columns = DECIDED_COLUMNS if self.decided else PENDING_COLUMNS
        self.source.set_rows(rows)
        table.empty = self.empty_text()
        table.reset()
        if self.decided:
            parts = [f"Approvals — decided ({len(rows)}, newest first; h: the queue)"]
        else:
            parts = [f"Approvals ({len(rows)} pending, oldest first; h: the decided ones)"]
        if self.filter_text:
            parts.append(f"filter: {sanitize_line(self.filter_text, 40)}")
        if table.marked:
            parts.append(f"{len(table.marked)} marked")
        caps = self.deck.capabilities
        if caps is not None and caps.kind == "kestra":  # pauses; what this version lacks
            parts.append("Kestra: paused executions" + "".join(
                f"; cannot {sanitize_line(text, 80)}" for text in caps.lacking))
        self.query_one("#title", Static).update(Content("  │  ".join(parts)))

    def empty_text(self) -> str:
        if self.updated_at is None:
            return "loading…"
        if self.filter_text:
            return "No approval matches the filter (esc clears it)."
        if self.decided:
            return "Nothing decided yet (h: back to the queue)."
        return "Nothing waits for a decision. Approval tasks in a flow put their requests here."

    def current(self) -> Approval | None:
        key = self.table.current_key()
        return self.approvals.get(key) if key else None

    def apply_filter(self) -> None:
        self.rebuild()

    def handle_back(self) -> bool:
        if self.close_filter():
            return True
        if self.table.marked:
            self.table.marked.clear()
            self.rebuild()
            return True
        return False

    def action_toggle_history(self) -> None:
        self.decided = not self.decided
        self.approvals = {}
        self.table.marked.clear()
        self.updated_at = None
        self.rebuild()
        self.refresh_bindings()
        self.reload()

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        allowed = super().check_action(action, parameters)
        if allowed and self.decided and action in ("approve", "reject", "bulk_approve", "mark"):
            return None  # the decided ones: nothing to decide
        return allowed

    def action_mark(self) -> None:
        if self.table.current_key() is None:
            self.nothing_selected()
            return
        self.table.toggle_mark()
        self.rebuild()

    def action_reload(self) -> None:
        self.reload()

    def action_open(self) -> None:
        approval = self.current()
        if approval is None:
            self.nothing_selected()
            return
        self.app.push_screen(ApprovalScreen(approval.id))

    def _decide_current(self, approve: bool) -> None:
        approval = self.current()
        if approval is None:
            self.nothing_selected()
            return
        if approval.status != "pending":
            self.deck.toast(f"already {approval.status}", severity="warning")
            return
        self.ask_decision([approval], approve)

    def action_approve(self) -> None:
        self._decide_current(True)

    def action_reject(self) -> None:
        self._decide_current(False)

    def action_bulk_approve(self) -> None:
        marked = [self.approvals[k] for k in sorted(self.table.marked,
                                                     key=self._marked_order)
                  if k in self.approvals]
        if not marked:
            self.deck.toast("mark approvals with space first", severity="warning")
            return
        refused = [a for a in marked if not a.allow_bulk_approval]
        if refused:
            self.deck.toast(f"bulk approval is not allowed for: "
                            f"{', '.join(sanitize_line(a.title, 60) for a in refused)}",
                            severity="error")
            return
        self.ask_decision(marked, True)

    def _marked_order(self, key: str) -> tuple[datetime, str]:
        approval = self.approvals.get(key)
        return (approval.created_at, key) if approval is not None else (datetime.max, key)

    @work(group="decide")
    async def decide_worker(self, ids: list[str], approve: bool, comment: str | None) -> None:
        await self._decide(ids, approve, comment)

    def on_action_done(self, message: ActionDone) -> None:
        message.stop()
        if message.text:
            self.deck.toast(message.text)
        self.table.marked.clear()
        self.reload()


class ApprovalScreen(DeckScreen, Decider):
    SCOPE = "approval"
    BINDINGS = bindings_for("approval")
    DEFAULT_CSS = """
    ApprovalScreen VerticalScroll { height: 1fr; padding: 0 1; }
    ApprovalScreen #decision { height: auto; padding: 0 1; background: $boost; }
    """

    def __init__(self, approval_id: str) -> None:
        super().__init__()
        self.approval_id = approval_id
        self.approval: Approval | None = None
        self.execution: Execution | None = None
        self.flow: FlowInfo | None = None
        self.conflict: str | None = None

    def compose(self) -> ComposeResult:
        yield StatusBar()
        yield Static(Content("loading…"), id="decision")
        with VerticalScroll():
            yield Static(id="body")
        yield Footer()

    def on_mount(self) -> None:
        self.load()

    def reload(self) -> None:
        self.load()

    @work(group="load", exclusive=True)
    async def load(self) -> None:
        backend = self.deck.backend
        try:
            approval = await backend.get_approval(self.approval_id)
            execution = await backend.get_execution(approval.execution_id)
            try:
                flow: FlowInfo | None = await backend.get_flow(approval.namespace,
                                                               approval.flow_id)
            except FlowdeckError:
                flow = None
        except BackendUnavailable as exc:
            self.post_message(ConnectionLost(str(exc)))
            return
        except FlowdeckError as exc:
            self.post_message(ActionFailed(f"approval {short_id(self.approval_id)}: {exc}"))
            return
        self.post_message(ApprovalContext(approval, execution, flow))

    def on_approval_context(self, message: ApprovalContext) -> None:
        self.approval, self.execution, self.flow = (message.approval, message.execution,
                                                    message.flow)
        self.stamp()
        self.deck.mark_connected()
        self.render_approval()

    def on_live_event(self, item: Execution | Approval) -> None:
        if isinstance(item, Approval) and item.id == self.approval_id:
            self.approval = item
            self.render_approval()
        elif isinstance(item, Execution) and self.approval and \
                item.id == self.approval.execution_id:
            self.execution = item
            self.render_approval()

    def context_for(self, approval: Approval) -> Execution | None:
        return self.execution if approval.execution_id == (
            self.execution.id if self.execution else None) else None

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        allowed = super().check_action(action, parameters)
        if allowed and action in ("approve", "reject") and self.approval is not None \
                and self.approval.status != "pending":
            return None  # shown greyed: already decided
        return allowed

    def render_approval(self) -> None:
        a = self.approval
        if a is None:
            return
        if not (self.query("#decision") and self.query("#body")):
            # Not composed yet (#body, inside its scroll container, mounts last): try again
            # once it is, so what arrived early is not lost.
            self.call_after_refresh(self.render_approval)
            return
        app = self.deck
        now = app.clock.now()
        head = Text(end="")
        if a.status == "pending":
            head.append("PENDING", style=rich_style(app, "state-paused", bold=True))
            head.append(f"  waiting {waiting_text((now - a.created_at).total_seconds())}")
            if a.expires_at is not None:
                head.append(f"  · expires {local_time(a.expires_at)} "
                            f"({expiry_text(a, now)})")
            if a.require_comment:
                head.append("  · a comment is required")
        else:
            head.append(a.status.upper(), style=rich_style(
                app, STATUS_VARIABLES.get(a.status, "foreground"), bold=True))
            who = sanitize_line(a.decided_by or "the expiry timer", 80)
            head.append(f" by {who} at {local_time(a.decided_at)}")
            if a.comment:
                head.append(" — " + sanitize_line(a.comment, 500))
        if self.conflict:
            head.append("\n" + sanitize_line(self.conflict, 500),
                        style=rich_style(app, "error"))
        self.query_one("#decision", Static).update(head)

        body = Text(end="")
        body.append(sanitize_line(a.title, 300) + "\n", style="bold")
        if a.description:
            body.append(sanitize(a.description) + "\n")
        body.append(f"\nflow {sanitize_line(a.namespace + '.' + a.flow_id, 200)}  task "
                    f"{sanitize_line(a.task_id, 100)}  approval {a.id}\n")
        body.append(f"requested by {requester(a, self.execution)}  at "
                    f"{local_time(a.created_at)}\n")
        fields = a.display_fields or sorted({k for row in a.rows for k in row})
        if a.rows:
            body.append("\n")
            body.append_text(rows_text(app, fields, a.rows, self.body_width()))
        ex = self.execution
        if ex is not None:
            body.append("\nExecution so far ", style="bold")
            body.append(f"{ex.id}  ")
            body.append(ex.state.current, style=rich_style(app, state_variable(
                ex.state.current), bold=True))
            body.append("\n")
            for tr in ex.task_runs:
                body.append(f"  {sanitize_line(tr.task_id, 60):<24} ")
                body.append(tr.state.current, style=rich_style(app, state_variable(
                    tr.state.current)))
                body.append("\n")
            body.append("Inputs\n", style="bold")
            body.append(sanitize(json.dumps(ex.inputs or {}, indent=2, ensure_ascii=False,
                                            default=str)) + "\n")
        if self.flow is not None and self.flow.description:
            body.append("\nFlow: " + sanitize(self.flow.description) + "\n")
        self.query_one("#body", Static).update(body)
        self.refresh_bindings()

    def body_width(self) -> int:
        """The width the rows are laid out in (the terminal's, before the first layout),
        less room for the scroll bar that long rows bring."""
        width = self.query_one("#body", Static).content_region.width
        return (width if width > 0 else max(20, self.app.size.width - 4)) - SCROLLBAR

    def on_resize(self) -> None:
        self.render_approval()

    def action_approve(self) -> None:
        if self.approval is not None:
            self.ask_decision([self.approval], True)

    def action_reject(self) -> None:
        if self.approval is not None:
            self.ask_decision([self.approval], False)

    @work(group="decide")
    async def decide_worker(self, ids: list[str], approve: bool, comment: str | None) -> None:
        await self._decide(ids, approve, comment)

    def on_action_failed(self, message: ActionFailed) -> None:
        if message.text.startswith("not changed"):
            self.conflict = message.text
            self.render_approval()

    def on_action_done(self, message: ActionDone) -> None:
        message.stop()
        if message.text:
            self.deck.toast(message.text)
        self.load()
