"""A submitted workflow definition (the spec's JSON): validated, then written as a flow.

Every problem is reported at once, each naming the task it is about
(`tasks[1]: task 'validate_data' depends on unknown task 'extract'`), so the dialect answers
400 with one message. Defaults are the spec's: `max_concurrency` 10, `timeout` 1h, a task's
`max_retries` 3 (retries after the first attempt; `config.retry_policy.max_attempts`, when
given, is the default for tasks that do not set their own), `priority` 1, and exponential
backoff from `initial_delay` 1s by `backoff_factor` 2.0 up to `max_delay` 5m.

The flow (namespace `flowctl`, id `wf-<workflow id>`) holds one `flowdeck.flowctl.Workflow`
task; each workflow task becomes one of its children, with an engine task id made from its
name, the engine's Kestra-style `retry` for its retries, and its `name`, stable `uid`,
`priority` and `payload` as properties.
"""

from __future__ import annotations

import graphlib
import json
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import yaml

from flowdeck.core.errors import ValidationError
from flowdeck.core.flowctl import (
    ENGINE_TYPES,
    LABEL_ID,
    LABEL_NAME,
    NAMESPACE,
    TASK_TYPES,
    WORKFLOW_TYPE,
    flow_id_for,
)
from flowdeck.core.timefmt import format_duration
from flowdeck.engine.flowctl.durations import parse_go_duration_ns, to_timedelta
from flowdeck.engine.flowctl.settings import FlowctlSettings
from flowdeck.engine.flowctl.validation import payload_problems

#: The wrapper task's id in every workflow flow.
WRAPPER_ID = "workflow"
MAX_TASKS = 1000
MAX_NAME = 200
MAX_DESCRIPTION = 10_000
MAX_DEPTH = 32
MAX_DEFINITION_BYTES = 1024 * 1024
MAX_RETRIES = 100
MAX_CONCURRENCY = 1000
MAX_PRIORITY = 2**31 - 1
MAX_BACKOFF = 100.0
DEFAULTS: dict[str, Any] = {
    "max_concurrency": 10,
    "timeout": "1h",
    "retry_policy": {"max_attempts": 3, "initial_delay": "1s", "max_delay": "5m",
                     "backoff_factor": 2.0},
}
DEFAULT_PRIORITY = 1
#: Fields of the spec's responses a client may send back; they are ignored.
READ_ONLY = frozenset({"id", "workflow_id", "status", "result", "error", "retry_count",
                       "created_at", "updated_at", "started_at", "completed_at"})
CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")


@dataclass(frozen=True, slots=True)
class TaskSpec:
    name: str
    type: str
    payload: dict[str, Any]
    max_retries: int
    priority: int
    dependencies: list[str]


@dataclass(frozen=True, slots=True)
class WorkflowSpec:
    name: str
    description: str
    max_concurrency: int
    timeout: str
    timeout_ns: int
    retry_policy: dict[str, Any]
    tasks: list[TaskSpec] = field(default_factory=list)

    def config(self) -> dict[str, Any]:
        """The workflow's `config` with every default filled in, as the views show it."""
        return {"max_concurrency": self.max_concurrency, "timeout": self.timeout,
                "retry_policy": dict(self.retry_policy)}


class _Problems:
    def __init__(self) -> None:
        self.items: list[tuple[str, str]] = []

    def add(self, path: str, message: str) -> None:
        self.items.append((path, message))


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _check_json(value: Any, path: str, depth: int, problems: _Problems) -> bool:
    """Plain JSON that can be stored and run: no lone surrogates, finite numbers, bounded
    nesting and integers within 64 bits. Reports the first problem under `path`."""
    if depth > MAX_DEPTH:
        problems.add(path, f"nested more than {MAX_DEPTH} levels deep")
        return False
    if value is None or isinstance(value, bool):
        return True
    if isinstance(value, int):
        if abs(value) >= 2**63:
            problems.add(path, "number out of range (64-bit integers only)")
            return False
        return True
    if isinstance(value, float):
        if not math.isfinite(value):
            problems.add(path, "must be a finite number")
            return False
        return True
    if isinstance(value, str):
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            problems.add(path, "contains text that is not valid Unicode (a lone surrogate)")
            return False
        return True
    if isinstance(value, list | tuple):
        return all(_check_json(v, f"{path}[{i}]", depth + 1, problems)
                   for i, v in enumerate(value))
    if isinstance(value, Mapping):
        for key, item in value.items():
            if not isinstance(key, str):
                problems.add(path, f"keys must be strings, not {type(key).__name__}")
                return False
            if not _check_json(key, path, depth + 1, problems):
                return False
            if not _check_json(item, f"{path}.{key}" if path else key, depth + 1, problems):
                return False
        return True
    problems.add(path, f"is not a JSON value ({type(value).__name__})")
    return False


