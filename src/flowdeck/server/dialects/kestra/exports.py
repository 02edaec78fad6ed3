"""Kestra's CSV exports: `GET /flows/export/by-query/csv`, `/executions/export/by-query/csv`
and `/triggers/export/by-query/csv`, every match of the search route's filters as `text/csv`
(`engine/exports.py`), streamed, with Kestra's `Content-Disposition` file name.

As Kestra writes them: the header is the members of the first record's JSON (a flow as
`Flow`, an execution as `Execution`, a trigger as its trigger context), each value as Java
prints it (`true`, `[a, b]`, `{key=value}`, nothing for null), quoted when it holds a comma, a
quote or a line break, lines ending CRLF; no match is an empty body.

Also `GET /executions/distinct-field-values?field=&filters[...]=&size=`: the distinct values
of one field (`NAMESPACE`, `FLOW_ID`, `STATE`) over the executions the filters match, sorted,
as a JSON list of strings; another field is Kestra's 400.
"""

from __future__ import annotations

import csv
import io
from collections.abc import AsyncIterator, Iterable
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import StreamingResponse

from flowdeck.core.errors import BadRequestError
from flowdeck.core.models import Execution
from flowdeck.engine import exports
from flowdeck.server.access import VIEWER
from flowdeck.server.deps import get_engine, int_param
from flowdeck.server.dialects.kestra.common import execution_query
from flowdeck.server.dialects.kestra.executions import checked_states
from flowdeck.server.dialects.kestra.flows import flow_json, flow_query
from flowdeck.server.dialects.kestra.triggers import context, trigger_query

router = APIRouter(tags=["exports"], dependencies=VIEWER)


def java_text(value: Any) -> str:
    """A JSON value as Java's `toString` prints the map Kestra converts a record to."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{k}={java_text(v)}" for k, v in value.items()) + "}"
    if isinstance(value, list):
        return "[" + ", ".join(java_text(v) for v in value) + "]"
    return str(value)


def csv_line(values: Iterable[str]) -> str:
    buffer = io.StringIO()
    csv.writer(buffer, lineterminator="\r\n").writerow(list(values))
    return buffer.getvalue()


async def csv_lines(records: AsyncIterator[list[dict[str, Any]]]) -> AsyncIterator[str]:
    header: list[str] | None = None
    async for page in records:
        for record in page:
            if header is None:
                header = list(record)
                yield csv_line(header)
            yield csv_line(java_text(record.get(name)) for name in header)


async def once(records: list[dict[str, Any]]) -> AsyncIterator[list[dict[str, Any]]]:
    yield records


def csv_response(lines: AsyncIterator[str], name: str) -> StreamingResponse:
    return StreamingResponse(lines, media_type="text/csv", headers={
        "Content-Disposition": f"attachment; filename={name}.csv"})


@router.get("/flows/export/by-query/csv", summary="Export the flows a query matches as CSV")
async def flows_csv(request: Request) -> StreamingResponse:
    flows = exports.flows_matching(get_engine(request), flow_query(request.query_params))
    records = [flow_json(f, with_source=False) for f in flows]
    return csv_response(csv_lines(once(records)), "flows")


@router.get("/executions/export/by-query/csv",
            summary="Export the executions a query matches as CSV")
async def executions_csv(request: Request) -> StreamingResponse:
    engine = get_engine(request)
    query = execution_query(request.query_params, engine.clock.now())
    checked_states(query)
    pages = exports.executions_matching(engine, query)
    # The first page before the answer starts: a query the engine refuses is a 400, not a
    # broken stream.
    first: list[Execution] = await anext(pages, [])

    async def records() -> AsyncIterator[list[dict[str, Any]]]:
        now = engine.clock.now()
        yield [e.to_dict(now) for e in first]
        async for page in pages:
            yield [e.to_dict(now) for e in page]

    return csv_response(csv_lines(records()), "executions")


@router.get("/triggers/export/by-query/csv", summary="Export the triggers a query matches as CSV")
async def triggers_csv(request: Request) -> StreamingResponse:
    found = await exports.triggers_matching(get_engine(request),
                                            trigger_query(request.query_params))
    return csv_response(csv_lines(once([context(s) for s in found])), "triggers")


@router.get("/executions/distinct-field-values",
            summary="The distinct values of one field over the executions a query matches")
async def distinct_field_values(request: Request) -> list[str]:
    engine = get_engine(request)
    params = request.query_params
    query = execution_query(params, engine.clock.now())
    checked_states(query)
    field_name = params.get("field") or ""
    if not field_name:
        raise BadRequestError("query parameter 'field' is required, e.g. field=NAMESPACE")
    return await engine.executions.distinct_values(query, field_name,
                                                   int_param(params, "size", 100))
