"""Releases, deployments and approvals against a live server: every route, by any
identifier, repository ids with a slash (and `%2F`), the production gate over HTTP, the
revoke extension, deploy requests, the event log and its SSE follow, the projects overview."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

from forge.api_support import ForgeApi, error_of, forge_api, install
from helpers import wait_for_state

SHA1, SHA2 = "1111111aaaaaaa", "2222222bbbbbbb"
ARTIFACTS = [{"name": "api", "type": "container",
              "tracking_oci_uri": "registry.example.com/acme/shop/api:1111111",
              "primary_published_uri": "registry.example.com/acme/shop/api:latest"}]


async def make_release(api: ForgeApi, sha: str, who: str = "alice",
                       **extra: Any) -> dict[str, Any]:
    created: dict[str, Any] = await api.ok("POST", "/v1/releases", who, status=201, json={
        "repository": "acme/shop", "project": "api", "commit_sha": sha,
        "artifacts": ARTIFACTS, **extra})
    return created


async def test_releases_by_every_identifier(tmp_path: Path) -> None:
    async with forge_api(tmp_path) as api:
        first = await make_release(api, SHA1, tag="v1.2.3")
        assert set(first) == {"id", "release_number", "oci_uri", "canonical_id", "created_at"}
        assert (first["release_number"], first["canonical_id"], first["oci_uri"]) == (
            1, f"acme/shop/api/{SHA1}", "registry.example.com/acme/shop/api:1111111")
        second = await make_release(api, SHA2, who="bob")
        assert second["release_number"] == 2
        for ref in (first["id"], "1", "v1.2.3", SHA1, SHA1[:7]):
            for repo in ("acme/shop", "acme%2Fshop", "acme%2fshop"):
                got = await api.ok("GET", f"/v1/releases/{repo}/api/{ref}", who="vic")
                assert got["id"] == first["id"], (repo, ref)
        got = await api.ok("GET", "/v1/releases/acme/shop/api/2")
        assert set(got) == {"id", "repository", "project", "commit_sha", "release_number",
                            "oci_uri", "oci_digest", "created_at", "created_by", "artifacts",
                            "aliases", "trigger", "pipeline_run_id"}
        assert got["created_by"] == "bob" and got["artifacts"] == ARTIFACTS
        assert got["aliases"] == [{"alias": "2", "alias_type": "numeric"}]
        assert got["trigger"] == {"trigger_type": "manual", "branch": None,
                                  "triggered_by": "bob"}
        listed = await api.ok("GET", "/v1/releases/acme/shop/api")
        assert (listed["total"], listed["limit"], listed["offset"]) == (2, 20, 0)
        assert [r["release_number"] for r in listed["releases"]] == [2, 1]
        assert set(listed["releases"][0]) == {"id", "commit_sha", "release_number",
                                              "created_at"}
        paged = await api.ok("GET", "/v1/releases/acme%2Fshop/api?limit=1&offset=1")
        assert [r["release_number"] for r in paged["releases"]] == [1]
        error_of(await api.call("GET", "/v1/releases/acme/shop/api/3"), 404,
                 "resource_not_found")
        error_of(await api.call("GET", "/v1/releases/acme/shop"), 404, "resource_not_found")
        error_of(await api.call("GET", "/v1/releases/acme//api/1"), 404, "resource_not_found")
        dup = await api.call("POST", "/v1/releases", json={
            "repository": "acme/shop", "project": "api", "commit_sha": SHA1})
        assert error_of(dup, 409, "resource_conflict")["details"]["release_number"] == 1
        bad = await api.call("POST", "/v1/releases", json={
            "repository": "acme/shop", "project": "api", "commit_sha": SHA2[:5] + "zz"})
        assert error_of(bad, 400, "invalid_request")["details"]["field"] == "commit_sha"


async def test_a_release_from_a_pipeline_run_carries_its_trigger(tmp_path: Path) -> None:
    async with forge_api(tmp_path) as api:
        await install(api.engine)
        run = await api.ok("POST", "/v1/runs", status=201, json={
            "repository": "acme/shop", "branch": "main", "commit_sha": SHA1,
            "triggered_by": "alice@company.com", "trigger_type": "push"})
        release = await make_release(api, SHA1, pipeline_run_id=run["id"])
        got = await api.ok("GET", f"/v1/releases/acme/shop/api/{release['id']}")
        assert got["trigger"] == {"trigger_type": "branch_push", "branch": "main",
                                  "triggered_by": "alice@company.com"}
        assert got["pipeline_run_id"] == run["id"]


async def test_deployments_current_and_history(tmp_path: Path) -> None:
    async with forge_api(tmp_path) as api:
        one, two = await make_release(api, SHA1), await make_release(api, SHA2)
        first = await api.ok("POST", "/v1/deployments", "bob", status=201, json={
            "release_id": one["id"], "environment": "dev"})
        assert set(first) == {"id", "deployment_id", "gitops_commit_sha", "status"}
        assert first["status"] == "active" and len(first["gitops_commit_sha"]) == 40
        await api.ok("POST", "/v1/deployments", "bob", status=201, json={
            "release_id": two["id"], "environment": "dev"})
        current = await api.ok("GET", "/v1/deployments/dev/acme/shop/api", "vic")
        assert set(current) == {"deployment_id", "release_id", "release_number", "environment",
                                "status", "deployed_at", "deployed_by", "gitops_commit_sha"}
        assert (current["release_number"], current["status"], current["deployed_by"]) == (
            2, "active", "bob")
        history = await api.ok("GET", "/v1/deployments/dev/acme%2Fshop/api/history")
        assert (history["total"], history["limit"], history["offset"]) == (2, 20, 0)
        assert [(d["release_number"], d["status"]) for d in history["deployments"]] == [
            (2, "active"), (1, "superseded")]
        assert set(history["deployments"][0]) == {"id", "release_number", "status",
                                                  "deployed_at", "deployed_by"}
        error_of(await api.call("GET", "/v1/deployments/staging/acme/shop/api"), 404,
                 "resource_not_found")
        bad_env = await api.call("GET", "/v1/deployments/moon/acme/shop/api")
        assert error_of(bad_env, 400, "invalid_request")["details"]["field"] == "environment"
        error_of(await api.call("GET", "/v1/deployments/dev/acme/shop/api/x"), 404,
                 "resource_not_found")


async def test_the_production_gate_over_http(tmp_path: Path) -> None:
    async with forge_api(tmp_path) as api:
        release = await make_release(api, SHA1, who="alice")
        deploy = {"release_id": release["id"], "environment": "production"}
        refused = await api.call("POST", "/v1/deployments", "bob", json=deploy)
        assert "needs the approval_id" in error_of(refused, 403,
                                                   "authorization_failed")["message"]
        approve = {**deploy, "justification": "CAB-42 approved"}
        error_of(await api.call("POST", "/v1/approvals", "bob", json=approve), 403,
                 "authorization_failed")  # an operator may not approve
        own = await api.call("POST", "/v1/approvals", "carol", json={**approve})
        assert own.status_code == 201  # carol did not create it
        approval = own.json()
        assert set(approval) == {"approval_id", "approver", "approved_at", "expires_at",
                                 "status"}
        assert (approval["approver"], approval["status"]) == ("carol", "active")
        status = await api.ok("GET", f"/v1/approvals/{release['id']}/production", "vic")
        assert status["justification"] == "CAB-42 approved"
        assert status["approval_id"] == approval["approval_id"]
        done = await api.ok("POST", "/v1/deployments", "bob", status=201,
                            json={**deploy, "approval_id": approval["approval_id"]})
        assert done["status"] == "active"
        used = await api.call("POST", "/v1/deployments", "bob",
                              json={**deploy, "approval_id": approval["approval_id"]})
        assert "already used" in error_of(used, 403, "authorization_failed")["message"]
        # the creator approving their own release is refused
        mine = await make_release(api, SHA2, who="dave")
        self_made = await api.call("POST", "/v1/approvals", "dave", json={
            "release_id": mine["id"], "environment": "production", "justification": "me"})
        assert "cannot approve" in error_of(self_made, 403, "authorization_failed")["message"]
        missing = await api.call("POST", "/v1/approvals", "carol", json={
            "release_id": mine["id"], "environment": "production"})
        assert error_of(missing, 400, "invalid_request")["details"]["field"] == "justification"
        error_of(await api.call("GET", f"/v1/approvals/{mine['id']}/production"), 404,
                 "resource_not_found")


async def test_revoke_and_deploy_requests(tmp_path: Path) -> None:
    async with forge_api(tmp_path) as api:
        release = await make_release(api, SHA1)
        approval = await api.ok("POST", "/v1/approvals", "carol", status=201, json={
            "release_id": release["id"], "environment": "production", "justification": "ok"})
        error_of(await api.call("DELETE", f"/v1/approvals/{approval['approval_id']}", "bob"),
                 403, "authorization_failed")
        revoked = await api.ok("DELETE", f"/v1/approvals/{approval['approval_id']}", "dave")
        assert (revoked["status"], revoked["revoked_by"]) == ("revoked", "dave")
        status = await api.ok("GET", f"/v1/approvals/{release['id']}/production")
        assert status["status"] == "revoked"
        refused = await api.call("POST", "/v1/deployments", json={
            "release_id": release["id"], "environment": "production",
            "approval_id": approval["approval_id"]})
        assert "revoked by dave" in error_of(refused, 403, "authorization_failed")["message"]
        again = await api.call("DELETE", f"/v1/approvals/{approval['approval_id']}", "dave")
        error_of(again, 409, "resource_conflict")
        request = await api.ok("POST", "/v1/deployments/requests", "bob", status=201, json={
            "release_id": release["id"], "environment": "production"})
        assert (request["requested_by"], request["status"]) == ("bob", "pending")
        await wait_for_state(api.engine, request["execution_id"], "PAUSED")
        pending = await api.engine.forge.deploy_requests()
        assert [p.execution_id for p in pending] == [request["execution_id"]]


async def read_events(api: ForgeApi, count: int, after: int = 0) -> list[dict[str, Any]]:
    """The first `count` events of the SSE follow, after `after`."""
    found: list[dict[str, Any]] = []
    async with api.client.stream("GET", "/v1/events/follow", params={"after": after},
                                 headers=api.auth("vic")) as response:
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        async for line in response.aiter_lines():
            if line.startswith("data: "):
                found.append(json.loads(line[6:]))
                if len(found) == count:
                    break
    return found


async def test_events_and_projects(tmp_path: Path) -> None:
    async with forge_api(tmp_path) as api:
        release = await make_release(api, SHA1)
        await api.ok("POST", "/v1/deployments", status=201, json={
            "release_id": release["id"], "environment": "dev"})
        page = await api.ok("GET", "/v1/events", "vic")
        kinds = [e["event_type"] for e in page["events"]]
        assert kinds == ["release.created", "deployment.created", "deployment.completed"]
        first = page["events"][0]
        assert set(first) == {"seq", "event_type", "timestamp", "data"}
        assert first["data"]["release_number"] == 1 and first["data"]["trigger_type"] == "manual"
        after = await api.ok("GET", "/v1/events", params={"after": first["seq"], "limit": 1})
        assert [e["event_type"] for e in after["events"]] == ["deployment.created"]
        assert after["next_after"] == after["events"][0]["seq"]
        bad = await api.call("GET", "/v1/events?after=-1")
        assert error_of(bad, 400, "invalid_request")["details"]["field"] == "after"
        # the follow: stored events first, then a new one as it commits
        reader = asyncio.create_task(read_events(api, 4))
        await make_release(api, SHA2)
        streamed = await asyncio.wait_for(reader, 20)
        assert [e["event_type"] for e in streamed] == [*kinds, "release.created"]
        assert [e["seq"] for e in streamed[:3]] == [e["seq"] for e in page["events"]]
        resumed = await asyncio.wait_for(read_events(api, 1, after=streamed[2]["seq"]), 20)
        assert resumed[0]["data"]["release_number"] == 2
        projects = await api.ok("GET", "/v1/projects", "vic")
        assert projects["environments"] == ["dev", "staging", "production"]
        [shop] = projects["projects"]
        assert (shop["repository"], shop["project"], shop["releases"]) == ("acme/shop", "api", 2)
        assert shop["latest_release"]["release_number"] == 2
        assert shop["current"]["dev"]["release_number"] == 1
