"""Flow parsing and validation: what a valid flow becomes, and how every bad one is refused.

A flow is refused when it is submitted, with the path of every offending property, and
`parse_flow` never raises anything but `InvalidFlowError` whatever text it is given.
"""

from __future__ import annotations

import json
import re
import textwrap
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from flowdeck.core.errors import ConflictError, InvalidFlowError, NotFoundError
from flowdeck.engine.engine import Engine
from flowdeck.engine.flowctl import tasks as flowctl
from flowdeck.engine.flows import FlowDefinition, parse_flow
from flowdeck.engine.tasks import approval, core, flowable, http, kv, shell
from flowdeck.engine.tasks.registry import TASK_TYPES
from helpers import open_engine, run_flow

LOG = "io.kestra.plugin.core.log.Log"

FULL_FLOW = """\
id: everything
namespace: company.team
description: |
  Every feature at once.
labels:
  team: data
  tier: 1
  empty:
inputs:
  - id: name
    type: STRING
    defaults: world
  - id: count
    type: INT
    defaults: 3
    min: 1
    max: 10
  - id: ratio
    type: FLOAT
    required: false
  - id: go
    type: BOOL
    defaults: true
  - id: when
    type: DATETIME
    defaults: 2025-06-01T10:00:00Z
  - id: env
    type: SELECT
    values: [dev, prod]
    defaults: dev
  - id: tags
    type: ARRAY
    itemType: INT
    required: false
  - id: conf
    type: json
    required: false
outputs:
  - id: greeting
    type: STRING
    value: "{{ outputs.ret.value }}"
variables:
  greeting: "hello {{ inputs.name }}"
  day: 2025-06-01
tasks:
  - id: log
    type: io.kestra.plugin.core.log.Log
    message: "{{ vars.greeting }}"
    level: WARN
    timeout: PT5M
    retry:
      type: constant
      interval: PT1S
      maxAttempts: 3
  - id: shell
    type: io.kestra.plugin.scripts.shell.Commands
    taskRunner:
      type: io.kestra.plugin.core.runner.Process
    commands: ["echo hi"]
    dependsOn: [log]
  - id: script
    type: io.kestra.plugin.scripts.shell.Script
    script: echo hi
    retry:
      type: exponential
      interval: PT1S
      maxInterval: PT30S
      maxDuration: PT5M
  - id: bash
    type: io.kestra.core.tasks.scripts.Bash
    commands: [echo legacy]
  - id: par
    type: io.kestra.plugin.core.flow.Parallel
    concurrent: 2
    tasks:
      - id: seq
        type: io.kestra.plugin.core.flow.Sequential
        tasks:
          - id: ret
            type: io.kestra.plugin.core.debug.Return
            format: x
          - id: nap
            type: io.kestra.plugin.core.flow.Sleep
            duration: PT0.1S
      - id: cond
        type: io.kestra.plugin.core.flow.If
        condition: "{{ inputs.go }}"
        then:
          - id: each
            type: io.kestra.plugin.core.flow.ForEach
            values: [a, b]
            concurrencyLimit: 0
            tasks:
              - id: outv
                type: io.kestra.plugin.core.output.OutputValues
                values:
                  v: "{{ taskrun.value }}"
              - id: stcheck
                type: flowdeck.staging.ValidateClone
                clientName: "{{ taskrun.value }}"
              - id: stclone
                type: flowdeck.staging.Clone
                clientName: "{{ taskrun.value }}"
                skipDatabase: true
              - id: stlist
                type: flowdeck.staging.List
              - id: stdelete
                type: flowdeck.staging.Delete
                environmentName: staging-x
              - id: agwrite
                type: flowdeck.agents.Personalise
                rows: "[]"
                template: "Hi {{ row.name }}"
              - id: agcheck
                type: flowdeck.agents.CheckCompliance
                rows: "{{ outputs.agwrite.rows }}"
                rules:
                  maxLength: 100
              - id: agsend
                type: flowdeck.agents.Deliver
                rows: "{{ outputs.agcheck.rows }}"
              - id: worker
                type: flowdeck.pipeline.External
                steps: [build, test]
              - id: approvedeploy
                type: flowdeck.forge.ApproveAndDeploy
                releaseId: "{{ inputs.release }}"
                environment: production
                approver: bob
                justification: checked
                requestedBy: alice
              - id: fcwf
                type: flowdeck.flowctl.Workflow
                maxConcurrency: 2
                timeout: PT1H
                tasks:
                  - id: fcgen
                    type: flowdeck.flowctl.Generic
                    priority: 5
                    payload: {command: echo, args: [hi]}
                  - id: fcci
                    type: flowdeck.flowctl.Ci
                    dependsOn: [fcgen]
                    payload: {repo_url: /srv/repo, command: make test}
                  - id: fcetl
                    type: flowdeck.flowctl.Etl
                    payload: {source_url: "file:///in.csv", target_url: "sqlite:///o.db#t"}
                  - id: fcml
                    type: flowdeck.flowctl.MlTraining
                    payload: {model_name: m}
        else:
          - id: boom
            type: io.kestra.plugin.core.execution.Fail
            errorMessage: "no"
  - id: wait
    type: io.kestra.plugin.core.flow.Pause
    pauseDuration: PT1H
    onResume:
      - id: reason
        type: STRING
        defaults: none
  - id: call
    type: io.kestra.plugin.core.flow.Subflow
    namespace: company.team
    flowId: child
    inputs:
      n: 1
  - id: fetch
    type: io.kestra.plugin.core.http.Request
    uri: https://example.com/api
    method: POST
  - id: kvset
    type: io.kestra.plugin.core.kv.Set
    key: counter
    value: 1
    kvType: NUMBER
    ttl: P1D
  - id: kvget
    type: io.kestra.plugin.core.kv.Get
    key: counter
  - id: kvdel
    type: io.kestra.plugin.core.kv.Delete
    key: counter
  - id: approve
    type: flowdeck.approval.Request
    title: Ship it?
    expiresIn: PT2H
errors:
  - id: onerr
    type: io.kestra.plugin.core.log.Log
    message: failed
finally:
  - id: cleanup
    type: io.kestra.plugin.core.log.Log
    message: done
triggers:
  - id: nightly
    type: io.kestra.plugin.core.trigger.Schedule
    cron: "0 2 * * *"
    timezone: Europe/Paris
    inputs:
      name: night
  - id: hook
    type: io.kestra.plugin.core.trigger.Webhook
    key: s3cr3tkey
    wait: true
concurrency:
  limit: 2
  behavior: CANCEL
retry:
  type: constant
  interval: PT10S
  maxAttempts: 3
  behavior: RETRY_FAILED_TASK
"""


