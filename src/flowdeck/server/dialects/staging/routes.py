"""The staging dialect (spec 000): staging environments through webhook-triggered flows.

Routes, each under `/api/v1` and `/api/v1/main` (mounted before the Kestra routers, so these
answer first):

- `POST|PUT|GET /executions/webhook/dev.deployment/{flow}/{key}` for the three bundled flows
  (`clone-staging-api`, `list-staging-environments`, `delete-staging-environment`): the key is
  checked by the engine's webhook triggers, as for any webhook (same constant-time comparison
  over the rendered trigger keys, same failure throttle, byte-identical 401 for every failure).
  Only once the key matched is the body checked: clone without `client_name`, or delete
  without `environment_name`, is a 400 naming the field, and no execution is created.
  Otherwise the engine starts the execution and this dialect answers the spec's
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

import logging
from typing import Any

from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from flowdeck.core.errors import BadRequestError, FlowdeckError, NotFoundError
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
from flowdeck.engine.webhook_triggers import (
    WebhookCall,
    WebhookRejected,
    WebhookStart,
    WebhookThrottled,
)
from flowdeck.server.access import OPEN_ROUTE, VIEWER
from flowdeck.server.deps import get_engine, webhook_call
from flowdeck.server.errors import UNEXPECTED, engine_error
from flowdeck.server.problem import KESTRA_PROBLEMS
from flowdeck.server.webhook_answers import (
    METHODS,
    REJECT_INSTANCE,
    reject,
    throttled,
    trigger_options,
)

log = logging.getLogger("flowdeck.server.staging")
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


async def _require_field(flow_id: str, call: WebhookCall) -> None:
    """A 400 naming the body field this flow cannot start without (absent, null or empty)."""
    field = REQUIRED_FIELD.get(flow_id)
    if field is None:
        return
    body = await call.body()
    value = body.get(field) if isinstance(body, dict) else None
    if value is None or value == "":
        raise BadRequestError(f"{field} is required: send a JSON body such as "
                              f"{EXAMPLE[flow_id]}")


def _compact(started: WebhookStart) -> JSONResponse:
    """The spec's answer: the execution id and state (the outputs map for `returnOutputs`)."""
    execution = started.execution
    if started.trigger.wait and started.trigger.returnOutputs:
        return JSONResponse(execution.outputs or {})
    return JSONResponse({"executionId": execution.id, "state": execution.state.current})


async def trigger(request: Request, flow_id: str, key: str) -> Response:
    """Verify the key exactly as every webhook is verified; only then check the body."""
    instance = f"{REJECT_INSTANCE}/{NAMESPACE}/{flow_id}"

    def scrub(text: str) -> str:
        return text.replace(key, "***") if key else text

    async def accept(call: WebhookCall) -> None:
        await _require_field(flow_id, call)

    try:
        started = await get_engine(request).webhook_triggers.trigger(
            NAMESPACE, flow_id, key, webhook_call(request), accept=accept,
            **trigger_options(request))
    except WebhookThrottled as exc:
        return throttled(KESTRA_PROBLEMS, exc)
    except WebhookRejected:
        return reject(KESTRA_PROBLEMS)
    except FlowdeckError as exc:
        return KESTRA_PROBLEMS(engine_error(exc, instance, scrub))
    except StarletteHTTPException:
        raise  # a 413 and the like are answers, not errors
    except Exception as exc:  # keep the key out of the generic handler's log line
        log.error("staging webhook %s: unexpected %s: %.200s", flow_id, type(exc).__name__,
                  scrub(str(exc)))
        return KESTRA_PROBLEMS.problem(500, UNEXPECTED, instance)
    return _compact(started)


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


OPEN_ROUTES = [f"{prefix}/executions/webhook/{NAMESPACE}/{flow}/{{key}}"
               for prefix in PREFIXES for flow in (CLONE_FLOW, LIST_FLOW, DELETE_FLOW)]

for _prefix in PREFIXES:
    _tenant = "_main" if _prefix.endswith("/main") else ""
    for _flow in (CLONE_FLOW, LIST_FLOW, DELETE_FLOW):
        _endpoint = _webhook_route(_flow)
        for _method in METHODS:  # one route each: one OpenAPI operation id each
            router.add_api_route(
                f"{_prefix}/executions/webhook/{NAMESPACE}/{_flow}/{{key}}", _endpoint,
                methods=[_method], include_in_schema=not _tenant, dependencies=OPEN_ROUTE,
                name=f"staging_{_flow.replace('-', '_')}_{_method.lower()}{_tenant}",
                summary=f"Start {_flow} (webhook key in the path): "
                        '{"executionId": ..., "state": "CREATED"}')
    router.add_api_route(
        f"{_prefix}/executions/{{namespace}}/{{flow_id}}/{{execution_id}}", execution_status,
        methods=["GET"], include_in_schema=not _tenant, dependencies=VIEWER,
        name=f"staging_execution_status{_tenant}",
        summary="An execution in the staging dialect's simplified shape (state as a string, "
                "outputs.response, failureReason)")
