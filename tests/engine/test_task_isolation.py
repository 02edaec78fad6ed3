"""Shell tasks start from a clean environment, flows see only public ENV_* values, and tasks can
run as another user who cannot touch the database."""

from __future__ import annotations

import logging
import os
import shutil
import stat
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from flowdeck.core.errors import FlowdeckError
from flowdeck.engine.engine import Engine, EngineSettings
from flowdeck.engine.isolation import TaskSettings
from helpers import apply, run_flow

SHOW_ENV = """
    id: show-env
    namespace: t.iso
    tasks:
      - id: env
        type: io.kestra.plugin.scripts.shell.Commands
        env:
          FROM_TASK: "yes"
        commands:
          - env | sort
    """


async def open_with(data_dir: Path, tasks: TaskSettings, **extra: object) -> Engine:
    settings = EngineSettings(data_dir=data_dir, scheduler=False, tasks=tasks)
    for key, value in extra.items():
        setattr(settings, key, value)
    return await Engine.open(settings)


async def env_of_a_task(engine: Engine) -> dict[str, str]:
    await apply(engine, SHOW_ENV)
    done = await run_flow(engine, "t.iso", "show-env")
    assert done.state.current == "SUCCESS"
    lines = [e.message for e in await engine.logs.fetch(done.id) if e.level == "INFO"]
    return dict(line.split("=", 1) for line in lines if "=" in line)


async def test_a_shell_task_gets_a_clean_environment(tmp_path: Path,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FLOWDECK_SERVER__BASIC_PASSWORD_HASH", "$argon2id$not-for-tasks")
    monkeypatch.setenv("ENV_STAGING_CLONE_KEY", "clone-key-123")
    monkeypatch.setenv("ENV_REGION", "eu-west")
    monkeypatch.setenv("ENV_PUBLIC_COLOR", "blue")
    monkeypatch.setenv("HTTP_PROXY", "http://proxy.example:3128")
    monkeypatch.setenv("SOME_TOKEN", "t0k3n")
    monkeypatch.setenv("LANG", "C.UTF-8")
    tasks = TaskSettings(env_passthrough=("HTTP_PROXY",),
                         public_envs=("ENV_REGION", "ENV_PUBLIC_*"))
    engine = await open_with(tmp_path / "data", tasks, envs=None)
    try:
        env = await env_of_a_task(engine)
        for secret in ("FLOWDECK_SERVER__BASIC_PASSWORD_HASH", "ENV_STAGING_CLONE_KEY",
                       "ENV_REGION", "SOME_TOKEN"):
            assert secret not in env
        assert env["HTTP_PROXY"] == "http://proxy.example:3128"  # configured pass-through
        assert env["FROM_TASK"] == "yes"  # the task's own env
        assert env["LANG"] == "C.UTF-8" and env["PATH"]
        assert "WORKING_DIR" in env
        # {{ envs }} holds only the public ENV_* values; the engine keeps the rest for keys.
        assert engine.envs == {"region": "eu-west", "public_color": "blue"}
        assert engine.trigger_envs["staging_clone_key"] == "clone-key-123"
        await apply(engine, """
            id: read-envs
            namespace: t.iso
            tasks:
              - id: public
                type: io.kestra.plugin.core.log.Log
                message: "{{ envs.region }}/{{ envs.public_color }}"
              - id: private
                type: io.kestra.plugin.core.log.Log
                message: "{{ envs.staging_clone_key }}"
            """)
        done = await run_flow(engine, "t.iso", "read-envs")
        messages = [e.message for e in await engine.logs.fetch(done.id)]
        assert done.state.current == "FAILED"
        assert messages[0] == "eu-west/blue"
        assert "'envs.staging_clone_key' is undefined" in messages[1]
        assert "clone-key-123" not in "".join(messages)
    finally:
        await engine.close()


def test_task_settings_are_checked() -> None:
    with pytest.raises(ValueError, match="ENV_"):
        TaskSettings(public_envs=("REGION",)).check()
    with pytest.raises(ValueError, match="not the name of an environment variable"):
        TaskSettings(env_passthrough=("A B",)).check()


async def test_an_unknown_run_as_user_is_refused(tmp_path: Path) -> None:
    with pytest.raises(FlowdeckError, match="no-such-user-x"):
        await open_with(tmp_path / "data", TaskSettings(run_as="no-such-user-x"))


root_only = pytest.mark.skipif(os.geteuid() != 0, reason="dropping privileges needs root")


@root_only
async def test_running_as_root_without_run_as_is_reported(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    # A service (the scheduler runs: serve, the deck) says it at start, in the log.
    with caplog.at_level(logging.WARNING, logger="flowdeck"):
        engine = await open_with(tmp_path / "data", TaskSettings(), scheduler=True)
    try:
        health = await engine.storage_health()
        assert health["status"] == "UP"  # reported, not refused
        assert any("run_as" in w and "root" in w for w in health["warnings"])
        assert [r.levelname for r in caplog.records if "run_as" in r.getMessage()] == [
            "WARNING"]
    finally:
        await engine.close()
    # A one-shot command's engine reports it in its health, without a line on stderr.
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="flowdeck"):
        engine = await open_with(tmp_path / "data", TaskSettings())
    try:
        assert (await engine.storage_health())["warnings"]
        assert not [r for r in caplog.records if "run_as" in r.getMessage()]
    finally:
        await engine.close()


@pytest.fixture
def shared_dir() -> Iterator[Path]:
    """A data directory another user can reach (pytest's own tmp dirs are private to root)."""
    path = Path(tempfile.mkdtemp(prefix="flowdeck-run-as-"))
    path.chmod(0o755)
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


@root_only
async def test_tasks_run_as_another_user_who_cannot_touch_the_database(shared_dir: Path) -> None:
    engine = await open_with(shared_dir / "data", TaskSettings(run_as="nobody"))
    db = engine.store.db_path
    try:
        assert stat.S_IMODE(db.stat().st_mode) == 0o600
        health = await engine.storage_health()
        assert not any("root" in w for w in health["warnings"])
        await apply(engine, f"""
            id: as-nobody
            namespace: t.iso
            tasks:
              - id: who
                type: io.kestra.plugin.scripts.shell.Commands
                inputFiles:
                  data.txt: hello
                commands:
                  - id -u
                  - echo "home=$HOME user=$USER"
                  - cat data.txt && echo && echo made > made.txt && cat made.txt
                  - if echo x >> {db}; then echo DB-WRITABLE; else echo db-refused; fi
                  - if cat {db} > /dev/null; then echo DB-READABLE; else echo db-unreadable; fi
                  - if touch {db.parent}/planted; then echo DIR-WRITABLE; else echo dir-refused; fi
            """)
        done = await run_flow(engine, "t.iso", "as-nobody")
        lines = [e.message for e in await engine.logs.fetch(done.id) if e.level == "INFO"]
        assert done.state.current == "SUCCESS", lines
        assert lines[:5] == ["65534", "home=/nonexistent user=nobody", "hello", "made",
                             "db-refused"]
        assert lines[5:] == ["db-unreadable", "dir-refused"]
        await engine.kv.put("t.iso", "still", "writable")  # by the engine itself
    finally:
        await engine.close()
