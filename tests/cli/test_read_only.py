"""The read-only engine the CLI reads with while another engine holds the data dir."""

from __future__ import annotations

import asyncio
import os
import sqlite3
from contextlib import closing
from pathlib import Path

import pytest

from flowdeck import cli
from flowdeck.client.backend import ExecutionFilter
from flowdeck.client.embedded import EmbeddedBackend
from flowdeck.core.errors import FlowdeckError
from flowdeck.engine.engine import Engine, EngineSettings
from flowdeck.engine.schema import MIGRATIONS
from flowdeck.engine.store import ReadOnlyStoreError
from helpers import apply, open_engine, run_flow

HELLO = """\
id: hello
namespace: ro.test
tasks:
  - id: say
    type: io.kestra.plugin.core.log.Log
    message: hi
"""


async def test_it_reads_beside_the_owner_and_refuses_every_change(tmp_path: Path) -> None:
    owner = await open_engine(tmp_path / "d")
    try:
        await apply(owner, HELLO)
        done = await run_flow(owner, "ro.test", "hello")
        reader = EmbeddedBackend(owner.settings, read_only=True)
        await reader.connect()
        try:
            assert reader.read_only and not reader.started
            assert [f.id for f in await reader.list_flows()] == ["hello"]
            assert (await reader.get_execution(done.id)).state.current == "SUCCESS"
            assert [e.message for e in await reader.logs(done.id)] == ["hi"]
            # What the owner commits later is seen too (WAL: readers see each commit).
            later = await run_flow(owner, "ro.test", "hello")
            page = await reader.search_executions(ExecutionFilter())
            assert {e.id for e in page.results} == {done.id, later.id}
            for change in (reader.create_execution("ro.test", "hello"),
                           reader.apply_flow(HELLO.replace("hi", "ho")),
                           reader.delete_flow("ro.test", "hello"), reader.start()):
                with pytest.raises(FlowdeckError, match="read-only"):
                    async with asyncio.timeout(5):  # refused at once, never left waiting
                        await change
        finally:
            await reader.close()
        assert owner.get_flow("ro.test", "hello").revision == 1
    finally:
        await owner.close()


async def test_an_older_schema_is_not_read_read_only(tmp_path: Path) -> None:
    data_dir = tmp_path / "d"
    data_dir.mkdir()
    with closing(sqlite3.connect(data_dir / "flowdeck.db")) as conn:
        conn.executescript(MIGRATIONS[0] + ";PRAGMA user_version = 1;")
    with pytest.raises(ReadOnlyStoreError, match="schema version 1, not"):
        await Engine.open(EngineSettings(data_dir=data_dir, scheduler=False), read_only=True)


def test_the_cli_reads_an_older_schema_by_migrating_it(tmp_path: Path,
                                                        capsys: pytest.CaptureFixture[str],
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
    monkeypatch.delenv("FLOWDECK_CONFIG", raising=False)
    data_dir = tmp_path / "d"
    data_dir.mkdir()
    with closing(sqlite3.connect(data_dir / "flowdeck.db")) as conn:
        conn.executescript(MIGRATIONS[0] + ";PRAGMA user_version = 1;")
    assert cli.main(["flow", "list", "--data-dir", str(data_dir)]) == 0
    assert capsys.readouterr().out.split() == ["NAMESPACE", "ID", "REVISION", "TRIGGERS",
                                               "DESCRIPTION"]
    with closing(sqlite3.connect(data_dir / "flowdeck.db")) as conn:
        assert conn.execute("PRAGMA user_version").fetchone()[0] == len(MIGRATIONS)


def test_the_served_url_is_believed_only_from_the_lock_holder(tmp_path: Path) -> None:
    from flowdeck.cli import endpoint

    endpoint.record(tmp_path, "http://127.0.0.1:8123")
    assert endpoint.served_at(tmp_path) is None  # nobody holds the lock
    (tmp_path / "engine.lock").write_text("4194999", encoding="utf-8")
    assert endpoint.served_at(tmp_path) is None  # a file left by another process
    (tmp_path / "engine.lock").write_text(str(os.getpid()), encoding="utf-8")
    assert endpoint.served_at(tmp_path) == "http://127.0.0.1:8123"
    endpoint.clear(tmp_path)
    assert not (tmp_path / endpoint.FILE).exists()