def flow_with_tasks(tasks: str, extra: str = "") -> str:
    """A flow `f` in namespace `n` with the given (already indented) task list."""
    return "id: f\nnamespace: n\ntasks:\n" + textwrap.dedent(tasks) + textwrap.dedent(extra)


SIMPLE_TASKS = f"""\
- id: a
  type: {LOG}
  message: hi
"""


def problems_of(source: str) -> list[tuple[str, str]]:
    with pytest.raises(InvalidFlowError) as info:
        parse_flow(source)
    return info.value.problems


def message_of(source: str) -> str:
    with pytest.raises(InvalidFlowError) as info:
        parse_flow(source)
    return str(info.value)


# -- a valid flow -----------------------------------------------------------------------------


def test_full_flow_parses_into_typed_definition() -> None:
    flow = parse_flow(FULL_FLOW)
    assert (flow.id, flow.namespace, flow.revision) == ("everything", "company.team", 1)
    assert flow.description == "Every feature at once.\n"
    assert flow.labels == [("team", "data"), ("tier", "1"), ("empty", "")]
    assert flow.disabled is False

    assert [(i.id, i.type, i.required, i.defaults) for i in flow.inputs] == [
        ("name", "STRING", True, "world"),
        ("count", "INT", True, 3),
        ("ratio", "FLOAT", False, None),
        ("go", "BOOL", True, True),
        ("when", "DATETIME", True, "2025-06-01T10:00:00Z"),  # YAML timestamps stay text
        ("env", "SELECT", True, "dev"),
        ("tags", "ARRAY", False, None),
        ("conf", "JSON", False, None),  # type names are case-insensitive
    ]
    assert flow.inputs[1].min == 1 and flow.inputs[1].max == 10
    assert flow.inputs[5].values == ["dev", "prod"]
    assert flow.inputs[6].itemType == "INT"
    assert [(o.id, o.type, o.value) for o in flow.outputs] == [
        ("greeting", "STRING", "{{ outputs.ret.value }}")]
    assert flow.variables == {"greeting": "hello {{ inputs.name }}", "day": "2025-06-01"}

    assert [t.id for t in flow.tasks] == ["log", "shell", "script", "bash", "par", "wait",
                                          "call", "fetch", "kvset", "kvget", "kvdel", "approve"]
    log, shell_task, script, bash, par, wait, call, fetch, kvset, kvget, kvdel, appr = flow.tasks
    assert isinstance(log, core.Log) and log.level == "WARN"
    assert log.timeout == timedelta(minutes=5)
    assert log.retry is not None
    assert (log.retry.type, log.retry.interval, log.retry.maxAttempts) == (
        "constant", timedelta(seconds=1), 3)
    assert isinstance(shell_task, shell.Commands) and shell_task.dependsOn == ["log"]
    assert shell_task.taskRunner == {"type": "io.kestra.plugin.core.runner.Process"}
    assert isinstance(script, shell.Script)
    assert script.retry is not None and script.retry.maxDuration == timedelta(minutes=5)
    assert isinstance(bash, shell.Commands)  # the legacy alias maps to Commands
    assert isinstance(par, flowable.Parallel) and par.concurrent == 2
    seq, cond = par.tasks
    assert isinstance(seq, flowable.Sequential)
    assert [type(t) for t in seq.tasks] == [core.Return, core.Sleep]
    assert seq.tasks[1].duration == timedelta(milliseconds=100)
    assert isinstance(cond, flowable.If) and cond.condition == "{{ inputs.go }}"
    each = cond.then[0]
    assert isinstance(each, flowable.ForEach) and each.values == ["a", "b"]
    assert isinstance(each.tasks[0], core.OutputValues)
    fcwf = each.tasks[-1]
    assert isinstance(fcwf, flowctl.Workflow) and fcwf.maxConcurrency == 2
    assert [type(t) for t in fcwf.tasks] == [flowctl.Generic, flowctl.Ci, flowctl.Etl,
                                             flowctl.MlTraining]
    assert fcwf.tasks[0].priority == 5 and fcwf.tasks[1].dependsOn == ["fcgen"]
    assert isinstance(cond.else_[0], core.Fail) and cond.else_[0].errorMessage == "no"
    assert isinstance(wait, flowable.Pause) and wait.pauseDuration == timedelta(hours=1)
    assert [(i.id, i.defaults) for i in wait.onResume] == [("reason", "none")]
    assert isinstance(call, flowable.Subflow)
    assert (call.namespace, call.flowId, call.inputs, call.wait) == (
        "company.team", "child", {"n": 1}, True)
    assert isinstance(fetch, http.Request) and fetch.method == "POST"
    assert isinstance(kvset, kv.Set) and kvset.ttl == timedelta(days=1)
    assert isinstance(kvget, kv.Get) and isinstance(kvdel, kv.Delete)
    assert isinstance(appr, approval.ApprovalRequest) and appr.expiresIn == timedelta(hours=2)

    assert [t.id for t in flow.errors] == ["onerr"]
    assert [t.id for t in flow.finally_] == ["cleanup"]
    assert set(flow.tasks_by_id) == {
        "log", "shell", "script", "bash", "par", "seq", "ret", "nap", "cond", "each", "outv",
        "boom", "wait", "call", "fetch", "kvset", "kvget", "kvdel", "approve", "onerr",
        "cleanup", "stcheck", "stclone", "stlist", "stdelete", "agwrite", "agcheck", "agsend",
        "worker", "approvedeploy", "fcwf", "fcgen", "fcci", "fcetl", "fcml"}
    assert flow.tasks_by_id["outv"] is each.tasks[0]

    [schedule] = flow.schedules
    assert (schedule.id, schedule.cron, schedule.timezone, schedule.inputs) == (
        "nightly", "0 2 * * *", "Europe/Paris", {"name": "night"})
    [hook] = flow.webhooks
    assert (hook.id, hook.key, hook.wait, hook.returnOutputs) == ("hook", "s3cr3tkey", True, False)
    assert flow.concurrency is not None
    assert (flow.concurrency.limit, flow.concurrency.behavior) == (2, "CANCEL")
    assert flow.retry is not None
    assert (flow.retry.type, flow.retry.interval, flow.retry.maxAttempts) == (
        "constant", timedelta(seconds=10), 3)


