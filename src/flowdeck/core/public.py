"""The public agent API's vocabulary: statuses, messages and the typed results it returns.

Customer-facing sites run agents (flows in one namespace) with an API key, poll their status,
read their results and approve or reject what they produced. The engine answers with these
dataclasses; each `to_dict()` is the exact JSON body the API documents, so an HTTP layer only
presents them. Times are ISO-8601 UTC with milliseconds (`2025-10-23T14:30:45.067Z`), as the
API's examples show them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from flowdeck.core.errors import PermissionDenied

#: The namespace agents live in unless `[public] namespace` says otherwise.
DEFAULT_NAMESPACE = "agents"
#: Rows of `csvData` an execution keeps; the rest are dropped before it is created.
CSV_MAX_ROWS = 100
#: Executions a key may start per calendar month (UTC) unless created with another limit.
DEFAULT_USAGE_LIMIT = 1000

#: The system label naming the API key (its id) that started an execution, for people and
#: searches. What proves it is the execution variable below, which only the public API sets
#: (a flow's own labels could name any key).
API_KEY_LABEL = "system.apiKey"
#: The execution variable holding the id of the key that started it.
API_KEY_VARIABLE = "apiKey"
#: The execution variable holding the name the key had (for people: the deck shows it).
API_KEY_NAME_VARIABLE = "apiKeyName"
#: The execution variable holding the execute request's description.
DESCRIPTION_VARIABLE = "description"
#: The system label set when `csvData` was truncated: "<received> rows received, <kept> kept".
CSV_TRUNCATED_LABEL = "system.csvTruncated"
#: `system.from` of executions started through the public API.
SOURCE = "public-api"

STATUSES = ("pending", "running", "completed", "failed", "cancelled", "pending_approval")
WEBHOOK_EVENTS = ("execution.started", "execution.completed", "execution.failed",
                  "execution.pending_approval")

# The API's own wording, for the errors it documents.
INVALID_KEY = "Invalid API key"
KEY_INACTIVE = "API key is inactive"
KEY_EXPIRED = "API key has expired"
USAGE_EXCEEDED = "API key usage limit exceeded"
WORKFLOW_INACTIVE = "Workflow is inactive"
EXECUTION_NOT_FOUND = "Execution not found"
WORKFLOW_NOT_FOUND = "Workflow not found"
STARTED = "Execution started successfully"
APPROVED = "Execution approved and will continue"
REJECTED = "Execution rejected and stopped"


class InvalidApiKey(PermissionDenied):
    """No key, or a key that matches none (HTTP 401, "Invalid API key"). Every other
    PermissionDenied of the public API is a known key that may not do this (HTTP 403)."""

    def __init__(self, message: str = INVALID_KEY) -> None:
        super().__init__(message)


_STATUS_OF_STATE = {
    "CREATED": "pending", "QUEUED": "pending", "SUBMITTED": "pending",
    "RUNNING": "running", "RETRYING": "running", "RESTARTED": "running",
    "RESUBMITTED": "running", "KILLING": "running",
    "PAUSED": "pending_approval",
    "SUCCESS": "completed", "WARNING": "completed", "SKIPPED": "completed",
    "FAILED": "failed",
    "KILLED": "cancelled", "CANCELLED": "cancelled", "RETRIED": "cancelled",
}


def public_status(state: str) -> str:
    """An execution state in the API's vocabulary (an unknown state is still running)."""
    return _STATUS_OF_STATE.get(state, "running")


def iso_ms(value: datetime | None) -> str | None:
    """`2025-10-23T14:30:45.067Z` (UTC, milliseconds), or None."""
    if value is None:
        return None
    u = value.astimezone(UTC) if value.tzinfo is not None else value.replace(tzinfo=UTC)
    return u.strftime("%Y-%m-%dT%H:%M:%S.") + f"{u.microsecond // 1000:03d}Z"


@dataclass(frozen=True, slots=True)
class ExecuteResult:
    """`POST /agents/:workflowId/execute` (202)."""

    execution_id: str
    started_at: datetime
    status: str = "pending"
    message: str = STARTED
    #: Rows of `csvData` received and kept (None when there was no list of rows).
    csv_rows_received: int | None = None
    csv_rows_kept: int | None = None

    @property
    def truncated(self) -> bool:
        return (self.csv_rows_received or 0) > (self.csv_rows_kept or 0)

    def to_dict(self) -> dict[str, Any]:
        return {"executionId": self.execution_id, "status": self.status,
                "startedAt": iso_ms(self.started_at), "message": self.message}


@dataclass(frozen=True, slots=True)
class ExecutionStatus:
    """`GET /executions/:id/status`."""

    id: str
    status: str
    started_at: datetime
    completed_at: datetime | None = None
    error: str | None = None
    approval_status: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"id": self.id, "status": self.status, "startedAt": iso_ms(self.started_at),
                "completedAt": iso_ms(self.completed_at), "error": self.error,
                "approvalStatus": self.approval_status}


@dataclass(frozen=True, slots=True)
class ExecutionResults:
    """`GET /executions/:id/results`: the agent's output is its flow outputs, typed."""

    id: str
    status: str
    output: dict[str, Any] | None
    started_at: datetime
    completed_at: datetime | None = None
    error: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"id": self.id, "status": self.status, "output": self.output,
                "error": self.error, "startedAt": iso_ms(self.started_at),
                "completedAt": iso_ms(self.completed_at)}


