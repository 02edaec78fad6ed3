"""`engine.public`: everything the public agent API does, below HTTP.

An agent is a flow in the configured namespace (default `agents`); its id is the API's
`workflowId`. A caller is an API key (`authenticate`); every other method takes that key and
answers with the typed results of `flowdeck.core.public`, whose `to_dict()` is the API's body,
or raises a core error carrying the API's wording:

- InvalidApiKey (401 "Invalid API key"); PermissionDenied (403: "API key is inactive",
  "API key has expired", "API key usage limit exceeded", "Workflow is inactive", or a key
  not allowed to run that workflow);
- NotFoundError ("Execution not found": unknown, or started by another key; "Workflow not
  found");
- ConflictError (nothing waits for approval; someone decided first: who and when);
- ValidationError (a field that cannot be accepted, named).

Executions are ordinary executions (the deck and CLI show them); the approval they wait for is
the engine's approval, so the API, the deck and the CLI decide the same one and the first
decision wins.
"""

from __future__ import annotations

import json
import math
import re
from datetime import datetime, timedelta
from importlib import resources
from typing import TYPE_CHECKING, Any

from flowdeck.core.errors import (
    ConflictError,
    InvalidInputsError,
    NotFoundError,
    PermissionDenied,
    ValidationError,
)
from flowdeck.core.ids import is_uuid
from flowdeck.core.models import Approval, Execution
from flowdeck.core.public import (
    API_KEY_LABEL,
    API_KEY_NAME_VARIABLE,
    API_KEY_VARIABLE,
    CSV_MAX_ROWS,
    CSV_TRUNCATED_LABEL,
    DEFAULT_USAGE_LIMIT,
    DESCRIPTION_VARIABLE,
    EXECUTION_NOT_FOUND,
    SOURCE,
    WORKFLOW_INACTIVE,
    WORKFLOW_NOT_FOUND,
    AgentMessage,
    ApiKey,
    ApprovalData,
    DecisionResult,
    ExecuteResult,
    ExecutionResults,
    ExecutionStatus,
    NewApiKey,
    PendingApproval,
    public_status,
    started_by,
)
from flowdeck.core.states import is_terminal
from flowdeck.core.timefmt import format_instant
from flowdeck.engine.flows import FlowDefinition
from flowdeck.engine.public.keys import WORKFLOW_ID, ApiKeyStore
from flowdeck.engine.public.messages import MessageOutbox
from flowdeck.engine.public.outputs import typed_outputs
from flowdeck.engine.public.settings import PublicSettings
from flowdeck.engine.public.webhooks import AgentEvents, KeyWebhooks, failure_of

if TYPE_CHECKING:
    import aiosqlite

    from flowdeck.engine.engine import Engine

#: The input field whose rows are truncated to CSV_MAX_ROWS.
CSV_FIELD = "csvData"
MAX_DESCRIPTION = 2000
MAX_COMMENT = 5000
#: How deep a submitted input may nest, and how many values it may hold in all.
MAX_DEPTH = 32
MAX_VALUES = 200_000
#: Integers beyond this many bits are refused (far past any id or amount; JSON text for them
#: would be thousands of digits).
MAX_INT_BITS = 256
_NAMESPACE_LINE = re.compile(r"^namespace:.*$", re.MULTILINE)


def check_json(value: Any, path: str) -> None:
    """Refuse what cannot be stored as UTF-8 JSON, or is absurdly deep or large."""
    stack: list[tuple[Any, str, int]] = [(value, path, 0)]
    seen = 0
    while stack:
        item, where, depth = stack.pop()
        seen += 1
        if seen > MAX_VALUES:
            raise ValidationError([(path, f"holds more than {MAX_VALUES:,} values")])
        if depth > MAX_DEPTH:
            raise ValidationError([(where, f"nests deeper than {MAX_DEPTH} levels")])
        if isinstance(item, str):
            _utf8(item, where)
        elif isinstance(item, float) and not math.isfinite(item):
            raise ValidationError([(where, "must be a finite number")])
        elif isinstance(item, int) and item.bit_length() > MAX_INT_BITS:
            raise ValidationError([(where, "is too large a number")])
        elif isinstance(item, dict):
            for key, child in item.items():
                if not isinstance(key, str):
                    raise ValidationError([(where, "keys must be text")])
                _utf8(key, where)
                stack.append((child, f"{where}.{key}", depth + 1))
        elif isinstance(item, list | tuple):
            stack.extend((child, f"{where}[{i}]", depth + 1) for i, child in enumerate(item))
        elif item is not None and not isinstance(item, bool | int):
            raise ValidationError([(where, f"a {type(item).__name__} is not a JSON value")])


