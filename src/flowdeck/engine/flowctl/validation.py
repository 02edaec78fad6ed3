"""What each FlowCtl task type needs in its payload, checked when a workflow (or any flow
using the task types) is created, so a missing command is refused then, not at run time.

Fields the spec lists as common for a type are checked when present; other fields pass
through (a payload may carry anything its command wants).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
Problems = list[tuple[str, str]]


def _no_nul(value: Any) -> bool:
    if isinstance(value, str):
        return "\x00" not in value
    if isinstance(value, list):
        return all(_no_nul(v) for v in value)
    if isinstance(value, Mapping):
        return all(_no_nul(k) and _no_nul(v) for k, v in value.items())
    return True


def _environment(value: Any, path: str, who: str, problems: Problems) -> None:
    if value is None:
        return
    if not isinstance(value, Mapping):
        problems.append((path, f"{who}: environment must be an object of variables"))
        return
    for key, item in value.items():
        if not isinstance(key, str) or not ENV_NAME.fullmatch(key):
            problems.append((f"{path}.{key}", f"{who}: {key!r} is not a variable name"))
        elif isinstance(item, Mapping | list) or item is None:
            problems.append((f"{path}.{key}", f"{who}: a variable's value must be a string, "
                                              "number or boolean"))


def _required_text(payload: Mapping[str, Any], key: str, path: str, who: str,
                   problems: Problems) -> None:
    value = payload.get(key)
    if not isinstance(value, str) or not value.strip():
        problems.append((f"{path}.{key}", f"{who}: payload.{key} is required (a string)"))


def payload_problems(task_type: str, payload: Mapping[str, Any], path: str,
                     who: str) -> Problems:
    """What is wrong with a `task_type` task's payload (empty: nothing)."""
    problems: Problems = []
    # What reaches a command line, an environment or a path cannot hold a NUL (ml_training
    # payloads travel as JSON, where it is escaped).
    if task_type != "ml_training" and not _no_nul(payload):
        return [(path, f"{who}: payload must not contain NUL characters")]
    if task_type == "generic":
        _required_text(payload, "command", path, who, problems)
        args = payload.get("args")
        if args is not None and (not isinstance(args, list) or any(
                isinstance(a, Mapping | list) or a is None for a in args)):
            problems.append((f"{path}.args", f"{who}: args must be a list of strings"))
        _environment(payload.get("environment"), f"{path}.environment", who, problems)
    elif task_type == "ci":
        _required_text(payload, "repo_url", path, who, problems)
        _required_text(payload, "command", path, who, problems)
        branch = payload.get("branch")
        if branch is not None and (not isinstance(branch, str) or not branch.strip()):
            problems.append((f"{path}.branch", f"{who}: branch must be a branch name"))
        env = payload.get("environment")
        if not isinstance(env, str):
            _environment(env, f"{path}.environment", who, problems)
    elif task_type == "etl":
        _required_text(payload, "source_url", path, who, problems)
        _required_text(payload, "target_url", path, who, problems)
        fmt = payload.get("format")
        if fmt is not None and fmt not in ("json", "csv"):
            problems.append((f"{path}.format",
                             f"{who}: format must be json or csv, not {fmt!r}"))
        how = payload.get("transformation")
        if how is not None and how not in ("normalize", "none"):
            problems.append((f"{path}.transformation", f"{who}: transformation must be "
                                                       f"normalize or none, not {how!r}"))
    return problems
