"""Errors flowdeck reports to people: each says what is wrong in words a user can act on.

Every layer maps these onto its own vocabulary (HTTP status, CLI exit code 2, a TUI message),
so the engine never needs to know how it is being driven.
"""

from __future__ import annotations

from typing import Any


class FlowdeckError(Exception):
    """Base of every error flowdeck reports to a user."""


class NotFoundError(FlowdeckError):
    """An id, flow, key or file that does not exist (HTTP 404)."""


class ConflictError(FlowdeckError):
    """The object is in the wrong state for the action (HTTP 409)."""

    def __init__(self, message: str, details: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        self.details = details or {}


class ExpiredError(FlowdeckError):
    """The object existed but has expired (HTTP 410)."""


class ValidationError(FlowdeckError):
    """Input that cannot be accepted; `problems` pairs a path with what is wrong (HTTP 422)."""

    def __init__(self, problems: list[tuple[str, str]] | str, prefix: str = "") -> None:
        if isinstance(problems, str):
            problems = [("", problems)]
        self.problems = problems
        lines = [f"{path}: {msg}" if path else msg for path, msg in problems]
        super().__init__(prefix + "; ".join(lines))


class InvalidFlowError(ValidationError):
    """A flow source that cannot be parsed or validated."""


class InvalidInputsError(ValidationError):
    """Execution or resume inputs that do not match the flow's declared inputs."""


class BadRequestError(FlowdeckError):
    """A malformed query value or argument (HTTP 400)."""


class EngineLockedError(FlowdeckError):
    """Another engine already owns this data directory."""


class BackendUnavailable(FlowdeckError):
    """The engine or server cannot be reached right now (connection refused, timed out)."""


class PermissionDenied(FlowdeckError):
    """Credentials are missing or wrong, or the role may not do this (HTTP 401/403)."""


class StorageUnavailable(FlowdeckError):
    """The database cannot take writes right now (disk full, locked, closed); retry later."""
