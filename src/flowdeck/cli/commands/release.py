"""`flowdeck release list|show|create|approve|revoke`: releases and their approvals, on the
engine in the data dir, a server (`--url`), or a profile's own Forge."""

from __future__ import annotations

import argparse
from typing import Any

from flowdeck.cli.common import EXIT_OK, Context, UsageError
from flowdeck.cli.options import Commands
from flowdeck.cli.releases import (
    RELEASE_HELP,
    Forge,
    approval_json,
    find_release,
    guarded,
    open_forge,
    parse_release,
    release_json,
)
from flowdeck.cli.session import Access
from flowdeck.core.forge import Release

BY_HELP = ("who does it, on the engine in the data dir (default: the login name); a server "
           "records the token's name")


def register(commands: Commands) -> None:
    actions = commands.group("release", "list, show, create, approve and revoke releases")
    listing = actions.add("list", "without PROJECT: every project, its newest release and "
                          "what runs in each environment; with it: the project's releases, "
                          "newest first", release_list, json=True)
    listing.add_argument("project", nargs="?", metavar="PROJECT", help="OWNER/NAME/PROJECT")
    listing.add_argument("--limit", type=int, default=20, help="releases per page (20)")
    listing.add_argument("--offset", type=int, default=0, help="releases to skip (0)")
    show = actions.add("show", "a release: commit, artifacts, trigger, where it runs and its "
                       "approvals", release_show, json=True)
    show.add_argument("release", metavar="RELEASE", help=RELEASE_HELP)
    create = actions.add("create", "create the next release of a project at a commit",
                         release_create, json=True)
    create.add_argument("project", metavar="PROJECT", help="OWNER/NAME/PROJECT")
    create.add_argument("--sha", required=True, help="the commit SHA (7 to 64 hex digits)")
    create.add_argument("--tag", help="a tag naming the release, e.g. v1.2.3")
    create.add_argument("--run", dest="pipeline_run_id", metavar="RUN_ID",
                        help="the pipeline run that built it (its trigger is recorded)")
    create.add_argument("--artifact", action="append", default=[], metavar="NAME:TYPE[:URI]",
                        help="an artifact (TYPE: container, binary or archive); repeatable")
    create.add_argument("--by", metavar="NAME", help=BY_HELP)
    approve = actions.add("approve", "approve a release for an environment (someone other "
                          "than its creator; the approval expires)", release_approve,
                          json=True)
    approve.add_argument("release", metavar="RELEASE", help=RELEASE_HELP)
    approve.add_argument("environment", metavar="ENV", help="e.g. production")
    approve.add_argument("--justification", required=True, metavar="TEXT",
                         help="why (a change ticket, a sign-off)")
    approve.add_argument("--by", metavar="NAME", help=BY_HELP)
    revoke = actions.add("revoke", "revoke an approval nobody has used yet", release_revoke,
                         json=True)
    revoke.add_argument("approval_id", metavar="ID", help="the approval's id")
    revoke.add_argument("--by", metavar="NAME", help=BY_HELP)


def artifacts(args: argparse.Namespace) -> list[dict[str, Any]]:
    found = []
    for text in args.artifact:
        name, sep, rest = text.partition(":")
        kind, _, uri = rest.partition(":")
        if not sep or not name or not kind:
            raise UsageError(f"--artifact '{text}': write NAME:TYPE[:URI], e.g. "
                             "api:container:registry.example.com/acme/api:1.2")
        item = {"name": name, "type": kind}
        if uri:
            item["tracking_oci_uri"] = uri
        found.append(item)
    return found


async def release_list(ctx: Context) -> int:
    args, p = ctx.args, ctx.out
    ref = parse_release(args.project, ref=False) if args.project else None

    async def work() -> int:
        async with open_forge(ctx, Access.READ) as forge:
            if ref is None:
                overview = await forge.releases.overview()
                if ctx.json:
                    p.json({"projects": [{
                        "repository": s.repository, "project": s.project,
                        "releases": s.releases,
                        "latest_release": release_json(s.latest_release)
                        if s.latest_release else None,
                        "current": {env: d.current() for env, d in s.current.items()}}
                        for s in overview.projects],
                        "environments": list(overview.environments)})
                    return EXIT_OK
                envs = list(overview.environments)
                p.table(["PROJECT", "RELEASES", "LATEST", "SHA", *[e.upper() for e in envs]], [
                    [f"{s.repository}/{s.project}", str(s.releases),
                     str(s.latest_release.release_number) if s.latest_release else "-",
                     s.latest_release.commit_sha[:7] if s.latest_release else "-",
                     *[str(s.current[e].release_number) if e in s.current else "-"
                       for e in envs]] for s in overview.projects])
                return EXIT_OK
            page = await forge.releases.releases(ref.repository, ref.project, args.limit,
                                                 args.offset)
            if ctx.json:
                p.json({"releases": [release_json(r) for r in page.items], "total": page.total,
                        "limit": page.limit, "offset": page.offset})
                return EXIT_OK
            p.table(["NUMBER", "SHA", "TAG", "ARTIFACTS", "CREATED BY", "CREATED"], [
                [str(r.release_number), r.commit_sha[:7], r.tag or "-",
                 ", ".join(a.name for a in r.artifacts) or "-", r.created_by, r.created_at]
                for r in page.items])
            if page.total > page.offset + len(page.items):
                p.line(f"({len(page.items)} of {page.total}; --offset "
                       f"{page.offset + len(page.items)} for more)")
            return EXIT_OK

    return await guarded(work)


