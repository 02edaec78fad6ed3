"""`/v1/runs` against a live server: the document's curl example, get with phases and
absolute log URLs, list with paging, a step's log text, cancel mid-phase, and the workers'
internal status routes (service tokens only; engine-run tasks refuse them)."""

from __future__ import annotations

import asyncio
import json
import shutil
from pathlib import Path

import pytest

from forge.api_support import SHA, error_of, forge_api, install
from helpers import wait_for_state, wait_for_task_state

CURL_BODY = """{
    "repository": "mycompany/myrepo",
    "branch": "main",
    "commit_sha": "abc123def456",
    "triggered_by": "alice@company.com",
    "trigger_type": "push"
  }"""

MYREPO = """
    id: myrepo
    namespace: pipelines.mycompany
    tasks:
      - id: build
        type: io.kestra.plugin.core.log.Log
        message: built
    """

SLOW = """
    id: slow
    namespace: pipelines.acme
    tasks:
      - id: discover
        type: io.kestra.plugin.core.log.Log
        message: found
      - id: ci
        type: io.kestra.plugin.core.flow.Sleep
        duration: PT60S
      - id: release
        type: io.kestra.plugin.core.log.Log
        message: never
    """

EXTERNAL = """
    id: ext
    namespace: pipelines.acme
    tasks:
      - id: ci
        type: flowdeck.pipeline.External
        steps: [build, test]
      - id: release
        type: io.kestra.plugin.core.log.Log
        message: released
    """


