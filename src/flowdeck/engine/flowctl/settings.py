"""The engine's FlowCtl settings, from `EngineSettings.extra["flowctl"]`.

`flowdeck.config.FlowctlConfig.engine_extra()` writes that mapping from the `[flowctl]`
section (and validates it with messages naming the key); here it is only read:

```
{"etl": {"locations": {"s3://bucket": "file:///srv/bucket"},   # prefix -> file/http/sqlite URL
         "max_bytes": 33554432, "max_rows": 200000},            # bounds of what a task reads
 "task_types": {"ml_training": {"command": "python3 train.py",  # run with /bin/sh -c
                                "environment": {"K": "V"}}},
 "webhooks": [{"url": "https://...", "events": ["workflow.completed"], "secret": "..."}]}
```
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from flowdeck.core.flowctl import WEBHOOK_EVENTS

DEFAULT_MAX_BYTES = 32 * 1024 * 1024
DEFAULT_MAX_ROWS = 200_000


@dataclass(frozen=True, slots=True)
class EtlSettings:
    #: (prefix, replacement) pairs, longest prefix first.
    locations: tuple[tuple[str, str], ...] = ()
    max_bytes: int = DEFAULT_MAX_BYTES
    max_rows: int = DEFAULT_MAX_ROWS


@dataclass(frozen=True, slots=True)
class CommandType:
    """A task type whose work is a configured command (`ml_training`)."""

    command: str
    environment: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class WebhookSettings:
    url: str
    events: frozenset[str] = frozenset(WEBHOOK_EVENTS)
    secret: str | None = None


@dataclass(frozen=True, slots=True)
class FlowctlSettings:
    etl: EtlSettings = field(default_factory=EtlSettings)
    task_types: dict[str, CommandType] = field(default_factory=dict)
    webhooks: tuple[WebhookSettings, ...] = ()

    @classmethod
    def from_extra(cls, extra: Any) -> FlowctlSettings:
        """Read the mapping; a wrong shape is a ValueError naming the key."""
        if extra is None:
            return cls()
        if not isinstance(extra, Mapping):
            raise ValueError("flowctl: must be a mapping")
        etl_raw = _mapping(extra.get("etl"), "flowctl.etl")
        locations = _mapping(etl_raw.get("locations"), "flowctl.etl.locations")
        pairs = sorted(((str(k), str(v)) for k, v in locations.items()),
                       key=lambda kv: len(kv[0]), reverse=True)
        etl = EtlSettings(
            locations=tuple(pairs),
            max_bytes=_positive(etl_raw.get("max_bytes"), DEFAULT_MAX_BYTES,
                                "flowctl.etl.max_bytes"),
            max_rows=_positive(etl_raw.get("max_rows"), DEFAULT_MAX_ROWS,
                               "flowctl.etl.max_rows"))
        types: dict[str, CommandType] = {}
        for name, raw in _mapping(extra.get("task_types"), "flowctl.task_types").items():
            where = f"flowctl.task_types.{name}"
            item = _mapping(raw, where)
            command = item.get("command")
            if not isinstance(command, str) or not command.strip():
                raise ValueError(f"{where}.command: must be a command line")
            env = _mapping(item.get("environment"), f"{where}.environment")
            types[str(name)] = CommandType(command, {str(k): str(v) for k, v in env.items()})
        hooks: list[WebhookSettings] = []
        raw_hooks = extra.get("webhooks") or []
        if not isinstance(raw_hooks, list | tuple):
            raise ValueError("flowctl.webhooks: must be a list")
        for i, raw in enumerate(raw_hooks):
            where = f"flowctl.webhooks[{i}]"
            item = _mapping(raw, where)
            url = item.get("url")
            if not isinstance(url, str) or not url:
                raise ValueError(f"{where}.url: is required")
            events = item.get("events")
            chosen = frozenset(WEBHOOK_EVENTS) if not events else frozenset(map(str, events))
            unknown = sorted(chosen - set(WEBHOOK_EVENTS))
            if unknown:
                raise ValueError(f"{where}.events: unknown event {unknown[0]!r}")
            secret = item.get("secret")
            hooks.append(WebhookSettings(url, chosen, str(secret) if secret else None))
        return cls(etl=etl, task_types=types, webhooks=tuple(hooks))


def _mapping(value: Any, where: str) -> Mapping[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise ValueError(f"{where}: must be a mapping")
    return value


def _positive(value: Any, default: int, where: str) -> int:
    if value is None:
        return default
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise ValueError(f"{where}: must be a positive integer")
    return value
