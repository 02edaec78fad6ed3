"""Production deploy requests wait in the approval queue beside execution approvals; the
release's creator cannot approve one; someone else's approval approves and deploys."""

from __future__ import annotations

import pytest

from flowdeck.core.errors import PermissionDenied, ValidationError
from flowdeck.engine.engine import Engine
from forge.conftest import release
from helpers import wait_for_state


async def test_a_request_is_approved_by_someone_else_and_deploys(engine: Engine) -> None:
    made = await release(engine, 1)  # created by alice
    request = await engine.forge.request_deployment(made.id, "production", by="carol")
    # In the queue when the request is answered (the CLI says so), not a moment later.
    [approval] = await engine.approvals.list("pending")
    assert request.approval_id == approval.id
    await wait_for_state(engine, request.execution_id, "PAUSED")
    assert approval.title == "Deploy acme/shop/api release 1 to production"
    assert approval.require_comment and approval.rows[0]["requested_by"] == "carol"
    [waiting] = await engine.forge.deploy_requests()
    assert (waiting.release_id, waiting.approval_id) == (made.id, approval.id)
    with pytest.raises(PermissionDenied, match="cannot approve its deployment"):
        await engine.approvals.decide(approval.id, approve=True, by="alice", comment="mine")
    assert (await engine.approvals.get(approval.id)).status == "pending"
    await engine.approvals.decide(approval.id, approve=True, by="bob", comment="looks good")
    execution = await engine.wait_until_terminal(request.execution_id, 10)
    assert execution.state.current == "SUCCESS"
    current = await engine.forge.current_deployment("production", "acme/shop", "api")
    assert current.deployed_by == "carol"
    used = await engine.forge.approval_status(made.id, "production")
    assert (used.approver, used.justification, used.used_by_deployment) == (
        "bob", "looks good", current.id)
    assert await engine.forge.deploy_requests() == []


async def test_a_rejected_request_deploys_nothing(engine: Engine) -> None:
    made = await release(engine, 1)
    request = await engine.forge.request_deployment(made.id, "production", by="alice")
    await wait_for_state(engine, request.execution_id, "PAUSED")
    [approval] = await engine.approvals.list("pending")
    await engine.approvals.decide(approval.id, approve=False, by="alice", comment="not now")
    execution = await engine.wait_until_terminal(request.execution_id, 10)
    assert execution.state.current == "CANCELLED"
    assert (await engine.forge.deployment_history("production", "acme/shop", "api")).total == 0
    with pytest.raises(ValidationError, match="needs no approval"):
        await engine.forge.request_deployment(made.id, "dev", by="alice")
