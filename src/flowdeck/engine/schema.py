"""The database schema and its migrations, versioned with `PRAGMA user_version`.

Each migration is applied once, in order, inside one transaction; a database written by a newer
flowdeck is refused instead of being damaged.
"""

from __future__ import annotations

import aiosqlite

from flowdeck.core.errors import FlowdeckError

MIGRATIONS: list[str] = [
    # 1: flows, executions, logs, approvals, kv, schedule state
    """
    CREATE TABLE flows (
        namespace TEXT NOT NULL,
        id TEXT NOT NULL,
        revision INTEGER NOT NULL,
        source TEXT NOT NULL,
        updated TEXT NOT NULL,
        PRIMARY KEY (namespace, id, revision)
    );
    CREATE TABLE flow_heads (
        namespace TEXT NOT NULL,
        id TEXT NOT NULL,
        revision INTEGER NOT NULL,
        deleted INTEGER NOT NULL DEFAULT 0,
        PRIMARY KEY (namespace, id)
    );
    CREATE TABLE executions (
        id TEXT PRIMARY KEY,
        namespace TEXT NOT NULL,
        flow_id TEXT NOT NULL,
        flow_revision INTEGER NOT NULL,
        state TEXT NOT NULL,
        start_date TEXT NOT NULL,
        end_date TEXT,
        labels TEXT NOT NULL DEFAULT '{}',
        parent_id TEXT,
        trigger_key TEXT UNIQUE,
        doc TEXT NOT NULL
    );
    CREATE INDEX executions_by_start ON executions (start_date);
    CREATE INDEX executions_by_flow ON executions (namespace, flow_id, start_date);
    CREATE INDEX executions_by_state ON executions (state, start_date);
    CREATE TABLE logs (
        execution_id TEXT NOT NULL,
        seq INTEGER NOT NULL,
        task_run_id TEXT,
        task_id TEXT,
        attempt INTEGER,
        ts TEXT NOT NULL,
        level TEXT NOT NULL,
        message TEXT NOT NULL,
        PRIMARY KEY (execution_id, seq)
    ) WITHOUT ROWID;
    CREATE TABLE approvals (
        id TEXT PRIMARY KEY,
        execution_id TEXT NOT NULL REFERENCES executions (id) ON DELETE CASCADE,
        task_run_id TEXT NOT NULL UNIQUE,
        namespace TEXT NOT NULL,
        flow_id TEXT NOT NULL,
        task_id TEXT NOT NULL,
        title TEXT NOT NULL,
        description TEXT,
        rows TEXT NOT NULL,
        display_fields TEXT NOT NULL,
        metadata TEXT NOT NULL,
        allow_bulk INTEGER NOT NULL,
        require_comment INTEGER NOT NULL,
        status TEXT NOT NULL,
        created_at TEXT NOT NULL,
        expires_at TEXT,
        decided_by TEXT,
        comment TEXT,
        decided_at TEXT
    );
    CREATE INDEX approvals_by_status ON approvals (status, created_at);
    CREATE TABLE kv (
        namespace TEXT NOT NULL,
        key TEXT NOT NULL,
        type TEXT NOT NULL,
        value TEXT NOT NULL,
        description TEXT,
        created TEXT NOT NULL,
        updated TEXT NOT NULL,
        expires TEXT,
        revision INTEGER NOT NULL DEFAULT 1,
        PRIMARY KEY (namespace, key)
    );
    CREATE TABLE schedule_state (
        namespace TEXT NOT NULL,
        flow_id TEXT NOT NULL,
        trigger_id TEXT NOT NULL,
        last_fire TEXT NOT NULL,
        PRIMARY KEY (namespace, flow_id, trigger_id)
    );
    """,
    # 2: API tokens (engine/keys.py): only the SHA-256 of a secret is kept, never the secret
    """
    CREATE TABLE api_tokens (
        id TEXT PRIMARY KEY,
        name TEXT NOT NULL,
        role TEXT NOT NULL CHECK (role IN ('viewer', 'operator', 'approver', 'admin')),
        sha256 TEXT NOT NULL UNIQUE,
        prefix TEXT NOT NULL,
        created_at TEXT NOT NULL,
        expires_at TEXT,
        revoked_at TEXT,
        last_used_at TEXT
    );
    """,
    # 3: indexes for the busiest searches (by state and namespace, newest first; logs by time)
    """
    CREATE INDEX executions_by_state_namespace ON executions (state, namespace, start_date);
    CREATE INDEX executions_by_namespace ON executions (namespace, start_date);
    CREATE INDEX logs_by_time ON logs (ts);
    """,
    # 4: the event log and the webhook outbox (engine/events.py, engine/outbox.py); how far
    # each execution's state history has been turned into events (existing ones: all of it)
    """
    CREATE TABLE events (
        seq INTEGER PRIMARY KEY AUTOINCREMENT,
        id TEXT NOT NULL UNIQUE,
        kind TEXT NOT NULL,
        source TEXT NOT NULL,
        subject TEXT,
        execution_id TEXT,
        created TEXT NOT NULL,
        payload TEXT NOT NULL
    );
    CREATE INDEX events_by_source ON events (source, seq);
    CREATE TABLE webhook_deliveries (
        id TEXT PRIMARY KEY,
        event_seq INTEGER NOT NULL REFERENCES events (seq) ON DELETE CASCADE,
        target TEXT NOT NULL,
        url TEXT NOT NULL,
        secret TEXT,
        status TEXT NOT NULL CHECK (status IN ('pending', 'delivered', 'dead')),
        attempts INTEGER NOT NULL DEFAULT 0,
        next_at TEXT,
        last_status INTEGER,
        last_error TEXT,
        created TEXT NOT NULL,
        updated TEXT NOT NULL
    );
    CREATE INDEX webhook_deliveries_due ON webhook_deliveries (status, next_at);
    CREATE INDEX webhook_deliveries_by_created ON webhook_deliveries (created);
    ALTER TABLE executions ADD COLUMN event_marks TEXT;
    UPDATE executions SET event_marks = '*';
    """,
    # 5: the public agent API (engine/public/): its API keys live in api_tokens beside the
    # Kestra API's tokens (`kind` tells them apart; one store of hashed secrets), with their
    # workflows, monthly usage and webhook; and the local outbox agents deliver messages to
    """
    ALTER TABLE api_tokens ADD COLUMN kind TEXT NOT NULL DEFAULT 'token'
        CHECK (kind IN ('token', 'public'));
    ALTER TABLE api_tokens ADD COLUMN allowed_workflows TEXT;
    ALTER TABLE api_tokens ADD COLUMN usage_limit INTEGER;
    ALTER TABLE api_tokens ADD COLUMN usage_month TEXT;
    ALTER TABLE api_tokens ADD COLUMN usage_count INTEGER NOT NULL DEFAULT 0;
    ALTER TABLE api_tokens ADD COLUMN webhook_url TEXT;
    ALTER TABLE api_tokens ADD COLUMN webhook_events TEXT;
    ALTER TABLE api_tokens ADD COLUMN webhook_secret TEXT;
    CREATE INDEX api_tokens_by_kind ON api_tokens (kind, created_at);
    CREATE TABLE agent_messages (
        id TEXT PRIMARY KEY,
        execution_id TEXT NOT NULL REFERENCES executions (id) ON DELETE CASCADE,
        task_run_id TEXT NOT NULL,
        row_index INTEGER NOT NULL,
        namespace TEXT NOT NULL,
        flow_id TEXT NOT NULL,
        customer_id TEXT,
        recipient TEXT,
        channel TEXT NOT NULL,
        content TEXT NOT NULL,
        transport TEXT NOT NULL CHECK (transport IN ('local', 'http')),
        status TEXT NOT NULL CHECK (status IN ('sending', 'sent', 'failed')),
        external_id TEXT,
        error TEXT,
        created TEXT NOT NULL,
        updated TEXT NOT NULL,
        UNIQUE (task_run_id, row_index)
    );
    CREATE INDEX agent_messages_by_created ON agent_messages (created);
    CREATE INDEX agent_messages_by_execution ON agent_messages (execution_id, row_index);
    """,
    # 6: the forge domain (engine/forge/): releases numbered per repository and project,
    # deployments with their GitOps commit, release approvals (single use), the ids of pipeline
    # run tasks and steps (with what external workers reported); API tokens may be 'service'
    """
    CREATE TABLE forge_nodes (
        id TEXT PRIMARY KEY,
        run_id TEXT NOT NULL,
        kind TEXT NOT NULL CHECK (kind IN ('task', 'step')),
        task_id TEXT NOT NULL,
        step TEXT,
        external INTEGER NOT NULL,
        status TEXT NOT NULL DEFAULT 'pending'
            CHECK (status IN ('pending', 'running', 'success', 'failed')),
        error TEXT,
        exit_code INTEGER,
        logs_s3_key TEXT,
        updated_at TEXT
    );
    CREATE INDEX forge_nodes_by_run ON forge_nodes (run_id);
    CREATE TABLE forge_releases (
        seq INTEGER PRIMARY KEY AUTOINCREMENT,
        id TEXT NOT NULL UNIQUE,
        repository TEXT NOT NULL,
        project TEXT NOT NULL,
        commit_sha TEXT NOT NULL,
        release_number INTEGER NOT NULL,
        tag TEXT,
        oci_uri TEXT,
        oci_digest TEXT,
        artifacts TEXT NOT NULL,
        created_at TEXT NOT NULL,
        created_by TEXT NOT NULL,
        pipeline_run_id TEXT,
        trigger TEXT NOT NULL,
        UNIQUE (repository, project, commit_sha),
        UNIQUE (repository, project, release_number),
        UNIQUE (repository, project, tag)
    );
    CREATE TABLE forge_approvals (
        id TEXT PRIMARY KEY,
        release_id TEXT NOT NULL REFERENCES forge_releases (id),
        environment TEXT NOT NULL,
        approver TEXT NOT NULL,
        justification TEXT NOT NULL,
        approved_at TEXT NOT NULL,
        expires_at TEXT NOT NULL,
        revoked_at TEXT,
        revoked_by TEXT,
        used_by TEXT,
        used_at TEXT
    );
    CREATE INDEX forge_approvals_by_release ON forge_approvals (release_id, environment,
                                                                 approved_at);
    CREATE TABLE forge_deployments (
        seq INTEGER PRIMARY KEY AUTOINCREMENT,
        id TEXT NOT NULL UNIQUE,
        release_id TEXT NOT NULL REFERENCES forge_releases (id),
        repository TEXT NOT NULL,
        project TEXT NOT NULL,
        environment TEXT NOT NULL,
        release_number INTEGER NOT NULL,
        status TEXT NOT NULL CHECK (status IN ('pending', 'active', 'superseded', 'failed')),
        deployed_by TEXT NOT NULL,
        deployed_at TEXT NOT NULL,
        completed_at TEXT,
        approval_id TEXT,
        gitops_commit_sha TEXT,
        execution_id TEXT,
        error TEXT
    );
    CREATE INDEX forge_deployments_by_environment ON forge_deployments (repository, project,
                                                                       environment, seq);
    CREATE INDEX forge_deployments_by_status ON forge_deployments (status);
    CREATE TABLE api_tokens_v6 (
        id TEXT PRIMARY KEY,
        name TEXT NOT NULL,
        role TEXT NOT NULL CHECK (role IN ('viewer', 'operator', 'approver', 'admin',
                                           'service')),
        sha256 TEXT NOT NULL UNIQUE,
        prefix TEXT NOT NULL,
        created_at TEXT NOT NULL,
        expires_at TEXT,
        revoked_at TEXT,
        last_used_at TEXT,
        kind TEXT NOT NULL DEFAULT 'token' CHECK (kind IN ('token', 'public')),
        allowed_workflows TEXT,
        usage_limit INTEGER,
        usage_month TEXT,
        usage_count INTEGER NOT NULL DEFAULT 0,
        webhook_url TEXT,
        webhook_events TEXT,
        webhook_secret TEXT
    );
    INSERT INTO api_tokens_v6 (id, name, role, sha256, prefix, created_at, expires_at,
                               revoked_at, last_used_at, kind, allowed_workflows, usage_limit,
                               usage_month, usage_count, webhook_url, webhook_events,
                               webhook_secret)
        SELECT id, name, role, sha256, prefix, created_at, expires_at, revoked_at,
               last_used_at, kind, allowed_workflows, usage_limit, usage_month, usage_count,
               webhook_url, webhook_events, webhook_secret
        FROM api_tokens;
    DROP TABLE api_tokens;
    ALTER TABLE api_tokens_v6 RENAME TO api_tokens;
    CREATE INDEX api_tokens_by_kind ON api_tokens (kind, created_at);
    """,
    # 7: one row the writer rewrites to tell "this store cannot write" from "this item cannot
    # be written" (engine/store.py) and that /health writes to prove the store takes writes
    """
    CREATE TABLE writer_probe (
        id INTEGER PRIMARY KEY CHECK (id = 1),
        at TEXT NOT NULL
    );
    """,
    # 8: the clear values of SECRET inputs while their execution may still run
    # (engine/secrets.py); the execution's own document shows them masked
    """
    CREATE TABLE execution_secrets (
        execution_id TEXT PRIMARY KEY REFERENCES executions (id) ON DELETE CASCADE,
        doc TEXT NOT NULL
    );
    """,
    # 9: a task run may have several approvals over time (a restart asks again), so
    # task_run_id is no longer unique; the newest one is the task run's current gate
    """
    CREATE TABLE approvals_v9 (
        id TEXT PRIMARY KEY,
        execution_id TEXT NOT NULL REFERENCES executions (id) ON DELETE CASCADE,
        task_run_id TEXT NOT NULL,
        namespace TEXT NOT NULL,
        flow_id TEXT NOT NULL,
        task_id TEXT NOT NULL,
        title TEXT NOT NULL,
        description TEXT,
        rows TEXT NOT NULL,
        display_fields TEXT NOT NULL,
        metadata TEXT NOT NULL,
        allow_bulk INTEGER NOT NULL,
        require_comment INTEGER NOT NULL,
        status TEXT NOT NULL,
        created_at TEXT NOT NULL,
        expires_at TEXT,
        decided_by TEXT,
        comment TEXT,
        decided_at TEXT
    );
    INSERT INTO approvals_v9 SELECT id, execution_id, task_run_id, namespace, flow_id, task_id,
        title, description, rows, display_fields, metadata, allow_bulk, require_comment, status,
        created_at, expires_at, decided_by, comment, decided_at FROM approvals;
    DROP TABLE approvals;
    ALTER TABLE approvals_v9 RENAME TO approvals;
    CREATE INDEX approvals_by_status ON approvals (status, created_at);
    CREATE INDEX approvals_by_task_run ON approvals (task_run_id, created_at);
    CREATE INDEX approvals_by_execution ON approvals (execution_id, created_at);
    """,
    # 10: FlowCtl workflows (engine/flowctl): each workflow's execution and its tasks'
    # stable ids
    """
    CREATE TABLE flowctl_workflows (
        id TEXT PRIMARY KEY,
        execution_id TEXT NOT NULL UNIQUE REFERENCES executions (id) ON DELETE CASCADE,
        flow_id TEXT NOT NULL,
        name TEXT NOT NULL,
        created TEXT NOT NULL,
        created_by TEXT NOT NULL
    );
    CREATE INDEX flowctl_workflows_by_created ON flowctl_workflows (created, id);
    CREATE TABLE flowctl_tasks (
        id TEXT PRIMARY KEY,
        workflow_id TEXT NOT NULL REFERENCES flowctl_workflows (id) ON DELETE CASCADE,
        task_id TEXT NOT NULL
    );
    CREATE INDEX flowctl_tasks_by_workflow ON flowctl_tasks (workflow_id);
    """,
    # 11: triggers paused from the API (engine/triggers.py) without changing their flow
    """
    CREATE TABLE trigger_states (
        namespace TEXT NOT NULL,
        flow_id TEXT NOT NULL,
        trigger_id TEXT NOT NULL,
        disabled INTEGER NOT NULL DEFAULT 0,
        updated TEXT NOT NULL,
        PRIMARY KEY (namespace, flow_id, trigger_id)
    );
    """,
]

SCHEMA_VERSION = len(MIGRATIONS)


async def migrate(conn: aiosqlite.Connection) -> None:
    cursor = await conn.execute("PRAGMA user_version")
    row = await cursor.fetchone()
    version = int(row[0]) if row else 0
    if version > SCHEMA_VERSION:
        raise FlowdeckError(
            f"this database has schema version {version}, newer than this flowdeck "
            f"understands ({SCHEMA_VERSION}); upgrade flowdeck")
    for number in range(version, SCHEMA_VERSION):
        await conn.execute("BEGIN IMMEDIATE")
        try:
            for statement in _statements(MIGRATIONS[number]):
                await conn.execute(statement)
            await conn.execute(f"PRAGMA user_version = {number + 1}")
            await conn.execute("COMMIT")
        except BaseException:
            await conn.execute("ROLLBACK")
            raise


def _statements(script: str) -> list[str]:
    return [s.strip() for s in script.split(";") if s.strip()]
