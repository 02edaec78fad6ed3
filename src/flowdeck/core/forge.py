"""Releases, deployments, release approvals and pipeline runs: the forge domain's objects.

Plain frozen dataclasses that every layer shares: the engine builds them, an HTTP dialect
presents them (`to_dict` gives the API document's JSON shape, snake_case, instants as ISO-8601
UTC with `Z`), and the client layer reads them back (`from_dict`) for the deck and the CLI.
Fields beyond the document (`logs_s3_key`, `timeout_seconds`, `tag`, ...) are flowdeck's
extensions; a presenter may leave them out.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from importlib import resources
from typing import Any, Generic, TypeVar

T = TypeVar("T")

#: Status vocabularies, exactly as the API document spells them.
RUN_STATUSES = ("pending", "running", "success", "failed", "cancelled")
PHASE_STATUSES = ("pending", "running", "success", "failed", "skipped")
TASK_STATUSES = ("pending", "running", "success", "failed")
STEP_STATUSES = TASK_STATUSES
WORKER_STATUSES = ("running", "success", "failed")
TRIGGER_TYPES = ("push", "pull_request", "manual")
RELEASE_TRIGGER_TYPES = ("branch_push", "tag", "manual")
ARTIFACT_TYPES = ("container", "binary", "archive")
DEPLOYMENT_STATUSES = ("pending", "active", "superseded", "failed")
APPROVAL_STATUSES = ("active", "expired", "revoked")
DEFAULT_ENVIRONMENTS = ("dev", "staging", "production")
#: Every event the forge emits (`source="forge"`).
EVENT_KINDS = ("pipeline.run.created", "pipeline.run.completed", "pipeline.run.failed",
               "release.created", "deployment.created", "deployment.completed")
#: Where a pipeline flow lives: repository `owner/name` is flow `name` in `pipelines.owner`.
PIPELINE_NAMESPACE_PREFIX = "pipelines."


def pipeline_flow(repository: str) -> tuple[str, str]:
    """(namespace, flow id) of a repository's pipeline (`acme/shop` → `pipelines.acme`, `shop`)."""
    owner, _, name = repository.partition("/")
    return PIPELINE_NAMESPACE_PREFIX + owner, name


#: The repository of the bundled example pipeline (`flowdeck/examples/forge/example-shop.yml`).
EXAMPLE_REPOSITORY = "example/shop"


def example_pipeline_sources() -> list[str]:
    """The YAML of the bundled example pipeline flows (`flowdeck/examples/forge/*.yml`)."""
    folder = resources.files("flowdeck.examples").joinpath("forge")
    return [item.read_text(encoding="utf-8")
            for item in sorted(folder.iterdir(), key=lambda i: i.name)
            if item.name.endswith(".yml")]


# -- pipeline runs ----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Step:
    """One step of a task: an attempt of an engine-run task, a task inside a block, or a step
    an external worker reports on."""

    id: str
    name: str
    status: str
    exit_code: int | None
    logs_url: str
    logs_s3_key: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"id": self.id, "name": self.name, "status": self.status,
                "exit_code": self.exit_code, "logs_url": self.logs_url}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Step:
        return cls(id=str(d["id"]), name=str(d.get("name") or ""), status=str(d["status"]),
                   exit_code=d.get("exit_code"), logs_url=str(d.get("logs_url") or ""),
                   logs_s3_key=d.get("logs_s3_key"))


@dataclass(frozen=True, slots=True)
class PipelineTask:
    """A task of a phase; `project_name` is the flow's task id."""

    id: str
    project_name: str
    status: str
    steps: tuple[Step, ...]
    external: bool = False
    error: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"id": self.id, "project_name": self.project_name, "status": self.status,
                "steps": [s.to_dict() for s in self.steps]}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> PipelineTask:
        return cls(id=str(d["id"]), project_name=str(d.get("project_name") or ""),
                   status=str(d["status"]),
                   steps=tuple(Step.from_dict(s) for s in d.get("steps") or []),
                   external=bool(d.get("external", False)), error=d.get("error"))


@dataclass(frozen=True, slots=True)
class Phase:
    """A top-level task of the pipeline flow, numbered 1, 2, ... in order."""

    id: str
    name: str
    group_number: int
    status: str
    started_at: str | None
    completed_at: str | None
    tasks: tuple[PipelineTask, ...]
    timeout_seconds: float | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"id": self.id, "name": self.name, "group_number": self.group_number,
                "status": self.status, "started_at": self.started_at,
                "completed_at": self.completed_at, "tasks": [t.to_dict() for t in self.tasks]}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Phase:
        return cls(id=str(d["id"]), name=str(d.get("name") or ""),
                   group_number=int(d.get("group_number") or 0), status=str(d["status"]),
                   started_at=d.get("started_at"), completed_at=d.get("completed_at"),
                   tasks=tuple(PipelineTask.from_dict(t) for t in d.get("tasks") or []),
                   timeout_seconds=d.get("timeout_seconds"))


