"""Kestra's flow source search and revision deletion.

`GET /flows/source?q=&namespace=&caseSensitive=&wholeWord=&regex=&scope=&page=&size=&sort=`
answers `PagedResults[SourceSearchResult]`: `{namespace, id, editable, matches: [{line,
column, snippet}]}` per matching flow (`engine/source_search.py`); a pattern that does not
compile or runs too long is Kestra's 400. `DELETE /flows/{namespace}/{id}/revisions?revisions=1,2`
forgets older revisions (a 204); the current one is refused with a 422, one an unfinished
execution still runs with a 409.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request, Response
from starlette.datastructures import QueryParams

from flowdeck.core.errors import BadRequestError
from flowdeck.engine.source_search import SourceHit, SourceQuery
from flowdeck.server.access import OPERATOR, VIEWER
from flowdeck.server.deps import bool_param, get_engine, int_param
from flowdeck.server.dialects.kestra.common import paged, parse_sort

router = APIRouter(tags=["flows"])

#: At most this many revisions in one `DELETE .../revisions`.
MAX_REVISIONS = 1_000


def source_query(params: QueryParams) -> SourceQuery:
    query = SourceQuery(q=params.get("q") or None, namespace=params.get("namespace") or None,
                        case_sensitive=bool_param(params, "caseSensitive"),
                        whole_word=bool_param(params, "wholeWord"),
                        regex=bool_param(params, "regex"),
                        scope=(params.get("scope") or "ALL").upper(),
                        page=int_param(params, "page", 1, high=1_000_000),
                        size=int_param(params, "size", 10))
    if any(item.strip() for item in params.getlist("sort")):
        query.sort = parse_sort(params)
    return query


def result(hit: SourceHit) -> dict[str, Any]:
    return {"namespace": hit.namespace, "id": hit.id, "editable": True,
            "matches": [{"line": m.line, "column": m.column, "snippet": m.snippet}
                        for m in hit.matches]}


@router.get("/flows/source", dependencies=VIEWER,
            summary="Search the flows' YAML sources (text or regex; line, column, snippet)")
async def search_sources(request: Request) -> dict[str, Any]:
    query = source_query(request.query_params)
    hits, total = await get_engine(request).flows.search_sources(query)
    return paged([result(h) for h in hits], total)


def revisions_param(params: QueryParams) -> list[int]:
    raw = [item.strip() for value in params.getlist("revisions") for item in value.split(",")]
    items = [item for item in raw if item]
    if not items:
        raise BadRequestError("query parameter 'revisions' is required: the revisions to "
                              "delete, e.g. revisions=1,2")
    if len(items) > MAX_REVISIONS:
        raise BadRequestError(f"at most {MAX_REVISIONS} revisions can be deleted at once")
    if not all(item.isascii() and item.isdigit() and len(item) <= 10 for item in items):
        raise BadRequestError("query parameter 'revisions' must list revision numbers, "
                              f"got '{','.join(items)[:100]}'")
    return [int(item) for item in items]


@router.delete("/flows/{namespace}/{flow_id}/revisions", status_code=204,
               dependencies=OPERATOR, summary="Delete older revisions of a flow")
async def delete_revisions(request: Request, namespace: str, flow_id: str) -> Response:
    revisions = revisions_param(request.query_params)
    await get_engine(request).flows.delete_revisions(namespace, flow_id, revisions)
    return Response(status_code=204)