def test_full_flow_uses_every_registered_task_type() -> None:
    used = set(re.findall(r"^\s*type: (\S+\.[A-Z]\w*)$", FULL_FLOW, re.MULTILINE))
    assert set(TASK_TYPES) <= used


def test_source_is_kept_byte_for_byte() -> None:
    source = ("# a comment that YAML drops\r\nid: f   \r\nnamespace: n\r\ntasks:\r\n"
              f"  - {{id: a, type: {LOG}, message: 'héllo'}}\r\n\r\n")
    flow = parse_flow(source)
    assert flow.source == source
    assert flow.to_dict()["source"] == source


def test_to_dict_has_kestra_json_shape() -> None:
    flow = parse_flow(FULL_FLOW, revision=4)
    doc = flow.to_dict()
    assert json.loads(json.dumps(doc)) == doc  # plain JSON all the way down
    assert list(doc)[:4] == ["id", "namespace", "revision", "tenantId"]
    assert (doc["id"], doc["namespace"], doc["revision"], doc["tenantId"]) == (
        "everything", "company.team", 4, "main")
    assert doc["description"] == "Every feature at once.\n"
    assert doc["labels"] == [{"key": "team", "value": "data"}, {"key": "tier", "value": "1"},
                             {"key": "empty", "value": ""}]
    raw = yaml.safe_load(FULL_FLOW)
    assert doc["tasks"] == raw["tasks"]  # passed through property by property
    assert doc["triggers"] == raw["triggers"]
    assert doc["errors"] == raw["errors"] and doc["finally"] == raw["finally"]
    assert doc["concurrency"] == {"limit": 2, "behavior": "CANCEL"}
    assert doc["retry"]["behavior"] == "RETRY_FAILED_TASK"
    assert doc["inputs"][4] == {"id": "when", "type": "DATETIME",
                                "defaults": "2025-06-01T10:00:00Z", "required": True}
    assert doc["variables"]["day"] == "2025-06-01"
    assert (doc["disabled"], doc["deleted"], doc["draft"]) == (False, False, False)
    assert doc["source"] == FULL_FLOW
    assert "source" not in flow.to_dict(with_source=False)


def test_minimal_flow_to_dict_omits_absent_sections() -> None:
    doc = parse_flow(flow_with_tasks(SIMPLE_TASKS)).to_dict(with_source=False)
    assert doc == {"id": "f", "namespace": "n", "revision": 1, "tenantId": "main",
                   "tasks": [{"id": "a", "type": LOG, "message": "hi"}],
                   "disabled": False, "deleted": False, "draft": False}


def test_input_defaults_are_written_as_kestra_writes_properties() -> None:
    """Kestra's property serializer writes a `defaults` as its text, whatever its YAML type
    (kestrapy 1.x parses nothing else); `required` is always said."""
    source = flow_with_tasks(SIMPLE_TASKS) + textwrap.dedent("""\
        inputs:
          - {id: flag, type: BOOLEAN, defaults: false}
          - {id: count, type: INT, defaults: 5, required: false}
          - {id: ratio, type: FLOAT, defaults: 1.5}
          - {id: names, type: ARRAY, itemType: STRING, defaults: [a, "b c"]}
          - {id: doc, type: JSON, defaults: {k: [1, true]}}
          - {id: text, type: STRING, defaults: hi, description: null}
        labels: {team: data, tier: 1}
        """)
    doc = parse_flow(source).to_dict()
    assert [(i["id"], i["defaults"], i["required"]) for i in doc["inputs"]] == [
        ("flag", "false", True), ("count", "5", False), ("ratio", "1.5", True),
        ("names", '["a","b c"]', True), ("doc", '{"k":[1,true]}', True), ("text", "hi", True)]
    assert "description" not in doc["inputs"][5]
    assert doc["labels"] == [{"key": "team", "value": "data"}, {"key": "tier", "value": "1"}]


def test_labels_as_list_of_key_value_pairs() -> None:
    flow = parse_flow(flow_with_tasks(SIMPLE_TASKS, """\
        labels:
          - key: team
            value: data
          - key: tier
            value: 2
          - key: none
            value: null
          - key: missing
        """))
    assert flow.labels == [("team", "data"), ("tier", "2"), ("none", ""), ("missing", "")]
    assert flow.to_dict()["labels"] == [
        {"key": "team", "value": "data"}, {"key": "tier", "value": "2"},
        {"key": "none", "value": ""}, {"key": "missing", "value": ""}]


def test_legacy_type_names_and_schedule_aliases_are_accepted() -> None:
    flow = parse_flow(flow_with_tasks("""\
        - id: a
          type: io.kestra.core.tasks.log.Log
          message: hi
        - id: b
          type: io.kestra.core.tasks.flows.EachSequential
          values: [1]
          tasks:
            - id: c
              type: io.kestra.core.tasks.debugs.Return
              format: x
        """, """\
        triggers:
          - id: daily
            type: io.kestra.core.models.triggers.types.Schedule
            cron: "@daily"
          - id: secs
            type: io.kestra.plugin.core.trigger.Schedule
            cron: "*/10 * * * * *"
            withSeconds: true
        """))
    assert isinstance(flow.tasks[0], core.Log)
    assert isinstance(flow.tasks[1], flowable.ForEach)
    assert isinstance(flow.tasks_by_id["c"], core.Return)
    assert [s.crontab() for s in flow.schedules] == ["0 0 * * *", "*/10 * * * * *"]


