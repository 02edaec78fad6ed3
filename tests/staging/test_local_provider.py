"""The local provider: real directories, real SQLite copies made with the online backup API."""

from __future__ import annotations

import hashlib
import json
import re
import sqlite3
import threading
import time
from contextlib import closing
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from flowdeck.core.ids import new_id
from flowdeck.engine.engine import Engine
from flowdeck.engine.staging import (
    CloneRequest,
    EnvironmentExists,
    EnvironmentNotFound,
    StagingError,
    missing_staging_keys,
    provider_for,
    response_of,
)
from flowdeck.engine.staging.local import DATABASE_FILE, SETTINGS_FILE, LocalProvider
from staging.conftest import open_staging_engine, run


def provider(root: Path, **kwargs: Any) -> LocalProvider:
    return LocalProvider(root, clock=lambda: datetime.now(UTC), new_id=new_id, **kwargs)


def rows(path: Path) -> dict[str, list[tuple[Any, ...]]]:
    with closing(sqlite3.connect(path)) as conn:
        tables = [r[0] for r in conn.execute(
            "SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name")]
        return {t: conn.execute(f"SELECT * FROM {t} ORDER BY 1").fetchall() for t in tables}


def tree_digest(path: Path) -> dict[str, str]:
    return {str(p.relative_to(path)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(path.rglob("*")) if p.is_file()}


async def test_clone_copies_the_source_database(tmp_path: Path) -> None:
    local = provider(tmp_path / "staging")
    env = await local.clone(CloneRequest("staging-acme", "production", "acme"))
    assert env.status == "active" and env.provider == "local"
    assert env.url == "http://staging-acme.staging.localhost"
    source = tmp_path / "staging" / "production" / DATABASE_FILE
    copy = tmp_path / "staging" / "staging-acme" / DATABASE_FILE
    assert rows(copy) == rows(source)
    assert len(rows(copy)["customers"]) == 3 and len(rows(copy)["orders"]) == 3
    with closing(sqlite3.connect(copy)) as conn:  # a real, independent database
        conn.execute("INSERT INTO customers (name, plan) VALUES ('Hooli', 'pro')")
        conn.commit()
    assert len(rows(source)["customers"]) == 3
    settings = json.loads((copy.parent / SETTINGS_FILE).read_text())
    assert settings == env.to_dict()
    assert set(settings) == {"name", "id", "client_name", "source_environment", "url",
                             "status", "created_at", "provider"}
    assert settings["client_name"] == "acme" and settings["source_environment"] == "production"


async def test_clone_is_consistent_while_the_source_is_written(tmp_path: Path) -> None:
    """Another thread moves money between accounts in transactions; every copy taken
    meanwhile balances, and holds at least every transfer committed before the copy began."""
    source = tmp_path / "prod.db"
    with closing(sqlite3.connect(source)) as conn:
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("CREATE TABLE accounts (id INTEGER PRIMARY KEY, balance INTEGER)")
        conn.execute("CREATE TABLE transfers (id INTEGER PRIMARY KEY, amount INTEGER)")
        conn.executemany("INSERT INTO accounts VALUES (?, ?)", [(i, 1000) for i in range(50)])
        conn.execute("INSERT INTO transfers (amount) SELECT 0 FROM accounts")  # bulk it up
        conn.commit()
    stop = threading.Event()
    committed = [0]

    def writer() -> None:
        with closing(sqlite3.connect(source, timeout=30)) as conn:
            n = 0
            while not stop.is_set():
                n += 1
                with conn:
                    conn.execute("UPDATE accounts SET balance = balance - 7 WHERE id = ?",
                                 (n % 50,))
                    conn.execute("UPDATE accounts SET balance = balance + 7 WHERE id = ?",
                                 ((n * 7 + 1) % 50,))
                    conn.execute("INSERT INTO transfers (amount) VALUES (7)")
                committed[0] = n

    local = provider(tmp_path / "staging", sources={"production": {"database": str(source)}})
    thread = threading.Thread(target=writer, daemon=True)
    thread.start()
    try:
        while committed[0] < 50:
            time.sleep(0.01)
        for i in range(5):
            before = committed[0]
            await local.clone(CloneRequest(f"staging-copy-{i}", "production"))
            copy = rows(tmp_path / "staging" / f"staging-copy-{i}" / DATABASE_FILE)
            assert sum(balance for _, balance in copy["accounts"]) == 50_000
            transfers = sum(1 for _, amount in copy["transfers"] if amount == 7)
            assert before <= transfers <= committed[0]
    finally:
        stop.set()
        thread.join(10)
    assert committed[0] > 50


async def test_clone_onto_an_existing_name_fails_and_changes_nothing(tmp_path: Path) -> None:
    root = tmp_path / "staging"
    local = provider(root)
    first = await local.clone(CloneRequest("staging-taken", "production", "one"))
    before = tree_digest(root)
    with pytest.raises(EnvironmentExists, match="'staging-taken' already exists"):
        await local.clone(CloneRequest("staging-taken", "production", "two"))
    with pytest.raises(EnvironmentExists):
        await local.clone(CloneRequest("staging-taken", "production", skip_database=True))
    assert tree_digest(root) == before
    assert (await local.status("staging-taken")) == first


async def test_failed_clones_leave_nothing_behind(tmp_path: Path) -> None:
    root = tmp_path / "staging"
    local = provider(root)
    with pytest.raises(EnvironmentNotFound, match="no source environment 'nowhere'"):
        await local.clone(CloneRequest("staging-a", "nowhere"))
    broken = tmp_path / "broken.db"
    broken.write_bytes(b"this is not a database" * 100)
    bad = provider(root, sources={"production": {}, "broken": {"database": str(broken)}})
    with pytest.raises(StagingError, match="cannot copy the database of 'broken': file is "
                                           "not a database"):
        await bad.clone(CloneRequest("staging-b", "broken"))
    assert sorted(p.name for p in root.iterdir()) == ["broken", "production"]


async def test_skip_database_and_cloning_a_staging_environment(tmp_path: Path) -> None:
    local = provider(tmp_path / "staging")
    bare = await local.clone(CloneRequest("staging-bare", "production", skip_database=True))
    assert not (tmp_path / "staging" / "staging-bare" / DATABASE_FILE).exists()
    assert bare.source_environment == "production"
    full = await local.clone(CloneRequest("staging-full", "production"))
    child = await local.clone(CloneRequest("staging-child", full.name))
    assert child.source_environment == "staging-full"
    assert rows(tmp_path / "staging" / "staging-child" / DATABASE_FILE)["customers"]
    with pytest.raises(StagingError, match="has no database to copy"):
        await local.clone(CloneRequest("staging-none", "staging-bare"))
    assert await local.status("staging-none") is None


async def test_list_status_delete(tmp_path: Path) -> None:
    local = provider(tmp_path / "staging", url_template="https://{client_name}.{name}.test")
    assert [e.name for e in await local.list()] == ["production"]  # created on first use
    assert await local.list("staging-") == []
    a = await local.clone(CloneRequest("staging-a", "production", "alpha"))
    await local.clone(CloneRequest("staging-b", "production", "beta"))
    assert a.url == "https://alpha.staging-a.test"
    assert [e.name for e in await local.list("staging-")] == ["staging-a", "staging-b"]
    assert [e.name for e in await local.list("staging-a")] == ["staging-a"]
    assert await local.status("staging-a") == a
    assert await local.status("../staging") is None
    deleted = await local.delete("staging-a")
    assert deleted == a
    assert not (tmp_path / "staging" / "staging-a").exists()
    assert [e.name for e in await local.list("staging-")] == ["staging-b"]
    with pytest.raises(EnvironmentNotFound, match="no staging environment 'staging-a'"):
        await local.delete("staging-a")
    assert sorted(p.name for p in (tmp_path / "staging").iterdir()) == ["production",
                                                                         "staging-b"]


def test_bad_configuration_is_named(tmp_path: Path) -> None:
    with pytest.raises(StagingError, match=r"unknown field \{host\}"):
        provider(tmp_path, url_template="http://{host}/")
    with pytest.raises(StagingError, match=r"unknown field \{name.__class__\}"):
        provider(tmp_path, url_template="http://{name.__class__}/")
    with pytest.raises(StagingError, match=re.escape("staging source '../etc'")):
        provider(tmp_path, sources=["../etc"])


async def test_the_engine_uses_the_configured_provider(tmp_path: Path) -> None:
    engine = await open_staging_engine(
        tmp_path / "data", staging={"root": str(tmp_path / "envs"),
                                    "url_template": "https://{name}.example.test"})
    try:
        done = await run(engine, "clone-staging-api", client_name="acme-corp",
                         skip_database="true")
        assert done.state.current == "SUCCESS", done.state.current
        response = response_of(done)
        assert response is not None
        name = response["environment_name"]
        assert response["staging_url"] == f"https://{name}.example.test"
        assert (tmp_path / "envs" / name / SETTINGS_FILE).is_file()
        assert not (tmp_path / "envs" / name / DATABASE_FILE).exists()
        assert isinstance(provider_for(engine), LocalProvider)
    finally:
        await engine.close()
    engine = await open_staging_engine(tmp_path / "data2", staging={"provider": "nope"})
    try:
        failed = await run(engine, "list-staging-environments")
        assert failed.state.current == "FAILED"
        errors = [e.message for e in await engine.logs.fetch(failed.id) if e.level == "ERROR"]
        assert errors == ["task 'list-environments' failed: unknown staging provider 'nope' "
                          "(one of local, railway)"]
    finally:
        await engine.close()


async def test_clone_response_and_generated_name(staging_engine: Engine) -> None:
    before = datetime.now(UTC).replace(microsecond=0)
    done = await run(staging_engine, "clone-staging-api", client_name="demo-client")
    after = datetime.now(UTC)
    assert done.state.current == "SUCCESS"
    assert [tr.task_id for tr in done.task_runs] == ["validate-inputs", "execute-clone"]
    response = response_of(done)
    assert response is not None
    assert list(response) == ["status", "environment_name", "staging_url", "client_name",
                              "source_environment", "created_at"]
    name = response["environment_name"]
    stamp = datetime.strptime(name.removeprefix("staging-demo-client-"),
                              "%Y%m%d-%H%M%S").replace(tzinfo=UTC)
    assert before <= stamp <= after
    created = datetime.strptime(response["created_at"], "%Y-%m-%dT%H:%M:%SZ")
    assert before <= created.replace(tzinfo=UTC) <= after
    assert response == {"status": "success", "environment_name": name,
                        "staging_url": f"http://{name}.staging.localhost",
                        "client_name": "demo-client", "source_environment": "production",
                        "created_at": response["created_at"]}
    # The flow output carries the same response (as JSON text, see response_of).
    assert json.loads(done.outputs["response"]) == response


async def test_validation_failures(staging_engine: Engine) -> None:
    cases = {
        "missing client": ({}, "client_name is required"),
        "bad client": ({"client_name": "Acme Corp"},
                       "client_name 'Acme Corp' must match ^[a-z0-9][a-z0-9-]{0,46}$"),
        "long client": ({"client_name": "a" * 48}, "at most 47 characters"),
        "bad name": ({"client_name": "acme", "environment_name": "prod-acme"},
                     "environment_name 'prod-acme' must match"),
        "bad source": ({"client_name": "acme", "source_environment": "../prod"},
                       "source_environment '../prod' must be lowercase"),
        "no source": ({"client_name": "acme", "source_environment": "qa"},
                      "source environment 'qa' does not exist (local provider)"),
    }
    for label, (inputs, expected) in cases.items():
        done = await run(staging_engine, "clone-staging-api", **inputs)
        assert done.state.current == "FAILED", label
        assert [(tr.task_id, tr.state.current) for tr in done.task_runs] == [
            ("validate-inputs", "FAILED")], label
        errors = [e.message for e in await staging_engine.logs.fetch(done.id)
                  if e.level == "ERROR"]
        assert len(errors) == 1 and expected in errors[0], (label, errors)
    assert await provider_for(staging_engine).list("staging-") == []


def test_missing_staging_keys() -> None:
    all_three = ["ENV_STAGING_CLONE_KEY", "ENV_STAGING_LIST_KEY", "ENV_STAGING_DELETE_KEY"]
    assert missing_staging_keys(None) == all_three
    assert missing_staging_keys({}) == all_three
    assert missing_staging_keys({"staging_clone_key": "x", "staging_list_key": "  ",
                                 "staging_delete_key": ""}) == all_three[1:]
    assert missing_staging_keys({"staging_clone_key": "a", "staging_list_key": "b",
                                 "staging_delete_key": "c"}) == []