def _text(value: Any, path: str, problems: _Problems, *, what: str, required: bool,
          limit: int = MAX_NAME, controls: bool = False) -> str | None:
    if value is None:
        if required:
            problems.add(path, f"{what} is required")
        return None
    if not isinstance(value, str):
        problems.add(path, f"{what} must be a string")
        return None
    if required and not value.strip():
        problems.add(path, f"{what} must not be empty")
        return None
    if len(value) > limit:
        problems.add(path, f"{what} is longer than {limit} characters")
        return None
    if not controls and CONTROL.search(value):
        problems.add(path, f"{what} must not contain control characters")
        return None
    return value


def _duration(value: Any, path: str, problems: _Problems, *, positive: bool) -> int | None:
    try:
        ns = parse_go_duration_ns(value)
    except ValueError as exc:
        problems.add(path, str(exc))
        return None
    if ns < 0 or (positive and to_timedelta(ns).total_seconds() <= 0):
        problems.add(path, f"must be {'positive' if positive else 'zero or more'}, "
                           f"got {value!r}")
        return None
    return ns


def _config(raw: Any, problems: _Problems) -> tuple[int, str, int, dict[str, Any], int | None]:
    """(max_concurrency, timeout, timeout ns, retry_policy, explicit max_attempts)."""
    concurrency: int = DEFAULTS["max_concurrency"]
    timeout: str = DEFAULTS["timeout"]
    policy: dict[str, Any] = dict(DEFAULTS["retry_policy"])
    explicit_attempts: int | None = None
    if raw is None:
        return concurrency, timeout, parse_go_duration_ns(timeout), policy, None
    if not isinstance(raw, Mapping):
        problems.add("config", "must be an object")
        return concurrency, timeout, parse_go_duration_ns(timeout), policy, None
    for key in raw:
        if key not in DEFAULTS:
            problems.add(f"config.{key}", "unknown property")
    value = raw.get("max_concurrency")
    if value is not None:
        if not _is_int(value) or not 1 <= value <= MAX_CONCURRENCY:
            problems.add("config.max_concurrency",
                         f"must be an integer from 1 to {MAX_CONCURRENCY}")
        else:
            concurrency = value
    if raw.get("timeout") is not None:
        ns = _duration(raw["timeout"], "config.timeout", problems, positive=True)
        if ns is not None:
            timeout = raw["timeout"]
    timeout_ns = parse_go_duration_ns(timeout)
    retry = raw.get("retry_policy")
    if retry is not None and not isinstance(retry, Mapping):
        problems.add("config.retry_policy", "must be an object")
    elif isinstance(retry, Mapping):
        for key in retry:
            if key not in policy:
                problems.add(f"config.retry_policy.{key}", "unknown property")
        attempts = retry.get("max_attempts")
        if attempts is not None:
            if not _is_int(attempts) or not 0 <= attempts <= MAX_RETRIES:
                problems.add("config.retry_policy.max_attempts",
                             f"must be an integer from 0 to {MAX_RETRIES}")
            else:
                policy["max_attempts"] = explicit_attempts = attempts
        for key in ("initial_delay", "max_delay"):
            if retry.get(key) is not None and _duration(
                    retry[key], f"config.retry_policy.{key}", problems,
                    positive=False) is not None:
                policy[key] = retry[key]
        factor = retry.get("backoff_factor")
        if factor is not None:
            if isinstance(factor, bool) or not isinstance(factor, int | float) \
                    or not math.isfinite(factor) or not 1.0 <= factor <= MAX_BACKOFF:
                problems.add("config.retry_policy.backoff_factor",
                             f"must be a number from 1.0 to {MAX_BACKOFF:g}")
            else:
                policy["backoff_factor"] = float(factor)
        if parse_go_duration_ns(policy["max_delay"]) < parse_go_duration_ns(
                policy["initial_delay"]):
            problems.add("config.retry_policy.max_delay",
                         f"{policy['max_delay']!r} is shorter than initial_delay "
                         f"{policy['initial_delay']!r}")
    return concurrency, timeout, timeout_ns, policy, explicit_attempts


def _payload(task_type: str, payload: Mapping[str, Any], path: str, who: str,
             settings: FlowctlSettings, problems: _Problems) -> None:
    for where, message in payload_problems(task_type, payload, path, who):
        problems.add(where, message)
    if task_type == "ml_training" and "ml_training" not in settings.task_types:
        problems.add(path, f"{who}: no command is configured for ml_training tasks; add "
                           "[flowctl.task_types.ml_training] command = \"...\" to the "
                           "configuration")


