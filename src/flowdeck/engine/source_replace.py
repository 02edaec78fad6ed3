"""Source Search's replace (Kestra 2.x `POST /flows/source/replace/preview|apply|line`).

The query matches as in `source_search.py`. The replacement is literal unless `regex`, where
it is Java's: `$1` or `${name}` insert a group, `\\x` is `x` (a reference to a group the
pattern does not have is a `BadRequestError`, Kestra's 400 "Invalid replacement"). A preview
shows, per match, its line before and after every match on it is replaced; apply rewrites the
chosen flows (within the scope's block), each a new revision, and says why each other one was
skipped (`NOT_FOUND`, `NO_MATCH`, `NO_CHANGE`, `INVALID_FLOW` with the flow's problems); line
replaces the one match at a line and column.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

import regex

from flowdeck.core.errors import BadRequestError, NotFoundError, ValidationError
from flowdeck.engine.flow_registry import FlowRegistry
from flowdeck.engine.flows import FlowDefinition
from flowdeck.engine.source_search import (
    SEARCH_TIMEOUT_S,
    SourceQuery,
    block_lines,
    compile_query,
    off_loop,
    search_sources,
)

MAX_REPLACEMENT_CHARS = 10_000


@dataclass(slots=True)
class Replace:
    query: SourceQuery
    replacement: str
    #: apply: the flows to rewrite; line: the one flow, line and column.
    flows: list[tuple[str, str]] = field(default_factory=list)
    line: int = 0
    column: int = 0


@dataclass(frozen=True, slots=True)
class PreviewMatch:
    line: int
    before: str
    after: str


@dataclass(frozen=True, slots=True)
class PreviewFlow:
    namespace: str
    id: str
    matches: list[PreviewMatch]


@dataclass(slots=True)
class Applied:
    updated: list[FlowDefinition] = field(default_factory=list)
    #: (namespace, id, reason, message)
    skipped: list[tuple[str, str, str, str | None]] = field(default_factory=list)


def _java_replacement(replacement: str, is_regex: bool) -> Callable[[regex.Match[str]], str]:
    if len(replacement) > MAX_REPLACEMENT_CHARS:
        raise BadRequestError(f"the replacement is too long (at most {MAX_REPLACEMENT_CHARS:,} "
                              "characters)")
    if not is_regex:
        return lambda _: replacement
    parts: list[tuple[bool, str | int]] = []  # (a group?, the text or the group)
    i = 0
    while i < len(replacement):
        ch = replacement[i]
        if ch == "\\" and i + 1 < len(replacement):
            parts.append((False, replacement[i + 1]))
            i += 2
        elif ch == "$" and replacement[i + 1:i + 2] == "{":
            end = replacement.find("}", i)
            if end == -1:
                raise BadRequestError("Invalid replacement: named capturing group is missing "
                                      "trailing '}'")
            parts.append((True, replacement[i + 2:end]))
            i = end + 1
        elif ch == "$" and replacement[i + 1:i + 2].isdigit():
            parts.append((True, int(replacement[i + 1])))
            i += 2
        elif ch == "$":
            raise BadRequestError("Invalid replacement: illegal group reference")
        else:
            parts.append((False, ch))
            i += 1

    def expand(match: regex.Match[str]) -> str:
        out = []
        for is_group, part in parts:
            if not is_group:
                out.append(str(part))
                continue
            try:
                out.append(match.group(part) or "")
            except (IndexError, regex.error):
                raise BadRequestError(f"Invalid replacement: no group {part}") from None
        return "".join(out)

    return expand


def _sub(pattern: regex.Pattern[str], expand: Callable[[regex.Match[str]], str], text: str,
         deadline: float) -> str:
    try:
        left = max(0.001, deadline - time.monotonic())
        return str(pattern.sub(expand, text, concurrent=True, timeout=left))
    except TimeoutError:
        raise BadRequestError("the replace took too long; simplify the regular "
                              "expression") from None


async def preview(flows: list[FlowDefinition], request: Replace) -> list[PreviewFlow]:
    """Each matching flow's matches, their lines before and after (off the event loop)."""
    return await off_loop(_preview, flows, request)


