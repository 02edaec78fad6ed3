"""The approvals queue (oldest first) and one approval with its context and decision."""

from __future__ import annotations

import json
from dataclasses import dataclass
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
from flowdeck.core.sanitize import sanitize, sanitize_line
from flowdeck.core.timefmt import format_instant
from flowdeck.tui.commands import bindings_for
from flowdeck.tui.format import safe_text, short_id, waiting_text
from flowdeck.tui.messages import ActionDone, ActionFailed, ApprovalsLoaded, ConnectionLost
from flowdeck.tui.screens.base import DeckScreen, FilteredListScreen
from flowdeck.tui.theme import rich_style, state_variable
from flowdeck.tui.widgets.confirm import ConfirmScreen, TextPrompt
from flowdeck.tui.widgets.list_source import ListSource
from flowdeck.tui.widgets.status import StatusBar
from flowdeck.tui.widgets.table import Column, VirtualTable


@dataclass
class ApprovalContext(Message):
    approval: Approval
    execution: Execution
    flow: FlowInfo | None


COLUMNS = [Column("waiting", "WAITING", 8, "right"), Column("flow", "FLOW", 28),
           Column("title", "TITLE"), Column("execution", "EXECUTION", 9),
           Column("bulk", "BULK", 4)]


class Decider:
    """Approve/reject with the comment rules, shared by the queue and the detail screen."""

    deck: Any

    def ask_decision(self, approvals: list[Approval], approve: bool) -> None:
        if not approvals:
            return
        verb = "Approve" if approve else "Reject"
        required = any(a.require_comment for a in approvals)
        title = (sanitize_line(approvals[0].title, 200) if len(approvals) == 1
                 else f"{len(approvals)} approvals")
        body = ("A comment is required." if required else
                "Comment (optional; enter to skip).")

        def answered(comment: str | None) -> None:
            if comment is None:
                return
            self.decide_worker([a.id for a in approvals], approve, comment or None)  # type: ignore[attr-defined]

        self.deck.push_screen(TextPrompt(f"{verb}: {title}", body, required=required,
                                         confirm=verb), answered)

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
                post(ActionDone(f"{result.status} by {result.decided_by}: {result.title}"))
        except ConflictError as exc:
            post(ActionFailed(f"not changed — {exc}"))
            post(ActionDone("", refresh=True))
        except BackendUnavailable as exc:
            post(ConnectionLost(str(exc)))
        except FlowdeckError as exc:
            post(ActionFailed(str(exc)))


