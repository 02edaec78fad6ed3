"""Staging environments: providers, the name guard, the bundled flows and their keys.

Configuration is `EngineSettings.extra["staging"]` (all optional):

```
{"provider": "local",                      # or "railway"
 "url_template": "http://{name}.staging.localhost",   # fields: name, id, client_name,
                                                       #   source_environment
 "root": "<data_dir>/staging",             # local: where environments live
 "sources": {"production": {}},            # local: source environments, created on first
                                           #   use; {"database": "/path.db"} copies that file
 "railway": {"token": ..., "project_id": ..., "endpoint": ..., "timeout": 30,
             "token_header": "bearer"}}    # railway: token and project also from
                                           #   RAILWAY_TOKEN / RAILWAY_PROJECT_ID
```

The three bundled flows (namespace `dev.deployment`) are triggered by webhooks whose keys are
`{{ envs.staging_clone_key }}`, `{{ envs.staging_list_key }}` and
`{{ envs.staging_delete_key }}`, i.e. the `ENV_STAGING_CLONE_KEY`, `ENV_STAGING_LIST_KEY` and
`ENV_STAGING_DELETE_KEY` environment variables. No key is bundled: while one is unset (or
blank) its webhook matches no key at all. `missing_staging_keys` names the ones to set.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Mapping
from pathlib import Path
from typing import Any

from flowdeck.core.staging import (
    CLONE_FLOW,
    DELETE_FLOW,
    LIST_FLOW,
    NAMESPACE,
    bundled_flow_sources,
    failure_reason,
    response_of,
    strip_failure,
)
from flowdeck.engine.staging.base import (
    DELETABLE_PATTERN,
    CloneRequest,
    EnvironmentExists,
    EnvironmentNotFound,
    InvalidEnvironmentName,
    ProviderAuthError,
    ProviderError,
    StagingEnvironment,
    StagingError,
    StagingProvider,
    check_client_name,
    check_deletable,
    check_new_name,
    check_source_name,
    generated_name,
    is_deletable,
    timestamp,
)

__all__ = [
    "CLONE_FLOW",
    "DELETABLE_PATTERN",
    "DELETE_FLOW",
    "FLOW_KEYS",
    "LIST_FLOW",
    "NAMESPACE",
    "CloneRequest",
    "EnvironmentExists",
    "EnvironmentNotFound",
    "InvalidEnvironmentName",
    "ProviderAuthError",
    "ProviderError",
    "StagingEnvironment",
    "StagingError",
    "StagingProvider",
    "bundled_flow_sources",
    "check_client_name",
    "check_deletable",
    "check_new_name",
    "check_source_name",
    "failure_reason",
    "generated_name",
    "is_deletable",
    "missing_staging_keys",
    "open_provider",
    "provider_for",
    "response_of",
    "staging_config",
    "strip_failure",
    "timestamp",
]

#: Each bundled flow's webhook key, as an `envs` name (`ENV_` + upper case in the environment).
FLOW_KEYS: dict[str, str] = {
    CLONE_FLOW: "staging_clone_key",
    LIST_FLOW: "staging_list_key",
    DELETE_FLOW: "staging_delete_key",
}
PROVIDERS = ("local", "railway")


def missing_staging_keys(envs: Mapping[str, str] | None) -> list[str]:
    """The environment variables to set before the staging webhooks accept anything, e.g.
    `["ENV_STAGING_CLONE_KEY", "ENV_STAGING_DELETE_KEY"]`; empty when all are set."""
    envs = envs or {}
    return [f"ENV_{name.upper()}" for name in FLOW_KEYS.values()
            if not str(envs.get(name) or "").strip()]


def staging_config(engine: Any) -> dict[str, Any]:
    extra = getattr(engine.settings, "extra", None) or {}
    config = extra.get("staging") or {}
    if not isinstance(config, Mapping):
        raise StagingError("the staging configuration must be a mapping")
    return dict(config)


def provider_for(engine: Any, environ: Mapping[str, str] | None = None) -> StagingProvider:
    """The configured provider over this engine's data directory, clock and ids."""
    config = staging_config(engine)
    kind = config.get("provider") or "local"
    clock = engine.clock.now
    new_id = engine.new_id
    url_template = config.get("url_template")
    if kind == "local":
        from flowdeck.engine.staging.local import DEFAULT_URL_TEMPLATE, LocalProvider

        root = Path(str(config.get("root") or Path(engine.data_dir) / "staging"))
        return LocalProvider(root, clock=clock, new_id=new_id,
                             url_template=str(url_template or DEFAULT_URL_TEMPLATE),
                             sources=config.get("sources"))
    if kind == "railway":
        from flowdeck.engine.staging.railway import RailwayProvider

        railway = config.get("railway") or {}
        if not isinstance(railway, Mapping):
            raise StagingError("the staging railway configuration must be a mapping")
        return RailwayProvider.from_config(railway, clock=clock, new_id=new_id,
                                           environ=environ, url_template=url_template)
    raise StagingError(f"unknown staging provider {kind!r} (one of {', '.join(PROVIDERS)})")


@contextlib.asynccontextmanager
async def open_provider(engine: Any) -> AsyncIterator[StagingProvider]:
    provider = provider_for(engine)
    try:
        yield provider
    finally:
        await provider.aclose()
