"""What Kestra's flow API does besides create/read/update: validating one task or trigger,
importing a YAML or zip of flows, replacing one task of a flow, enabling, disabling,
deleting and exporting several flows at once.

Every change goes through the flow registry as a new revision of the flow's source, so the
history, the scheduler and running executions see it like any update. A source rewritten here
(a replaced task) is the YAML of the new document: the old source's comments are not kept.
"""

from __future__ import annotations

import io
import re
import zipfile
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

import yaml

from flowdeck.core.errors import InvalidFlowError, NotFoundError, ValidationError
from flowdeck.engine.flows import FlowDefinition, parse_flow
from flowdeck.engine.inputs import load_yaml

if TYPE_CHECKING:
    from flowdeck.engine.engine import Engine

DOCUMENT_SEPARATOR = re.compile(r"^---[ \t]*$", re.MULTILINE)
DISABLED_LINE = re.compile(r"^disabled:.*$", re.MULTILINE)
LOG = "io.kestra.plugin.core.log.Log"
#: Members of a flow that hold tasks, and of a task that hold child tasks.
TASK_LISTS = ("tasks", "errors", "finally", "afterExecution", "then", "else")
MAX_IMPORT_FILES = 1_000


def _problems_under(exc: InvalidFlowError, prefix: str) -> str:
    lines = []
    for path, message in exc.problems:
        where = path[len(prefix):].lstrip(".") if path.startswith(prefix) else path
        lines.append(f"{where}: {message}" if where else message)
    return "\n".join(lines)


def validate_part(part: Any, kind: str) -> str | None:
    """Why a task (`kind` "task") or trigger ("trigger") definition is invalid, or None."""
    if not isinstance(part, dict):
        return f"a {kind} must be a JSON object with 'id' and 'type'"
    flow: dict[str, Any] = {"id": "validate", "namespace": "validate"}
    if kind == "task":
        flow["tasks"] = [part]
        prefix = "tasks[0]"
    else:
        flow["tasks"] = [{"id": "validate", "type": LOG, "message": "validate"}]
        flow["triggers"] = [part]
        prefix = "triggers[0]"
    try:
        parse_flow(yaml.safe_dump(flow, sort_keys=False))
    except InvalidFlowError as exc:
        return _problems_under(exc, prefix)
    return None


def flow_documents(text: str) -> list[str]:
    """The documents of a multi-document YAML source (split on `---` lines)."""
    return [doc for doc in DOCUMENT_SEPARATOR.split(text) if doc.strip()]


def import_sources(content: bytes, filename: str) -> list[tuple[str, str]]:
    """(name, source) of each flow in an upload: a zip of `.yml`/`.yaml` files (name: the
    file) or a YAML file of one or more documents (name: the document's index)."""
    if filename.lower().endswith(".zip"):
        try:
            archive = zipfile.ZipFile(io.BytesIO(content))
        except zipfile.BadZipFile:
            raise ValidationError([("fileUpload", "not a readable zip archive")]) from None
        names = [n for n in archive.namelist()
                 if n.lower().endswith((".yml", ".yaml")) and not n.endswith("/")]
        if len(names) > MAX_IMPORT_FILES:
            raise ValidationError([("fileUpload", f"at most {MAX_IMPORT_FILES} flows per "
                                                  "archive")])
        return [(name, archive.read(name).decode("utf-8", "replace")) for name in names]
    try:
        text = content.decode("utf-8")
    except UnicodeDecodeError:
        raise ValidationError([("fileUpload", "the YAML file must be UTF-8 text")]) from None
    return [(str(i), doc) for i, doc in enumerate(flow_documents(text))]


async def import_flows(engine: Engine, sources: list[tuple[str, str]], *,
                       fail_on_error: bool = False) -> list[str]:
    """Create or update every valid flow; the names of those that could not be imported.
    With `fail_on_error`, one invalid flow refuses them all (nothing is imported)."""
    invalid: list[tuple[str, str]] = []
    valid: list[str] = []
    for name, source in sources:
        try:
            engine.validate_flow(source)
        except InvalidFlowError as exc:
            invalid.append((name, str(exc)))
        else:
            valid.append(source)
    if invalid and fail_on_error:
        raise ValidationError([(name, why) for name, why in invalid])
    for source in valid:
        await engine.apply_flow(source)
    return [name for name, _ in invalid]