class ApprovalsScreen(FilteredListScreen, Decider):
    SCOPE = "approvals"
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
        self.filter_text = ""

    def compose(self) -> ComposeResult:
        yield StatusBar()
        yield Static(id="title")
        yield VirtualTable(COLUMNS, self.source, id="table")
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
        self.table.marked.clear()
        self.updated_at = None
        self.rebuild()

    def reload(self) -> None:
        if self.deck.capabilities is None:
            return  # the app reloads every screen once connected
        self.load()

    @work(group="load", exclusive=True)
    async def load(self) -> None:
        try:
            items = await self.deck.backend.list_approvals("pending")
        except BackendUnavailable as exc:
            self.post_message(ConnectionLost(str(exc)))
            return
        except FlowdeckError as exc:
            self.post_message(ActionFailed(f"cannot list approvals: {exc}"))
            return
        self.post_message(ApprovalsLoaded(items))

    def on_approvals_loaded(self, message: ApprovalsLoaded) -> None:
        message.stop()
        self.approvals = {a.id: a for a in message.approvals}
        self.stamp()
        self.rebuild()

    def on_live_event(self, message: object) -> None:
        if not isinstance(message, Approval):
            return
        if message.status == "pending":
            self.approvals[message.id] = message
        else:
            self.approvals.pop(message.id, None)
            self.table.marked.discard(message.id)
        self.stamp()
        self.rebuild()

    def poll(self) -> None:
        if self.app.screen is self:
            self.reload()

    def tick(self) -> None:
        if self.approvals:
            self.rebuild()

    def shown_approvals(self) -> list[Approval]:
        items = sorted(self.approvals.values(), key=lambda a: a.created_at)
        if self.filter_text:
            needle = self.filter_text.lower()
            items = [a for a in items if needle in
                     f"{a.namespace}.{a.flow_id} {a.title} {a.id}".lower()]
        return items

    def rebuild(self) -> None:
        if not self.query("#table"):
            return
        now = self.deck.clock.now()
        app = self.deck
        rows = []
        for a in self.shown_approvals():
            rows.append((a.id, [
                Text(waiting_text((now - a.created_at).total_seconds()),
                     style=rich_style(app, "state-paused")),
                safe_text(f"{a.namespace}.{a.flow_id}", 120),
                safe_text(a.title, 300),
                Text(short_id(a.execution_id)),
                Text("yes" if a.allow_bulk_approval else "-"),
            ]))
        self.source.set_rows(rows)
        self.table.reset()
        parts = [f"Approvals ({len(rows)} pending, oldest first)"]
        if self.filter_text:
            parts.append(f"filter: {sanitize_line(self.filter_text, 40)}")
        if self.table.marked:
            parts.append(f"{len(self.table.marked)} marked")
        self.query_one("#title", Static).update(Content("  │  ".join(parts)))

    def current(self) -> Approval | None:
        key = self.table.current_key()
        return self.approvals.get(key) if key else None

    def handle_back(self) -> bool:
        if self.close_filter():
            return True
        if self.table.marked:
            self.table.marked.clear()
            self.rebuild()
            return True
        return False

    def action_mark(self) -> None:
        self.table.toggle_mark()
        self.rebuild()

    def action_reload(self) -> None:
        self.reload()

    def action_open(self) -> None:
        approval = self.current()
        if approval is not None:
            self.app.push_screen(ApprovalScreen(approval.id))

    def action_approve(self) -> None:
        approval = self.current()
        if approval is not None:
            self.ask_decision([approval], True)

    def action_reject(self) -> None:
        approval = self.current()
        if approval is not None:
            self.ask_decision([approval], False)

    def action_bulk_approve(self) -> None:
        marked = [self.approvals[k] for k in sorted(self.table.marked) if k in self.approvals]
        if not marked:
            self.deck.toast("mark approvals with space first", severity="warning")
            return
        refused = [a for a in marked if not a.allow_bulk_approval]
        if refused:
            self.deck.toast(f"bulk approval is not allowed for: "
                            f"{', '.join(sanitize_line(a.title, 60) for a in refused)}",
                            severity="error")
            return

        def answered(yes: bool | None) -> None:
            if yes:
                self.ask_decision(marked, True)

        self.app.push_screen(ConfirmScreen(
            "Approve marked", f"Approve {len(marked)} marked approvals?",
            confirm="Approve", danger=False), answered)

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
        self.render_approval()

    def on_live_event(self, message: object) -> None:
        if isinstance(message, Approval) and message.id == self.approval_id:
            self.approval = message
            self.render_approval()
        elif isinstance(message, Execution) and self.approval and \
                message.id == self.approval.execution_id:
            self.execution = message
            self.render_approval()

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        allowed = super().check_action(action, parameters)
        if allowed and action in ("approve", "reject") and self.approval is not None \
                and self.approval.status != "pending":
            return None  # shown greyed: already decided
        return allowed

    def render_approval(self) -> None:
        a = self.approval
        if a is None or not self.query("#decision"):
            return  # a live event before this screen is composed: rendered on mount
        app = self.deck
        now = app.clock.now()
        head = Text(end="")
        if a.status == "pending":
            head.append("PENDING", style=rich_style(app, "state-paused", bold=True))
            head.append(f"  waiting {waiting_text((now - a.created_at).total_seconds())}")
            if a.require_comment:
                head.append("  · a comment is required")
        else:
            head.append(a.status.upper(), style=rich_style(
                app, "state-success" if a.status == "approved" else "state-failed", bold=True))
            who = sanitize_line(a.decided_by or "the expiry timer", 80)
            when = format_instant(a.decided_at) if a.decided_at else "?"
            head.append(f" by {who} at {when}")
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
        fields = a.display_fields or sorted({k for row in a.rows for k in row})
        if a.rows:
            widths = [max(len(f), *(len(sanitize_line(str(r.get(f, "")), 80)) for r in a.rows))
                      for f in fields]
            body.append("\n" + "  ".join(sanitize_line(f, 40).ljust(w)
                                         for f, w in zip(fields, widths, strict=True)) + "\n",
                        style=rich_style(app, "secondary", bold=True))
            for row in a.rows:
                body.append("  ".join(sanitize_line(str(row.get(f, "")), 80).ljust(w)
                                      for f, w in zip(fields, widths, strict=True)) + "\n")
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