@dataclass(frozen=True, slots=True)
class PipelineRun:
    """A run of a repository's pipeline: an execution of its pipeline flow, seen as phases."""

    id: str
    repository: str
    branch: str
    commit_sha: str
    status: str
    triggered_by: str
    trigger_type: str
    started_at: str
    completed_at: str | None
    phases: tuple[Phase, ...] = ()
    #: The execution's own state (the id is the execution id too).
    execution_state: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"id": self.id, "repository": self.repository, "branch": self.branch,
                "commit_sha": self.commit_sha, "status": self.status,
                "triggered_by": self.triggered_by, "trigger_type": self.trigger_type,
                "started_at": self.started_at, "completed_at": self.completed_at,
                "phases": [p.to_dict() for p in self.phases]}

    def created(self) -> dict[str, Any]:
        """The create response."""
        return {"id": self.id, "status": self.status, "started_at": self.started_at}

    def summary(self) -> dict[str, Any]:
        """The list entry of `GET /v1/runs`."""
        return {"id": self.id, "repository": self.repository, "commit_sha": self.commit_sha,
                "status": self.status, "started_at": self.started_at}

    def find_task(self, task_id: str) -> PipelineTask | None:
        for phase in self.phases:
            for task in phase.tasks:
                if task.id == task_id:
                    return task
        return None

    def find_step(self, step_id: str) -> tuple[PipelineTask, Step] | None:
        for phase in self.phases:
            for task in phase.tasks:
                for step in task.steps:
                    if step.id == step_id:
                        return task, step
        return None

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> PipelineRun:
        return cls(id=str(d["id"]), repository=str(d.get("repository") or ""),
                   branch=str(d.get("branch") or ""), commit_sha=str(d.get("commit_sha") or ""),
                   status=str(d["status"]), triggered_by=str(d.get("triggered_by") or ""),
                   trigger_type=str(d.get("trigger_type") or "manual"),
                   started_at=str(d.get("started_at") or ""),
                   completed_at=d.get("completed_at"),
                   phases=tuple(Phase.from_dict(p) for p in d.get("phases") or []))


@dataclass(frozen=True, slots=True)
class Page(Generic[T]):
    """One page of a list with the total it was cut from."""

    items: tuple[T, ...]
    total: int
    limit: int
    offset: int


# -- releases ---------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Artifact:
    name: str
    type: str
    tracking_oci_uri: str | None = None
    primary_published_uri: str | None = None
    digest: str | None = None

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"name": self.name, "type": self.type,
                               "tracking_oci_uri": self.tracking_oci_uri,
                               "primary_published_uri": self.primary_published_uri}
        if self.digest is not None:
            out["digest"] = self.digest
        return out

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Artifact:
        return cls(name=str(d["name"]), type=str(d["type"]),
                   tracking_oci_uri=d.get("tracking_oci_uri"),
                   primary_published_uri=d.get("primary_published_uri"),
                   digest=d.get("digest"))


@dataclass(frozen=True, slots=True)
class Alias:
    alias: str
    alias_type: str

    def to_dict(self) -> dict[str, Any]:
        return {"alias": self.alias, "alias_type": self.alias_type}


@dataclass(frozen=True, slots=True)
class ReleaseTrigger:
    trigger_type: str
    branch: str | None
    triggered_by: str

    def to_dict(self) -> dict[str, Any]:
        return {"trigger_type": self.trigger_type, "branch": self.branch,
                "triggered_by": self.triggered_by}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> ReleaseTrigger:
        return cls(trigger_type=str(d.get("trigger_type") or "manual"), branch=d.get("branch"),
                   triggered_by=str(d.get("triggered_by") or ""))


@dataclass(frozen=True, slots=True)
class Release:
    id: str
    repository: str
    project: str
    commit_sha: str
    release_number: int
    oci_uri: str | None
    oci_digest: str | None
    created_at: str
    created_by: str
    artifacts: tuple[Artifact, ...]
    trigger: ReleaseTrigger
    tag: str | None = None
    pipeline_run_id: str | None = None

    @property
    def canonical_id(self) -> str:
        return f"{self.repository}/{self.project}/{self.commit_sha}"

    @property
    def aliases(self) -> tuple[Alias, ...]:
        found = [Alias(self.tag, "tag")] if self.tag else []
        return (*found, Alias(str(self.release_number), "numeric"))

    def to_dict(self) -> dict[str, Any]:
        return {"id": self.id, "repository": self.repository, "project": self.project,
                "commit_sha": self.commit_sha, "release_number": self.release_number,
                "oci_uri": self.oci_uri, "oci_digest": self.oci_digest,
                "created_at": self.created_at, "created_by": self.created_by,
                "artifacts": [a.to_dict() for a in self.artifacts],
                "aliases": [a.to_dict() for a in self.aliases],
                "trigger": self.trigger.to_dict()}

    def created(self) -> dict[str, Any]:
        """The create response."""
        return {"id": self.id, "release_number": self.release_number, "oci_uri": self.oci_uri,
                "canonical_id": self.canonical_id, "created_at": self.created_at}

    def summary(self) -> dict[str, Any]:
        """The list entry."""
        return {"id": self.id, "commit_sha": self.commit_sha,
                "release_number": self.release_number, "created_at": self.created_at}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Release:
        tag = next((a["alias"] for a in d.get("aliases") or [] if a.get("alias_type") == "tag"),
                   None)
        return cls(id=str(d["id"]), repository=str(d.get("repository") or ""),
                   project=str(d.get("project") or ""), commit_sha=str(d.get("commit_sha") or ""),
                   release_number=int(d["release_number"]), oci_uri=d.get("oci_uri"),
                   oci_digest=d.get("oci_digest"), created_at=str(d.get("created_at") or ""),
                   created_by=str(d.get("created_by") or ""),
                   artifacts=tuple(Artifact.from_dict(a) for a in d.get("artifacts") or []),
                   trigger=ReleaseTrigger.from_dict(d.get("trigger") or {}), tag=tag,
                   pipeline_run_id=d.get("pipeline_run_id"))