async def update_many(engine: Engine, text: str, *, namespace: str | None = None,
                      delete: bool = False, allow_child: bool = False) -> list[FlowDefinition]:
    """Kestra's bulk update (`POST /flows/bulk`, `POST /flows/{namespace}`): every flow of a
    multi-document YAML created or updated, all checked first (one invalid refuses them all);
    with `namespace` each must be in it (or under it, `allow_child`), and with `delete` the
    namespace's flows the text does not hold are deleted."""
    problems: list[tuple[str, str]] = []
    flows: list[tuple[FlowDefinition, str]] = []
    for index, source in enumerate(flow_documents(text)):
        try:
            flow = engine.validate_flow(source)
        except InvalidFlowError as exc:
            problems.append((f"flows[{index}]", str(exc)))
            continue
        inside = namespace is None or flow.namespace == namespace or (
            allow_child and flow.namespace.startswith(namespace + "."))
        if not inside:
            problems.append((f"flows[{index}].namespace", f"'{flow.namespace}' is not "
                                                          f"namespace '{namespace}'"))
        flows.append((flow, source))
    if problems:
        raise ValidationError(problems)
    applied = [(await engine.apply_flow(source))[0] for _, source in flows]
    if delete and namespace is not None:
        kept = {(flow.namespace, flow.id) for flow in applied}
        for flow in engine.list_flows(namespace):
            if (flow.namespace, flow.id) not in kept:
                await engine.delete_flow(flow.namespace, flow.id)
    return applied


def _find_task(container: Any, task_id: str) -> tuple[list[Any], int] | None:
    """The list holding the task `task_id` (anywhere in the flow) and its index."""
    if isinstance(container, dict):
        for key in (*TASK_LISTS, "cases"):
            found = _find_task(container.get(key), task_id)
            if found is not None:
                return found
    elif isinstance(container, list):
        for index, item in enumerate(container):
            if isinstance(item, dict) and item.get("id") == task_id:
                return container, index
            found = _find_task(item, task_id)
            if found is not None:
                return found
    return None


def task_of(flow: FlowDefinition, task_id: str) -> dict[str, Any]:
    """A task of the flow as its YAML defines it; NotFoundError if the flow has none such."""
    found = _find_task(flow.raw, task_id)
    if found is None:
        raise NotFoundError(f"no task '{task_id}' in flow '{flow.namespace}.{flow.id}'")
    holder, index = found
    task: dict[str, Any] = holder[index]
    return task


async def replace_task(engine: Engine, namespace: str, flow_id: str, task_id: str,
                       task: Any) -> FlowDefinition:
    """A new revision of the flow with task `task_id` replaced by `task` (same id)."""
    flow = engine.get_flow(namespace, flow_id)
    if not isinstance(task, dict) or task.get("id") != task_id:
        raise ValidationError([("id", f"the task given must have the id '{task_id}'")])
    document = load_yaml(flow.source)
    found = _find_task(document, task_id)
    if found is None:
        raise NotFoundError(f"no task '{task_id}' in flow '{namespace}.{flow_id}'")
    holder, index = found
    holder[index] = task
    source = yaml.safe_dump(document, sort_keys=False, allow_unicode=True)
    updated, _ = await engine.flows.put(namespace, flow_id, source)
    return updated


async def set_disabled(engine: Engine, keys: Iterable[tuple[str, str]],
                       disabled: bool) -> int:
    """Enable or disable each flow (a new revision whose source says `disabled:`)."""
    flows = [engine.get_flow(ns, flow_id) for ns, flow_id in keys]  # all known, first
    changed = 0
    for flow in flows:
        if flow.disabled == disabled:
            continue
        line = f"disabled: {'true' if disabled else 'false'}"
        source = flow.source
        if DISABLED_LINE.search(source):
            source = DISABLED_LINE.sub(line, source, count=1)
        else:
            source = source.rstrip("\n") + "\n" + line + "\n"
        await engine.flows.put(flow.namespace, flow.id, source)
        changed += 1
    return changed


async def delete_flows(engine: Engine, keys: Iterable[tuple[str, str]]) -> int:
    flows = [engine.get_flow(ns, flow_id) for ns, flow_id in keys]
    for flow in flows:
        await engine.delete_flow(flow.namespace, flow.id)
    return len(flows)


def export_zip(flows: Iterable[FlowDefinition]) -> bytes:
    """A zip of the flows' sources, `<namespace>.<id>.yml` each (what import reads back)."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for flow in flows:
            archive.writestr(f"{flow.namespace}.{flow.id}.yml", flow.source)
    return buffer.getvalue()