def _task(raw: Any, index: int, default_retries: int, settings: FlowctlSettings,
          problems: _Problems) -> TaskSpec | None:
    path = f"tasks[{index}]"
    if not isinstance(raw, Mapping):
        problems.add(path, "a task must be an object with name and type")
        return None
    name = _text(raw.get("name"), f"{path}.name", problems, what="name", required=True)
    who = f"task '{name}'" if name else f"task #{index + 1}"
    for key in raw:
        if key not in READ_ONLY and key not in ("name", "type", "payload", "max_retries",
                                                "priority", "dependencies"):
            problems.add(f"{path}.{key}", f"{who}: unknown property")
    task_type = raw.get("type")
    if task_type is None:
        problems.add(f"{path}.type", f"{who}: type is required")
    elif not isinstance(task_type, str) or task_type not in TASK_TYPES:
        problems.add(f"{path}.type", f"{who} has unknown type {task_type!r} "
                                     f"(one of {', '.join(TASK_TYPES)})")
        task_type = None
    payload = raw.get("payload")
    if payload is None:
        payload = {}
    if not isinstance(payload, Mapping):
        problems.add(f"{path}.payload", f"{who}: payload must be an object")
        payload = {}
    elif task_type is not None:
        _payload(task_type, payload, f"{path}.payload", who, settings, problems)
    retries = raw.get("max_retries")
    if retries is None:
        retries = default_retries
    elif not _is_int(retries) or not 0 <= retries <= MAX_RETRIES:
        problems.add(f"{path}.max_retries", f"{who}: max_retries must be an integer from 0 "
                                            f"to {MAX_RETRIES}")
        retries = 0
    priority = raw.get("priority")
    if priority is None:
        priority = DEFAULT_PRIORITY
    elif not _is_int(priority) or abs(priority) > MAX_PRIORITY:
        problems.add(f"{path}.priority", f"{who}: priority must be an integer")
        priority = DEFAULT_PRIORITY
    deps = raw.get("dependencies")
    dependencies: list[str] = []
    if deps is not None:
        if not isinstance(deps, list) or not all(isinstance(d, str) for d in deps):
            problems.add(f"{path}.dependencies", f"{who}: dependencies must be a list of "
                                                 "task names")
        else:
            dependencies = list(dict.fromkeys(deps))
    if name is None or task_type is None:
        return None
    return TaskSpec(name=name, type=task_type, payload=dict(payload), max_retries=retries,
                    priority=priority, dependencies=dependencies)


def _graph(tasks: list[TaskSpec], problems: _Problems) -> None:
    positions: dict[str, int] = {}
    for i, task in enumerate(tasks):
        if task.name in positions:
            problems.add(f"tasks[{i}].name", f"duplicate task name '{task.name}' (also "
                                             f"tasks[{positions[task.name]}])")
        else:
            positions[task.name] = i
    graph: dict[str, list[str]] = {}
    for task in tasks:
        for dep in task.dependencies:
            if dep == task.name:
                problems.add(f"tasks[{positions[task.name]}].dependencies",
                             f"task '{task.name}' depends on itself")
            elif dep not in positions:
                problems.add(f"tasks[{positions[task.name]}].dependencies",
                             f"task '{task.name}' depends on unknown task '{dep}'")
        graph.setdefault(task.name, []).extend(
            d for d in task.dependencies if d in positions and d != task.name)
    try:
        graphlib.TopologicalSorter(graph).prepare()
    except graphlib.CycleError as exc:
        cycle = list(reversed(exc.args[1]))  # along "depends on"
        problems.add("tasks", "tasks form a dependency cycle: "
                              + " -> ".join(f"'{c}'" for c in cycle))


