"""Parse and validate Kestra flow YAML into a `FlowDefinition`.

Everything that can be checked before a run is checked here, with the path of the offending
property (`tasks[1].type: unknown task type 'io.kestra.nope'`), so a bad flow is refused when it
is submitted instead of failing hours later.
"""

from __future__ import annotations

import asyncio
import graphlib
import re
from dataclasses import dataclass, field
from datetime import date, time
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field
from pydantic import ValidationError as PydanticValidationError

from flowdeck.core.errors import InvalidFlowError
from flowdeck.core.sanitize import valid_json, valid_text
from flowdeck.engine.flow_document import flow_document
from flowdeck.engine.inputs import (
    INLINE_PARSE_CHARS,
    PARSE_POOL,
    PARSE_TIMEOUT_S,
    InputDef,
    coerce,
    load_yaml,
)
from flowdeck.engine.plugin_defaults import read_defaults, with_defaults
from flowdeck.engine.tasks.base import Duration, RetryPolicy, TaskDef
from flowdeck.engine.tasks.registry import TASK_TYPES, canonical_type

FLOW_ID = re.compile(r"^[a-zA-Z0-9][a-zA-Z0-9._-]*$")
NAMESPACE = re.compile(r"^[a-z0-9][a-z0-9._-]*$", re.IGNORECASE)
SCHEDULE_TYPES = {
    "io.kestra.plugin.core.trigger.Schedule",
    "io.kestra.core.models.triggers.types.Schedule",
}
WEBHOOK_TYPES = {
    "io.kestra.plugin.core.trigger.Webhook",
    "io.kestra.core.models.triggers.types.Webhook",
}
CRON_ALIASES = {
    "@yearly": "0 0 1 1 *",
    "@annually": "0 0 1 1 *",
    "@monthly": "0 0 1 * *",
    "@weekly": "0 0 * * 0",
    "@daily": "0 0 * * *",
    "@midnight": "0 0 * * *",
    "@hourly": "0 * * * *",
}


class ConcurrencyDef(BaseModel):
    model_config = ConfigDict(extra="forbid")
    limit: int = Field(ge=1)
    behavior: Literal["QUEUE", "CANCEL", "FAIL"] = "QUEUE"
    #: flowdeck's extension: flows of one namespace with the same key share one limit.
    key: str | None = Field(default=None, min_length=1, max_length=200)


class ScheduleTrigger(BaseModel):
    model_config = ConfigDict(extra="allow")
    id: str
    type: str
    cron: str
    timezone: str = "UTC"
    withSeconds: bool = False
    inputs: dict[str, Any] = Field(default_factory=dict)
    disabled: bool = False

    def crontab(self) -> str:
        return CRON_ALIASES.get(self.cron.strip(), self.cron.strip())


class WebhookTrigger(BaseModel):
    model_config = ConfigDict(extra="allow")
    id: str
    type: str
    key: str
    wait: bool = False
    returnOutputs: bool = False
    inputs: dict[str, Any] = Field(default_factory=dict)
    disabled: bool = False


class OutputDef(BaseModel):
    model_config = ConfigDict(extra="allow")
    id: str
    type: str = "STRING"
    value: Any = None


class FlowRetry(BaseModel):
    model_config = ConfigDict(extra="allow")
    type: str
    interval: Duration | None = None
    maxAttempts: int | None = None


