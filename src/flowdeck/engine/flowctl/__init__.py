"""FlowCtl workflows on the engine (spec 003).

A workflow submitted as JSON becomes a flow in namespace `flowctl` and one execution of it:

- `definition`: validates the JSON and writes the flow (a `flowdeck.flowctl.Workflow` task
  holding the workflow's tasks, which runs them as a DAG by priority within
  `max_concurrency`, bounded by `timeout`);
- `tasks`: the task types (`generic`, `ci`, `etl`, `ml_training`) and the Workflow task;
- `etl`: reading, normalising and writing rows for `etl` tasks;
- `events`: the spec's webhook events, derived from execution changes;
- `service`: what the HTTP dialect, the CLI and the deck call (`engine.flowctl`).

This package's `__init__` imports nothing on purpose: the task registry imports `tasks`.
"""
