"""End-to-end tests of the `flowdeck` command line: the real entry point in a subprocess.

Each test runs `python -m flowdeck.cli --data-dir <tmp>` with an environment that cannot see the
user's configuration (HOME and the XDG dirs point into tmp_path, no FLOWDECK_* variables), and
checks exit codes, stdout/stderr and what the engine stored in its SQLite database.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import sqlite3
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable, Iterator
from contextlib import closing
from importlib import resources
from pathlib import Path
from typing import Any

import pytest

EXAMPLES = {item.name: item.read_text(encoding="utf-8")
            for item in resources.files("flowdeck.examples").iterdir()
            if item.name.endswith(".yml")}
ESC = "\x1b"

SLEEPY = """\
id: sleepy
namespace: cli.test
tasks:
  - id: nap
    type: io.kestra.plugin.core.flow.Sleep
    duration: PT60S  # outlasts the test on any machine: it is stopped, never awaited
"""

COUNTING = """\
id: counting
namespace: cli.test
inputs:
  - id: count
    type: INT
tasks:
  - id: say
    type: io.kestra.plugin.core.log.Log
    message: "count is {{ inputs.count }}"
"""

NEEDS_COMMENT = """\
id: needs-comment
namespace: cli.test
tasks:
  - id: gate
    type: flowdeck.approval.Request
    title: Drop the old tables?
    requireComment: true
  - id: after
    type: io.kestra.plugin.core.log.Log
    message: gate passed
"""

# Escape sequences spelled as YAML escapes: the parsed strings hold real ESC/BEL/C1 characters.
HOSTILE = r"""
id: hostile
namespace: cli.test
description: "retitle \x1b]0;pwned\x07 and clear \x1b[2J"
tasks:
  - id: say
    type: io.kestra.plugin.core.log.Log
    message: "title \x1b]0;pwned\x07 clear \x1b[2J csi8 \x9b2J bidi \u202e end"
  - id: shell
    type: io.kestra.plugin.scripts.shell.Commands
    commands:
      - printf 'clip \033]52;c;aGk=\007 red \033[31mtext\n'
