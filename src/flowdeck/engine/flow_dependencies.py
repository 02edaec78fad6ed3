"""Kestra's flow dependencies: which flows start which (a Subflow task names its flow), as a
graph of flows (`GET /flows/{ns}/{id}/dependencies`, `GET /namespaces/{ns}/dependencies`).

A Subflow whose namespace or flow id is an expression is left out, as Kestra leaves it out:
what it starts is only known when it runs. flowdeck has no Flow triggers, so every relation is
`FLOW_TASK`.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from flowdeck.engine.flows import FlowDefinition
from flowdeck.engine.tasks.flowable import Subflow

FlowKey = tuple[str, str]  # (namespace, id)


@dataclass(frozen=True, slots=True)
class Dependencies:
    nodes: list[FlowKey]
    edges: list[tuple[FlowKey, FlowKey]]  # (the flow that starts, the flow started)


def edges_of(flows: Iterable[FlowDefinition]) -> list[tuple[FlowKey, FlowKey]]:
    edges: set[tuple[FlowKey, FlowKey]] = set()
    for flow in flows:
        for task in flow.tasks_by_id.values():
            if isinstance(task, Subflow) and "{{" not in task.namespace + task.flowId:
                edges.add(((flow.namespace, flow.id), (task.namespace, task.flowId)))
    return sorted(edges)


def _graph(edges: list[tuple[FlowKey, FlowKey]], extra: Iterable[FlowKey] = ()) -> Dependencies:
    nodes = sorted({key for edge in edges for key in edge} | set(extra))
    return Dependencies(nodes, edges)


def of_flow(flows: Iterable[FlowDefinition], key: FlowKey, *, destination_only: bool = False,
            expand_all: bool = False) -> Dependencies:
    """The flows `key` starts and, unless `destination_only`, those that start it; with
    `expand_all`, theirs too, transitively."""
    every = edges_of(flows)
    kept: list[tuple[FlowKey, FlowKey]] = []
    frontier, seen = [key], {key}
    while frontier:
        current = frontier.pop()
        for edge in every:
            source, target = edge
            touches = source == current or (not destination_only and target == current)
            if touches and edge not in kept:
                kept.append(edge)
                other = target if source == current else source
                if expand_all and other not in seen:
                    seen.add(other)
                    frontier.append(other)
    return _graph(sorted(kept), [key])


def of_namespace(flows: Iterable[FlowDefinition], namespace: str, *,
                 destination_only: bool = False) -> Dependencies:
    """The relations of the namespace's flows: those they start and, unless
    `destination_only`, those that start them."""
    kept = [(source, target) for source, target in edges_of(flows)
            if source[0] == namespace or (not destination_only and target[0] == namespace)]
    return _graph(kept)
