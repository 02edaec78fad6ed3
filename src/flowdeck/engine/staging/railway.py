"""The `railway` staging provider: environments of one Railway project, over its public API.

Railway's public API is GraphQL at `https://backboard.railway.com/graphql/v2`. This provider
uses three of its operations, as Railway's own CLI does:

- `environments(projectId, first, after)`: the project's environments (a connection of
  `{id, name, createdAt, sourceEnvironment {name}}` nodes), paged;
- `environmentCreate(input: {projectId, name, sourceEnvironmentId})`: a new environment that
  duplicates the source environment's services and their configuration;
- `environmentDelete(id)`: returns a boolean.

Credentials: an account or workspace token (`Authorization: Bearer`), or a project token
(`Project-Access-Token`, with `token_header: project`), from the configuration or the
`RAILWAY_TOKEN` (else `RAILWAY_API_TOKEN`) environment variable; the project id from the
configuration or `RAILWAY_PROJECT_ID`. The token never appears in a log line or a message.

Errors: Railway answers GraphQL errors with HTTP 200 and `{"errors": [{"message": ...}]}`
(`Not Authorized` for a token it refuses; Railway's CLI, too, treats any message containing
"not authorized" as an authentication failure), and some refusals with a 4xx status (401/403
for credentials, 400 for a malformed request, 429 with `Retry-After` when rate limited). Each
becomes a `ProviderError` (`ProviderAuthError` for credentials) whose message quotes Railway's.

Railway duplicates services, not the data in their volumes: `skip_database` is recorded, and
`copies_data` is False so the Clone task can say so.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Any

import httpx

from flowdeck.core.timefmt import parse_instant
from flowdeck.engine.staging.base import (
    CloneRequest,
    EnvironmentExists,
    EnvironmentNotFound,
    ProviderAuthError,
    ProviderError,
    StagingEnvironment,
    StagingError,
    StagingProvider,
    check_url_template,
    render_url,
    timestamp,
)

DEFAULT_ENDPOINT = "https://backboard.railway.com/graphql/v2"
DEFAULT_URL_TEMPLATE = "https://{name}.up.railway.app"
DEFAULT_TIMEOUT_S = 30.0
PAGE_SIZE = 100
MAX_PAGES = 50
_MAX_MESSAGE = 300

ENVIRONMENTS_QUERY = """
query environments($projectId: String!, $first: Int, $after: String) {
  environments(projectId: $projectId, first: $first, after: $after) {
    edges { node { id name createdAt sourceEnvironment { id name } } }
    pageInfo { hasNextPage endCursor }
  }
}
""".strip()

CREATE_MUTATION = """
mutation environmentCreate($input: EnvironmentCreateInput!) {
  environmentCreate(input: $input) { id name createdAt }
}
""".strip()

DELETE_MUTATION = """
mutation environmentDelete($id: String!) {
  environmentDelete(id: $id)
}
""".strip()


def _clip(text: str) -> str:
    text = " ".join(str(text).split())
    return text if len(text) <= _MAX_MESSAGE else text[:_MAX_MESSAGE] + "…"


def _instant(raw: Any) -> str:
    """Railway's `createdAt` as `2024-01-10T08:00:00Z`; anything unparsable as given."""
    if not isinstance(raw, str):
        return ""
    try:
        return timestamp(parse_instant(raw))
    except ValueError:
        return raw


