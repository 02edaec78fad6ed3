"""The forge's configuration: `EngineSettings.extra["forge"]` (`[forge]` in the config file).

```
{"oci_uri_template": "registry.example.com/{repository}/{project}:{commit_sha}",
 "gitops_path": "<data_dir>/gitops", "gitops_branch": "main",
 "deploy_flow": "namespace/flow_id",          # deployments wait for this flow's success
 "environments": ["dev", "staging", "production"],
 "approval_environments": ["production"],     # deployments there need a release approval
 "approval_ttl": "PT24H", "run_retention": "P90D", "retention_interval": "PT1H",
 "max_runs_per_repository": 100, "max_deployments_in_progress": 50,
 "webhooks": [{"url": ..., "events": ["release.created"], "secret": ...}]}
```
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

from flowdeck.core.errors import ValidationError
from flowdeck.core.forge import DEFAULT_ENVIRONMENTS
from flowdeck.core.timefmt import parse_duration

ENVIRONMENT = re.compile(r"[a-z0-9][a-z0-9_-]{0,62}")


@dataclass(frozen=True, slots=True)
class ForgeWebhook:
    url: str
    events: tuple[str, ...] = ()
    secret: str | None = None

    def wants(self, kind: str) -> bool:
        return not self.events or kind in self.events


@dataclass(frozen=True, slots=True)
class ForgeSettings:
    gitops_path: Path
    gitops_branch: str = "main"
    oci_uri_template: str | None = None
    deploy_flow: tuple[str, str] | None = None
    environments: tuple[str, ...] = DEFAULT_ENVIRONMENTS
    approval_environments: tuple[str, ...] = ("production",)
    approval_ttl: timedelta = timedelta(hours=24)
    run_retention: timedelta = timedelta(days=90)
    retention_interval: timedelta = timedelta(hours=1)
    max_runs_per_repository: int = 100
    max_deployments_in_progress: int = 50
    webhooks: tuple[ForgeWebhook, ...] = field(default_factory=tuple)

    @classmethod
    def from_extra(cls, extra: Mapping[str, Any] | None, data_dir: Path) -> ForgeSettings:
        """Read (and check) `extra["forge"]`; a bad value is a ValidationError naming it."""
        config = dict(extra or {})
        path = config.get("gitops_path")
        environments = tuple(config.get("environments") or DEFAULT_ENVIRONMENTS)
        for name in environments:
            if not isinstance(name, str) or ENVIRONMENT.fullmatch(name) is None:
                raise ValidationError([("forge.environments", f"{name!r} is not a valid "
                                        "environment name (lowercase letters, digits, - or _)")])
        gated = tuple(config.get("approval_environments") or ("production",))
        return cls(
            gitops_path=Path(str(path)).expanduser() if path else data_dir / "gitops",
            gitops_branch=str(config.get("gitops_branch") or "main"),
            oci_uri_template=config.get("oci_uri_template") or None,
            deploy_flow=_flow_ref(config.get("deploy_flow")),
            environments=environments,
            approval_environments=tuple(g for g in gated if g in environments),
            approval_ttl=_duration(config, "approval_ttl", timedelta(hours=24)),
            run_retention=_duration(config, "run_retention", timedelta(days=90)),
            retention_interval=_duration(config, "retention_interval", timedelta(hours=1)),
            max_runs_per_repository=int(config.get("max_runs_per_repository") or 100),
            max_deployments_in_progress=int(config.get("max_deployments_in_progress") or 50),
            webhooks=tuple(ForgeWebhook(url=str(w["url"]), events=tuple(w.get("events") or ()),
                                        secret=w.get("secret") or None)
                           for w in config.get("webhooks") or ()),
        )


def _duration(config: Mapping[str, Any], key: str, default: timedelta) -> timedelta:
    value = config.get(key)
    if value is None:
        return default
    if isinstance(value, timedelta):
        return value
    if isinstance(value, int | float) and not isinstance(value, bool):
        return timedelta(seconds=value)
    try:
        parsed = parse_duration(str(value))
    except ValueError as exc:
        raise ValidationError([(f"forge.{key}", str(exc))]) from None
    if parsed <= timedelta(0):
        raise ValidationError([(f"forge.{key}", "must be a positive duration")])
    return parsed


def _flow_ref(value: Any) -> tuple[str, str] | None:
    if not value:
        return None
    namespace, sep, flow_id = str(value).rpartition("/")
    if not sep or not namespace or not flow_id:
        raise ValidationError([("forge.deploy_flow", f"{value!r}: write it as namespace/flow_id")])
    return namespace, flow_id
