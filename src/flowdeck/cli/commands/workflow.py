"""`flowdeck workflow submit|list|show|cancel`: FlowCtl workflows, in the FlowCtl API's words.

On the engine in the data dir, or with `--url`/`--profile` on a flowdeck server through its
FlowCtl routes. `submit` exits 0 once the workflow completed, 1 if it failed or was cancelled,
2 when the definition is refused (one line naming the tasks); without `--wait` on a server it
prints the queued workflow and returns. In-process it always waits: the engine runs in this
command, and leaving would stop the workflow until an engine next opens the data dir.
"""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path
from typing import Any

from flowdeck.cli.commands.approvals import decider
from flowdeck.cli.common import (
    EXIT_DETACHED,
    EXIT_FAILED,
    EXIT_INTERRUPTED,
    EXIT_OK,
    Context,
    Printer,
    UsageError,
    error,
)
from flowdeck.cli.options import Commands
from flowdeck.cli.session import Access, Session, open_session
from flowdeck.cli.waiting import reach_again
from flowdeck.client.flowctl import FlowctlClient, flowctl_client
from flowdeck.core.errors import BadRequestError, ConflictError, ValidationError
from flowdeck.core.flowctl import WORKFLOW_STATUSES, TaskView, WorkflowView
from flowdeck.core.timefmt import parse_instant

ID_HELP = "a workflow id, or a unique part of one: its first or last 8+ characters"
#: A definition file larger than this is refused before it is read (the API takes 1 MiB).
MAX_FILE_BYTES = 10 * 1024 * 1024
TASK_HEADERS = ["TASK", "TYPE", "STATUS", "PRIORITY", "DEPENDS ON", "RETRIES", "RESULT"]


def register(commands: Commands) -> None:
    actions = commands.group("workflow", "submit, list, show and cancel FlowCtl workflows "
                             "(JSON DAGs of generic, ci, etl and ml_training tasks)")
    submit = actions.add(
        "submit", "submit a workflow (a JSON file, - for stdin) and, with --wait, wait until "
        "it finishes; exits 0 if it completed, 1 if it failed or was cancelled", submit_cmd,
        json=True)
    submit.add_argument("file", metavar="FILE.json")
    submit.add_argument("--wait", action="store_true",
                        help="wait until it finishes, printing its tasks' progress (always, "
                        "in-process)")
    submit.add_argument("--timeout", type=float, metavar="SECONDS",
                        help="with --wait: give up waiting after this long (exit 1)")
    submit.add_argument("--by", default=None, metavar="NAME",
                        help="who submits, in-process (default: the login name; a server "
                        "records its caller)")
    listing = actions.add("list", "list workflows, newest first", list_cmd, json=True)
    listing.add_argument("--status", choices=WORKFLOW_STATUSES, help="only this status")
    listing.add_argument("--page", type=int, default=1, help="page number (1)")
    listing.add_argument("--limit", type=int, default=10,
                         help="workflows per page (10, at most 100)")
    show = actions.add("show", "show a workflow and its tasks: type, status, priority, "
                       "dependencies, retries, result", show_cmd, json=True)
    show.add_argument("workflow_id", metavar="ID", help=ID_HELP)
    cancel = actions.add("cancel", "cancel a workflow: its running tasks are stopped",
                         cancel_cmd, json=True)
    cancel.add_argument("workflow_id", metavar="ID", help=ID_HELP)
    cancel.add_argument("--by", default=None, metavar="NAME",
                        help="who cancels, in-process (default: the login name)")


# -- reading the definition ---------------------------------------------------------------------


