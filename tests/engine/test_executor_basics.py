"""The executor on real flows: task types, ordering, outputs and templating."""

from __future__ import annotations

from flowdeck.engine.engine import Engine
from helpers import apply, run_flow, states


async def test_log_and_shell_tasks_run_in_order_and_store_outputs(engine: Engine) -> None:
    await apply(engine, """
        id: hello
        namespace: t.basic
        inputs:
          - id: name
            type: STRING
            defaults: world
        tasks:
          - id: greet
            type: io.kestra.plugin.core.log.Log
            message: "Hello {{ inputs.name }}"
          - id: shell
            type: io.kestra.plugin.scripts.shell.Commands
            env:
              WHO: "{{ inputs.name }}"
            commands:
              - echo "out $WHO"
              - echo "err line" >&2
              - 'echo "::{\\"outputs\\":{\\"n\\":42}}::"'
          - id: values
            type: io.kestra.plugin.core.output.OutputValues
            values:
              doubled: "{{ outputs.shell.vars.n * 2 }}"
              code: "{{ outputs.shell.exitCode }}"
        """)
    final = await run_flow(engine, "t.basic", "hello", inputs={"name": "ada"})
    assert final.state.current == "SUCCESS"
    assert [tr.task_id for tr in final.task_runs] == ["greet", "shell", "values"]
    assert [h.state for h in final.state.histories] == ["CREATED", "RUNNING", "SUCCESS"]
    shell = final.task_runs[1]
    assert shell.outputs == {"exitCode": 0, "vars": {"n": 42}}
    assert len(shell.attempts) == 1 and shell.attempts[0].state.current == "SUCCESS"
    assert final.task_runs[2].outputs == {"values": {"doubled": "84", "code": "0"}}
    logs = await engine.logs.fetch(final.id)
    assert [(e.task_id, e.level, e.message) for e in logs] == [
        ("greet", "INFO", "Hello ada"),
        ("shell", "INFO", "out ada"),
        ("shell", "WARN", "err line"),
    ]
    assert [e.seq for e in logs] == [1, 2, 3]
    labels = dict(final.labels)
    assert labels["system.correlationId"] == final.id
    assert labels["system.from"] == "api"


async def test_execution_json_has_kestra_shape(engine: Engine) -> None:
    await apply(engine, """
        id: shape
        namespace: t.basic
        labels:
          team: data
        tasks:
          - id: one
            type: io.kestra.plugin.core.log.Log
            message: hi
        """)
    final = await run_flow(engine, "t.basic", "shape")
    doc = await engine.get_execution_doc(final.id)
    assert doc["state"]["current"] == "SUCCESS"
    assert doc["state"]["duration"].startswith("PT") and doc["state"]["duration"].endswith("S")
    assert doc["state"]["startDate"].endswith("Z") and doc["state"]["endDate"].endswith("Z")
    assert {"key": "team", "value": "data"} in doc["labels"]
    assert doc["flowRevision"] == 1 and doc["tenantId"] == "main"
    tr = doc["taskRunList"][0]
    assert set(tr) >= {"id", "executionId", "namespace", "flowId", "taskId", "attempts",
                       "outputs", "state"}
    assert "inputs" not in doc  # empty inputs are omitted, as Kestra does


async def test_failing_template_fails_task_naming_task_and_expression(engine: Engine) -> None:
    await apply(engine, """
        id: badtpl
        namespace: t.basic
        tasks:
          - id: broken
            type: io.kestra.plugin.core.log.Log
            message: "value is {{ outputs.nothing.here }}"
        """)
    final = await run_flow(engine, "t.basic", "badtpl")
    assert final.state.current == "FAILED"
    errors = [e.message for e in await engine.logs.fetch(final.id) if e.level == "ERROR"]
    assert len(errors) == 1
    assert "broken" in errors[0] and "outputs.nothing.here" in errors[0]