@dataclass(slots=True)
class FlowDefinition:
    """A validated flow revision; `raw` keeps the parsed YAML for the JSON view."""

    id: str
    namespace: str
    revision: int
    source: str
    raw: dict[str, Any]
    description: str | None
    labels: list[tuple[str, str]]
    inputs: list[InputDef]
    outputs: list[OutputDef]
    variables: dict[str, Any]
    tasks: list[TaskDef]
    errors: list[TaskDef]
    finally_: list[TaskDef]
    schedules: list[ScheduleTrigger]
    webhooks: list[WebhookTrigger]
    concurrency: ConcurrencyDef | None
    retry: RetryPolicy | None
    disabled: bool
    tasks_by_id: dict[str, TaskDef] = field(default_factory=dict)
    updated: str | None = None
    #: Run once the execution has ended (its state stays as it ended), e.g. to notify.
    after_execution: list[TaskDef] = field(default_factory=list)

    def to_dict(self, *, with_source: bool = True, deleted: bool = False) -> dict[str, Any]:
        """Kestra's `Flow` / `FlowWithSource` document (see `flow_document.py`)."""
        return flow_document(self, with_source=with_source, deleted=deleted)


def _loc(loc: tuple[int | str, ...]) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def _join(path: str, sub: str) -> str:
    if not sub:
        return path
    if not path:
        return sub
    return path + (sub if sub.startswith("[") else "." + sub)


def _pydantic_problems(path: str, exc: PydanticValidationError) -> list[tuple[str, str]]:
    problems = []
    for err in exc.errors():
        msg = err["msg"]
        if err["type"] == "extra_forbidden":
            msg = "unknown property"
        elif msg.startswith("Value error, "):
            msg = msg[len("Value error, "):]
        problems.append((_join(path, _loc(tuple(err["loc"]))), msg))
    return problems


class _Parser:
    def __init__(self) -> None:
        self.problems: list[tuple[str, str]] = []
        self.ids: dict[str, str] = {}

    def tasks(self, raw: Any, path: str, *, required: bool = False) -> list[TaskDef]:
        if raw is None:
            if required:
                self.problems.append((path, "is required"))
            return []
        if not isinstance(raw, list):
            self.problems.append((path, "must be a list of tasks"))
            return []
        if required and not raw:
            self.problems.append((path, "must not be empty"))
        parsed = [t for i, item in enumerate(raw) if (t := self.task(item, f"{path}[{i}]"))]
        self._check_depends_on(parsed, path)
        return parsed

    def task(self, raw: Any, path: str) -> TaskDef | None:
        if not isinstance(raw, dict):
            self.problems.append((path, "must be a mapping with 'id' and 'type'"))
            return None
        type_name = raw.get("type")
        if not isinstance(type_name, str) or not type_name:
            self.problems.append((f"{path}.type", "is required"))
            return None
        cls = TASK_TYPES.get(canonical_type(type_name))
        if cls is None:
            self.problems.append((f"{path}.type", f"unknown task type '{type_name}'"))
            return None
        data = dict(raw)
        child_raw = {name: data.pop(cls.model_fields[name].alias or name, None)
                     for name in cls.child_fields}
        try:
            task = cls.model_validate(data)
        except PydanticValidationError as exc:
            self.problems.extend(_pydantic_problems(path, exc))
            for name in cls.child_fields:  # still report what is wrong inside its children
                key = cls.model_fields[name].alias or name
                self.tasks(child_raw[name], f"{path}.{key}")
            return None
        for i, inp in enumerate(getattr(task, "onResume", None) or []):
            problem = default_problem(inp)
            if problem:
                self.problems.append((f"{path}.onResume[{i}].defaults", problem))
        task_id = task.id
        if task_id in self.ids:
            self.problems.append((f"{path}.id", f"duplicate task id '{task_id}' "
                                                 f"(also at {self.ids[task_id]})"))
        else:
            self.ids[task_id] = path
        for name in cls.child_fields:
            required = name in cls.required_children
            key = cls.model_fields[name].alias or name
            setattr(task, name, self.tasks(child_raw[name], f"{path}.{key}", required=required))
        return task

    def _check_depends_on(self, tasks: list[TaskDef], path: str) -> None:
        ids = {t.id for t in tasks}
        graph: dict[str, list[str]] = {}
        for i, t in enumerate(tasks):
            for dep in t.dependsOn:
                if dep not in ids:
                    self.problems.append((f"{path}[{i}].dependsOn",
                                          f"'{dep}' is not a task of the same list"))
            graph[t.id] = [d for d in t.dependsOn if d in ids]
        try:
            graphlib.TopologicalSorter(graph).prepare()
        except graphlib.CycleError as exc:
            # graphlib lists the cycle along "is needed by"; show it along "dependsOn"
            cycle = list(reversed(exc.args[1]))
            self.problems.append((path, "dependsOn forms a cycle: " + " -> ".join(cycle)))