# -- invalid flows ----------------------------------------------------------------------------


def test_unknown_task_type_names_index_and_type() -> None:
    source = flow_with_tasks(f"""\
        - id: a
          type: {LOG}
          message: hi
        - id: b
          type: io.kestra.nope
        """)
    assert message_of(source) == "tasks[1].type: unknown task type 'io.kestra.nope'"


@pytest.mark.parametrize(("source", "expected"), [
    (f"namespace: n\ntasks:\n{SIMPLE_TASKS}", "id: is required"),
    (f"id: f\ntasks:\n{SIMPLE_TASKS}", "namespace: is required"),
    ("id: f\nnamespace: n\n", "tasks: is required"),
    ("id: f\nnamespace: n\ntasks: []\n", "tasks: must not be empty"),
    ("id: f\nnamespace: n\ntasks: hello\n", "tasks: must be a list of tasks"),
    ("id: f\nnamespace: n\ntasks: [hello]\n", "tasks[0]: must be a mapping with 'id' and 'type'"),
    ("id: f\nnamespace: n\ntasks: [{id: a}]\n", "tasks[0].type: is required"),
    (f"id: 'bad id'\nnamespace: n\ntasks:\n{SIMPLE_TASKS}",
     "id: 'bad id' must match ^[a-zA-Z0-9][a-zA-Z0-9._-]*$"),
    (f"id: f\nnamespace: 'a/b'\ntasks:\n{SIMPLE_TASKS}",
     "namespace: 'a/b' must match ^[a-z0-9][a-z0-9._-]*$"),
    (f"id: f\nnamespace: n\nowner: me\ntasks:\n{SIMPLE_TASKS}", "owner: unknown property"),
    (f"id: f\nnamespace: n\ndisabled: maybe\ntasks:\n{SIMPLE_TASKS}",
     "disabled: must be true or false"),
    (f"id: f\nnamespace: n\nvariables: [1]\ntasks:\n{SIMPLE_TASKS}",
     "variables: must be a mapping"),
    (f"id: f\nnamespace: n\nlabels: 5\ntasks:\n{SIMPLE_TASKS}",
     "labels: must be a mapping or a list of {key, value}"),
    (f"id: f\nnamespace: n\nlabels: [team]\ntasks:\n{SIMPLE_TASKS}",
     "labels[0]: must be a mapping with 'key' and 'value'"),
    (f"id: f\nnamespace: n\ninputs: {{a: 1}}\ntasks:\n{SIMPLE_TASKS}", "inputs: must be a list"),
    (f"id: f\nnamespace: n\noutputs: 5\ntasks:\n{SIMPLE_TASKS}", "outputs: must be a list"),
    (f"id: f\nnamespace: n\ntriggers: {{a: 1}}\ntasks:\n{SIMPLE_TASKS}",
     "triggers: must be a list"),
])
def test_top_level_problems(source: str, expected: str) -> None:
    assert message_of(source) == expected


def test_trailing_newline_in_id_or_namespace_is_refused() -> None:
    # `re.match` with `$` would let "f\n" through; ids end up in URLs and file names
    assert problems_of(f'id: "f\\n"\nnamespace: "n\\n"\ntasks:\n{SIMPLE_TASKS}') == [
        ("id", "'f\n' must match ^[a-zA-Z0-9][a-zA-Z0-9._-]*$"),
        ("namespace", "'n\n' must match ^[a-z0-9][a-z0-9._-]*$"),
    ]


def test_problems_inside_if_branches_carry_the_nested_path() -> None:
    source = flow_with_tasks(f"""\
        - id: branch
          type: io.kestra.plugin.core.flow.If
          condition: "{{{{ true }}}}"
          then:
            - id: ok
              type: {LOG}
              message: hi
            - id: bad
              type: io.kestra.plugin.nope.Thing
          else:
            - id: typo
              type: {LOG}
              message: hi
              mesage: oops
        """)
    assert problems_of(source) == [
        ("tasks[0].then[1].type", "unknown task type 'io.kestra.plugin.nope.Thing'"),
        ("tasks[0].else[0].mesage", "unknown property"),
    ]


def test_if_without_then_and_flowables_without_tasks() -> None:
    source = flow_with_tasks("""\
        - id: branch
          type: io.kestra.plugin.core.flow.If
          condition: x
        - id: par
          type: io.kestra.plugin.core.flow.Parallel
          tasks: []
        - id: each
          type: io.kestra.plugin.core.flow.ForEach
          values: [1]
        - id: pause
          type: io.kestra.plugin.core.flow.Pause
        """)
    assert problems_of(source) == [
        ("tasks[0].then", "is required"),
        ("tasks[1].tasks", "must not be empty"),
        ("tasks[2].tasks", "is required"),
    ]  # Pause's tasks are optional


def test_unknown_property_on_a_task() -> None:
    source = flow_with_tasks(f"""\
        - id: a
          type: {LOG}
          message: hi
          mesage: hi
        """)
    assert message_of(source) == "tasks[0].mesage: unknown property"


def test_missing_required_task_property_and_bad_values() -> None:
    source = flow_with_tasks(f"""\
        - id: a
          type: {LOG}
        - id: b
          type: {LOG}
          message: hi
          level: LOUD
        - id: 'c d'
          type: {LOG}
          message: hi
        """)
    assert problems_of(source) == [
        ("tasks[0].message", "Field required"),
        ("tasks[1].level", "Input should be 'TRACE', 'DEBUG', 'INFO', 'WARN' or 'ERROR'"),
        ("tasks[2].id", "String should match pattern '^[a-zA-Z0-9][a-zA-Z0-9_-]*$'"),
    ]


def test_problems_in_children_of_an_invalid_parent_are_still_reported() -> None:
    source = flow_with_tasks("""\
        - id: par
          type: io.kestra.plugin.core.flow.Parallel
          concurrent: -1
          tasks:
            - id: child
              type: io.kestra.nope
        """)
    assert problems_of(source) == [
        ("tasks[0].concurrent", "Input should be greater than or equal to 0"),
        ("tasks[0].tasks[0].type", "unknown task type 'io.kestra.nope'"),
    ]


