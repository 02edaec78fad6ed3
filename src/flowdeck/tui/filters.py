"""The `/` filter grammar of the executions list, parsed into an ExecutionFilter.

`state:FAILED,RUNNING  ns:prod  flow:nightly  label:team=ops  since:1h  anything else`
(short forms `s:`, `n:`, `f:`, `l:`); words that are not `key:value` search ids,
namespaces and flow ids. Durations: `30s`, `15m`, `2h`, `7d`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from flowdeck.client.backend import ExecutionFilter
from flowdeck.core.states import State

_DURATION = re.compile(r"^(\d+)([smhdw])$")
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
_KEYS = {"state": "state", "s": "state", "ns": "ns", "n": "ns", "namespace": "ns",
         "flow": "flow", "f": "flow", "label": "label", "l": "label", "since": "since",
         "t": "since"}


@dataclass(slots=True)
class FilterSpec:
    states: list[str] = field(default_factory=list)
    namespace: str | None = None
    flow: str | None = None
    labels: dict[str, str] = field(default_factory=dict)
    since: timedelta | None = None
    words: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)

    def to_filter(self, now: datetime, *, namespace: str | None = None) -> ExecutionFilter:
        return ExecutionFilter(
            namespace=self.namespace or namespace, flow_id=self.flow,
            states=list(self.states) or None, labels=dict(self.labels),
            since=now - self.since if self.since else None,
            q=" ".join(self.words) or None)


def parse_duration(text: str) -> timedelta | None:
    m = _DURATION.match(text.strip().lower())
    if not m:
        return None
    return timedelta(seconds=int(m.group(1)) * _UNITS[m.group(2)])


def parse_filter(text: str) -> FilterSpec:
    spec = FilterSpec()
    for token in text.split():
        key, sep, value = token.partition(":")
        kind = _KEYS.get(key.lower()) if sep else None
        if kind is None:
            spec.words.append(token)
            continue
        if not value:
            spec.problems.append(f"{key}: needs a value")
        elif kind == "state":
            for state in value.upper().split(","):
                if state in State.__members__:
                    spec.states.append(state)
                elif state:
                    spec.problems.append(f"state {state!r} is not an execution state")
        elif kind == "ns":
            spec.namespace = value
        elif kind == "flow":
            spec.flow = value
        elif kind == "label":
            k, eq, v = value.partition("=")
            if eq and k:
                spec.labels[k] = v
            else:
                spec.problems.append(f"label {value!r} must look like key=value")
        elif kind == "since":
            since = parse_duration(value)
            if since is None:
                spec.problems.append(f"since {value!r}: use e.g. 30s, 15m, 2h, 7d")
            else:
                spec.since = since
    return spec
