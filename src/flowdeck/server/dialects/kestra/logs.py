"""Kestra's log routes: list, download, search, delete, and follow over server-sent events.

Parameters: the ≤1.x ones (`minLevel`, `taskRunId`, `taskId`, `attempt`; for search also `q`,
`namespace` (a prefix), `flowId`, `triggerId`, `startDate`, `endDate`) and the 1.x/2.x
`filters[field][OP]=value` ones (`namespace`, `flowId`, `executionId`, `taskId`, `taskRunId`,
`attempt`, `level` — e.g. `filters[level][GREATER_THAN_OR_EQUAL_TO]=WARN` —, `startDate`,
`endDate`, `timeRange`, `q`, `triggerId`) are accepted on every route. An unknown execution has
no logs: listing it gives `[]` and deleting it 200, as in Kestra; downloading or following it is
a 404.

`GET /logs/search` sorts newest first (`timestamp:desc`) unless `sort` says otherwise, and
answers `{"results", "total"}`, plus Kestra 2.x's `"type": "OFFSET"` when the server presents
itself as 2.x (flowdeck has no cursor paging, so `nextCursor` never appears).

`GET /logs/{id}` streams its JSON array and a download its text, a page at a time
(`log_streams.py`). Log follow (`GET /logs/{executionId}/follow`) replays every stored line, a
page at a time, then streams live ones, never closes by itself and sends `: ping` comments
while idle. Resumption is flowdeck's one
deliberate departure from Kestra's wire format: Kestra tags every log event with the literal id
`progress`, which gives a reconnecting client nothing to resume from. flowdeck's event id is the
line's sequence number instead (`id: 42`), and the data is Kestra's LogEntry, which also carries
that number as `sequence`. A client that reconnects with `Last-Event-ID: 42` (what EventSource
and sseclient send on their own), or asks for `?afterSequence=42`, gets exactly the lines after
42: no gap, no duplicate (the header wins when both are given; a non-numeric header, such as a
Kestra-style `progress`, is ignored and everything is replayed). Clients that ignore ids, as
Kestra clients do, see no difference.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import Response, StreamingResponse
from starlette.datastructures import QueryParams

from flowdeck.core.errors import BadRequestError
from flowdeck.core.states import is_terminal
from flowdeck.engine.logs import (
    LOG_TEXT_FIELDS,
    MAX_LOG_PAGE,
    LogQuery,
    levels_from,
)
from flowdeck.server.access import OPERATOR, VIEWER
from flowdeck.server.deps import attachment, get_engine, instant_param, int_param, time_range
from flowdeck.server.dialects.kestra.common import (
    Filter,
    kestra_major,
    paged,
    parse_filters,
    parse_sort,
)
from flowdeck.server.dialects.kestra.log_streams import (
    json_array,
    log_events,
    pretty_page,
    started,
)
from flowdeck.server.sse import STREAM_PAGE, keepalive_interval, limiter_of, open_stream, paced

router = APIRouter()

LATER = ("GREATER_THAN", "GREATER_THAN_OR_EQUAL_TO")
EARLIER = ("LESS_THAN", "LESS_THAN_OR_EQUAL_TO", "EQUALS")


def _narrow(query: LogQuery, levels: set[str]) -> None:
    query.levels = levels if query.levels is None else query.levels & levels


#: What a stored integer can hold (SQLite's INTEGER): a number past it is refused, not a 500.
STORED_INT_MAX = 2**63 - 1


def _int(name: str, raw: str) -> int:
    try:
        value = int(raw)
    except ValueError:
        raise BadRequestError(f"'{name}' must be an integer, got '{raw}'") from None
    if not -STORED_INT_MAX <= value <= STORED_INT_MAX:
        raise BadRequestError(f"'{name}' must be an integer between {-STORED_INT_MAX} and "
                              f"{STORED_INT_MAX}")
    return value


def _apply_filter(query: LogQuery, f: Filter, now: datetime) -> None:
    if f.field == "level":
        _narrow(query, levels_from(f.op, f.value))
    elif f.field in LOG_TEXT_FIELDS:
        query.text.append((f.field, f.op, f.value))
    elif f.field in ("attempt", "attemptNumber"):
        if f.op != "EQUALS":
            raise BadRequestError(f"cannot filter logs by '{f.field}' with {f.op}")
        query.attempt = _int(f"filters[{f.field}]", f.value)
    elif f.field == "startDate":
        moment = instant_param("filters[startDate]", f.value)
        if f.op in LATER:
            query.start = moment
        elif f.op in EARLIER:
            query.end = moment
        else:
            raise BadRequestError(f"cannot filter logs by 'startDate' with {f.op}")
    elif f.field == "endDate":
        moment = instant_param("filters[endDate]", f.value)
        if f.op in LATER:
            query.start = moment
        else:
            query.end = moment
    elif f.field == "timeRange":
        query.start = time_range(f.value, now)
    elif f.field == "q":
        query.q = f.value
    elif f.field == "triggerId":
        if f.op != "IS_NULL":  # flowdeck's lines all come from executions
            query.trigger_id = f.value
    elif f.field != "scope":
        raise BadRequestError(f"cannot filter logs by '{f.field}'")


def log_query(params: QueryParams, execution_id: str | None = None,
              now: datetime | None = None) -> LogQuery:
    """Both parameter styles into one `LogQuery` (not yet paged or sorted)."""
    now = now or datetime.now(UTC)
    query = LogQuery(execution_id=execution_id)
    for f in parse_filters(params):
        _apply_filter(query, f, now)
    if params.get("minLevel"):
        _narrow(query, levels_from("GREATER_THAN_OR_EQUAL_TO", params["minLevel"]))
    if params.get("taskRunId"):
        query.text.append(("taskRunId", "EQUALS", params["taskRunId"]))
    task_ids = [t for t in params.getlist("taskId") if t]
    if task_ids:
        query.text.append(("taskId", "IN", ",".join(task_ids)))
    if params.get("attempt"):
        query.attempt = _int("attempt", params["attempt"])
    if params.get("namespace"):
        query.text.append(("namespace", "PREFIX", params["namespace"]))
    if params.get("flowId"):
        query.text.append(("flowId", "EQUALS", params["flowId"]))
    if params.get("triggerId"):
        query.trigger_id = params["triggerId"]
    if params.get("startDate"):
        query.start = instant_param("startDate", params["startDate"])
    if params.get("endDate"):
        query.end = instant_param("endDate", params["endDate"])
    if params.get("timeRange"):
        query.start = time_range(params["timeRange"], now)
    if params.get("q"):
        query.q = params["q"]
    query.check()
    return query


def _in_order(query: LogQuery) -> LogQuery:
    query.sort = [("sequence", False)]
    return query


@router.get("/logs/search", tags=["Logs"], dependencies=VIEWER,
            summary="Search for logs")
async def search_logs(request: Request) -> dict[str, Any]:
    params = request.query_params
    query = log_query(params)
    query.page = int_param(params, "page", 1, high=1_000_000)
    query.size = int_param(params, "size", 10, high=MAX_LOG_PAGE)
    if any(item.strip() for item in params.getlist("sort")):  # Kestra ignores `sort=`
        query.sort = parse_sort(params)
    entries, total = await get_engine(request).logs.search(query)
    body = paged([e.to_dict() for e in entries], total)
    if kestra_major(request) >= 2:
        body["type"] = "OFFSET"  # 2.x: CursorOrOffsetPagedResults; flowdeck pages by offset
    return body


@router.get("/logs/{execution_id}", tags=["Logs"], dependencies=VIEWER,
            summary="Get logs for a specific execution, taskrun or task",
            responses={200: {"content": {"application/json": {}},
                             "description": "The lines in order, streamed (chunked)"},
                       400: {"description": "A malformed filter"}})
async def list_logs(execution_id: str, request: Request) -> Response:
    """Every line, streamed as one JSON array a page at a time (an execution of 200,000
    lines is never built in memory as one body); an unknown execution has `[]`."""
    query = _in_order(log_query(request.query_params, execution_id))
    raw = request.query_params.get("afterSequence")
    if raw:  # flowdeck's extension: the lines after a sequence number
        query.after_seq = max(0, _int("afterSequence", raw))
    body = json_array(get_engine(request), execution_id, query, limiter_of(request))
    return StreamingResponse(await started(body), media_type="application/json")


@router.get("/logs/{execution_id}/download", tags=["Logs"], dependencies=VIEWER,
            response_class=Response,
            summary="Download logs for a specific execution, taskrun or task",
            responses={200: {"content": {"text/plain": {}}},
                       404: {"description": "Unknown execution"}})
async def download_logs(execution_id: str, request: Request) -> Response:
    engine = get_engine(request)
    execution = await engine.get_execution(execution_id)
    query = _in_order(log_query(request.query_params, execution_id))
    headers = {"Content-Disposition": attachment(f"{execution_id}.log")}
    if not is_terminal(execution.state.current):
        headers["Cache-Control"] = "no-cache"
    pages = engine.logs.pages(execution_id, page_size=STREAM_PAGE, query=query)
    body = await started(paced(pages, pretty_page([True]), limiter_of(request)))
    return StreamingResponse(body, media_type="text/plain", headers=headers)


@router.delete("/logs/{execution_id}", tags=["Logs"], dependencies=OPERATOR,
               response_class=Response,
               summary="Delete logs for a specific execution, taskrun or task")
async def delete_logs(execution_id: str, request: Request) -> Response:
    query = log_query(request.query_params, execution_id)
    await get_engine(request).logs.delete(execution_id, query)
    return Response(status_code=200)


def resume_point(request: Request) -> int:
    """The sequence number to resume after: `Last-Event-ID`, else `afterSequence`, else 0."""
    header = request.headers.get("last-event-id", "").strip()
    if header.isascii() and header.isdigit():
        return _int("Last-Event-ID", header)
    raw = request.query_params.get("afterSequence")
    if raw is None or raw == "":
        return 0
    value = _int("afterSequence", raw)
    if value < 0:
        raise BadRequestError(f"'afterSequence' must be 0 or more, got {value}")
    return value


@router.get("/logs/{execution_id}/follow", tags=["Logs"], dependencies=VIEWER,
            response_class=Response,
            summary="Follow logs for a specific execution (server-sent events)",
            responses={200: {"content": {"text/event-stream": {}}},
                       404: {"description": "Unknown execution"},
                       429: {"description": "Too many open streams"}})
async def follow_logs(execution_id: str, request: Request) -> Response:
    engine = get_engine(request)
    await engine.get_execution(execution_id)  # a 404 before the stream starts
    query = log_query(request.query_params, execution_id)
    after = resume_point(request)
    events = log_events(engine, execution_id, after, query, keepalive_interval(request),
                        limiter_of(request))
    return await open_stream(request, events)
