"""The public agent API, below HTTP: agents, API keys with monthly usage, approvals, webhooks.

- `settings`: `EngineSettings.extra["public"]` (namespace, delivery endpoint);
- `keys`: public API keys, kept in the `api_tokens` store as `kind = 'public'`;
- `service`: `PublicService` (`engine.public`), what the API does: execute an agent, its
  status, results and pending approval, approve or reject;
- `webhooks`: the execution events of key-started executions and the key's webhook target,
  delivered by the engine's outbox;
- `messages`: where agents deliver messages (a local outbox table, or an HTTP endpoint);
- `outputs`: an agent's output, its flow outputs typed as declared.

Nothing is imported here, so task modules can use the submodules without import cycles.
"""
