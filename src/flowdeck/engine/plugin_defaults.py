"""Kestra's `pluginDefaults` (formerly `taskDefaults`): values a flow gives every task of a type
(the full type, or a prefix of it such as `io.kestra.plugin.core`). A task's own value wins,
unless the default is `forced`; maps are merged member by member.

Applied to a copy of the flow's task lists before they are parsed: the source, and the flow
document written back, keep what was written.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

TASK_BLOCKS = ("tasks", "errors", "finally", "afterExecution")


@dataclass(frozen=True, slots=True)
class PluginDefault:
    type: str
    values: dict[str, Any]
    forced: bool = False

    def applies_to(self, task_type: str) -> bool:
        return task_type == self.type or task_type.startswith(self.type.rstrip(".") + ".")


def read_defaults(raw: Any, where: str, problems: list[tuple[str, str]]) -> list[PluginDefault]:
    if raw is None:
        return []
    if not isinstance(raw, list):
        problems.append((where, "must be a list of {type, values, forced}"))
        return []
    out = []
    for index, item in enumerate(raw):
        kind = item.get("type") if isinstance(item, dict) else None
        values = item.get("values", {}) if isinstance(item, dict) else None
        forced = item.get("forced", False) if isinstance(item, dict) else None
        if not isinstance(kind, str) or not kind or not isinstance(values, dict) \
                or not isinstance(forced, bool):
            problems.append((f"{where}[{index}]", "must be {type: <type or prefix>, values: "
                                                  "{...}, forced: true|false}"))
            continue
        out.append(PluginDefault(kind, values, forced))
    return out


def _merge(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in over.items():
        mine = out.get(key)
        out[key] = _merge(mine, value) if isinstance(mine, dict) and isinstance(value, dict) \
            else value
    return out


def _apply(value: Any, defaults: list[PluginDefault]) -> Any:
    if isinstance(value, list):
        return [_apply(item, defaults) for item in value]
    if not isinstance(value, dict):
        return value
    out = {key: _apply(item, defaults) for key, item in value.items()}
    kind = out.get("type")
    if isinstance(kind, str) and "id" in out:
        for default in defaults:
            if default.applies_to(kind):
                out = _merge(out, default.values) if default.forced \
                    else _merge(default.values, out)
    return out


def with_defaults(raw: dict[str, Any], defaults: list[PluginDefault]) -> dict[str, Any]:
    """The flow's task blocks with the defaults applied (the rest as it is)."""
    if not defaults:
        return raw
    return {key: _apply(value, defaults) if key in TASK_BLOCKS else value
            for key, value in raw.items()}
