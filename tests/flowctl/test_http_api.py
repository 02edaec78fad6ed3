"""The FlowCtl dialect over real HTTP: a uvicorn server on 127.0.0.1 over a real engine.

The spec's example end to end (its locations mapped onto files), the refusals, pagination,
cancel, health and metrics, every error in `{"error": "..."}`, and the rate limit (100 a minute
per address, with a controlled clock) with its headers on every answer.
"""

from __future__ import annotations

import contextlib
import sqlite3
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from flowctl.conftest import flowctl_extra
from flowctl.flowctl_helpers import generic, group_members, read_pid, until, workflow
from flowctl.test_workflows import SPEC_EXAMPLE
from flowdeck.engine.engine import Engine
from flowdeck.engine.keys import TokenStore
from flowdeck.server.app import ServerOptions
from helpers import open_engine
from live_server import start_server, stop_server

WORKFLOW_KEYS = {"id", "name", "description", "status", "tasks", "config", "created_at",
                 "updated_at", "started_at", "completed_at"}
TASK_KEYS = {"id", "workflow_id", "name", "type", "status", "payload", "result", "error",
             "retry_count", "max_retries", "priority", "dependencies", "created_at",
             "updated_at", "started_at", "completed_at"}
LIMIT_HEADERS = ("x-ratelimit-limit", "x-ratelimit-remaining", "x-ratelimit-reset")
UNKNOWN = "0190c6e0-0000-7000-8000-00000000dead"


class Clock:
    def __init__(self) -> None:
        self.now = 1_700_000_040.0  # the start of a one-minute window

    def __call__(self) -> float:
        return self.now


@dataclass
class Api:
    engine: Engine
    client: httpx.AsyncClient
    url: str


@contextlib.asynccontextmanager
async def flowctl_api(tmp_path: Path, files: Path, **extra: Any) -> AsyncIterator[Api]:
    """A live server; its rate limit is out of the way unless the test sets one."""
    engine = await open_engine(tmp_path / "data", extra={"flowctl": flowctl_extra(files)})
    auth_required = extra.pop("auth_required", None)
    options = ServerOptions(auth_required=auth_required,
                            max_body_bytes=extra.pop("max_body_bytes", 10 * 1024 * 1024),
                            extra={"flowctl_rate_limit": 100_000, **extra})
    server, task, url = await start_server(engine, options)
    client = httpx.AsyncClient(base_url=url, timeout=30)
    try:
        yield Api(engine, client, url)
    finally:
        await client.aclose()
        await stop_server(server, task)
        await engine.close()