"""


# -- running the command line ------------------------------------------------------------------


def clean_env(tmp_path: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("FLOWDECK_")}
    home = tmp_path / "home"
    env.update(TZ="UTC", HOME=str(home), XDG_CONFIG_HOME=str(home / ".config"),
               XDG_DATA_HOME=str(home / ".local" / "share"), USER="grace", LOGNAME="grace",
               PYTHONUNBUFFERED="1")
    env.update(extra)
    return env


class CLI:
    """`flowdeck --data-dir <data_dir> ...` as a subprocess, with a clean environment."""

    def __init__(self, tmp_path: Path) -> None:
        self.tmp_path = tmp_path
        self.data_dir = tmp_path / "d"
        self.db_path = self.data_dir / "flowdeck.db"

    def argv(self, *args: str) -> list[str]:
        return [sys.executable, "-m", "flowdeck.cli", "--data-dir", str(self.data_dir), *args]

    def __call__(self, *args: str, env: dict[str, str] | None = None,
                 timeout: float = 60) -> subprocess.CompletedProcess[str]:
        return subprocess.run(self.argv(*args), capture_output=True, text=True,
                              encoding="utf-8", timeout=timeout,
                              env=clean_env(self.tmp_path, **(env or {})))

    def ok(self, *args: str) -> str:
        result = self(*args)
        assert result.returncode == 0, (result.stdout, result.stderr)
        assert result.stderr == ""
        return result.stdout

    def popen(self, *args: str) -> subprocess.Popen[str]:
        return subprocess.Popen(self.argv(*args), stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True, encoding="utf-8",
                                env=clean_env(self.tmp_path))

    def write(self, name: str, text: str) -> Path:
        path = self.tmp_path / "flows" / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
        return path

    def apply(self, *sources: str) -> None:
        paths = [str(self.write(f"flow{i}.yml", textwrap.dedent(s).lstrip()))
                 for i, s in enumerate(sources)]
        self.ok("flow", "apply", *paths)

    # What is stored, read straight from the database (only while no engine is running).
    def query(self, sql: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        with closing(sqlite3.connect(self.db_path)) as conn:
            return conn.execute(sql, params).fetchall()

    def execution(self, execution_id: str) -> dict[str, Any]:
        rows = self.query("SELECT doc FROM executions WHERE id = ?", (execution_id,))
        assert rows, f"execution {execution_id} is not stored"
        doc: dict[str, Any] = json.loads(rows[0][0])
        return doc

    def only_execution(self, flow_id: str) -> dict[str, Any]:
        rows = self.query("SELECT id FROM executions WHERE flow_id = ?", (flow_id,))
        assert len(rows) == 1, rows
        return self.execution(rows[0][0])


def one_line_error(result: subprocess.CompletedProcess[str]) -> str:
    """Exit 2 with exactly one `flowdeck: ...` line on stderr, no traceback."""
    assert result.returncode == 2, (result.stdout, result.stderr)
    assert "Traceback" not in result.stderr
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("flowdeck: "), result.stderr
    return lines[0]


def created_id(stdout: str) -> str:
    match = re.search(r"^execution (\S+) created$", stdout, re.MULTILINE)
    assert match, stdout
    return match.group(1)


def wait_for(predicate: Callable[[], Any], timeout: float = 10, what: str = "") -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what or predicate}")
        time.sleep(0.05)


def task_states(doc: dict[str, Any]) -> dict[str, str]:
    return {t["taskId"]: t["state"]["current"] for t in doc["taskRunList"]}


# -- fixtures ----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def seeded(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """A data dir built once per module: the examples and `counting` applied, hello (name=bob)
    run to SUCCESS and failing-with-errors to FAILED. Tests get their own copy of it."""
    base = tmp_path_factory.mktemp("seed")
    cli = CLI(base)
    for name, source in [*EXAMPLES.items(), ("counting.yml", COUNTING)]:
        cli.write(name, source)
    cli.ok("flow", "apply", *sorted(str(p) for p in (base / "flows").iterdir()))
    hello = created_id(cli.ok("run", "flowdeck.demo", "hello", "-i", "name=bob"))
    failing = cli("run", "flowdeck.demo", "failing-with-errors")
    assert failing.returncode == 1, failing.stderr
    yield {"dir": cli.data_dir, "hello": hello, "failed": created_id(failing.stdout)}


@pytest.fixture
def cli(tmp_path: Path) -> CLI:
    return CLI(tmp_path)


@pytest.fixture
def seeded_cli(tmp_path: Path, seeded: dict[str, Any]) -> CLI:
    cli = CLI(tmp_path)
    shutil.copytree(seeded["dir"], cli.data_dir, ignore=shutil.ignore_patterns("engine.lock"))
    return cli


# -- flows -------------------------------------------------------------------------------------


def test_flow_apply_list_show_delete(cli: CLI) -> None:
    paths = [str(cli.write(name, source)) for name, source in sorted(EXAMPLES.items())]
    assert len(paths) >= 8
    first = cli.ok("flow", "apply", *paths).splitlines()
    ids = sorted(source_id(s) for s in EXAMPLES.values())
    assert first == [f"created   flowdeck.demo.{i} (revision 1)" for i in ids]

    again = cli.ok("flow", "apply", *paths).splitlines()
    assert again == [f"unchanged flowdeck.demo.{i} (revision 1)" for i in ids]

    hello = cli.tmp_path / "flows" / "hello.yml"
    changed = EXAMPLES["hello.yml"].replace("description: Greets someone",
                                            "description: Says hello to someone")
    assert changed != EXAMPLES["hello.yml"]
    hello.write_text(changed, encoding="utf-8")
    assert cli.ok("flow", "apply", str(hello)) == "updated   flowdeck.demo.hello (revision 2)\n"
    assert cli.query("SELECT revision, source FROM flows WHERE id = 'hello' ORDER BY revision") \
        == [(1, EXAMPLES["hello.yml"]), (2, changed)]
    assert cli.query("SELECT revision, deleted FROM flow_heads WHERE id = 'hello'") == [(2, 0)]

    table = cli.ok("flow", "list").splitlines()
    assert table[0].split() == ["NAMESPACE", "ID", "REVISION", "TRIGGERS", "DESCRIPTION"]
    rows = {line.split()[1]: line.split() for line in table[1:]}
    assert sorted(rows) == ids
    assert rows["hello"][:3] == ["flowdeck.demo", "hello", "2"]
    assert " ".join(rows["hello"][4:]).startswith("Says hello to someone")
    assert rows["build-dag"][2:4] == ["1", "-"]
    assert rows["nightly-report"][3] == "every-minute"

    listed = json.loads(cli.ok("flow", "list", "--json"))
    assert [(f["namespace"], f["id"]) for f in listed] == [("flowdeck.demo", i) for i in ids]
    by_id = {f["id"]: f for f in listed}
    assert by_id["hello"]["revision"] == 2
    assert by_id["hello"]["description"].startswith("Says hello")
    assert [t["id"] for t in by_id["hello"]["tasks"]] == ["greet", "shell", "publish"]
    assert "source" not in by_id["hello"]

    assert cli.ok("flow", "show", "flowdeck.demo", "hello") \
        == "# flowdeck.demo.hello revision 2\n" + changed

    assert cli.ok("flow", "delete", "flowdeck.demo", "hello") == "deleted flowdeck.demo.hello\n"
    assert cli.query("SELECT deleted FROM flow_heads WHERE id = 'hello'") == [(1,)]
    assert "no flow 'hello'" in one_line_error(cli("flow", "show", "flowdeck.demo", "hello"))
    assert "no flow 'hello'" in one_line_error(cli("run", "flowdeck.demo", "hello"))


def source_id(source: str) -> str:
    match = re.search(r"^id: (\S+)$", source, re.MULTILINE)
    assert match
    return match.group(1)


def test_invalid_flow_file_is_refused_with_the_file_and_the_path(cli: CLI) -> None:
    bad = cli.write("bad.yml", textwrap.dedent("""\
        id: bad
        namespace: cli.test
        tasks:
          - id: ok
            type: io.kestra.plugin.core.log.Log
            message: hi
          - id: broken
            type: io.kestra.nope
        """))
    line = one_line_error(cli("flow", "apply", str(bad)))
    assert line == f"flowdeck: {bad}: tasks[1].type: unknown task type 'io.kestra.nope'"
    assert cli.query("SELECT COUNT(*) FROM flows") == [(0,)]

    missing = cli.tmp_path / "flows" / "missing.yml"
    line = one_line_error(cli("flow", "apply", str(missing)))
    assert line.startswith(f"flowdeck: {missing}: cannot be read")

    not_text = cli.tmp_path / "flows" / "binary.yml"
    not_text.write_bytes(b"id: x\nnamespace: \xff\xfe\n")
    assert one_line_error(cli("flow", "apply", str(not_text))) \
        == f"flowdeck: {not_text}: not UTF-8 text (byte 17)"

    yaml_error = cli.write("broken.yml", "id: [\n")
    assert one_line_error(cli("flow", "apply", str(yaml_error))).startswith(
        f"flowdeck: {yaml_error}: invalid YAML")


# -- run ---------------------------------------------------------------------------------------


def test_run_exit_codes_json_and_follow(seeded_cli: CLI, seeded: dict[str, Any]) -> None:
    cli = seeded_cli
    # The seeded runs, as the store has them.
    hello = cli.execution(seeded["hello"])
    assert hello["state"]["current"] == "SUCCESS"
    assert hello["inputs"] == {"name": "bob"}
    publish = next(t for t in hello["taskRunList"] if t["taskId"] == "publish")
    assert publish["outputs"] == {"values": {"greeting": "hi bob"}}
    assert cli.execution(seeded["failed"])["state"]["current"] == "FAILED"

    result = cli("run", "flowdeck.demo", "failing-with-errors")
    assert result.returncode == 1, result.stderr
    execution_id = created_id(result.stdout)
    assert re.search(rf"^execution {execution_id} FAILED in \d+\.\ds$", result.stdout, re.M)
    doc = cli.execution(execution_id)
    assert task_states(doc) == {"prepare": "SUCCESS", "migrate": "FAILED", "alert": "SUCCESS",
                                "cleanup": "SUCCESS"}

    result = cli("run", "flowdeck.demo", "hello", "-i", "name=ada", "--json")
    assert result.returncode == 0, result.stderr
    printed = json.loads(result.stdout)  # only the JSON: no "created" line
    assert printed["state"]["current"] == "SUCCESS"
    assert [h["state"] for h in printed["state"]["histories"]] == ["CREATED", "RUNNING",
                                                                  "SUCCESS"]
    assert task_states(printed) == {"greet": "SUCCESS", "shell": "SUCCESS",
                                    "publish": "SUCCESS"}
    assert printed["inputs"] == {"name": "ada"}
    stored = cli.execution(printed["id"])
    assert stored["state"] == printed["state"]
    assert task_states(stored) == task_states(printed)

    result = cli("run", "flowdeck.demo", "hello", "-i", "name=eve", "--follow")
    assert result.returncode == 0, result.stderr
    execution_id = created_id(result.stdout)
    lines = result.stdout.splitlines()
    assert lines[0] == f"execution {execution_id} created"
    assert re.fullmatch(rf"execution {execution_id} SUCCESS in \d+\.\ds", lines[-1])
    assert re.fullmatch(r"\d\d:\d\d:\d\d\.\d{3} INFO  greet  "
                        rf"Hello eve from execution {execution_id}", lines[1])
    assert any(re.fullmatch(r"\S+ INFO  shell  running on \S+ as a real subprocess", line)
               for line in lines[2:-1]), lines
    stored_messages = [m for (m,) in cli.query(
        "SELECT message FROM logs WHERE execution_id = ? ORDER BY seq", (execution_id,))]
    assert [line.split("  ", 2)[-1] for line in lines[1:-1]] == stored_messages


def test_run_refuses_bad_inputs_before_anything_runs(seeded_cli: CLI) -> None:
    cli = seeded_cli
    before = cli.query("SELECT COUNT(*) FROM executions")
    assert one_line_error(cli("run", "cli.test", "counting", "-i", "count=abc")) \
        == "flowdeck: inputs.count: expected an integer, got 'abc'"
    line = one_line_error(cli("run", "cli.test", "counting", "-i", "nokeyvalue"))
    assert line == "flowdeck: input 'nokeyvalue' must look like KEY=VALUE"
    assert one_line_error(cli("run", "cli.test", "counting")) \
        == "flowdeck: inputs.count: is required"
    assert cli.query("SELECT COUNT(*) FROM executions") == before

    result = cli("run", "cli.test", "counting", "-i", "count=41", "--follow")
    assert result.returncode == 0, result.stderr
    assert " INFO  say  count is 41\n" in result.stdout


# -- executions --------------------------------------------------------------------------------


def test_executions_list_show_restart_kill(seeded_cli: CLI, seeded: dict[str, Any]) -> None:
    cli, hello, failed = seeded_cli, seeded["hello"], seeded["failed"]

    table = cli.ok("executions", "list").splitlines()
    assert table[0].split() == ["ID", "STATE", "FLOW", "STARTED", "DURATION", "TASKS"]
    rows = {line.split()[0]: line.split() for line in table[1:]}
    assert rows[hello][1:3] == ["SUCCESS", "flowdeck.demo.hello"]
    assert rows[hello][-1] == "3/3"
    assert rows[failed][1:3] == ["FAILED", "flowdeck.demo.failing-with-errors"]

    only_failed = cli.ok("executions", "list", "--state", "failed").splitlines()
    assert [line.split()[0] for line in only_failed[1:]] == [failed]

    listed = json.loads(cli.ok("executions", "list", "--json"))
    assert set(listed) == {"results", "total"}
    assert listed["total"] == 2
    assert {e["id"]: e["state"]["current"] for e in listed["results"]} \
        == {hello: "SUCCESS", failed: "FAILED"}
    assert one_line_error(cli("executions", "list", "--state", "DONE")) \
        == "flowdeck: --state DONE: not an execution state"

    shown = cli.ok("executions", "show", failed).splitlines()
    assert shown[1].split()[:3] == [failed, "FAILED", "flowdeck.demo.failing-with-errors"]
    tasks = {line.split()[0]: line.split()[1:3]
             for line in shown[4:shown.index("", 4) if "" in shown[4:] else None]}
    assert tasks == {"prepare": ["SUCCESS", "1"], "migrate": ["FAILED", "1"],
                     "alert": ["SUCCESS", "1"], "cleanup": ["SUCCESS", "1"]}
    assert json.loads(cli.ok("executions", "show", hello, "--json")) == cli.execution(hello)

    line = one_line_error(cli("executions", "kill", failed))
    assert line == f"flowdeck: execution {failed} is already FAILED"
    assert cli.execution(failed)["state"]["current"] == "FAILED"

    result = cli("executions", "restart", failed)
    assert result.returncode == 1, result.stderr  # it fails again, on purpose
    assert result.stdout.splitlines()[0] == f"execution {failed} restarted"
    assert re.fullmatch(rf"execution {failed} FAILED in \d+\.\ds\n",
                        result.stdout.splitlines(keepends=True)[-1])
    doc = cli.execution(failed)
    assert [h["state"] for h in doc["state"]["histories"]] \
        == ["CREATED", "RUNNING", "FAILED", "RESTARTED", "RUNNING", "FAILED"]
    migrate = next(t for t in doc["taskRunList"] if t["taskId"] == "migrate")
    assert len(migrate["attempts"]) == 2

    result = cli("executions", "restart", hello)
    assert "only CANCELLED, FAILED, KILLED, WARNING executions restart" \
        in one_line_error(result)

    for args in (("executions", "show", "no-such-id"), ("logs", "no-such-id")):
        assert one_line_error(cli(*args)) == "flowdeck: no execution 'no-such-id'"


def test_kill_a_paused_execution(seeded_cli: CLI) -> None:
    cli = seeded_cli
    result = cli("run", "flowdeck.demo", "pause-and-resume")
    assert result.returncode == 3, result.stderr  # it waits
    execution_id = created_id(result.stdout)
    assert cli.execution(execution_id)["state"]["current"] == "PAUSED"
    printed = json.loads(cli.ok("executions", "kill", execution_id, "--json"))
    assert printed["state"]["current"] == "KILLED"
    doc = cli.execution(execution_id)
    assert doc["state"] == printed["state"]
    assert task_states(doc) == {"wait-for-go": "KILLED"}


# -- logs --------------------------------------------------------------------------------------


def test_logs_print_stored_lines_and_follow_ends_on_a_finished_run(
        seeded_cli: CLI, seeded: dict[str, Any]) -> None:
    cli, hello, failed = seeded_cli, seeded["hello"], seeded["failed"]
    lines = cli.ok("logs", hello).splitlines()
    assert re.fullmatch(rf"\d\d:\d\d:\d\d\.\d{{3}} INFO  greet  Hello bob from execution {hello}",
                        lines[0])
    assert any(line.endswith("as a real subprocess") for line in lines)
    stored = cli.query("SELECT COUNT(*) FROM logs WHERE execution_id = ?", (hello,))
    assert len(lines) == stored[0][0]

    start = time.monotonic()
    followed = cli("logs", hello, "-f", timeout=20)
    assert followed.returncode == 0, followed.stderr
    assert followed.stdout.splitlines() == lines
    assert time.monotonic() - start < 10

    failed_lines = cli("logs", failed, "--follow")
    assert failed_lines.returncode == 1  # the execution it followed did not succeed
    assert "ERROR migrate  task 'migrate' failed: schema migration 42 failed" \
        in failed_lines.stdout
    errors = cli.ok("logs", failed, "--level", "error").splitlines()
    assert [line.split()[1:3] for line in errors] == [["ERROR", "migrate"], ["ERROR", "alert"]]
    assert one_line_error(cli("logs", failed, "--level", "loud")) \
        == "flowdeck: --level loud: not one of TRACE, DEBUG, INFO, WARN, ERROR"


# -- approvals ---------------------------------------------------------------------------------


def test_approve_resumes_and_a_second_decision_is_refused(seeded_cli: CLI) -> None:
    cli = seeded_cli
    result = cli("run", "flowdeck.demo", "release-approval")
    assert result.returncode == 3, result.stderr  # it waits for the approval
    execution_id = created_id(result.stdout)
    assert f"execution {execution_id} PAUSED" in result.stdout
    assert "it is waiting (a pause or an approval)" in result.stdout
    assert cli.execution(execution_id)["state"]["current"] == "PAUSED"

    [(approval_id, status)] = cli.query(
        "SELECT id, status FROM approvals WHERE execution_id = ?", (execution_id,))
    assert status == "pending"
    table = cli.ok("approvals", "list").splitlines()
    assert table[0].split() == ["ID", "STATUS", "FLOW", "TITLE", "WAITING"]
    assert table[1].split()[:3] == [approval_id, "pending", "flowdeck.demo.release-approval"]
    assert "Ship release 2026.11.3 to production?" in table[1]
    [listed] = json.loads(cli.ok("approvals", "list", "--json"))
    assert (listed["id"], listed["executionId"], listed["status"]) \
        == (approval_id, execution_id, "pending")
    assert [r["service"] for r in listed["rows"]] == ["api", "billing", "web"]

    out = cli.ok("approvals", "approve", approval_id, "--by", "ada")
    assert out == (f"approval {approval_id} approved by ada\n"
                   f"execution {execution_id} is SUCCESS\n")
    doc = cli.execution(execution_id)
    assert doc["state"]["current"] == "SUCCESS"
    assert task_states(doc) == {"plan": "SUCCESS", "review": "SUCCESS", "ship": "SUCCESS"}
    assert cli.query("SELECT status, decided_by FROM approvals WHERE id = ?",
                     (approval_id,)) == [("approved", "ada")]
    shipped = cli.query("SELECT message FROM logs WHERE execution_id = ? AND task_id = 'ship'",
                        (execution_id,))
    assert shipped == [("shipping 2026.11.3, approved by ada",)]
    assert cli.ok("approvals", "list").splitlines()[1:] == []

    line = one_line_error(cli("approvals", "reject", approval_id, "--by", "bob",
                              "--comment", "late"))
    assert re.fullmatch(rf"flowdeck: approval {approval_id} was already approved by ada "
                        r"at \S+Z", line)
    assert cli.query("SELECT status, decided_by, comment FROM approvals WHERE id = ?",
                     (approval_id,)) == [("approved", "ada", None)]
    assert one_line_error(cli("approvals", "approve", "no-such-id", "--by", "ada")) \
        == "flowdeck: no approval 'no-such-id'"


def test_reject_without_a_required_comment_is_refused(cli: CLI) -> None:
    cli.apply(NEEDS_COMMENT)
    result = cli("run", "cli.test", "needs-comment")
    assert result.returncode == 3, result.stderr
    execution_id = created_id(result.stdout)
    [(approval_id,)] = cli.query("SELECT id FROM approvals")

    line = one_line_error(cli("approvals", "reject", approval_id, "--by", "ada"))
    assert "requires a comment" in line and approval_id in line
    line = one_line_error(cli("approvals", "approve", approval_id, "--comment", "  "))
    assert "requires a comment" in line
    assert cli.query("SELECT status FROM approvals") == [("pending",)]
    assert cli.execution(execution_id)["state"]["current"] == "PAUSED"

    # Without --by, the decision is the user's ($USER / $LOGNAME).
    out = cli.ok("approvals", "reject", approval_id, "--comment", "not during the freeze")
    assert out == (f"approval {approval_id} rejected by grace\n"
                   f"execution {execution_id} is CANCELLED\n")
    assert cli.query("SELECT status, decided_by, comment FROM approvals") \
        == [("rejected", "grace", "not during the freeze")]
    doc = cli.execution(execution_id)
    assert doc["state"]["current"] == "CANCELLED"
    assert task_states(doc) == {"gate": "CANCELLED"}


# -- configuration -----------------------------------------------------------------------------


@pytest.mark.parametrize(("toml", "problem"), [
    ("[engine]\nmax_concurent_executions = 3\n", "engine.max_concurent_executions: unknown key"),
    ("[engine]\nmax_concurrent_executions = \"lots\"\n",
     "engine.max_concurrent_executions: Input should be a valid integer"),
    ("dta_dir = \"/tmp\"\n", "dta_dir: unknown key"),
])
def test_a_bad_config_file_names_the_file_and_the_key(cli: CLI, toml: str, problem: str) -> None:
    config = cli.tmp_path / "flowdeck.toml"
    config.write_text(toml, encoding="utf-8")
    line = one_line_error(cli("--config", str(config), "flow", "list"))
    assert line.startswith(f"flowdeck: {config}: {problem}"), line
    assert not cli.data_dir.exists()  # refused before any engine opened


def test_the_user_config_file_and_flowdeck_config_are_read(cli: CLI) -> None:
    user_config = cli.tmp_path / "home" / ".config" / "flowdeck" / "config.toml"
    user_config.parent.mkdir(parents=True)
    user_config.write_text("[engine]\nreader_connections = 0\n", encoding="utf-8")
    line = one_line_error(cli("flow", "list"))
    assert line.startswith(f"flowdeck: {user_config}: engine.reader_connections: ")

    good = cli.tmp_path / "good.toml"
    good.write_text("[engine]\nreader_connections = 1\n", encoding="utf-8")
    result = cli("flow", "list", env={"FLOWDECK_CONFIG": str(good)})
    assert result.returncode == 0, result.stderr

    missing = cli.tmp_path / "missing.toml"
    line = one_line_error(cli("flow", "list", env={"FLOWDECK_CONFIG": str(missing)}))
    assert line == f"flowdeck: config file {missing} (from $FLOWDECK_CONFIG) does not exist"


def test_a_bad_environment_variable_is_named(cli: CLI) -> None:
    result = cli("flow", "list", env={"FLOWDECK_ENGINE__MAX_CONCURRENT_EXECUTIONS": "abc"})
    line = one_line_error(result)
    assert line.startswith("flowdeck: environment: FLOWDECK_ENGINE__MAX_CONCURRENT_EXECUTIONS: "
                           "Input should be a valid integer"), line
    line = one_line_error(cli("flow", "list", env={"FLOWDECK_ENGINE__NOPE": "1"}))
    assert line == "flowdeck: environment: FLOWDECK_ENGINE__NOPE: unknown key"


def test_an_unusable_data_dir_is_one_line(cli: CLI) -> None:
    not_a_dir = cli.tmp_path / "file"
    not_a_dir.write_text("", encoding="utf-8")
    cli.data_dir = not_a_dir
    assert one_line_error(cli("flow", "list")).startswith(
        f"flowdeck: data dir {not_a_dir} cannot be used: ")

    cli.data_dir = cli.tmp_path / "corrupt"
    cli.data_dir.mkdir()
    (cli.data_dir / "flowdeck.db").write_bytes(b"this is not sqlite" * 100)
    assert one_line_error(cli("flow", "list")) \
        == f"flowdeck: {cli.data_dir / 'flowdeck.db'}: file is not a database"


# -- untrusted text ----------------------------------------------------------------------------


def test_escape_sequences_never_reach_the_terminal(cli: CLI) -> None:
    cli.apply(HOSTILE)
    result = cli("run", "cli.test", "hostile", "--follow")
    assert result.returncode == 0, result.stderr
    execution_id = created_id(result.stdout)

    stored = dict(cli.query("SELECT task_id, message FROM logs WHERE execution_id = ?",
                            (execution_id,)))
    assert "\x1b]0;pwned\x07" in stored["say"]  # stored as it came
    assert "\x1b]52;" in stored["shell"]

    logs = cli.ok("logs", execution_id)
    for output in (result.stdout, logs):
        assert ESC not in output and "\x07" not in output and "\x9b" not in output
        assert "pwned" not in output and "aGk=" not in output
        assert "title  clear  csi8  bidi <U+202E> end" in output
        assert "clip  red text" in output
    listed = cli.ok("flow", "list")
    assert ESC not in listed and " retitle  and clear\n" in listed

    # JSON keeps the text, escaped: still no raw control or bidi characters on the terminal.
    out = cli.ok("flow", "show", "cli.test", "hostile", "--json")
    assert ESC not in out and "\x9b" not in out and "\u202e" not in out
    assert "\\u001b]0;pwned\\u0007" in out
    flow = json.loads(out)
    assert flow["tasks"][0]["message"] \
        == "title \x1b]0;pwned\x07 clear \x1b[2J csi8 \x9b2J bidi \u202e end"


# -- processes ---------------------------------------------------------------------------------


def running_execution(cli: CLI) -> str | None:
    if not cli.db_path.exists():
        return None
    try:
        rows = cli.query("SELECT id FROM executions WHERE state = 'RUNNING'")
    except sqlite3.OperationalError:  # the schema is being created
        return None
    return rows[0][0] if rows else None


def test_a_second_engine_on_the_same_data_dir_is_refused(cli: CLI) -> None:
    cli.apply(SLEEPY)
    background = cli.popen("run", "cli.test", "sleepy", "--follow")
    try:
        execution_id = wait_for(lambda: running_execution(cli), what="the run to start")
        # Reading works beside it (read-only, without the lock); a change is refused at once,
        # saying how to reach the engine that holds the data dir.
        [row] = cli.ok("executions", "list").splitlines()[1:]
        assert row.split()[:2] == [execution_id, "RUNNING"]
        start = time.monotonic()
        result = cli("executions", "kill", execution_id, timeout=15)
        assert time.monotonic() - start < 5
        line = one_line_error(result)
        assert line.startswith(f"flowdeck: another flowdeck engine (pid {background.pid}) is "
                               f"already using {cli.data_dir}; stop it or pick another "
                               "--data-dir. ")
        assert "flowdeck --serve 127.0.0.1:8080" in line and "--url" in line
        assert background.poll() is None  # the first engine is unaffected

        background.send_signal(signal.SIGTERM)
        out, err = background.communicate(timeout=15)
    finally:
        if background.poll() is None:
            background.kill()
            background.communicate()
    # SIGTERM closes the engine cleanly: exit 128+15, no traceback, the run stays recoverable.
    assert background.returncode == 128 + signal.SIGTERM, err
    assert "Traceback" not in err
    assert out.splitlines()[0] == f"execution {execution_id} created"
    assert cli.execution(execution_id)["state"]["current"] == "RUNNING"
    assert cli.query("SELECT level, message FROM logs WHERE execution_id = ? AND task_id IS NULL",
                     (execution_id,)) == [("WARN", "flowdeck stopped while this execution ran; "
                                                   "it continues when flowdeck starts again")]
    assert cli.ok("flow", "apply", str(cli.tmp_path / "flows" / "flow0.yml")) \
        == "unchanged cli.test.sleepy (revision 1)\n"  # a change: the lock was released
    [row] = cli.ok("executions", "list").splitlines()[1:]
    assert row.split()[:3] == [execution_id, "RUNNING", "cli.test.sleepy"]
    # A RUNNING execution's duration runs until now, not until its last state change.
    assert float(row.split()[5].rstrip("s")) >= 0.5, row


def test_sigterm_stops_the_task_subprocesses(cli: CLI) -> None:
    pid_file = cli.tmp_path / "task.pid"
    cli.apply(f"""\
        id: long-shell
        namespace: cli.test
        tasks:
          - id: work
            type: io.kestra.plugin.scripts.shell.Commands
            commands:
              - sleep 60 &
              - echo "$$ $!" > {pid_file}.tmp && mv {pid_file}.tmp {pid_file}
              - wait
        """)
    background = cli.popen("run", "cli.test", "long-shell")
    try:
        wait_for(pid_file.exists, what="the shell task to start")
        shell_pid, sleep_pid = map(int, pid_file.read_text().split())
        assert os.getpgid(sleep_pid) == shell_pid  # the task's own process group
        assert alive(shell_pid) and alive(sleep_pid)
        background.send_signal(signal.SIGTERM)
        _, err = background.communicate(timeout=20)
    finally:
        if background.poll() is None:
            background.kill()
            background.communicate()
    assert background.returncode == 128 + signal.SIGTERM, err
    assert "Traceback" not in err
    wait_for(lambda: not alive(shell_pid) and not alive(sleep_pid), timeout=10,
             what="the task's processes to end")


def alive(pid: int) -> bool:
    """True while the process runs (a zombie waiting to be reaped does not count)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    except OSError:  # no /proc: ask the kernel
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        return True
    return stat.rpartition(")")[2].split()[0] != "Z"


def test_a_closed_stdout_ends_quietly(cli: CLI) -> None:
    cli.apply(COUNTING)
    proc = subprocess.Popen(cli.argv("flow", "list", "--json"), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, env=clean_env(cli.tmp_path))
    assert proc.stdout is not None and proc.stderr is not None
    proc.stdout.close()  # long before the child has anything to write
    err = proc.stderr.read().decode()
    assert proc.wait(timeout=30) == 1
    assert err == ""