class RailwayProvider(StagingProvider):
    kind = "railway"
    copies_data = False

    def __init__(self, *, clock: Callable[[], datetime], new_id: Callable[[], str],
                 token: str | None, project_id: str | None,
                 endpoint: str = DEFAULT_ENDPOINT, url_template: str = DEFAULT_URL_TEMPLATE,
                 timeout: float = DEFAULT_TIMEOUT_S, token_header: str = "bearer",
                 transport: httpx.AsyncBaseTransport | None = None) -> None:
        super().__init__(clock=clock, new_id=new_id)
        if token_header not in ("bearer", "project"):
            raise StagingError("staging railway token_header must be 'bearer' or 'project'")
        self.token = token or None
        self.project_id = project_id or None
        self.endpoint = endpoint
        self.url_template = check_url_template(url_template)
        self.token_header = token_header
        self._client = httpx.AsyncClient(timeout=timeout, transport=transport,
                                         headers={"User-Agent": "flowdeck-staging"})

    @classmethod
    def from_config(cls, config: Mapping[str, Any], *, clock: Callable[[], datetime],
                    new_id: Callable[[], str], environ: Mapping[str, str] | None = None,
                    url_template: str | None = None) -> RailwayProvider:
        env = os.environ if environ is None else environ
        token = config.get("token") or env.get("RAILWAY_TOKEN") or env.get("RAILWAY_API_TOKEN")
        project = config.get("project_id") or env.get("RAILWAY_PROJECT_ID")
        try:
            timeout = float(config.get("timeout", DEFAULT_TIMEOUT_S))
        except (TypeError, ValueError):
            raise StagingError("staging railway timeout must be a number of seconds") from None
        return cls(clock=clock, new_id=new_id, token=token, project_id=project,
                   endpoint=str(config.get("endpoint") or DEFAULT_ENDPOINT),
                   url_template=url_template or str(config.get("url_template")
                                                    or DEFAULT_URL_TEMPLATE),
                   timeout=timeout, token_header=str(config.get("token_header", "bearer")))

    async def aclose(self) -> None:
        await self._client.aclose()

    # -- GraphQL ------------------------------------------------------------------------------

    def _headers(self) -> dict[str, str]:
        if not self.token:
            raise ProviderAuthError("no Railway token: set RAILWAY_TOKEN (or the staging "
                                    "railway.token setting)")
        if self.token_header == "project":
            return {"Project-Access-Token": self.token}
        return {"Authorization": f"Bearer {self.token}"}

    def _project(self) -> str:
        if not self.project_id:
            raise StagingError("no Railway project: set RAILWAY_PROJECT_ID (or the staging "
                               "railway.project_id setting)")
        return self.project_id

    async def graphql(self, query: str, variables: dict[str, Any]) -> dict[str, Any]:
        """Run one operation; its `data`, or a `ProviderError` carrying Railway's message."""
        headers = self._headers()
        try:
            response = await self._client.post(self.endpoint, headers=headers,
                                               json={"query": query, "variables": variables})
        except httpx.TimeoutException:
            raise ProviderError(f"the Railway API ({self.endpoint}) did not answer in time"
                                ) from None
        except httpx.HTTPError as exc:
            raise ProviderError(f"cannot reach the Railway API ({self.endpoint}): "
                                f"{type(exc).__name__}") from None
        status = response.status_code
        try:
            body = response.json()
        except ValueError:
            body = None
        errors = body.get("errors") if isinstance(body, dict) else None
        messages = [_clip(e.get("message") or "error") for e in errors or []
                    if isinstance(e, dict)]
        if status in (401, 403) or any("not authorized" in m.lower() for m in messages):
            said = messages[0] if messages else f"HTTP {status}"
            raise ProviderAuthError(f"Railway refused the token ({said}); check RAILWAY_TOKEN "
                                    "and that it may manage the project's environments")
        if status == 429:
            wait = response.headers.get("Retry-After")
            later = f"in {wait} s" if wait and wait.isdigit() else "later"
            raise ProviderError(f"Railway's API rate limit was reached; retry {later}")
        if messages:
            raise ProviderError("Railway API error: " + "; ".join(messages))
        if status >= 400:
            raise ProviderError(f"the Railway API answered HTTP {status}")
        data = body.get("data") if isinstance(body, dict) else None
        if not isinstance(data, dict):
            raise ProviderError("the Railway API answered without data")
        return data

    def _environment(self, node: Mapping[str, Any], *, client_name: str | None = None,
                     source: str | None = None) -> StagingEnvironment:
        name = str(node.get("name") or "")
        env_id = str(node.get("id") or "")
        if source is None:
            parent = node.get("sourceEnvironment")
            source = parent.get("name") if isinstance(parent, Mapping) else None
        return StagingEnvironment(
            name=name, id=env_id, client_name=client_name, source_environment=source,
            url=render_url(self.url_template, name=name, id=env_id,
                           client_name=client_name or "", source_environment=source or ""),
            status="active", created_at=_instant(node.get("createdAt")), provider=self.kind)

    async def _nodes(self) -> list[Mapping[str, Any]]:
        project = self._project()
        nodes: list[Mapping[str, Any]] = []
        after: str | None = None
        for _ in range(MAX_PAGES):
            data = await self.graphql(ENVIRONMENTS_QUERY, {"projectId": project,
                                                           "first": PAGE_SIZE, "after": after})
            connection = data.get("environments")
            if not isinstance(connection, Mapping):
                raise ProviderError("the Railway API answered environments without a list")
            for edge in connection.get("edges") or []:
                node = edge.get("node") if isinstance(edge, Mapping) else None
                if isinstance(node, Mapping) and node.get("name") and node.get("id"):
                    nodes.append(node)
            page = connection.get("pageInfo") or {}
            after = page.get("endCursor") if isinstance(page, Mapping) else None
            if not (isinstance(page, Mapping) and page.get("hasNextPage") and after):
                return nodes
        raise ProviderError(f"the project has more than {MAX_PAGES * PAGE_SIZE} environments")

    # -- the hooks ------------------------------------------------------------------------------

    async def _list(self) -> list[StagingEnvironment]:
        return [self._environment(node) for node in await self._nodes()]

    async def _status(self, name: str) -> StagingEnvironment | None:
        for node in await self._nodes():
            if node.get("name") == name:
                return self._environment(node)
        return None

    async def _clone(self, request: CloneRequest) -> StagingEnvironment:
        nodes = {str(n.get("name")): n for n in await self._nodes()}
        if request.name in nodes:
            raise EnvironmentExists(
                f"environment '{request.name}' already exists in the Railway project; nothing "
                "was changed (choose another name, or delete it first)")
        source = nodes.get(request.source_environment)
        if source is None:
            raise EnvironmentNotFound(
                f"no environment '{request.source_environment}' in the Railway project to "
                "clone from")
        data = await self.graphql(CREATE_MUTATION, {"input": {
            "projectId": self._project(), "name": request.name,
            "sourceEnvironmentId": str(source.get("id"))}})
        created = data.get("environmentCreate")
        if not isinstance(created, Mapping) or not created.get("id"):
            raise ProviderError("the Railway API did not return the new environment")
        env = self._environment(created, client_name=request.client_name,
                                source=request.source_environment)
        if not env.created_at:
            env.created_at = timestamp(self.now())
        return env

    async def _delete(self, name: str) -> StagingEnvironment:
        for node in await self._nodes():
            if node.get("name") == name:
                env = self._environment(node)
                data = await self.graphql(DELETE_MUTATION, {"id": env.id})
                if data.get("environmentDelete") is not True:
                    raise ProviderError(f"Railway did not delete environment '{name}'")
                return env
        raise EnvironmentNotFound(f"no staging environment '{name}' in the Railway project")
