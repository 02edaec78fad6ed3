"""Configuration: a TOML file, `FLOWDECK_*` environment variables, then command-line flags.

Lookup order for the file: `--config`, `$FLOWDECK_CONFIG`, `config.toml` in the user config
dir (platformdirs), else defaults. `FLOWDECK_ENGINE__MAX_CONCURRENT_EXECUTIONS=8` overrides a
nested key. A bad file is reported with its path, the key and the problem.
"""

from __future__ import annotations

import ipaddress
import os
import re
import string
import tomllib
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any, Literal

import platformdirs
from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    PrivateAttr,
    field_validator,
    model_validator,
)
from pydantic import ValidationError as PydanticValidationError
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

from flowdeck.core.errors import FlowdeckError
from flowdeck.core.flowctl import WEBHOOK_EVENTS
from flowdeck.core.forge import DEFAULT_ENVIRONMENTS, EVENT_KINDS
from flowdeck.core.timefmt import parse_duration

APP = "flowdeck"


def _http_url(value: str) -> str:
    if not re.match(r"https?://[^\s/]+", value):
        raise ValueError("must be an http:// or https:// URL")
    return value


#: A setting that names an http(s) URL (a server, a webhook target, a Railway endpoint).
HttpUrl = Annotated[str, AfterValidator(_http_url)]


class ConfigError(FlowdeckError):
    """A configuration file or variable that cannot be used."""


class EngineConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")
    max_concurrent_executions: int = Field(default=5, ge=1, le=10_000)
    reader_connections: int = Field(default=2, ge=1, le=32)
    scheduler: bool = True


#: What `flowdeck passwd` prints: argon2id with its parameters, salt and hash in PHC form.
ARGON2ID_HASH = re.compile(r"\$argon2id\$v=\d+\$m=\d+,t=\d+,p=\d+\$[A-Za-z0-9+/]+\$[A-Za-z0-9+/]+")


class ServerConfig(BaseModel):
    """`flowdeck serve`: where it listens and the HTTP Basic user (Kestra style).

    Without credentials (and without API tokens) the API is only served on loopback.
    """

    model_config = ConfigDict(extra="forbid")
    host: str = Field(default="127.0.0.1", min_length=1)
    port: int = Field(default=8080, ge=0, le=65535)
    basic_username: str | None = Field(default=None, min_length=1, max_length=320)
    #: An argon2id hash from `flowdeck passwd`; never the password itself.
    basic_password_hash: str | None = None
    #: Reverse proxies (addresses or networks) whose X-Forwarded-For names the client.
    trusted_proxies: list[str] = Field(default_factory=list)

    @field_validator("trusted_proxies")
    @classmethod
    def _networks(cls, value: list[str]) -> list[str]:
        for item in value:
            try:
                ipaddress.ip_network(item.strip(), strict=False)
            except ValueError:
                raise ValueError(f"'{item}' is not an IP address or network (e.g. 10.0.0.1 "
                                 "or 10.0.0.0/8)") from None
        return [item.strip() for item in value]

    @model_validator(mode="before")
    @classmethod
    def _no_plain_passwords(cls, data: Any) -> Any:
        if isinstance(data, dict):
            for key in ("basic_password", "password"):
                if key in data:
                    raise ValueError(
                        f"'{key}' is not accepted: store a hash instead; run `flowdeck "
                        "passwd` and put its output in basic_password_hash")
        return data

    @field_validator("basic_password_hash")
    @classmethod
    def _argon2id(cls, value: str | None) -> str | None:
        # The message never repeats the value: it may be a password pasted by mistake.
        if value is not None and ARGON2ID_HASH.fullmatch(value.strip()) is None:
            raise ValueError("must be an argon2id hash made by `flowdeck passwd` "
                             "(starting with $argon2id$), never the password itself")
        return value.strip() if value is not None else None

    @model_validator(mode="after")
    def _both_or_neither(self) -> ServerConfig:
        if (self.basic_username is None) != (self.basic_password_hash is None):
            raise ValueError("basic_username and basic_password_hash go together: "
                             "set both or neither")
        return self


class TuiConfig(BaseModel):
    """The deck (`flowdeck` with no command)."""

    model_config = ConfigDict(extra="forbid")
    theme: str = Field(default="flowdeck-dark", min_length=1)
    #: Seconds between polite re-reads of the visible list (live events come in between).
    refresh: float = Field(default=5.0, ge=0.5, le=3600)
    read_only: bool = False
    #: Ring the terminal bell on a new approval or a failed run.
    bell: bool = False
    max_log_lines: int = Field(default=10_000, ge=100, le=1_000_000)
    #: Key overrides by action id, e.g. {kill = "ctrl+x"} (ids: press ? in the deck).
    keys: dict[str, str] = Field(default_factory=dict)


