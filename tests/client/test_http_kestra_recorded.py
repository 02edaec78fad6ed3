"""HttpBackend against answers in real Kestra 1.0.3 and 2.0.0 shapes.

A real Kestra cannot run here, so `recordings/kestra-*.json` hold its answers, written from
the API research (shapes, status codes, headers, SSE framing) and replayed through
`httpx.MockTransport` by `KestraReplay`, which answers like the server would: Basic auth on
every non-open route (401 otherwise, in that version's body shape), the version's 404 for an
unknown route, a response sequence per route (the last one repeats), SSE bodies cut into small
chunks. This stand-in is only ever used for third-party Kestra shapes, never for flowdeck's own
server (see test_http_flowdeck.py for that).
"""

from __future__ import annotations

import asyncio
import base64
import json
import re
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

from flowdeck.client.backend import Backend, ExecutionFilter
from flowdeck.client.http import HttpBackend, SSEParser
from flowdeck.client.kestra_compat import (
    detect_server,
    parse_version,
    search_params,
)
from flowdeck.client.kestra_pauses import lacking
from flowdeck.core.errors import (
    BackendUnavailable,
    BadRequestError,
    ConflictError,
    NotFoundError,
    PermissionDenied,
    ValidationError,
)
from flowdeck.core.states import is_terminal

RECORDINGS = Path(__file__).parent / "recordings"
EX1 = "4wjtkzwVGBM9yKnjm3yv8r"
RUNNING_ID = "7KpQ2mZx9LrT4vWc1bN8sJ"
REVIEW_ID = "1aB2cD3eF4gH5iJ6kL7mN8"
PAUSED_ID = "3ZyXwVuTsRqPoNmLkJiHgF"
FAILED_ID = "5QwErTyUiOpAsDfGhJkLzX"
REPLAY_ID = "0PlMoKnIjBuHvYgCtFxRdZ"
NEW_ID = "9MnBvCxZaSdFgHjKlPoIuY"
CHUNK = 7  # SSE bodies arrive in small pieces, as over a real network


