"""The engine's metrics, and their rendering in Prometheus' text exposition format (0.0.4).

Gauges are read when asked for (executions by state, slots, flows, pending approvals,
webhook deliveries by status); counters count since the engine started (commits, log lines
stored, webhooks delivered). Names start with `flowdeck_`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from flowdeck.core.states import State

if TYPE_CHECKING:
    from flowdeck.engine.engine import Engine

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


@dataclass(frozen=True, slots=True)
class Sample:
    labels: dict[str, str]
    value: float


@dataclass(slots=True)
class Metric:
    """One metric family: a name, `gauge` or `counter`, its help text and its samples."""

    name: str
    kind: str
    help: str
    samples: list[Sample] = field(default_factory=list)


def _label_value(text: str) -> str:
    return text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def _number(value: float) -> str:
    if isinstance(value, bool):
        return str(int(value))
    if isinstance(value, int):
        return str(value)
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    return repr(float(value))


def render(metrics: list[Metric]) -> str:
    lines: list[str] = []
    for metric in metrics:
        help_text = metric.help.replace("\\", "\\\\").replace("\n", "\\n")
        lines.append(f"# HELP {metric.name} {help_text}")
        lines.append(f"# TYPE {metric.name} {metric.kind}")
        for sample in metric.samples:
            labels = ",".join(f'{key}="{_label_value(value)}"'
                              for key, value in sample.labels.items())
            lines.append(f"{metric.name}{{{labels}}} {_number(sample.value)}" if labels
                         else f"{metric.name} {_number(sample.value)}")
    return "\n".join(lines) + "\n"


async def collect(engine: Engine) -> list[Metric]:
    store = engine.store
    by_state = dict.fromkeys((s.value for s in State), 0)
    for state, count in await store.fetchall(
            "SELECT state, COUNT(*) FROM executions GROUP BY state"):
        by_state[str(state)] = int(count)
    deliveries = {"pending": 0, "delivered": 0, "dead": 0}
    for status, count in await store.fetchall(
            "SELECT status, COUNT(*) FROM webhook_deliveries GROUP BY status"):
        deliveries[str(status)] = int(count)
    row = await store.fetchone("SELECT COUNT(*) FROM approvals WHERE status = 'pending'")
    approvals = int(row[0]) if row else 0
    slots = engine._launcher.global_slots
    return [
        Metric("flowdeck_executions", "gauge", "Executions stored, by state.",
               [Sample({"state": s}, n) for s, n in sorted(by_state.items())]),
        Metric("flowdeck_executions_active", "gauge",
               "Executions this engine is driving now (running, queued or waiting).",
               [Sample({}, len(engine.running_ids()))]),
        Metric("flowdeck_execution_slots", "gauge",
               "Global execution slots: the limit and how many are in use.",
               [Sample({"kind": "limit"}, slots.limit), Sample({"kind": "in_use"}, slots.in_use)]),
        Metric("flowdeck_executions_waiting_for_slot", "gauge",
               "Executions waiting for a global execution slot.", [Sample({}, slots.waiting)]),
        Metric("flowdeck_flows", "gauge", "Flows (current revisions).",
               [Sample({}, len(engine.list_flows()))]),
        Metric("flowdeck_approvals_pending", "gauge", "Approvals waiting for a decision.",
               [Sample({}, approvals)]),
        Metric("flowdeck_webhook_deliveries", "gauge", "Webhook deliveries, by status.",
               [Sample({"status": s}, n) for s, n in deliveries.items()]),
        Metric("flowdeck_store_commits_total", "counter",
               "Store transactions committed since the engine started.",
               [Sample({}, store.commits)]),
        Metric("flowdeck_log_lines_total", "counter",
               "Log lines written since the engine started.",
               [Sample({}, engine.logs.lines_written)]),
        Metric("flowdeck_webhooks_delivered_total", "counter",
               "Webhook deliveries answered with a 2xx since the engine started.",
               [Sample({}, engine.outbox.sent)]),
    ]