def test_duplicate_task_ids_across_nested_levels_and_handlers() -> None:
    source = flow_with_tasks(f"""\
        - id: a
          type: {LOG}
          message: hi
        - id: seq
          type: io.kestra.plugin.core.flow.Sequential
          tasks:
            - id: inner
              type: io.kestra.plugin.core.flow.Parallel
              tasks:
                - id: a
                  type: {LOG}
                  message: again
        """, f"""\
        errors:
          - id: seq
            type: {LOG}
            message: dup
        """)
    assert problems_of(source) == [
        ("tasks[1].tasks[0].tasks[0].id", "duplicate task id 'a' (also at tasks[0])"),
        ("errors[0].id", "duplicate task id 'seq' (also at tasks[1])"),
    ]


def test_depends_on_a_missing_task_and_on_a_task_of_another_list() -> None:
    source = flow_with_tasks(f"""\
        - id: a
          type: {LOG}
          message: hi
          dependsOn: [ghost]
        - id: seq
          type: io.kestra.plugin.core.flow.Sequential
          tasks:
            - id: inner
              type: {LOG}
              message: hi
              dependsOn: [a]
        """)
    assert sorted(problems_of(source)) == [
        ("tasks[0].dependsOn", "'ghost' is not a task of the same list"),
        ("tasks[1].tasks[0].dependsOn", "'a' is not a task of the same list"),
    ]


def test_depends_on_cycles_are_refused() -> None:
    def chain(edges: dict[str, str]) -> str:
        return flow_with_tasks("".join(
            f"- id: {t}\n  type: {LOG}\n  message: x\n  dependsOn: [{d}]\n"
            for t, d in edges.items()))

    assert message_of(chain({"a": "b", "b": "a"})) == "tasks: dependsOn forms a cycle: a -> b -> a"
    assert message_of(chain({"a": "c", "b": "a", "c": "b"})) == (
        "tasks: dependsOn forms a cycle: a -> c -> b -> a")
    assert message_of(chain({"solo": "solo"})) == "tasks: dependsOn forms a cycle: solo -> solo"
    # a long acyclic chain is fine (no recursion limit in the check)
    tasks = f"- id: t0\n  type: {LOG}\n  message: x\n" + "".join(
        f"- id: t{i}\n  type: {LOG}\n  message: x\n  dependsOn: [t{i - 1}]\n"
        for i in range(1, 1500))
    assert len(parse_flow(flow_with_tasks(tasks)).tasks) == 1500


def _trigger_flow(trigger: str) -> str:
    return flow_with_tasks(SIMPLE_TASKS, "triggers:\n" + textwrap.indent(
        textwrap.dedent(trigger), "  "))


@pytest.mark.parametrize(("trigger", "expected"), [
    ("- id: s\n  type: io.kestra.plugin.core.trigger.Schedule\n  cron: '0 2 *'\n",
     "triggers[0].cron: expected 5 fields, got 3 in '0 2 *'"),
    ("- id: s\n  type: io.kestra.plugin.core.trigger.Schedule\n  cron: '0 2 * * *'\n"
     "  withSeconds: true\n",
     "triggers[0].cron: expected 6 fields, got 5 in '0 2 * * *'"),
    ("- id: s\n  type: io.kestra.plugin.core.trigger.Schedule\n  cron: '0 2 * * *'\n"
     "  timezone: Mars/Olympus\n",
     "triggers[0].timezone: unknown time zone 'Mars/Olympus'"),
    ("- id: s\n  type: io.kestra.plugin.core.trigger.Schedule\n  cron: '0 2 * * *'\n"
     "  timezone: ../../etc/passwd\n",
     "triggers[0].timezone: unknown time zone '../../etc/passwd'"),
    ("- id: s\n  type: io.kestra.plugin.core.trigger.Schedule\n",
     "triggers[0].cron: Field required"),
    ("- id: h\n  type: io.kestra.plugin.core.trigger.Webhook\n",
     "triggers[0].key: Field required"),
    ("- id: x\n  type: io.kestra.plugin.core.trigger.Flow\n",
     "triggers[0].type: unknown trigger type 'io.kestra.plugin.core.trigger.Flow'"),
    ("- id: x\n", "triggers[0].type: is required"),
    ("- id: x\n  type: [not, hashable]\n", "triggers[0].type: is required"),
    ("- hello\n", "triggers[0]: must be a mapping with 'id' and 'type'"),
    ("- {id: h, type: io.kestra.plugin.core.trigger.Webhook, key: a}\n"
     "- {id: h, type: io.kestra.plugin.core.trigger.Webhook, key: b}\n",
     "triggers[1].id: duplicate trigger id 'h'"),
])
def test_trigger_problems(trigger: str, expected: str) -> None:
    assert message_of(_trigger_flow(trigger)) == expected


@pytest.mark.parametrize("cron", ["99 * * * *", "*/0 * * * *", "5-1 * * * *", "* * * * mon-xyz"])
def test_invalid_cron_fields_name_the_cron(cron: str) -> None:
    message = message_of(_trigger_flow(
        f"- id: s\n  type: io.kestra.plugin.core.trigger.Schedule\n  cron: '{cron}'\n"))
    assert message.startswith(f"triggers[0].cron: invalid cron '{cron}': ")
    assert len(message) > len(f"triggers[0].cron: invalid cron '{cron}': ")