async def test_coalescing_operator_and_defaults(engine: Engine) -> None:
    await apply(engine, """
        id: coalesce
        namespace: t.basic
        tasks:
          - id: out
            type: io.kestra.plugin.core.output.OutputValues
            values:
              a: "{{ inputs.missing ?? 'fallback' }}"
              b: "{{ vars.x }}"
        variables:
          x: "flow {{ flow.id }}"
        """)
    final = await run_flow(engine, "t.basic", "coalesce")
    assert final.task_runs[0].outputs == {"values": {"a": "fallback", "b": "flow coalesce"}}


async def test_parallel_branches_overlap_and_dag_respects_dependencies(engine: Engine) -> None:
    await apply(engine, """
        id: dag
        namespace: t.basic
        tasks:
          - id: start
            type: io.kestra.plugin.core.log.Log
            message: go
          - id: left
            type: io.kestra.plugin.core.flow.Sleep
            duration: PT0.4S
            dependsOn: [start]
          - id: right
            type: io.kestra.plugin.core.flow.Sleep
            duration: PT0.4S
            dependsOn: [start]
          - id: join
            type: io.kestra.plugin.core.log.Log
            message: joined
            dependsOn: [left, right]
          - id: par
            type: io.kestra.plugin.core.flow.Parallel
            dependsOn: [join]
            tasks:
              - id: p1
                type: io.kestra.plugin.core.flow.Sleep
                duration: PT0.3S
              - id: p2
                type: io.kestra.plugin.core.flow.Sleep
                duration: PT0.3S
        """)
    final = await run_flow(engine, "t.basic", "dag")
    assert final.state.current == "SUCCESS"
    by_id = {tr.task_id: tr for tr in final.task_runs}
    left, right, join = by_id["left"], by_id["right"], by_id["join"]
    start_end = by_id["start"].state.end_date
    assert start_end is not None
    assert left.state.start_date >= start_end and right.state.start_date >= start_end
    # independent tasks ran concurrently: each started before the other finished
    assert left.state.start_date < right.state.end_date  # type: ignore[operator]
    assert right.state.start_date < left.state.end_date  # type: ignore[operator]
    assert join.state.start_date >= max(left.state.end_date, right.state.end_date)  # type: ignore[type-var]
    p1, p2 = by_id["p1"], by_id["p2"]
    assert p1.parent_task_run_id == by_id["par"].id
    assert p1.state.start_date < p2.state.end_date  # type: ignore[operator]
    assert p2.state.start_date < p1.state.end_date  # type: ignore[operator]


async def test_if_foreach_and_sequential(engine: Engine) -> None:
    await apply(engine, """
        id: flowables
        namespace: t.basic
        inputs:
          - id: go
            type: BOOLEAN
        tasks:
          - id: branch
            type: io.kestra.plugin.core.flow.If
            condition: "{{ inputs.go }}"
            then:
              - id: each
                type: io.kestra.plugin.core.flow.ForEach
                values: ["a", "b", "c"]
                concurrencyLimit: 0
                tasks:
                  - id: echo
                    type: io.kestra.plugin.core.debug.Return
                    format: "v={{ taskrun.value }}"
            else:
              - id: seq
                type: io.kestra.plugin.core.flow.Sequential
                tasks:
                  - id: s1
                    type: io.kestra.plugin.core.log.Log
                    message: one
                  - id: s2
                    type: io.kestra.plugin.core.log.Log
                    message: two
          - id: after
            type: io.kestra.plugin.core.debug.Return
            format: "{{ outputs.echo is defined and outputs.echo['b'].value or 'none' }}"
        """)
    yes = await run_flow(engine, "t.basic", "flowables", inputs={"go": "true"})
    assert yes.state.current == "SUCCESS"
    assert states(yes) == {"branch": "SUCCESS", "each": "SUCCESS", "echo[a]": "SUCCESS",
                           "echo[b]": "SUCCESS", "echo[c]": "SUCCESS", "after": "SUCCESS"}
    echoes = {tr.value: tr.outputs for tr in yes.task_runs if tr.task_id == "echo"}
    assert echoes == {"a": {"value": "v=a"}, "b": {"value": "v=b"}, "c": {"value": "v=c"}}
    assert yes.task_runs[-1].outputs == {"value": "v=b"}
    no = await run_flow(engine, "t.basic", "flowables", inputs={"go": "false"})
    assert states(no) == {"branch": "SUCCESS", "seq": "SUCCESS", "s1": "SUCCESS",
                          "s2": "SUCCESS", "after": "SUCCESS"}
    assert no.task_runs[-1].outputs == {"value": "none"}


