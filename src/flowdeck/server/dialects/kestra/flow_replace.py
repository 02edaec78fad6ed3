"""Kestra 2.x's Source Search replace (`engine/source_replace.py`), JSON bodies in, JSON out:

- `POST /flows/source/replace/preview` `{query, replacement, caseSensitive, wholeWord, regex,
  namespace, scope}` → `{totalMatches, totalFlows, editableFlowCount, flows: [{namespace, id,
  editable, matches: [{line, before, after}]}]}`; nothing is written;
- `POST /flows/source/replace/apply` `{..., flows: [{namespace, id}]}` (1 to 1,000) →
  `{updated: [FlowWithSource], skipped: [{namespace, id, reason, message?}]}`;
- `POST /flows/source/replace/line` `{..., namespace, id, line, column}`: the one match there.

A body that is not that is a 422 naming the member; a bad pattern or replacement a 400.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request

from flowdeck.core.errors import ValidationError
from flowdeck.engine import source_replace
from flowdeck.engine.source_search import SCOPES, SourceQuery
from flowdeck.server.access import OPERATOR, VIEWER
from flowdeck.server.deps import get_engine
from flowdeck.server.dialects.kestra.bodies import json_value
from flowdeck.server.dialects.kestra.flows import flow_json

router = APIRouter(tags=["flows"])
MAX_FLOWS = 1_000


def _member(body: dict[str, Any], name: str, kind: type, default: Any = None) -> Any:
    value = body.get(name, default)
    if value is None and default is None and kind is not str:
        return None
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        raise ValidationError([(name, f"must be a {kind.__name__}")])
    return value


def _flows(body: dict[str, Any]) -> list[tuple[str, str]]:
    items = body.get("flows")
    if not isinstance(items, list) or not 1 <= len(items) <= MAX_FLOWS:
        raise ValidationError([("flows", f"must list 1 to {MAX_FLOWS} flows as "
                                         '{"namespace", "id"}')])
    keys = []
    for index, item in enumerate(items):
        if not isinstance(item, dict) or not all(
                isinstance(item.get(k), str) and item.get(k) for k in ("namespace", "id")):
            raise ValidationError([(f"flows[{index}]", 'must be {"namespace", "id"}')])
        keys.append((item["namespace"], item["id"]))
    return keys


async def replace_request(request: Request, *, flows: bool = False,
                          line: bool = False) -> source_replace.Replace:
    body = await json_value(request, "a JSON object")
    if not isinstance(body, dict):
        raise ValidationError([("body", "must be a JSON object")])
    query = _member(body, "query", str)
    if not query:
        raise ValidationError([("query", "must not be empty")])
    scope = (_member(body, "scope", str, "ALL") or "ALL").upper()
    if scope not in SCOPES:
        raise ValidationError([("scope", f"must be one of {', '.join(SCOPES)}")])
    out = source_replace.Replace(SourceQuery(
        q=query, namespace=_member(body, "namespace", str, "") or None,
        case_sensitive=bool(_member(body, "caseSensitive", bool)),
        whole_word=bool(_member(body, "wholeWord", bool)),
        regex=bool(_member(body, "regex", bool)), scope=scope),
        replacement=_member(body, "replacement", str))
    if flows:
        out.flows = _flows(body)
    if line:
        for name in ("namespace", "id"):
            if not isinstance(body.get(name), str) or not body[name]:
                raise ValidationError([(name, "must name the flow")])
        out.flows = [(body["namespace"], body["id"])]
        out.line = _member(body, "line", int, 1)
        out.column = _member(body, "column", int, 0)
        if out.line < 1 or out.column < 0:
            raise ValidationError([("line", "line must be 1 or more and column 0 or more")])
    return out


def applied(result: source_replace.Applied) -> dict[str, Any]:
    skipped = []
    for namespace, flow_id, reason, message in result.skipped:
        item = {"namespace": namespace, "id": flow_id, "reason": reason}
        if message:
            item["message"] = message
        skipped.append(item)
    return {"updated": [flow_json(f) for f in result.updated], "skipped": skipped}


@router.post("/flows/source/replace/preview", dependencies=VIEWER,
             summary="Preview a Source Search replace (nothing is written)")
async def preview(request: Request) -> dict[str, Any]:
    engine = get_engine(request)
    flows = await source_replace.preview(engine.list_flows(), await replace_request(request))
    return {"totalMatches": sum(len(f.matches) for f in flows), "totalFlows": len(flows),
            "editableFlowCount": len(flows),
            "flows": [{"namespace": f.namespace, "id": f.id, "editable": True,
                       "matches": [{"line": m.line, "before": m.before, "after": m.after}
                                   for m in f.matches]} for f in flows]}


@router.post("/flows/source/replace/apply", dependencies=OPERATOR,
             summary="Replace every match in the chosen flows (a new revision each)")
async def apply(request: Request) -> dict[str, Any]:
    replace = await replace_request(request, flows=True)
    return applied(await source_replace.apply(get_engine(request).flows, replace))


@router.post("/flows/source/replace/line", dependencies=OPERATOR,
             summary="Replace the one match at a line and column of a flow")
async def apply_line(request: Request) -> dict[str, Any]:
    replace = await replace_request(request, line=True)
    return applied(await source_replace.apply_line(get_engine(request).flows, replace))