@pytest.mark.parametrize(("prop", "expected"), [
    ("timeout: five minutes",
     "tasks[0].timeout: invalid ISO-8601 duration 'five minutes' (expected e.g. PT30S, PT5M, P1D)"),
    ("timeout: P1M",
     "tasks[0].timeout: invalid ISO-8601 duration 'P1M': years and months have no fixed length; "
     "use days or weeks instead (e.g. P30D, P4W)"),
    ("retry: {type: constant, maxAttempts: 3}",
     "tasks[0].retry: a constant retry needs an 'interval'"),
    ("retry: {type: exponential, maxAttempts: 3}",
     "tasks[0].retry: a exponential retry needs an 'interval'"),
    ("retry: {type: random, maxAttempts: 3, minInterval: PT1S}",
     "tasks[0].retry: a random retry needs 'minInterval' and 'maxInterval'"),
    ("retry: {type: constant, interval: PT1S}",
     "tasks[0].retry: a retry needs 'maxAttempts' or 'maxDuration'"),
    ("retry: {type: constant, interval: PT1S, maxAttempts: 0}",
     "tasks[0].retry.maxAttempts: Input should be greater than or equal to 1"),
    ("retry: {type: sometimes, interval: PT1S, maxAttempts: 2}",
     "tasks[0].retry.type: Input should be 'constant', 'exponential' or 'random'"),
])
def test_task_duration_and_retry_problems(prop: str, expected: str) -> None:
    source = flow_with_tasks(f"""\
        - id: a
          type: {LOG}
          message: hi
          {prop}
        """)
    assert message_of(source) == expected


def test_numeric_timeout_is_seconds() -> None:
    flow = parse_flow(flow_with_tasks(f"- id: a\n  type: {LOG}\n  message: hi\n  timeout: 90\n"))
    assert flow.tasks[0].timeout == timedelta(seconds=90)


@pytest.mark.parametrize(("extra", "expected"), [
    ("retry: {type: constant, maxAttempts: 2}\n", "retry: a constant retry needs an 'interval'"),
    ("retry: {type: constant, interval: PT1S}\n",
     "retry: a retry needs 'maxAttempts' or 'maxDuration'"),
    ("retry: {type: constant, interval: soon, maxAttempts: 2}\n",
     "retry.interval: invalid ISO-8601 duration 'soon' (expected e.g. PT30S, PT5M, P1D)"),
    ("concurrency: {limit: 0}\n",
     "concurrency.limit: Input should be greater than or equal to 1"),
    ("concurrency: {limit: 1, behavior: DROP}\n",
     "concurrency.behavior: Input should be 'QUEUE', 'CANCEL' or 'FAIL'"),
    ("concurrency: {limit: 1, burst: 2}\n", "concurrency.burst: unknown property"),
    ("concurrency: {behavior: QUEUE}\n", "concurrency.limit: Field required"),
])
def test_flow_retry_and_concurrency_problems(extra: str, expected: str) -> None:
    assert message_of(flow_with_tasks(SIMPLE_TASKS, extra)) == expected


def test_input_declaration_problems() -> None:
    source = flow_with_tasks(SIMPLE_TASKS, """\
        inputs:
          - id: a
            type: FOO
          - id: s
            type: SELECT
          - id: r
            validator: '[a-'
          - id: arr
            type: ARRAY
            itemType: SELECT
          - id: 'bad id'
          - id: ok
          - id: ok
          - {type: STRING}
        """)
    assert problems_of(source) == [
        ("inputs[0]", "unknown input type 'FOO'"),
        ("inputs[1]", "a SELECT input needs 'values'"),
        ("inputs[2]", "invalid validator regex: unterminated character set at position 3"),
        ("inputs[3]", "unsupported itemType 'SELECT' (one of BOOL, BOOLEAN, DATE, DATETIME, "
                      "DURATION, EMAIL, FLOAT, INT, JSON, SECRET, STRING, TIME, URI, YAML)"),
        ("inputs[4].id", "String should match pattern '^[a-zA-Z0-9][a-zA-Z0-9_.-]*$'"),
        ("inputs[6].id", "duplicate input id 'ok'"),
        ("inputs[7].id", "Field required"),
    ]


def test_defaults_that_do_not_fit_their_input_type_are_refused() -> None:
    source = flow_with_tasks("""\
        - id: wait
          type: io.kestra.plugin.core.flow.Pause
          onResume:
            - {id: ok, type: BOOLEAN, defaults: perhaps}
        """, """\
        inputs:
          - {id: a, type: INT, defaults: abc}
          - {id: b, type: SELECT, values: [x], defaults: y}
          - {id: c, type: INT, defaults: 3, min: 5}
          - {id: d, type: DATETIME, defaults: "{{ now() }}"}
          - {id: e, type: DURATION, defaults: PT5M}
        """)
    assert problems_of(source) == [
        ("tasks[0].onResume[0].defaults", "expected true or false, got 'perhaps'"),
        ("inputs[0].defaults", "expected an integer, got 'abc'"),
        ("inputs[1].defaults", "'y' is not one of ['x']"),
        ("inputs[2].defaults", "3 is below the minimum 5"),
    ]  # a templated default cannot be checked before a run and is let through


def test_invalid_yaml_names_the_line() -> None:
    source = "id: f\nnamespace: n\ntasks:\n  - id: a\n    type: x\n   oops: [\n"
    message = message_of(source)
    assert re.fullmatch(r"invalid YAML at line 6, column \d+: .+", message), message
    assert message_of("id: f\nnamespace: n\ntasks: [\n").startswith(
        "invalid YAML at line 4, column 1: ")


@pytest.mark.parametrize("source", ["- a\n- b\n", "hello", "42", "", "null", "~\n"])
def test_yaml_that_is_not_a_mapping(source: str) -> None:
    assert message_of(source) == "a flow must be a YAML mapping with id, namespace and tasks"


@pytest.mark.parametrize(("extra", "expected"), [
    ("x: !!int abc\n", "invalid YAML: invalid literal for int() with base 10: 'abc'"),
    ("x: !!timestamp 2025-13-01\n", "invalid YAML: month must be in 1..12"),
    ("x: " + "[" * 3000 + "]" * 3000 + "\n",
     "invalid YAML: nested too deeply (more than 100 levels)"),
    ("variables: {b: !!binary aGVsbG8=}\n", "variables.b: unsupported YAML value of type bytes"),
    ("variables: !!set {a, b}\n", "variables: unsupported YAML value of type set"),
    ("variables: {d: !!timestamp 2025-06-01}\n",
     "variables.d: unsupported YAML value of type date"),
])
def test_yaml_tags_that_do_not_build_json_are_flow_errors(extra: str, expected: str) -> None:
    assert message_of(flow_with_tasks(SIMPLE_TASKS, extra)) == expected


