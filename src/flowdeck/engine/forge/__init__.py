"""The forge domain: pipeline runs, releases, deployments and release approvals.

A repository's pipeline is an ordinary flow (`pipelines.<owner>`/`<name>`) and a run is an
execution of it; releases, deployments (each one a commit in a GitOps repository) and release
approvals are engine services with their own tables in the same SQLite store. `ForgeService`
(`service.py`) is the facade the layers above call: `engine.forge`.
"""