@pytest.mark.skipif(shutil.which("curl") is None, reason="the example needs curl")
async def test_the_documents_curl_example(tmp_path: Path) -> None:
    async with forge_api(tmp_path) as api:
        await install(api.engine, MYREPO)
        proc = await asyncio.create_subprocess_exec(
            "curl", "-sS", "-i", "-X", "POST", f"{api.url}/v1/runs",
            "-H", f"Authorization: Bearer {api.secrets['alice']}",
            "-H", "Content-Type: application/json", "-d", CURL_BODY,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
        out, err = await asyncio.wait_for(proc.communicate(), 30)
        assert proc.returncode == 0, err
        head, _, payload = out.decode().partition("\r\n\r\n")
        assert head.startswith("HTTP/1.1 201"), head
        created = json.loads(payload)
        assert set(created) == {"id", "status", "started_at"}
        assert created["status"] == "pending" and created["started_at"].endswith("Z")
        execution = await api.engine.wait_until_terminal(created["id"], 30)
        assert execution.state.current == "SUCCESS"
        run = await api.ok("GET", f"/v1/runs/{created['id']}")
        assert (run["repository"], run["branch"], run["commit_sha"], run["triggered_by"],
                run["trigger_type"], run["status"]) == (
            "mycompany/myrepo", "main", "abc123def456", "alice@company.com", "push", "success")


async def test_a_run_with_phases_steps_logs_and_listing(tmp_path: Path) -> None:
    async with forge_api(tmp_path) as api:
        await install(api.engine)
        created = await api.ok("POST", "/v1/runs", status=201, json={
            "repository": "acme/shop", "branch": "main", "commit_sha": SHA,
            "triggered_by": "alice", "trigger_type": "push"})
        await api.engine.wait_until_terminal(created["id"], 30)
        run = await api.ok("GET", f"/v1/runs/{created['id']}", who="vic")
        assert set(run) == {"id", "repository", "branch", "commit_sha", "status",
                            "triggered_by", "trigger_type", "started_at", "completed_at",
                            "phases"}
        assert [(p["name"], p["group_number"], p["status"]) for p in run["phases"]] == [
            ("discover", 1, "success"), ("ci", 2, "success"), ("release", 3, "success")]
        ci = run["phases"][1]
        assert set(ci) == {"id", "name", "group_number", "status", "started_at",
                           "completed_at", "tasks"}
        assert [t["project_name"] for t in ci["tasks"]] == ["api", "web"]
        step = run["phases"][0]["tasks"][0]["steps"][0]
        assert set(step) == {"id", "name", "status", "exit_code", "logs_url"}
        assert (step["status"], step["exit_code"]) == ("success", 0)
        assert step["logs_url"] == (f"{api.url}/v1/runs/{run['id']}/steps/{step['id']}/logs")
        logs = await api.call("GET", step["logs_url"].removeprefix(api.url), who="vic")
        assert logs.status_code == 200
        assert logs.headers["content-type"] == "text/plain; charset=utf-8"
        assert "INFO found api" in logs.text
        # a second run on another branch, then the list: newest first, default limit 20
        await api.ok("POST", "/v1/runs", status=201, json={
            "repository": "acme/shop", "branch": "feature-x", "commit_sha": "1234567",
            "trigger_type": "manual"})
        listed = await api.ok("GET", "/v1/runs", params={"repository": "acme/shop"})
        assert (listed["total"], listed["limit"], listed["offset"]) == (2, 20, 0)
        assert set(listed["runs"][0]) == {"id", "repository", "commit_sha", "status",
                                          "started_at"}
        assert listed["runs"][1]["id"] == run["id"]
        only = await api.ok("GET", "/v1/runs", params={
            "repository": "acme/shop", "branch": "main", "limit": "1", "offset": "0"})
        assert only["total"] == 1 and [r["id"] for r in only["runs"]] == [run["id"]]
        paged = await api.ok("GET", "/v1/runs?repository=acme/shop&limit=1&offset=1")
        assert (paged["total"], paged["limit"], paged["offset"]) == (2, 1, 1)
        assert [r["id"] for r in paged["runs"]] == [run["id"]]
        manual = await api.ok("GET", f"/v1/runs/{listed['runs'][0]['id']}")
        assert manual["triggered_by"] == "alice"  # the caller, when the body names no one


async def test_no_pipeline_flow_is_a_404_naming_the_flow(tmp_path: Path) -> None:
    async with forge_api(tmp_path) as api:
        answer = await api.call("POST", "/v1/runs", json={
            "repository": "acme/nothing", "branch": "main", "commit_sha": SHA,
            "trigger_type": "push"})
        error = error_of(answer, 404, "resource_not_found")
        assert "'nothing' in namespace 'pipelines.acme'" in error["message"]
        error_of(await api.call("GET", "/v1/runs/not-a-uuid"), 404, "resource_not_found")
        error_of(await api.call("GET", "/v1/runs/01890000-0000-7000-8000-000000000000"), 404,
                 "resource_not_found")


async def test_cancel_mid_phase_is_204_and_the_run_is_cancelled(tmp_path: Path) -> None:
    async with forge_api(tmp_path) as api:
        await install(api.engine, SLOW)
        created = await api.ok("POST", "/v1/runs", status=201, json={
            "repository": "acme/slow", "branch": "main", "commit_sha": SHA,
            "trigger_type": "push"})
        await wait_for_task_state(api.engine, created["id"], "ci", "RUNNING")
        error_of(await api.call("DELETE", f"/v1/runs/{created['id']}", who="vic"), 403,
                 "authorization_failed")
        answer = await api.call("DELETE", f"/v1/runs/{created['id']}")
        assert answer.status_code == 204 and answer.content == b""
        run = await api.ok("GET", f"/v1/runs/{created['id']}")
        assert run["status"] == "cancelled" and run["completed_at"]
        assert [p["status"] for p in run["phases"]] == ["success", "failed", "skipped"]
        again = await api.call("DELETE", f"/v1/runs/{created['id']}")
        assert "already cancelled" in error_of(again, 409, "resource_conflict")["message"]


async def test_workers_report_with_service_tokens_only(tmp_path: Path) -> None:
    async with forge_api(tmp_path) as api:
        await install(api.engine, EXTERNAL)
        created = await api.ok("POST", "/v1/runs", status=201, json={
            "repository": "acme/ext", "branch": "main", "commit_sha": SHA,
            "trigger_type": "push"})
        await wait_for_state(api.engine, created["id"], "RUNNING")
        run = await api.ok("GET", f"/v1/runs/{created['id']}")
        task = run["phases"][0]["tasks"][0]
        build = task["steps"][0]
        step_path, task_path = f"/v1/steps/{build['id']}/status", f"/v1/tasks/{task['id']}/status"
        # anyone but a service account is refused, the admin too; a service account may
        # call nothing else
        for who in ("alice", "root"):
            error_of(await api.call("PUT", step_path, who, json={"status": "running"}), 403,
                     "authorization_failed")
        error_of(await api.call("GET", f"/v1/runs/{created['id']}", "worker"), 403,
                 "authorization_failed")
        step = await api.ok("PUT", step_path, "worker", json={
            "status": "success", "exit_code": 0, "logs_s3_key": "runs/x/build.log"})
        assert (step["status"], step["exit_code"], step["logs_s3_key"]) == (
            "success", 0, "runs/x/build.log")
        bad = await api.call("PUT", step_path, "worker", json={"status": "done"})
        assert error_of(bad, 400, "invalid_request")["details"]["field"] == "status"
        done = await api.ok("PUT", task_path, "worker", json={"status": "success"})
        assert done["status"] == "success"
        await wait_for_state(api.engine, created["id"], "SUCCESS")
        # an engine-run task cannot be reported on
        final = await api.ok("GET", f"/v1/runs/{created['id']}")
        engine_task = final["phases"][1]["tasks"][0]
        refused = await api.call("PUT", f"/v1/tasks/{engine_task['id']}/status", "worker",
                                 json={"status": "success"})
        assert "run by the engine" in error_of(refused, 409, "resource_conflict")["message"]
