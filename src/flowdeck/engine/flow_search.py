"""Searching flows: filters (Kestra's operations), the older plain parameters, sort and paging.

A filter that cannot apply (an unknown field, an operation a field does not support, a bad
regular expression, a label that is not `key:value`) is a `BadRequestError` naming it.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from flowdeck.core.errors import BadRequestError
from flowdeck.engine.flows import FlowDefinition

SYSTEM_NAMESPACE = "system"
SORT_KEYS: dict[str, Callable[[FlowDefinition], Any]] = {
    "id": lambda f: f.id,
    "flowId": lambda f: f.id,
    "namespace": lambda f: f.namespace,
    "revision": lambda f: f.revision,
    "updated": lambda f: f.updated or "",
    "description": lambda f: f.description or "",
}
DEFAULT_SORT = (("namespace", False), ("id", False))
STRING_OPERATIONS = {"EQUALS", "NOT_EQUALS", "CONTAINS", "NOT_CONTAINS", "STARTS_WITH",
                     "ENDS_WITH", "PREFIX", "REGEX", "IN", "NOT_IN"}

Predicate = Callable[[FlowDefinition], bool]


@dataclass(frozen=True, slots=True)
class FlowFilter:
    """`field` `op` `value`, e.g. namespace PREFIX company; `key` for one label."""

    field: str
    op: str
    value: str
    key: str | None = None


@dataclass(slots=True)
class FlowQuery:
    filters: list[FlowFilter] = field(default_factory=list)
    #: The older parameters: free text, a namespace prefix, `key:value` labels, scopes.
    q: str | None = None
    namespace: str | None = None
    labels: list[str] = field(default_factory=list)
    scopes: list[str] = field(default_factory=list)
    #: (sort key, descending); empty for namespace then id.
    sort: list[tuple[str, bool]] = field(default_factory=list)
    page: int = 1
    size: int = 10


def search_flows(flows: Iterable[FlowDefinition],
                 query: FlowQuery) -> tuple[list[FlowDefinition], int]:
    """One page of the flows matching `query`, and how many match in all."""
    for name, _ in query.sort:
        if name not in SORT_KEYS:
            raise BadRequestError(f"cannot sort flows by '{name}'; use one of "
                                  f"{', '.join(sorted(SORT_KEYS))}")
    predicates = [predicate(f) for f in query.filters] + legacy_predicates(query)
    matches = [f for f in flows if all(p(f) for p in predicates)]
    for name, desc in reversed(query.sort or DEFAULT_SORT):
        matches.sort(key=SORT_KEYS[name], reverse=desc)
    start = (query.page - 1) * query.size
    return matches[start:start + query.size], len(matches)


def text_matcher(field: str, op: str, value: str) -> Callable[[str], bool]:
    """How a string field matches one filter."""
    if op not in STRING_OPERATIONS:
        raise BadRequestError(f"operation {op} is not supported for filters[{field}]")
    values = [v.strip() for v in value.split(",") if v.strip()]
    simple: dict[str, Callable[[str], bool]] = {
        "EQUALS": lambda s: s == value,
        "NOT_EQUALS": lambda s: s != value,
        "CONTAINS": lambda s: value.lower() in s.lower(),
        "NOT_CONTAINS": lambda s: value.lower() not in s.lower(),
        "STARTS_WITH": lambda s: s.startswith(value),
        "ENDS_WITH": lambda s: s.endswith(value),
        # Kestra's namespace prefix: the namespace itself or a child of it.
        "PREFIX": lambda s: s == value or s.startswith(value + "."),
        "IN": lambda s: s in values,
        "NOT_IN": lambda s: s not in values,
    }
    if op in simple:
        return simple[op]
    try:
        pattern = re.compile(value)
    except re.error as exc:
        raise BadRequestError(f"filters[{field}][REGEX] is not a valid regular expression: "
                              f"{exc}") from None
    return lambda s: pattern.search(s) is not None


def label_pairs(f: FlowFilter) -> list[tuple[str, str]]:
    if f.key:
        return [(f.key, f.value)]
    pairs = []
    for item in (v.strip() for v in f.value.split(",")):
        if not item:
            continue
        key, sep, val = item.partition(":")
        if not sep or not key:
            raise BadRequestError(f"filters[labels] values must look like key:value, got '{item}'")
        pairs.append((key, val))
    return pairs


def has_labels(pairs: list[tuple[str, str]]) -> Predicate:
    return lambda flow: all((k, v) in flow.labels for k, v in pairs)


def in_scope(scopes: list[str]) -> Predicate:
    wanted = set()
    for scope in scopes:
        upper = scope.strip().upper()
        if upper not in ("USER", "SYSTEM"):
            raise BadRequestError(f"scope must be USER or SYSTEM, got '{scope}'")
        wanted.add(upper)
    return lambda flow: ("SYSTEM" if flow.namespace == SYSTEM_NAMESPACE else "USER") in wanted


def matches_q(q: str) -> Predicate:
    needle = q.lower()
    return lambda flow: (needle in flow.id.lower() or needle in flow.namespace.lower()
                         or needle in (flow.description or "").lower())


def negated(predicate: Predicate) -> Predicate:
    return lambda flow: not predicate(flow)


def predicate(f: FlowFilter) -> Predicate:
    """What one filter keeps."""
    if f.field == "q":
        return matches_q(f.value)
    if f.field == "namespace":
        on_namespace = text_matcher("namespace", f.op, f.value)
        return lambda flow: on_namespace(flow.namespace)
    if f.field in ("flowId", "id"):
        on_id = text_matcher(f.field, f.op, f.value)
        return lambda flow: on_id(flow.id)
    if f.field == "labels":
        if f.op not in ("EQUALS", "NOT_EQUALS", "IN"):
            raise BadRequestError(f"operation {f.op} is not supported for filters[labels]")
        wanted = has_labels(label_pairs(f))
        return negated(wanted) if f.op == "NOT_EQUALS" else wanted
    if f.field == "scope":
        scoped = in_scope([s for s in f.value.split(",") if s.strip()])
        return negated(scoped) if f.op in ("NOT_EQUALS", "NOT_IN") else scoped
    raise BadRequestError(f"cannot filter flows by '{f.field}'; use q, namespace, "
                          "flowId, labels or scope")


def legacy_predicates(query: FlowQuery) -> list[Predicate]:
    """≤0.21 parameters: `q`, `namespace` (a prefix), `labels=key:value`, `scope`."""
    predicates: list[Predicate] = []
    if query.q:
        predicates.append(matches_q(query.q))
    if query.namespace:
        prefix = text_matcher("namespace", "PREFIX", query.namespace)
        predicates.append(lambda flow: prefix(flow.namespace))
    pairs = []
    for raw in query.labels:
        key, sep, value = raw.partition(":")
        if not sep or not key:
            raise BadRequestError(f"labels must look like key:value, got '{raw}'")
        pairs.append((key, value))
    if pairs:
        predicates.append(has_labels(pairs))
    if query.scopes:
        predicates.append(in_scope(query.scopes))
    return predicates