class DeckConfig(BaseModel):
    """`[deck]`: how the deck guards state changes."""

    model_config = ConfigDict(extra="forbid")
    #: Ask before restart, replay, kill, a decision, a bulk action and quitting with runs in
    #: progress (each dialog names the items and defaults to No). false: act at once.
    confirm: bool = True


#: Profile keys that would hold a secret inline: refused, use `<key>_env` or `<key>_file`.
INLINE_SECRETS = ("password", "token")
#: `owner/name/project`, as `[profiles.NAME.forge] projects` lists them.
FORGE_PROJECT = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,99}/[A-Za-z0-9][A-Za-z0-9._-]{0,99}/"
                           r"[A-Za-z0-9][A-Za-z0-9._-]{0,99}", re.ASCII)


class ProfileForgeConfig(BaseModel):
    """`[profiles.NAME.forge]`: the profile's releases come from a Forge server of their own
    (the forge API, spec 002) instead of the profile's backend, with its own Bearer token
    (`token_env` or `token_file`, never inline). `projects` (`owner/name/project`) and
    `environments` say what to show when that server has no projects overview."""

    model_config = ConfigDict(extra="forbid")
    url: HttpUrl = Field(min_length=1)
    token_env: str | None = Field(default=None, min_length=1)
    token_file: str | None = Field(default=None, min_length=1)
    timeout: float | None = Field(default=None, gt=0, le=3600)
    projects: list[str] = Field(default_factory=list)
    environments: list[str] = Field(default_factory=lambda: list(DEFAULT_ENVIRONMENTS))
    approval_environments: list[str] = Field(default_factory=lambda: ["production"])

    @model_validator(mode="before")
    @classmethod
    def _no_inline_token(cls, data: Any) -> Any:
        if isinstance(data, dict) and "token" in data:
            raise ValueError("'token' is not accepted inline: put it in an environment "
                             "variable named by token_env, or in a file named by token_file")
        return data

    @field_validator("projects")
    @classmethod
    def _project_names(cls, value: list[str]) -> list[str]:
        for name in value:
            if FORGE_PROJECT.fullmatch(name) is None:
                raise ValueError(f"{name!r}: write owner/name/project")
        return value

    @model_validator(mode="after")
    def _one_token(self) -> ProfileForgeConfig:
        if self.token_env and self.token_file:
            raise ValueError("give token_env or token_file, not both")
        return self


class ProfileConfig(BaseModel):
    """`[profiles.NAME]`: a backend the deck can open (`flowdeck --profile NAME`, `:profile`).

    `kind = "embedded"` runs the engine in-process (on `data_dir`, default the top-level one);
    `kind = "remote"` talks to a server (`flowdeck serve` or Kestra) at `url`. Secrets are
    never inline: `password_env`/`token_env` name an environment variable,
    `password_file`/`token_file` a file holding only the secret. The keys are the ones
    `flowdeck.client.factory.make_backend` reads.
    """

    model_config = ConfigDict(extra="forbid")
    kind: Literal["embedded", "remote"] = "remote"
    url: str | None = Field(default=None, min_length=1)
    username: str | None = Field(default=None, min_length=1)
    username_env: str | None = Field(default=None, min_length=1)
    password_env: str | None = Field(default=None, min_length=1)
    password_file: str | None = Field(default=None, min_length=1)
    token_env: str | None = Field(default=None, min_length=1)
    token_file: str | None = Field(default=None, min_length=1)
    timeout: float | None = Field(default=None, gt=0, le=3600)
    poll_interval: float | None = Field(default=None, gt=0, le=3600)
    data_dir: str | None = Field(default=None, min_length=1)
    max_concurrent_executions: int | None = Field(default=None, ge=1, le=10_000)
    scheduler: bool | None = None
    read_only: bool | None = None
    theme: str | None = Field(default=None, min_length=1)
    #: Releases from a Forge server of their own (`[profiles.NAME.forge]`).
    forge: ProfileForgeConfig | None = None

    @model_validator(mode="before")
    @classmethod
    def _no_inline_secrets(cls, data: Any) -> Any:
        if isinstance(data, dict):
            for key in INLINE_SECRETS:
                if key in data:
                    # The message never repeats the value.
                    raise ValueError(f"'{key}' is not accepted inline: put it in an "
                                     f"environment variable named by {key}_env, or in a file "
                                     f"named by {key}_file")
        return data

    @model_validator(mode="after")
    def _kind_fits(self) -> ProfileConfig:
        if self.kind == "remote" and not self.url:
            raise ValueError("a remote profile needs url (e.g. http://127.0.0.1:8080)")
        if self.kind == "embedded":
            remote_only = [k for k in ("url", "username", "username_env", "password_env",
                                       "password_file", "token_env", "token_file", "timeout",
                                       "poll_interval") if getattr(self, k) is not None]
            if remote_only:
                raise ValueError(f"{remote_only[0]} is for remote profiles; this one is "
                                 "kind = \"embedded\"")
        for key in ("password", "token"):
            if getattr(self, f"{key}_env") and getattr(self, f"{key}_file"):
                raise ValueError(f"give {key}_env or {key}_file, not both")
        has_password = bool(self.password_env or self.password_file)
        has_token = bool(self.token_env or self.token_file)
        if has_token and (has_password or self.username or self.username_env):
            raise ValueError("give a token (token_env/token_file) or a username and password, "
                             "not both")
        if has_password != bool(self.username or self.username_env):
            raise ValueError("username (or username_env) and password_env/password_file "
                             "go together")
        return self

    def backend_options(self) -> dict[str, Any]:
        """The profile as `make_backend(profile=...)` takes it (unset keys left out)."""
        return self.model_dump(exclude_none=True, exclude={"forge"})