def parse_definition(definition: Any, settings: FlowctlSettings) -> WorkflowSpec:
    """Validate a submitted workflow; raises ValidationError naming every problem."""
    problems = _Problems()
    if not isinstance(definition, Mapping):
        raise ValidationError("a workflow must be a JSON object with name and tasks")
    if not _check_json(definition, "", 0, problems):
        raise ValidationError(problems.items)
    size = len(json.dumps(definition, ensure_ascii=False).encode("utf-8"))
    if size > MAX_DEFINITION_BYTES:
        raise ValidationError(f"the workflow is {size} bytes; at most "
                              f"{MAX_DEFINITION_BYTES} are accepted")
    for key in definition:
        if key not in READ_ONLY and key not in ("name", "description", "config", "tasks"):
            problems.add(key, "unknown property")
    name = _text(definition.get("name"), "name", problems, what="name", required=True)
    description = _text(definition.get("description"), "description", problems,
                        what="description", required=False, limit=MAX_DESCRIPTION,
                        controls=True)
    concurrency, timeout, timeout_ns, policy, attempts = _config(
        definition.get("config"), problems)
    default_retries = attempts if attempts is not None else DEFAULTS["retry_policy"][
        "max_attempts"]
    raw_tasks = definition.get("tasks")
    tasks: list[TaskSpec] = []
    if raw_tasks is None:
        problems.add("tasks", "at least one task is required")
    elif not isinstance(raw_tasks, list):
        problems.add("tasks", "must be a list of tasks")
    elif not raw_tasks:
        problems.add("tasks", "at least one task is required")
    elif len(raw_tasks) > MAX_TASKS:
        problems.add("tasks", f"at most {MAX_TASKS} tasks per workflow")
    else:
        parsed = [_task(raw, i, default_retries, settings, problems)
                  for i, raw in enumerate(raw_tasks)]
        if all(t is not None for t in parsed):
            tasks = [t for t in parsed if t is not None]
            _graph(tasks, problems)
    if problems.items:
        raise ValidationError(problems.items)
    assert name is not None
    return WorkflowSpec(name=name, description=description or "",
                        max_concurrency=concurrency, timeout=timeout, timeout_ns=timeout_ns,
                        retry_policy=policy, tasks=tasks)


# -- the flow -----------------------------------------------------------------------------------


def engine_task_ids(names: list[str]) -> list[str]:
    """Readable, unique engine task ids from task names (the wrapper's id is reserved)."""
    used = {WRAPPER_ID}
    out = []
    for name in names:
        base = re.sub(r"[^A-Za-z0-9_-]+", "_", name)
        base = re.sub(r"^[^A-Za-z0-9]+", "", base)[:60] or "task"
        candidate, n = base, 1
        while candidate in used:
            n += 1
            candidate = f"{base}-{n}"
        used.add(candidate)
        out.append(candidate)
    return out


def _iso(go: str) -> str:
    return format_duration(to_timedelta(parse_go_duration_ns(go)))


def flow_document(spec: WorkflowSpec, workflow_id: str, task_uids: list[str]) -> dict[str, Any]:
    ids = engine_task_ids([t.name for t in spec.tasks])
    by_name = {t.name: engine_id for t, engine_id in zip(spec.tasks, ids, strict=True)}
    policy = spec.retry_policy
    children: list[dict[str, Any]] = []
    for task, engine_id, uid in zip(spec.tasks, ids, task_uids, strict=True):
        child: dict[str, Any] = {"id": engine_id, "type": ENGINE_TYPES[task.type],
                                 "name": task.name, "uid": uid, "priority": task.priority}
        if task.dependencies:
            child["dependsOn"] = [by_name[d] for d in task.dependencies]
        if task.max_retries > 0:
            child["retry"] = {"type": "exponential",
                              "interval": _iso(policy["initial_delay"]),
                              "maxInterval": _iso(policy["max_delay"]),
                              "delayFactor": float(policy["backoff_factor"]),
                              "maxAttempts": task.max_retries + 1}
        child["payload"] = task.payload
        children.append(child)
    doc: dict[str, Any] = {"id": flow_id_for(workflow_id), "namespace": NAMESPACE}
    if spec.description:
        doc["description"] = spec.description
    doc["labels"] = {LABEL_ID: workflow_id, LABEL_NAME: spec.name}
    doc["tasks"] = [{"id": WRAPPER_ID, "type": WORKFLOW_TYPE,
                     "maxConcurrency": spec.max_concurrency,
                     "timeout": _iso(spec.timeout), "config": spec.config(),
                     "tasks": children}]
    return doc


#: libyaml's emitter when it is there (several times faster; it escapes what YAML readers
#: would take for a line break); PyYAML's otherwise.
_DUMPER: Any = getattr(yaml, "CSafeDumper", yaml.SafeDumper)
#: Characters PyYAML's own emitter writes as they are but its reader takes for line breaks.
_BREAKS = ("\x85", "\u2028", "\u2029")


def flow_source(spec: WorkflowSpec, workflow_id: str, task_uids: list[str]) -> str:
    """The flow's YAML (what the deck shows as its source); reads back to the same values."""
    doc = flow_document(spec, workflow_id, task_uids)
    readable = _DUMPER is not yaml.SafeDumper or not any(
        ch in json.dumps(doc, ensure_ascii=False) for ch in _BREAKS)
    return str(yaml.dump(doc, Dumper=_DUMPER, sort_keys=False, allow_unicode=readable,
                         width=100))
