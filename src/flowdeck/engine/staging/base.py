"""What every staging provider shares: the environment record, the name rules and the guards.

A provider is a subclass of `StagingProvider` in a module of its own (`local`, `railway`). It
implements four hooks (`_clone`, `_list`, `_delete`, `_status`); the public methods around them
check names first, so every provider, and every caller (the task types, hence the API, the CLI
and the TUI), inherits the same rules:

- `delete` refuses any name that does not *fully* match `DELETABLE_PATTERN`, exactly as
  received: no trimming, no case folding, no Unicode normalisation (`re.fullmatch` with
  `re.ASCII` on the raw string). ` staging-x`, `staging-x\\n`, `Staging-x`, full-width
  look-alikes and `staging-x/../prod` are all refused before the provider is asked anything.
- `clone` only creates names that `delete` would accept, so nothing it makes is undeletable,
  and it refuses a name that already exists (the provider makes that check atomic).
"""

from __future__ import annotations

import re
import string
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from flowdeck.core.errors import ConflictError, FlowdeckError, NotFoundError, ValidationError

#: The spec's rule for a name that may be deleted (and so for every name a clone creates).
DELETABLE_PATTERN = r"staging-[a-z0-9][a-z0-9-]{0,62}"
DELETABLE = re.compile(DELETABLE_PATTERN, re.ASCII)
#: Names of source environments (`production`, or an existing staging environment).
SOURCE_NAME = re.compile(r"[a-z0-9][a-z0-9-]{0,70}", re.ASCII)
#: A client name must leave room in a generated name: `staging-` + client + `-YYYYMMDD-HHMMSS`.
CLIENT_NAME_PATTERN = r"[a-z0-9][a-z0-9-]{0,46}"
CLIENT_NAME = re.compile(CLIENT_NAME_PATTERN, re.ASCII)
STAMP_FORMAT = "%Y%m%d-%H%M%S"
URL_FIELDS = frozenset({"name", "id", "client_name", "source_environment"})
_SHOWN_NAME = 80


class StagingError(FlowdeckError):
    """A staging operation that cannot be done; the message says why."""


class InvalidEnvironmentName(StagingError, ValidationError):
    """A name the rules refuse (HTTP 422 where it surfaces directly)."""

    def __init__(self, message: str, field: str = "environment_name") -> None:
        ValidationError.__init__(self, [(field, message)])
        self.reason = message

    def __str__(self) -> str:
        return self.reason


class EnvironmentExists(StagingError, ConflictError):
    """Cloning onto a name that is taken."""

    def __init__(self, message: str) -> None:
        ConflictError.__init__(self, message)


class EnvironmentNotFound(StagingError, NotFoundError):
    """No environment (or source environment) by that name."""


class ProviderError(StagingError):
    """The provider's backend failed or refused (Railway's API, the file system)."""


class ProviderAuthError(ProviderError):
    """The provider refused our credentials."""


def shown(name: object) -> str:
    """A name fit for a message: quoted with escapes (`'staging-x\\n'`), and cut if long."""
    text = repr(name) if isinstance(name, str) else f"<{type(name).__name__}>"
    return text if len(text) <= _SHOWN_NAME else text[:_SHOWN_NAME] + "…'"


def is_deletable(name: object) -> bool:
    """Whether `name`, exactly as given, fully matches `DELETABLE_PATTERN`."""
    return isinstance(name, str) and DELETABLE.fullmatch(name) is not None


def check_deletable(name: object) -> str:
    """`name` if it may be deleted; otherwise `InvalidEnvironmentName` saying why."""
    if is_deletable(name):
        assert isinstance(name, str)
        return name
    raise InvalidEnvironmentName(
        f"refusing to delete {shown(name)}: only environments whose whole name matches "
        f"^{DELETABLE_PATTERN}$ can be deleted")


def check_new_name(name: object) -> str:
    """A name a clone may create: one `delete` would accept."""
    if is_deletable(name):
        assert isinstance(name, str)
        return name
    raise InvalidEnvironmentName(
        f"environment_name {shown(name)} must match ^{DELETABLE_PATTERN}$ "
        "(lowercase letters, digits and '-', starting with 'staging-')")


def check_source_name(name: object) -> str:
    if isinstance(name, str) and SOURCE_NAME.fullmatch(name):
        return name
    raise InvalidEnvironmentName(
        f"source_environment {shown(name)} must be lowercase letters, digits and '-'",
        "source_environment")


def check_client_name(name: object) -> str:
    if not isinstance(name, str) or name == "":
        raise InvalidEnvironmentName("client_name is required", "client_name")
    if CLIENT_NAME.fullmatch(name) is None:
        raise InvalidEnvironmentName(
            f"client_name {shown(name)} must match ^{CLIENT_NAME_PATTERN}$ "
            "(lowercase letters, digits and '-', at most 47 characters)", "client_name")
    return name


