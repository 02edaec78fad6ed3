"""Short ids: what an operator copies from the deck or a listing works wherever an id is taken.

A fragment of at least `MIN_FRAGMENT` characters (hex digits and dashes) names the one id that
starts or ends with it: the deck shows an execution's last 8 characters, a listing its first
ones. An approval can also be named by its execution's id (or a fragment of it). A fragment that
matches several ids is an `AmbiguousIdError` listing them; one that matches none, or text that
is not a fragment, is passed through unchanged, so the backend reports it as unknown in its own
words.

Resolution uses only the `Backend` protocol, so it works on the embedded engine and over HTTP:
an execution search for the fragment (`q` matches ids on flowdeck), and for a server whose
search does not match ids (a Kestra), a bounded scan of the newest executions.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

from flowdeck.client.backend import Backend, ExecutionFilter
from flowdeck.core.errors import BadRequestError, NotFoundError
from flowdeck.core.ids import is_uuid
from flowdeck.core.models import Approval, Execution

#: The shortest fragment taken for an id (the deck shows 8 characters).
MIN_FRAGMENT = 8
#: Candidates asked of an id search (more than enough: 8 hex digits rarely repeat).
SEARCH_SIZE = 50
#: For a server whose search does not match ids: executions scanned, newest first, per page.
SCAN_LIMIT = 1000
SCAN_PAGE = 200
#: Candidates named in an ambiguity error.
SHOWN_CANDIDATES = 10

_FRAGMENT = re.compile(r"[0-9a-fA-F-]+")


@dataclass(frozen=True, slots=True)
class Candidate:
    id: str
    summary: str


class AmbiguousIdError(BadRequestError):
    """A fragment that names more than one id; `candidates` says which."""

    def __init__(self, kind: str, fragment: str, candidates: list[Candidate]) -> None:
        self.kind = kind
        self.fragment = fragment
        self.candidates = candidates
        super().__init__(f"{kind} id '{fragment}' is ambiguous: it matches {len(candidates)} "
                         f"{kind}s; give more characters")


def is_fragment(text: str) -> bool:
    """Whether `text` can be a short id (not a whole one: that is used as it is)."""
    return (len(text) >= MIN_FRAGMENT and _FRAGMENT.fullmatch(text) is not None
            and not is_uuid(text))


def matches(full_id: str, fragment: str) -> bool:
    """Whether `fragment` is the start or the end of `full_id` (any case)."""
    full, part = full_id.lower(), fragment.lower()
    return full.startswith(part) or full.endswith(part)


def pick(kind: str, fragment: str, candidates: Iterable[Candidate]) -> str:
    """The one candidate's id; `fragment` unchanged when there is none; ambiguous otherwise."""
    unique = list({c.id: c for c in candidates}.values())
    if len(unique) == 1:
        return unique[0].id
    if not unique:
        return fragment
    raise AmbiguousIdError(kind, fragment, unique)


def execution_candidate(execution: Execution) -> Candidate:
    started = execution.state.start_date.strftime("%Y-%m-%d %H:%M:%S")
    return Candidate(execution.id, f"{execution.state.current}  "
                                   f"{execution.namespace}.{execution.flow_id}  {started}")


def approval_candidate(approval: Approval) -> Candidate:
    return Candidate(approval.id, f"{approval.status}  {approval.namespace}.{approval.flow_id}  "
                                  f"execution {approval.execution_id}  {approval.title}")


async def resolve_execution_id(backend: Backend, text: str, *, scan: bool = False) -> str:
    """The execution id `text` names (whole, or a unique fragment of one).

    `scan`: the server's search may not match ids (a Kestra): look through the newest
    `SCAN_LIMIT` executions too when the search finds nothing.
    """
    if not is_fragment(text):
        return text
    fragment = text.lower()
    page = await backend.search_executions(ExecutionFilter(q=fragment, size=SEARCH_SIZE))
    found = [e for e in page.results if matches(e.id, fragment)]
    if not found and scan:
        for number in range(1, SCAN_LIMIT // SCAN_PAGE + 1):
            page = await backend.search_executions(ExecutionFilter(page=number, size=SCAN_PAGE))
            found.extend(e for e in page.results if matches(e.id, fragment))
            if len(page.results) < SCAN_PAGE:
                break
    return pick("execution", text, (execution_candidate(e) for e in found))


async def resolve_approval_id(backend: Backend, text: str) -> str:
    """The approval id `text` names: the approval's own id or its execution's, whole or a
    unique fragment.

    An execution stands for the approval it waits on (the pending one; with none pending,
    its latest), so an execution that passed several approval gates names the current one.
    Every approval a fragment reaches counts, whatever its status: a fragment that names an
    old approval as well as a pending one is ambiguous, never silently the pending one.
    """
    whole = is_uuid(text)
    if whole:
        try:
            return (await backend.get_approval(text)).id
        except NotFoundError:
            pass
    elif not is_fragment(text):
        return text

    def same(full_id: str) -> bool:
        return full_id.lower() == text.lower() if whole else matches(full_id, text)

    # Pending ones first and separately: a long history must not crowd them out of the list.
    known = {a.id: a for a in await backend.list_approvals("pending")}
    for approval in await backend.list_approvals(None):
        known.setdefault(approval.id, approval)
    named = [a for a in known.values() if same(a.id)]
    by_execution: dict[str, list[Approval]] = {}
    for approval in known.values():
        if same(approval.execution_id):
            by_execution.setdefault(approval.execution_id, []).append(approval)
    for approvals in by_execution.values():
        pending = [a for a in approvals if a.status == "pending"]
        named.extend(pending or [max(approvals, key=lambda a: a.created_at)])
    return pick("approval", text, (approval_candidate(a) for a in named))
