"""`flowdeck staging list|clone|delete`: executions of the bundled dev.deployment flows,
through the embedded engine (installing the flows on first use) or a server."""

from __future__ import annotations

import dataclasses
import re

from flowdeck.cli.common import EXIT_FAILED, EXIT_OK, EXIT_USAGE, Context, UsageError, error
from flowdeck.cli.options import Commands
from flowdeck.cli.session import Access, open_session
from flowdeck.core.models import Execution

#: The engine's answers that refuse what was typed: its name rules and required fields
#: (`flowdeck.engine.staging.base`: each names the field, or says "refusing to delete"), and a
#: source environment that does not exist. A Kestra running the spec's flows logs the same
#: way ("ERROR: client_name is required").
_INPUT_REFUSED = re.compile(
    r"(?:ERROR: )?(?:(?:client_name|environment_name|source_environment|skip_database)\b"
    r"|refusing to delete |source environment '[^']*' does not exist)")
#: The clone flow's task that checks its inputs (the spec's `validate-inputs`).
VALIDATE_TASK = "validate-inputs"


def register(commands: Commands) -> None:
    actions = commands.group("staging", "list, clone and delete staging environments (runs "
                             "the dev.deployment staging flows)")
    listing = actions.add("list", "list staging environments, newest first", staging,
                          json=True)
    listing.add_argument("--prefix", default="staging-",
                         help="only names starting with this (default: staging-)")
    clone = actions.add(
        "clone", "clone a source environment into a new staging environment; without "
        "--wait, print the execution id and state (in-process, without --url, it always "
        "waits: the engine runs in this command)", staging, json=True)
    clone.add_argument("client_name", metavar="CLIENT",
                       help="client identifier, e.g. acme-corp (lowercase letters, digits, '-')")
    clone.add_argument("--name", dest="environment_name", metavar="NAME",
                       help="staging-... (default: staging-CLIENT-YYYYMMDD-HHMMSS, UTC)")
    clone.add_argument("--source", dest="source_environment", metavar="SRC",
                       help="environment to clone from (default: production)")
    clone.add_argument("--skip-database", action="store_true",
                       help="create the environment without copying the database")
    clone.add_argument("--wait", action="store_true",
                       help="wait for the clone and print the environment's name and URL")
    delete = actions.add(
        "delete", "delete a staging environment (only names matching "
        "^staging-[a-z0-9][a-z0-9-]{0,62}$ exactly; the engine refuses the rest)",
        staging, json=True)
    delete.add_argument("environment_name", metavar="NAME")


def staging_exit_code(action: str, execution: Execution, reason: str) -> int:
    """2 when the engine refused the input (its own guard decided: nothing is checked here
    beforehand), 1 for everything else: a name already taken, a provider error, a kill.

    For a clone, only a `validate-inputs` failure can be the input's fault; that task also
    checks state (the name is free, the source exists) through the provider, so the reason
    tells the two apart. For a delete, the engine's reason does.
    """
    refused = _INPUT_REFUSED.match(reason) is not None
    if action == "clone":
        failed = [t.task_id for t in execution.task_runs if t.state.current == "FAILED"]
        refused = refused and failed[:1] == [VALIDATE_TASK]
    return EXIT_USAGE if refused else EXIT_FAILED


async def staging(ctx: Context) -> int:
    """Every staging action runs an execution, so each opens the engine for a change."""
    from flowdeck.client.staging import (
        LIST_TIMEOUT,
        StagingClient,
        StagingFailed,
        StagingUnavailable,
        environments_of,
    )

    args, p = ctx.args, ctx.out
    async with open_session(ctx, Access.CHANGE) as session:
        await session.before_change()
        client = StagingClient(session.backend, session.capabilities)
        try:
            if args.action == "list":
                started = await client.start_list(args.prefix)
                try:
                    final = await client.settle(started.id, timeout=LIST_TIMEOUT)
                except TimeoutError:
                    error(f"staging list: execution {started.id} did not finish within "
                          f"{LIST_TIMEOUT:g} s")
                    return EXIT_FAILED
                await client.outcome(final)
                found = sorted(environments_of(final), key=lambda e: (e.created_at or "", e.name),
                               reverse=True)
                if ctx.json:
                    p.json([dataclasses.asdict(e) for e in found])
                else:
                    p.table(["NAME", "CLIENT", "SOURCE", "URL", "STATUS", "CREATED"], [
                        [e.name, e.client_name or "-", e.source_environment or "-",
                         e.url or "-", e.status or "-", e.created_at or "-"] for e in found])
                return EXIT_OK
            if args.action == "clone":
                started = await client.start_clone(
                    args.client_name, environment_name=args.environment_name,
                    source_environment=args.source_environment,
                    skip_database=args.skip_database)
                # In-process, the engine lives in this command: leaving now would strand the
                # run until the next start, so it always waits.
                if not (args.wait or session.local is not None):
                    if ctx.json:  # the spec's webhook answer
                        p.json({"executionId": started.id, "state": started.state.current})
                    else:
                        p.line(f"execution {started.id} {started.state.current}")
                    return EXIT_OK
                if not ctx.json:
                    p.line(f"execution {started.id} {started.state.current}")
            else:
                started = await client.start_delete(args.environment_name)
            final = await client.settle(started.id)
            response = await client.outcome(final)
        except StagingFailed as exc:
            code = staging_exit_code(args.action, exc.execution, exc.reason)
            if code == EXIT_USAGE:
                raise UsageError(f"staging {args.action}: {exc.reason} "
                                 f"(execution {exc.execution.id})") from None
            error(f"staging {args.action} failed: {exc.reason} (execution {exc.execution.id})")
            return code
        except StagingUnavailable as exc:
            # 1, not 2: nothing the user typed is wrong; the server lacks the flows (its
            # operator installs them, or runs `flowdeck serve`, which does).
            error(str(exc))
            return EXIT_FAILED
    if ctx.json:
        p.json({"executionId": final.id, "state": final.state.current, "response": response})
    elif args.action == "clone":
        p.line(f"environment {response.get('environment_name')} is ready at "
               f"{response.get('staging_url')}")
    else:
        p.line(f"environment {response.get('environment_name')} deleted")
    return EXIT_OK
