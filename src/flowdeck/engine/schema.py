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
    # 5: FlowCtl workflows (engine/flowctl): each workflow's execution and its tasks' stable
    # ids; and the one row the health check writes to prove the store takes writes
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
    CREATE TABLE health_probe (
        id INTEGER PRIMARY KEY CHECK (id = 1),
        at TEXT NOT NULL
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
