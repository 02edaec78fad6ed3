"""The command line as operators use it next to a running deck or server: the real entry point
in subprocesses, against a real `flowdeck serve` that holds its data dir.

Reading that data dir works beside the server (read-only, without the engine lock); a change
is refused with how to reach the server; short ids and execution ids name what the deck shows;
`run --detach`, unknown inputs, a failed run's cause, and `executions show`'s details.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from cli.test_cli_remote import clean_env, flowdeck_serve

HELLO = """\
id: hello
namespace: ops.test
inputs:
  - id: name
    type: STRING
    defaults: world
tasks:
  - id: say
    type: io.kestra.plugin.core.log.Log
    message: "hello {{ inputs.name }}"
  - id: publish
    type: io.kestra.plugin.core.output.OutputValues
    values:
      greeting: "hi {{ inputs.name }}"
"""

FAILING = """\
id: failing
namespace: ops.test
tasks:
  - id: boom
    type: io.kestra.plugin.scripts.shell.Commands
    commands:
      - echo about to fail
      - echo disk full >&2
      - exit 3
"""

GATED = """\
id: gated
namespace: ops.test
tasks:
  - id: gate
    type: flowdeck.approval.Request
    title: Ship it?
  - id: after
    type: io.kestra.plugin.core.log.Log
    message: gate passed