#: The staging providers (`flowdeck.engine.staging`).
STAGING_PROVIDERS = ("local", "railway")
#: Fields a staging `url_template` may use.
STAGING_URL_FIELDS = frozenset({"name", "id", "client_name", "source_environment"})
#: A source environment's name (as the local provider accepts it).
STAGING_SOURCE_NAME = re.compile(r"[a-z0-9][a-z0-9-]{0,70}", re.ASCII)
#: An environment variable's name.
ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


class StagingSourceConfig(BaseModel):
    """`[staging.sources.NAME]`: a source environment of the local provider."""

    model_config = ConfigDict(extra="forbid")
    #: A SQLite database file to copy when cloning this source (default: a seeded one).
    database: str | None = Field(default=None, min_length=1)


class RailwayConfig(BaseModel):
    """`[staging.railway]`: Railway's API. The token is never in the file: it comes from
    `RAILWAY_TOKEN` (or `RAILWAY_API_TOKEN`), from the variable `token_env` names, or from
    the file `token_file` names."""

    model_config = ConfigDict(extra="forbid")
    project_id: str | None = Field(default=None, min_length=1)
    endpoint: HttpUrl | None = Field(default=None, min_length=1)
    timeout: float = Field(default=30.0, gt=0, le=3600)
    #: "bearer" (an account or workspace token) or "project" (a project token).
    token_header: Literal["bearer", "project"] = "bearer"
    token_env: str | None = Field(default=None, min_length=1)
    token_file: str | None = Field(default=None, min_length=1)

    @model_validator(mode="before")
    @classmethod
    def _no_inline_token(cls, data: Any) -> Any:
        if isinstance(data, dict):
            for key in ("token", "api_token"):
                if key in data:  # the message never repeats the value
                    raise ValueError(f"'{key}' is not accepted inline: set RAILWAY_TOKEN, or "
                                     "name a variable with token_env or a file with "
                                     "token_file")
        return data

    @field_validator("token_env")
    @classmethod
    def _env_name(cls, value: str | None) -> str | None:
        if value is not None and ENV_NAME.fullmatch(value) is None:
            raise ValueError("must be the name of an environment variable, e.g. RAILWAY_TOKEN")
        return value

    @model_validator(mode="after")
    def _one_token_source(self) -> RailwayConfig:
        if self.token_env and self.token_file:
            raise ValueError("give token_env or token_file, not both")
        return self

    def resolved_token(self) -> str | None:
        """The token from `token_env`/`token_file`; None leaves it to RAILWAY_TOKEN. A named
        variable that is unset or a file that cannot be read is a ValueError saying which."""
        if self.token_env:
            value = os.environ.get(self.token_env)
            if not value:
                raise ValueError(f"token_env: environment variable {self.token_env} is not set")
            return value
        if self.token_file:
            path = Path(self.token_file).expanduser()
            try:
                value = path.read_text(encoding="utf-8").strip()
            except OSError as exc:
                raise ValueError(f"token_file: cannot read {path}: "
                                 f"{exc.strerror or exc}") from None
            except UnicodeDecodeError:
                raise ValueError(f"token_file: {path} is not UTF-8 text") from None
            if not value:
                raise ValueError(f"token_file: {path} is empty")
            return value
        return None


