"""What Kestra's routes read from their requests by hand, for the OpenAPI document.

The routes parse their own queries (`filters[field][OPERATION]=value` and the legacy
parameters) and bodies (flow YAML, multipart inputs, KV values), so FastAPI cannot see them;
`describe` names them per route (method and path template below the tenant), which is enough
for a client generator or a fuzzer to send meaningful requests. Unknown routes get nothing.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

TENANTS = ("/api/v1/main", "/api/v1")
LEVELS = ["TRACE", "DEBUG", "INFO", "WARN", "ERROR"]
STATES = ["CREATED", "RUNNING", "PAUSED", "SUCCESS", "WARNING", "FAILED", "KILLED", "CANCELLED",
          "QUEUED", "RETRYING", "KILLING", "RESTARTED"]


def q(name: str, kind: str = "string", description: str = "", **schema: Any) -> dict[str, Any]:
    """One query parameter."""
    return {"name": name, "in": "query", "required": False, "description": description,
            "schema": {"type": kind, **schema}}


def header(name: str, description: str) -> dict[str, Any]:
    return {"name": name, "in": "header", "required": False, "description": description,
            "schema": {"type": "string"}}


PAGING = [q("page", "integer", "Page number, from 1", minimum=1),
          q("size", "integer", "Page size", minimum=1, maximum=10_000),
          q("sort", description="field:asc or field:desc, e.g. state.startDate:desc")]
DATES = [q("startDate", description="ISO-8601 date-time", format="date-time"),
         q("endDate", description="ISO-8601 date-time", format="date-time"),
         q("timeRange", description="ISO-8601 duration back from now, e.g. PT24H")]
EXECUTION_FILTERS = [
    q("q"), q("namespace"), q("flowId"), q("state", description="a state", enum=STATES),
    q("labels", description="key:value"), q("filters[namespace][PREFIX]"),
    q("filters[flowId][EQUALS]"), q("filters[state][IN]", description="comma-separated"),
    q("filters[labels][EQUALS][team]"), q("filters[startDate][GREATER_THAN_OR_EQUAL_TO]"),
    q("childFilter", enum=["CHILD", "MAIN"]), *DATES]
LOG_FILTERS = [
    q("minLevel", enum=LEVELS), q("taskRunId"), q("taskId"), q("attempt", "integer", minimum=0),
    q("filters[level][GREATER_THAN_OR_EQUAL_TO]", enum=LEVELS), q("filters[taskId][EQUALS]"),
    q("filters[q][EQUALS]"), q("q"), *DATES]
FLOW_FILTERS = [q("q"), q("namespace"), q("labels", description="key:value"),
                q("scope", enum=["USER", "SYSTEM"]), q("filters[namespace][PREFIX]"),
                q("filters[q][EQUALS]")]


def json_body(schema: Mapping[str, Any], required: bool = False) -> dict[str, Any]:
    return {"required": required, "content": {"application/json": {"schema": dict(schema)}}}


YAML = {"required": True, "content": {"application/x-yaml": {"schema": {"type": "string"}}}}
INPUTS = {"required": False, "content": {
    "multipart/form-data": {"schema": {"type": "object", "additionalProperties": {
        "type": "string"}}},
    "application/json": {"schema": {"type": "object"}}}}
LABELS = json_body({"type": "array", "items": {"type": "object", "required": ["key", "value"],
                                                "properties": {"key": {"type": "string"},
                                                               "value": {"type": "string"}}}},
                   required=True)
FILE = {"required": True, "content": {
    "multipart/form-data": {"schema": {"type": "object", "properties": {
        "fileContent": {"type": "string", "format": "binary"}}}},
    "application/octet-stream": {"schema": {"type": "string", "format": "binary"}}}}
ANY_JSON = {"required": False, "content": {"application/json": {"schema": {}}}}
CREATE = [q("wait", "boolean"), q("labels", description="key:value"),
          q("revision", "integer", minimum=1), q("scheduleDate", format="date-time"),
          q("kind", enum=["NORMAL"])]
RESTART = [q("taskRunId"), q("revision", "integer", minimum=1)]


def _ops() -> dict[tuple[str, str], dict[str, Any]]:
    ops: dict[tuple[str, str], dict[str, Any]] = {
        ("GET", "/executions/search"): {"parameters": [*PAGING, *EXECUTION_FILTERS]},
        ("GET", "/executions"): {"parameters": [*PAGING, *EXECUTION_FILTERS]},
        ("POST", "/executions/{namespace}/{flow_id}"): {"parameters": CREATE,
                                                         "requestBody": INPUTS},
        ("POST", "/executions/trigger/{namespace}/{flow_id}"): {"parameters": CREATE,
                                                                 "requestBody": INPUTS},
        ("GET", "/logs/search"): {"parameters": [*PAGING, *LOG_FILTERS, q("namespace"),
                                                 q("flowId"), q("triggerId")]},
        ("GET", "/logs/{execution_id}"): {"parameters": [
            *LOG_FILTERS, q("afterSequence", "integer", minimum=0)]},
        ("GET", "/logs/{execution_id}/download"): {"parameters": LOG_FILTERS},
        ("DELETE", "/logs/{execution_id}"): {"parameters": LOG_FILTERS},
        ("GET", "/logs/{execution_id}/follow"): {"parameters": [
            *LOG_FILTERS, q("afterSequence", "integer", minimum=0),
            header("Last-Event-ID", "resume after this sequence number")]},
        ("POST", "/flows"): {"requestBody": YAML},
        ("POST", "/flows/validate"): {"requestBody": YAML},
        ("PUT", "/flows/{namespace}/{flow_id}"): {"requestBody": YAML},
        ("GET", "/flows/search"): {"parameters": [*PAGING, *FLOW_FILTERS]},
        ("GET", "/flows/{namespace}/{flow_id}"): {"parameters": [
            q("source", "boolean"), q("allowDeleted", "boolean"),
            q("revision", "integer", minimum=1)]},
        ("PUT", "/namespaces/{namespace}/kv/{key}"): {
            "parameters": [header("ttl", "ISO-8601 duration, e.g. PT1H")],
            "requestBody": {"required": True, "content": {
                "application/json": {"schema": {}}, "text/plain": {"schema": {
                    "type": "string"}}}}},
        ("DELETE", "/namespaces/{namespace}/kv"): {"requestBody": json_body(
            {"type": "object", "properties": {"keys": {"type": "array", "items": {
                "type": "string"}}}}, required=True)},
        ("POST", "/namespaces/{namespace}/files"): {"parameters": [q("path")],
                                                    "requestBody": FILE},
        ("PUT", "/namespaces/{namespace}/files"): {"parameters": [q("from"), q("to")]},
        ("GET", "/namespaces/{namespace}/files/search"): {"parameters": [q("q")]},
    }
    for path in ("/namespaces/{namespace}/files", "/namespaces/{namespace}/files/directory",
                 "/namespaces/{namespace}/files/stats",
                 "/namespaces/{namespace}/files/revisions"):
        for method in ("GET", "POST", "DELETE"):
            ops.setdefault((method, path), {"parameters": [q("path"), q("revision")]})
    for style in ("/executions/{execution_id}/actions/", "/executions/{execution_id}/"):
        ops[("POST", style + "resume")] = {"requestBody": INPUTS}
        ops[("POST", style + "replay-with-inputs")] = {"parameters": RESTART,
                                                        "requestBody": INPUTS}
        ops[("POST", style + "restart")] = {"parameters": RESTART}
        ops[("POST", style + "replay")] = {"parameters": RESTART}
        ops[("POST", style + "labels")] = {"requestBody": LABELS}
        ops[("POST", style + "change-status")] = {"parameters": [
            {**q("status", enum=STATES), "required": True}]}
        ops[("DELETE", style + "kill")] = {"parameters": [q("isOnKillCascade", "boolean")]}
    for method in ("GET", "POST", "PUT"):
        ops[(method, "/executions/webhook/{namespace}/{flow_id}/{key}")] = {
            "requestBody": ANY_JSON} if method != "GET" else {}
    return ops


OPERATIONS = _ops()


def describe(method: str, path: str) -> Mapping[str, Any]:
    """The extra OpenAPI fields of a Kestra-family route (see `Dialect.openapi`)."""
    for tenant in TENANTS:
        if path.startswith(tenant + "/"):
            path = path[len(tenant):]
            break
    path = path.replace("{key:path}", "{key}")
    return OPERATIONS.get((method, path), {})
