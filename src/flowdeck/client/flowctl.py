"""FlowCtl workflows through the connected backend, in the FlowCtl API's own vocabulary.

`flowdeck workflow` submits, lists, shows, cancels and waits for workflows as the spec shows
them (`flowdeck.core.flowctl` views), wherever the engine is:

- in this process (`EmbeddedFlowctl`): one `engine.flowctl` call on the engine's loop each,
  its answer copied so no engine object crosses;
- on a flowdeck server (`HttpFlowctl`): the FlowCtl routes (`/api/v1/workflows`, ...). Their
  rate limit is honoured: a 429 waits until the window the server names in
  `X-RateLimit-Reset` has ended, then asks again (a few times at most); waiting for a workflow
  polls it once a second, well inside the limit.

A Kestra has no FlowCtl API (`FlowctlUnavailable`). Short ids work as elsewhere: a unique
start or end of 8+ characters names a workflow, found among the newest ones.
"""

from __future__ import annotations

import asyncio
import copy
import json
import time
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from flowdeck.client.backend import Backend, Capabilities
from flowdeck.client.kestra_compat import error_for
from flowdeck.client.resolve import Candidate, is_fragment, matches, pick
from flowdeck.core.errors import BackendUnavailable, FlowdeckError
from flowdeck.core.flowctl import WorkflowPage, WorkflowView

if TYPE_CHECKING:
    from flowdeck.client.embedded import EmbeddedBackend
    from flowdeck.client.http import HttpBackend
    from flowdeck.engine.engine import Engine

#: Workflows looked through for a short id, newest first (pages of the API's maximum).
SCAN_PAGES = 10
PAGE_MAX = 100
#: A 429 is waited out this many times in a row at most, each wait at most this long.
RATE_LIMIT_RETRIES = 3
MAX_RATE_WAIT_S = 61.0

OnChange = Callable[[WorkflowView], None]


class FlowctlUnavailable(FlowdeckError):
    """The backend has no FlowCtl API (a Kestra server)."""


def _signature(view: WorkflowView) -> tuple[Any, ...]:
    return (view.status, tuple((t.status, t.retry_count) for t in view.tasks))


class FlowctlClient:
    """What `flowdeck workflow` needs; `wait` and `resolve` are built on the other calls."""

    #: Seconds between two looks at a workflow being waited for.
    poll_interval = 0.2

    async def submit(self, definition: Any, by: str) -> WorkflowView:
        raise NotImplementedError

    async def get(self, workflow_id: str) -> WorkflowView:
        raise NotImplementedError

    async def list_workflows(self, page: int = 1, limit: int = 10,
                             status: str | None = None) -> WorkflowPage:
        raise NotImplementedError

    async def cancel(self, workflow_id: str, by: str) -> None:
        raise NotImplementedError

    async def wait(self, workflow_id: str, *, timeout: float | None = None,
                   on_change: OnChange | None = None) -> WorkflowView:
        """The workflow once finished, telling `on_change` each time a status changes
        (TimeoutError after `timeout` seconds)."""
        async def poll() -> WorkflowView:
            seen: tuple[Any, ...] | None = None
            while True:
                view = await self.get(workflow_id)
                if on_change is not None and _signature(view) != seen:
                    seen = _signature(view)
                    on_change(view)
                if view.finished:
                    return view
                await asyncio.sleep(self.poll_interval)

        if timeout is None:
            return await poll()
        return await asyncio.wait_for(poll(), timeout)

    async def resolve(self, text: str) -> str:
        """The workflow id `text` names: whole, or a unique start or end of one."""
        if not is_fragment(text):
            return text
        found: list[Candidate] = []
        for number in range(1, SCAN_PAGES + 1):
            page = await self.list_workflows(page=number, limit=PAGE_MAX)
            found.extend(Candidate(w.id, f"{w.status}  {w.name}  {w.created_at}")
                         for w in page.workflows if matches(w.id, text))
            if number >= page.total_pages:
                break
        return pick("workflow", text, found)