async def describe(forge: Forge, release: Release) -> dict[str, Any]:
    """Where the release runs (each environment's current deployment, when it is this
    release) and its approvals (the newest per approval environment)."""
    overview = await forge.releases.overview()
    deployed = {}
    for env in overview.environments:
        current = await forge.releases.current(env, release.repository, release.project)
        if current is not None and current.release_id == release.id:
            deployed[env] = current
    approvals = {}
    for env in overview.approval_environments:
        found = await forge.releases.approval(release.id, env)
        if found is not None:
            approvals[env] = found
    return {"deployed": deployed, "approvals": approvals}


async def release_show(ctx: Context) -> int:
    ref = parse_release(ctx.args.release)
    p = ctx.out

    async def work() -> int:
        async with open_forge(ctx, Access.READ) as forge:
            release = await find_release(forge, ref)
            where = await describe(forge, release)
        if ctx.json:
            p.json({**release_json(release),
                    "deployed": {e: d.current() for e, d in where["deployed"].items()},
                    "approvals": {e: approval_json(a) for e, a in where["approvals"].items()}})
            return EXIT_OK
        p.line(f"release {release.release_number} of {release.repository}/{release.project}"
               + (f" ({release.tag})" if release.tag else ""))
        p.line(f"  id          {release.id}")
        p.line(f"  commit      {release.commit_sha}")
        p.line(f"  created     {release.created_at} by {release.created_by}")
        trigger = release.trigger
        p.line(f"  trigger     {trigger.trigger_type}"
               + (f" on {trigger.branch}" if trigger.branch else "")
               + (f" by {trigger.triggered_by}" if trigger.triggered_by else ""))
        if release.oci_uri:
            p.line(f"  oci         {release.oci_uri}")
        if release.pipeline_run_id:
            p.line(f"  run         {release.pipeline_run_id}")
        for artifact in release.artifacts:
            p.line(f"  artifact    {artifact.name} ({artifact.type}) "
                   f"{artifact.tracking_oci_uri or artifact.primary_published_uri or ''}"
                   .rstrip())
        for env, deployment in where["deployed"].items():
            p.line(f"  deployed    {env}: {deployment.status} since {deployment.deployed_at} "
                   f"by {deployment.deployed_by}")
        for env, approval in where["approvals"].items():
            p.line(f"  approval    {env}: {approval.status} by {approval.approver} "
                   f"until {approval.expires_at} ({approval.id})")
        return EXIT_OK

    return await guarded(work)


async def release_create(ctx: Context) -> int:
    args, p = ctx.args, ctx.out
    ref = parse_release(args.project, ref=False)
    given = artifacts(args)

    async def work() -> int:
        async with open_forge(ctx, Access.CHANGE) as forge:
            await forge.before_change()
            release = await forge.releases.create_release(
                ref.repository, ref.project, args.sha, given,
                pipeline_run_id=args.pipeline_run_id, tag=args.tag)
        if ctx.json:
            p.json(release_json(release))
        else:
            p.line(f"release {release.release_number} of {ref.project_path} at "
                   f"{release.commit_sha[:12]} ({release.id})")
        return EXIT_OK

    return await guarded(work)


async def release_approve(ctx: Context) -> int:
    args, p = ctx.args, ctx.out
    ref = parse_release(args.release)
    if not args.justification.strip():
        raise UsageError("--justification must say why")

    async def work() -> int:
        async with open_forge(ctx, Access.CHANGE) as forge:
            release = await find_release(forge, ref)
            await forge.before_change()
            approval = await forge.releases.approve(release.id, args.environment,
                                                    args.justification)
        if ctx.json:
            p.json(approval_json(approval))
        else:
            p.line(f"approval {approval.id} of release {release.release_number} for "
                   f"{approval.environment}: {approval.status} by {approval.approver} until "
                   f"{approval.expires_at}")
        return EXIT_OK

    return await guarded(work)


async def release_revoke(ctx: Context) -> int:
    args, p = ctx.args, ctx.out

    async def work() -> int:
        async with open_forge(ctx, Access.CHANGE) as forge:
            await forge.before_change()
            approval = await forge.releases.revoke(args.approval_id)
        if ctx.json:
            p.json(approval_json(approval))
        else:
            p.line(f"approval {approval.id} revoked by {approval.revoked_by or '?'}")
        return EXIT_OK

    return await guarded(work)
