"""The staging dialect (spec 000): staging environments through webhook-triggered flows.

Routes, each under `/api/v1` and `/api/v1/main` (mounted before the Kestra routers, so these
answer first):

- `POST|PUT|GET /executions/webhook/dev.deployment/{flow}/{key}` for the three bundled flows
  (`clone-staging-api`, `list-staging-environments`, `delete-staging-environment`): the key is
  checked by the generic Kestra webhook code (same constant-time comparison over the rendered
  trigger keys, same failure throttle, byte-identical 401 for every failure). Only once the key
  matched is the body checked: clone without `client_name`, or delete without
  `environment_name`, is a 400 naming the field, and no execution is created. Otherwise the
  generic code starts the execution and this dialect answers the spec's
  `{"executionId": ..., "state": "CREATED"}`.
- `GET /executions/{namespace}/{flowId}/{executionId}`: the spec's simplified execution:
  `id`, `state` (a string), `namespace`, `flowId`, `startDate`, `endDate` once finished,
  `taskRunList[{taskId, state}]` (a failed task run adds `attempts[{logs}]`: its ERROR and WARN
  lines as `"ERROR: message"`), `outputs.response` on success and `failureReason` on failure.

The spec's polling client loops while `state` is RUNNING or CREATED and treats anything else as
finished, so a waiting state is reported in those terms: QUEUED, RESTARTED, SUBMITTED and
RESUBMITTED as CREATED (not started yet); RETRYING, KILLING, PAUSED and BREAKPOINT as RUNNING.
Terminal states are reported as they are. The Kestra dialect's `GET /executions/{id}` shows
the exact state.

This path shape has three segments after `/executions`; Kestra's action routes
(`/executions/{id}/{action}`, `/executions/{id}/actions/{action}`) have two or three segments
but other methods (POST, DELETE), and a GET `/executions/webhook/{ns}/{flow}/{key}` has four, so
they never reach this route.
"""

from __future__ import annotations

import json
from typing import Any

from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse

from flowdeck.core.errors import NotFoundError
from flowdeck.core.models import Execution, LogEntry, TaskRun
from flowdeck.core.states import TERMINAL_STATES
from flowdeck.core.timefmt import format_instant
from flowdeck.engine.staging import (
    CLONE_FLOW,
    DELETE_FLOW,
    LIST_FLOW,
    NAMESPACE,
    failure_reason,
    response_of,
    strip_failure,
)
from flowdeck.server.dialects.kestra import webhooks
from flowdeck.server.dialects.kestra.common import get_engine
from flowdeck.server.errors import problem

router = APIRouter(tags=["staging"])

PREFIXES = ("/api/v1", "/api/v1/main")
#: The body field each flow cannot start without (checked after the key).
REQUIRED_FIELD = {CLONE_FLOW: "client_name", DELETE_FLOW: "environment_name"}
EXAMPLE = {CLONE_FLOW: '{"client_name": "acme-corp"}',
           DELETE_FLOW: '{"environment_name": "staging-acme-corp-20240112-103000"}'}
AS_CREATED = frozenset({"QUEUED", "RESTARTED", "SUBMITTED", "RESUBMITTED"})
PASSED_THROUGH = frozenset({"CREATED", "RUNNING"}) | TERMINAL_STATES
ENDED = TERMINAL_STATES | {"PAUSED"}
FAILURE_STATES = frozenset({"FAILED", "KILLED", "CANCELLED"})
LOG_LEVELS = ("ERROR", "WARN")


# -- webhooks -----------------------------------------------------------------------------------


def _missing_field(flow_id: str, raw: bytes) -> str | None:
    """The required body field that is absent, null or empty, or None."""
    field = REQUIRED_FIELD.get(flow_id)
    if field is None:
        return None
    body = webhooks._body(raw)
    value = body.get(field) if isinstance(body, dict) else None
    return field if value is None or value == "" else None


def _compact(response: Response) -> Response:
    """The generic webhook answer (a WebhookResponse) in the spec's shape."""
    if response.status_code != 200 or not isinstance(response, JSONResponse):
        return response
    try:
        doc = json.loads(bytes(response.body))
    except ValueError:
        return response
    state = doc.get("state") if isinstance(doc, dict) else None
    if not (isinstance(state, dict) and "id" in doc):
        return response  # `returnOutputs`: the outputs map, as the trigger asked
    return JSONResponse({"executionId": doc["id"], "state": state.get("current")})


