"""`flowdeck pipeline run|list|show|cancel`: runs of a repository's pipeline flow.

`run` starts one (the flow `NAME` of namespace `pipelines.OWNER`); on the engine in the data
dir it waits for the end (the run lives in this command), on a server with `--wait` only, and
exits 0 when it succeeded, 1 otherwise. A run's id is its execution's: a unique part of it does
(as the deck shows it), except on a profile's own Forge server.
"""

from __future__ import annotations

import asyncio

from flowdeck.cli.common import EXIT_FAILED, EXIT_OK, Context, Printer, closing
from flowdeck.cli.options import Commands
from flowdeck.cli.releases import Forge, guarded, open_forge, run_json
from flowdeck.cli.session import Access, execution_id
from flowdeck.core.forge import TRIGGER_TYPES, PipelineRun
from flowdeck.core.states import is_terminal

#: Seconds between polls of a run on a Forge server of its own.
POLL = 1.0
ENDED = ("success", "failed", "cancelled")


def register(commands: Commands) -> None:
    actions = commands.group("pipeline", "run, list, show and cancel pipeline runs")
    run = actions.add("run", "run a repository's pipeline for a commit (in-process it waits "
                      "for the end; on a server with --wait)", pipeline_run, json=True)
    run.add_argument("repository", metavar="OWNER/REPO")
    run.add_argument("--branch", required=True)
    run.add_argument("--sha", required=True, help="the commit SHA (7 to 64 hex digits)")
    run.add_argument("--trigger-type", default="manual", choices=TRIGGER_TYPES)
    run.add_argument("--triggered-by", metavar="NAME", help="default: who runs it")
    run.add_argument("--wait", action="store_true", help="on a server: wait for the end")
    run.add_argument("--by", metavar="NAME",
                     help="who starts it, on the engine in the data dir (default: the login "
                     "name)")
    listing = actions.add("list", "a repository's runs, newest first", pipeline_list,
                          json=True)
    listing.add_argument("repository", metavar="OWNER/REPO")
    listing.add_argument("--branch")
    listing.add_argument("--limit", type=int, default=20)
    listing.add_argument("--offset", type=int, default=0)
    show = actions.add("show", "a run's phases, tasks and steps", pipeline_show, json=True)
    show.add_argument("run_id", metavar="RUN_ID")
    cancel = actions.add("cancel", "cancel a run in progress (its execution is killed)",
                         pipeline_cancel, json=True)
    cancel.add_argument("run_id", metavar="RUN_ID")


async def run_id_of(forge: Forge, text: str) -> str:
    if forge.session is None:
        return text.strip()
    return await execution_id(forge.session, text)


def show_run(run: PipelineRun, p: Printer) -> None:
    p.line(f"run {run.id} of {run.repository} ({run.branch} @ {run.commit_sha[:12]}): "
           f"{run.status}")
    p.line(f"  triggered by {run.triggered_by} ({run.trigger_type}), started {run.started_at}"
           + (f", completed {run.completed_at}" if run.completed_at else ""))
    for phase in run.phases:
        p.line(f"  {phase.group_number}. {phase.name:<24} {phase.status}")
        for task in phase.tasks:
            if len(phase.tasks) > 1 or task.project_name != phase.name:
                p.line(f"       {task.project_name:<22} {task.status}")
            for step in task.steps:
                code = "" if step.exit_code is None else f" exit {step.exit_code}"
                p.line(f"         - {step.name:<20} {step.status}{code}")


async def settle(forge: Forge, run: PipelineRun) -> PipelineRun:
    """The run once it ended: followed as an execution where the backend has it, else
    polled on the Forge server."""
    if forge.session is not None:
        backend = forge.session.backend
        async with closing(backend.follow_execution(run.id)) as stream:
            async for snapshot in stream:
                if is_terminal(snapshot.state.current):
                    break
        await forge.session.released(run.id)
        return await forge.releases.run(run.id)
    while True:
        current = await forge.releases.run(run.id)
        if current.status in ENDED:
            return current
        await asyncio.sleep(POLL)


async def pipeline_run(ctx: Context) -> int:
    args, p = ctx.args, ctx.out

    async def work() -> int:
        async with open_forge(ctx, Access.CHANGE) as forge:
            await forge.before_change()
            run = await forge.releases.create_run(
                args.repository, args.branch, args.sha, triggered_by=args.triggered_by,
                trigger_type=args.trigger_type)
            if not (args.wait or forge.local):
                if ctx.json:
                    p.json(run.created())
                else:
                    p.line(f"run {run.id} {run.status}")
                return EXIT_OK
            if not ctx.json:
                p.line(f"run {run.id} {run.status}")
            final = await settle(forge, run)
        if ctx.json:
            p.json(run_json(final))
        else:
            show_run(final, p)
        return EXIT_OK if final.status == "success" else EXIT_FAILED

    return await guarded(work)


async def pipeline_list(ctx: Context) -> int:
    args, p = ctx.args, ctx.out

    async def work() -> int:
        async with open_forge(ctx, Access.READ) as forge:
            page = await forge.releases.runs(args.repository, args.branch, args.limit,
                                             args.offset)
        if ctx.json:
            p.json({"runs": [r.summary() | {"branch": r.branch} for r in page.items],
                    "total": page.total, "limit": page.limit, "offset": page.offset})
            return EXIT_OK
        p.table(["ID", "STATUS", "BRANCH", "SHA", "STARTED"], [
            [r.id, r.status, r.branch or "-", r.commit_sha[:12], r.started_at]
            for r in page.items])
        return EXIT_OK

    return await guarded(work)


async def pipeline_show(ctx: Context) -> int:
    async def work() -> int:
        async with open_forge(ctx, Access.READ) as forge:
            run = await forge.releases.run(await run_id_of(forge, ctx.args.run_id))
        if ctx.json:
            ctx.out.json(run_json(run))
        else:
            show_run(run, ctx.out)
        return EXIT_OK

    return await guarded(work)


async def pipeline_cancel(ctx: Context) -> int:
    p = ctx.out

    async def work() -> int:
        async with open_forge(ctx, Access.CHANGE) as forge:
            run_id = await run_id_of(forge, ctx.args.run_id)
            await forge.before_change()
            await forge.releases.cancel_run(run_id)
            final = await forge.releases.run(run_id)
        if ctx.json:
            p.json(run_json(final))
        else:
            p.line(f"run {final.id} {final.status}")
        return EXIT_OK

    return await guarded(work)