def _labels(raw: Any, problems: list[tuple[str, str]]) -> list[tuple[str, str]]:
    if raw is None:
        return []
    if isinstance(raw, dict):
        return [(str(k), "" if v is None else str(v)) for k, v in raw.items()]
    if isinstance(raw, list):
        out = []
        for i, item in enumerate(raw):
            if isinstance(item, dict) and "key" in item:
                value = item.get("value")
                out.append((str(item["key"]), "" if value is None else str(value)))
            else:
                problems.append((f"labels[{i}]", "must be a mapping with 'key' and 'value'"))
        return out
    problems.append(("labels", "must be a mapping or a list of {key, value}"))
    return []


def _triggers(raw: Any, problems: list[tuple[str, str]]
              ) -> tuple[list[ScheduleTrigger], list[WebhookTrigger]]:
    schedules: list[ScheduleTrigger] = []
    webhooks: list[WebhookTrigger] = []
    if raw is None:
        return schedules, webhooks
    if not isinstance(raw, list):
        problems.append(("triggers", "must be a list"))
        return schedules, webhooks
    seen: set[str] = set()
    for i, item in enumerate(raw):
        path = f"triggers[{i}]"
        if not isinstance(item, dict):
            problems.append((path, "must be a mapping with 'id' and 'type'"))
            continue
        type_name = item.get("type")
        if not isinstance(type_name, str) or not type_name:
            problems.append((f"{path}.type", "is required"))
            continue
        try:
            if type_name in SCHEDULE_TYPES:
                trigger = ScheduleTrigger.model_validate(item)
                problem = timezone_problem(trigger.timezone)
                if problem:
                    problems.append((f"{path}.timezone", problem))
                else:
                    problem = cron_problem(trigger)
                    if problem:
                        problems.append((f"{path}.cron", problem))
                schedules.append(trigger)
            elif type_name in WEBHOOK_TYPES:
                webhooks.append(WebhookTrigger.model_validate(item))
            else:
                problems.append((f"{path}.type", f"unknown trigger type '{type_name}'"))
                continue
        except PydanticValidationError as exc:
            problems.extend(_pydantic_problems(path, exc))
            continue
        tid = item.get("id")
        if tid in seen:
            problems.append((f"{path}.id", f"duplicate trigger id '{tid}'"))
        seen.add(str(tid))
    return schedules, webhooks


def timezone_problem(name: str) -> str | None:
    """Why `name` is not a usable IANA time zone, or None."""
    from zoneinfo import ZoneInfo

    try:
        ZoneInfo(name)
    except Exception:  # ZoneInfoNotFoundError, ValueError for path-like keys, ...
        return f"unknown time zone '{name}'"
    return None


def cron_problem(trigger: ScheduleTrigger) -> str | None:
    """Why this schedule's cron or timezone cannot be used, or None."""
    from apscheduler.triggers.cron import CronTrigger

    fields = trigger.crontab().split()
    expected = 6 if trigger.withSeconds else 5
    if len(fields) != expected:
        return f"expected {expected} fields, got {len(fields)} in '{trigger.cron}'"
    try:
        if trigger.withSeconds:
            second, minute, hour, day, month, dow = fields
            CronTrigger(second=second, minute=minute, hour=hour, day=day, month=month,
                        day_of_week=dow, timezone=trigger.timezone)
        else:
            CronTrigger.from_crontab(" ".join(fields), timezone=trigger.timezone)
    except Exception as exc:  # apscheduler reports a bad field with ValueError, mostly
        problem = timezone_problem(trigger.timezone)
        if problem:
            return problem
        return f"invalid cron '{trigger.cron}': {exc}"
    return None