@dataclass(frozen=True, slots=True)
class ApprovalData:
    """What a reviewer sees: the rows, how to show them and what the decision allows."""

    rows: list[dict[str, Any]]
    title: str
    description: str | None
    allow_bulk_approval: bool
    require_comment: bool
    display_fields: list[str]
    #: Further metadata the flow's approval task gave (shown after the documented keys).
    extra_metadata: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        metadata: dict[str, Any] = {"totalRows": len(self.rows), "title": self.title,
                                    "description": self.description,
                                    "allowBulkApproval": self.allow_bulk_approval,
                                    "requireComment": self.require_comment}
        for key, value in self.extra_metadata.items():
            metadata.setdefault(key, value)
        return {"rows": self.rows, "metadata": metadata, "displayFields": self.display_fields}


@dataclass(frozen=True, slots=True)
class PendingApproval:
    """`GET /executions/:id/pending-approval`."""

    id: str
    workflow_id: str
    approval_id: str
    approval_data: ApprovalData
    started_at: datetime
    status: str = "pending_approval"

    def to_dict(self) -> dict[str, Any]:
        return {"id": self.id, "workflowId": self.workflow_id, "status": self.status,
                "approvalData": self.approval_data.to_dict(),
                "startedAt": iso_ms(self.started_at)}


@dataclass(frozen=True, slots=True)
class DecisionResult:
    """`POST /executions/:id/approve` and `.../reject`."""

    execution_id: str
    status: str  # approved | rejected
    approval_id: str
    decided_by: str
    decided_at: datetime

    @property
    def message(self) -> str:
        return APPROVED if self.status == "approved" else REJECTED

    def to_dict(self) -> dict[str, Any]:
        return {"executionId": self.execution_id, "status": self.status,
                "message": self.message}


@dataclass(frozen=True, slots=True)
class ApiKey:
    """A public API key as lists and `show` present it: never the secret or its hash."""

    id: str
    name: str
    prefix: str
    allowed_workflows: list[str]
    usage_limit: int
    #: Executions started in `usage_month` (a past month's count reads as 0 this month).
    usage_count: int
    usage_month: str | None
    created_at: datetime
    expires_at: datetime | None = None
    revoked_at: datetime | None = None
    last_used_at: datetime | None = None
    webhook_url: str | None = None
    webhook_events: list[str] = field(default_factory=list)
    has_webhook_secret: bool = False

    def status(self, now: datetime) -> str:
        """active | inactive (revoked) | expired."""
        if self.revoked_at is not None:
            return "inactive"
        if self.expires_at is not None and self.expires_at <= now:
            return "expired"
        return "active"

    def usage_this_month(self, now: datetime) -> int:
        return self.usage_count if self.usage_month == month_of(now) else 0

    def allows(self, workflow_id: str) -> bool:
        return not self.allowed_workflows or workflow_id in self.allowed_workflows

    def to_dict(self, now: datetime) -> dict[str, Any]:
        return {"id": self.id, "name": self.name, "prefix": self.prefix,
                "status": self.status(now), "active": self.status(now) == "active",
                "allowedWorkflows": list(self.allowed_workflows),
                "usageLimit": self.usage_limit, "usageCount": self.usage_this_month(now),
                "usageMonth": month_of(now),
                "webhookUrl": self.webhook_url, "webhookEvents": list(self.webhook_events),
                "hasWebhookSecret": self.has_webhook_secret,
                "createdAt": iso_ms(self.created_at), "expiresAt": iso_ms(self.expires_at),
                "revokedAt": iso_ms(self.revoked_at), "lastUsedAt": iso_ms(self.last_used_at)}


@dataclass(frozen=True, slots=True)
class NewApiKey:
    """A key just created and its secret: the only time the secret exists outside a hash."""

    key: ApiKey
    secret: str

    def to_dict(self, now: datetime) -> dict[str, Any]:
        return {**self.key.to_dict(now), "key": self.secret}


@dataclass(frozen=True, slots=True)
class AgentMessage:
    """A message an agent delivered (the local outbox, or a record of an HTTP delivery)."""

    id: str
    execution_id: str
    namespace: str
    flow_id: str
    customer_id: str | None
    recipient: str | None
    channel: str
    content: str
    transport: str  # local | http
    status: str  # sending | sent | failed
    external_id: str | None
    error: str | None
    created: datetime
    updated: datetime

    @property
    def message_id(self) -> str:
        """What results call `messageId`: the gateway's id when it gave one, else ours."""
        return self.external_id or self.id

    def to_dict(self) -> dict[str, Any]:
        return {"id": self.id, "messageId": self.message_id, "executionId": self.execution_id,
                "namespace": self.namespace, "workflowId": self.flow_id,
                "customerId": self.customer_id, "recipient": self.recipient,
                "channel": self.channel, "content": self.content,
                "transport": self.transport, "status": self.status,
                "error": self.error, "createdAt": iso_ms(self.created),
                "updatedAt": iso_ms(self.updated)}


def started_by(variables: dict[str, Any] | None, labels: dict[str, str]) -> str | None:
    """The id of the key that started an execution: its variable, when its label agrees."""
    key_id = (variables or {}).get(API_KEY_VARIABLE)
    if isinstance(key_id, str) and key_id and labels.get(API_KEY_LABEL) == key_id:
        return key_id
    return None


def month_of(now: datetime) -> str:
    """The calendar month (UTC) usage is counted in: `2025-10`."""
    u = now.astimezone(UTC) if now.tzinfo is not None else now
    return f"{u.year:04d}-{u.month:02d}"
