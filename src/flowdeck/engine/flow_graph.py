"""A flow's task graph in Kestra's `FlowGraph` shape (`nodes`, `edges`, `clusters`).

Each task is a node (`root.<task id>`, nested ones `root.<parent>.<child>`) between the root
and end nodes; a flowable task's children form a cluster of their own; `errors` and `finally`
tasks hang off the end of the main line with ERROR and FINALLY relations. Tasks joined by
`dependsOn` are drawn as their DAG, the others in YAML order.
"""

from __future__ import annotations

from typing import Any

from flowdeck.engine.flows import FlowDefinition
from flowdeck.engine.tasks.base import TaskDef

HIERARCHY = "io.kestra.core.models.hierarchies."
ROOT, END = "root.root", "root.end"


class _Builder:
    def __init__(self) -> None:
        self.nodes: list[dict[str, Any]] = []
        self.edges: list[dict[str, Any]] = []
        self.clusters: list[dict[str, Any]] = []
        self.flowables: list[str] = []

    def node(self, uid: str, kind: str, task: TaskDef | None = None,
             relation: str = "SEQUENTIAL") -> str:
        out: dict[str, Any] = {"uid": uid, "type": HIERARCHY + kind}
        if task is not None:
            out["task"] = {"id": task.id, "type": task.type}
            out["relationType"] = relation
        self.nodes.append(out)
        return uid

    def edge(self, source: str, target: str, relation: str = "SEQUENTIAL") -> None:
        self.edges.append({"source": source, "target": target,
                           "relation": {"relationType": relation}})

    def line(self, tasks: list[TaskDef], prefix: str, start: str, end: str,
             relation: str = "SEQUENTIAL") -> None:
        """Tasks between `start` and `end`: in order, or as their `dependsOn` DAG."""
        uids = {t.id: f"{prefix}.{t.id}" for t in tasks}
        previous = start
        for task in tasks:
            uid = self.task(task, uids[task.id], relation)
            if any(t.dependsOn for t in tasks):
                for dep in task.dependsOn or [start]:
                    self.edge(uids.get(dep, start), uid, relation)
            else:
                self.edge(previous, uid, relation)
                previous = uid
        if any(t.dependsOn for t in tasks):
            needed = {d for t in tasks for d in t.dependsOn}
            for task in tasks:
                if task.id not in needed:
                    self.edge(uids[task.id], end, relation)
        else:
            self.edge(previous, end, relation)

    def task(self, task: TaskDef, uid: str, relation: str) -> str:
        children = [(name, kids) for name, kids in task.children() if kids]
        if not children:
            return self.node(uid, "GraphTask", task, relation)
        self.flowables.append(uid)
        self.node(uid, "GraphTask", task, relation)
        start = self.node(f"{uid}.start", "GraphClusterRoot")
        end = self.node(f"{uid}.end", "GraphClusterEnd")
        first = len(self.nodes)
        for _, kids in children:
            self.line(kids, uid, start, end)
        inner = [n["uid"] for n in self.nodes[first:]]
        self.clusters.append({"cluster": {"uid": f"cluster_{uid}", "type": HIERARCHY +
                                          "SubflowGraphCluster"},
                              "nodes": [start, *inner, end], "parents": [], "start": start,
                              "end": end})
        self.edge(uid, start)
        return uid


def flow_graph(flow: FlowDefinition) -> dict[str, Any]:
    """The `FlowGraph` document of one flow revision."""
    builder = _Builder()
    builder.node(ROOT, "GraphClusterRoot")
    builder.node(END, "GraphClusterEnd")
    builder.line(flow.tasks, "root", ROOT, END)
    if flow.errors:
        builder.line(flow.errors, "root", ROOT, END, "ERROR")
    if flow.finally_:
        builder.line(flow.finally_, "root", END, END, "FINALLY")
    return {"nodes": builder.nodes, "edges": builder.edges, "clusters": builder.clusters,
            "flowables": builder.flowables}