def parse_flow(source: str, revision: int = 1) -> FlowDefinition:
    """Validate a flow's YAML source; raises `InvalidFlowError` naming every problem found."""
    source = valid_text(source)
    try:
        raw = valid_json(load_yaml(source))
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        reason = getattr(exc, "problem", None) or "cannot be parsed"
        raise InvalidFlowError([("", f"invalid YAML{where}: {reason}")]) from None
    except ValueError as exc:
        raise InvalidFlowError([("", f"invalid YAML: {exc}")]) from None
    if not isinstance(raw, dict):
        raise InvalidFlowError([("", "a flow must be a YAML mapping with id, namespace and tasks")])
    problems: list[tuple[str, str]] = []
    _non_json_values(raw, "", problems)
    if problems:  # a !!binary or !!set value: nothing below can rely on plain JSON types
        raise InvalidFlowError(problems)
    flow_id = raw.get("id")
    namespace = raw.get("namespace")
    if not isinstance(flow_id, str) or not flow_id:
        problems.append(("id", "is required"))
    elif not FLOW_ID.fullmatch(flow_id):
        problems.append(("id", f"'{flow_id}' must match {FLOW_ID.pattern}"))
    if not isinstance(namespace, str) or not namespace:
        problems.append(("namespace", "is required"))
    elif not NAMESPACE.fullmatch(namespace):
        problems.append(("namespace", f"'{namespace}' must match {NAMESPACE.pattern}"))
    known = {"id", "namespace", "revision", "description", "labels", "inputs", "outputs",
             "variables", "tasks", "errors", "finally", "afterExecution", "triggers",
             "concurrency", "retry", "disabled", "deleted", "tenantId", "pluginDefaults",
             "taskDefaults", "listeners", "sla", "checks", "workerGroup"}
    for key in raw:
        if key not in known:
            problems.append((str(key), "unknown property"))

    defaults = read_defaults(raw.get("pluginDefaults"), "pluginDefaults", problems) + \
        read_defaults(raw.get("taskDefaults"), "taskDefaults", problems)
    blocks = with_defaults(raw, defaults)
    parser = _Parser()
    tasks = parser.tasks(blocks.get("tasks"), "tasks", required=True)
    errors = parser.tasks(blocks.get("errors"), "errors")
    finally_ = parser.tasks(blocks.get("finally"), "finally")
    after_execution = parser.tasks(blocks.get("afterExecution"), "afterExecution")
    problems.extend(parser.problems)

    inputs: list[InputDef] = []
    raw_inputs = raw.get("inputs") or []
    if not isinstance(raw_inputs, list):
        problems.append(("inputs", "must be a list"))
        raw_inputs = []
    seen_inputs: set[str] = set()
    for i, item in enumerate(raw_inputs):
        try:
            inp = InputDef.model_validate(item)
        except PydanticValidationError as exc:
            problems.extend(_pydantic_problems(f"inputs[{i}]", exc))
            continue
        if inp.id in seen_inputs:
            problems.append((f"inputs[{i}].id", f"duplicate input id '{inp.id}'"))
        seen_inputs.add(inp.id)
        problem = default_problem(inp)
        if problem:
            problems.append((f"inputs[{i}].defaults", problem))
        inputs.append(inp)

    outputs: list[OutputDef] = []
    raw_outputs = raw.get("outputs") or []
    if not isinstance(raw_outputs, list):
        problems.append(("outputs", "must be a list"))
        raw_outputs = []
    for i, item in enumerate(raw_outputs):
        try:
            outputs.append(OutputDef.model_validate(item))
        except PydanticValidationError as exc:
            problems.extend(_pydantic_problems(f"outputs[{i}]", exc))

    variables = raw.get("variables") or {}
    if not isinstance(variables, dict):
        problems.append(("variables", "must be a mapping"))
        variables = {}
    labels = _labels(raw.get("labels"), problems)
    schedules, webhooks = _triggers(raw.get("triggers"), problems)

    concurrency = None
    if raw.get("concurrency") is not None:
        try:
            concurrency = ConcurrencyDef.model_validate(raw["concurrency"])
        except PydanticValidationError as exc:
            problems.extend(_pydantic_problems("concurrency", exc))
    retry = None
    if raw.get("retry") is not None:
        try:
            retry = RetryPolicy.model_validate(
                {k: v for k, v in raw["retry"].items() if k != "behavior"}
                if isinstance(raw["retry"], dict) else raw["retry"])
        except PydanticValidationError as exc:
            problems.extend(_pydantic_problems("retry", exc))
    disabled = raw.get("disabled", False)
    if not isinstance(disabled, bool):
        problems.append(("disabled", "must be true or false"))
        disabled = False
    description = raw.get("description")
    if description is not None and not isinstance(description, str):
        description = str(description)

    if problems:
        raise InvalidFlowError(problems)
    assert isinstance(flow_id, str) and isinstance(namespace, str)
    flow = FlowDefinition(
        id=flow_id, namespace=namespace, revision=revision, source=source, raw=raw,
        description=description, labels=labels, inputs=inputs, outputs=outputs,
        variables=variables, tasks=tasks, errors=errors, finally_=finally_,
        schedules=schedules, webhooks=webhooks, concurrency=concurrency, retry=retry,
        disabled=disabled, after_execution=after_execution,
    )
    index_tasks(flow)
    return flow