def error_of(response: httpx.Response, status: int) -> str:
    """The spec's error body, exactly: `{"error": "..."}` and nothing else."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/json"
    body = response.json()
    assert set(body) == {"error"} and isinstance(body["error"], str) and body["error"], body
    assert "Traceback" not in response.text
    assert all(name in response.headers for name in LIMIT_HEADERS), response.headers
    message: str = body["error"]
    return message


async def test_the_spec_example_end_to_end(tmp_path: Path, files: Path) -> None:
    (files / "bucket" / "data.csv").write_text("id,email\n1,ada@example.org\n2,bob@example.org\n")
    tools = tmp_path / "bin"
    tools.mkdir()
    (tools / "validate_schema").write_text("#!/bin/sh\necho \"schema ok: $FLOWCTL_TASK_NAME\"\n")
    (tools / "validate_schema").chmod(0o755)
    async with flowctl_api(tmp_path, files) as api:
        api.engine.task_env["PATH"] = f"{tools}:{api.engine.task_env.get('PATH', '/bin')}"
        created = await api.client.post("/api/v1/workflows", json=SPEC_EXAMPLE)
        assert created.status_code == 201, created.text
        assert all(name in created.headers for name in LIMIT_HEADERS)
        body = created.json()
        assert set(body) == WORKFLOW_KEYS and body["status"] == "pending"
        assert (body["name"], body["description"]) == ("Data Processing",
                                                       "Process daily data files")
        assert body["config"] == {"max_concurrency": 10, "timeout": "1h", "retry_policy": {
            "max_attempts": 3, "initial_delay": "1s", "max_delay": "5m",
            "backoff_factor": 2.0}}
        assert [set(t) for t in body["tasks"]] == [TASK_KEYS, TASK_KEYS]
        assert [(t["name"], t["type"], t["status"], t["priority"], t["dependencies"],
                 t["max_retries"], t["started_at"]) for t in body["tasks"]] == [
            ("extract_data", "etl", "pending", 1, [], 3, None),
            ("validate_data", "generic", "pending", 2, ["extract_data"], 3, None)]

        await api.engine.flowctl.wait(body["id"], 30)
        done = (await api.client.get(f"/api/v1/workflows/{body['id']}")).json()
        assert done["status"] == "completed", done
        assert done["started_at"] and done["completed_at"]
        extract, validate = done["tasks"]
        assert extract["result"]["rows_read"] == extract["result"]["rows_written"] == 2
        assert validate["result"] == {"exit_code": 0, "output": "schema ok: validate_data"}
        assert validate["retry_count"] == 0 and validate["error"] is None
        with sqlite3.connect(files / "db.sqlite") as db:
            assert db.execute("SELECT id, email FROM staging ORDER BY id").fetchall() == [
                ("1", "ada@example.org"), ("2", "bob@example.org")]
        task = await api.client.get(f"/api/v1/tasks/{validate['id']}")
        assert task.json() == validate
        summaries = (await api.client.get(f"/api/v1/workflows/{body['id']}/tasks")).json()
        assert set(summaries) == {"tasks"}
        assert summaries["tasks"][1] == {k: validate[k] for k in (
            "id", "name", "type", "status", "priority", "dependencies", "created_at",
            "started_at", "completed_at")}


REFUSED = [
    (workflow(generic("a", "true", dependencies=["c"]), generic("b", "true", dependencies=["a"]),
              generic("c", "true", dependencies=["b"])),
     "tasks form a dependency cycle: 'a' -> 'c' -> 'b' -> 'a'"),
    (workflow(generic("load", "true", dependencies=["extract"])),
     "task 'load' depends on unknown task 'extract'"),
    (workflow({"name": "train", "type": "quantum"}), "task 'train' has unknown type 'quantum'"),
    (workflow(generic("ok", "true"), {"type": "generic", "payload": {"command": "true"}}),
     "tasks[1].name: name is required"),
    (workflow(generic("a", "true"), generic("a", "true")), "duplicate task name 'a'"),
    ([1, 2], "a workflow must be a JSON object"),
]


async def test_refused_definitions_are_400_naming_the_tasks(tmp_path: Path,
                                                              files: Path) -> None:
    async with flowctl_api(tmp_path, files) as api:
        for definition, expected in REFUSED:
            answer = await api.client.post("/api/v1/workflows", json=definition)
            assert expected in error_of(answer, 400), answer.text
        assert (await api.client.get("/api/v1/workflows")).json()["total"] == 0


async def test_hostile_bodies_are_400_with_a_message(tmp_path: Path, files: Path) -> None:
    async with flowctl_api(tmp_path, files) as api:
        for raw, expected in ((b"", "must be a workflow in JSON"),
                              (b"{bad", "invalid JSON: Expecting property name"),
                              (b"\xff\xfe{}", "not valid UTF-8"),
                              (b'{"name": "\xed\xa0\x80"}', "not valid UTF-8"),
                              (b"[" * 200_000, "nested too deeply"),
                              (b"9" * 5000, "a number has more than 4300 digits"),
                              (b'{"name": "\\ud800", "tasks": []}', "name: contains text")):
            answer = await api.client.post("/api/v1/workflows", content=raw)
            assert expected in error_of(answer, 400), raw[:20]
        assert (await api.client.get("/api/v1/workflows")).json()["total"] == 0


async def test_pagination_and_the_status_filter(tmp_path: Path, files: Path) -> None:
    async with flowctl_api(tmp_path, files) as api:
        ids = []
        for i in range(3):
            created = await api.client.post("/api/v1/workflows",
                                            json=workflow(generic("ok", "true"), name=f"w{i}"))
            ids.append(created.json()["id"])
        bad = (await api.client.post("/api/v1/workflows", json=workflow(
            generic("bad", "exit 1", max_retries=0), name="broken"))).json()["id"]
        for workflow_id in [*ids, bad]:
            await api.engine.flowctl.wait(workflow_id, 30)
        default = (await api.client.get("/api/v1/workflows")).json()
        assert set(default) == {"workflows", "total", "page", "limit", "total_pages"}
        assert (default["total"], default["page"], default["limit"],
                default["total_pages"]) == (4, 1, 10, 1)
        assert set(default["workflows"][0]) == {"id", "name", "description", "status", "tasks",
                                                "created_at", "updated_at"}
        first = (await api.client.get("/api/v1/workflows?page=1&limit=3")).json()
        second = (await api.client.get("/api/v1/workflows", params={"page": 2, "limit": 3})
                  ).json()
        assert [w["id"] for w in first["workflows"]] == [bad, ids[2], ids[1]]  # newest first
        assert [w["id"] for w in second["workflows"]] == [ids[0]]
        assert (first["total_pages"], second["page"]) == (2, 2)
        past = (await api.client.get("/api/v1/workflows?page=9&limit=3")).json()
        assert past["workflows"] == [] and past["total"] == 4
        failed = (await api.client.get("/api/v1/workflows?status=failed")).json()
        assert [w["name"] for w in failed["workflows"]] == ["broken"] and failed["total"] == 1
        assert (await api.client.get("/api/v1/workflows?limit=500")).json()["limit"] == 100
        for query, expected in (("page=0", "'page' must be between 1"),
                                ("limit=abc", "'limit' must be an integer"),
                                ("page=99999999999999999999", "'page' must be between"),
                                ("status=done", "invalid status 'done'")):
            assert expected in error_of(await api.client.get(f"/api/v1/workflows?{query}"), 400)


async def test_cancel_stops_the_tasks_then_is_a_conflict(tmp_path: Path, files: Path) -> None:
    pidfile = tmp_path / "pid"
    async with flowctl_api(tmp_path, files) as api:
        created = (await api.client.post("/api/v1/workflows", json=workflow(
            generic("long", f"echo $$ > {pidfile}; exec sleep 60"),
            generic("next", "true", dependencies=["long"])))).json()
        await until(lambda: read_pid(pidfile) is not None, what="the task never started")
        pgid = read_pid(pidfile)
        assert pgid is not None
        answer = await api.client.put(f"/api/v1/workflows/{created['id']}/cancel")
        assert answer.status_code == 200 and answer.json() == {"message": "Workflow cancelled"}
        after = (await api.client.get(f"/api/v1/workflows/{created['id']}")).json()
        assert after["status"] == "cancelled"
        assert [t["status"] for t in after["tasks"]] == ["cancelled", "cancelled"]
        await until(lambda: group_members(pgid) == [], timeout=3, what="the group outlived it")
        again = await api.client.put(f"/api/v1/workflows/{created['id']}/cancel")
        assert error_of(again, 409) == "Workflow is already cancelled"
        assert error_of(await api.client.put(f"/api/v1/workflows/{UNKNOWN}/cancel"),
                        404) == "Workflow not found"
        for path, message in ((f"/api/v1/workflows/{UNKNOWN}", "Workflow not found"),
                              (f"/api/v1/workflows/{UNKNOWN}/tasks", "Workflow not found"),
                              ("/api/v1/tasks/nope", "Task not found")):
            assert error_of(await api.client.get(path), 404) == message


async def test_health_metrics_and_prometheus(tmp_path: Path, files: Path) -> None:
    async with flowctl_api(tmp_path, files) as api:
        created = (await api.client.post("/api/v1/workflows",
                                         json=workflow(generic("a", "true")))).json()
        await api.engine.flowctl.wait(created["id"], 30)
        health = await api.client.get("/api/v1/health")
        assert health.status_code == 200 and set(health.json()) == {"status", "timestamp"}
        assert health.json()["status"] == "healthy"
        metrics = (await api.client.get("/api/v1/metrics")).json()
        assert metrics["workflows"]["total"] == metrics["workflows"]["completed"] == 1
        assert {"total", "running", "completed", "failed"} <= set(metrics["workflows"])
        assert {"total", "pending", "running", "completed", "failed"} <= set(metrics["tasks"])
        assert metrics["tasks"]["completed"] == 1 and set(metrics["workers"]) == {"active",
                                                                                   "idle"}
        text = await api.client.get("/metrics")
        assert text.status_code == 200
        assert text.headers["content-type"] == "text/plain; version=0.0.4; charset=utf-8"
        assert 'flowdeck_flowctl_workflows{status="completed"} 1' in text.text
        assert 'flowdeck_executions{state="SUCCESS"} 1' in text.text
        assert all(name in text.headers for name in LIMIT_HEADERS)
        # A store that cannot commit (here: closed under the server) is unhealthy, a 503.
        await api.engine.close()
        sick = await api.client.get("/api/v1/health")
        assert sick.status_code == 503 and sick.json()["status"] == "unhealthy"
        broken = await api.client.get(f"/api/v1/workflows/{created['id']}")
        assert error_of(broken, 500) == "an unexpected error occurred; see the server log"


async def test_every_error_under_its_paths_is_its_body(tmp_path: Path, files: Path) -> None:
    async with flowctl_api(tmp_path, files, auth_required=True,
                           max_body_bytes=64 * 1024) as api:
        tokens = TokenStore(api.engine.store, api.engine.clock)
        viewer = {"Authorization": f"Bearer {(await tokens.create('viewer'))[1]}"}
        operator = {"Authorization": f"Bearer {(await tokens.create('operator'))[1]}"}
        unauthenticated = await api.client.get("/api/v1/workflows")
        assert "no credentials" in error_of(unauthenticated, 401)
        assert unauthenticated.headers["www-authenticate"] == 'Basic realm="flowdeck"'
        error_of(await api.client.get("/metrics"), 401)
        error_of(await api.client.get("/api/v1/workflows/a/b/c"), 401)  # who asks, first
        assert "needs 'operator'" in error_of(await api.client.post(
            "/api/v1/workflows", json=workflow(generic("a", "true")), headers=viewer), 403)
        assert "needs 'operator'" in error_of(await api.client.put(
            f"/api/v1/workflows/{UNKNOWN}/cancel", headers=viewer), 403)
        assert error_of(await api.client.get("/api/v1/workflows/a/b/c", headers=viewer),
                        404) == "no route for GET /api/v1/workflows/a/b/c"
        error_of(await api.client.get("/metrics/more", headers=viewer), 404)
        error_of(await api.client.delete(f"/api/v1/workflows/{UNKNOWN}", headers=viewer), 405)
        error_of(await api.client.post("/api/v1/health", headers=viewer), 405)
        error_of(await api.client.post("/api/v1/workflows", content=b"x" * (65 * 1024),
                                       headers=operator), 413)
        created = await api.client.post("/api/v1/workflows", headers=operator,
                                        json=workflow(generic("a", "true")))
        assert created.status_code == 201
        listed = await api.client.get("/api/v1/workflows", headers=viewer)
        assert listed.json()["total"] == 1
        # Kestra's tenant-less paths beside these keep their problem+json.
        kestra = await api.client.get("/api/v1/flows/search")
        assert kestra.headers["content-type"] == "application/problem+json"
        assert "x-ratelimit-limit" not in kestra.headers


async def test_the_101st_request_in_a_minute_is_429(tmp_path: Path, files: Path) -> None:
    clock = Clock()
    async with flowctl_api(tmp_path, files, flowctl_rate_limit=100,
                           flowctl_clock=clock) as api:
        reset = str(int(clock.now) + 60)
        paths = ["/api/v1/tasks/nope", "/api/v1/workflows/a/b/c", "/metrics"]
        for n in range(100):  # every request counts: found, unknown, unrouted
            answer = await api.client.get(paths[n % 3])
            assert answer.status_code in (200, 404), answer.text
            assert answer.headers["x-ratelimit-limit"] == "100"
            assert answer.headers["x-ratelimit-remaining"] == str(99 - n)
            assert answer.headers["x-ratelimit-reset"] == reset
        refused = await api.client.get("/api/v1/health")
        assert error_of(refused, 429) == "Rate limit exceeded. Try again later."
        assert refused.headers["x-ratelimit-remaining"] == "0"
        assert refused.headers["retry-after"] == "60"
        assert refused.headers["x-ratelimit-reset"] == reset
        error_of(await api.client.delete("/api/v1/workflows/x"), 429)  # a 405 too
        error_of(await api.client.post("/api/v1/workflows", json={}), 429)
        # Per address: another loopback address has its own allowance.
        other = httpx.AsyncClient(base_url=api.url, transport=httpx.AsyncHTTPTransport(
            local_address="127.0.0.2"))
        async with other:
            assert (await other.get("/api/v1/health")).headers["x-ratelimit-remaining"] == "99"
        # Kestra's routes are not limited; the next window starts afresh.
        assert (await api.client.get("/api/v1/flows/search")).status_code == 200
        clock.now += 60
        fresh = await api.client.get("/api/v1/health")
        assert fresh.status_code == 200 and fresh.headers["x-ratelimit-remaining"] == "99"
        assert fresh.headers["x-ratelimit-reset"] == str(int(clock.now) + 60)
