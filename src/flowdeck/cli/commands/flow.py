"""`flowdeck flow apply|list|show|delete`: flows from YAML files, on any backend."""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Any

from flowdeck.cli.common import EXIT_OK, Context, UsageError
from flowdeck.cli.options import Commands
from flowdeck.cli.session import Access, open_session
from flowdeck.client.backend import FlowInfo
from flowdeck.core.errors import BadRequestError, NotFoundError, ValidationError
from flowdeck.core.yamlsafe import flow_identity, load_yaml_or_none

#: Flow keys Kestra's flow JSON carries beyond what `FlowInfo` keeps (read from the source).
FLOW_BODY_KEYS = ("outputs", "variables", "tasks", "errors", "finally", "afterExecution",
                  "concurrency", "retry", "pluginDefaults")


def register(commands: Commands) -> None:
    actions = commands.group("flow", "create, list, show and delete flows")
    apply = actions.add("apply", "create or update flows from YAML files (prints created, "
                        "updated or unchanged for each)", apply_flows)
    apply.add_argument("files", nargs="+", metavar="FILE")
    listing = actions.add("list", "list flows", list_flows, json=True)
    listing.add_argument("--namespace")
    show = actions.add("show", "show one flow's YAML source", show_flow, json=True)
    show.add_argument("namespace")
    show.add_argument("flow_id", metavar="FLOW")
    delete = actions.add("delete", "delete a flow (its executions are kept)", delete_flow)
    delete.add_argument("namespace")
    delete.add_argument("flow_id", metavar="FLOW")


def read_flow_file(name: str) -> str:
    try:
        return Path(name).read_text(encoding="utf-8")
    except OSError as exc:
        raise UsageError(f"{name}: cannot be read: {exc.strerror or exc}") from None
    except UnicodeDecodeError as exc:
        raise UsageError(f"{name}: not UTF-8 text (byte {exc.start})") from None


def flow_dict(flow: FlowInfo, *, with_source: bool) -> dict[str, Any]:
    """A flow as Kestra's JSON shows it, `tasks` and all (taken from its YAML source)."""
    out: dict[str, Any] = {
        "id": flow.id, "namespace": flow.namespace, "revision": flow.revision,
        "description": flow.description,
        "labels": [{"key": k, "value": v} for k, v in flow.labels],
        "inputs": flow.inputs}
    doc = load_yaml_or_none(flow.source) if flow.source else None
    if isinstance(doc, dict):
        out.update({k: doc[k] for k in FLOW_BODY_KEYS if k in doc})
    out["triggers"] = flow.triggers
    out["disabled"] = flow.disabled
    if with_source:
        out["source"] = flow.source
    return out


async def apply_flows(ctx: Context) -> int:
    sources = [(name, read_flow_file(name)) for name in ctx.args.files]
    async with open_session(ctx, Access.CHANGE) as session:
        backend = session.backend
        for name, source in sources:
            identity = flow_identity(source)
            before = None
            if identity is not None:
                with contextlib.suppress(NotFoundError):
                    before = await backend.get_flow(*identity)
            try:
                flow = await backend.apply_flow(source)
            except (ValidationError, BadRequestError) as exc:
                raise UsageError(f"{name}: {exc}") from None
            what = ("created" if before is None else
                    "unchanged" if before.revision == flow.revision else "updated")
            ctx.out.line(f"{what:<9} {flow.namespace}.{flow.id} (revision {flow.revision})")
    return EXIT_OK


async def list_flows(ctx: Context) -> int:
    async with open_session(ctx, Access.READ) as session:
        flows = await session.backend.list_flows(ctx.args.namespace)
    if ctx.json:
        ctx.out.json([flow_dict(f, with_source=False) for f in flows])
    else:
        ctx.out.table(["NAMESPACE", "ID", "REVISION", "TRIGGERS", "DESCRIPTION"], [
            [f.namespace, f.id, str(f.revision),
             ",".join(str(t.get("id")) for t in f.triggers) or "-",
             (f.description or "").splitlines()[0] if f.description else ""]
            for f in flows])
    return EXIT_OK


async def show_flow(ctx: Context) -> int:
    async with open_session(ctx, Access.READ) as session:
        flow = await session.backend.get_flow(ctx.args.namespace, ctx.args.flow_id)
    if ctx.json:
        ctx.out.json(flow_dict(flow, with_source=True))
    else:
        ctx.out.line(f"# {flow.namespace}.{flow.id} revision {flow.revision}")
        ctx.out.line((flow.source or "").rstrip("\n"))
    return EXIT_OK


async def delete_flow(ctx: Context) -> int:
    async with open_session(ctx, Access.CHANGE) as session:
        await session.backend.delete_flow(ctx.args.namespace, ctx.args.flow_id)
    ctx.out.line(f"deleted {ctx.args.namespace}.{ctx.args.flow_id}")
    return EXIT_OK