async def parse_flow_async(source: str, revision: int = 1) -> FlowDefinition:
    """`parse_flow` off the event loop for a big source (in `PARSE_POOL`, with a time
    budget); a small one is parsed at once (bombs are refused in microseconds either way)."""
    if len(source) <= INLINE_PARSE_CHARS:
        return parse_flow(source, revision)
    future = asyncio.get_running_loop().run_in_executor(PARSE_POOL, parse_flow, source,
                                                         revision)
    try:
        return await asyncio.wait_for(future, PARSE_TIMEOUT_S)
    except TimeoutError:
        raise InvalidFlowError([("", "the flow took too long to read")]) from None


def default_problem(inp: InputDef) -> str | None:
    """Why an input's `defaults` does not fit its type, or None (templated defaults pass)."""
    if inp.defaults is None or (isinstance(inp.defaults, str) and "{{" in inp.defaults):
        return None
    try:
        coerce(inp, inp.defaults)
    except ValueError as exc:
        return str(exc)
    return None


def _non_json_values(value: Any, path: str, problems: list[tuple[str, str]]) -> None:
    """Report values an explicit YAML tag made that JSON cannot carry (`!!binary`, `!!set`)."""
    if isinstance(value, dict):
        for key, item in value.items():
            if not isinstance(key, str | int | float | bool) and key is not None:
                problems.append((path or "(root)", f"unsupported mapping key {key!r}"))
                continue
            _non_json_values(item, _join(path, str(key)), problems)
    elif isinstance(value, list):
        for i, item in enumerate(value):
            _non_json_values(item, f"{path}[{i}]", problems)
    elif not (value is None or isinstance(value, str | int | float | bool)):
        kind = "date" if isinstance(value, date | time) else type(value).__name__
        problems.append((path or "(root)", f"unsupported YAML value of type {kind}"))


def index_tasks(flow: FlowDefinition) -> None:
    def walk(tasks: list[TaskDef]) -> None:
        for t in tasks:
            flow.tasks_by_id[t.id] = t
            for _, children in t.children():
                walk(children)

    walk(flow.tasks)
    walk(flow.errors)
    walk(flow.finally_)
    walk(flow.after_execution)
