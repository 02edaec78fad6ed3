"""Webhooks (`:wh`): every outgoing webhook delivery, the public API's keys, and the messages
agents delivered, one view at a time (`v` moves to the next).

- **deliveries** (newest first): event, target, URL, status, attempts, the last answer or
  error and when the next retry falls due; `R` sends the selected one again (after a
  confirmation naming it, unless `[deck] confirm` is off), `enter` opens its execution;
- **API keys**: read-only, never a secret (create and revoke them with `flowdeck api-key`);
- **messages**: what agents delivered (customer, recipient, status, text); `enter` opens the
  execution that sent it.

Everything is read through `flowdeck.client.public` (the embedded engine, or flowdeck's admin
routes over HTTP; a Kestra has none). Deliveries and keys need the admin role, messages the
viewer role: a view the deck's role may not read says so instead of failing. The lists reload
while the screen is shown: on ctrl+r, every `refresh` seconds and shortly after a change of any
execution (a change is what makes new deliveries and messages).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from rich.text import Text
from textual import work
from textual.app import ComposeResult
from textual.content import Content
from textual.message import Message
from textual.timer import Timer
from textual.widgets import Footer, Input, Static

from flowdeck.client.public import (
    DeliveryInfo,
    KeyInfo,
    MessageInfo,
    PublicAdmin,
    PublicAdminUnavailable,
    public_admin,
)
from flowdeck.core.errors import BackendUnavailable, FlowdeckError
from flowdeck.core.models import Approval, Execution
from flowdeck.core.sanitize import sanitize_line
from flowdeck.tui.commands import ADMIN, bindings_for, role_allows
from flowdeck.tui.format import local_time, safe_text, short_id, waiting_text
from flowdeck.tui.messages import ActionDone, ActionFailed, ConnectionLost
from flowdeck.tui.screens.base import ListScreen
from flowdeck.tui.screens.execution import ExecutionScreen
from flowdeck.tui.theme import rich_style
from flowdeck.tui.widgets.confirm import ConfirmScreen
from flowdeck.tui.widgets.list_source import ListSource
from flowdeck.tui.widgets.status import StatusBar
from flowdeck.tui.widgets.table import Column, VirtualTable, compact_time

VIEWS = ("deliveries", "keys", "messages")
TITLES = {"deliveries": "Webhook deliveries", "keys": "API keys", "messages": "Agent messages"}
#: The role each view needs to be read.
NEEDS = {"deliveries": ADMIN, "keys": ADMIN, "messages": None}
#: Rows a view reads (newest first).
PAGE = 500
#: A burst of execution changes reloads the view once, this long after the first.
RELOAD_DEBOUNCE = 1.0

COLUMNS = {
    "deliveries": [Column("created", "CREATED", 19, narrow=11, compact=compact_time),
                   Column("event", "EVENT", 26, narrow=18),
                   Column("url", "TARGET", min_width=12),
                   Column("status", "STATUS", 9), Column("tries", "TRIES", 5, "right"),
                   Column("last", "LAST", 14, narrow=8), Column("next", "NEXT", 8)],
    "keys": [Column("name", "NAME", min_width=10), Column("prefix", "PREFIX", 9),
             Column("status", "STATUS", 8), Column("workflows", "WORKFLOWS", 18, narrow=8),
             Column("usage", "USAGE", 11, "right", narrow=9),
             Column("expires", "EXPIRES", 10), Column("webhook", "WEBHOOK", 18, narrow=7),
             Column("used", "LAST USED", 19, narrow=11, compact=compact_time)],
    "messages": [Column("sent", "SENT", 19, narrow=11, compact=compact_time),
                 Column("execution", "EXECUTION", 9), Column("customer", "CUSTOMER", 10),
                 Column("to", "TO", 15, narrow=0), Column("status", "STATUS", 7),
                 Column("content", "CONTENT", min_width=12)],
}
STATUS_VARIABLES = {"delivered": "state-success", "sent": "state-success",
                    "active": "state-success", "pending": "state-running",
                    "sending": "state-running", "dead": "state-failed", "failed": "state-failed",
                    "inactive": "state-killed", "expired": "state-warning"}


@dataclass
class ViewRead(Message):
    """What a view's load found (one list filled, the others None)."""

    view: str
    deliveries: list[DeliveryInfo] | None = None
    keys: list[KeyInfo] | None = None
    messages: list[MessageInfo] | None = None
    total: int = 0