class StagingConfig(BaseModel):
    """`[staging]`: where `flowdeck staging clone|list|delete` (and the staging webhooks, the
    deck's staging screen) make environments. Mapped onto `EngineSettings.extra["staging"]`."""

    model_config = ConfigDict(extra="forbid")
    provider: Literal["local", "railway"] = "local"
    #: The URL an environment is reached at; fields {name}, {id}, {client_name},
    #: {source_environment}. Default: the provider's own.
    url_template: str | None = Field(default=None, min_length=1)
    #: local: the directory environments live in (default: <data_dir>/staging).
    root: str | None = Field(default=None, min_length=1)
    #: local: the source environments (default: production, with a small seeded database).
    sources: dict[str, StagingSourceConfig] | None = None
    railway: RailwayConfig = Field(default_factory=RailwayConfig)

    @field_validator("url_template")
    @classmethod
    def _url_fields(cls, value: str | None) -> str | None:
        if value is None:
            return None
        try:
            fields = [f for _, f, _, _ in string.Formatter().parse(value) if f is not None]
        except ValueError as exc:
            raise ValueError(f"not a valid template: {exc}") from None
        for name in fields:
            if name not in STAGING_URL_FIELDS:
                allowed = ", ".join("{" + f + "}" for f in sorted(STAGING_URL_FIELDS))
                raise ValueError(f"unknown field {{{name}}} (use {allowed})")
        return value

    @field_validator("sources")
    @classmethod
    def _source_names(cls, value: dict[str, StagingSourceConfig] | None
                      ) -> dict[str, StagingSourceConfig] | None:
        for name in value or {}:
            if STAGING_SOURCE_NAME.fullmatch(name) is None:
                raise ValueError(f"source name {name!r}: use lowercase letters, digits and "
                                 "'-', starting with a letter or digit")
        if value is not None and not value:
            raise ValueError("at least one source environment (e.g. [staging.sources."
                             "production])")
        return value

    def engine_extra(self) -> dict[str, Any]:
        """The engine's `extra["staging"]` (`flowdeck.engine.staging`); the Railway token is
        read here from `token_env`/`token_file` (a ValueError names the key)."""
        out: dict[str, Any] = {"provider": self.provider}
        if self.url_template is not None:
            out["url_template"] = self.url_template
        if self.root is not None:
            out["root"] = str(Path(self.root).expanduser())
        if self.sources is not None:
            out["sources"] = {name: source.model_dump(exclude_none=True)
                              for name, source in self.sources.items()}
        if self.provider == "railway":
            railway: dict[str, Any] = {"timeout": self.railway.timeout,
                                       "token_header": self.railway.token_header}
            if self.railway.project_id is not None:
                railway["project_id"] = self.railway.project_id
            if self.railway.endpoint is not None:
                railway["endpoint"] = self.railway.endpoint
            token = self.railway.resolved_token()
            if token is not None:
                railway["token"] = token
            out["railway"] = railway
        return out


class WebhooksConfig(BaseModel):
    """`[webhooks]`: outgoing webhook deliveries (every API that emits events). Mapped onto
    `EngineSettings.extra["webhooks"]`."""

    model_config = ConfigDict(extra="forbid")

    #: Allow targets on private, loopback and link-local addresses (refused by default, so a
    #: webhook URL cannot reach services inside the network flowdeck runs in).
    allow_private_targets: bool = False

    def engine_extra(self) -> dict[str, Any]:
        return {"allow_private_targets": self.allow_private_targets}


#: A flow namespace (as flows accept it).
NAMESPACE_NAME = re.compile(r"[a-z0-9][a-z0-9._-]{0,199}", re.ASCII | re.IGNORECASE)


class PublicDeliveryConfig(BaseModel):
    """`[public.delivery]`: where agents deliver the messages a reviewer approved. Without
    `url` they go to flowdeck's local message outbox (listed by the deck and CLI)."""

    model_config = ConfigDict(extra="forbid")
    url: str | None = Field(default=None, min_length=1, max_length=2000)
    #: The environment variable holding the endpoint's Bearer token (never the token itself).
    token_env: str | None = Field(default=None, min_length=1)
    timeout: float = Field(default=10.0, gt=0, le=300)

    @model_validator(mode="before")
    @classmethod
    def _no_inline_token(cls, data: Any) -> Any:
        if isinstance(data, dict):
            for key in ("token", "api_token"):
                if key in data:  # the message never repeats the value
                    raise ValueError(f"'{key}' is not accepted inline: put it in an "
                                     "environment variable and name it with token_env")
        return data

    @field_validator("url")
    @classmethod
    def _http_url(cls, value: str | None) -> str | None:
        if value is not None and not re.fullmatch(r"https?://[^\s/?#]+[^\s]*", value):
            raise ValueError("must be an http:// or https:// URL")
        return value

    @field_validator("token_env")
    @classmethod
    def _env_name(cls, value: str | None) -> str | None:
        if value is not None and ENV_NAME.fullmatch(value) is None:
            raise ValueError("must be the name of an environment variable, e.g. "
                             "FLOWDECK_DELIVERY_TOKEN")
        return value