class EmbeddedFlowctl(FlowctlClient):
    """`engine.flowctl` of the engine in this process."""

    def __init__(self, backend: EmbeddedBackend) -> None:
        self.backend = backend

    async def _call(self, fn: Callable[[Engine], Awaitable[Any]]) -> Any:
        async def run(engine: Engine) -> Any:
            return copy.deepcopy(await fn(engine))  # nothing the engine owns crosses

        return await self.backend.engine_call(run)

    async def submit(self, definition: Any, by: str) -> WorkflowView:
        view: WorkflowView = await self._call(lambda e: e.flowctl.submit(definition, by))
        return view

    async def get(self, workflow_id: str) -> WorkflowView:
        view: WorkflowView = await self._call(lambda e: e.flowctl.get(workflow_id))
        return view

    async def list_workflows(self, page: int = 1, limit: int = 10,
                             status: str | None = None) -> WorkflowPage:
        found: WorkflowPage = await self._call(
            lambda e: e.flowctl.list_workflows(page, limit, status))
        return found

    async def cancel(self, workflow_id: str, by: str) -> None:
        await self._call(lambda e: e.flowctl.cancel(workflow_id, by))


class HttpFlowctl(FlowctlClient):
    """The FlowCtl routes of a flowdeck server."""

    poll_interval = 1.0

    def __init__(self, backend: HttpBackend, *, poll_interval: float | None = None) -> None:
        self.backend = backend
        if poll_interval is not None:
            self.poll_interval = poll_interval

    async def _call(self, method: str, path: str, **kwargs: Any) -> Any:
        for attempt in range(RATE_LIMIT_RETRIES + 1):
            response = await self.backend.request(method, path, **kwargs)
            if response.status_code == 429 and attempt < RATE_LIMIT_RETRIES:
                await asyncio.sleep(_until_reset(response.headers))
                continue
            if response.status_code >= 300:
                raise error_for(response.status_code, response.content,
                                where=f"{method} {path}")
            try:
                return response.json()
            except ValueError:
                raise BackendUnavailable(f"{self.backend.name} answered {method} {path} with "
                                         "something that is not JSON") from None
        raise AssertionError("unreachable")  # pragma: no cover

    async def _view(self, method: str, path: str, **kwargs: Any) -> WorkflowView:
        body = await self._call(method, path, **kwargs)
        if not isinstance(body, dict):
            raise BackendUnavailable(f"{method} {path} did not answer a workflow")
        return WorkflowView.from_dict(body)

    async def submit(self, definition: Any, by: str) -> WorkflowView:
        content = json.dumps(definition).encode("ascii")  # \u escapes: any text survives
        return await self._view("POST", "/api/v1/workflows", content=content,
                                headers={"Content-Type": "application/json"})

    async def get(self, workflow_id: str) -> WorkflowView:
        return await self._view("GET", f"/api/v1/workflows/{_segment(workflow_id)}")

    async def list_workflows(self, page: int = 1, limit: int = 10,
                             status: str | None = None) -> WorkflowPage:
        params: dict[str, Any] = {"page": page, "limit": limit}
        if status:
            params["status"] = status
        body = await self._call("GET", "/api/v1/workflows", params=params)
        if not isinstance(body, dict):
            raise BackendUnavailable("GET /api/v1/workflows did not answer a page")
        return WorkflowPage.from_dict(body)

    async def cancel(self, workflow_id: str, by: str) -> None:
        await self._call("PUT", f"/api/v1/workflows/{_segment(workflow_id)}/cancel")


def _segment(text: str) -> str:
    return quote(text, safe="")


def _until_reset(headers: Any, now: Callable[[], float] = time.time) -> float:
    """Seconds until the window a 429 names ends (`X-RateLimit-Reset`, unix seconds), else
    `Retry-After`, else a second; never more than `MAX_RATE_WAIT_S`."""
    for name, relative in (("x-ratelimit-reset", False), ("retry-after", True)):
        try:
            value = float(headers.get(name, ""))
        except ValueError:
            continue
        wait = value if relative else value - now()
        return min(MAX_RATE_WAIT_S, max(0.05, wait))
    return 1.0


def flowctl_client(backend: Backend, capabilities: Capabilities) -> FlowctlClient:
    """The FlowCtl API of `backend`, or FlowctlUnavailable saying why there is none."""
    from flowdeck.client.embedded import EmbeddedBackend
    from flowdeck.client.http import HttpBackend

    if isinstance(backend, EmbeddedBackend):
        return EmbeddedFlowctl(backend)
    if isinstance(backend, HttpBackend) and capabilities.kind == "flowdeck":
        return HttpFlowctl(backend)
    raise FlowctlUnavailable(f"{backend.name} has no FlowCtl API (a {capabilities.kind} "
                             "server); FlowCtl workflows need a flowdeck server")


__all__ = ["EmbeddedFlowctl", "FlowctlClient", "FlowctlUnavailable", "HttpFlowctl",
           "flowctl_client"]
