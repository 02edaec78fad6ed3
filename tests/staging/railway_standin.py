"""A local stand-in for Railway's public GraphQL API (`/graphql/v2`), on 127.0.0.1.

It answers the three operations the railway provider uses the way Railway does:

- `environments(projectId, first, after)`: a connection of `{id, name, createdAt,
  sourceEnvironment}` nodes with `pageInfo {hasNextPage, endCursor}`;
- `environmentCreate(input: {projectId, name, sourceEnvironmentId})`: the new environment;
- `environmentDelete(id)`: `true`.

Errors as Railway's API gives them: GraphQL errors with HTTP 200 and
`{"data": null, "errors": [{"message": ..., "path": [...], "extensions": {...}}]}`
(`Not Authorized` for a token it refuses, `Project not found`, `Environment not found`);
HTTP 401 when no credentials are sent at all (or for a refused token, with
`auth_failure_status=401`); HTTP 400 for a request that does not validate (a required variable
missing); HTTP 429 with `Retry-After` when rate limited.

It parses no GraphQL: it recognises the operation by its root field, which is all a stand-in for
three fixed documents needs.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import uvicorn
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

ROOT_FIELD = re.compile(r"\b(environmentCreate|environmentDelete|environments)\s*\(")
BASE_TIME = datetime(2024, 1, 10, 8, 0, tzinfo=UTC)


def _error(message: str, path: str | None = None, code: str | None = None,
           status: int = 200, headers: dict[str, str] | None = None) -> JSONResponse:
    error: dict[str, Any] = {"message": message, "locations": [{"line": 2, "column": 3}]}
    if path:
        error["path"] = [path]
    if code:
        error["extensions"] = {"code": code}
    return JSONResponse({"data": None, "errors": [error]}, status_code=status, headers=headers)


def _missing_variable(name: str, kind: str) -> JSONResponse:
    return _error(f'Variable "${name}" of required type "{kind}" was not provided.',
                  code="BAD_USER_INPUT", status=400)


@dataclass
class RailwayStandIn:
    token: str = "rw-standin-token"
    project_id: str = "proj-standin"
    auth_failure_status: int = 200
    create_delay: float = 0.0
    rate_limited: bool = False
    environments: dict[str, dict[str, Any]] = field(default_factory=dict)
    operations: list[str] = field(default_factory=list)
    in_flight: int = 0
    max_in_flight: int = 0
    url: str = ""

    def __post_init__(self) -> None:
        self.add("production", created=BASE_TIME)

    def add(self, name: str, *, created: datetime | None = None,
            source: str | None = None) -> dict[str, Any]:
        env_id = str(uuid.uuid4())
        at = created or BASE_TIME + timedelta(minutes=len(self.environments))
        src = self.by_name(source) if source else None
        node = {"id": env_id, "name": name, "projectId": self.project_id,
                "createdAt": at.isoformat(timespec="milliseconds").replace("+00:00", "Z"),
                "sourceEnvironment": ({"id": src["id"], "name": src["name"]} if src else None)}
        self.environments[env_id] = node
        return node

    def by_name(self, name: str) -> dict[str, Any] | None:
        return next((e for e in self.environments.values() if e["name"] == name), None)

    def names(self) -> list[str]:
        return sorted(e["name"] for e in self.environments.values())

    # -- the API ------------------------------------------------------------------------------

    def app(self) -> FastAPI:
        app = FastAPI()

        @app.post("/graphql/v2")
        async def graphql(request: Request) -> JSONResponse:
            bearer = request.headers.get("authorization")
            project_token = request.headers.get("project-access-token")
            if bearer is None and project_token is None:
                return _error("Not Authorized", status=401)
            if self.rate_limited:
                return _error("You are being ratelimited. Please try again later",
                              status=429, headers={"Retry-After": "7"})
            try:
                body = await request.json()
            except ValueError:
                return _error("Unexpected token in JSON", status=400)
            query = body.get("query") if isinstance(body, dict) else None
            if not isinstance(query, str):
                return _error("Must provide query string.", status=400)
            variables = body.get("variables") or {}
            match = ROOT_FIELD.search(query)
            if match is None:
                return _error("Cannot query field on type \"Query\".",
                              code="GRAPHQL_VALIDATION_FAILED", status=400)
            operation = match.group(1)
            self.operations.append(operation)
            if bearer != f"Bearer {self.token}" and project_token != self.token:
                return _error("Not Authorized", path=operation,
                              status=self.auth_failure_status)
            if operation == "environments":
                return self._environments(variables)
            if operation == "environmentCreate":
                return await self._create(variables)
            return self._delete(variables)

        return app

    def _environments(self, variables: dict[str, Any]) -> JSONResponse:
        project = variables.get("projectId")
        if project is None:
            return _missing_variable("projectId", "String!")
        if project != self.project_id:
            return _error("Project not found", path="environments")
        nodes = sorted(self.environments.values(), key=lambda e: (e["createdAt"], e["name"]))
        start = int(variables.get("after") or 0)
        first = int(variables.get("first") or 1000)
        page = nodes[start:start + first]
        end = start + len(page)
        return JSONResponse({"data": {"environments": {
            "edges": [{"node": {k: v for k, v in n.items() if k != "projectId"}} for n in page],
            "pageInfo": {"hasNextPage": end < len(nodes), "endCursor": str(end)},
        }}})

    async def _create(self, variables: dict[str, Any]) -> JSONResponse:
        payload = variables.get("input")
        if not isinstance(payload, dict):
            return _missing_variable("input", "EnvironmentCreateInput!")
        if payload.get("projectId") != self.project_id:
            return _error("Project not found", path="environmentCreate")
        name = payload.get("name")
        if not isinstance(name, str) or not name:
            return _error("Environment name is required", path="environmentCreate",
                          code="BAD_USER_INPUT")
        source_id = payload.get("sourceEnvironmentId")
        if source_id is not None and source_id not in self.environments:
            return _error("Environment not found", path="environmentCreate")
        self.in_flight += 1
        self.max_in_flight = max(self.max_in_flight, self.in_flight)
        try:
            await asyncio.sleep(self.create_delay)
        finally:
            self.in_flight -= 1
        if self.by_name(name) is not None:
            return _error(f"Environment with name {name} already exists",
                          path="environmentCreate")
        source = self.environments[source_id]["name"] if source_id else None
        node = self.add(name, created=datetime.now(UTC), source=source)
        return JSONResponse({"data": {"environmentCreate": {
            "id": node["id"], "name": node["name"], "createdAt": node["createdAt"]}}})

    def _delete(self, variables: dict[str, Any]) -> JSONResponse:
        env_id = variables.get("id")
        if env_id is None:
            return _missing_variable("id", "String!")
        if env_id not in self.environments:
            return _error("Environment not found", path="environmentDelete")
        del self.environments[env_id]
        return JSONResponse({"data": {"environmentDelete": True}})


@contextlib.asynccontextmanager
async def running(standin: RailwayStandIn) -> AsyncIterator[RailwayStandIn]:
    """Serve the stand-in on an ephemeral 127.0.0.1 port; `standin.url` is its endpoint."""
    config = uvicorn.Config(standin.app(), host="127.0.0.1", port=0, log_level="warning",
                            lifespan="off", access_log=False)
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve())
    try:
        async with asyncio.timeout(10):
            while not server.started:
                await asyncio.sleep(0.01)
        port = server.servers[0].sockets[0].getsockname()[1]
        standin.url = f"http://127.0.0.1:{port}/graphql/v2"
        yield standin
    finally:
        server.should_exit = True
        await asyncio.wait_for(task, 10)