def read_definition(name: str) -> Any:
    """The JSON in FILE (or stdin for `-`); unreadable or invalid JSON is a usage error."""
    try:
        if name == "-":
            raw = sys.stdin.buffer.read(MAX_FILE_BYTES + 1)
        else:
            path = Path(name)
            if path.stat().st_size > MAX_FILE_BYTES:
                raise UsageError(f"{name}: larger than {MAX_FILE_BYTES} bytes")
            raw = path.read_bytes()
    except OSError as exc:
        raise UsageError(f"{name}: {exc.strerror or exc}") from None
    if len(raw) > MAX_FILE_BYTES:
        raise UsageError(f"{name}: larger than {MAX_FILE_BYTES} bytes")
    try:
        return json.loads(raw.decode("utf-8"))
    except UnicodeDecodeError:
        raise UsageError(f"{name}: not UTF-8 text") from None
    except RecursionError:
        raise UsageError(f"{name}: invalid JSON: nested too deeply") from None
    except ValueError as exc:
        raise UsageError(f"{name}: invalid JSON: {exc}") from None


def check_in_process(ctx: Context, session: Session, definition: Any) -> None:
    """Refuse a bad definition before an in-process engine starts (starting resumes what an
    earlier process left unfinished: a typo must not). A server checks it itself."""
    if session.local is None:
        return
    from flowdeck.engine.flowctl.definition import parse_definition
    from flowdeck.engine.flowctl.settings import FlowctlSettings

    parse_definition(definition, FlowctlSettings.from_extra(
        ctx.settings.flowctl.engine_extra()))


# -- presenting ---------------------------------------------------------------------------------


def result_text(task: TaskView) -> str:
    if task.error:
        return f"error: {task.error}"
    if task.result:
        return " ".join(f"{k}={v if isinstance(v, str) else json.dumps(v)}"
                        for k, v in task.result.items())
    return "-"


def task_row(task: TaskView) -> list[str]:
    return [task.name, task.type, task.status, str(task.priority),
            ", ".join(task.dependencies) or "-", f"{task.retry_count}/{task.max_retries}",
            result_text(task)]


def took(view: WorkflowView) -> str:
    if not view.started_at or not view.completed_at:
        return ""
    seconds = (parse_instant(view.completed_at) - parse_instant(view.started_at)
               ).total_seconds()
    return f" in {seconds:.1f}s" if seconds < 120 else f" in {seconds / 60:.1f}m"


def show_workflow(view: WorkflowView, p: Printer) -> None:
    p.line(f"workflow {view.id}  {view.name}  {view.status}")
    if view.description:
        p.line(view.description)
    p.line(f"created {view.created_at}  started {view.started_at or '-'}  "
           f"completed {view.completed_at or '-'}")
    p.line()
    p.table(TASK_HEADERS, [task_row(t) for t in view.tasks])


class Progress:
    """Prints each task's status as it changes (not with --json)."""

    def __init__(self, p: Printer, quiet: bool) -> None:
        self.p = p
        self.quiet = quiet
        self.seen: dict[str, tuple[str, int]] = {}

    def __call__(self, view: WorkflowView) -> None:
        for task in view.tasks:
            now = (task.status, task.retry_count)
            if self.seen.get(task.id, ("pending", 0)) != now and not self.quiet:
                retry = f" (retry {task.retry_count})" if task.retry_count else ""
                self.p.line(f"  {task.name}: {task.status}{retry}")
            self.seen[task.id] = now


def outcome(view: WorkflowView) -> int:
    return EXIT_OK if view.status == "completed" else EXIT_FAILED


# -- commands -----------------------------------------------------------------------------------


