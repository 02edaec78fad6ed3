"""What differs between Kestra versions, and reading Kestra JSON leniently into core models.

A remote server is one of three things: a flowdeck server (its `/api/v1/configs` carries
`flowdeckVersion`), a Kestra 2.x (`/api/v1/configs/login` answers, actions live under
`/actions/`), or an older Kestra (1.x action paths; before 0.23 no `main` tenant in paths).
Everything here is pure: no I/O, so each rule can be checked against recorded responses.

Parsing is lenient on purpose. Kestra 2.x task runs lack `executionId`/`namespace`/`flowId`,
search results are "light" executions, a newer Kestra may send a state this client has never
heard of (kept raw, and treated as not finished), and ids are opaque strings of any form.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote

from flowdeck.core.errors import (
    BackendUnavailable,
    BadRequestError,
    ConflictError,
    ExpiredError,
    FlowdeckError,
    NotFoundError,
    PermissionDenied,
    ValidationError,
)
from flowdeck.core.models import Attempt, Execution, History, LogEntry, StateInfo, TaskRun
from flowdeck.core.timefmt import format_instant, parse_instant

#: States in which an execution may still change (plus any state this client does not know).
ACTIVE_STATES: tuple[str, ...] = ("CREATED", "SUBMITTED", "QUEUED", "RUNNING", "PAUSED",
                                  "RESTARTED", "KILLING", "RETRYING", "BREAKPOINT",
                                  "RESUBMITTED")

_VERSION_RE = re.compile(r"^\s*v?(\d+)(?:\.(\d+))?(?:\.(\d+))?")


class NotAvailable(FlowdeckError):
    """The connected server does not offer this capability (e.g. approvals on Kestra)."""


class ProtocolError(BackendUnavailable):
    """The server answered something that is not what its API documents."""


def parse_version(text: str | None) -> tuple[int, int, int] | None:
    """`"1.0.3"` → (1, 0, 3); `"2.1.0-SNAPSHOT"` → (2, 1, 0); unreadable → None."""
    if not text:
        return None
    match = _VERSION_RE.match(str(text))
    if match is None:
        return None
    major, minor, patch = match.groups()
    return int(major), int(minor or 0), int(patch or 0)


@dataclass(frozen=True, slots=True)
class ServerInfo:
    """What `connect()` learned about a remote server."""

    kind: str  # "flowdeck" | "kestra"
    version: str  # what the header shows: flowdeck's own version, or Kestra's
    api_version: str  # the Kestra API version the server speaks
    prefix: str  # "/api/v1/main" (≥ 0.23) or "/api/v1"
    action_paths: str  # "2.x" (/executions/{id}/actions/<x>) or "1.x" (/executions/{id}/<x>)
    query_filters: bool  # `filters[field][OP]=` (≥ 0.22/1.x) or only the legacy parameters
    log_level_filter: str  # "filters" (2.x ignores minLevel) or "minLevel"

    @property
    def approvals(self) -> bool:
        return self.kind == "flowdeck"


def detect_server(configs: Mapping[str, Any], *, login_endpoint: bool) -> ServerInfo:
    """Decide kind and path style from `/api/v1/configs` (and whether `/configs/login` exists).

    `version` picks the action style (`/actions/` only from 2.0) and the tenant prefix (`main`
    from 0.23). An unreadable version counts as 2.x when the 2.x-only login endpoint answered,
    else as the newest 1.x.
    """
    raw_version = configs.get("version")
    api_version = str(raw_version) if raw_version is not None else ""
    parsed = parse_version(api_version)
    if parsed is None:
        parsed = (2, 0, 0) if login_endpoint else (1, 0, 0)
        api_version = api_version or ".".join(map(str, parsed))
    major, minor, _ = parsed
    flowdeck_version = configs.get("flowdeckVersion")
    kind = "flowdeck" if flowdeck_version is not None else "kestra"
    return ServerInfo(
        kind=kind,
        version=str(flowdeck_version) if flowdeck_version is not None else api_version,
        api_version=api_version,
        prefix="/api/v1/main" if (major, minor) >= (0, 23) else "/api/v1",
        action_paths="2.x" if major >= 2 else "1.x",
        query_filters=(major, minor) >= (0, 22),
        log_level_filter="filters" if major >= 2 else "minLevel",
    )


def segment(value: str) -> str:
    """One path segment, escaped (ids are opaque: never assume they are URL-safe)."""
    return quote(str(value), safe="")


def action_path(execution_id: str, action: str, style: str) -> str:
    """`/executions/{id}/actions/<action>` on 2.x, `/executions/{id}/<action>` before."""
    middle = "/actions" if style == "2.x" else ""
    return f"/executions/{segment(execution_id)}{middle}/{action}"


# -- errors ----------------------------------------------------------------------------------


def _body_json(body: bytes) -> Any:
    if not body or not body.strip():
        return None
    try:
        return json.loads(body)
    except (ValueError, UnicodeDecodeError):
        return None


def error_message(body: bytes) -> str | None:
    """The human part of an error body: problem+json `detail`, 1.x JsonError `message`, or
    flowdeck's other dialects' `error`; None when the body says nothing usable."""
    data = _body_json(body)
    if isinstance(data, dict):
        for key in ("detail", "message", "error"):
            value = data.get(key)
            if isinstance(value, str) and value.strip():
                return value.strip()
            if isinstance(value, dict) and isinstance(value.get("message"), str):
                return str(value["message"]).strip()
        title = data.get("title")
        if isinstance(title, str) and title.strip():
            return title.strip()
    elif isinstance(data, str) and data.strip():
        return data.strip()
    elif data is None and body and len(body) <= 300:
        text = body.decode("utf-8", "replace").strip()
        if text and not text.startswith("<"):
            return text
    return None


def _problems(data: Any) -> list[tuple[str, str]]:
    """Field-level problems: problem+json `errors[]` or 1.x `_embedded.errors[]`."""
    if not isinstance(data, dict):
        return []
    out: list[tuple[str, str]] = []
    for item in data.get("errors") or []:
        if isinstance(item, dict):
            text = item.get("detail") or item.get("message")
            if isinstance(text, str):
                path = item.get("path") or item.get("pointer") or ""
                out.append((str(path), text))
    embedded = data.get("_embedded")
    if not out and isinstance(embedded, dict):
        for item in embedded.get("errors") or []:
            if isinstance(item, dict) and isinstance(item.get("message"), str):
                out.append(("", item["message"]))
    return out


CONFLICT_DETAILS = ("approvalStatus", "decidedBy", "decidedAt")


def error_for(status: int, body: bytes, *, where: str = "") -> FlowdeckError:
    """The core error for an HTTP error answer (the same classes the engine raises)."""
    said = error_message(body)
    message = said or f"HTTP {status}" + (f" on {where}" if where else "")
    data = _body_json(body)
    if status == 404:
        return NotFoundError(said or (f"not found: {where}" if where else "not found"))
    if status == 409:
        details: dict[str, Any] = {}
        if isinstance(data, dict):
            details = {k: data[k] for k in CONFLICT_DETAILS if k in data}
        return ConflictError(message, details)
    if status == 422:
        problems = _problems(data)
        return ValidationError(problems) if problems else ValidationError(message)
    if status == 400:
        return BadRequestError(message)
    if status == 410:
        return ExpiredError(message)
    if status == 401:
        return PermissionDenied(f"authentication failed ({message}); check the username and "
                                "password or the token")
    if status == 403:
        return PermissionDenied(f"permission denied: {message}")
    if status == 429:
        return BackendUnavailable(f"the server is busy (too many requests): {message}")
    if status >= 500:
        return BackendUnavailable(f"the server failed (HTTP {status}): {message}")
    return FlowdeckError(f"unexpected answer HTTP {status}: {message}")


# -- reading Kestra JSON ---------------------------------------------------------------------


def _instant(value: Any, fallback: datetime | None = None) -> datetime:
    if isinstance(value, str) and value:
        try:
            return parse_instant(value)
        except ValueError:
            pass
    if isinstance(value, int | float) and not isinstance(value, bool):
        return datetime.fromtimestamp(value / 1000 if value > 1e11 else value, UTC)
    return fallback or datetime.now(UTC)


def parse_state(data: Any) -> StateInfo:
    """Kestra's State; an unknown `current` is kept exactly as sent."""
    if isinstance(data, str):  # a simplified dialect's bare state string
        return StateInfo.new(data, datetime.now(UTC))
    if not isinstance(data, dict):
        raise ProtocolError("an execution without a state object")
    current = str(data.get("current") or "")
    histories = []
    for h in data.get("histories") or []:
        if isinstance(h, dict) and h.get("state") is not None:
            histories.append(History(str(h["state"]), _instant(h.get("date"))))
    if not histories:
        start = _instant(data.get("startDate"))
        histories = [History(current or "CREATED", start)]
    return StateInfo(current or histories[-1].state, histories)


