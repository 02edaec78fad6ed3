"""The one action catalogue: key bindings, the footer, `?` help and the ctrl+p palette.

Each `DeckAction` names a Textual action, its default key, the screens it belongs to and the
role it needs when it changes anything (read-only mode hides those everywhere, and so does a
token whose role is too low). Users rebind by id in `[tui.keys]` (`kill = "ctrl+x"`), which
goes to `App.set_keymap`. The `:` commands and the screens they open live in
`flowdeck.tui.registry`.
"""

from __future__ import annotations

from dataclasses import dataclass

from textual.binding import Binding, BindingType

from flowdeck.client.backend import ROLES

GLOBAL = "global"
#: Screens that show a list: `/` filters, `q` quits, `space` marks (where it can).
LIST_SCOPES = ("executions", "flows", "approvals", "staging", "releases", "release")

OPERATOR, APPROVER = "operator", "approver"


def role_allows(role: str | None, needed: str | None) -> bool:
    """Whether a caller with `role` may take an action that needs `needed`. An unknown role
    (None: the server does not say) allows everything, as before roles were reported."""
    if needed is None or role is None:
        return True
    rank = {name: i for i, name in enumerate(ROLES)}
    return rank.get(role, len(ROLES)) >= rank.get(needed, 0)


@dataclass(frozen=True, slots=True)
class DeckAction:
    id: str
    key: str
    action: str
    description: str
    scopes: tuple[str, ...]
    #: The role a state-changing action needs (None: it changes nothing).
    role: str | None = None
    footer: bool = True
    palette: bool = True
    key_display: str | None = None

    @property
    def mutates(self) -> bool:
        return self.role is not None


CATALOGUE: tuple[DeckAction, ...] = (
    # everywhere
    DeckAction("command", "colon", "app.command_mode", "Command", (GLOBAL,), key_display=":"),
    DeckAction("help", "question_mark", "app.help", "Help", (GLOBAL,), key_display="?"),
    DeckAction("back", "escape", "app.back", "Back", (GLOBAL,), footer=False, palette=False),
    DeckAction("quit", "ctrl+q", "app.quit", "Quit", (GLOBAL,), footer=False),
    # lists
    DeckAction("filter", "slash", "filter", "Filter", LIST_SCOPES, key_display="/"),
    DeckAction("open", "enter", "open", "Open", ("executions", "flows", "approvals")),
    DeckAction("mark", "space", "mark", "Mark", ("executions", "approvals")),
    DeckAction("sort", "s", "sort", "Sort column", ("executions",)),
    DeckAction("sort-reverse", "S", "sort_reverse", "Reverse sort", ("executions",),
               footer=False),
    DeckAction("reload", "ctrl+r", "reload", "Reload", LIST_SCOPES, footer=False),
    DeckAction("quit-list", "q", "app.quit", "Quit", LIST_SCOPES, footer=False,
               palette=False),
    # executions and execution detail
    DeckAction("kill", "ctrl+k", "kill", "Kill", ("executions", "execution"), role=OPERATOR),
    DeckAction("restart", "r", "restart", "Restart", ("executions", "execution"),
               role=OPERATOR),
    DeckAction("replay", "R", "replay", "Replay", ("executions", "execution"), role=OPERATOR),
    DeckAction("inputs-outputs", "i", "toggle_io", "Inputs/outputs", ("execution",)),
    # the log pane
    DeckAction("follow", "f", "log_follow", "Follow", ("execution",)),
    DeckAction("wrap", "w", "log_wrap", "Wrap", ("execution",)),
    DeckAction("timestamps", "t", "log_timestamps", "Time", ("execution",)),
    DeckAction("level", "v", "log_level", "Level", ("execution",)),
    DeckAction("search", "slash", "log_search", "Search", ("execution",), key_display="/"),
    DeckAction("next-match", "n", "log_next", "Next match", ("execution",), footer=False),
    DeckAction("prev-match", "N", "log_prev", "Previous match", ("execution",), footer=False),
    DeckAction("next-error", "e", "log_next_error", "Next error", ("execution",)),
    DeckAction("save-log", "ctrl+s", "log_save", "Save", ("execution",)),
    DeckAction("copy-line", "c", "log_copy", "Copy line", ("execution",)),
    # approvals
    DeckAction("approve", "a", "approve", "Approve", ("approvals", "approval"), role=APPROVER),
    DeckAction("reject", "x", "reject", "Reject", ("approvals", "approval"), role=APPROVER),
    DeckAction("bulk-approve", "A", "bulk_approve", "Approve marked", ("approvals",),
               role=APPROVER),
    DeckAction("history", "h", "toggle_history", "Pending/decided", ("approvals",)),
    # flows
    DeckAction("run", "ctrl+o", "run_flow", "Run", ("flows", "flow"), role=OPERATOR,
               key_display="^o"),
    # staging environments (`d` or k9s's ctrl+d; the dialog asks for the name typed exactly)
    DeckAction("clone-environment", "c", "clone_environment", "Clone", ("staging",),
               role=OPERATOR),
    DeckAction("delete-environment", "d,ctrl+d", "delete_environment", "Delete",
               ("staging",), role=OPERATOR),
    DeckAction("open-run", "o", "open_run", "Open run", ("staging",)),
    # releases (:rel): the projects, then one project's releases and environments
    DeckAction("open-project", "enter", "open_project", "Open", ("releases",)),
    DeckAction("deploy-release", "d", "deploy_release", "Deploy", ("release",),
               role=OPERATOR),
    DeckAction("approve-release", "a", "approve_release", "Approve", ("release",),
               role=APPROVER),
    DeckAction("revoke-approval", "x", "revoke_approval", "Revoke", ("release",),
               role=APPROVER),
    DeckAction("open-release-run", "o", "open_release_run", "Open run", ("release",)),
)

#: Textual action name -> the role it needs (the screen-local name, without `app.`).
ACTION_ROLES: dict[str, str] = {a.action: a.role for a in CATALOGUE if a.role is not None}

#: Keys that move in a list or a pane (the widgets' own bindings), for `?`.
MOVING_KEYS: tuple[tuple[str, str], ...] = (
    ("↑ ↓  k j", "move one row"),
    ("pgup pgdn", "move one screen"),
    ("home end  g G", "first / last row (in a log, End also follows again)"),
    ("tab", "next pane or field"),
)


def actions_for(scope: str) -> list[DeckAction]:
    return [a for a in CATALOGUE if scope in a.scopes]


def bindings_for(scope: str) -> list[BindingType]:
    """Textual bindings for one scope (the App gets GLOBAL); ids allow user rebinding."""
    return [Binding(a.key, a.action.removeprefix("app.") if scope == GLOBAL else a.action,
                    a.description, show=a.footer, id=a.id, key_display=a.key_display)
            for a in actions_for(scope) if a.key]


def key_text(key: str) -> str:
    """A binding's keys as the help shows them (`question_mark` -> `?`)."""
    names = {"colon": ":", "question_mark": "?", "slash": "/", "escape": "esc",
             "space": "space", "enter": "enter"}
    return ",".join(names.get(k, k) for k in key.split(","))
