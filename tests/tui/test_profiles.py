"""Profiles (`[profiles.NAME]`): config validation, `flowdeck --profile NAME`, and switching
backends at runtime with `:profile NAME` (close the old one, connect the new, refresh)."""

from __future__ import annotations

import textwrap
from pathlib import Path
from typing import Any

import pytest

from flowdeck import cli
from flowdeck.client.backend import Backend
from flowdeck.client.embedded import EmbeddedBackend
from flowdeck.client.http import HttpBackend
from flowdeck.config import ConfigError, load_settings
from flowdeck.core.clock import ManualClock
from flowdeck.engine.engine import Engine, EngineSettings
from flowdeck.tui.app import FlowdeckApp
from flowdeck.tui.screens.execution import ExecutionScreen
from flowdeck.tui.screens.executions import ExecutionsScreen
from live_server import start_server, stop_server
from tui.deck_flows import FAIL, HELLO
from tui.deck_helpers import make_app, screen_text, wait_for


def write_config(tmp_path: Path, body: str) -> Path:
    path = tmp_path / "config.toml"
    path.write_text(textwrap.dedent(body), encoding="utf-8")
    return path


def test_profiles_parse_and_never_take_inline_secrets(tmp_path: Path,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("FLOWDECK_CONFIG", raising=False)
    path = write_config(tmp_path, """
        [profiles.prod]
        url = "https://kestra.example.com"
        username = "ops@example.com"
        password_env = "PROD_PASSWORD"
        [profiles.ci]
        url = "http://127.0.0.1:8080"
        token_file = "~/.config/flowdeck/ci.token"
        poll_interval = 1.5
        [profiles.local]
        kind = "embedded"
        data_dir = "/tmp/flowdeck-local"
        read_only = true
    """)
    settings = load_settings(str(path))
    assert settings.source == str(path)
    assert settings.profiles["prod"].backend_options() == {
        "kind": "remote", "url": "https://kestra.example.com", "username": "ops@example.com",
        "password_env": "PROD_PASSWORD"}
    assert settings.profiles["local"].kind == "embedded"
    bad = {
        'password = "hunter2"': "profiles.p: Value error, 'password' is not accepted inline",
        'token = "abc"': "'token' is not accepted inline",
        'colour = "red"': "profiles.p.colour: unknown key",
        'kind = "cloud"': "profiles.p.kind",
        'token_env = "T"\npassword_env = "P"\nusername = "u"': "not both",
        'password_env = "P"': "go together",
    }
    for line, expected in bad.items():
        body = f'[profiles.p]\nurl = "http://h"\n{line}\n'
        with pytest.raises(ConfigError) as problem:
            load_settings(str(write_config(tmp_path, body)))
        message = str(problem.value)
        assert message.startswith(str(path)) and expected in message, message
        assert "hunter2" not in message and "abc" not in message.split(":", 1)[1]
    with pytest.raises(ConfigError, match="a remote profile needs url"):
        load_settings(str(write_config(tmp_path, "[profiles.p]\nkind = 'remote'\n")))
    with pytest.raises(ConfigError, match="url is for remote profiles"):
        load_settings(str(write_config(tmp_path, "[profiles.p]\nkind = 'embedded'\n"
                                                 "url = 'http://h'\n")))


def test_cli_profile_problems_exit_2_naming_file_and_key(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.delenv("FLOWDECK_CONFIG", raising=False)
    monkeypatch.delenv("DECK_TEST_TOKEN", raising=False)
    path = write_config(tmp_path, """
        [profiles.prod]
        url = "http://127.0.0.1:9"
        token_env = "DECK_TEST_TOKEN"
        [profiles.filed]
        url = "http://127.0.0.1:9"
        token_file = "no-such-token-file"
    """)
    ran: list[FlowdeckApp] = []
    monkeypatch.setattr(FlowdeckApp, "run", lambda self, **kw: ran.append(self))
    assert cli.main(["--config", str(path), "--profile", "nope"]) == 2
    err = capsys.readouterr().err
    assert str(path) in err and "no [profiles.nope]" in err and "filed, prod" in err
    assert cli.main(["--config", str(path), "--profile", "prod"]) == 2
    err = capsys.readouterr().err
    assert str(path) in err and "profiles.prod.token_env" in err
    assert "DECK_TEST_TOKEN is not set" in err
    assert cli.main(["--config", str(path), "--profile", "filed"]) == 2
    err = capsys.readouterr().err
    assert "profiles.filed.token_file: cannot read" in err
    assert not ran  # the deck never opened
    # set: the deck opens on that profile's server with the token from the variable
    monkeypatch.setenv("DECK_TEST_TOKEN", "s3cret")
    assert cli.main(["--config", str(path), "--profile", "prod", "--read-only"]) == 0
    [app] = ran
    assert isinstance(app.backend, HttpBackend)
    assert app.backend.name == "http://127.0.0.1:9" and app.profile == "prod"
    assert app.read_only and app.profile_names == ["filed", "prod"]


def test_cli_embedded_profile_uses_its_data_dir(tmp_path: Path,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("FLOWDECK_CONFIG", raising=False)
    path = write_config(tmp_path, f"""
        [engine]
        max_concurrent_executions = 7
        [profiles.local]
        kind = "embedded"
        data_dir = "{tmp_path / 'local-data'}"
        theme = "flowdeck-light"
    """)
    ran: list[FlowdeckApp] = []
    monkeypatch.setattr(FlowdeckApp, "run", lambda self, **kw: ran.append(self))
    assert cli.main(["--config", str(path), "--profile", "local"]) == 0
    [app] = ran
    assert isinstance(app.backend, EmbeddedBackend)
    assert app.backend.settings.data_dir == tmp_path / "local-data"
    assert app.backend.settings.max_concurrent_executions == 7  # the rest from [engine]
    assert app.theme == "flowdeck-light"


async def type_command(pilot: Any, text: str) -> None:
    await pilot.press("colon")
    await wait_for(lambda: pilot.app.screen.__class__.__name__ == "CommandPrompt")
    await pilot.press(*list(text.removeprefix(":")), "enter")


async def test_switch_profile_at_runtime(backend: EmbeddedBackend, clock: ManualClock,
                                         tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Embedded → a remote server: the old backend closes, the lists show the new one's rows,
    a detail screen of the old backend is gone; a bad profile only notifies."""
    monkeypatch.delenv("FLOWDECK_CONFIG", raising=False)
    monkeypatch.delenv("DECK_MISSING", raising=False)
    await backend.apply_flow(HELLO)
    mine = await backend.create_execution("team.alpha", "hello")
    engine = await Engine.open(EngineSettings(data_dir=tmp_path / "remote", scheduler=False,
                                              envs={}))
    await engine.apply_flow(FAIL)
    theirs = [await engine.create_execution("team.alpha", "broken") for _ in range(2)]
    server, task, url = await start_server(engine)
    path = write_config(tmp_path, f"""
        [profiles.remote]
        url = "{url}"
        poll_interval = 0.2
        [profiles.bad]
        url = "{url}"
        token_env = "DECK_MISSING"
        [profiles.down]
        url = "http://127.0.0.1:9"
        timeout = 2
    """)
    settings = load_settings(str(path))
    opened: list[Backend] = []

    def open_profile(name: str) -> Backend:
        made: Backend = cli.profile_backend(settings, name)
        opened.append(made)
        return made

    app = make_app(backend, clock, tmp_path, open_profile=open_profile,
                   profile_names=sorted(settings.profiles), close_backend=True)
    try:
        async with app.run_test(size=(120, 30)) as pilot:
            screen = await wait_for(lambda: isinstance(app.screen, ExecutionsScreen)
                                    and app.screen)
            await wait_for(lambda: screen.source.total == 1
                           and screen.source.execution(0).id == mine.id)
            app.push_screen(ExecutionScreen(mine.id))
            await wait_for(lambda: isinstance(app.screen, ExecutionScreen))
            # unknown and broken profiles: a notification naming file and key, nothing changes
            await type_command(pilot, ":profile nope")
            await wait_for(lambda: any("no [profiles.nope]" in str(n.message)
                                       and str(path) in str(n.message)
                                       for n in app._notifications))
            await type_command(pilot, ":profile bad")
            await wait_for(lambda: any("profiles.bad.token_env" in str(n.message)
                                       and "DECK_MISSING is not set" in str(n.message)
                                       for n in app._notifications))
            await type_command(pilot, ":profile down")
            await wait_for(lambda: any("cannot connect" in str(n.message)
                                       for n in app._notifications), timeout=15)
            assert app.backend is backend and isinstance(app.screen, ExecutionScreen)
            assert backend.engine_loop is not None  # still open
            # a good one: switch
            await type_command(pilot, ":profile remote")
            await wait_for(lambda: app.backend is not backend, timeout=15)
            assert app.profile == "remote" and isinstance(app.backend, HttpBackend)
            await wait_for(lambda: app.screen is screen, message="detail screen dropped")
            await wait_for(lambda: screen.source.total == 2 and {
                screen.source.execution(i).id for i in range(2)
                if screen.source.execution(i) is not None} == {e.id for e in theirs},
                timeout=15, message="the remote rows")
            await wait_for(lambda: url.removeprefix("http://") in screen_text(app))
            assert backend.engine_loop is None  # the old embedded engine was closed
            # live updates come from the new backend
            new = await engine.create_execution("team.alpha", "broken")
            await wait_for(lambda: screen.source.total == 3, timeout=15)
            assert any(screen.source.execution(i).id == new.id for i in range(3)
                       if screen.source.execution(i) is not None)
    finally:
        for made in opened:
            await made.close()
        await stop_server(server, task)
        await engine.close()


def test_example_profiles_are_valid(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The commented `[profiles.*]` examples in config.example.toml load once uncommented."""
    monkeypatch.delenv("FLOWDECK_CONFIG", raising=False)
    example = Path(__file__).resolve().parents[2] / "config.example.toml"
    text = example.read_text(encoding="utf-8")
    section = text[text.index("# [profiles.prod]"):]
    body = "\n".join(line.removeprefix("# ").removeprefix("#") for line in section.splitlines())
    settings = load_settings(str(write_config(tmp_path, body)))
    assert set(settings.profiles) == {"prod", "ci", "scratch"}
    assert "password" not in settings.profiles["prod"].backend_options()
    forge = settings.profiles["prod"].forge
    assert forge is not None and forge.projects == ["acme/shop/api", "acme/shop/web"]
    assert "forge" not in settings.profiles["prod"].backend_options()
