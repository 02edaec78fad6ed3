"""`flowdeck deploy RELEASE ENV [--approval ID | --request]`: a release to an environment.

An environment that needs an approval (production) takes the id of an active approval of
that release by someone other than its creator (`--approval`), or, with `--request`, a deploy
request that waits in the approval queue (`flowdeck approvals list`, the deck's `:ap`):
approving it there approves the release and deploys it.
"""

from __future__ import annotations

from flowdeck.cli.common import EXIT_OK, Context, UsageError
from flowdeck.cli.options import Commands
from flowdeck.cli.releases import (
    RELEASE_HELP,
    deployment_json,
    find_release,
    guarded,
    open_forge,
    parse_release,
)
from flowdeck.cli.session import Access
from flowdeck.core.errors import PermissionDenied


def register(commands: Commands) -> None:
    deploy = commands.command(
        "deploy", "deploy a release to an environment (a GitOps commit); production needs "
        "an approval (--approval) or waits for one (--request)", deploy_release, json=True)
    deploy.add_argument("release", metavar="RELEASE", help=RELEASE_HELP)
    deploy.add_argument("environment", metavar="ENV", help="dev, staging, production, ...")
    how = deploy.add_mutually_exclusive_group()
    how.add_argument("--approval", metavar="ID",
                     help="the approval to use (single use; flowdeck release approve)")
    how.add_argument("--request", action="store_true",
                     help="without an approval: wait in the approval queue for one")
    deploy.add_argument("--by", metavar="NAME",
                        help="who deploys, on the engine in the data dir (default: the login "
                        "name); a server records the token's name")


async def deploy_release(ctx: Context) -> int:
    args, p = ctx.args, ctx.out
    ref = parse_release(args.release)

    async def work() -> int:
        async with open_forge(ctx, Access.CHANGE) as forge:
            release = await find_release(forge, ref)
            await forge.before_change()
            if args.request:
                request = await forge.releases.request_deploy(release.id, args.environment)
                if ctx.json:
                    p.json({"execution_id": request.execution_id, "release_id": release.id,
                            "environment": request.environment,
                            "requested_by": request.requested_by, "status": request.status})
                else:
                    p.line(f"deploy request for release {release.release_number} to "
                           f"{request.environment} waits in the approval queue (execution "
                           f"{request.execution_id}); someone other than "
                           f"{release.created_by} approves it with: flowdeck approvals "
                           f"approve {request.execution_id[-8:]} --comment JUSTIFICATION")
                return EXIT_OK
            try:
                deployment = await forge.releases.deploy(release.id, args.environment,
                                                         args.approval)
            except PermissionDenied as exc:
                if args.approval is None and "needs the approval_id" in str(exc):
                    raise UsageError(f"{exc}; pass --approval ID, or --request to wait in "
                                     "the approval queue for one") from None
                raise
        if ctx.json:
            p.json(deployment_json(deployment))
        else:
            commit = (deployment.gitops_commit_sha or "")[:12] or "-"
            p.line(f"deployment {deployment.id} of release {release.release_number} to "
                   f"{args.environment}: {deployment.status} (GitOps commit {commit})")
        return EXIT_OK

    return await guarded(work)