class PublicConfig(BaseModel):
    """`[public]`: the public agent API. Agents are the flows of `namespace`. Mapped onto
    `EngineSettings.extra["public"]`."""

    model_config = ConfigDict(extra="forbid")
    namespace: str = "agents"
    delivery: PublicDeliveryConfig = Field(default_factory=PublicDeliveryConfig)

    @field_validator("namespace")
    @classmethod
    def _namespace(cls, value: str) -> str:
        if NAMESPACE_NAME.fullmatch(value) is None:
            raise ValueError("must be a flow namespace (letters, digits, '.', '_', '-')")
        return value

    def engine_extra(self) -> dict[str, Any]:
        delivery: dict[str, Any] = {"timeout": self.delivery.timeout}
        if self.delivery.url is not None:
            delivery["url"] = self.delivery.url
        if self.delivery.token_env is not None:
            delivery["token_env"] = self.delivery.token_env
        return {"namespace": self.namespace, "delivery": delivery}


#: Fields a forge `oci_uri_template` may use.
FORGE_OCI_FIELDS = frozenset({"repository", "owner", "name", "project", "commit_sha",
                              "release_number", "tag"})
FORGE_ENVIRONMENT = re.compile(r"[a-z0-9][a-z0-9_-]{0,62}", re.ASCII)


class ForgeWebhookConfig(BaseModel):
    """`[[forge.webhooks]]`: where forge events are delivered (signed when a secret is set)."""

    model_config = ConfigDict(extra="forbid")
    url: HttpUrl = Field(min_length=1)
    #: Event types to send (empty: every forge event).
    events: list[str] = Field(default_factory=list)
    secret: str | None = Field(default=None, min_length=1)
    #: The name of an environment variable holding the secret (instead of `secret`).
    secret_env: str | None = Field(default=None, min_length=1)

    @field_validator("events")
    @classmethod
    def _known_events(cls, value: list[str]) -> list[str]:
        for kind in value:
            if kind not in EVENT_KINDS:
                raise ValueError(f"unknown event {kind!r} (one of {', '.join(EVENT_KINDS)})")
        return value

    @model_validator(mode="after")
    def _one_secret(self) -> ForgeWebhookConfig:
        if self.secret and self.secret_env:
            raise ValueError("give secret or secret_env, not both")
        return self

    def resolved(self) -> dict[str, Any]:
        secret = self.secret
        if self.secret_env:
            secret = os.environ.get(self.secret_env)
            if not secret:
                raise ValueError(f"secret_env: environment variable {self.secret_env} is not set")
        return {"url": self.url, "events": list(self.events), "secret": secret}


class ForgeConfig(BaseModel):
    """`[forge]`: pipeline runs, releases, deployments and release approvals. Mapped onto
    `EngineSettings.extra["forge"]`."""

    model_config = ConfigDict(extra="forbid")
    #: The GitOps repository deployments commit to (default: <data_dir>/gitops, bare).
    gitops_path: str | None = Field(default=None, min_length=1)
    gitops_branch: str = Field(default="main", pattern=r"^[A-Za-z0-9][A-Za-z0-9._/-]{0,99}$")
    #: A release's oci_uri; fields {repository}, {owner}, {name}, {project}, {commit_sha},
    #: {release_number}, {tag}. Default: the first container artifact's URI.
    oci_uri_template: str | None = Field(default=None, min_length=1)
    #: "namespace/flow_id": deployments stay pending until this flow's execution succeeds.
    deploy_flow: str | None = Field(default=None, pattern=r"^[A-Za-z0-9._-]+/[A-Za-z0-9._-]+$")
    environments: list[str] = Field(default_factory=lambda: list(DEFAULT_ENVIRONMENTS))
    #: Environments whose deployments need a release approval.
    approval_environments: list[str] = Field(default_factory=lambda: ["production"])
    approval_ttl: str = "PT24H"
    run_retention: str = "P90D"
    retention_interval: str = "PT1H"
    max_runs_per_repository: int = Field(default=100, ge=1, le=10_000)
    max_deployments_in_progress: int = Field(default=50, ge=1, le=10_000)
    webhooks: list[ForgeWebhookConfig] = Field(default_factory=list)

    @field_validator("oci_uri_template")
    @classmethod
    def _oci_fields(cls, value: str | None) -> str | None:
        if value is None:
            return None
        try:
            fields = [f for _, f, _, _ in string.Formatter().parse(value) if f is not None]
        except ValueError as exc:
            raise ValueError(f"not a valid template: {exc}") from None
        for name in fields:
            if name not in FORGE_OCI_FIELDS:
                allowed = ", ".join("{" + f + "}" for f in sorted(FORGE_OCI_FIELDS))
                raise ValueError(f"unknown field {{{name}}} (use {allowed})")
        return value

    @field_validator("environments")
    @classmethod
    def _environment_names(cls, value: list[str]) -> list[str]:
        if not value:
            raise ValueError("at least one environment")
        for name in value:
            if FORGE_ENVIRONMENT.fullmatch(name) is None:
                raise ValueError(f"{name!r}: lowercase letters, digits, '-' or '_'")
        return value

    @field_validator("approval_ttl", "run_retention", "retention_interval")
    @classmethod
    def _duration(cls, value: str) -> str:
        try:
            parsed = parse_duration(value)
        except ValueError as exc:
            raise ValueError(str(exc)) from None
        if parsed.total_seconds() <= 0:
            raise ValueError("must be a positive duration")
        return value

    @model_validator(mode="after")
    def _gated_exist(self) -> ForgeConfig:
        for name in self.approval_environments:
            if name not in self.environments:
                raise ValueError(f"approval_environments: {name!r} is not one of environments")
        return self

    def engine_extra(self) -> dict[str, Any]:
        """The engine's `extra["forge"]` (`flowdeck.engine.forge.settings`); webhook secrets
        named by `secret_env` are read here (a ValueError names the variable)."""
        out = self.model_dump(exclude_none=True, exclude={"webhooks"})
        if self.gitops_path is not None:
            out["gitops_path"] = str(Path(self.gitops_path).expanduser())
        out["webhooks"] = [hook.resolved() for hook in self.webhooks]
        return out