def _utf8(text: str, where: str) -> None:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        raise ValidationError([(where, "is not valid text (lone surrogate)")]) from None


def _as_request_field(path: str) -> str:
    """A flow input's path (`inputs.csvData`) as the request names it (`input.csvData`)."""
    if path == "inputs" or path.startswith(("inputs.", "inputs[")):
        return "input" + path[len("inputs"):]
    return path


def truncate_rows(inputs: dict[str, Any]) -> tuple[dict[str, Any], int | None, int | None]:
    """`csvData` cut to CSV_MAX_ROWS rows; (inputs, rows received, rows kept). A JSON text
    holding a list counts as that list."""
    rows = inputs.get(CSV_FIELD)
    if isinstance(rows, str):
        try:
            parsed = json.loads(rows)
        except (ValueError, RecursionError):
            return inputs, None, None
        if not isinstance(parsed, list):
            return inputs, None, None
        check_json(parsed, f"input.{CSV_FIELD}")
        rows = parsed
    if not isinstance(rows, list):
        return inputs, None, None
    kept = rows[:CSV_MAX_ROWS]
    return {**inputs, CSV_FIELD: kept}, len(rows), len(kept)


def bundled_agent_sources(namespace: str) -> list[str]:
    """The YAML of the bundled agents (`flowdeck/examples/agents/*.yml`), in `namespace`."""
    folder = resources.files("flowdeck.examples").joinpath("agents")
    sources = [item.read_text(encoding="utf-8")
               for item in sorted(folder.iterdir(), key=lambda i: i.name)
               if item.name.endswith(".yml")]
    return [_NAMESPACE_LINE.sub(f"namespace: {namespace}", source, count=1)
            for source in sources]