def _labels(value: Any) -> list[tuple[str, str]]:
    if isinstance(value, dict):
        return [(str(k), str(v)) for k, v in value.items()]
    out = []
    for item in value or []:
        if isinstance(item, dict) and "key" in item:
            out.append((str(item["key"]), "" if item.get("value") is None else str(item["value"])))
    return out


def parse_task_run(data: dict[str, Any], execution: dict[str, Any]) -> TaskRun:
    attempts = []
    for a in data.get("attempts") or []:
        if isinstance(a, dict) and a.get("state") is not None:
            attempts.append(Attempt(parse_state(a["state"])))
    iteration = data.get("iteration")
    value = data.get("value")
    return TaskRun(
        id=str(data["id"]),
        execution_id=str(data.get("executionId") or execution["id"]),
        namespace=str(data.get("namespace") or execution.get("namespace") or ""),
        flow_id=str(data.get("flowId") or execution.get("flowId") or ""),
        task_id=str(data.get("taskId") or ""),
        state=parse_state(data.get("state")),
        parent_task_run_id=(str(data["parentTaskRunId"]) if data.get("parentTaskRunId")
                            is not None else None),
        value=None if value is None else str(value),
        iteration=int(iteration) if isinstance(iteration, int) else None,
        attempts=attempts,
        outputs=data.get("outputs") if isinstance(data.get("outputs"), dict) else None,
    )


