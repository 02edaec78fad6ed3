"""Staging environments through any backend: the bundled `dev.deployment` flows, run and read.

The deck and the CLI never reach a provider directly. Listing, cloning and deleting are
executions of the three staging flows, created through the `Backend` like any other run, so the
engine's guards (the `staging-*` delete pattern, clone-onto-existing) apply whether the engine is
in this process or behind `flowdeck serve` or a Kestra running the same flows, and every action
leaves an execution an operator can open, follow and audit.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any

from flowdeck.client.backend import Backend, Capabilities
from flowdeck.core.errors import FlowdeckError, NotFoundError
from flowdeck.core.models import Execution
from flowdeck.core.staging import (
    CLONE_FLOW,
    DELETE_FLOW,
    LIST_FLOW,
    NAMESPACE,
    bundled_flow_sources,
    failure_reason,
    response_of,
)
from flowdeck.core.states import is_terminal

__all__ = [
    "CLONE_FLOW",
    "DELETE_FLOW",
    "LIST_FLOW",
    "NAMESPACE",
    "Environment",
    "StagingClient",
    "StagingFailed",
    "StagingUnavailable",
]

#: How long a list waits for its execution by default (it queues behind at most 5 runs).
LIST_TIMEOUT = 60.0


class StagingUnavailable(FlowdeckError):
    """The backend does not have the staging flows (a Kestra without them, an old server)."""


class StagingFailed(FlowdeckError):
    """A staging execution ended without success; `reason` is the failing task's message."""

    def __init__(self, execution: Execution, reason: str) -> None:
        super().__init__(reason)
        self.execution = execution
        self.reason = reason


@dataclass(frozen=True, slots=True)
class Environment:
    """One staging environment as the deck lists it."""

    name: str
    id: str
    client_name: str | None = None
    source_environment: str | None = None
    url: str | None = None
    status: str | None = None
    created_at: str | None = None

    @classmethod
    def from_output(cls, data: dict[str, Any]) -> Environment:
        """From a List task's `environments` entry, or the spec's `{name, id, createdAt}`."""
        def text(*keys: str) -> str | None:
            for key in keys:
                value = data.get(key)
                if value not in (None, ""):
                    return str(value)
            return None

        return cls(name=str(data.get("name") or ""), id=str(data.get("id") or ""),
                   client_name=text("client_name", "clientName"),
                   source_environment=text("source_environment", "sourceEnvironment"),
                   url=text("url", "staging_url"), status=text("status"),
                   created_at=text("created_at", "createdAt"))


def environments_of(execution: Execution) -> list[Environment]:
    """The environments a finished list execution found, with every detail it recorded.

    The List task's own `environments` output has the full records; a server running the
    spec's flows only promises `response.environments` (name, id, createdAt), used otherwise.
    """
    for task_run in execution.task_runs:
        found = (task_run.outputs or {}).get("environments")
        if isinstance(found, list) and all(isinstance(e, dict) for e in found):
            return [Environment.from_output(e) for e in found]
    response = response_of(execution) or {}
    listed = response.get("environments")
    if isinstance(listed, list):
        return [Environment.from_output(e) for e in listed if isinstance(e, dict)]
    return []


class StagingClient:
    """List, clone and delete staging environments through a connected `Backend`."""

    def __init__(self, backend: Backend, capabilities: Capabilities | None = None) -> None:
        self.backend = backend
        self.capabilities = capabilities
        self._checked = False

    @property
    def installs_flows(self) -> bool:
        """Only a backend in this process gets the bundled flows installed on first use; a
        server is set up by its operator (`flowdeck serve` installs them itself)."""
        return self.capabilities is not None and self.capabilities.kind == "embedded"

    async def ensure_flows(self) -> None:
        """Make sure the three flows exist (installing them in-process), or say what is missing."""
        if self._checked:
            return
        missing: list[str] = []
        for flow_id in (CLONE_FLOW, LIST_FLOW, DELETE_FLOW):
            try:
                await self.backend.get_flow(NAMESPACE, flow_id)
            except NotFoundError:
                missing.append(flow_id)
        if missing and self.installs_flows:
            for source in bundled_flow_sources():
                await self.backend.apply_flow(source)
            missing = []
        if missing:
            names = ", ".join(f"{NAMESPACE}/{m}" for m in missing)
            raise StagingUnavailable(
                f"staging is not available on {self.backend.name}: flow(s) {names} not found")
        self._checked = True

    # -- starting executions -------------------------------------------------------------------

    async def start_list(self, prefix: str = "staging-") -> Execution:
        await self.ensure_flows()
        return await self.backend.create_execution(NAMESPACE, LIST_FLOW,
                                                   {"filter_prefix": prefix})

    async def start_clone(self, client_name: str, *, environment_name: str | None = None,
                          source_environment: str | None = None,
                          skip_database: bool = False) -> Execution:
        await self.ensure_flows()
        inputs: dict[str, Any] = {"client_name": client_name, "skip_database": skip_database}
        if environment_name:
            inputs["environment_name"] = environment_name
        if source_environment:
            inputs["source_environment"] = source_environment
        return await self.backend.create_execution(NAMESPACE, CLONE_FLOW, inputs)

    async def start_delete(self, environment_name: str) -> Execution:
        """Starts the delete flow with the name exactly as typed: the engine decides."""
        await self.ensure_flows()
        return await self.backend.create_execution(NAMESPACE, DELETE_FLOW,
                                                   {"environment_name": environment_name})

    # -- waiting and reading -------------------------------------------------------------------

    async def settle(self, execution_id: str, *, timeout: float | None = None) -> Execution:
        """The execution once terminal (raises TimeoutError after `timeout` seconds)."""
        async def wait() -> Execution:
            last: Execution | None = None
            async for snapshot in self.backend.follow_execution(execution_id):
                last = snapshot
                if is_terminal(snapshot.state.current):
                    return snapshot
            final = last or await self.backend.get_execution(execution_id)
            if not is_terminal(final.state.current):
                final = await self.backend.get_execution(execution_id)
            return final

        if timeout is None:
            return await wait()
        return await asyncio.wait_for(wait(), timeout)

    async def outcome(self, execution: Execution) -> dict[str, Any]:
        """The `response` of a successful execution; raises StagingFailed with the reason."""
        if execution.state.current in ("SUCCESS", "WARNING"):
            response = response_of(execution)
            if response is not None:
                return response
        logs = await self.backend.logs(execution.id)
        raise StagingFailed(execution, failure_reason(execution, logs))

    async def list(self, prefix: str = "staging-", *,
                   timeout: float = LIST_TIMEOUT) -> list[Environment]:
        """Runs the list flow and answers its environments, newest first."""
        started = await self.start_list(prefix)
        final = await self.settle(started.id, timeout=timeout)
        await self.outcome(final)
        found = environments_of(final)
        return sorted(found, key=lambda e: (e.created_at or "", e.name), reverse=True)

    async def clone(self, client_name: str, *, environment_name: str | None = None,
                    source_environment: str | None = None, skip_database: bool = False,
                    timeout: float | None = None) -> dict[str, Any]:
        started = await self.start_clone(client_name, environment_name=environment_name,
                                         source_environment=source_environment,
                                         skip_database=skip_database)
        return await self.outcome(await self.settle(started.id, timeout=timeout))

    async def delete(self, environment_name: str, *,
                     timeout: float | None = None) -> dict[str, Any]:
        started = await self.start_delete(environment_name)
        return await self.outcome(await self.settle(started.id, timeout=timeout))
