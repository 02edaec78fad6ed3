"""The canonical run objects, serialised exactly in Kestra's JSON shape.

These are plain slotted dataclasses rather than pydantic models: the executor mutates them on
its hot path and writes them many thousand times a second, and the JSON shape (null fields
omitted, ISO instants with `Z`, ISO-8601 durations computed at serialisation time) is easier
to honour exactly with explicit `to_dict`/`from_dict` than with a generic serialiser.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from flowdeck.core.states import TERMINAL_STATES
from flowdeck.core.timefmt import format_duration, format_instant, parse_instant

TENANT = "main"


def _dumps(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


@dataclass(slots=True)
class History:
    state: str
    date: datetime


@dataclass(slots=True)
class StateInfo:
    """A state with its full history; `current` is always the last history entry."""

    current: str
    histories: list[History]

    @classmethod
    def new(cls, state: str, at: datetime) -> StateInfo:
        return cls(state, [History(state, at)])

    def to(self, state: str, at: datetime) -> None:
        self.current = state
        self.histories.append(History(state, at))

    @property
    def start_date(self) -> datetime:
        return self.histories[0].date

    @property
    def end_date(self) -> datetime | None:
        if self.current in TERMINAL_STATES or self.current == "PAUSED":
            return self.histories[-1].date
        return None

    def duration_seconds(self, now: datetime) -> float:
        end = self.histories[-1].date if len(self.histories) > 1 else now
        return (end - self.histories[0].date).total_seconds()

    def to_dict(self, now: datetime) -> dict[str, Any]:
        first = self.histories[0].date
        end = self.histories[-1].date if len(self.histories) > 1 else now
        out: dict[str, Any] = {
            "current": self.current,
            "histories": [{"state": h.state, "date": format_instant(h.date)}
                          for h in self.histories],
            "duration": format_duration(end - first),
            "startDate": format_instant(first),
        }
        end_date = self.end_date
        if end_date is not None:
            out["endDate"] = format_instant(end_date)
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> StateInfo:
        histories = [History(h["state"], parse_instant(h["date"])) for h in data["histories"]]
        return cls(data["current"], histories)


@dataclass(slots=True)
class Attempt:
    state: StateInfo

    def to_dict(self, now: datetime) -> dict[str, Any]:
        return {"state": self.state.to_dict(now)}


@dataclass(slots=True)
class TaskRun:
    id: str
    execution_id: str
    namespace: str
    flow_id: str
    task_id: str
    state: StateInfo
    parent_task_run_id: str | None = None
    value: str | None = None
    iteration: int | None = None
    attempts: list[Attempt] = field(default_factory=list)
    outputs: dict[str, Any] | None = None
    #: (signature, JSON) of a finished task run, which no longer changes; saves re-serialising
    #: every finished task run on every commit of a long execution.
    _frozen: tuple[tuple[Any, ...], dict[str, Any]] | None = field(
        default=None, repr=False, compare=False)
    _frozen_json: tuple[tuple[Any, ...], str] | None = field(
        default=None, repr=False, compare=False)

    def _signature(self) -> tuple[Any, ...]:
        return (len(self.state.histories), self.state.current, id(self.outputs),
                self.parent_task_run_id, self.value,
                tuple(len(a.state.histories) for a in self.attempts))

    def to_dict(self, now: datetime) -> dict[str, Any]:
        """Kestra JSON; the result of a finished task run is shared, so treat it as read-only."""
        if self.state.current not in TERMINAL_STATES:
            return self._build(now)
        signature = self._signature()
        if self._frozen is None or self._frozen[0] != signature:
            self._frozen = (signature, self._build(now))
        return self._frozen[1]

    def to_json(self, now: datetime) -> str:
        """Compact JSON text of `to_dict`, cached for a finished task run."""
        if self.state.current not in TERMINAL_STATES:
            return _dumps(self._build(now))
        signature = self._signature()
        if self._frozen_json is None or self._frozen_json[0] != signature:
            self._frozen_json = (signature, _dumps(self.to_dict(now)))
        return self._frozen_json[1]

    def _build(self, now: datetime) -> dict[str, Any]:
        out: dict[str, Any] = {
            "id": self.id,
            "executionId": self.execution_id,
            "namespace": self.namespace,
            "flowId": self.flow_id,
            "taskId": self.task_id,
            "tenantId": TENANT,
        }
        if self.parent_task_run_id is not None:
            out["parentTaskRunId"] = self.parent_task_run_id
        if self.value is not None:
            out["value"] = self.value
        if self.iteration is not None:
            out["iteration"] = self.iteration
        if self.attempts:
            out["attempts"] = [a.to_dict(now) for a in self.attempts]
        out["outputs"] = self.outputs
        out["state"] = self.state.to_dict(now)
        return out

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> TaskRun:
        return cls(
            id=d["id"],
            execution_id=d["executionId"],
            namespace=d["namespace"],
            flow_id=d["flowId"],
            task_id=d["taskId"],
            state=StateInfo.from_dict(d["state"]),
            parent_task_run_id=d.get("parentTaskRunId"),
            value=d.get("value"),
            iteration=d.get("iteration"),
            attempts=[Attempt(StateInfo.from_dict(a["state"])) for a in d.get("attempts") or []],
            outputs=d.get("outputs"),
        )


@dataclass(slots=True)
class Execution:
    id: str
    namespace: str
    flow_id: str
    flow_revision: int
    state: StateInfo
    inputs: dict[str, Any] = field(default_factory=dict)
    labels: list[tuple[str, str]] = field(default_factory=list)
    task_runs: list[TaskRun] = field(default_factory=list)
    outputs: dict[str, Any] | None = None
    trigger: dict[str, Any] | None = None
    original_id: str | None = None
    parent_id: str | None = None
    attempt_number: int = 1
    original_created: datetime | None = None
    schedule_date: datetime | None = None
    variables: dict[str, Any] | None = None

    def label(self, key: str) -> str | None:
        for k, v in self.labels:
            if k == key:
                return v
        return None

    def set_label(self, key: str, value: str) -> None:
        self.labels = [(k, v) for k, v in self.labels if k != key]
        self.labels.append((key, value))

    def find_task_run(self, task_run_id: str) -> TaskRun | None:
        for tr in self.task_runs:
            if tr.id == task_run_id:
                return tr
        return None

    def to_json(self, now: datetime) -> tuple[str, dict[str, Any]]:
        """(JSON text, dict) of `to_dict`; finished task runs are spliced in from their cache."""
        doc = self.to_dict(now)
        if "taskRunList" not in doc:
            return _dumps(doc), doc
        head = _dumps({k: v for k, v in doc.items() if k != "taskRunList"})
        runs = ",".join(tr.to_json(now) for tr in self.task_runs)
        return f'{head[:-1]},"taskRunList":[{runs}]}}', doc

    def to_dict(self, now: datetime, *, embed_outputs: bool = True) -> dict[str, Any]:
        out: dict[str, Any] = {
            "id": self.id,
            "namespace": self.namespace,
            "flowId": self.flow_id,
            "flowRevision": self.flow_revision,
            "tenantId": TENANT,
        }
        if self.inputs:
            out["inputs"] = self.inputs
        out["labels"] = [{"key": k, "value": v} for k, v in self.labels]
        out["state"] = self.state.to_dict(now)
        if self.task_runs:
            runs = [tr.to_dict(now) for tr in self.task_runs]
            if not embed_outputs:
                runs = [{k: v for k, v in r.items() if k != "outputs"} for r in runs]
            out["taskRunList"] = runs
        out["originalId"] = self.original_id or self.id
        out["deleted"] = False
        out["metadata"] = {
            "attemptNumber": self.attempt_number,
            "originalCreatedDate": format_instant(self.original_created or self.state.start_date),
        }
        if self.trigger is not None:
            out["trigger"] = self.trigger
        if embed_outputs and self.outputs:
            out["outputs"] = self.outputs
        if self.variables:
            out["variables"] = self.variables
        if self.schedule_date is not None:
            out["scheduleDate"] = format_instant(self.schedule_date)
        if self.parent_id is not None:
            out["parentId"] = self.parent_id
        out["kind"] = "NORMAL"
        return out

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Execution:
        meta = d.get("metadata") or {}
        created = meta.get("originalCreatedDate")
        sched = d.get("scheduleDate")
        return cls(
            id=d["id"],
            namespace=d["namespace"],
            flow_id=d["flowId"],
            flow_revision=d["flowRevision"],
            state=StateInfo.from_dict(d["state"]),
            inputs=d.get("inputs") or {},
            labels=[(lbl["key"], lbl["value"]) for lbl in d.get("labels") or []],
            task_runs=[TaskRun.from_dict(t) for t in d.get("taskRunList") or []],
            outputs=d.get("outputs"),
            trigger=d.get("trigger"),
            original_id=d.get("originalId"),
            parent_id=d.get("parentId"),
            attempt_number=int(meta.get("attemptNumber", 1)),
            original_created=parse_instant(created) if created else None,
            schedule_date=parse_instant(sched) if sched else None,
            variables=d.get("variables"),
        )


LOG_LEVELS: tuple[str, ...] = ("TRACE", "DEBUG", "INFO", "WARN", "ERROR")
LEVEL_RANK: dict[str, int] = {name: i for i, name in enumerate(LOG_LEVELS)}


@dataclass(slots=True)
class LogEntry:
    """One log line; `seq` increases by one per execution so streams can resume without gaps."""

    execution_id: str
    seq: int
    namespace: str
    flow_id: str
    task_id: str | None
    task_run_id: str | None
    attempt_number: int | None
    timestamp: str
    level: str
    message: str

    def to_dict(self) -> dict[str, Any]:
        return {
            "namespace": self.namespace,
            "flowId": self.flow_id,
            "taskId": self.task_id,
            "executionId": self.execution_id,
            "taskRunId": self.task_run_id,
            "attemptNumber": self.attempt_number,
            "triggerId": None,
            "timestamp": self.timestamp,
            "level": self.level,
            "thread": "flowdeck",
            "message": self.message,
            "tenantId": TENANT,
            "deleted": False,
            "sequence": self.seq,
        }

    def pretty(self) -> str:
        """Kestra's download format: `<timestamp> <LEVEL> <message>`."""
        return f"{self.timestamp} {self.level} {self.message}"