@dataclass
class ViewUnavailable(Message):
    view: str
    reason: str


def next_retry(d: DeliveryInfo, now: datetime) -> str:
    if d.status != "pending" or d.next_at is None:
        return "-"
    left = (d.next_at - now).total_seconds()
    return "now" if left <= 0 else f"in {waiting_text(left)}"


def last_answer(d: DeliveryInfo) -> str:
    if d.last_error:
        return d.last_error
    if d.last_status is not None:
        return f"HTTP {d.last_status}"
    return "-"


class WebhooksScreen(ListScreen):
    SCOPE = "webhooks"
    AUTO_FOCUS = ""  # the table, from on_mount
    BINDINGS = bindings_for("webhooks")
    DEFAULT_CSS = """
    WebhooksScreen #title { height: 1; background: $boost; padding: 0 1; }
    WebhooksScreen #message { height: auto; padding: 0 1; display: none; }
    WebhooksScreen #message.-shown { display: block; }
    WebhooksScreen #detail { height: auto; max-height: 6; padding: 0 1; background: $boost;
        display: none; }
    WebhooksScreen #detail.-shown { display: block; }
    WebhooksScreen #filter { dock: bottom; display: none; }
    WebhooksScreen #filter.-shown { display: block; }
    WebhooksScreen.-stale VirtualTable { opacity: 60%; }
    """

    def __init__(self) -> None:
        super().__init__()
        self.view = "deliveries"
        self.source = ListSource()
        self.deliveries: list[DeliveryInfo] = []
        self.keys: list[KeyInfo] = []
        self.messages: list[MessageInfo] = []
        self.total = 0
        self.loading = False
        self.problem: str | None = None
        self._reload_timer: Timer | None = None
        self._dirty = False

    def compose(self) -> ComposeResult:
        yield StatusBar()
        yield Static(id="title")
        yield Static(id="message")
        yield VirtualTable(COLUMNS[self.view], self.source, id="table")
        yield Static(id="detail")
        yield Input(placeholder="filter", id="filter")
        yield Footer()

    def on_mount(self) -> None:
        self.table.focus()
        self.rebuild()
        self.reload()
        self.set_interval(1.0, self.tick)
        self.set_interval(self.deck.refresh_seconds, self.poll)

    def on_screen_resume(self) -> None:
        super().on_screen_resume()
        if self._dirty:
            self._dirty = False
            self.reload()

    # -- reading ---------------------------------------------------------------------------

    def may_read(self, view: str) -> bool:
        return role_allows(self.deck.role, NEEDS[view])

    def admin(self) -> PublicAdmin:
        return public_admin(self.deck.backend, self.deck.capabilities)

    def reload(self) -> None:
        if self.deck.capabilities is None:
            return  # the app reloads every screen once connected
        if not self.may_read(self.view):
            self.loading = False
            self.problem = (f"the {TITLES[self.view].lower()} need the admin role; this deck "
                            f"has the {self.deck.role} role")
            self.updated_at = None
            self.rebuild()
            return
        try:
            admin = self.admin()
        except PublicAdminUnavailable as exc:
            self.problem = str(exc)
            self.rebuild()
            return
        self.loading = True
        self.load(admin, self.view)

    @work(group="load", exclusive=True)
    async def load(self, admin: PublicAdmin, view: str) -> None:
        try:
            if view == "deliveries":
                deliveries, total = await admin.deliveries(size=PAGE)
                keys = await admin.list_keys()  # their names, for the targets
                self.post_message(ViewRead(view, deliveries=deliveries, keys=keys,
                                           total=total))
            elif view == "keys":
                keys = await admin.list_keys()
                self.post_message(ViewRead(view, keys=keys, total=len(keys)))
            else:
                messages, total = await admin.messages(size=PAGE)
                self.post_message(ViewRead(view, messages=messages, total=total))
        except BackendUnavailable as exc:
            self.post_message(ConnectionLost(str(exc)))
            self.post_message(ViewUnavailable(view, str(exc)))
        except FlowdeckError as exc:  # no such routes, the role, ...
            self.post_message(ViewUnavailable(view, str(exc)))

    def on_view_read(self, message: ViewRead) -> None:
        message.stop()
        if message.view != self.view:
            return  # the operator moved on meanwhile
        if message.deliveries is not None:
            self.deliveries = message.deliveries
        if message.keys is not None:
            self.keys = message.keys
        if message.messages is not None:
            self.messages = message.messages
        self.total = message.total
        self.loading = False
        self.problem = None
        self.stamp()
        self.deck.mark_connected()
        self.rebuild()

    def on_view_unavailable(self, message: ViewUnavailable) -> None:
        message.stop()
        if message.view == self.view:
            self.loading = False
            self.problem = message.reason
            self.rebuild()

    def poll(self) -> None:
        if self.is_current:
            self.reload()

    def tick(self) -> None:
        if self.view == "deliveries" and any(d.status == "pending" for d in self.deliveries):
            self.rebuild()  # "next retry in 4s"

    def on_live_event(self, item: Execution | Approval) -> None:
        """A change of any execution may have queued deliveries or sent messages: reload
        once, shortly, while shown (else when shown again)."""
        if not isinstance(item, Execution) or self.view == "keys":
            return
        if not self.is_current:
            self._dirty = True
            return
        if self._reload_timer is None:
            self._reload_timer = self.set_timer(RELOAD_DEBOUNCE, self._debounced_reload)

    def _debounced_reload(self) -> None:
        self._reload_timer = None
        self.reload()

    def reset_for_backend(self) -> None:
        self.workers.cancel_group(self, "load")
        self.deliveries, self.keys, self.messages = [], [], []
        self.total = 0
        self.problem = None
        self.loading = False
        self.updated_at = None
        self.table.forget()
        self.rebuild()

    def is_stale(self) -> bool:
        stale = super().is_stale() or (self.problem is not None and self.updated_at is not None)
        self.set_class(stale, "-stale")
        return stale

    # -- showing ---------------------------------------------------------------------------

    def matches(self, *parts: str | None) -> bool:
        if not self.filter_text:
            return True
        return self.filter_text.lower() in " ".join(p or "" for p in parts).lower()

    def key_names(self) -> dict[str, str]:
        return {f"api-key:{k.id}": k.name for k in self.keys}

    def rows(self) -> list[tuple[str, list[Text]]]:
        app = self.deck
        now = app.clock.now()

        def status(value: str) -> Text:
            variable = STATUS_VARIABLES.get(value)
            return safe_text(value, 12, rich_style(app, variable) if variable else None)

        out: list[tuple[str, list[Text]]] = []
        if self.view == "deliveries":
            for d in self.deliveries:
                if self.matches(d.event, d.target, d.url, d.status, d.id, d.execution_id,
                                d.last_error):
                    out.append((d.id, [
                        Text(local_time(d.created), end=""), safe_text(d.event, 60),
                        safe_text(d.url, 300), status(d.status), Text(str(d.attempts)),
                        safe_text(last_answer(d), 200), Text(next_retry(d, now), end="")]))
        elif self.view == "keys":
            for k in self.keys:
                if self.matches(k.name, k.id, k.status, k.webhook_url,
                                " ".join(k.allowed_workflows)):
                    out.append((k.id, [
                        safe_text(k.name, 120), safe_text(k.prefix + "…", 12), status(k.status),
                        safe_text(", ".join(k.allowed_workflows) or "all", 200),
                        Text(f"{k.usage_count}/{k.usage_limit}", end=""),
                        Text(k.expires_at.strftime("%Y-%m-%d") if k.expires_at else "never",
                             end=""),
                        safe_text(k.webhook_url or "-", 300),
                        Text(local_time(k.last_used_at) if k.last_used_at else "never",
                             end="")]))
        else:
            for m in self.messages:
                if self.matches(m.customer_id, m.recipient, m.content, m.status,
                                m.execution_id, m.workflow_id):
                    out.append((m.id, [
                        Text(local_time(m.created_at), end=""),
                        Text(short_id(m.execution_id), end=""),
                        safe_text(m.customer_id or "-", 40), safe_text(m.recipient or "-", 40),
                        status(m.status), safe_text(m.content, 300)]))
        return out

    def rebuild(self) -> None:
        if not self.query("#table"):
            return
        rows = self.rows()
        table = self.table
        table.columns = COLUMNS[self.view]
        self.source.set_rows(rows)
        table.empty = self.empty_text()
        table.reset()
        names = [f"[{TITLES[v]}]" if v == self.view else TITLES[v] for v in VIEWS]
        parts = ["  ".join(names)]
        shown = len(rows) if not self.filter_text else f"{len(rows)} shown"
        count = f"{shown} of {self.total}" if self.total > len(rows) else str(shown)
        if self.updated_at is not None:
            parts.append(count + (", newest first" if self.view != "keys" else ""))
        if self.filter_text:
            parts.append(f"filter: {sanitize_line(self.filter_text, 40)}")
        self.query_one("#title", Static).update(Content("  │  ".join(parts)))
        self.render_message()
        self.render_detail()
        self.refresh_bindings()

    def empty_text(self) -> str:
        if self.problem is not None:
            return "—"
        if self.updated_at is None:
            return "loading…"
        if self.filter_text:
            return "Nothing matches the filter (esc clears it)."
        if self.view == "deliveries":
            return ("No webhook deliveries yet. An API key with a webhook URL gets its "
                    "executions' events here.")
        if self.view == "keys":
            return "No API keys. Create one with: flowdeck api-key create --name NAME"
        return "No agent messages yet. An approved agent run delivers its messages here."

    def render_message(self) -> None:
        box = self.query_one("#message", Static)
        text = Text(end="")
        if self.problem is not None:
            text.append("✕ " + sanitize_line(self.problem, 500),
                        style=rich_style(self.app, "error"))
        elif self.view == "keys" and self.updated_at is not None:
            text.append("Read-only: keys are made and revoked with `flowdeck api-key`.",
                        style=rich_style(self.app, "text-muted"))
        box.update(text)
        box.set_class(bool(text), "-shown")

    def current_delivery(self) -> DeliveryInfo | None:
        key = self.table.current_key()
        if self.view != "deliveries" or key is None:
            return None
        return next((d for d in self.deliveries if d.id == key), None)

    def current_message(self) -> MessageInfo | None:
        key = self.table.current_key()
        if self.view != "messages" or key is None:
            return None
        return next((m for m in self.messages if m.id == key), None)

    def current_key_info(self) -> KeyInfo | None:
        key = self.table.current_key()
        if self.view != "keys" or key is None:
            return None
        return next((k for k in self.keys if k.id == key), None)

    def on_virtual_table_cursor_moved(self, message: VirtualTable.CursorMoved) -> None:
        if message.table.id == "table":
            self.render_detail()
            self.refresh_bindings()

    def render_detail(self) -> None:
        box = self.query_one("#detail", Static)
        text = Text(end="")
        delivery, item, key = (self.current_delivery(), self.current_message(),
                               self.current_key_info())
        if delivery is not None:
            who = self.key_names().get(delivery.target, delivery.target)
            text.append(f"{sanitize_line(delivery.event, 60)} → ", style="bold")
            text.append(sanitize_line(delivery.url, 300))
            text.append(f"\ntarget {sanitize_line(who, 120)}  source "
                        f"{sanitize_line(delivery.source, 40)}  delivery {delivery.id}")
            if delivery.execution_id:
                text.append(f"\nexecution {delivery.execution_id} (enter: open)")
            if delivery.last_error:
                text.append("\n" + sanitize_line(delivery.last_error, 500),
                            style=rich_style(self.app, "error"))
        elif item is not None:
            text.append(f"{sanitize_line(item.customer_id or '-', 60)} → "
                        f"{sanitize_line(item.recipient or '-', 60)}", style="bold")
            text.append(f"  {item.status}  via {sanitize_line(item.transport, 20)}  "
                        f"message id {sanitize_line(item.message_id, 120)}")
            text.append("\n" + sanitize_line(item.content, 2000))
            if item.error:
                text.append("\n" + sanitize_line(item.error, 500),
                            style=rich_style(self.app, "error"))
        elif key is not None:
            text.append(sanitize_line(key.name, 120), style="bold")
            text.append(f"  {key.status}  id {key.id}")
            if key.expires_at is not None:
                text.append(f"  expires {local_time(key.expires_at)}")
            workflows = ", ".join(key.allowed_workflows) or "every agent"
            text.append(f"\nmay execute {sanitize_line(workflows, 300)} · {key.usage_count} of "
                        f"{key.usage_limit} this month · created {local_time(key.created_at)}")
            if key.webhook_url:
                events = ", ".join(key.webhook_events) or "all events"
                signed = "signed" if key.has_webhook_secret else "unsigned"
                text.append(f"\nwebhook {sanitize_line(key.webhook_url, 300)} "
                            f"({sanitize_line(events, 200)}; {signed})")
        box.update(text)
        box.set_class(bool(text), "-shown")

    def apply_filter(self) -> None:
        self.rebuild()

    def handle_back(self) -> bool:
        return self.close_filter()

    # -- actions ---------------------------------------------------------------------------

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        allowed = super().check_action(action, parameters)
        if not allowed:
            return allowed
        if action == "redeliver":
            if self.view != "deliveries":
                return False
            delivery = self.current_delivery()
            if delivery is None or delivery.status == "pending":
                return None  # shown greyed: nothing to send again (yet)
        if action == "open_execution" and self.view == "keys":
            return False
        return allowed

    def action_next_view(self) -> None:
        self.view = VIEWS[(VIEWS.index(self.view) + 1) % len(VIEWS)]
        self.workers.cancel_group(self, "load")
        self.filter_text = ""
        self.filter_box.value = ""
        self.filter_box.remove_class("-shown")
        self.problem = None
        self.total = 0
        self.updated_at = None
        self.table.forget()  # the new view starts on its first row
        self.table.cursor = 0
        self.rebuild()
        self.reload()

    def action_reload(self) -> None:
        self.reload()

    def action_open_execution(self) -> None:
        delivery, item = self.current_delivery(), self.current_message()
        execution_id = (delivery.execution_id if delivery is not None
                        else item.execution_id if item is not None else None)
        if execution_id:
            self.app.push_screen(ExecutionScreen(execution_id))
        elif delivery is not None:
            self.deck.toast("this delivery is not about an execution", severity="warning")
        else:
            self.nothing_selected()

    def action_redeliver(self) -> None:
        delivery = self.current_delivery()
        if delivery is None:
            self.nothing_selected()
            return
        if delivery.status == "pending":
            self.deck.toast("this delivery is still pending: it is being sent",
                            severity="warning")
            return
        if not self.deck.confirm:
            self.redeliver(delivery.id)
            return

        def answered(yes: bool | None) -> None:
            if yes:
                self.redeliver(delivery.id)

        who = self.key_names().get(delivery.target, delivery.target)
        tries = f"{delivery.attempts} attempt{'s' if delivery.attempts != 1 else ''}"
        body = (f"{delivery.event} → {delivery.url}\n"
                f"  target {who}, delivery {delivery.id}\n"
                + (f"  execution {delivery.execution_id}\n" if delivery.execution_id else "")
                + f"  {delivery.status} after {tries}: {last_answer(delivery)}\n"
                "\nThe receiver gets it again (the same webhook-id), retried up to 3 times "
                "until it answers 2xx.")
        self.app.push_screen(ConfirmScreen("Redeliver 1 webhook delivery?", body,
                                           confirm="Redeliver", danger=False), answered)

    @work(group="redeliver")
    async def redeliver(self, delivery_id: str) -> None:
        try:
            await self.admin().redeliver(delivery_id)
        except FlowdeckError as exc:
            self.post_message(ActionFailed(f"redeliver {short_id(delivery_id)}: {exc}"))
            return
        self.post_message(ActionDone(f"redelivering {short_id(delivery_id)}"))

    def on_action_done(self, message: ActionDone) -> None:
        message.stop()
        self.deck.toast(message.text)
        self.reload()