@dataclass
class KestraReplay:
    """A recorded Kestra, answering through httpx.MockTransport."""

    recording: dict[str, Any]
    requests: list[httpx.Request] = field(default_factory=list)
    served: dict[int, int] = field(default_factory=dict)
    #: What has happened: "METHOD path" of each request answered, and events a test says
    #: happened elsewhere (`happen`); a response with `"after"` is served once it has.
    seen: set[str] = field(default_factory=set)

    def happen(self, event: str) -> None:
        """Something another client did (e.g. "elsewhere: resumed")."""
        self.seen.add(event)

    @classmethod
    def load(cls, version: str) -> KestraReplay:
        return cls(json.loads((RECORDINGS / f"kestra-{version}.json").read_text()))

    def backend(self, **kw: Any) -> HttpBackend:
        auth = self.recording["auth"]
        options: dict[str, Any] = {"username": auth["username"], "password": auth["password"],
                                   "backoff_initial": 0.01, "poll_interval": 0.01}
        options.update(kw)
        return HttpBackend("https://kestra.example.com", transport=httpx.MockTransport(
            self.handle), **options)

    def paths(self, method: str | None = None) -> list[str]:
        return [r.url.path for r in self.requests if method in (None, r.method)]

    def _authorised(self, request: httpx.Request) -> bool:
        auth = self.recording["auth"]
        path = request.url.path
        open_paths: list[str] = auth["open"]
        if any(path == p or (p.endswith("/") and path.startswith(p)) for p in open_paths):
            return True
        expected = base64.b64encode(f"{auth['username']}:{auth['password']}".encode()).decode()
        return bool(request.headers.get("authorization") == f"Basic {expected}")

    async def handle(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        if not self._authorised(request):
            return self._respond(self.recording["auth"]["unauthorized"], request)
        for index, entry in enumerate(self.recording["entries"]):
            wanted = entry["request"]
            if wanted["method"] != request.method or wanted["path"] != request.url.path:
                continue
            query = wanted.get("query") or {}
            if any(request.url.params.get(k) != v for k, v in query.items()):
                continue
            return self._respond(self._choose(index, entry["responses"]), request)
        return self._respond(self.recording["not_found"], request)

    def _choose(self, index: int, responses: list[dict[str, Any]]) -> dict[str, Any]:
        """The latest response whose `after` has happened; else the next of the others in
        turn (the last one repeats)."""
        for answer in reversed(responses):
            if answer.get("after") in self.seen:
                return answer
        plain = [a for a in responses if "after" not in a]
        count = self.served.get(index, 0)
        self.served[index] = count + 1
        return plain[min(count, len(plain) - 1)]

    def _respond(self, answer: dict[str, Any], request: httpx.Request) -> httpx.Response:
        self.seen.add(f"{request.method} {request.url.path}")
        headers = dict(answer.get("headers") or {})
        path = request.url.path
        if "sse" in answer:
            return httpx.Response(answer["status"], headers=headers,
                                  stream=SSEStream(answer["sse"].encode(),
                                                   hold=answer.get("hold", False)))
        if "json" in answer:
            text = json.dumps(answer["json"]).replace("{path}", path)
            return httpx.Response(answer["status"], headers=headers, content=text.encode())
        return httpx.Response(answer["status"], headers=headers,
                              content=answer.get("text", "").encode())


class SSEStream(httpx.AsyncByteStream):
    """An SSE body in small chunks; `hold` keeps it open afterwards, as Kestra's log follow
    does (it never ends by itself)."""

    def __init__(self, body: bytes, hold: bool) -> None:
        self.body = body
        self.hold = hold
        self.closed = asyncio.Event()

    async def __aiter__(self) -> AsyncIterator[bytes]:
        for start in range(0, len(self.body), CHUNK):
            yield self.body[start:start + CHUNK]
            await asyncio.sleep(0)
        if self.hold:
            await self.closed.wait()

    async def aclose(self) -> None:
        self.closed.set()


@pytest.fixture(params=["1.0.3", "2.0.0"])
def kestra(request: pytest.FixtureRequest) -> KestraReplay:
    return KestraReplay.load(request.param)


@pytest.fixture
def v1() -> KestraReplay:
    return KestraReplay.load("1.0.3")


@pytest.fixture
def v2() -> KestraReplay:
    return KestraReplay.load("2.0.0")


# -- detection --------------------------------------------------------------------------------


async def test_detects_kestra_1x(v1: KestraReplay) -> None:
    backend = v1.backend()
    assert isinstance(backend, Backend)
    caps = await backend.connect()
    assert (caps.kind, caps.version, caps.action_paths) == ("kestra", "1.0.3", "1.x")
    assert caps.approvals and not caps.releases and not caps.staging  # approvals: pauses
    assert backend.server is not None and backend.server.prefix == "/api/v1/main"
    # 1.x has no /configs/login: answered with its 404, so detection falls to /configs.
    assert v1.paths() == ["/api/v1/configs/login", "/api/v1/configs"]
    assert all(r.headers["authorization"].startswith("Basic ") for r in v1.requests)
    await backend.close()


async def test_detects_kestra_2x(v2: KestraReplay) -> None:
    backend = v2.backend()
    caps = await backend.connect()
    assert (caps.kind, caps.version, caps.action_paths) == ("kestra", "2.0.0", "2.x")
    assert caps.approvals and caps.lacking == ()
    await backend.close()


async def test_wrong_credentials_are_permission_denied(kestra: KestraReplay) -> None:
    backend = kestra.backend(password="wrong")
    with pytest.raises(PermissionDenied) as denied:
        await backend.connect()
    assert "authentication failed" in str(denied.value)
    await backend.close()


async def test_a_bearer_token_is_sent_as_such(v2: KestraReplay) -> None:
    backend = v2.backend(username=None, password=None, token="tok-123")
    with pytest.raises(PermissionDenied):  # this OSS server only knows Basic
        await backend.connect()
    assert v2.requests[-1].headers["authorization"] == "Bearer tok-123"
    await backend.close()


def test_version_rules() -> None:
    assert parse_version("1.0.3") == (1, 0, 3)
    assert parse_version("2.1.0-SNAPSHOT") == (2, 1, 0)
    assert parse_version("v0.22") == (0, 22, 0)
    assert parse_version("develop") is None
    old = detect_server({"version": "0.21.4"}, login_endpoint=False)
    assert (old.prefix, old.action_paths, old.query_filters) == ("/api/v1", "1.x", False)
    tenant = detect_server({"version": "0.23.0"}, login_endpoint=False)
    assert (tenant.prefix, tenant.action_paths) == ("/api/v1/main", "1.x")
    newest = detect_server({"version": "nightly"}, login_endpoint=True)
    assert newest.action_paths == "2.x"
    ours = detect_server({"version": "2.0.0", "flowdeckVersion": "0.1.0"}, login_endpoint=True)
    assert (ours.kind, ours.version, ours.approvals) == ("flowdeck", "0.1.0", True)


# -- reading both shapes ----------------------------------------------------------------------


async def test_a_1x_execution_with_embedded_outputs(v1: KestraReplay) -> None:
    backend = v1.backend()
    execution = await backend.get_execution(EX1)
    assert execution.id == EX1 and execution.flow_revision == 2
    assert execution.outputs == {"greeting": "hi"}
    assert [tr.task_id for tr in execution.task_runs] == ["log", "echo"]
    assert execution.task_runs[1].outputs == {"exitCode": 0, "vars": {"greeting": "hi"}}
    assert execution.task_runs[0].outputs is None
    assert execution.task_runs[1].attempts[0].state.current == "SUCCESS"
    assert execution.trigger is not None and execution.trigger["id"] == "hook"
    assert ("team", "data") in execution.labels
    assert [h.state for h in execution.state.histories] == ["CREATED", "RUNNING", "SUCCESS"]
    assert execution.state.duration_seconds(execution.state.start_date) == pytest.approx(1.376954)
    await backend.close()


async def test_a_2x_api_execution(v2: KestraReplay) -> None:
    backend = v2.backend()
    execution = await backend.get_execution(EX1)
    assert (execution.namespace, execution.flow_id, execution.flow_revision) == (
        "acceptance.kestra", "hello", 3)
    assert execution.outputs is None
    run = execution.task_runs[0]  # ApiTaskRun: no executionId/namespace/flowId of its own
    assert (run.execution_id, run.namespace, run.flow_id) == (EX1, "acceptance.kestra", "hello")
    assert all(tr.outputs is None for tr in execution.task_runs)
    await backend.close()


async def test_search_pages_in_both_shapes(kestra: KestraReplay) -> None:
    backend = kestra.backend()
    page = await backend.search_executions(ExecutionFilter(
        namespace="acceptance", states=["RUNNING", "SUCCESS"], labels={"team": "data"},
        size=50))
    assert page.total == len(page.results) >= 2
    assert EX1 in {e.id for e in page.results}
    [request] = [r for r in kestra.requests if r.url.path.endswith("/executions/search")]
    params = request.url.params
    assert params["filters[namespace][PREFIX]"] == "acceptance"
    assert params["filters[state][IN]"] == "RUNNING,SUCCESS"
    assert params["filters[labels][EQUALS][team]"] == "data"
    assert (params["size"], params["sort"]) == ("50", "state.startDate:desc")
    await backend.close()


def test_legacy_search_parameters_before_filters() -> None:
    params = search_params(namespace="ns", flow_id="f", states=["FAILED", "KILLED"],
                           labels={"team": "data"}, since=None, until=None, q="x", page=2,
                           size=10, sort=[("state.startDate", True)], query_filters=False)
    assert params == [("page", "2"), ("size", "10"), ("sort", "state.startDate:desc"),
                      ("namespace", "ns"), ("flowId", "f"), ("state", "FAILED"),
                      ("state", "KILLED"), ("labels", "team:data"), ("q", "x")]


async def test_an_unknown_state_is_kept_raw_and_not_terminal(v2: KestraReplay) -> None:
    backend = v2.backend()
    execution = await backend.get_execution(REVIEW_ID)
    assert execution.state.current == "QUEUED_FOR_REVIEW"
    assert not is_terminal(execution.state.current)
    assert execution.state.end_date is None
    seen = [e.state.current async for e in backend.follow_execution(REVIEW_ID)]
    # `start` (no state) is skipped; the unknown state does not end the stream; `end` does.
    assert seen == ["QUEUED_FOR_REVIEW", "RUNNING", "SUCCESS"]
    await backend.close()


async def test_follow_execution_1x(v1: KestraReplay) -> None:
    backend = v1.backend()
    snapshots = [e async for e in backend.follow_execution(EX1)]
    assert [e.state.current for e in snapshots] == ["RUNNING", "SUCCESS"]
    assert snapshots[-1].task_runs[1].outputs == {"exitCode": 0, "vars": {"greeting": "hi"}}
    follow = next(r for r in v1.requests if r.url.path.endswith("/follow"))
    assert follow.headers["accept"] == "text/event-stream"
    await backend.close()


# -- actions: 1.x paths and empty answers, 2.x /actions/ ---------------------------------------


async def test_1x_action_paths_and_empty_answers(v1: KestraReplay) -> None:
    backend = v1.backend()
    killed = await backend.kill(RUNNING_ID)  # 202, empty: read back
    assert (killed.id, killed.state.current) == (RUNNING_ID, "KILLING")
    paused = await backend.pause(PAUSED_ID)  # 200, empty
    assert paused.id == PAUSED_ID
    resumed = await backend.resume(PAUSED_ID, {"reason": "ok", "count": 3})  # 204
    assert resumed.state.current == "RUNNING"
    restarted = await backend.restart(FAILED_ID)
    assert (restarted.state.current, restarted.attempt_number) == ("RESTARTED", 2)
    actions = [(r.method, r.url.path) for r in v1.requests if r.method in ("POST", "DELETE")]
    assert actions == [
        ("DELETE", f"/api/v1/main/executions/{RUNNING_ID}/kill"),
        ("POST", f"/api/v1/main/executions/{PAUSED_ID}/pause"),
        ("POST", f"/api/v1/main/executions/{PAUSED_ID}/resume"),
        ("POST", f"/api/v1/main/executions/{FAILED_ID}/restart")]
    resume = next(r for r in v1.requests if r.url.path.endswith("/resume"))
    assert resume.headers["content-type"].startswith("multipart/form-data")
    body = resume.read().decode()
    assert 'name="reason"\r\n\r\nok\r\n' in body and 'name="count"\r\n\r\n3\r\n' in body
    await backend.close()


async def test_2x_action_paths_answer_the_execution(v2: KestraReplay) -> None:
    backend = v2.backend()
    assert (await backend.kill(RUNNING_ID)).state.current == "KILLING"
    assert (await backend.pause(RUNNING_ID)).state.current == "PAUSED"
    assert (await backend.resume(PAUSED_ID)).state.current == "RUNNING"
    assert (await backend.restart(FAILED_ID)).attempt_number == 2
    replay = await backend.replay(FAILED_ID)
    assert (replay.id, replay.original_id) == (REPLAY_ID, FAILED_ID)
    writes = [(r.method, r.url.path) for r in v2.requests if r.method in ("POST", "DELETE")]
    assert writes == [
        ("DELETE", f"/api/v1/main/executions/{RUNNING_ID}/actions/kill"),
        ("POST", f"/api/v1/main/executions/{RUNNING_ID}/actions/pause"),
        ("POST", f"/api/v1/main/executions/{PAUSED_ID}/actions/resume"),
        ("POST", f"/api/v1/main/executions/{FAILED_ID}/actions/restart"),
        ("POST", f"/api/v1/main/executions/{FAILED_ID}/actions/replay")]
    # Only what the actions answered: nothing was read back.
    assert not [p for p in v2.paths("GET") if "/executions/" in p]
    await backend.close()


async def test_create_then_read_retries_a_404_on_2x(v2: KestraReplay) -> None:
    backend = v2.backend()
    created = await backend.create_execution("acceptance.kestra", "hello",
                                             labels=[("team", "data")])
    assert (created.id, created.state.current) == (NEW_ID, "CREATED")
    create = next(r for r in v2.requests if r.method == "POST")
    assert create.url.params["labels"] == "team:data"
    assert create.content == b""  # no inputs: no body at all, as kestrapy sends
    current = await backend.get_execution(NEW_ID)  # two 404s first, then the execution
    assert current.state.current == "RUNNING"
    assert v2.paths("GET").count(f"/api/v1/main/executions/{NEW_ID}") == 3
    with pytest.raises(NotFoundError):  # an id not just created: no retry
        await backend.get_execution("nope")
    assert v2.paths("GET").count("/api/v1/main/executions/nope") == 1
    await backend.close()


# -- errors in both body shapes -----------------------------------------------------------------


async def test_errors_1x_json_error_bodies(v1: KestraReplay) -> None:
    backend = v1.backend()
    with pytest.raises(NotFoundError) as missing:
        await backend.get_execution("nope")
    assert str(missing.value) == "Not Found: Execution 'nope' not found"
    with pytest.raises(ValidationError) as invalid:
        await backend.apply_flow("id: x\nnamespace: y\ntasks: [{id: a, type: nope}]\n")
    assert "tasks[0].type: Invalid type" in str(invalid.value)
    with pytest.raises(ConflictError) as conflict:
        await backend.resume(RUNNING_ID)
    assert "is not paused" in str(conflict.value)
    await backend.close()


async def test_errors_2x_problem_json(v2: KestraReplay) -> None:
    backend = v2.backend()
    with pytest.raises(NotFoundError) as missing:
        await backend.get_execution("nope")
    assert str(missing.value) == "Execution 'nope' not found"
    with pytest.raises(ValidationError) as invalid:
        await backend.apply_flow("id: x\nnamespace: y\ntasks: []\n")
    assert invalid.value.problems == [("tasks", "must not be empty")]
    with pytest.raises(ConflictError) as conflict:
        await backend.resume(RUNNING_ID)
    assert "is not paused" in str(conflict.value)
    with pytest.raises(BadRequestError) as bad:
        await backend.search_executions(ExecutionFilter(states=["NOPE"]))
    assert "NOPE" in str(bad.value)
    with pytest.raises(BackendUnavailable) as failed:
        await backend.get_flow("acceptance.kestra", "broken")
    assert "500" in str(failed.value)
    await backend.close()


# -- logs ---------------------------------------------------------------------------------------


async def test_logs_level_filter_per_version(kestra: KestraReplay) -> None:
    backend = kestra.backend()
    every = await backend.logs(EX1)
    assert [e.seq for e in every] == list(range(1, len(every) + 1))  # numbered by position
    assert all(e.execution_id == EX1 for e in every)
    warn = await backend.logs(EX1, min_level="WARN")
    assert [e.level for e in warn] == ["WARN"]
    request = [r for r in kestra.requests if r.url.path.endswith(f"/logs/{EX1}")][-1]
    if backend.server and backend.server.api_version.startswith("1."):
        assert request.url.params["minLevel"] == "WARN"
    else:
        assert request.url.params["filters[level][GREATER_THAN_OR_EQUAL_TO]"] == "WARN"
    assert [e.seq for e in await backend.logs(EX1, after_seq=2)] == list(
        range(3, len(every) + 1))
    await backend.close()


async def test_log_follow_without_sequence_numbers_survives_a_reconnect(
        v2: KestraReplay) -> None:
    backend = v2.backend()
    stream = backend.follow_logs(EX1)
    got = []
    async with asyncio.timeout(10):
        async for entry in stream:
            got.append(entry)
            if entry.message == "done":
                break
    await stream.aclose()  # type: ignore[attr-defined]
    # First connection: starting, tick; then it drops, a reconnect gets a 503, and the next
    # one replays everything. The replayed lines are dropped, the second "tick" (same text,
    # same instant) is a line of its own and is kept; keepalives never show.
    assert [(e.seq, e.message) for e in got] == [
        (1, "starting"), (2, "tick"), (3, "tick"), (4, "done")]
    assert got[-1].level == "WARN"
    assert len([p for p in v2.paths() if p.endswith("/follow")]) == 3


async def test_log_follow_from_a_position_on_kestra(v2: KestraReplay) -> None:
    backend = v2.backend()
    stream = backend.follow_logs(EX1, after_seq=2)
    got = []
    async with asyncio.timeout(10):
        async for entry in stream:
            got.append((entry.seq, entry.message))
            if entry.message == "done":
                break
    await stream.aclose()  # type: ignore[attr-defined]
    assert got == [(3, "tick"), (4, "done")]


# -- the approval queue on Kestra: executions paused on a Pause task ------------------------------

GATE, CONTESTED = "6GaTeWaItInGfOrYoU2xQz", "8CoNtEsTeDpAuSeOnE4rTy"
REJECT = "2ReJeCtMePlEaSeNoW7uIo"


def form_of(request: httpx.Request) -> dict[str, str]:
    body = request.read().decode()
    return dict(re.findall(r'name="([^"]+)"\r\n\r\n([^\r]*)\r\n', body))


async def test_the_queue_is_the_executions_paused_on_a_pause_task(kestra: KestraReplay) -> None:
    backend = kestra.backend()
    caps = await backend.connect()
    assert caps.approvals and caps.lacking == ()
    queue = await backend.list_approvals()
    assert [a.execution_id for a in queue] == [GATE, CONTESTED, REJECT]  # longest waiting first
    gate = queue[0]
    assert (gate.id, gate.task_id, gate.status) == (f"{GATE}:tr6GaTeW", "approve", "pending")
    assert gate.title == "Release the payouts?"
    assert gate.created_at.isoformat() == "2025-06-01T09:00:02+00:00"  # paused since
    assert gate.display_fields == ["input", "type", "default", "required"]
    assert gate.rows == [{"input": "reason", "type": "STRING", "default": "ok", "required": "no"},
                         {"input": "ticket", "type": "INT", "default": "", "required": "no"}]
    [search] = [r for r in kestra.requests if r.url.path.endswith("/executions/search")]
    assert search.url.params["filters[state][IN]"] == "PAUSED"
    flows = [r for r in kestra.requests if "/flows/" in r.url.path]
    assert len(flows) == 1 and flows[0].url.params["revision"] == "1"  # read once, kept
    assert await backend.list_approvals("rejected") == []  # Kestra keeps no decisions
    await backend.close()


async def test_approve_resumes_with_the_onresume_defaults(kestra: KestraReplay) -> None:
    backend = kestra.backend()
    [gate, *_] = await backend.list_approvals()
    decided = await backend.decide(gate.id, approve=True, by="rita", comment="all checked")
    assert (decided.status, decided.decided_by, decided.comment) == (
        "approved", "rita", "all checked")
    [resume] = [r for r in kestra.requests if r.method == "POST"]
    assert resume.url.path.endswith(f"{GATE}/actions/resume" if "2.0" in
                                    kestra.recording["server"] else f"{GATE}/resume")
    assert form_of(resume) == {"reason": "all checked"}  # the comment fills `reason`
    await backend.close()


async def test_the_first_decision_wins_on_kestra(kestra: KestraReplay) -> None:
    backend = kestra.backend()
    queue = await backend.list_approvals()
    contested = next(a for a in queue if a.execution_id == CONTESTED)
    kestra.happen("elsewhere: resumed")  # from Kestra's UI, meanwhile
    with pytest.raises(ConflictError) as lost:
        await backend.decide(contested.id, approve=False, by="rita", comment="no")
    assert str(lost.value) == (f"execution {CONTESTED} was already approved (resumed, now "
                               "RUNNING) at 2025-06-01T11:00:00Z")
    assert lost.value.details["approvalStatus"] == "approved"
    assert not [r for r in kestra.requests if r.method in ("POST", "DELETE")]
    await backend.close()


async def test_reject_kills_and_keeps_the_comment_as_labels(kestra: KestraReplay) -> None:
    backend = kestra.backend()
    queue = await backend.list_approvals()
    rejected = next(a for a in queue if a.execution_id == REJECT)
    decided = await backend.decide(rejected.id, approve=False, by="rita", comment="not today")
    assert decided.status == "rejected"
    writes = [(r.method, r.url.path.rsplit("/", 1)[-1]) for r in kestra.requests
              if r.method in ("POST", "DELETE")]
    assert writes == [("DELETE", "kill"), ("POST", "labels")]
    labels = json.loads(kestra.requests[-1].read())
    assert labels == [{"key": "team", "value": "ops"},
                      {"key": "flowdeck.rejected-by", "value": "rita"},
                      {"key": "flowdeck.comment", "value": "not today"}]
    await backend.close()


def test_an_older_kestra_says_what_it_lacks() -> None:
    assert lacking("1.0.3") == lacking("2.0.0") == lacking("develop") == ()
    assert lacking("0.24.2") == (
        "reject: killing a PAUSED execution needs Kestra 1.0 or later",)
    assert len(lacking("0.19.0")) == 2


async def test_watch_approvals_polls_the_paused_executions(v2: KestraReplay) -> None:
    backend = v2.backend()
    stream = backend.watch_approvals()
    got = []
    async with asyncio.timeout(10):
        async for approval in stream:
            got.append((approval.execution_id, approval.status))
            if len(got) == 3:
                break
    await stream.aclose()  # type: ignore[attr-defined]
    assert got == [(GATE, "pending"), (CONTESTED, "pending"), (REJECT, "pending")]


async def test_watch_executions_polls_search_and_yields_changes(v2: KestraReplay) -> None:
    backend = v2.backend()
    stream = backend.watch_executions()
    got = []
    async with asyncio.timeout(10):
        async for execution in stream:
            got.append((execution.id, execution.state.current))
            if execution.id == "9MnBvCxZaSdFgHjKlPoIuY":
                break
    await stream.aclose()  # type: ignore[attr-defined]
    # Poll 1 only sets the baseline (nothing changed since the watch began); poll 2 sees the
    # running one finish; poll 3 a new one. The unknown-state one never changes: not yielded.
    assert got == [(RUNNING_ID, "SUCCESS"), (NEW_ID, "CREATED")]
    searches = [r for r in v2.requests if r.url.path.endswith("/executions/search")]
    assert {r.url.params["sort"] for r in searches} == {"state.startDate:desc"}
    assert any("filters[state][IN]" in r.url.params for r in searches)


def test_sse_parser_handles_split_frames_comments_and_crlf() -> None:
    parser = SSEParser()
    body = b": ping\r\n\r\nid: start\r\ndata: {\"a\":1}\r\n\r\nid: x\ndata: one\ndata: two\n\n"
    events = []
    for i in range(0, len(body), 3):
        events.extend(parser.feed(body[i:i + 3]))
    assert [(e.id, e.data) for e in events] == [("start", '{"a":1}'), ("x", "one\ntwo")]