def test_implicit_timestamps_stay_strings() -> None:
    # `2025-13-01` used to crash the YAML loader with a bare ValueError; Kestra keeps it as text
    flow = parse_flow(flow_with_tasks(SIMPLE_TASKS, "variables: {a: 2025-13-01, b: 2025-06-01}\n"))
    assert flow.variables == {"a": "2025-13-01", "b": "2025-06-01"}


def test_several_problems_are_reported_at_once() -> None:
    source = textwrap.dedent(f"""\
        id: f
        tasks:
          - id: a
            type: io.kestra.nope
          - id: b
            type: {LOG}
        triggers:
          - id: s
            type: io.kestra.plugin.core.trigger.Schedule
            cron: "61 * * * *"
        concurrency: {{limit: 0}}
        """)
    with pytest.raises(InvalidFlowError) as info:
        parse_flow(source)
    paths = [p for p, _ in info.value.problems]
    assert paths == ["namespace", "tasks[0].type", "tasks[1].message", "triggers[0].cron",
                     "concurrency.limit"]
    text = str(info.value)
    assert text.startswith("namespace: is required; tasks[0].type: unknown task type "
                           "'io.kestra.nope'; tasks[1].message: Field required; ")
    assert text.count("; ") == 4


# -- parse_flow never raises anything else ------------------------------------------------------

_KEYS = st.sampled_from([
    "id", "namespace", "tasks", "type", "triggers", "cron", "timezone", "inputs", "labels",
    "key", "value", "values", "then", "else", "errors", "finally", "retry", "interval",
    "maxAttempts", "concurrency", "limit", "behavior", "dependsOn", "timeout", "message",
    "variables", "outputs", "disabled", "withSeconds", "itemType", "validator", "defaults",
    "onResume", "condition", "description", "min", "max",
])
_SCALARS = st.one_of(
    st.none(), st.booleans(), st.integers(), st.floats(allow_nan=True),
    st.text(max_size=12),
    st.sampled_from([LOG, "io.kestra.plugin.core.flow.If", "io.kestra.plugin.core.flow.Parallel",
                     "io.kestra.plugin.core.flow.ForEach", "io.kestra.plugin.core.flow.Pause",
                     "io.kestra.plugin.core.trigger.Schedule",
                     "io.kestra.plugin.core.trigger.Webhook", "STRING", "ARRAY", "SELECT",
                     "PT5M", "P1M", "0 2 * * *", "* * *", "Europe/Paris", "Nope/Zone",
                     "constant", "QUEUE", "a", "b", "[", "(?P<", "2025-13-01"]),
)
_VALUES = st.recursive(
    _SCALARS,
    lambda children: st.one_of(st.lists(children, max_size=4),
                               st.dictionaries(_KEYS, children, max_size=5)),
    max_leaves=25,
)
def _parse_or_invalid(source: str) -> FlowDefinition | None:
    try:
        return parse_flow(source)
    except InvalidFlowError as exc:
        assert str(exc)  # always says something
        assert all(isinstance(p, str) and isinstance(m, str) and m for p, m in exc.problems)
        return None


_TOP_KEYS = st.sampled_from([
    "id", "namespace", "tasks", "triggers", "inputs", "labels", "concurrency", "retry",
    "errors", "finally", "variables", "outputs", "disabled", "description", "unknown"])
_FLOWISH = st.fixed_dictionaries(
    {}, optional={k: st.one_of(_SCALARS, _VALUES) for k in (
        "id", "namespace", "tasks", "triggers", "inputs", "labels", "concurrency", "retry",
        "errors", "variables", "outputs")})
# Unquoted YAML fragments: implicit types, explicit tags, anchors and half-written syntax.
_FRAGMENTS = st.sampled_from([
    "2025-13-01", "2025-06-01", "2025-06-01T10:00:00Z", "!!int abc", "!!float x",
    "!!binary aGk=", "!!set {a}", "!!timestamp 2025-02-30", "!!python/name:os.system", "[",
    "{", "{a: 1}", "[1, 2]", "5", "-1", "0", "null", "~", "yes", "no", ".nan", "PT5M", "'x'",
    '"y\\n"', "&a [1]", "*a", "*missing", "|\n  text", "[a, [b, {c: d}]]",
    f"[{{id: a, type: {LOG}, message: m}}]",
    f"[{{id: a, type: {LOG}, message: m, dependsOn: [a]}}]",
    "[{id: a, type: io.kestra.plugin.core.flow.If, condition: x, then: [{id: a}]}]",
    "[{id: t, type: io.kestra.plugin.core.trigger.Schedule, cron: '0 2 * * *', "
    "timezone: Nope/Zone}]",
    "[{id: t, type: io.kestra.plugin.core.trigger.Schedule, cron: '*/0 * * * *'}]",
    "[{id: t, type: [x]}]", "[{id: t, type: {a: b}}]", "{limit: 0}", "{limit: x}",
    "{type: constant}", "[{id: x, type: ARRAY, itemType: NOPE}]",
    "[{id: x, type: STRING, validator: '(?P<'}]", "[{key: a, value: [1]}]",
])


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.text(max_size=200))
def test_arbitrary_text_only_ever_raises_invalid_flow_error(text: str) -> None:
    _parse_or_invalid(text)


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_FLOWISH)
def test_arbitrary_flow_shaped_yaml_only_ever_raises_invalid_flow_error(doc: Any) -> None:
    flow = _parse_or_invalid(yaml.safe_dump(doc))
    if flow is not None:
        json.dumps(flow.to_dict())


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.tuples(_TOP_KEYS, _FRAGMENTS), max_size=6))
def test_arbitrary_yaml_fragments_only_ever_raise_invalid_flow_error(
        lines: list[tuple[str, str]]) -> None:
    source = "id: f\nnamespace: n\n" + "".join(f"{k}: {v}\n" for k, v in lines)
    flow = _parse_or_invalid(source)
    if flow is not None:
        json.dumps(flow.to_dict())


