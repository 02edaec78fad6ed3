"""The forge's events, exactly as the API document's schemas, `source="forge"`.

`pipeline.run.created|completed|failed` are derived from the runs' executions (an
`ExecutionEventSource`: written with the snapshot that holds the change); `release.created` and
`deployment.created|completed` are appended by their services in their own transactions. Each
payload is `{"event_type", "timestamp", "data"}`. A failed run yields `pipeline.run.completed`
(status `failed`) and then `pipeline.run.failed`; a cancelled run yields
`pipeline.run.completed` with status `cancelled`.

`[[forge.webhooks]]` entries become a `TargetResolver`, so the outbox delivers the events they
name (all forge events when `events` is empty).
"""

from __future__ import annotations

import sqlite3
from typing import Any

from flowdeck.core.forge import PIPELINE_NAMESPACE_PREFIX, Deployment, Release
from flowdeck.core.timefmt import parse_instant
from flowdeck.engine.events import ExecutionDelta, NewEvent, Target
from flowdeck.engine.forge.settings import ForgeWebhook
from flowdeck.engine.forge.validate import OWNER
from flowdeck.engine.forge.view import duration_seconds, repository_of

SOURCE = "forge"
COMPLETED = {"SUCCESS": "success", "WARNING": "success", "FAILED": "failed",
             "KILLED": "cancelled", "CANCELLED": "cancelled"}


def event(kind: str, timestamp: str, data: dict[str, Any], subject: str,
          execution_id: str | None = None) -> NewEvent:
    return NewEvent(kind, SOURCE, {"event_type": kind, "timestamp": timestamp, "data": data},
                    subject=subject, execution_id=execution_id)


def release_created(release: Release) -> NewEvent:
    return event("release.created", release.created_at, {
        "release_id": release.id, "repository": release.repository,
        "project": release.project, "commit_sha": release.commit_sha,
        "release_number": release.release_number,
        "trigger_type": release.trigger.trigger_type}, release.id)


def deployment_created(deployment: Deployment) -> NewEvent:
    return event("deployment.created", deployment.deployed_at, {
        "deployment_id": deployment.id, "release_id": deployment.release_id,
        "environment": deployment.environment, "deployed_by": deployment.deployed_by,
        "gitops_commit_sha": deployment.gitops_commit_sha}, deployment.id)


def deployment_completed(deployment: Deployment, timestamp: str) -> NewEvent:
    seconds = duration_seconds(parse_instant(deployment.deployed_at), parse_instant(timestamp))
    return event("deployment.completed", timestamp, {
        "deployment_id": deployment.id, "environment": deployment.environment,
        "status": deployment.status, "reconciliation_duration_seconds": seconds},
        deployment.id)


def _labels(doc: dict[str, Any]) -> dict[str, str]:
    return {item["key"]: item["value"] for item in doc.get("labels") or []}


def _field(doc: dict[str, Any], labels: dict[str, str], name: str) -> str:
    value = labels.get(f"forge.{name}")
    if value is None:
        raw = (doc.get("inputs") or {}).get(name)
        value = str(raw) if raw is not None else ""
    return value


def _failure(doc: dict[str, Any]) -> tuple[str, str]:
    """(failed phase, error message) of a failed run's document."""
    runs = doc.get("taskRunList") or []
    failed = [tr for tr in runs if tr["state"]["current"] in ("FAILED", "KILLED")]
    phase = next((tr for tr in failed if not tr.get("parentTaskRunId")), None)
    if not failed:
        return "", "the run failed"
    deepest = failed[-1]
    error = (deepest.get("outputs") or {}).get("error") if deepest.get("outputs") else None
    if not error and phase is not None and phase.get("outputs"):
        error = phase["outputs"].get("error")
    message = str(error) if error else f"task '{deepest['taskId']}' failed"
    return (phase["taskId"] if phase is not None else deepest["taskId"]), message


class PipelineEvents:
    """`pipeline.run.*` from the executions of pipeline flows (`pipelines.<owner>`)."""

    def wants(self, namespace: str, flow_id: str, labels: dict[str, str]) -> bool:
        return (namespace.startswith(PIPELINE_NAMESPACE_PREFIX)
                and OWNER.fullmatch(namespace[len(PIPELINE_NAMESPACE_PREFIX):]) is not None)

    def derive(self, delta: ExecutionDelta) -> list[NewEvent]:
        doc = delta.doc
        run_id = doc["id"]
        labels = _labels(doc)
        repository = repository_of(doc["namespace"], doc["flowId"])
        commit = _field(doc, labels, "commit_sha")
        out = []
        for entry in delta.states:
            state, when = entry["state"], entry["date"]
            if state == "CREATED":
                out.append(event("pipeline.run.created", when, {
                    "run_id": run_id, "repository": repository,
                    "branch": _field(doc, labels, "branch"), "commit_sha": commit,
                    "triggered_by": _field(doc, labels, "triggered_by")}, run_id, run_id))
            elif state in COMPLETED:
                started = doc["state"]["histories"][0]["date"]
                out.append(event("pipeline.run.completed", when, {
                    "run_id": run_id, "repository": repository, "commit_sha": commit,
                    "status": COMPLETED[state],
                    "duration_seconds": duration_seconds(parse_instant(started),
                                                         parse_instant(when))}, run_id, run_id))
                if state == "FAILED":
                    phase, message = _failure(doc)
                    out.append(event("pipeline.run.failed", when, {
                        "run_id": run_id, "repository": repository, "commit_sha": commit,
                        "failed_phase": phase, "error_message": message}, run_id, run_id))
        return out


class WebhookTargets:
    """Sends forge events to the configured `[[forge.webhooks]]`."""

    def __init__(self, hooks: tuple[ForgeWebhook, ...]) -> None:
        self.hooks = hooks

    def targets(self, conn: sqlite3.Connection, event: NewEvent) -> list[Target]:
        if event.source != SOURCE:
            return []
        return [Target(f"forge:{i}", hook.url, hook.secret)
                for i, hook in enumerate(self.hooks) if hook.wants(event.kind)]
