"""`flowdeck staging list|clone|delete`: the real entry point in subprocesses.

Embedded (`--data-dir tmp`: the engine runs in each command, the bundled staging flows are
installed on first use, the local provider keeps environments under `<data dir>/staging`) and
with `--url` against one real `flowdeck serve` for the module. The delete guard is the engine's:
the CLI passes every look-alike name through untouched and reports the engine's refusal.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from cli.test_cli_remote import flowdeck_serve

GUARD = re.compile(r"^flowdeck: staging delete: refusing to delete .* only environments whose "
                   r"whole name matches \^staging-\[a-z0-9\]\[a-z0-9-\]\{0,62\}\$ can be "
                   r"deleted \(execution \S+\)$")
LOOK_ALIKES = ["Staging-x", " staging-x", "staging-x\n", "\uff53taging-x", "staging-x/../prod",
               "prod-staging-x"]


def clean_env(root: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("FLOWDECK_", "ENV_", "RAILWAY_"))}
    home = root / "home"
    env.update(TZ="UTC", HOME=str(home), XDG_CONFIG_HOME=str(home / ".config"),
               XDG_DATA_HOME=str(home / ".local" / "share"), USER="grace", LOGNAME="grace",
               PYTHONUNBUFFERED="1")
    return env


def flowdeck(root: Path, data_dir: Path, *args: str,
             timeout: float = 60) -> subprocess.CompletedProcess[str]:
    argv = [sys.executable, "-m", "flowdeck.cli", "--data-dir", str(data_dir), *args]
    return subprocess.run(argv, capture_output=True, text=True, encoding="utf-8",
                          timeout=timeout, env=clean_env(root))


def ok(result: subprocess.CompletedProcess[str]) -> str:
    assert result.returncode == 0, (result.stdout, result.stderr)
    assert result.stderr == ""
    return result.stdout


def error_line(result: subprocess.CompletedProcess[str], code: int) -> str:
    """Exit `code` with exactly one `flowdeck: ...` line on stderr, no traceback."""
    assert result.returncode == code, (result.stdout, result.stderr)
    assert "Traceback" not in result.stderr
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("flowdeck: "), result.stderr
    return lines[0]


# -- embedded ----------------------------------------------------------------------------------


def test_clone_list_refuse_and_delete_in_process(tmp_path: Path) -> None:
    data = tmp_path / "d"

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return flowdeck(tmp_path, data, "staging", *args)

    out = ok(run("clone", "acme", "--name", "staging-x", "--wait")).splitlines()
    assert re.fullmatch(r"execution \S+ (CREATED|QUEUED|RUNNING)", out[0]), out
    assert out[-1] == "environment staging-x is ready at http://staging-x.staging.localhost"
    assert (data / "staging" / "staging-x" / "environment.json").is_file()

    table = ok(run("list")).splitlines()
    assert table[0].split() == ["NAME", "CLIENT", "SOURCE", "URL", "STATUS", "CREATED"]
    assert re.fullmatch(r"staging-x\s+acme\s+production\s+http://staging-x\.staging\.localhost"
                        r"\s+active\s+\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", table[1]), table
    assert len(table) == 2
    before = (data / "staging" / "staging-x" / "environment.json").read_text()

    # Cloning onto a name that is taken: exit 1 with the reason; nothing changes.
    again = run("clone", "other", "--name", "staging-x", "--wait")
    line = error_line(again, 1)
    assert re.fullmatch(r"flowdeck: staging clone failed: environment 'staging-x' already "
                        r"exists \(execution \S+\)", line), line

    # A client name the engine's validation refuses: exit 2, the engine's words.
    line = error_line(run("clone", "Acme"), 2)
    assert line.startswith("flowdeck: staging clone: client_name 'Acme' must match "), line

    # Every look-alike reaches the engine as typed and is refused by its guard.
    for name in LOOK_ALIKES:
        line = error_line(run("delete", name), 2)
        assert GUARD.fullmatch(line), (name, line)
        assert repr(name) in line, (name, line)  # the name as the engine quoted it

    [env] = json.loads(ok(run("list", "--json")))
    assert (env["name"], env["client_name"], env["source_environment"], env["status"]) == \
        ("staging-x", "acme", "production", "active")
    assert (data / "staging" / "staging-x" / "environment.json").read_text() == before

    assert ok(run("delete", "staging-x")) == "environment staging-x deleted\n"
    assert not (data / "staging" / "staging-x").exists()
    line = error_line(run("delete", "staging-x"), 1)  # well-formed, but not there
    assert "no staging environment 'staging-x'" in line


def test_a_bad_staging_config_names_the_file_and_the_key(tmp_path: Path) -> None:
    config = tmp_path / "flowdeck.toml"
    config.write_text('[staging]\nprovider = "nope"\n', encoding="utf-8")
    result = flowdeck(tmp_path, tmp_path / "d", "--config", str(config), "staging", "list")
    line = error_line(result, 2)
    assert line == f"flowdeck: {config}: staging.provider: Input should be 'local' or 'railway'"
    assert not (tmp_path / "d").exists()  # refused before any engine opened

    config.write_text('[staging]\nprovider = "railway"\n[staging.railway]\ntoken = "s3cret"\n',
                      encoding="utf-8")
    line = error_line(flowdeck(tmp_path, tmp_path / "d", "--config", str(config),
                               "staging", "list"), 2)
    assert line.startswith(f"flowdeck: {config}: staging.railway: ") and "token_env" in line
    assert "s3cret" not in line


# -- against a real `flowdeck serve` ------------------------------------------------------------


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, str]]:
    root = tmp_path_factory.mktemp("staging-remote")
    with flowdeck_serve(root, clean_env(root)) as url:
        yield root, url


def test_staging_over_url(server: tuple[Path, str]) -> None:
    root, url = server
    unused = root / "unused-data-dir"

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return flowdeck(root, unused, "--url", url, *args)

    # Without --wait: the spec's webhook answer, and the server goes on by itself.
    started = json.loads(ok(run("staging", "clone", "acme", "--name", "staging-r2", "--json")))
    assert set(started) == {"executionId", "state"}
    assert started["state"] in ("CREATED", "QUEUED", "RUNNING", "SUCCESS")

    out = ok(run("staging", "clone", "acme", "--name", "staging-r1", "--wait")).splitlines()
    assert out[-1] == "environment staging-r1 is ready at http://staging-r1.staging.localhost"
    ok(run("logs", started["executionId"], "-f"))  # exits 0 once that clone succeeded

    listed = json.loads(ok(run("staging", "list", "--json")))
    assert sorted(e["name"] for e in listed) == ["staging-r1", "staging-r2"]

    line = error_line(run("staging", "delete", "staging-r1/../prod"), 2)
    assert GUARD.fullmatch(line), line

    assert ok(run("staging", "delete", "staging-r1", "--url", url)) == \
        "environment staging-r1 deleted\n"
    table = ok(run("staging", "list")).splitlines()
    assert [row.split()[0] for row in table[1:]] == ["staging-r2"]
    assert not unused.exists()  # everything went over HTTP