"""


@dataclass
class Served:
    """A `flowdeck serve` on `data_dir`, and `flowdeck` subprocesses to run beside it."""

    root: Path
    url: str
    data_dir: Path

    def __call__(self, *args: str, timeout: float = 30) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "flowdeck.cli", *args],
                              capture_output=True, text=True, encoding="utf-8",
                              timeout=timeout, env=clean_env(self.root / "home"))

    def ok(self, *args: str) -> str:
        result = self(*args)
        assert result.returncode == 0, (result.stdout, result.stderr)
        assert result.stderr == ""
        return result.stdout

    def local(self, *args: str) -> subprocess.CompletedProcess[str]:
        """On the served data dir itself, not over HTTP (`--data-dir` after the command)."""
        return self(*args, "--data-dir", str(self.data_dir))

    def remote(self, *args: str) -> subprocess.CompletedProcess[str]:
        return self("--url", self.url, *args)

    def flow_file(self, name: str, source: str) -> str:
        path = self.root / "flows" / f"{name}.yml"
        path.parent.mkdir(exist_ok=True)
        path.write_text(source, encoding="utf-8")
        return str(path)


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    root = tmp_path_factory.mktemp("operator")
    with flowdeck_serve(root, clean_env(root / "home")) as url:
        served = Served(root, url, root / "server-data")
        assert served.ok("--url", url, "flow", "apply", served.flow_file("hello", HELLO),
                         served.flow_file("failing", FAILING), served.flow_file("gated", GATED))
        yield served


def created(stdout: str) -> str:
    match = re.search(r"^execution (\S+) created$", stdout, re.M)
    assert match, stdout
    return match.group(1)


def one_line(result: subprocess.CompletedProcess[str], code: int = 2) -> str:
    assert result.returncode == code, (result.stdout, result.stderr)
    assert "Traceback" not in result.stderr
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("flowdeck: "), result.stderr
    return lines[0]


def test_reading_works_beside_the_server_and_changes_say_how_to_reach_it(
        served: Served) -> None:
    hello = created(served.ok("--url", served.url, "run", "ops.test", "hello", "-i",
                              "name=ada"))
    gated_run = served.remote("run", "ops.test", "gated")
    assert gated_run.returncode == 3, gated_run.stderr  # it waits for the approval
    gated = created(gated_run.stdout)

    # Every read-only command, on the data dir the server holds, by the deck's short ids.
    flows = served.ok("flow", "list", "--data-dir", str(served.data_dir))
    assert re.search(r"^ops\.test\s+hello\s+1", flows, re.M)
    assert served.ok("flow", "show", "ops.test", "hello", "--data-dir", str(served.data_dir)) \
        .startswith("# ops.test.hello revision 1\n")
    listed = json.loads(served.ok("executions", "list", "--json", "--data-dir",
                                  str(served.data_dir)))
    assert {hello, gated} <= {e["id"] for e in listed["results"]}
    shown = served.ok("executions", "show", hello[-8:], "--data-dir", str(served.data_dir))
    assert shown.splitlines()[1].split()[:2] == [hello, "SUCCESS"]
    assert re.search(r"^INPUTS\n  name  ada$", shown, re.M)
    assert re.search(r'^  publish  \{"values": \{"greeting": "hi ada"\}\}$', shown, re.M)
    assert re.search(r"INFO  say  hello ada$",
                     served.ok("logs", hello[-8:], "--data-dir", str(served.data_dir)), re.M)
    pending = served.ok("approvals", "list", "--data-dir", str(served.data_dir))
    assert re.search(r"\spending\s+ops\.test\.gated\s+Ship it\?", pending)

    # Changes need the engine: refused at once, naming the holder and its URL.
    apply = served.local("flow", "apply", served.flow_file("hello", HELLO))
    for refused in (apply, served.local("run", "ops.test", "hello"),
                    served.local("approvals", "approve", gated[-8:]),
                    served.local("logs", hello, "-f"),
                    served.local("executions", "restart", hello)):
        line = one_line(refused)
        assert line.startswith("flowdeck: another flowdeck engine (pid ") \
            and f"is already using {served.data_dir}" in line, line
        assert line.endswith(f"--data-dir. It serves its HTTP API at {served.url}: add "
                             f"--url {served.url} to this command"), line

    # Over HTTP the same change works; the approval is named by its execution's short id.
    out = served.ok("approvals", "approve", gated[-8:], "--by", "ada", "--url", served.url)
    assert out.splitlines()[1] == f"execution {gated} is SUCCESS"


def test_ambiguous_and_unknown_ids(served: Served) -> None:
    # Ids start with their creation time: runs a moment apart share the first 8 characters,
    # unless they straddle one of the id clock's 65 s steps; a third run then shares them.
    ids = [created(served.remote("run", "ops.test", "hello").stdout) for _ in range(2)]
    if ids[0][:8] != ids[1][:8]:
        ids = [ids[1], created(served.remote("run", "ops.test", "hello").stdout)]
    first, second = ids
    fragment = first[:next(i for i in range(36) if first[i] != second[i])]
    assert len(fragment) >= 8
    for result in (served.local("executions", "show", fragment),
                   served.remote("logs", fragment)):
        assert result.returncode == 2, result.stderr
        lines = result.stderr.splitlines()
        assert lines[0].startswith(f"flowdeck: execution id '{fragment}' is ambiguous: it "
                                   "matches "), lines
        assert {line.split()[0] for line in lines[1:]} >= {first, second}
        assert all(line.startswith("  ") for line in lines[1:])
    assert one_line(served.local("logs", "feedfacefeed")) \
        == "flowdeck: no execution 'feedfacefeed'"


def test_run_detach_prints_the_id_and_the_run_goes_on(served: Served) -> None:
    result = served.remote("run", "ops.test", "hello", "-i", "name=bo", "--detach")
    assert result.returncode == 0 and result.stderr == ""
    [execution_id] = result.stdout.split()
    assert result.stdout == f"{execution_id}\n"
    followed = served.remote("logs", execution_id, "-f")  # ends when the run ends
    assert followed.returncode == 0 and "hello bo" in followed.stdout

    line = one_line(served("--data-dir", str(served.root / "elsewhere"), "run", "ops.test",
                           "hello", "--detach"))
    assert "--detach needs a server (--url or --profile)" in line
    assert not (served.root / "elsewhere").exists()
    assert "--detach and --follow" in one_line(served.remote("run", "ops.test", "hello",
                                                             "--detach", "--follow"))


def test_unknown_inputs_are_refused_naming_them(served: Served) -> None:
    before = json.loads(served.ok("executions", "list", "--json", "--url", served.url))["total"]
    assert one_line(served.remote("run", "ops.test", "hello", "-i", "nmae=ada")) \
        == "flowdeck: ops.test.hello declares no input named 'nmae' (its inputs: name)"
    assert one_line(served.remote("run", "ops.test", "failing", "-i", "a=1", "-i", "b=2")) \
        == "flowdeck: ops.test.failing declares no inputs named 'a', 'b' (it takes no inputs)"
    after = json.loads(served.ok("executions", "list", "--json", "--url", served.url))["total"]
    assert after == before


def test_a_failed_run_names_its_failing_task_and_last_lines(served: Served) -> None:
    result = served.remote("run", "ops.test", "failing", "--wait")
    assert result.returncode == 1, result.stderr
    execution_id = created(result.stdout)
    lines = result.stdout.splitlines()
    assert lines[1] == "task boom FAILED after 1 attempt:"
    assert [line.split(None, 3)[1:] for line in lines[2:5]] == [
        ["INFO", "boom", "about to fail"], ["WARN", "boom", "disk full"],
        ["ERROR", "boom", "task 'boom' failed: command failed with exit code 3"]]
    assert all(line.startswith("  ") for line in lines[2:5])
    assert re.fullmatch(rf"execution {execution_id} FAILED in \d+\.\ds", lines[5])
    assert len(lines) == 6

    shown = served.ok("executions", "show", execution_id[-8:], "--data-dir",
                      str(served.data_dir)).splitlines()
    error = shown.index("ERROR")
    assert shown[error + 1:] == lines[1:5]


def test_show_sanitises_inputs_and_outputs(served: Served) -> None:
    hostile = "\x1b]0;pwned\x07 \x1b[2J \u202e end"
    execution_id = created(served.ok("run", "ops.test", "hello", "-i", f"name={hostile}",
                                     "--url", served.url))
    shown = served.ok("executions", "show", execution_id, "--url", served.url)
    # No raw control or bidi character reaches the terminal: a string value is stripped of
    # its sequences, a structured one (task outputs) is JSON with them escaped.
    assert "\x1b" not in shown and "\x07" not in shown and "\u202e" not in shown
    assert re.search(r"^  name\s+<U\+202E> end$", shown, re.M), shown
    assert "hi \\u001b]0;pwned\\u0007 \\u001b[2J <U+202E> end" in shown
    as_json = served.ok("executions", "show", execution_id, "--json", "--url", served.url)
    assert "\x1b" not in as_json and json.loads(as_json)["inputs"] == {"name": hostile}


def test_in_process_an_approval_by_its_execution_and_a_token_by_its_end(
        tmp_path: Path) -> None:
    local = Served(tmp_path, "", tmp_path / "data")
    assert local.local("flow", "apply", local.flow_file("gated", GATED)).returncode == 0
    waiting = local.local("run", "ops.test", "gated")
    assert waiting.returncode == 3, waiting.stderr
    execution_id = created(waiting.stdout)
    decided = local.local("approvals", "reject", execution_id, "--comment", "not today")
    assert decided.returncode == 0, decided.stderr
    assert decided.stdout.splitlines()[1] == f"execution {execution_id} is CANCELLED"

    token = json.loads(local.local("token", "create", "--role", "viewer", "--json").stdout)
    revoked = local.local("token", "revoke", token["id"][-8:])
    assert revoked.stdout == f"token {token['id']} ({token['name']}) revoked\n", revoked.stderr
