"""`flowdeck --serve HOST:PORT`: the deck and the HTTP API from one process, one engine.

The deck is built exactly as the `flowdeck` entry point builds it (`build_deck`) and driven
with Textual's Pilot; a real HTTP client talks to the API it serves on loopback. What is
created over HTTP shows up in the deck, and the port is closed once the deck exits.
"""

from __future__ import annotations

import asyncio
import os
import socket
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest

from flowdeck.cli import build_deck, build_parser
from flowdeck.config import load_settings
from flowdeck.tui.widgets.table import VirtualTable

HELLO = """\
id: hello
namespace: served.test
tasks:
  - id: say
    type: io.kestra.plugin.core.log.Log
    message: served from the deck
"""


async def wait_until(condition: Callable[[], bool], timeout: float = 20.0) -> None:
    async with asyncio.timeout(timeout):
        while not condition():
            await asyncio.sleep(0.02)


def isolated_env(tmp_path: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("FLOWDECK_")}
    env.update(XDG_CONFIG_HOME=str(tmp_path / "xdg-config"), HOME=str(tmp_path / "home"),
               TZ="UTC")
    return env


async def test_the_deck_serves_the_api_of_its_own_engine(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "xdg-config"))
    args = build_parser().parse_args(["--data-dir", str(tmp_path / "data"),
                                      "--serve", "127.0.0.1:0"])
    settings = load_settings(args.config, data_dir=args.data_dir)
    app, serving = build_deck(args, settings)
    assert serving is not None
    port = serving.sock.getsockname()[1]
    async with app.run_test(size=(120, 40)) as pilot:
        await wait_until(lambda: app.serving_url is not None)
        url = app.serving_url
        assert url == f"http://127.0.0.1:{port}"
        # Recorded, so a command refused on this data dir can name the URL.
        endpoint = tmp_path / "data" / "serving.url"
        assert endpoint.read_text(encoding="utf-8") == f"{os.getpid()} {url}\n"
        async with httpx.AsyncClient(base_url=url, timeout=10) as client:
            configs = await client.get("/api/v1/configs")
            assert configs.status_code == 200
            created = await client.post("/api/v1/flows", content=HELLO,
                                        headers={"Content-Type": "application/x-yaml"})
            assert created.status_code == 200, created.text
            run = await client.post("/api/v1/executions/served.test/hello")
            assert run.status_code == 200, run.text
            execution_id = run.json()["id"]

            # The deck, on the same engine, sees the run that came in over HTTP.
            def shown() -> bool:
                source = app.screen.query_one("#table", VirtualTable).source
                return execution_id in {source.row_key(i) for i in range(source.row_count())}

            await wait_until(shown)
            # And the staging flows are installed, as `flowdeck serve` installs them.
            staging = await client.get("/api/v1/flows/dev.deployment/clone-staging-api")
            assert staging.status_code == 200
        await pilot.press("colon")
        await pilot.press(*"quit")
        await pilot.press("enter")
    serving.sock.close()
    with pytest.raises(OSError), socket.create_connection(("127.0.0.1", port), timeout=1):
        pass
    assert not endpoint.exists()


def test_a_busy_port_is_a_one_line_error_before_the_deck_starts(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        done = subprocess.run(
            [sys.executable, "-m", "flowdeck.cli", "--data-dir", str(tmp_path / "data"),
             "--serve", f"127.0.0.1:{port}"],
            capture_output=True, text=True, timeout=60, env=isolated_env(tmp_path),
            stdin=subprocess.DEVNULL)
    assert done.returncode == 2
    assert f"127.0.0.1:{port}" in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1
    assert "\x1b[" not in done.stdout  # the deck never took the terminal


@pytest.mark.parametrize(("flags", "message"), [
    (["--serve", "127.0.0.1:99999"], "port must be a number from 0 to 65535"),
    (["--serve", "::1:8080"], "IPv6"),
    (["--serve", "127.0.0.1:0", "--url", "http://127.0.0.1:9"], "cannot be combined"),
])
def test_bad_serve_flags_exit_2_with_a_message(tmp_path: Path, flags: list[str],
                                               message: str) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "flowdeck.cli", "--data-dir", str(tmp_path / "data"), *flags],
        capture_output=True, text=True, timeout=60, env=isolated_env(tmp_path),
        stdin=subprocess.DEVNULL)
    assert done.returncode == 2, done.stderr
    assert message in done.stderr


@pytest.mark.parametrize(("setting", "expected"), [("", True), ("confirm = false", False)])
def test_the_deck_confirm_setting_reaches_the_deck(tmp_path: Path, setting: str,
                                                   expected: bool) -> None:
    """`[deck] confirm = false` turns the deck's confirmation questions off; asking is the
    default."""
    config = tmp_path / "flowdeck.toml"
    config.write_text(f"[deck]\n{setting}\n", encoding="utf-8")
    args = build_parser().parse_args(["--config", str(config),
                                      "--data-dir", str(tmp_path / "data")])
    settings = load_settings(args.config, data_dir=args.data_dir)
    app, serving = build_deck(args, settings)
    assert serving is None
    assert app.confirm is expected
