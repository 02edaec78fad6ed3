"""Kestra's execution and task-run states, and which of them are final.

States are plain strings on the wire; a state this version does not know is kept and shown raw,
and treated as not terminal (what Kestra asks of clients).
"""

from __future__ import annotations

from enum import StrEnum


class State(StrEnum):
    CREATED = "CREATED"
    SUBMITTED = "SUBMITTED"
    RUNNING = "RUNNING"
    PAUSED = "PAUSED"
    RESTARTED = "RESTARTED"
    KILLING = "KILLING"
    SUCCESS = "SUCCESS"
    WARNING = "WARNING"
    FAILED = "FAILED"
    KILLED = "KILLED"
    CANCELLED = "CANCELLED"
    QUEUED = "QUEUED"
    RETRYING = "RETRYING"
    RETRIED = "RETRIED"
    SKIPPED = "SKIPPED"
    BREAKPOINT = "BREAKPOINT"
    RESUBMITTED = "RESUBMITTED"


TERMINAL_STATES: frozenset[str] = frozenset(
    {"SUCCESS", "WARNING", "FAILED", "KILLED", "CANCELLED", "RETRIED", "SKIPPED"}
)
SUCCESSFUL_STATES: frozenset[str] = frozenset({"SUCCESS", "WARNING", "SKIPPED"})
FAILED_STATES: frozenset[str] = frozenset({"FAILED", "KILLED", "CANCELLED"})
ACTIVE_STATES: frozenset[str] = frozenset(
    {"CREATED", "QUEUED", "RUNNING", "PAUSED", "RESTARTED", "KILLING", "RETRYING", "SUBMITTED"}
)
RESTARTABLE_STATES: frozenset[str] = frozenset({"FAILED", "KILLED", "CANCELLED", "WARNING"})


def is_terminal(state: str) -> bool:
    """True for a final state; unknown states count as still going."""
    return state in TERMINAL_STATES


def is_known(state: str) -> bool:
    return state in State.__members__
