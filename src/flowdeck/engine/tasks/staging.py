"""Staging task types over the configured provider (`flowdeck.engine.staging`).

- `flowdeck.staging.ValidateClone` checks a clone request before anything is made: the client
  name, the environment name (generated as `staging-{client}-{YYYYMMDD-HHMMSS}` in UTC when
  none is given), that the source exists and that the name is free. Its outputs feed the clone.
- `flowdeck.staging.Clone` creates the environment; `outputs.response` is the spec's clone
  response. It checks everything again (another run may have taken the name meanwhile).
- `flowdeck.staging.List` lists environments by name prefix (`response`: the spec's list, plus
  `environments` with every field).
- `flowdeck.staging.Delete` deletes one; the provider layer refuses any name that does not
  fully match `^staging-[a-z0-9][a-z0-9-]{0,62}$` exactly as given.

Every property is rendered, so flows pass `{{ inputs.x }}` or `{{ trigger.body.x }}`.
"""

from __future__ import annotations

from typing import Any

from flowdeck.engine.staging import (
    CloneRequest,
    StagingError,
    check_client_name,
    check_new_name,
    check_source_name,
    generated_name,
    is_deletable,
    open_provider,
    timestamp,
)
from flowdeck.engine.tasks.base import RunnableTask, TaskContext, TaskFailure

TRUE = frozenset({"true", "1", "yes", "y", "on"})
FALSE = frozenset({"false", "0", "no", "n", "off", ""})


def _text(ctx: TaskContext, value: Any) -> str:
    if value is None:
        return ""
    rendered = ctx.render(value)
    return rendered if isinstance(rendered, str) else str(rendered)


def _flag(ctx: TaskContext, value: Any, name: str) -> bool:
    if isinstance(value, bool):
        return value
    text = _text(ctx, value).strip().lower()
    if text in TRUE:
        return True
    if text in FALSE:
        return False
    raise TaskFailure(f"{name} must be true or false, got {text!r}")


class _CloneProperties(RunnableTask):
    clientName: str
    environmentName: str | None = None
    sourceEnvironment: str = "production"
    skipDatabase: bool | str = False

    def plan(self, ctx: TaskContext) -> CloneRequest:
        """The request these properties describe, every name checked."""
        try:
            client = check_client_name(_text(ctx, self.clientName))
            name = _text(ctx, self.environmentName)
            name = check_new_name(name) if name else generated_name(
                client, ctx.services.clock.now())
            source = check_source_name(_text(ctx, self.sourceEnvironment) or "production")
        except StagingError as exc:
            raise TaskFailure(str(exc)) from None
        skip = _flag(ctx, self.skipDatabase, "skip_database")
        return CloneRequest(name=name, source_environment=source, client_name=client,
                            skip_database=skip)


class ValidateClone(_CloneProperties):
    """Checks a clone request; outputs the environment name the clone will use."""

    async def execute(self, ctx: TaskContext) -> dict[str, Any] | None:
        request = self.plan(ctx)
        try:
            async with open_provider(ctx.services) as provider:
                if await provider.status(request.source_environment) is None:
                    raise TaskFailure(f"source environment '{request.source_environment}' "
                                      f"does not exist ({provider.kind} provider)")
                if await provider.status(request.name) is not None:
                    raise TaskFailure(f"environment '{request.name}' already exists")
        except StagingError as exc:
            raise TaskFailure(str(exc)) from None
        ctx.log("INFO", f"will clone '{request.source_environment}' to '{request.name}' for "
                        f"client '{request.client_name}'"
                        + (" (without its database)" if request.skip_database else ""))
        return {"environment_name": request.name, "client_name": request.client_name,
                "source_environment": request.source_environment,
                "skip_database": request.skip_database}


class Clone(_CloneProperties):
    """Creates a staging environment from a source environment."""

    safe_to_rerun = False

    async def execute(self, ctx: TaskContext) -> dict[str, Any] | None:
        request = self.plan(ctx)
        try:
            async with open_provider(ctx.services) as provider:
                ctx.log("INFO", f"cloning '{request.source_environment}' to '{request.name}' "
                                f"with the {provider.kind} provider")
                env = await provider.clone(request)
                if not request.skip_database and not getattr(provider, "copies_data", True):
                    ctx.log("INFO", f"the {provider.kind} provider duplicates services and "
                                    "their configuration, not database contents")
        except StagingError as exc:
            raise TaskFailure(str(exc)) from None
        ctx.log("INFO", f"environment '{env.name}' is ready at {env.url}")
        response = {
            "status": "success",
            "environment_name": env.name,
            "staging_url": env.url,
            "client_name": request.client_name,
            "source_environment": request.source_environment,
            "created_at": env.created_at,
        }
        return {"response": response, "environment": env.to_dict()}


class List(RunnableTask):
    """Lists the staging environments (`staging-*`, never a source such as production)
    whose name starts with `prefix`."""

    prefix: str = "staging-"

    async def execute(self, ctx: TaskContext) -> dict[str, Any] | None:
        prefix = _text(ctx, self.prefix)
        try:
            async with open_provider(ctx.services) as provider:
                found = [env for env in await provider.list(prefix)
                         if is_deletable(env.name)]
        except StagingError as exc:
            raise TaskFailure(str(exc)) from None
        ctx.log("INFO", f"{len(found)} environment(s) named {prefix!r}…")
        response = {
            "status": "success",
            "count": len(found),
            "environments": [env.listing() for env in found],
            "queried_at": timestamp(ctx.services.clock.now()),
        }
        return {"response": response, "environments": [env.to_dict() for env in found]}


class Delete(RunnableTask):
    """Deletes one `staging-*` environment."""

    environmentName: str

    safe_to_rerun = False

    async def execute(self, ctx: TaskContext) -> dict[str, Any] | None:
        name = _text(ctx, self.environmentName)
        if name == "":
            raise TaskFailure("environment_name is required")
        try:
            async with open_provider(ctx.services) as provider:
                env = await provider.delete(name)
        except StagingError as exc:
            raise TaskFailure(str(exc)) from None
        ctx.log("INFO", f"deleted environment '{env.name}' ({env.provider})")
        response = {
            "status": "success",
            "environment_name": env.name,
            "message": "Environment deleted successfully",
            "deleted_at": timestamp(ctx.services.clock.now()),
        }
        return {"response": response}


TASKS: dict[str, type[RunnableTask]] = {
    "flowdeck.staging.ValidateClone": ValidateClone,
    "flowdeck.staging.Clone": Clone,
    "flowdeck.staging.List": List,
    "flowdeck.staging.Delete": Delete,
}
