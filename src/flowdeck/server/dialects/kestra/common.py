"""What every Kestra route shares: the engine handle, query filters, paging, inputs, JSON.

Kestra clients filter with PHP-style parameters (`filters[state][IN]=FAILED,KILLED`,
`filters[labels][EQUALS][team]=data`) and older scripts with legacy ones (`state=FAILED`,
`labels=team:data`); both land in the same `ExecutionQuery`. A malformed value is a 400 that
names the parameter.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from fastapi import Request
from starlette.datastructures import QueryParams, UploadFile
from starlette.formparsers import MultiPartException

from flowdeck.core.errors import BadRequestError, ValidationError
from flowdeck.core.ids import new_id
from flowdeck.core.timefmt import parse_duration, parse_instant
from flowdeck.engine.engine import Engine
from flowdeck.engine.query import ExecutionQuery

FILTER_KEY = re.compile(r"^filters\[(\w+)\]\[(\w+)\](?:\[([^\]]*)\])?$")
OPERATORS = {"EQUALS", "NOT_EQUALS", "GREATER_THAN", "LESS_THAN", "GREATER_THAN_OR_EQUAL_TO",
             "LESS_THAN_OR_EQUAL_TO", "IN", "NOT_IN", "STARTS_WITH", "ENDS_WITH", "CONTAINS",
             "NOT_CONTAINS", "IS_NULL", "IS_NOT_NULL", "REGEX", "PREFIX"}


@dataclass(slots=True)
class Filter:
    field: str
    op: str
    value: str
    key: str | None = None


def get_engine(request: Request) -> Engine:
    engine: Engine = request.app.state.engine
    return engine


def parse_filters(params: QueryParams) -> list[Filter]:
    filters = []
    for name, value in params.multi_items():
        if not name.startswith("filters["):
            continue
        match = FILTER_KEY.match(name)
        if match is None:
            raise BadRequestError(f"unsupported filter parameter '{name}'; use "
                                  "filters[field][OPERATION]=value")
        field, op, key = match.groups()
        if op not in OPERATORS:
            raise BadRequestError(f"unknown filter operation '{op}' in '{name}'")
        filters.append(Filter(field, op, value, key))
    return filters


def int_param(params: QueryParams, name: str, default: int, low: int = 1,
              high: int = 10_000) -> int:
    raw = params.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise BadRequestError(f"query parameter '{name}' must be an integer, got '{raw}'") from None
    if not low <= value <= high:
        raise BadRequestError(f"query parameter '{name}' must be between {low} and {high}")
    return value


def instant_param(name: str, raw: str) -> datetime:
    try:
        return parse_instant(raw)
    except ValueError:
        raise BadRequestError(f"'{name}' must be an ISO-8601 date-time, got '{raw}'") from None


def time_range(raw: str, now: datetime) -> datetime:
    try:
        return now - parse_duration(raw)
    except ValueError:
        raise BadRequestError(f"'timeRange' must be an ISO-8601 duration like PT24H, "
                              f"got '{raw}'") from None


def parse_sort(params: QueryParams) -> list[tuple[str, bool]]:
    out = []
    for raw in params.getlist("sort"):
        for item in raw.split(","):
            if not item:
                continue
            name, _, direction = item.partition(":")
            direction = direction.lower() or "asc"
            if direction not in ("asc", "desc"):
                raise BadRequestError(f"sort direction must be asc or desc, got '{direction}'")
            out.append((name, direction == "desc"))
    return out or [("state.startDate", True)]


def _split(value: str) -> list[str]:
    return [v.strip() for v in value.split(",") if v.strip()]


def execution_query(params: QueryParams, now: datetime | None = None) -> ExecutionQuery:
    """Both the 1.x/2.x `filters[...]` form and the legacy parameters."""
    now = now or datetime.now(UTC)
    query = ExecutionQuery(page=int_param(params, "page", 1, high=1_000_000),
                           size=int_param(params, "size", 10), sort=parse_sort(params))
    for f in parse_filters(params):
        if f.field == "namespace":
            query.namespace = f.value
            query.namespace_mode = {"EQUALS": "EQUALS", "CONTAINS": "CONTAINS"}.get(f.op,
                                                                                    "PREFIX")
        elif f.field == "flowId":
            query.flow_id = f.value
        elif f.field == "state":
            if f.op in ("NOT_IN", "NOT_EQUALS"):
                query.exclude_states = _split(f.value)
            else:
                query.states = _split(f.value)
        elif f.field == "labels":
            if f.key:
                query.labels[f.key] = f.value
            else:
                for pair in _split(f.value):
                    k, _, v = pair.partition(":")
                    query.labels[k] = v
        elif f.field == "startDate":
            moment = instant_param("filters[startDate]", f.value)
            if f.op.startswith("GREATER"):
                query.start_after = moment
            else:
                query.start_before = moment
        elif f.field == "endDate":
            query.start_before = instant_param("filters[endDate]", f.value)
        elif f.field == "timeRange":
            query.start_after = time_range(f.value, now)
        elif f.field == "q":
            query.q = f.value
        elif f.field == "childFilter":
            query.child_filter = f.value.upper()
        elif f.field in ("scope", "kind"):
            continue
        else:
            raise BadRequestError(f"cannot filter executions by '{f.field}'")
    legacy = params
    if legacy.get("namespace"):
        query.namespace = legacy["namespace"]
    if legacy.get("flowId"):
        query.flow_id = legacy["flowId"]
    states = [s for raw in legacy.getlist("state") for s in _split(raw)]
    if states:
        query.states = states
    for raw in legacy.getlist("labels"):
        key, sep, value = raw.partition(":")
        if not sep:
            raise BadRequestError(f"labels must look like key:value, got '{raw}'")
        query.labels[key] = value
    if legacy.get("startDate"):
        query.start_after = instant_param("startDate", legacy["startDate"])
    if legacy.get("endDate"):
        query.start_before = instant_param("endDate", legacy["endDate"])
    if legacy.get("timeRange"):
        query.start_after = time_range(legacy["timeRange"], now)
    if legacy.get("q"):
        query.q = legacy["q"]
    if legacy.get("childFilter"):
        query.child_filter = legacy["childFilter"].upper()
    return query


def paged(results: list[Any], total: int) -> dict[str, Any]:
    return {"results": results, "total": total}


async def read_inputs(request: Request, upload_dir: Path) -> dict[str, Any]:
    """Execution or resume inputs from an optional multipart/urlencoded (or JSON) body.

    A file part becomes a FILE input whose value is the stored file's `file://` URI.
    """
    content_type = request.headers.get("content-type", "")
    if content_type.startswith("multipart/form-data"):
        await _check_multipart_complete(request, content_type)
    if content_type.startswith(("multipart/form-data", "application/x-www-form-urlencoded")):
        try:
            form = await request.form()
        except MultiPartException as exc:
            raise BadRequestError(f"malformed multipart body: {exc.message}") from None
        inputs: dict[str, Any] = {}
        try:
            for name, value in form.multi_items():
                if isinstance(value, UploadFile):
                    folder = upload_dir / new_id()
                    folder.mkdir(parents=True, exist_ok=True)
                    target = folder / Path(value.filename or name).name
                    target.write_bytes(await value.read())
                    inputs[name] = target.as_uri()
                else:
                    inputs[name] = value
        finally:
            await form.close()
        return inputs
    if content_type.startswith("application/json"):
        raw = await request.body()
        if not raw.strip():
            return {}
        try:
            body = json.loads(raw)
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise ValidationError([("body", f"invalid JSON: {exc}")]) from None
        if not isinstance(body, dict):
            raise ValidationError([("body", "a JSON body must be an object of input values")])
        return body
    return {}


async def _check_multipart_complete(request: Request, content_type: str) -> None:
    """A multipart body cut short would otherwise parse as fewer inputs, silently."""
    boundary = ""
    for part in content_type.split(";")[1:]:
        key, _, value = part.strip().partition("=")
        if key.lower() == "boundary":
            boundary = value.strip('"')
    body = await request.body()
    if not body.strip():
        return
    if not boundary or f"--{boundary}--".encode() not in body[-(len(boundary) + 16):]:
        raise BadRequestError("malformed multipart body: it does not end with its closing "
                              "boundary (was the upload cut short?)")


def labels_param(params: QueryParams) -> list[tuple[str, str]]:
    out = []
    for raw in params.getlist("labels"):
        key, sep, value = raw.partition(":")
        if not sep or not key:
            raise BadRequestError(f"labels must look like key:value, got '{raw}'")
        out.append((key, value))
    return out


def bool_param(params: QueryParams, name: str, default: bool = False) -> bool:
    raw = params.get(name)
    if raw is None or raw == "":
        return default
    if raw.lower() in ("true", "1", "yes"):
        return True
    if raw.lower() in ("false", "0", "no"):
        return False
    raise BadRequestError(f"query parameter '{name}' must be true or false, got '{raw}'")


def execution_url(request: Request, namespace: str, flow_id: str, execution_id: str) -> str:
    base = str(request.base_url).rstrip("/")
    return f"{base}/ui/main/executions/{namespace}/{flow_id}/{execution_id}"