class TasksConfig(BaseModel):
    """`[tasks]`: how task processes run. Mapped onto `EngineSettings.tasks`."""

    model_config = ConfigDict(extra="forbid")
    #: Variables of flowdeck's environment handed to shell tasks as they are (e.g.
    #: HTTP_PROXY); the rest of it (FLOWDECK_*, ENV_*, credentials) is not.
    env_passthrough: list[str] = Field(default_factory=list)
    #: ENV_* variables flows may read as {{ envs.name }} (ENV_REGION is envs.region); a
    #: trailing * matches a prefix (ENV_PUBLIC_*). The others stay private to flowdeck (the
    #: staging webhook keys, for instance).
    public_envs: list[str] = Field(default_factory=list)
    #: The user shell tasks run as (flowdeck must run as root): that user cannot read or
    #: write the database. Unset while flowdeck runs as root: a warning at start and in /health.
    run_as: str | None = Field(default=None, min_length=1, max_length=64)

    @field_validator("env_passthrough")
    @classmethod
    def _variable_names(cls, value: list[str]) -> list[str]:
        for name in value:
            if ENV_NAME.fullmatch(name) is None:
                raise ValueError(f"{name!r} is not the name of an environment variable")
        return value

    @field_validator("public_envs")
    @classmethod
    def _env_names(cls, value: list[str]) -> list[str]:
        for name in value:
            if re.fullmatch(r"ENV_[A-Za-z0-9_]*\*?", name) is None:
                raise ValueError(f"{name!r} must be an ENV_* variable name (a trailing * "
                                 "matches a prefix: ENV_PUBLIC_*)")
        return value


#: What `[flowctl.etl] locations` may map a prefix onto.
FLOWCTL_LOCATION_TARGET = re.compile(r"(file:///|sqlite:///|https?://)\S*", re.ASCII)
FLOWCTL_LOCATION_PREFIX = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*://\S*", re.ASCII)
#: Task types whose work is a configured command.
FLOWCTL_COMMAND_TYPES = ("ml_training",)


class FlowctlEtlConfig(BaseModel):
    """`[flowctl.etl]`: where `etl` tasks read and write, and how much they may read."""

    model_config = ConfigDict(extra="forbid")
    #: URL prefix -> file:///, sqlite:/// or http(s):// URL, e.g. {"s3://bucket" =
    #: "file:///srv/bucket"}; a sqlite:///PATH target without #TABLE takes the rest of the
    #: URL as the table ("postgres://db" = "sqlite:///srv/db.sqlite").
    locations: dict[str, str] = Field(default_factory=dict)
    max_bytes: int = Field(default=32 * 1024 * 1024, ge=1, le=1 << 40)
    max_rows: int = Field(default=200_000, ge=1, le=100_000_000)

    @field_validator("locations")
    @classmethod
    def _urls(cls, value: dict[str, str]) -> dict[str, str]:
        for prefix, target in value.items():
            if FLOWCTL_LOCATION_PREFIX.fullmatch(prefix) is None:
                raise ValueError(f"{prefix!r}: a location is a URL prefix such as "
                                 "\"s3://bucket\"")
            if FLOWCTL_LOCATION_TARGET.fullmatch(target) is None:
                raise ValueError(f"{prefix!r}: map it onto a file:///, sqlite:///, http:// or "
                                 "https:// URL")
        return value