# -- deployments and approvals ----------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Deployment:
    id: str
    release_id: str
    repository: str
    project: str
    environment: str
    release_number: int
    status: str
    deployed_at: str
    deployed_by: str
    gitops_commit_sha: str | None
    completed_at: str | None = None
    approval_id: str | None = None
    execution_id: str | None = None
    error: str | None = None

    @property
    def deployment_id(self) -> str:
        return self.id

    def created(self) -> dict[str, Any]:
        """The create response."""
        return {"id": self.id, "deployment_id": self.id,
                "gitops_commit_sha": self.gitops_commit_sha, "status": self.status}

    def current(self) -> dict[str, Any]:
        """The current-deployment response."""
        return {"deployment_id": self.id, "release_id": self.release_id,
                "release_number": self.release_number, "environment": self.environment,
                "status": self.status, "deployed_at": self.deployed_at,
                "deployed_by": self.deployed_by, "gitops_commit_sha": self.gitops_commit_sha}

    def history_entry(self) -> dict[str, Any]:
        return {"id": self.id, "release_number": self.release_number, "status": self.status,
                "deployed_at": self.deployed_at, "deployed_by": self.deployed_by}

    def to_dict(self) -> dict[str, Any]:
        """Every field (flowdeck's own view)."""
        return {"id": self.id, "deployment_id": self.id, "release_id": self.release_id,
                "repository": self.repository, "project": self.project,
                "environment": self.environment, "release_number": self.release_number,
                "status": self.status, "deployed_at": self.deployed_at,
                "deployed_by": self.deployed_by, "gitops_commit_sha": self.gitops_commit_sha,
                "completed_at": self.completed_at, "approval_id": self.approval_id,
                "execution_id": self.execution_id, "error": self.error}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Deployment:
        return cls(id=str(d.get("id") or d.get("deployment_id")),
                   release_id=str(d.get("release_id") or ""),
                   repository=str(d.get("repository") or ""), project=str(d.get("project") or ""),
                   environment=str(d.get("environment") or ""),
                   release_number=int(d.get("release_number") or 0), status=str(d["status"]),
                   deployed_at=str(d.get("deployed_at") or ""),
                   deployed_by=str(d.get("deployed_by") or ""),
                   gitops_commit_sha=d.get("gitops_commit_sha"),
                   completed_at=d.get("completed_at"), approval_id=d.get("approval_id"),
                   execution_id=d.get("execution_id"), error=d.get("error"))


@dataclass(frozen=True, slots=True)
class ReleaseApproval:
    """A person's approval of a release for an environment; single use, it expires."""

    id: str
    release_id: str
    environment: str
    approver: str
    justification: str
    approved_at: str
    expires_at: str
    status: str
    revoked_at: str | None = None
    revoked_by: str | None = None
    used_by_deployment: str | None = None
    used_at: str | None = None

    @property
    def approval_id(self) -> str:
        return self.id

    def created(self) -> dict[str, Any]:
        return {"approval_id": self.id, "approver": self.approver,
                "approved_at": self.approved_at, "expires_at": self.expires_at,
                "status": self.status}

    def to_dict(self) -> dict[str, Any]:
        return {**self.created(), "justification": self.justification}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> ReleaseApproval:
        return cls(id=str(d.get("approval_id") or d.get("id")),
                   release_id=str(d.get("release_id") or ""),
                   environment=str(d.get("environment") or ""),
                   approver=str(d.get("approver") or ""),
                   justification=str(d.get("justification") or ""),
                   approved_at=str(d.get("approved_at") or ""),
                   expires_at=str(d.get("expires_at") or ""), status=str(d["status"]),
                   revoked_at=d.get("revoked_at"), revoked_by=d.get("revoked_by"),
                   used_by_deployment=d.get("used_by_deployment"), used_at=d.get("used_at"))


@dataclass(frozen=True, slots=True)
class ProjectSummary:
    """A repository's project: its newest release and what runs in each environment."""

    repository: str
    project: str
    latest_release: Release | None
    releases: int
    current: dict[str, Deployment] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class DeployRequest:
    """A deployment waiting for someone's approval in the approval queue."""

    execution_id: str
    release_id: str
    environment: str
    requested_by: str
    status: str
    approval_id: str | None = None
    deployment_id: str | None = None