async def submit_cmd(ctx: Context) -> int:
    args, p = ctx.args, ctx.out
    definition = read_definition(args.file)
    async with open_session(ctx, Access.CHANGE) as session:
        client = flowctl_client(session.backend, session.capabilities)
        by = decider(args) if session.local is not None else ""
        try:
            check_in_process(ctx, session, definition)
            await session.before_change()
            view = await client.submit(definition, by)
        except (ValidationError, BadRequestError) as exc:
            raise UsageError(f"{args.file}: workflow refused: {exc}") from None
        if not (args.wait or session.local is not None):
            if ctx.json:
                p.json(view.to_dict())
            else:
                p.line(f"workflow {view.id} {view.status} ({len(view.tasks)} tasks)")
            return EXIT_OK
        if not ctx.json:
            p.line(f"workflow {view.id} {view.status} ({len(view.tasks)} tasks)")
        final = await wait_for(ctx, session, client, view, args.timeout)
        if isinstance(final, int):
            return final
        if session.local is not None and view.execution_id:
            await session.released(view.execution_id)
    if ctx.json:
        p.json(final.to_dict())
    else:
        p.line()
        p.table(TASK_HEADERS, [task_row(t) for t in final.tasks])
        p.line(f"workflow {final.id} {final.status}{took(final)}")
    return outcome(final)


async def wait_for(ctx: Context, session: Session, client: FlowctlClient, view: WorkflowView,
                   timeout: float | None) -> WorkflowView | int:
    """The finished workflow, or the exit code after a timeout or Ctrl-C."""
    try:
        return await client.wait(view.id, timeout=timeout,
                                 on_change=Progress(ctx.out, quiet=ctx.json))
    except TimeoutError:
        error(f"workflow {view.id} did not finish within {timeout:g} s; it goes on at "
              f"{session.where}")
        return EXIT_FAILED
    except asyncio.CancelledError:
        if not ctx.interrupts.take_ctrl_c():
            raise
    if session.local is None:
        error(f"detached: workflow {view.id} goes on at {session.backend.name}; see it with "
              f"`flowdeck workflow show {view.id} {reach_again(ctx, session)}`")
        return EXIT_DETACHED
    error(f"interrupted: workflow {view.id} stops with this process; it continues when an "
          f"engine next opens {session.where} (the deck, `flowdeck serve`, or a command that "
          "changes something): a task cut short then fails, since it may have had side "
          "effects, and the workflow with it")
    return EXIT_INTERRUPTED


async def list_cmd(ctx: Context) -> int:
    args, p = ctx.args, ctx.out
    if args.page < 1 or args.limit < 1:
        raise UsageError("--page and --limit must be at least 1")
    async with open_session(ctx, Access.READ) as session:
        client = flowctl_client(session.backend, session.capabilities)
        page = await client.list_workflows(args.page, args.limit, args.status)
    if ctx.json:
        p.json(page.to_dict())
        return EXIT_OK
    p.table(["ID", "NAME", "STATUS", "TASKS", "CREATED"], [
        [w.id, w.name, w.status,
         f"{sum(t.status == 'completed' for t in w.tasks)}/{len(w.tasks)}", w.created_at]
        for w in page.workflows])
    if page.total_pages > 1:
        p.line(f"(page {page.page} of {page.total_pages}, {page.total} workflows; --page N "
               "for another)")
    return EXIT_OK


async def show_cmd(ctx: Context) -> int:
    async with open_session(ctx, Access.READ) as session:
        client = flowctl_client(session.backend, session.capabilities)
        view = await client.get(await client.resolve(ctx.args.workflow_id))
    if ctx.json:
        ctx.out.json(view.to_dict())
    else:
        show_workflow(view, ctx.out)
    return EXIT_OK


async def cancel_cmd(ctx: Context) -> int:
    args = ctx.args
    async with open_session(ctx, Access.CHANGE) as session:
        client = flowctl_client(session.backend, session.capabilities)
        found = await client.resolve(args.workflow_id)
        by = decider(args) if session.local is not None else ""
        current = await client.get(found)  # refused before an in-process engine starts
        if current.finished:
            raise ConflictError(f"Workflow is already {current.status}")
        await session.before_change()
        await client.cancel(found, by)
        view = await client.get(found)
    if ctx.json:
        ctx.out.json(view.to_dict())
    else:
        ctx.out.line(f"workflow {view.id} {view.status}")
    return EXIT_OK