class FlowctlCommandTypeConfig(BaseModel):
    """`[flowctl.task_types.ml_training]`: the command an `ml_training` task runs (with
    /bin/sh -c), the payload as JSON on its stdin and in FLOWCTL_PAYLOAD."""

    model_config = ConfigDict(extra="forbid")
    command: str = Field(min_length=1)
    environment: dict[str, str] = Field(default_factory=dict)

    @field_validator("environment")
    @classmethod
    def _names(cls, value: dict[str, str]) -> dict[str, str]:
        for name in value:
            if ENV_NAME.fullmatch(name) is None:
                raise ValueError(f"{name!r} is not an environment variable name")
        return value


class FlowctlWebhookConfig(BaseModel):
    """`[[flowctl.webhooks]]`: a target for FlowCtl events (all of them unless `events`
    lists some), signed with `secret` (or the secret in the variable `secret_env` names)."""

    model_config = ConfigDict(extra="forbid")
    url: HttpUrl
    events: list[str] | None = None
    secret: str | None = Field(default=None, min_length=1)
    secret_env: str | None = Field(default=None, min_length=1)

    @field_validator("events")
    @classmethod
    def _known(cls, value: list[str] | None) -> list[str] | None:
        if value is not None and not value:
            raise ValueError("list at least one event, or leave events out for all of them")
        for event in value or []:
            if event not in WEBHOOK_EVENTS:
                raise ValueError(f"unknown event {event!r} (one of {', '.join(WEBHOOK_EVENTS)})")
        return value

    @field_validator("secret_env")
    @classmethod
    def _env_name(cls, value: str | None) -> str | None:
        if value is not None and ENV_NAME.fullmatch(value) is None:
            raise ValueError("must be the name of an environment variable")
        return value

    @model_validator(mode="after")
    def _one_secret(self) -> FlowctlWebhookConfig:
        if self.secret and self.secret_env:
            raise ValueError("give secret or secret_env, not both")
        return self

    def resolved_secret(self) -> str | None:
        if self.secret_env:
            value = os.environ.get(self.secret_env)
            if not value:
                raise ValueError(f"secret_env: environment variable {self.secret_env} is not "
                                 "set")
            return value
        return self.secret