class PublicService:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.settings = PublicSettings.from_extra(engine.settings.extra.get("public"))
        self.keys = ApiKeyStore(engine.store, engine.clock, engine.new_id)
        self.messages = MessageOutbox(engine.store, engine.clock, self.settings.delivery,
                                      engine.environ, engine.new_id)
        engine.events.sources.append(AgentEvents(self._flow_for_event))
        engine.events.resolvers.append(KeyWebhooks())

    @property
    def namespace(self) -> str:
        return self.settings.namespace

    # -- bundled agents -----------------------------------------------------------------------

    async def install_bundled_agents(self) -> list[tuple[FlowDefinition, str]]:
        """Apply the bundled agents in the agents' namespace (idempotent: an unchanged one
        stays at its revision); each flow with 'created', 'updated' or 'unchanged'."""
        return [await self.engine.apply_flow(source)
                for source in bundled_agent_sources(self.namespace)]

    # -- keys ---------------------------------------------------------------------------------

    async def authenticate(self, secret: str | None) -> ApiKey:
        """The key a Bearer secret names (InvalidApiKey if none). It may still be inactive or
        expired: each action below says so (403)."""
        return await self.keys.authenticate(secret)

    async def create_key(self, name: str, *, workflows: list[str] | tuple[str, ...] = (),
                         usage_limit: int = DEFAULT_USAGE_LIMIT,
                         expires_in: timedelta | None = None,
                         webhook_url: str | None = None,
                         webhook_events: list[str] | tuple[str, ...] | None = None,
                         webhook_secret: str | None = None) -> NewApiKey:
        return await self.keys.create(name, workflows=workflows, usage_limit=usage_limit,
                                      expires_in=expires_in, webhook_url=webhook_url,
                                      webhook_events=webhook_events,
                                      webhook_secret=webhook_secret)

    async def list_keys(self) -> list[ApiKey]:
        return await self.keys.list_all()

    async def get_key(self, key_id: str) -> ApiKey:
        return await self.keys.get(key_id)

    async def revoke_key(self, key_id: str) -> ApiKey:
        return await self.keys.revoke(key_id)

    # -- executing ----------------------------------------------------------------------------

    async def execute(self, key: ApiKey, workflow_id: str, input: Any = None,
                      description: Any = None) -> ExecuteResult:
        """Start an agent for `key`: checked, counted against the key's month and stored in
        one transaction; returns at once (the execution runs on its own)."""
        self.keys.check(key)
        if not isinstance(workflow_id, str) or WORKFLOW_ID.fullmatch(workflow_id) is None:
            raise NotFoundError(WORKFLOW_NOT_FOUND)
        if not key.allows(workflow_id):
            raise PermissionDenied(f"API key may not execute workflow '{workflow_id}'")
        try:
            flow = self.engine.get_flow(self.namespace, workflow_id)
        except NotFoundError:
            raise NotFoundError(WORKFLOW_NOT_FOUND) from None
        if flow.disabled:
            raise PermissionDenied(WORKFLOW_INACTIVE)
        if input is None:
            input = {}
        if not isinstance(input, dict):
            raise ValidationError([("input", "must be an object")])
        check_json(input, "input")
        if description is not None:
            if not isinstance(description, str):
                raise ValidationError([("description", "must be text")])
            if len(description) > MAX_DESCRIPTION:
                raise ValidationError([("description", f"at most {MAX_DESCRIPTION} characters")])
            _utf8(description, "description")
        inputs, received, kept = truncate_rows(input)

        async def admit(conn: aiosqlite.Connection, execution: Execution) -> None:
            await self.keys.charge(conn, key.id, self.engine.clock.now())
            execution.set_label(API_KEY_LABEL, key.id)
            variables: dict[str, Any] = {API_KEY_VARIABLE: key.id,
                                         API_KEY_NAME_VARIABLE: key.name}
            if received is not None and kept is not None and received > kept:
                execution.set_label(CSV_TRUNCATED_LABEL,
                                    f"{received} rows received, {kept} kept")
            if description:
                variables[DESCRIPTION_VARIABLE] = description
            execution.variables = variables

        try:
            execution = await self.engine.create_execution(
                self.namespace, workflow_id, inputs=inputs, source=SOURCE, admit=admit)
        except ConflictError:  # disabled between the check and the insert
            raise PermissionDenied(WORKFLOW_INACTIVE) from None
        except InvalidInputsError as exc:  # named as the caller sent them: `input.<field>`
            raise InvalidInputsError([(_as_request_field(path), problem)
                                      for path, problem in exc.problems]) from None
        return ExecuteResult(execution.id, execution.state.start_date,
                             csv_rows_received=received, csv_rows_kept=kept)

    # -- reading ------------------------------------------------------------------------------

    async def execution_of(self, key: ApiKey, execution_id: str) -> Execution:
        """The execution, if `key` started it; "Execution not found" otherwise."""
        self.keys.check(key)
        if not isinstance(execution_id, str) or not is_uuid(execution_id):
            raise NotFoundError(EXECUTION_NOT_FOUND)
        try:
            execution = await self.engine.get_execution(execution_id.lower())
        except NotFoundError:
            raise NotFoundError(EXECUTION_NOT_FOUND) from None
        if started_by(execution.variables, dict(execution.labels)) != key.id:
            raise NotFoundError(EXECUTION_NOT_FOUND)
        return execution

    async def status(self, key: ApiKey, execution_id: str) -> ExecutionStatus:
        execution = await self.execution_of(key, execution_id)
        status, approvals = await self._status_of(execution)
        return ExecutionStatus(
            id=execution.id, status=status, started_at=execution.state.start_date,
            completed_at=_completed_at(execution),
            error=await self._error_of(execution) if status == "failed" else None,
            approval_status=_decided(approvals))

    async def results(self, key: ApiKey, execution_id: str) -> ExecutionResults:
        execution = await self.execution_of(key, execution_id)
        status, _ = await self._status_of(execution)
        flow = await self._flow_of(execution)
        return ExecutionResults(
            id=execution.id, status=status, output=typed_outputs(flow, execution.outputs),
            started_at=execution.state.start_date, completed_at=_completed_at(execution),
            error=await self._error_of(execution) if status == "failed" else None)

    async def pending_approval(self, key: ApiKey, execution_id: str) -> PendingApproval:
        execution = await self.execution_of(key, execution_id)
        approval = await self._waiting(execution)
        return PendingApproval(
            id=execution.id, workflow_id=execution.flow_id, approval_id=approval.id,
            started_at=execution.state.start_date,
            approval_data=ApprovalData(
                rows=approval.rows, title=approval.title, description=approval.description,
                allow_bulk_approval=approval.allow_bulk_approval,
                require_comment=approval.require_comment,
                display_fields=approval.display_fields,
                extra_metadata=dict(approval.metadata or {})))

    # -- deciding -----------------------------------------------------------------------------

    async def approve(self, key: ApiKey, execution_id: str, *, comment: Any = None,
                      by: str) -> DecisionResult:
        """Approve what the execution waits for; it goes on."""
        return await self._decide(key, execution_id, True, comment, by)

    async def reject(self, key: ApiKey, execution_id: str, *, comment: Any = None,
                     by: str) -> DecisionResult:
        """Reject what the execution waits for; it ends CANCELLED."""
        return await self._decide(key, execution_id, False, comment, by)

    async def _decide(self, key: ApiKey, execution_id: str, approve: bool, comment: Any,
                      by: str) -> DecisionResult:
        if comment is not None:
            if not isinstance(comment, str):
                raise ValidationError([("comment", "must be text")])
            if len(comment) > MAX_COMMENT:
                raise ValidationError([("comment", f"at most {MAX_COMMENT} characters")])
            _utf8(comment, "comment")
        execution = await self.execution_of(key, execution_id)
        approval = await self._waiting(execution)
        decided = await self.engine.approvals.decide(approval.id, approve=approve, by=by,
                                                     comment=comment)
        assert decided.decided_at is not None and decided.decided_by is not None
        return DecisionResult(execution_id=execution.id, status=decided.status,
                              approval_id=decided.id, decided_by=decided.decided_by,
                              decided_at=decided.decided_at)

    # -- messages -----------------------------------------------------------------------------

    async def list_messages(self, *, execution_id: str | None = None, limit: int = 100,
                            offset: int = 0) -> tuple[list[AgentMessage], int]:
        """What agents delivered, newest first (the local outbox the deck and CLI show)."""
        return await self.messages.list_all(execution_id=execution_id, limit=limit, offset=offset)

    # -- helpers ------------------------------------------------------------------------------

    async def _status_of(self, execution: Execution) -> tuple[str, list[Approval]]:
        approvals = await self.engine.approvals.list(None, execution_id=execution.id)
        state = execution.state.current
        status = public_status(state)
        if not is_terminal(state) and any(a.status == "pending" for a in approvals):
            status = "pending_approval"  # from the moment the approval exists
        return status, approvals

    async def _waiting(self, execution: Execution) -> Approval:
        """The approval the execution waits for; ConflictError saying why there is none."""
        approvals = await self.engine.approvals.list(None, execution_id=execution.id)
        pending = [a for a in approvals if a.status == "pending"]
        if pending and not is_terminal(execution.state.current):
            return pending[0]
        decided = [a for a in approvals if a.status != "pending"]
        status = public_status(execution.state.current)
        if decided:
            last = decided[-1]
            who = last.decided_by or "the expiry timer"
            when = format_instant(last.decided_at) if last.decided_at else "earlier"
            raise ConflictError(
                f"Execution is not waiting for approval: it was already {last.status} by "
                f"{who} at {when}",
                {"status": status, "approvalStatus": last.status,
                 "decidedBy": last.decided_by, "decidedAt": when})
        raise ConflictError(f"Execution is not waiting for approval (status: {status})",
                            {"status": status})

    async def _flow_of(self, execution: Execution) -> FlowDefinition | None:
        try:
            return await self.engine.get_flow_revision(execution.namespace, execution.flow_id,
                                                       execution.flow_revision)
        except NotFoundError:
            return None

    def _flow_for_event(self, execution_id: str, namespace: str, flow_id: str,
                        revision: int) -> FlowDefinition | None:
        """The flow of an execution, from memory only (called on the store's writer thread):
        its runner's revision while it runs, else the current one."""
        runner = self.engine._launcher.runner(execution_id)
        if runner is not None and runner.flow.revision == revision:
            return runner.flow
        try:
            return self.engine.get_flow(namespace, flow_id)
        except NotFoundError:
            return None

    async def _error_of(self, execution: Execution) -> str:
        """Why a failed execution failed: its last ERROR log line."""
        errors = await self.engine.logs.fetch(execution.id, min_level="ERROR")
        if errors:
            return errors[-1].message
        return failure_of(execution.to_dict(self.engine.clock.now()))


def _completed_at(execution: Execution) -> datetime | None:
    state = execution.state
    return state.histories[-1].date if is_terminal(state.current) else None


def _decided(approvals: list[Approval]) -> str | None:
    decided = [a for a in approvals if a.status != "pending"]
    return decided[-1].status if decided else None