def parse_execution(data: Any) -> Execution:
    """Kestra Execution JSON (1.x full, 2.x ApiExecution or light search item) → Execution."""
    if not isinstance(data, dict):
        raise ProtocolError(f"expected an execution object, got {type(data).__name__}")
    try:
        raw_meta = data.get("metadata")
        meta: dict[str, Any] = raw_meta if isinstance(raw_meta, dict) else {}
        created = meta.get("originalCreatedDate")
        schedule = data.get("scheduleDate")
        revision = data.get("flowRevision")
        runs = [parse_task_run(t, data) for t in data.get("taskRunList") or []
                if isinstance(t, dict)]
        return Execution(
            id=str(data["id"]),
            namespace=str(data.get("namespace") or ""),
            flow_id=str(data.get("flowId") or ""),
            flow_revision=int(revision) if isinstance(revision, int) else 1,
            state=parse_state(data.get("state")),
            inputs=dict(data["inputs"]) if isinstance(data.get("inputs"), dict) else {},
            labels=_labels(data.get("labels")),
            task_runs=runs,
            outputs=data.get("outputs") if isinstance(data.get("outputs"), dict) else None,
            trigger=data.get("trigger") if isinstance(data.get("trigger"), dict) else None,
            original_id=str(data["originalId"]) if data.get("originalId") else None,
            parent_id=str(data["parentId"]) if data.get("parentId") else None,
            attempt_number=int(meta.get("attemptNumber") or 1),
            original_created=_instant(created) if created else None,
            schedule_date=_instant(schedule) if schedule else None,
            variables=data.get("variables") if isinstance(data.get("variables"), dict) else None,
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise ProtocolError(f"unreadable execution from the server: {exc!r}") from None


def parse_log(data: Any, fallback_seq: int = 0) -> LogEntry | None:
    """A LogEntry; None for a keepalive (`{}` or an entry without `executionId`)."""
    if not isinstance(data, dict) or not data.get("executionId"):
        return None
    seq = data.get("sequence")
    attempt = data.get("attemptNumber")
    timestamp = data.get("timestamp")
    if not isinstance(timestamp, str):
        timestamp = format_instant(_instant(timestamp))
    message = data.get("message")
    return LogEntry(
        execution_id=str(data["executionId"]),
        seq=seq if isinstance(seq, int) and not isinstance(seq, bool) else fallback_seq,
        namespace=str(data.get("namespace") or ""),
        flow_id=str(data.get("flowId") or ""),
        task_id=None if data.get("taskId") is None else str(data["taskId"]),
        task_run_id=None if data.get("taskRunId") is None else str(data["taskRunId"]),
        attempt_number=attempt if isinstance(attempt, int) else None,
        timestamp=timestamp,
        level=str(data.get("level") or "INFO").upper(),
        message="" if message is None else str(message),
    )


def has_sequence(data: Any) -> bool:
    return isinstance(data, dict) and isinstance(data.get("sequence"), int)


def log_identity(entry: LogEntry) -> int:
    """How a replayed line is recognised without sequence numbers: (time, text, task run)."""
    return hash((entry.timestamp, entry.message, entry.task_run_id))


def execution_signature(execution: Execution) -> tuple[Any, ...]:
    """What changes when an execution changes (its running duration does not count)."""
    return (execution.state.current, len(execution.state.histories),
            tuple((tr.id, tr.state.current, len(tr.state.histories), len(tr.attempts))
                  for tr in execution.task_runs),
            tuple(execution.labels))


def last_change(execution: Execution) -> datetime:
    latest = execution.state.histories[-1].date
    for tr in execution.task_runs:
        latest = max(latest, tr.state.histories[-1].date)
    return latest


# -- search parameters -----------------------------------------------------------------------


def search_params(*, namespace: str | None, flow_id: str | None, states: list[str] | None,
                  labels: Mapping[str, str], since: datetime | None, until: datetime | None,
                  q: str | None, page: int, size: int, sort: list[tuple[str, bool]],
                  query_filters: bool) -> list[tuple[str, str]]:
    """`/executions/search` parameters: `filters[...]` (1.x/2.x) or the legacy ones."""
    params: list[tuple[str, str]] = [("page", str(page)), ("size", str(size))]
    params.extend(("sort", f"{name}:{'desc' if desc else 'asc'}") for name, desc in sort)
    if query_filters:
        if namespace:
            params.append(("filters[namespace][PREFIX]", namespace))
        if flow_id:
            params.append(("filters[flowId][EQUALS]", flow_id))
        if states:
            params.append(("filters[state][IN]", ",".join(states)))
        for key, value in labels.items():
            params.append((f"filters[labels][EQUALS][{key}]", value))
        if since is not None:
            params.append(("filters[startDate][GREATER_THAN_OR_EQUAL_TO]", format_instant(since)))
        if until is not None:
            params.append(("filters[startDate][LESS_THAN_OR_EQUAL_TO]", format_instant(until)))
        if q:
            params.append(("filters[q][EQUALS]", q))
        return params
    if namespace:
        params.append(("namespace", namespace))
    if flow_id:
        params.append(("flowId", flow_id))
    params.extend(("state", s) for s in states or [])
    params.extend(("labels", f"{k}:{v}") for k, v in labels.items())
    if since is not None:
        params.append(("startDate", format_instant(since)))
    if until is not None:
        params.append(("endDate", format_instant(until)))
    if q:
        params.append(("q", q))
    return params