async def trigger(request: Request, flow_id: str, key: str) -> Response:
    """Verify the key exactly as the generic webhook does; only then check the body."""
    client = request.client.host if request.client else "unknown"
    limit = int(webhooks._option(request, "webhook_failures_per_minute",
                                 webhooks.DEFAULT_FAILURES_PER_MINUTE))
    throttled = webhooks.throttle_for(request.app).retry_after(client, limit) is not None
    # A throttled or unmatched call falls through to the generic handler, which answers it
    # (429, or the identical 401) and counts the failure.
    if not throttled and webhooks.match_trigger(get_engine(request), NAMESPACE, flow_id,
                                                key) is not None:
        field = _missing_field(flow_id, await request.body())
        if field is not None:
            return problem(400, f"{field} is required: send a JSON body such as "
                                f"{EXAMPLE[flow_id]}",
                           f"{webhooks.REJECT_INSTANCE}/{NAMESPACE}/{flow_id}")
    return _compact(await webhooks.handle(request, NAMESPACE, flow_id, key))


def _webhook_route(flow_id: str) -> Any:
    async def endpoint(key: str, request: Request) -> Response:
        return await trigger(request, flow_id, key)

    endpoint.__name__ = "staging_" + flow_id.replace("-", "_")
    return endpoint


# -- the simplified execution ------------------------------------------------------------------


def reported_state(state: str) -> str:
    """The state as the spec's client understands it (see the module docstring)."""
    if state in PASSED_THROUGH:
        return state
    return "CREATED" if state in AS_CREATED else "RUNNING"


def _attempt_logs(task_run: TaskRun, logs: list[LogEntry]) -> list[dict[str, Any]]:
    """`[{"logs": ["ERROR: ..."]}]`, one entry per attempt of the task run."""
    attempts: list[dict[str, Any]] = [{"logs": []} for _ in task_run.attempts] or [{"logs": []}]
    for entry in logs:
        if entry.task_run_id != task_run.id or entry.level not in LOG_LEVELS:
            continue
        index = entry.attempt_number if entry.attempt_number is not None else -1
        slot = attempts[index] if -len(attempts) <= index < len(attempts) else attempts[-1]
        slot["logs"].append(f"{entry.level}: {strip_failure(task_run.task_id, entry.message)}")
    return attempts


async def simplified(request: Request, execution: Execution) -> dict[str, Any]:
    engine = get_engine(request)
    state = execution.state.current
    doc: dict[str, Any] = {
        "id": execution.id,
        "state": reported_state(state),
        "namespace": execution.namespace,
        "flowId": execution.flow_id,
        "startDate": format_instant(execution.state.start_date),
    }
    end = execution.state.end_date
    if state in ENDED and end is not None:
        doc["endDate"] = format_instant(end)
    failed_runs = [tr for tr in execution.task_runs if tr.state.current in FAILURE_STATES]
    logs: list[LogEntry] = []
    if failed_runs or state in FAILURE_STATES:
        logs = await engine.logs.fetch(execution.id, min_level="WARN")
    runs = []
    for task_run in execution.task_runs:
        run: dict[str, Any] = {"taskId": task_run.task_id, "state": task_run.state.current}
        if task_run in failed_runs:
            run["attempts"] = _attempt_logs(task_run, logs)
        runs.append(run)
    doc["taskRunList"] = runs
    if state in ("SUCCESS", "WARNING"):
        response = response_of(execution)
        doc["outputs"] = {"response": response} if response is not None else (
            execution.outputs or {})
    elif state in FAILURE_STATES:
        doc["failureReason"] = failure_reason(execution, logs)
    return doc


async def execution_status(namespace: str, flow_id: str, execution_id: str,
                           request: Request) -> JSONResponse:
    engine = get_engine(request)
    execution = await engine.get_execution(execution_id)
    if execution.namespace != namespace or execution.flow_id != flow_id:
        raise NotFoundError(f"no execution '{execution_id}' of flow '{namespace}.{flow_id}'")
    return JSONResponse(await simplified(request, execution))


for _prefix in PREFIXES:
    _tenant = "_main" if _prefix.endswith("/main") else ""
    for _flow in (CLONE_FLOW, LIST_FLOW, DELETE_FLOW):
        _endpoint = _webhook_route(_flow)
        for _method in webhooks.METHODS:  # one route each: one OpenAPI operation id each
            router.add_api_route(
                f"{_prefix}/executions/webhook/{NAMESPACE}/{_flow}/{{key}}", _endpoint,
                methods=[_method], include_in_schema=not _tenant,
                name=f"staging_{_flow.replace('-', '_')}_{_method.lower()}{_tenant}",
                summary=f"Start {_flow} (webhook key in the path): "
                        '{"executionId": ..., "state": "CREATED"}')
    router.add_api_route(
        f"{_prefix}/executions/{{namespace}}/{{flow_id}}/{{execution_id}}", execution_status,
        methods=["GET"], include_in_schema=not _tenant,
        name=f"staging_execution_status{_tenant}",
        summary="An execution in the staging dialect's simplified shape (state as a string, "
                "outputs.response, failureReason)")
