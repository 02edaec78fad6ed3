"""`Releases` over HTTP: any server of the forge API (spec 002), with a Bearer token.

The documented routes do the work: runs, releases, deployments (current and history per
environment), approvals. flowdeck's extensions are optional and probed once: the projects
overview (`GET /v1/projects`; without it, the projects come from the `ForgeEndpoint`'s list
and the event log, each read with the documented routes), the event log (`/v1/events/follow`
as server-sent events, else `GET /v1/events` polled; without either, `FeatureMissing`),
revoking (`DELETE /v1/approvals/{id}`) and deploy requests (`POST /v1/deployments/requests`).

Errors come back as the core errors the engine raises: the body's `error.code` and `message`
(400 → ValidationError naming `details.field`, 401/403 → PermissionDenied, 404 →
NotFoundError, 409 → ConflictError, 429 and 5xx → BackendUnavailable).
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import quote

import httpx

from flowdeck.client.releases import FeatureMissing, ForgeEndpoint, ForgeEvent, Overview
from flowdeck.core.errors import (
    BackendUnavailable,
    ConflictError,
    FlowdeckError,
    NotFoundError,
    PermissionDenied,
    ValidationError,
)
from flowdeck.core.forge import (
    DEFAULT_ENVIRONMENTS,
    Deployment,
    DeployRequest,
    Page,
    PipelineRun,
    ProjectSummary,
    Release,
    ReleaseApproval,
)

#: Seconds between polls of `GET /v1/events` on a server without the SSE follow.
POLL_EVENTS = 2.0
#: Reconnect delays of the event follow (doubling up to this).
MAX_BACKOFF = 10.0


def _path(part: str) -> str:
    """One path segment, percent-encoded."""
    return quote(part, safe="")


def _repo(repository: str) -> str:
    """A repository `owner/name` as two segments (the document's form, not `%2F`)."""
    owner, _, name = repository.partition("/")
    return f"{_path(owner)}/{_path(name)}"


def error_of(response: httpx.Response, where: str) -> FlowdeckError:
    """The core error of a forge error answer (`{"error": {code, message, details}}`)."""
    status = response.status_code
    code, message = "", ""
    details: dict[str, Any] = {}
    try:
        body = response.json()
    except ValueError:
        body = None
    if isinstance(body, dict) and isinstance(body.get("error"), dict):
        err = body["error"]
        code = str(err.get("code") or "")
        message = str(err.get("message") or "")
        details = err.get("details") if isinstance(err.get("details"), dict) else {}
    said = message or f"HTTP {status} on {where}"
    if status == 404:
        return NotFoundError(said)
    if status == 409:
        return ConflictError(said, dict(details))
    if status in (400, 422):
        field = details.get("field")
        prefix = f"{field}: "
        return ValidationError([(str(field), said.removeprefix(prefix))] if field
                               else said)
    if status == 401:
        return PermissionDenied(f"authentication failed ({said}); the forge API needs a "
                                "Bearer token")
    if status == 403:
        return PermissionDenied(said)
    if status == 429 or status >= 500:
        return BackendUnavailable(f"{where}: {code or 'HTTP ' + str(status)}: {said}")
    return FlowdeckError(f"unexpected answer HTTP {status} on {where}: {said}")


def _route_missing(response: httpx.Response) -> bool:
    if response.status_code == 405:
        return True
    if response.status_code != 404:
        return False
    try:
        body = response.json()
        message = str(body["error"]["message"])
    except (ValueError, KeyError, TypeError):
        return True  # not the forge's error body: not one of its routes
    return message.startswith("no route")


class HttpReleases:
    """`Releases` on a forge API server."""

    def __init__(self, url: str, *, token: str | None = None,
                 headers: dict[str, str] | None = None, timeout: float = 10.0,
                 identity: str | None = None, fallback: ForgeEndpoint | None = None,
                 transport: httpx.AsyncBaseTransport | None = None) -> None:
        self.url = url.rstrip("/")
        sent = {"Accept": "application/json", "User-Agent": "flowdeck"}
        sent.update(headers or {})
        if token:
            sent["Authorization"] = f"Bearer {token}"
        self._client = httpx.AsyncClient(base_url=self.url, headers=sent,
                                         timeout=httpx.Timeout(timeout), transport=transport,
                                         follow_redirects=False)
        self._identity = identity
        self._role: str | None = None
        #: Whether to ask the server who the token is (once), when no one said.
        self._ask_identity = identity is None
        self.fallback = fallback or ForgeEndpoint(self.url)
        self._missing: set[str] = set()

    @property
    def name(self) -> str:
        return self.url

    @property
    def identity(self) -> str | None:
        return self._identity

    @property
    def role(self) -> str | None:
        return self._role

    async def close(self) -> None:
        await self._client.aclose()

    # -- requests -----------------------------------------------------------------------------

    async def _send(self, method: str, path: str, *, feature: str | None = None,
                    **kwargs: Any) -> httpx.Response:
        """One request; an error answer raised as the core error. For an extension route
        (`feature`), an answer saying the route itself is not there (405, or a 404 that is
        not the forge's own "no such object") is FeatureMissing, remembered."""
        where = f"{method} {path}"
        try:
            response = await self._client.request(method, path, **kwargs)
        except httpx.TimeoutException:
            raise BackendUnavailable(f"{self.url} did not answer in time ({where})") from None
        except httpx.TransportError as exc:
            raise BackendUnavailable(f"cannot reach {self.url}: "
                                     f"{exc or type(exc).__name__}") from None
        if response.status_code >= 300:
            if feature is not None and _route_missing(response):
                self._missing.add(feature)
                raise FeatureMissing(f"{self.url} has no {feature} (a flowdeck extension)")
            raise error_of(response, where)
        return response

    async def _json(self, method: str, path: str, **kwargs: Any) -> Any:
        response = await self._send(method, path, **kwargs)
        if not response.content.strip():
            return None
        try:
            return response.json()
        except ValueError:
            raise BackendUnavailable(f"{self.url} answered {method} {path} with something "
                                     "that is not JSON") from None

    async def _extension(self, name: str, method: str, path: str, **kwargs: Any) -> Any:
        """An extension route (FeatureMissing when the server does not have it)."""
        if name in self._missing:
            raise FeatureMissing(f"{self.url} has no {name} (a flowdeck extension)")
        return await self._json(method, path, feature=name, **kwargs)

    @staticmethod
    def _page(body: Any, key: str) -> tuple[list[dict[str, Any]], int, int, int]:
        if not isinstance(body, dict) or not isinstance(body.get(key), list):
            raise BackendUnavailable(f"a forge list did not answer {{{key}, total, ...}}")
        items = [item for item in body[key] if isinstance(item, dict)]
        return (items, int(body.get("total") or 0), int(body.get("limit") or 0),
                int(body.get("offset") or 0))

    # -- projects -----------------------------------------------------------------------------

    async def learn_identity(self) -> None:
        """Who the token is and its role, from flowdeck's `GET /api/v1/me` where the server
        has it (a Forge of a profile's own): the deck then hides approving from a release's
        creator, and what the role may not do. The document has no such route, so any other
        answer leaves both unknown."""
        if not self._ask_identity:
            return
        self._ask_identity = False
        try:
            response = await self._client.get("/api/v1/me")
            body = response.json() if response.status_code == 200 else None
        except (httpx.HTTPError, ValueError):
            return
        if isinstance(body, dict) and body.get("kind") == "token" and isinstance(
                body.get("name"), str) and body["name"]:
            self._identity = body["name"]
            role = body.get("role")
            self._role = role if isinstance(role, str) and role else None

    async def overview(self) -> Overview:
        await self.learn_identity()
        try:
            body = await self._extension("projects overview", "GET", "/v1/projects")
        except FeatureMissing:
            return await self._overview_from_routes()
        projects = []
        for item in body.get("projects") or []:
            latest = item.get("latest_release")
            projects.append(ProjectSummary(
                str(item.get("repository") or ""), str(item.get("project") or ""),
                Release.from_dict(latest) if isinstance(latest, dict) else None,
                int(item.get("releases") or 0),
                {str(env): Deployment.from_dict(d)
                 for env, d in (item.get("current") or {}).items() if isinstance(d, dict)}))
        return Overview(tuple(projects),
                        tuple(body.get("environments") or DEFAULT_ENVIRONMENTS),
                        tuple(body.get("approval_environments") or ("production",)))

    async def _overview_from_routes(self) -> Overview:
        """Without the overview: the configured projects and those the event log names,
        each read with the documented routes."""
        known: list[tuple[str, str]] = []
        for entry in self.fallback.projects:
            owner, _, rest = entry.partition("/")
            name, _, project = rest.partition("/")
            if owner and name and project:
                known.append((f"{owner}/{name}", project))
        try:
            body = await self._extension("event log", "GET", "/v1/events",
                                         params={"limit": "1000"})
            for event in body.get("events") or []:
                data = event.get("data") or {}
                pair = (str(data.get("repository") or ""), str(data.get("project") or ""))
                if event.get("event_type") == "release.created" and all(pair):
                    known.append(pair)
        except FeatureMissing:
            pass
        environments = self.fallback.environments
        out = []
        for repository, project in dict.fromkeys(known):
            page = await self.releases(repository, project, limit=1)
            latest = None
            if page.items:
                latest = await self.release(repository, project, page.items[0].id)
            current = {}
            for env in environments:
                found = await self.current(env, repository, project)
                if found is not None:
                    current[env] = found
            out.append(ProjectSummary(repository, project, latest, page.total, current))
        return Overview(tuple(out), environments, self.fallback.approval_environments)

    # -- releases -----------------------------------------------------------------------------

    async def releases(self, repository: str, project: str, limit: int = 20,
                       offset: int = 0) -> Page[Release]:
        body = await self._json("GET", f"/v1/releases/{_repo(repository)}/{_path(project)}",
                                params={"limit": str(limit), "offset": str(offset),
                                        "expand": "full"})
        items, total, got_limit, got_offset = self._page(body, "releases")
        if items and not all("created_by" in i for i in items):
            # The document's entries are summaries (id, sha, number, date): a server that
            # does not expand them (flowdeck's extension) is asked for each one.
            found = await asyncio.gather(*(self.release(repository, project, str(i["id"]))
                                           for i in items))
            return Page(tuple(found), total, got_limit or limit, got_offset)
        return Page(tuple(Release.from_dict({"repository": repository, "project": project, **i})
                          for i in items), total, got_limit or limit, got_offset)

    async def release(self, repository: str, project: str, ref: str) -> Release:
        body = await self._json(
            "GET", f"/v1/releases/{_repo(repository)}/{_path(project)}/{_path(ref)}")
        return Release.from_dict(body)

    async def create_release(self, repository: str, project: str, commit_sha: str,
                             artifacts: list[dict[str, Any]] | None = None, *,
                             pipeline_run_id: str | None = None,
                             tag: str | None = None) -> Release:
        payload: dict[str, Any] = {"repository": repository, "project": project,
                                   "commit_sha": commit_sha, "artifacts": artifacts or []}
        if pipeline_run_id:
            payload["pipeline_run_id"] = pipeline_run_id
        if tag:
            payload["tag"] = tag
        created = await self._json("POST", "/v1/releases", json=payload)
        return await self.release(repository, project, str(created["id"]))

    # -- deployments and approvals ------------------------------------------------------------

    async def current(self, environment: str, repository: str,
                      project: str) -> Deployment | None:
        try:
            body = await self._json("GET", f"/v1/deployments/{_path(environment)}/"
                                           f"{_repo(repository)}/{_path(project)}")
        except NotFoundError:
            return None
        return Deployment.from_dict({"repository": repository, "project": project,
                                     "id": body.get("deployment_id"), **body})

    async def history(self, environment: str, repository: str, project: str,
                      limit: int = 20, offset: int = 0) -> Page[Deployment]:
        body = await self._json(
            "GET", f"/v1/deployments/{_path(environment)}/{_repo(repository)}/"
                   f"{_path(project)}/history",
            params={"limit": str(limit), "offset": str(offset)})
        items, total, got_limit, got_offset = self._page(body, "deployments")
        found = tuple(Deployment.from_dict({"repository": repository, "project": project,
                                            "environment": environment, **i}) for i in items)
        return Page(found, total, got_limit or limit, got_offset)

    async def deploy(self, release_id: str, environment: str,
                     approval_id: str | None = None) -> Deployment:
        payload = {"release_id": release_id, "environment": environment}
        if approval_id:
            payload["approval_id"] = approval_id
        body = await self._json("POST", "/v1/deployments", json=payload)
        return Deployment.from_dict({"release_id": release_id, "environment": environment,
                                     **body})

    async def request_deploy(self, release_id: str, environment: str) -> DeployRequest:
        body = await self._extension("deploy requests", "POST", "/v1/deployments/requests",
                                     json={"release_id": release_id,
                                           "environment": environment})
        return DeployRequest(execution_id=str(body.get("execution_id") or ""),
                             release_id=str(body.get("release_id") or release_id),
                             environment=str(body.get("environment") or environment),
                             requested_by=str(body.get("requested_by") or ""),
                             status=str(body.get("status") or "pending"))

    async def approve(self, release_id: str, environment: str,
                      justification: str) -> ReleaseApproval:
        body = await self._json("POST", "/v1/approvals", json={
            "release_id": release_id, "environment": environment,
            "justification": justification})
        return ReleaseApproval.from_dict({"release_id": release_id, "environment": environment,
                                          "justification": justification, **body})

    async def approval(self, release_id: str, environment: str) -> ReleaseApproval | None:
        try:
            body = await self._json("GET", f"/v1/approvals/{_path(release_id)}/"
                                           f"{_path(environment)}")
        except NotFoundError:
            return None
        return ReleaseApproval.from_dict({"release_id": release_id, "environment": environment,
                                          **body})

    async def revoke(self, approval_id: str) -> ReleaseApproval:
        body = await self._extension("revoke", "DELETE", f"/v1/approvals/{_path(approval_id)}")
        return ReleaseApproval.from_dict(body)

    # -- pipeline runs ------------------------------------------------------------------------

    async def create_run(self, repository: str, branch: str, commit_sha: str, *,
                         triggered_by: str | None = None,
                         trigger_type: str = "manual") -> PipelineRun:
        payload = {"repository": repository, "branch": branch, "commit_sha": commit_sha,
                   "trigger_type": trigger_type}
        if triggered_by:
            payload["triggered_by"] = triggered_by
        created = await self._json("POST", "/v1/runs", json=payload)
        return PipelineRun(id=str(created["id"]), repository=repository, branch=branch,
                           commit_sha=commit_sha, status=str(created.get("status") or ""),
                           triggered_by=triggered_by or self._identity or "",
                           trigger_type=trigger_type,
                           started_at=str(created.get("started_at") or ""),
                           completed_at=None)

    async def run(self, run_id: str) -> PipelineRun:
        return PipelineRun.from_dict(await self._json("GET", f"/v1/runs/{_path(run_id)}"))

    async def runs(self, repository: str, branch: str | None = None, limit: int = 20,
                   offset: int = 0) -> Page[PipelineRun]:
        params = {"repository": repository, "limit": str(limit), "offset": str(offset)}
        if branch:
            params["branch"] = branch
        body = await self._json("GET", "/v1/runs", params=params)
        items, total, got_limit, got_offset = self._page(body, "runs")
        return Page(tuple(PipelineRun.from_dict(i) for i in items), total, got_limit or limit,
                    got_offset)

    async def cancel_run(self, run_id: str) -> None:
        await self._send("DELETE", f"/v1/runs/{_path(run_id)}")

    async def step_logs(self, run_id: str, step_id: str) -> str:
        response = await self._send("GET", f"/v1/runs/{_path(run_id)}/steps/"
                                           f"{_path(step_id)}/logs")
        return response.text

    # -- events -------------------------------------------------------------------------------

    async def latest_event(self) -> int:
        seq = 0
        while True:
            body = await self._extension("event log", "GET", "/v1/events",
                                         params={"after": str(seq), "limit": "1000"})
            events = body.get("events") or []
            if not events:
                return seq
            seq = int(body.get("next_after") or events[-1]["seq"])

    async def events(self, after: int = 0) -> AsyncIterator[ForgeEvent]:
        """The SSE follow, reconnecting from the last event seen; polling `GET /v1/events`
        where the server has no follow."""
        seq, delay = after, 0.5
        follow = "event follow" not in self._missing
        while True:
            try:
                if follow:
                    async for event in self._follow(seq):
                        seq, delay = event.seq, 0.5
                        yield event
                else:
                    body = await self._extension("event log", "GET", "/v1/events",
                                                 params={"after": str(seq)})
                    for item in body.get("events") or []:
                        event = ForgeEvent.from_dict(item)
                        seq = event.seq
                        yield event
                    await asyncio.sleep(POLL_EVENTS)
                    continue
            except FeatureMissing:
                if not follow:
                    raise
                follow = False
                continue
            except BackendUnavailable:
                pass
            await asyncio.sleep(delay)
            delay = min(delay * 2, MAX_BACKOFF)

    async def _follow(self, after: int) -> AsyncIterator[ForgeEvent]:
        headers = {"Accept": "text/event-stream", "Last-Event-ID": str(after)}
        try:
            async with self._client.stream("GET", "/v1/events/follow", headers=headers,
                                           timeout=httpx.Timeout(10.0, read=90.0)) as response:
                if response.status_code in (404, 405):
                    self._missing.add("event follow")
                    raise FeatureMissing(f"{self.url} has no event follow")
                if response.status_code >= 300:
                    await response.aread()
                    raise error_of(response, "GET /v1/events/follow")
                async for line in response.aiter_lines():
                    if line.startswith("data:"):
                        try:
                            item = json.loads(line[5:].strip())
                        except ValueError:
                            continue
                        if isinstance(item, dict) and "seq" in item:
                            yield ForgeEvent.from_dict(item)
        except (httpx.TransportError, httpx.TimeoutException) as exc:
            raise BackendUnavailable(f"the event follow of {self.url} broke: "
                                     f"{exc or type(exc).__name__}") from None