def test_mutated_valid_flow_only_ever_raises_invalid_flow_error() -> None:
    """Deterministic sweep: every line of the full flow cut, or its value replaced."""
    lines = FULL_FLOW.splitlines(keepends=True)
    for i in range(len(lines)):
        _parse_or_invalid("".join(lines[:i] + lines[i + 1:]))
        if ":" in lines[i]:
            head = lines[i].split(":", 1)[0]
            junk = (" [", " {a: 1}", " -1", " null", " !!binary aGk=", " [x]")[i % 6]
            _parse_or_invalid("".join([*lines[:i], f"{head}:{junk}\n", *lines[i + 1:]]))


# -- revisions through the engine ---------------------------------------------------------------

V1 = flow_with_tasks(f"""\
    - id: say
      type: {LOG}
      message: v1
    """)
V2 = V1.replace("message: v1", "message: v2")


async def test_create_update_and_revisions(engine: Engine) -> None:
    created = await engine.create_flow(V1)
    assert (created.id, created.namespace, created.revision) == ("f", "n", 1)
    assert created.updated is not None and created.updated.endswith("Z")
    assert engine.get_flow("n", "f").source == V1

    updated = await engine.update_flow("n", "f", V2)
    assert updated.revision == 2 and updated.source == V2
    same = await engine.update_flow("n", "f", V2)
    assert same.revision == 2 and same is updated  # identical source: no new revision

    revisions = await engine.flow_revisions("n", "f")
    assert [(r.revision, r.source) for r in revisions] == [(1, V1), (2, V2)]
    assert (await engine.get_flow_revision("n", "f", 1)).tasks[0].message == "v1"
    assert engine.get_flow("n", "f").revision == 2

    with pytest.raises(NotFoundError):
        await engine.get_flow_revision("n", "f", 3)
    with pytest.raises(NotFoundError):
        await engine.flow_revisions("n", "other")


async def test_whitespace_only_change_is_a_new_revision(engine: Engine) -> None:
    await engine.create_flow(V1)
    changed = await engine.update_flow("n", "f", V1 + "\n# trailing comment\n")
    assert changed.revision == 2


async def test_update_with_a_mismatching_id_or_namespace(engine: Engine) -> None:
    await engine.create_flow(V1)
    with pytest.raises(InvalidFlowError) as info:
        await engine.update_flow("n", "f", V1.replace("id: f", "id: g"))
    assert str(info.value) == "id: the source defines 'n.g', not 'n.f'"
    with pytest.raises(InvalidFlowError) as info:
        await engine.update_flow("n", "f", V1.replace("namespace: n", "namespace: m"))
    assert str(info.value) == "id: the source defines 'm.f', not 'n.f'"
    with pytest.raises(InvalidFlowError, match=r"tasks\[0\]\.type: unknown task type"):
        await engine.update_flow("n", "f", V1.replace(LOG, "io.kestra.nope"))
    assert [r.revision for r in await engine.flow_revisions("n", "f")] == [1]
    with pytest.raises(NotFoundError):
        await engine.update_flow("n", "missing", V1.replace("id: f", "id: missing"))


async def test_create_twice_conflicts_and_invalid_create_stores_nothing(engine: Engine) -> None:
    await engine.create_flow(V1)
    with pytest.raises(ConflictError, match=r"^flow 'n\.f' already exists$"):
        await engine.create_flow(V2)
    with pytest.raises(InvalidFlowError):
        await engine.create_flow(V1.replace("id: f", "id: g").replace(LOG, "io.kestra.nope"))
    with pytest.raises(NotFoundError):
        engine.get_flow("n", "g")
    row = await engine.store.fetchone("SELECT COUNT(*) FROM flows")
    assert row is not None and row[0] == 1


async def test_delete_then_create_continues_the_revision_numbers(engine: Engine) -> None:
    await engine.create_flow(V1)
    await engine.update_flow("n", "f", V2)
    await engine.delete_flow("n", "f")
    with pytest.raises(NotFoundError):
        engine.get_flow("n", "f")
    assert engine.list_flows("n") == []
    again = await engine.create_flow(V1)
    assert again.revision == 3
    assert [r.revision for r in await engine.flow_revisions("n", "f")] == [1, 2, 3]


async def test_apply_flow_reports_created_updated_unchanged(engine: Engine) -> None:
    flow, outcome = await engine.apply_flow(V1)
    assert (outcome, flow.revision) == ("created", 1)
    flow, outcome = await engine.apply_flow(V1)
    assert (outcome, flow.revision) == ("unchanged", 1)
    flow, outcome = await engine.apply_flow(V2)
    assert (outcome, flow.revision) == ("updated", 2)


async def test_execution_keeps_its_revision_after_an_update(engine: Engine) -> None:
    await engine.create_flow(V1)
    first = await engine.create_execution("n", "f")
    await engine.update_flow("n", "f", V2)  # while the first execution is under way
    first_final = await engine.wait_until_terminal(first.id, timeout=30)
    second_final = await run_flow(engine, "n", "f")
    assert first_final.state.current == "SUCCESS"
    assert (await engine.get_execution_doc(first.id))["flowRevision"] == 1
    assert (await engine.get_execution_doc(second_final.id))["flowRevision"] == 2
    assert [e.message for e in await engine.logs.fetch(first.id)] == ["v1"]
    assert [e.message for e in await engine.logs.fetch(second_final.id)] == ["v2"]
    # an explicit older revision can still be run
    old = await run_flow(engine, "n", "f", revision=1)
    assert old.flow_revision == 1
    assert [e.message for e in await engine.logs.fetch(old.id)] == ["v1"]


async def test_revisions_survive_a_restart(tmp_path: Path) -> None:
    eng = await open_engine(tmp_path / "data")
    try:
        await eng.create_flow(V1)
        await eng.update_flow("n", "f", V2)
    finally:
        await eng.close()
    eng = await open_engine(tmp_path / "data")
    try:
        head = eng.get_flow("n", "f")
        assert (head.revision, head.source) == (2, V2)
        assert [r.source for r in await eng.flow_revisions("n", "f")] == [V1, V2]
        assert (await eng.update_flow("n", "f", V2)).revision == 2
    finally:
        await eng.close()