@dataclass(slots=True)
class Approval:
    """A human gate created by an approval task; the first decision wins."""

    id: str
    execution_id: str
    task_run_id: str
    namespace: str
    flow_id: str
    task_id: str
    title: str
    description: str | None
    rows: list[dict[str, Any]]
    display_fields: list[str]
    metadata: dict[str, Any]
    allow_bulk_approval: bool
    require_comment: bool
    status: str
    created_at: datetime
    expires_at: datetime | None = None
    decided_by: str | None = None
    comment: str | None = None
    decided_at: datetime | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "executionId": self.execution_id,
            "taskRunId": self.task_run_id,
            "namespace": self.namespace,
            "flowId": self.flow_id,
            "taskId": self.task_id,
            "title": self.title,
            "description": self.description,
            "rows": self.rows,
            "displayFields": self.display_fields,
            "metadata": self.metadata,
            "allowBulkApproval": self.allow_bulk_approval,
            "requireComment": self.require_comment,
            "status": self.status,
            "createdAt": format_instant(self.created_at),
            "expiresAt": format_instant(self.expires_at) if self.expires_at else None,
            "decidedBy": self.decided_by,
            "comment": self.comment,
            "decidedAt": format_instant(self.decided_at) if self.decided_at else None,
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Approval:
        """The inverse of `to_dict` (what the approvals API and the event bus carry)."""
        expires, decided = d.get("expiresAt"), d.get("decidedAt")
        return cls(
            id=str(d["id"]),
            execution_id=str(d["executionId"]),
            task_run_id=str(d["taskRunId"]),
            namespace=d["namespace"],
            flow_id=d["flowId"],
            task_id=d["taskId"],
            title=d.get("title") or "",
            description=d.get("description"),
            rows=list(d.get("rows") or []),
            display_fields=list(d.get("displayFields") or []),
            metadata=dict(d.get("metadata") or {}),
            allow_bulk_approval=bool(d.get("allowBulkApproval", False)),
            require_comment=bool(d.get("requireComment", False)),
            status=d["status"],
            created_at=parse_instant(d["createdAt"]),
            expires_at=parse_instant(expires) if expires else None,
            decided_by=d.get("decidedBy"),
            comment=d.get("comment"),
            decided_at=parse_instant(decided) if decided else None,
        )
