"""What the Kestra routes share: Kestra's query filters, sorting, paging and version.

Kestra clients filter with PHP-style parameters (`filters[state][IN]=FAILED,KILLED`,
`filters[labels][EQUALS][team]=data`) and older scripts with legacy ones (`state=FAILED`,
`labels=team:data`); both land in the same `ExecutionQuery`. A malformed value is a 400 that
names the parameter.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from fastapi import Request
from starlette.datastructures import QueryParams

from flowdeck.core.errors import BadRequestError
from flowdeck.engine.query import ExecutionQuery
from flowdeck.server.deps import instant_param, int_param, time_range

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
        _apply_filter(query, f, now)
    _apply_legacy(query, params, now)
    return query


def _apply_filter(query: ExecutionQuery, f: Filter, now: datetime) -> None:
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
    elif f.field not in ("scope", "kind"):
        raise BadRequestError(f"cannot filter executions by '{f.field}'")


def _apply_legacy(query: ExecutionQuery, legacy: QueryParams, now: datetime) -> None:
    """The ≤0.21 parameters: `namespace`, `flowId`, `state`, `labels=k:v`, dates, `q`."""
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


def paged(results: list[Any], total: int) -> dict[str, Any]:
    return {"results": results, "total": total}






def labels_param(params: QueryParams) -> list[tuple[str, str]]:
    out = []
    for raw in params.getlist("labels"):
        key, sep, value = raw.partition(":")
        if not sep or not key:
            raise BadRequestError(f"labels must look like key:value, got '{raw}'")
        out.append((key, value))
    return out




def execution_url(request: Request, namespace: str, flow_id: str, execution_id: str) -> str:
    base = str(request.base_url).rstrip("/")
    return f"{base}/ui/main/executions/{namespace}/{flow_id}/{execution_id}"


def kestra_version(request: Request) -> str:
    """The Kestra version this server presents (`extra["kestra_version"]`, 2.0.0 by default)."""
    options = getattr(request.app.state, "options", None)
    extra: dict[str, Any] = getattr(options, "extra", None) or {}
    return str(extra.get("kestra_version") or "2.0.0")


def kestra_major(request: Request) -> int:
    head = kestra_version(request).split(".", 1)[0]
    return int(head) if head.isdigit() else 2
