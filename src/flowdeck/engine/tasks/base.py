"""What every task type is: a pydantic model of its YAML properties plus how it runs.

A task module defines subclasses of `RunnableTask` (does work in an attempt and returns its
outputs) or `FlowableTask` (orchestrates child tasks through the runner). Validation happens
when the flow is created, so a typo in a property is a 422 then, never a runtime surprise.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, ClassVar, Literal, Protocol

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, model_validator

from flowdeck.core.timefmt import parse_duration

if TYPE_CHECKING:
    from flowdeck.core.models import Execution, TaskRun
    from flowdeck.engine.task_services import TaskServices


def _duration(value: Any) -> Any:
    if isinstance(value, str):
        return parse_duration(value)
    if isinstance(value, int | float) and not isinstance(value, bool):
        return timedelta(seconds=value)
    return value


Duration = Annotated[timedelta, BeforeValidator(_duration)]

TASK_ID_PATTERN = r"^[a-zA-Z0-9][a-zA-Z0-9_-]*$"


class RetryPolicy(BaseModel):
    """Kestra's task `retry`: constant, exponential or random; `maxAttempts` counts every try."""

    model_config = ConfigDict(extra="forbid")

    type: Literal["constant", "exponential", "random"]
    interval: Duration | None = None
    maxInterval: Duration | None = None
    minInterval: Duration | None = None
    delayFactor: float | None = None
    maxAttempts: int | None = Field(default=None, ge=1)
    maxDuration: Duration | None = None
    warningOnRetry: bool = False
    behavior: str | None = None

    @model_validator(mode="after")
    def _check(self) -> RetryPolicy:
        if self.type in ("constant", "exponential") and self.interval is None:
            raise ValueError(f"a {self.type} retry needs an 'interval'")
        if self.type == "random" and (self.minInterval is None or self.maxInterval is None):
            raise ValueError("a random retry needs 'minInterval' and 'maxInterval'")
        if self.maxAttempts is None and self.maxDuration is None:
            raise ValueError("a retry needs 'maxAttempts' or 'maxDuration'")
        return self


class TaskDef(BaseModel):
    """Properties every task accepts (Kestra's common ones, plus `retryOnCrash`)."""

    model_config = ConfigDict(extra="forbid", arbitrary_types_allowed=True)

    id: str = Field(pattern=TASK_ID_PATTERN)
    type: str
    description: str | None = None
    disabled: bool = False
    timeout: Duration | None = None
    retry: RetryPolicy | None = None
    allowFailure: bool = False
    allowWarning: bool = False
    dependsOn: list[str] = Field(default_factory=list)
    retryOnCrash: bool | None = None
    #: Kestra's core properties (`engine/task_properties.py` says what each means here).
    runIf: str | bool = True
    logLevel: Literal["ERROR", "WARN", "INFO", "DEBUG", "TRACE"] | None = None
    version: str | None = None
    # Accepted for compatibility with Kestra flows; they change nothing here.
    taskRunner: dict[str, Any] | None = None
    containerImage: str | None = None
    workerGroup: dict[str, Any] | None = None
    logToFile: bool | None = None
    taskCache: dict[str, Any] | None = None

    #: Whether an attempt cut short by an engine crash may simply run again on recovery.
    safe_to_rerun: ClassVar[bool] = True
    #: Child task lists by property name (flowable tasks only).
    child_fields: ClassVar[tuple[str, ...]] = ()
    #: Child lists that must not be empty.
    required_children: ClassVar[tuple[str, ...]] = ()

    def children(self) -> list[tuple[str, list[TaskDef]]]:
        return [(name, getattr(self, name) or []) for name in self.child_fields]

    def may_rerun_after_crash(self) -> bool:
        return self.retryOnCrash if self.retryOnCrash is not None else self.safe_to_rerun


class TaskFailure(Exception):
    """Raised by a task to fail its attempt with a message meant for the log."""


class TaskContext(Protocol):
    """What a running task may do; the runner provides it."""

    execution: Execution
    task_run: TaskRun
    attempt_number: int

    @property
    def workdir(self) -> Path: ...

    def create_workdir(self) -> Path:
        """Make `workdir` exist (fresh and empty if new) and return it."""

    def prepare_next_workdir(self) -> None:
        """Make a directory for a later task ahead of need (call while waiting anyway)."""

    @property
    def services(self) -> TaskServices: ...

    def render(self, value: Any) -> Any: ...

    def render_context(self) -> Mapping[str, Any]: ...

    def log(self, level: str, message: str) -> None: ...

    def log_lines(self, level: str, lines: list[str]) -> None: ...

    def log_backlogged(self) -> bool:
        """Whether `log_room` would wait now (too many lines waiting to be stored)."""

    async def log_room(self) -> None:
        """Wait while too many log lines are waiting to be stored (backpressure)."""


class RunnableTask(TaskDef):
    """A task that does its work in attempts (retries, timeout)."""

    async def execute(self, ctx: TaskContext) -> dict[str, Any] | None:
        raise NotImplementedError


class FlowableTask(TaskDef):
    """A task that runs other tasks; it has no attempts of its own."""

    async def orchestrate(self, ctx: TaskContext, walker: Any) -> str:
        """Run the children through `walker` and return the task run's final state."""
        raise NotImplementedError
