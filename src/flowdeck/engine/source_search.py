"""Searching flow sources (Kestra's `GET /flows/source`): every match of a text or a regular
expression in the current flows' YAML, with its line, column and the line marked.

As Kestra does: the query is literal unless `regex`; `whole_word` wraps it in `\\b(?:...)\\b`;
matching ignores case unless `case_sensitive`; a match is reported on the line it starts on,
its snippet that line with the match between `[mark]` and `[/mark]`; at most 500 matches a
flow. A scope (`TASKS`, `TRIGGERS`, `INPUTS`) keeps the matches inside that top-level block. A
flow without a match is left out; a blank query matches every flow with no matches. The
namespace is a prefix (the namespace or a child of it).

User patterns run on the `regex` package with a timeout for the whole search, off the event
loop in a pool of two threads (`off_loop`; the matching releases the GIL): a pattern that does
not compile, or takes too long, is a `BadRequestError` (Kestra's 400).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import TypeVar

import regex

from flowdeck.core.errors import BadRequestError
from flowdeck.engine.flows import FlowDefinition

MAX_MATCHES_PER_SOURCE = 500
#: Wall-clock budget of one search's pattern matching, over every flow.
SEARCH_TIMEOUT_S = 2.0
MAX_QUERY_CHARS = 1_000
SCOPES = ("ALL", "TASKS", "TRIGGERS", "INPUTS")
SORT_KEYS = {"namespace": 0, "id": 1, "flowId": 1}
_TOP_LEVEL_KEY = regex.compile(r"^[A-Za-z_][\w-]*:.*")
#: Where user patterns run: at most two searches at once, never on the event loop.
SEARCH_POOL = ThreadPoolExecutor(max_workers=2, thread_name_prefix="source-search")
T = TypeVar("T")


async def off_loop(fn: Callable[..., T], *args: object) -> T:
    return await asyncio.get_running_loop().run_in_executor(SEARCH_POOL, fn, *args)


@dataclass(frozen=True, slots=True)
class SourceMatch:
    line: int
    column: int
    snippet: str


@dataclass(frozen=True, slots=True)
class SourceHit:
    namespace: str
    id: str
    matches: list[SourceMatch]


@dataclass(slots=True)
class SourceQuery:
    q: str | None = None
    namespace: str | None = None
    case_sensitive: bool = False
    whole_word: bool = False
    regex: bool = False
    scope: str = "ALL"
    sort: list[tuple[str, bool]] = field(default_factory=list)
    page: int = 1
    size: int = 10


def compile_query(query: SourceQuery) -> regex.Pattern[str]:
    text = query.q or ""
    if len(text) > MAX_QUERY_CHARS:
        raise BadRequestError(f"q is too long ({len(text):,} characters; at most "
                              f"{MAX_QUERY_CHARS:,})")
    base = text if query.regex else regex.escape(text)
    if query.whole_word:
        base = rf"\b(?:{base})\b"
    flags = 0 if query.case_sensitive else regex.IGNORECASE
    try:
        return regex.compile(base, flags | regex.VERSION0)
    except (regex.error, OverflowError, RecursionError) as exc:
        raise BadRequestError(f"invalid source search query: {exc}") from None


def _line_starts(source: str) -> list[int]:
    starts = [0]
    starts.extend(i + 1 for i, ch in enumerate(source) if ch == "\n")
    return starts


def block_lines(source: str, scope: str) -> tuple[int, int] | None:
    """The 1-based lines of a top-level block's contents (`tasks:` to the next key)."""
    lines = source.split("\n")
    key, start = scope.lower() + ":", -1
    for index, line in enumerate(lines):
        top = _TOP_LEVEL_KEY.match(line) is not None
        if start == -1:
            if top and line.startswith(key):
                start = index + 1
        elif top:
            return start, index
    return (start, len(lines)) if start != -1 else None


def find_matches(source: str, pattern: regex.Pattern[str], deadline: float) -> list[SourceMatch]:
    starts = _line_starts(source)
    matches: list[SourceMatch] = []
    line = 0
    try:
        for found in pattern.finditer(source, concurrent=True,
                                        timeout=max(0.001, deadline - time.monotonic())):
            start, end = found.span()
            while line < len(starts) - 1 and starts[line + 1] - 1 < start:
                line += 1
            begin = starts[line]
            stop = starts[line + 1] - 1 if line + 1 < len(starts) else len(source)
            mark_end = max(start, min(end, stop))
            snippet = (f"{source[begin:start]}[mark]{source[start:mark_end]}[/mark]"
                       f"{source[mark_end:stop]}")
            matches.append(SourceMatch(line + 1, start - begin, snippet))
            if len(matches) >= MAX_MATCHES_PER_SOURCE:
                break
    except TimeoutError:
        raise BadRequestError("the source search took too long; simplify the regular "
                              "expression") from None
    return matches


def _in_namespace(flow: FlowDefinition, namespace: str | None) -> bool:
    return not namespace or flow.namespace == namespace or \
        flow.namespace.startswith(namespace + ".")


def _hit(flow: FlowDefinition, query: SourceQuery, pattern: regex.Pattern[str],
         deadline: float) -> SourceHit | None:
    if not query.q:
        return SourceHit(flow.namespace, flow.id, [])
    matches = find_matches(flow.source, pattern, deadline)
    if query.scope != "ALL" and matches:
        block = block_lines(flow.source, query.scope)
        matches = [m for m in matches if block and block[0] <= m.line <= block[1]]
    return SourceHit(flow.namespace, flow.id, matches) if matches else None


def search_sources(flows: Iterable[FlowDefinition],
                   query: SourceQuery) -> tuple[list[SourceHit], int]:
    """One page of the flows whose source matches, and how many match in all."""
    if query.scope not in SCOPES:
        raise BadRequestError(f"scope must be one of {', '.join(SCOPES)}, got '{query.scope}'")
    for name, _ in query.sort:
        if name not in SORT_KEYS:
            raise BadRequestError(f"cannot sort source search results by '{name}'; use "
                                  "namespace or id")
    pattern = compile_query(query)
    deadline = time.monotonic() + SEARCH_TIMEOUT_S
    hits = [hit for flow in flows if _in_namespace(flow, query.namespace)
            if (hit := _hit(flow, query, pattern, deadline)) is not None]
    hits.sort(key=lambda h: (h.namespace, h.id))
    for name, descending in reversed(query.sort):
        index = SORT_KEYS[name]
        hits.sort(key=lambda h: (h.namespace, h.id)[index], reverse=descending)
    start = (query.page - 1) * query.size
    return hits[start:start + query.size], len(hits)