def generated_name(client_name: str, now: datetime) -> str:
    """`staging-{client_name}-{YYYYMMDD-HHMMSS}` with the time in UTC."""
    return f"staging-{check_client_name(client_name)}-{now.astimezone(UTC):{STAMP_FORMAT}}"


def timestamp(dt: datetime) -> str:
    """`2024-01-12T10:30:25Z`: UTC, whole seconds, as the spec's responses show."""
    return dt.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def check_url_template(template: object) -> str:
    """A `url_template` that only uses `{name}`, `{id}`, `{client_name}` and
    `{source_environment}` (no attribute or index access)."""
    if not isinstance(template, str) or not template:
        raise StagingError("staging url_template must be a non-empty string")
    try:
        fields = [f for _, f, _, _ in string.Formatter().parse(template) if f is not None]
    except ValueError as exc:
        raise StagingError(f"staging url_template {template!r}: {exc}") from None
    for field in fields:
        if field not in URL_FIELDS:
            raise StagingError(f"staging url_template {template!r}: unknown field {{{field}}} "
                               f"(use {', '.join('{' + f + '}' for f in sorted(URL_FIELDS))})")
    return template


def render_url(template: str, **fields: str) -> str:
    return check_url_template(template).format(**{k: fields.get(k, "") for k in URL_FIELDS})


@dataclass(slots=True)
class StagingEnvironment:
    """One environment as DESIGN.md §2 names it."""

    name: str
    id: str
    client_name: str | None
    source_environment: str | None
    url: str | None
    status: str
    created_at: str
    provider: str

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "id": self.id, "client_name": self.client_name,
                "source_environment": self.source_environment, "url": self.url,
                "status": self.status, "created_at": self.created_at,
                "provider": self.provider}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> StagingEnvironment:
        return cls(name=str(data["name"]), id=str(data["id"]),
                   client_name=data.get("client_name"),
                   source_environment=data.get("source_environment"),
                   url=data.get("url"), status=str(data.get("status") or "unknown"),
                   created_at=str(data.get("created_at") or ""),
                   provider=str(data.get("provider") or ""))

    def listing(self) -> dict[str, Any]:
        """The entry of a list response: `{name, id, createdAt}`."""
        return {"name": self.name, "id": self.id, "createdAt": self.created_at}


#: (A name for the type: inside `StagingProvider`, `list` is the method.)
Environments = list[StagingEnvironment]


@dataclass(slots=True)
class CloneRequest:
    name: str
    source_environment: str
    client_name: str | None = None
    skip_database: bool = False


class StagingProvider(ABC):
    """The provider protocol; subclasses implement the `_hooks`, never the public methods."""

    #: The provider's name, as recorded in every environment it makes.
    kind: str = ""

    def __init__(self, *, clock: Callable[[], datetime], new_id: Callable[[], str]) -> None:
        self.now = clock
        self.new_id = new_id

    async def clone(self, request: CloneRequest) -> StagingEnvironment:
        """Create `request.name` from its source; `EnvironmentExists` if the name is taken
        (nothing changes then)."""
        check_new_name(request.name)
        check_source_name(request.source_environment)
        if request.client_name is not None:
            check_client_name(request.client_name)
        return await self._clone(request)

    async def list(self, prefix: str = "") -> Environments:
        """Environments whose name starts with `prefix` (all of them for ""), oldest first."""
        if not isinstance(prefix, str):
            raise StagingError("filter_prefix must be a string")
        found = [env for env in await self._list() if env.name.startswith(prefix)]
        return sorted(found, key=lambda env: (env.created_at, env.name))

    async def delete(self, name: str) -> StagingEnvironment:
        """Delete a `staging-*` environment (the guard first); returns what was deleted."""
        check_deletable(name)
        return await self._delete(name)

    async def status(self, name: str) -> StagingEnvironment | None:
        """The environment called `name`, or None."""
        if not isinstance(name, str) or SOURCE_NAME.fullmatch(name) is None:
            return None
        return await self._status(name)

    async def aclose(self) -> None:  # noqa: B027 - most providers hold nothing
        """Release what the provider holds (connections)."""

    @abstractmethod
    async def _clone(self, request: CloneRequest) -> StagingEnvironment: ...

    @abstractmethod
    async def _list(self) -> Environments: ...

    @abstractmethod
    async def _delete(self, name: str) -> StagingEnvironment: ...

    @abstractmethod
    async def _status(self, name: str) -> StagingEnvironment | None: ...