async def test_subflow_waits_and_exposes_child_outputs(engine: Engine) -> None:
    await apply(engine, """
        id: child
        namespace: t.sub
        inputs:
          - id: n
            type: INT
        outputs:
          - id: doubled
            type: STRING
            value: "{{ inputs.n * 2 }}"
        tasks:
          - id: log
            type: io.kestra.plugin.core.log.Log
            message: "n={{ inputs.n }}"
        """)
    await apply(engine, """
        id: parent
        namespace: t.sub
        tasks:
          - id: call
            type: io.kestra.plugin.core.flow.Subflow
            namespace: t.sub
            flowId: child
            inputs:
              n: 21
          - id: show
            type: io.kestra.plugin.core.debug.Return
            format: "{{ outputs.call.outputs.doubled }}"
        """)
    final = await run_flow(engine, "t.sub", "parent")
    assert final.state.current == "SUCCESS"
    call = final.task_runs[0]
    assert call.outputs is not None and call.outputs["state"] == "SUCCESS"
    child = await engine.get_execution(call.outputs["executionId"])
    assert child.parent_id == final.id
    assert child.outputs == {"doubled": "42"}
    assert dict(child.labels)["system.correlationId"] == final.id
    assert final.task_runs[1].outputs == {"value": "42"}


async def test_kv_tasks_store_typed_values(engine: Engine) -> None:
    await apply(engine, """
        id: kv
        namespace: t.kv
        tasks:
          - id: get1
            type: io.kestra.plugin.core.kv.Get
            key: counter
          - id: set
            type: io.kestra.plugin.core.kv.Set
            key: counter
            value: "{{ (outputs.get1.value ?? 0) | int + 1 }}"
            kvType: NUMBER
          - id: get2
            type: io.kestra.plugin.core.kv.Get
            key: counter
        """)
    first = await run_flow(engine, "t.kv", "kv")
    second = await run_flow(engine, "t.kv", "kv")
    assert first.task_runs[0].outputs == {"value": None}
    assert first.task_runs[2].outputs == {"value": 1}
    assert second.task_runs[2].outputs == {"value": 2}
    entry = await engine.kv.get("t.kv", "counter")
    assert (entry.type, entry.value) == ("NUMBER", 2)


async def test_templated_input_default_is_rendered_at_creation(engine: Engine) -> None:
    await apply(engine, """
        id: dyn
        namespace: t.basic
        inputs:
          - id: where
            type: STRING
            defaults: "{{ flow.namespace }}/{{ flow.id }}"
          - id: bad
            type: STRING
            required: false
        tasks:
          - id: out
            type: io.kestra.plugin.core.debug.Return
            format: "{{ inputs.where }}"
        """)
    final = await run_flow(engine, "t.basic", "dyn")
    assert final.inputs == {"where": "t.basic/dyn"}
    assert final.task_runs[0].outputs == {"value": "t.basic/dyn"}


async def test_search_by_labels_with_quotes_in_keys(engine: Engine) -> None:
    from flowdeck.engine.query import ExecutionQuery

    await apply(engine, """
        id: labelled
        namespace: t.basic
        tasks:
          - id: one
            type: io.kestra.plugin.core.log.Log
            message: hi
        """)
    tagged = await run_flow(engine, "t.basic", "labelled", labels=[('we"ird\\\\key', "v")])
    await run_flow(engine, "t.basic", "labelled")
    found, total = await engine.search_executions(
        ExecutionQuery(labels={'we"ird\\\\key': "v"}))
    assert total == 1 and [e.id for e in found] == [tagged.id]
