"""A remote server over HTTP: `flowdeck serve`, or a real Kestra 1.x / 2.x.

`connect()` finds out what is on the other end (`/api/v1/configs/login`, then
`/api/v1/configs`): flowdeck's own server names itself with `flowdeckVersion`; a Kestra gets
the action paths and tenant prefix of its version (see `kestra_compat`). Every HTTP failure
becomes the core error the engine itself would raise (404 → NotFoundError, 409 →
ConflictError, ...), and an unreachable server is `BackendUnavailable`.

Streams survive a server restart. A log follow reconnects with exponential backoff
(0.5 s doubling to 10 s, reset once a connection succeeds, at most `max_reconnects` failures in
a row) and resumes after the last line seen: flowdeck numbers its lines (`Last-Event-ID`,
`afterSequence`), so nothing is skipped or repeated; a real Kestra replays every stored line on
each connection, and the lines already delivered are recognised by (timestamp, message,
task run) and dropped. Kestra has no global event stream, so `watch_executions` polls the
search endpoint; and it has no approvals, which `Capabilities` says and the approval methods
report clearly.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections import Counter
from collections.abc import AsyncGenerator, AsyncIterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit, urlunsplit

import httpx

from flowdeck.client.backend import (
    ROLES,
    Capabilities,
    ExecutionFilter,
    FlowInfo,
    InterruptedRun,
    Page,
)
from flowdeck.client.kestra_compat import (
    ACTIVE_STATES,
    NotAvailable,
    ProtocolError,
    ServerInfo,
    action_path,
    detect_server,
    error_for,
    execution_signature,
    has_sequence,
    last_change,
    log_identity,
    parse_execution,
    parse_log,
    search_params,
    segment,
)
from flowdeck.core.errors import (
    BackendUnavailable,
    ConflictError,
    NotFoundError,
    PermissionDenied,
    ValidationError,
)
from flowdeck.core.models import Approval, Execution, LogEntry
from flowdeck.core.states import is_terminal
from flowdeck.core.yamlsafe import flow_identity

APPROVALS_UNAVAILABLE = ("approvals are not available on this server (a Kestra server has no "
                         "approvals API; they come with a flowdeck server)")
FLOW_PAGE = 100
#: Changes this long before a watch began still count as new (server and client clocks).
WATCH_MARGIN = timedelta(seconds=2)
MAX_PAGES = 1000
#: Seconds a `ping` waits for the server (the deck's heartbeat: a dead server shows in time).
PING_TIMEOUT = 3.0


@dataclass(slots=True)
class SSEEvent:
    id: str | None
    event: str | None
    data: str


class SSEParser:
    """Incremental `text/event-stream` parser (WHATWG rules: `field: value` lines, a blank
    line ends an event, `:` lines are comments, `data` lines join with newlines)."""

    def __init__(self) -> None:
        self._buffer = b""
        self._id: str | None = None
        self._event: str | None = None
        self._data: list[str] = []

    def feed(self, chunk: bytes) -> list[SSEEvent]:
        lines = (self._buffer + chunk).split(b"\n")
        self._buffer = lines.pop()
        events: list[SSEEvent] = []
        for raw in lines:
            line = (raw[:-1] if raw.endswith(b"\r") else raw).decode("utf-8", "replace")
            if not line:
                if self._data or self._id is not None:
                    events.append(SSEEvent(self._id, self._event, "\n".join(self._data)))
                self._id, self._event, self._data = None, None, []
                continue
            if line.startswith(":"):
                continue
            name, _, value = line.partition(":")
            value = value[1:] if value.startswith(" ") else value
            if name == "data":
                self._data.append(value)
            elif name == "id":
                self._id = value
            elif name == "event":
                self._event = value
        return events


class Backoff:
    """0.5 s, 1 s, 2 s ... capped at 10 s; `reset()` after a success; bounded in count."""

    def __init__(self, initial: float, cap: float, limit: int) -> None:
        self.initial, self.cap, self.limit = initial, cap, limit
        self.failures = 0
        self.delay = initial

    def reset(self) -> None:
        self.failures = 0
        self.delay = self.initial

    async def wait(self, cause: BaseException, what: str) -> None:
        """Sleep before the next try, or raise BackendUnavailable after too many failures."""
        self.failures += 1
        if self.failures > self.limit:
            raise BackendUnavailable(f"{what}: gave up after {self.limit} attempts to "
                                     f"reconnect ({cause})") from None
        await asyncio.sleep(self.delay)
        self.delay = min(self.delay * 2, self.cap)


def _normalise_url(base_url: str) -> str:
    text = base_url.strip()
    parts = urlsplit(text)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ValidationError([("url", f"'{base_url}' is not a server URL; use e.g. "
                                       "http://localhost:8080")])
    path = parts.path.rstrip("/")
    for suffix in ("/api/v1/main", "/api/v1"):
        if path.endswith(suffix):
            path = path[: -len(suffix)]
            break
    netloc = parts.hostname or ""
    if ":" in netloc:  # an IPv6 literal
        netloc = f"[{netloc}]"
    if parts.port is not None:
        netloc += f":{parts.port}"
    return urlunsplit((parts.scheme, netloc, path, "", ""))


def _form_value(value: Any) -> Any:
    """A multipart part for one input: text as is, files uploaded, the rest as JSON text."""
    if isinstance(value, Path):
        return (value.name, value.read_bytes())
    if isinstance(value, bytes):
        return ("input.bin", value)
    if isinstance(value, str):
        return (None, value)
    return (None, json.dumps(value, separators=(",", ":"), default=str))


def _multipart(inputs: Mapping[str, Any] | None) -> list[tuple[str, Any]] | None:
    if not inputs:
        return None
    return [(str(k), _form_value(v)) for k, v in inputs.items()]


class HttpBackend:
    """`Backend` over HTTP to flowdeck's server or a real Kestra."""

    def __init__(self, base_url: str, *, username: str | None = None,
                 password: str | None = None, token: str | None = None,
                 timeout: float = 10, poll_interval: float = 2.0, watch_size: int = 100,
                 retry_not_found: float = 5.0, backoff_initial: float = 0.5,
                 backoff_max: float = 10.0, max_reconnects: int = 20,
                 stream_idle_timeout: float = 90.0,
                 transport: httpx.AsyncBaseTransport | None = None) -> None:
        self.base_url = _normalise_url(base_url)
        parts = urlsplit(base_url.strip())
        if parts.username is not None and username is None and token is None:
            username, password = unquote(parts.username), unquote(parts.password or "")
        if token and (username or password):
            raise ValidationError([("auth", "give either a token or a username and password, "
                                            "not both")])
        if (username is None) != (password is None):
            raise ValidationError([("auth", "a username needs a password (and vice versa)")])
        self._auth = (httpx.BasicAuth(username, password)
                      if username is not None and password is not None else None)
        self._headers = {"Accept": "application/json", "User-Agent": "flowdeck"}
        if token:
            self._headers["Authorization"] = f"Bearer {token}"
        self.timeout = float(timeout)
        self.poll_interval = float(poll_interval)
        self.watch_size = int(watch_size)
        self.retry_not_found = float(retry_not_found)
        self.backoff_initial = float(backoff_initial)
        self.backoff_max = float(backoff_max)
        self.max_reconnects = int(max_reconnects)
        self.stream_idle_timeout = float(stream_idle_timeout)
        self._transport = transport
        self._client: httpx.AsyncClient | None = None
        self._info: ServerInfo | None = None
        self._capabilities: Capabilities | None = None
        self._created: dict[str, float] = {}

    @property
    def name(self) -> str:
        return self.base_url

    @property
    def server(self) -> ServerInfo | None:
        """What `connect()` detected (None before)."""
        return self._info

    # -- lifecycle ----------------------------------------------------------------------------

    def _http(self) -> httpx.AsyncClient:
        if self._client is None:
            self._client = httpx.AsyncClient(
                base_url=self.base_url, auth=self._auth, headers=self._headers,
                timeout=httpx.Timeout(self.timeout), transport=self._transport,
                follow_redirects=False)
        return self._client

    async def connect(self) -> Capabilities:
        """Detect the server: flowdeck or Kestra, its version, and so its paths."""
        login = await self._raw("GET", "/api/v1/configs/login")
        login_endpoint = login.status_code == 200
        try:
            answer = await self._send("GET", "/api/v1/configs", api=False)
        except NotFoundError:
            raise BackendUnavailable(f"{self.base_url} does not look like a Kestra or flowdeck "
                                     "server (no /api/v1/configs)") from None
        configs = self._json(answer)
        if not isinstance(configs, dict):
            raise ProtocolError(f"{self.base_url}/api/v1/configs did not answer a JSON object")
        info = detect_server(configs, login_endpoint=login_endpoint)
        self._info = info
        role, user = await self._me() if info.kind == "flowdeck" else (None, None)
        self._capabilities = Capabilities(
            kind=info.kind, version=info.version, approvals=info.approvals,
            staging=info.kind == "flowdeck",
            releases=info.kind == "flowdeck", kv=True, namespace_files=True,
            action_paths=info.action_paths, role=role, user=user)
        return self._capabilities

    async def _me(self) -> tuple[str | None, str | None]:
        """The caller's role and name from flowdeck's `GET /api/v1/me` (`{"kind","name",
        "role"}`), where the server answers it; None otherwise (an older server): nothing is
        hidden."""
        try:
            answer = await self._raw("GET", "/api/v1/me")
        except BackendUnavailable:
            return None, None
        if answer.status_code != 200:
            return None, None
        try:
            body = answer.json()
        except ValueError:
            return None, None
        if not isinstance(body, dict):
            return None, None
        role, name = body.get("role"), body.get("name")
        return (role if role in ROLES else None,
                name if isinstance(name, str) and name else None)

    def auth_headers(self) -> dict[str, str]:
        """The credentials this backend sends, as headers, for a client of another API on
        the same server (the forge's `/v1`)."""
        headers = {}
        if "Authorization" in self._headers:
            headers["Authorization"] = self._headers["Authorization"]
        elif self._auth is not None:
            request = next(self._auth.auth_flow(httpx.Request("GET", self.base_url)))
            headers["Authorization"] = request.headers["Authorization"]
        return headers

    async def ping(self) -> None:
        """`GET /api/v1/configs` within a few seconds (less than a request's timeout, so a
        server that died shows as such quickly); BackendUnavailable if it does not answer."""
        try:
            response = await self._http().request(
                "GET", "/api/v1/configs", timeout=min(self.timeout, PING_TIMEOUT))
        except httpx.TimeoutException:
            raise BackendUnavailable(f"{self.base_url} did not answer within "
                                     f"{min(self.timeout, PING_TIMEOUT):g} s") from None
        except httpx.TransportError as exc:
            raise BackendUnavailable(f"cannot reach {self.base_url}: "
                                     f"{exc or type(exc).__name__}") from None
        if response.status_code >= 500:
            raise BackendUnavailable(f"{self.base_url} answered {response.status_code}")

    async def runs_stopped_by_close(self) -> list[InterruptedRun]:
        """None: the server goes on running its executions when this client goes."""
        return []

    async def close(self) -> None:
        client, self._client = self._client, None
        if client is not None:
            await client.aclose()

    async def __aenter__(self) -> HttpBackend:
        await self.connect()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def _ensure(self) -> ServerInfo:
        if self._info is None:
            await self.connect()
        assert self._info is not None
        return self._info

    # -- requests -----------------------------------------------------------------------------

    async def _raw(self, method: str, url: str, **kwargs: Any) -> httpx.Response:
        try:
            return await self._http().request(method, url, **kwargs)
        except httpx.TimeoutException:
            raise BackendUnavailable(f"{self.base_url} did not answer within "
                                     f"{self.timeout:g} s ({method} {url})") from None
        except httpx.TransportError as exc:
            raise BackendUnavailable(f"cannot reach {self.base_url}: "
                                     f"{exc or type(exc).__name__}") from None

    async def _send(self, method: str, path: str, *, api: bool = True,
                    **kwargs: Any) -> httpx.Response:
        url = path
        if api:
            url = (await self._ensure()).prefix + path
        response = await self._raw(method, url, **kwargs)
        if response.status_code >= 300:
            raise error_for(response.status_code, response.content, where=f"{method} {url}")
        return response

    @staticmethod
    def _json(response: httpx.Response) -> Any:
        if not response.content.strip():
            return None
        try:
            return response.json()
        except ValueError:
            raise ProtocolError(f"the server answered {response.request.method} "
                                f"{response.request.url.path} with something that is not "
                                "JSON") from None

    async def _get_json(self, path: str, **kwargs: Any) -> Any:
        return self._json(await self._send("GET", path, **kwargs))

    # -- flows --------------------------------------------------------------------------------

    async def list_flows(self, namespace: str | None = None) -> list[FlowInfo]:
        info = await self._ensure()
        flows: list[FlowInfo] = []
        for page in range(1, MAX_PAGES + 1):
            params: list[tuple[str, str]] = [("page", str(page)), ("size", str(FLOW_PAGE)),
                                             ("sort", "namespace:asc"), ("sort", "id:asc")]
            if namespace:
                params.append(("filters[namespace][EQUALS]", namespace) if info.query_filters
                              else ("namespace", namespace))
            body = await self._get_json("/flows/search", params=params)
            results = body.get("results") if isinstance(body, dict) else None
            if not isinstance(results, list):
                raise ProtocolError("flow search did not answer {results, total}")
            for item in results:
                if isinstance(item, dict) and (namespace is None
                                               or item.get("namespace") == namespace):
                    flows.append(FlowInfo.from_kestra(item))
            total = body.get("total")
            if not results or len(results) < FLOW_PAGE or (
                    isinstance(total, int) and page * FLOW_PAGE >= total):
                break
        return flows

    async def get_flow(self, namespace: str, flow_id: str) -> FlowInfo:
        body = await self._get_json(f"/flows/{segment(namespace)}/{segment(flow_id)}",
                                    params={"source": "true"})
        if not isinstance(body, dict):
            raise ProtocolError("a flow was not a JSON object")
        return FlowInfo.from_kestra(body)

    async def apply_flow(self, source: str) -> FlowInfo:
        """Create the flow, or update it (a new revision) if it exists."""
        headers = {"Content-Type": "application/x-yaml"}
        content = source.encode("utf-8")
        identity = flow_identity(source)
        if identity is not None:
            namespace, flow_id = identity
            with contextlib.suppress(NotFoundError):
                await self._send("GET", f"/flows/{segment(namespace)}/{segment(flow_id)}")
                body = self._json(await self._send(
                    "PUT", f"/flows/{segment(namespace)}/{segment(flow_id)}", content=content,
                    headers=headers))
                return FlowInfo.from_kestra(body)
        try:
            body = self._json(await self._send("POST", "/flows", content=content,
                                               headers=headers))
        except (ConflictError, ValidationError) as exc:
            if identity is None or "exist" not in str(exc):
                raise
            namespace, flow_id = identity  # created in the meantime: update it
            body = self._json(await self._send(
                "PUT", f"/flows/{segment(namespace)}/{segment(flow_id)}", content=content,
                headers=headers))
        if not isinstance(body, dict):
            raise ProtocolError("creating a flow did not answer the flow")
        return FlowInfo.from_kestra(body)

    async def delete_flow(self, namespace: str, flow_id: str) -> None:
        await self._send("DELETE", f"/flows/{segment(namespace)}/{segment(flow_id)}")

    # -- executions ---------------------------------------------------------------------------

    async def search_executions(self, query: ExecutionFilter) -> Page:
        info = await self._ensure()
        params = search_params(
            namespace=query.namespace, flow_id=query.flow_id, states=query.states,
            labels=query.labels, since=query.since, until=query.until, q=query.q,
            page=query.page, size=query.size, sort=query.sort,
            query_filters=info.query_filters)
        return await self._search(params)

    async def _search(self, params: list[tuple[str, str]]) -> Page:
        body = await self._get_json("/executions/search", params=params)
        if not isinstance(body, dict) or not isinstance(body.get("results"), list):
            raise ProtocolError("execution search did not answer {results, total}")
        results = [parse_execution(item) for item in body["results"]]
        total = body.get("total")
        return Page(results, total if isinstance(total, int) else len(results))

    def _remember_created(self, execution_id: str) -> None:
        now = time.monotonic()
        self._created = {k: t for k, t in self._created.items()
                         if now - t < self.retry_not_found}
        self._created[execution_id] = now

    def _recently_created(self, execution_id: str) -> bool:
        created = self._created.get(execution_id)
        return created is not None and time.monotonic() - created < self.retry_not_found

    async def _execution_doc(self, execution_id: str) -> Any:
        """GET an execution; a 404 right after its creation is retried (Kestra 2.x is
        eventually consistent), for `retry_not_found` seconds."""
        delay = 0.1
        while True:
            try:
                return await self._get_json(f"/executions/{segment(execution_id)}")
            except NotFoundError:
                if not self._recently_created(execution_id):
                    raise
                await asyncio.sleep(delay)
                delay = min(delay * 2, 1.0)

    async def get_execution(self, execution_id: str) -> Execution:
        return parse_execution(await self._execution_doc(execution_id))

    async def create_execution(self, namespace: str, flow_id: str,
                               inputs: dict[str, Any] | None = None,
                               labels: list[tuple[str, str]] | None = None) -> Execution:
        kwargs: dict[str, Any] = {"params": [("labels", f"{k}:{v}") for k, v in labels or []]}
        files = _multipart(inputs)
        if files:
            kwargs["files"] = files
        response = await self._send(
            "POST", f"/executions/{segment(namespace)}/{segment(flow_id)}", **kwargs)
        execution = parse_execution(self._json(response))
        self._remember_created(execution.id)
        return execution

    async def _act(self, execution_id: str, action: str, method: str = "POST", *,
                   params: list[tuple[str, str]] | None = None,
                   files: list[tuple[str, Any]] | None = None) -> Execution:
        """An execution action at the server's path style; 1.x answers some with an empty
        body (kill 202, pause 200, resume 204), and then the execution is read back."""
        info = await self._ensure()
        kwargs: dict[str, Any] = {}
        if params:
            kwargs["params"] = params
        if files:
            kwargs["files"] = files
        response = await self._send(method, action_path(execution_id, action, info.action_paths),
                                    **kwargs)
        body = self._json(response)
        if isinstance(body, dict) and "state" in body and "id" in body:
            return parse_execution(body)
        return await self.get_execution(execution_id)

    async def kill(self, execution_id: str) -> Execution:
        return await self._act(execution_id, "kill", "DELETE")

    async def restart(self, execution_id: str, task_run_id: str | None = None) -> Execution:
        params = [("taskRunId", task_run_id)] if task_run_id else None
        return await self._act(execution_id, "restart", params=params)

    async def replay(self, execution_id: str, task_run_id: str | None = None) -> Execution:
        params = [("taskRunId", task_run_id)] if task_run_id else None
        replay = await self._act(execution_id, "replay", params=params)
        self._remember_created(replay.id)
        return replay

    async def pause(self, execution_id: str) -> Execution:
        return await self._act(execution_id, "pause")

    async def resume(self, execution_id: str, inputs: dict[str, Any] | None = None
                     ) -> Execution:
        return await self._act(execution_id, "resume", files=_multipart(inputs))

    async def logs(self, execution_id: str, *, after_seq: int = 0,
                   min_level: str | None = None) -> list[LogEntry]:
        info = await self._ensure()
        params: list[tuple[str, str]] = []
        if min_level:
            level = min_level.upper()
            if info.log_level_filter == "filters":
                params.append(("filters[level][GREATER_THAN_OR_EQUAL_TO]", level))
            else:
                params.append(("minLevel", level))
        body = await self._get_json(f"/logs/{segment(execution_id)}", params=params)
        if not isinstance(body, list):
            raise ProtocolError("execution logs were not a JSON list")
        out: list[LogEntry] = []
        for position, item in enumerate(body, start=1):
            entry = parse_log(item, position)
            if entry is not None and entry.seq > after_seq:
                out.append(entry)
        return out

    # -- streams ------------------------------------------------------------------------------

    async def _open_stream(self, stack: contextlib.AsyncExitStack, path: str, *,
                           params: list[tuple[str, str | int | float | bool | None]]
                           | None = None,
                           headers: dict[str, str] | None = None) -> httpx.Response:
        """Open an SSE stream (inside `stack`); errors as core errors."""
        url = (await self._ensure()).prefix + path
        request_headers = {"Accept": "text/event-stream", "Cache-Control": "no-cache",
                           **(headers or {})}
        timeout = httpx.Timeout(self.timeout, read=self.stream_idle_timeout)
        try:
            response = await stack.enter_async_context(self._http().stream(
                "GET", url, params=params, headers=request_headers, timeout=timeout))
        except httpx.TimeoutException:
            raise BackendUnavailable(f"{self.base_url} did not answer within "
                                     f"{self.timeout:g} s (GET {url})") from None
        except httpx.TransportError as exc:
            raise BackendUnavailable(f"cannot reach {self.base_url}: "
                                     f"{exc or type(exc).__name__}") from None
        if response.status_code >= 300:
            body = await response.aread()
            raise error_for(response.status_code, body, where=f"GET {url}")
        return response

    async def _events(self, response: httpx.Response, parser: SSEParser
                      ) -> AsyncGenerator[SSEEvent, None]:
        """Events until the server closes the stream; a dropped connection or an idle
        timeout ends it the same way (the caller reconnects)."""
        try:
            async for chunk in response.aiter_bytes():
                for event in parser.feed(chunk):
                    yield event
        except (httpx.TransportError, httpx.TimeoutException):
            return

    def follow_execution(self, execution_id: str) -> AsyncIterator[Execution]:
        return self._follow_execution(execution_id)

    async def _follow_execution(self, execution_id: str) -> AsyncIterator[Execution]:
        """Kestra's `start`/`progress`/`end` stream; events without `state` are skipped; the
        iterator ends after `end` (or a terminal snapshot). A dropped stream is reopened, and
        a snapshot identical to the last one is not repeated."""
        backoff = Backoff(self.backoff_initial, self.backoff_max, self.max_reconnects)
        path = f"/executions/{segment(execution_id)}/follow"
        last: Execution | None = None
        while True:
            async with contextlib.AsyncExitStack() as stack:
                try:
                    response = await self._open_stream(stack, path)
                except NotFoundError:
                    if not self._recently_created(execution_id):
                        raise
                    await backoff.wait(NotFoundError(execution_id), f"follow {execution_id}")
                    continue
                except BackendUnavailable as exc:
                    await backoff.wait(exc, f"follow {execution_id}")
                    continue
                backoff.reset()
                events = contextlib.aclosing(self._events(response, SSEParser()))
                async for event in await stack.enter_async_context(events):
                    data = _loads(event.data)
                    if not isinstance(data, dict) or "state" not in data:
                        continue  # `start`, keepalives
                    execution = parse_execution(data)
                    if last is None or execution_signature(execution) != \
                            execution_signature(last) or event.id == "end":
                        last = execution
                        yield execution
                    if event.id == "end" or is_terminal(execution.state.current):
                        return
            await backoff.wait(BackendUnavailable("the stream closed"), f"follow {execution_id}")

    def follow_logs(self, execution_id: str, *, after_seq: int = 0) -> AsyncIterator[LogEntry]:
        return self._follow_logs(execution_id, after_seq)

    async def _follow_logs(self, execution_id: str, after_seq: int) -> AsyncIterator[LogEntry]:
        """Stored lines after `after_seq`, then live ones, across reconnects, exactly once.

        With sequence numbers (flowdeck), a reconnect asks for the lines after the last one
        seen. Without (Kestra), every connection replays the whole log: the lines delivered so
        far are counted by identity and that many occurrences are dropped again, so two equal
        lines are still both delivered once each; lines get numbers by their position.
        """
        backoff = Backoff(self.backoff_initial, self.backoff_max, self.max_reconnects)
        path = f"/logs/{segment(execution_id)}/follow"
        last_seq = after_seq  # flowdeck: the last sequence number delivered
        seen: Counter[int] = Counter()  # Kestra: identities of lines delivered (or skipped)
        pending_skip = after_seq  # Kestra: lines still to skip by position for `after_seq`
        position = after_seq  # Kestra: numbering of delivered lines
        while True:
            headers: dict[str, str] = {}
            params: list[tuple[str, str | int | float | bool | None]] = []
            if last_seq > 0:
                headers["Last-Event-ID"] = str(last_seq)
                params.append(("afterSequence", str(last_seq)))
            async with contextlib.AsyncExitStack() as stack:
                try:
                    response = await self._open_stream(stack, path, params=params,
                                                       headers=headers)
                except NotFoundError:
                    if not self._recently_created(execution_id):
                        raise
                    await backoff.wait(NotFoundError(execution_id), f"logs of {execution_id}")
                    continue
                except BackendUnavailable as exc:
                    await backoff.wait(exc, f"logs of {execution_id}")
                    continue
                backoff.reset()
                replayed = Counter(seen)
                events = contextlib.aclosing(self._events(response, SSEParser()))
                async for event in await stack.enter_async_context(events):
                    data = _loads(event.data)
                    if has_sequence(data):
                        entry = parse_log(data)
                        if entry is None or entry.seq <= last_seq:
                            continue
                        last_seq = entry.seq
                        yield entry
                        continue
                    entry = parse_log(data)
                    if entry is None:
                        continue  # a keepalive
                    identity = log_identity(entry)
                    if replayed[identity] > 0:
                        replayed[identity] -= 1
                        continue
                    seen[identity] += 1
                    if pending_skip > 0:
                        pending_skip -= 1
                        continue
                    position += 1
                    entry.seq = position
                    yield entry
            # The server closed the stream (it never does by itself) or the connection
            # dropped: reconnect after the first delay, without counting it as a failure.
            await asyncio.sleep(self.backoff_initial)

    def watch_executions(self) -> AsyncIterator[Execution]:
        return self._watch_executions()

    async def _watch_executions(self) -> AsyncIterator[Execution]:
        """Poll the newest executions and the unfinished ones every `poll_interval` seconds;
        yield each one that is new or changed since the watch began."""
        info = await self._ensure()
        began = datetime.now(UTC) - WATCH_MARGIN  # a little early: clocks differ
        known: dict[str, tuple[Any, ...]] = {}
        active: set[str] = set()
        first = True
        backoff = Backoff(self.backoff_initial, self.backoff_max, self.max_reconnects)
        while True:
            try:
                current = await self._poll(info, active)
            except BackendUnavailable as exc:
                await backoff.wait(exc, "watching executions")
                continue
            backoff.reset()
            for execution in current:
                signature = execution_signature(execution)
                previous = known.get(execution.id)
                known[execution.id] = signature
                if is_terminal(execution.state.current):
                    active.discard(execution.id)
                else:
                    active.add(execution.id)
                if previous == signature:
                    continue
                if first and last_change(execution) < began:
                    continue  # what was already there when the watch began
                yield execution
            if len(known) > 10 * self.watch_size:  # forget the oldest finished ones
                for key in list(known)[: len(known) - 5 * self.watch_size]:
                    if key not in active:
                        del known[key]
            first = False
            await asyncio.sleep(self.poll_interval)

    async def _poll(self, info: ServerInfo, active: set[str]) -> list[Execution]:
        sort = [("state.startDate", True)]
        recent = await self._search(search_params(
            namespace=None, flow_id=None, states=None, labels={}, since=None, until=None,
            q=None, page=1, size=self.watch_size, sort=sort, query_filters=info.query_filters))
        running = await self._search(search_params(
            namespace=None, flow_id=None, states=list(ACTIVE_STATES), labels={}, since=None,
            until=None, q=None, page=1, size=self.watch_size, sort=sort,
            query_filters=info.query_filters))
        by_id: dict[str, Execution] = {}
        for execution in [*running.results, *recent.results]:
            by_id[execution.id] = execution
        # Unfinished ones that dropped out of both pages: they finished, read them once.
        for execution_id in list(active - by_id.keys())[:20]:
            try:
                by_id[execution_id] = await self.get_execution(execution_id)
            except NotFoundError:
                active.discard(execution_id)
        return sorted(by_id.values(), key=lambda e: e.state.start_date)

    # -- approvals (flowdeck servers only) -----------------------------------------------------

    async def _approvals_server(self) -> None:
        info = await self._ensure()
        if not info.approvals:
            raise NotAvailable(APPROVALS_UNAVAILABLE)

    @staticmethod
    def _approval(body: Any) -> Approval:
        if not isinstance(body, dict):
            raise ProtocolError("an approval was not a JSON object")
        try:
            return Approval.from_dict(body)
        except (KeyError, TypeError, ValueError) as exc:
            raise ProtocolError(f"unreadable approval from the server: {exc!r}") from None

    async def list_approvals(self, status: str | None = "pending") -> list[Approval]:
        await self._approvals_server()
        body = await self._get_json("/approvals", params={"status": status or "all"})
        if not isinstance(body, list):
            raise ProtocolError("the approvals list was not a JSON list")
        return [self._approval(item) for item in body]

    async def get_approval(self, approval_id: str) -> Approval:
        await self._approvals_server()
        return self._approval(await self._get_json(f"/approvals/{segment(approval_id)}"))

    async def decide(self, approval_id: str, *, approve: bool, by: str,
                     comment: str | None = None) -> Approval:
        await self._approvals_server()
        verb = "approve" if approve else "reject"
        response = await self._send("POST", f"/approvals/{segment(approval_id)}/{verb}",
                                    json={"comment": comment, "decidedBy": by})
        return self._approval(self._json(response))

    async def decide_many(self, approval_ids: list[str], *, by: str,
                          comment: str | None = None) -> list[Approval]:
        await self._approvals_server()
        response = await self._send("POST", "/approvals/bulk-approve",
                                    json={"ids": list(approval_ids), "comment": comment,
                                          "decidedBy": by})
        body = self._json(response)
        if not isinstance(body, list):
            raise ProtocolError("bulk approval did not answer a JSON list")
        return [self._approval(item) for item in body]

    def watch_approvals(self) -> AsyncIterator[Approval]:
        return self._watch_approvals()

    async def _watch_approvals(self) -> AsyncIterator[Approval]:
        """Each created or decided approval (flowdeck's `/approvals/follow`); on Kestra, which
        has no approvals, the iterator simply ends. After a reconnect, what changed while the
        stream was down is caught up from the list."""
        info = await self._ensure()
        if not info.approvals:
            return
        backoff = Backoff(self.backoff_initial, self.backoff_max, self.max_reconnects)
        statuses: dict[str, str] = {}
        connected_before = False
        while True:
            async with contextlib.AsyncExitStack() as stack:
                try:
                    response = await self._open_stream(stack, "/approvals/follow")
                except (NotFoundError, PermissionDenied):
                    raise
                except BackendUnavailable as exc:
                    await backoff.wait(exc, "watching approvals")
                    continue
                backoff.reset()
                if connected_before:
                    for approval in await self.list_approvals("all"):
                        if statuses.get(approval.id) != approval.status:
                            statuses[approval.id] = approval.status
                            yield approval
                connected_before = True
                events = contextlib.aclosing(self._events(response, SSEParser()))
                async for event in await stack.enter_async_context(events):
                    data = _loads(event.data)
                    if not isinstance(data, dict) or not isinstance(data.get("approval"), dict):
                        continue
                    approval = self._approval(data["approval"])
                    statuses[approval.id] = approval.status
                    yield approval
            await asyncio.sleep(self.backoff_initial)


def _loads(text: str) -> Any:
    try:
        return json.loads(text) if text else None
    except ValueError:
        return None


__all__ = ["APPROVALS_UNAVAILABLE", "Backoff", "HttpBackend", "SSEEvent", "SSEParser"]