def _preview(flows: list[FlowDefinition], request: Replace) -> list[PreviewFlow]:
    query = request.query
    query.page, query.size = 1, max(1, len(flows))
    hits, _ = search_sources(flows, query)
    pattern = compile_query(query)
    expand = _java_replacement(request.replacement, query.regex)
    deadline = time.monotonic() + SEARCH_TIMEOUT_S
    out = []
    for hit in hits:
        matches = []
        for match in hit.matches:
            before = match.snippet.replace("[mark]", "").replace("[/mark]", "")
            matches.append(PreviewMatch(match.line, before,
                                        _sub(pattern, expand, before, deadline)))
        out.append(PreviewFlow(hit.namespace, hit.id, matches))
    return out


def replaced_source(source: str, pattern: regex.Pattern[str],
                    expand: Callable[[regex.Match[str]], str], scope: str,
                    deadline: float) -> str | None:
    """The source with every match in scope replaced; None when nothing matches."""
    start, end = 0, len(source)
    if scope != "ALL":
        block = block_lines(source, scope)
        if block is None:
            return None
        lines = source.split("\n")
        start = sum(len(line) + 1 for line in lines[:block[0] - 1])
        end = sum(len(line) + 1 for line in lines[:min(block[1], len(lines))]) - 1
    middle = source[start:end]
    try:
        left = max(0.001, deadline - time.monotonic())
        if pattern.search(middle, concurrent=True, timeout=left) is None:
            return None
    except TimeoutError:
        raise BadRequestError("the replace took too long; simplify the regular "
                              "expression") from None
    return source[:start] + _sub(pattern, expand, middle, deadline) + source[end:]


async def _rewrite(registry: FlowRegistry, flow: FlowDefinition, source: str | None,
                   result: Applied) -> None:
    if source is None:
        result.skipped.append((flow.namespace, flow.id, "NO_MATCH", None))
    elif source == flow.source:
        result.skipped.append((flow.namespace, flow.id, "NO_CHANGE", None))
    else:
        try:
            updated, _ = await registry.put(flow.namespace, flow.id, source)
        except ValidationError as exc:
            result.skipped.append((flow.namespace, flow.id, "INVALID_FLOW", str(exc)))
        else:
            result.updated.append(updated)


async def apply(registry: FlowRegistry, request: Replace) -> Applied:
    pattern = compile_query(request.query)
    expand = _java_replacement(request.replacement, request.query.regex)
    deadline = time.monotonic() + SEARCH_TIMEOUT_S
    result = Applied()
    for namespace, flow_id in request.flows:
        try:
            flow = registry.get(namespace, flow_id)
        except NotFoundError:
            result.skipped.append((namespace, flow_id, "NOT_FOUND", None))
            continue
        source = await off_loop(replaced_source, flow.source, pattern, expand,
                                request.query.scope, deadline)
        await _rewrite(registry, flow, source, result)
    return result


def _match_at(pattern: regex.Pattern[str], text: str, column: int) -> regex.Match[str] | None:
    if column > len(text):
        return None
    try:
        return pattern.search(text, column, concurrent=True, timeout=SEARCH_TIMEOUT_S)
    except TimeoutError:
        raise BadRequestError("the replace took too long; simplify the regular "
                              "expression") from None


async def apply_line(registry: FlowRegistry, request: Replace) -> Applied:
    pattern = compile_query(request.query)
    expand = _java_replacement(request.replacement, request.query.regex)
    [(namespace, flow_id)] = request.flows
    result = Applied()
    try:
        flow = registry.get(namespace, flow_id)
    except NotFoundError:
        result.skipped.append((namespace, flow_id, "NOT_FOUND", None))
        return result
    lines = flow.source.split("\n")
    text = lines[request.line - 1] if 1 <= request.line <= len(lines) else ""
    found = await off_loop(_match_at, pattern, text, request.column)
    if found is None or found.start() != request.column:
        await _rewrite(registry, flow, None, result)
        return result
    lines[request.line - 1] = text[:found.start()] + expand(found) + text[found.end():]
    await _rewrite(registry, flow, "\n".join(lines), result)
    return result