class FlowctlConfig(BaseModel):
    """`[flowctl]`: FlowCtl workflows (the `/api/v1/workflows` API). Mapped onto
    `EngineSettings.extra["flowctl"]` (`flowdeck.engine.flowctl.settings`)."""

    model_config = ConfigDict(extra="forbid")
    #: Requests per minute per client address on the FlowCtl HTTP routes (the spec's 100).
    rate_limit_per_minute: int = Field(default=100, ge=1, le=1_000_000)
    etl: FlowctlEtlConfig = Field(default_factory=FlowctlEtlConfig)
    task_types: dict[str, FlowctlCommandTypeConfig] = Field(default_factory=dict)
    webhooks: list[FlowctlWebhookConfig] = Field(default_factory=list)

    @field_validator("task_types")
    @classmethod
    def _command_types(cls, value: dict[str, FlowctlCommandTypeConfig]
                       ) -> dict[str, FlowctlCommandTypeConfig]:
        for name in value:
            if name not in FLOWCTL_COMMAND_TYPES:
                raise ValueError(f"{name!r}: only {', '.join(FLOWCTL_COMMAND_TYPES)} runs a "
                                 "configured command")
        return value

    def engine_extra(self) -> dict[str, Any]:
        """The engine's `extra["flowctl"]`; a webhook's `secret_env` is read here (a
        ValueError names the key)."""
        webhooks = []
        for i, hook in enumerate(self.webhooks):
            try:
                secret = hook.resolved_secret()
            except ValueError as exc:
                raise ValueError(f"webhooks[{i}].{exc}") from None
            entry: dict[str, Any] = {"url": hook.url, "secret": secret}
            if hook.events is not None:
                entry["events"] = list(hook.events)
            webhooks.append(entry)
        return {
            "etl": {"locations": dict(self.etl.locations), "max_bytes": self.etl.max_bytes,
                    "max_rows": self.etl.max_rows},
            "task_types": {name: {"command": t.command, "environment": dict(t.environment)}
                           for name, t in self.task_types.items()},
            "webhooks": webhooks,
        }


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="FLOWDECK_", env_nested_delimiter="__",
                                      extra="forbid")

    data_dir: Path | None = None
    engine: EngineConfig = Field(default_factory=EngineConfig)
    tui: TuiConfig = Field(default_factory=TuiConfig)
    deck: DeckConfig = Field(default_factory=DeckConfig)
    server: ServerConfig = Field(default_factory=ServerConfig)
    profiles: dict[str, ProfileConfig] = Field(default_factory=dict)
    staging: StagingConfig = Field(default_factory=StagingConfig)
    webhooks: WebhooksConfig = Field(default_factory=WebhooksConfig)
    public: PublicConfig = Field(default_factory=PublicConfig)
    forge: ForgeConfig = Field(default_factory=ForgeConfig)
    tasks: TasksConfig = Field(default_factory=TasksConfig)
    flowctl: FlowctlConfig = Field(default_factory=FlowctlConfig)
    #: The file these settings were read from (None: defaults and environment only).
    _source: Path | None = PrivateAttr(default=None)

    @field_validator("profiles")
    @classmethod
    def _profile_names(cls, value: dict[str, ProfileConfig]) -> dict[str, ProfileConfig]:
        for name in value:
            if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,62}", name):
                raise ValueError(f"profile name {name!r}: use letters, digits, '.', '_' "
                                 "or '-' (at most 63)")
        return value

    @property
    def source(self) -> str:
        """Where these settings came from, for messages."""
        return str(self._source) if self._source is not None else "the configuration"

    @classmethod
    def settings_customise_sources(
        cls, settings_cls: type[BaseSettings], init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource, dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # Flags (init) win over the environment, which wins over the file (passed as init too,
        # merged underneath by load_settings).
        return (init_settings, env_settings)

    def resolved_data_dir(self) -> Path:
        return (self.data_dir or Path(platformdirs.user_data_dir(APP))).expanduser()


def default_config_path() -> Path:
    return Path(platformdirs.user_config_dir(APP)) / "config.toml"


def find_config_file(explicit: str | None) -> Path | None:
    if explicit:
        path = Path(explicit).expanduser()
        if not path.is_file():
            raise ConfigError(f"config file {path} does not exist")
        return path
    env = os.environ.get("FLOWDECK_CONFIG")
    if env:
        path = Path(env).expanduser()
        if not path.is_file():
            raise ConfigError(f"config file {path} (from $FLOWDECK_CONFIG) does not exist")
        return path
    path = default_config_path()
    return path if path.is_file() else None


def _deep_merge(base: dict[str, Any], top: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in top.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = _deep_merge(out[key], value)
        else:
            out[key] = value
    return out


def load_settings(config: str | None = None, **flags: Any) -> Settings:
    """Build the settings; flags that are None (not typed on the command line) do not count."""
    path = find_config_file(config)
    data: dict[str, Any] = {}
    if path is not None:
        try:
            data = tomllib.loads(path.read_text(encoding="utf-8"))
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"{path}: invalid TOML: {exc}") from None
        except UnicodeDecodeError as exc:
            raise ConfigError(f"{path}: not UTF-8 text (byte {exc.start})") from None
        except OSError as exc:
            raise ConfigError(f"{path}: cannot be read: {exc.strerror or exc}") from None
    typed = {k: v for k, v in flags.items() if v is not None}
    # Environment beats the file: let pydantic-settings read it, then lay flags over both.
    try:
        from_env = Settings().model_dump(exclude_unset=True)
    except PydanticValidationError as exc:
        raise ConfigError(_explain("environment", exc, name_key=_env_variable)) from None
    merged = _deep_merge(_deep_merge(data, from_env), typed)
    try:
        settings = Settings.model_validate(merged)
    except PydanticValidationError as exc:
        raise ConfigError(_explain(str(path) if path else "settings", exc)) from None
    settings._source = path
    return settings


def _env_variable(loc: tuple[str | int, ...]) -> str:
    """The variable that set `loc` (`FLOWDECK_ENGINE__MAX_CONCURRENT_EXECUTIONS`), as the
    user spelled it; a nested JSON value is named by its variable (`FLOWDECK_ENGINE`)."""
    key = ".".join(str(p) for p in loc)
    spelled = {name.upper(): name for name in os.environ}
    for depth in range(len(loc), 0, -1):
        name = "FLOWDECK_" + "__".join(str(p) for p in loc[:depth]).upper()
        if name in spelled:
            found = spelled[name]
            return found if depth == len(loc) else f"{found} ({key})"
    return key


def _explain(source: str, exc: PydanticValidationError, *,
             name_key: Callable[[tuple[str | int, ...]], str] | None = None) -> str:
    problems = []
    for err in exc.errors():
        loc = tuple(err["loc"])
        key = (name_key(loc) if name_key else ".".join(str(p) for p in loc)) or "(top level)"
        message = "unknown key" if err["type"] == "extra_forbidden" else err["msg"]
        problems.append(f"{key}: {message}")
    return f"{source}: " + "; ".join(problems)
