"""`flowdeck workflow submit|list|show|cancel`: the real entry point in subprocesses.

Embedded (`--data-dir`: the engine runs in each command, so `submit` always waits) and with
`--url` against one real `flowdeck serve` for the module (the FlowCtl routes; the command's own
data dir is never touched). Exit codes: 0 completed, 1 failed or not finished in time, 2 a
refused definition, bad JSON, an unknown id or a workflow already finished.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from cli.test_cli_remote import flowdeck_serve
from cli.test_cli_staging import clean_env, error_line, ok

OK = {"name": "demo", "description": "two steps", "tasks": [
    {"name": "first", "type": "generic", "payload": {"command": "echo one"}, "priority": 2},
    {"name": "second", "type": "generic", "dependencies": ["first"],
     "payload": {"command": "echo", "args": ["two words"]}}]}
FAILING = {"name": "broken", "tasks": [
    {"name": "boom", "type": "generic", "max_retries": 0,
     "payload": {"command": "echo about to fail; exit 3"}}]}
SLEEPY = {"name": "sleepy", "tasks": [
    {"name": "nap", "type": "generic", "payload": {"command": "exec sleep 30"}}]}
CYCLE = {"name": "loop", "tasks": [
    {"name": "a", "type": "generic", "payload": {"command": "true"}, "dependencies": ["b"]},
    {"name": "b", "type": "generic", "payload": {"command": "true"}, "dependencies": ["a"]}]}


def write(root: Path, name: str, definition: Any) -> str:
    path = root / f"{name}.json"
    path.write_text(json.dumps(definition), encoding="utf-8")
    return str(path)


class Cli:
    def __init__(self, root: Path, *base: str) -> None:
        self.root = root
        self.base = base

    def __call__(self, *args: str, stdin: str | None = None,
                 timeout: float = 60) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "flowdeck.cli", *self.base, *args],
                              capture_output=True, text=True, encoding="utf-8", input=stdin,
                              timeout=timeout, env=clean_env(self.root))


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Cli, Path]]:
    root = tmp_path_factory.mktemp("workflow-remote")
    with flowdeck_serve(root, clean_env(root)) as url:
        yield Cli(root, "--data-dir", str(root / "unused"), "--url", url), root


def test_embedded_submit_waits_and_reports(tmp_path: Path) -> None:
    cli = Cli(tmp_path, "--data-dir", str(tmp_path / "data"))
    out = ok(cli("workflow", "submit", write(tmp_path, "ok", OK)))
    lines = out.splitlines()
    assert re.fullmatch(r"workflow (\S+) pending \(2 tasks\)", lines[0])
    assert "  first: completed" in lines and "  second: completed" in lines
    assert re.search(r"^first\s+generic\s+completed\s+2\s+-\s+0/3\s+exit_code=0 output=one$",
                     out, re.M)
    assert re.search(r"^second\s+generic\s+completed\s+1\s+first\s+0/3\s+exit_code=0 "
                     r"output=two words$", out, re.M)
    assert re.fullmatch(r"workflow \S+ completed in \d+\.\ds", lines[-1])
    workflow_id = lines[0].split()[1]

    failed = cli("workflow", "submit", write(tmp_path, "failing", FAILING), "--json")
    assert failed.returncode == 1, failed.stderr
    body = json.loads(failed.stdout)  # --json: only the final workflow
    assert body["status"] == "failed"
    assert body["tasks"][0]["error"] == "command failed with exit code 3"

    listed = json.loads(ok(cli("workflow", "list", "--json")))
    assert [w["name"] for w in listed["workflows"]] == ["broken", "demo"]
    assert (listed["total"], listed["total_pages"]) == (2, 1)
    only = json.loads(ok(cli("workflow", "list", "--status", "failed", "--json")))
    assert [w["name"] for w in only["workflows"]] == ["broken"]
    shown = ok(cli("workflow", "show", workflow_id[-8:]))  # a short id, as the deck shows
    assert shown.startswith(f"workflow {workflow_id}  demo  completed\ntwo steps\n")
    assert json.loads(ok(cli("workflow", "show", workflow_id[-12:], "--json")))["id"] == \
        workflow_id
    # Ids start with their creation time: two made within a minute share 8 characters
    # (unless a 65.5 s boundary fell between them: then the next one shares them instead).
    older, newer = workflow_id, body["id"]
    if newer[:8] != older[:8]:
        older = newer
        newer = json.loads(ok(cli("workflow", "submit", write(tmp_path, "again", OK),
                                  "--json")))["id"]
    assert newer[:8] == older[:8]
    ambiguous = cli("workflow", "show", newer[:8])
    assert ambiguous.returncode == 2
    assert ambiguous.stderr.startswith(f"flowdeck: workflow id '{newer[:8]}' is "
                                       "ambiguous: it matches 2 workflows")
    assert error_line(cli("workflow", "cancel", workflow_id), 2) == \
        "flowdeck: Workflow is already completed"


def test_embedded_refusals_exit_2_with_one_line(tmp_path: Path) -> None:
    cli = Cli(tmp_path, "--data-dir", str(tmp_path / "data"))
    refused = error_line(cli("workflow", "submit", write(tmp_path, "cycle", CYCLE)), 2)
    assert "workflow refused: tasks: tasks form a dependency cycle" in refused
    assert error_line(cli("workflow", "submit", "-", stdin="{x"), 2).startswith(
        "flowdeck: -: invalid JSON: ")
    assert error_line(cli("workflow", "submit", str(tmp_path / "nope.json")), 2) == \
        f"flowdeck: {tmp_path / 'nope.json'}: No such file or directory"
    assert error_line(cli("workflow", "show", "0190c6e0-0000-7000-8000-00000000dead"), 2) == \
        "flowdeck: Workflow not found"
    # Refused before the engine starts: nothing was recorded.
    assert json.loads(ok(cli("workflow", "list", "--json")))["total"] == 0


def test_over_http(served: tuple[Cli, Path]) -> None:
    cli, root = served
    queued = ok(cli("workflow", "submit", write(root, "ok", OK)))
    assert re.fullmatch(r"workflow \S+ pending \(2 tasks\)\n", queued)  # returns at once
    waited = cli("workflow", "submit", write(root, "failing", FAILING), "--wait")
    assert waited.returncode == 1, waited.stderr
    assert re.search(r"^boom\s+generic\s+failed\s+1\s+-\s+0/0\s+error: command failed with "
                     r"exit code 3$", waited.stdout, re.M)
    assert re.search(r"^workflow \S+ failed in ", waited.stdout, re.M)
    refused = error_line(cli("workflow", "submit", write(root, "cycle", CYCLE)), 2)
    assert "workflow refused: tasks: tasks form a dependency cycle" in refused

    slow = cli("workflow", "submit", write(root, "sleepy", SLEEPY), "--wait", "--timeout", "1")
    assert slow.returncode == 1
    assert re.fullmatch(r"flowdeck: workflow (\S+) did not finish within 1 s; it goes on at "
                        r"http://127\.0\.0\.1:\d+\n", slow.stderr)
    sleepy_id = slow.stdout.split()[1]
    cancelled = json.loads(ok(cli("workflow", "cancel", sleepy_id[-8:], "--json")))
    assert cancelled["status"] == "cancelled"
    assert cancelled["tasks"][0]["status"] == "cancelled"
    assert error_line(cli("workflow", "cancel", sleepy_id), 2) == \
        "flowdeck: Workflow is already cancelled"
    page = json.loads(ok(cli("workflow", "list", "--limit", "2", "--json")))
    assert [w["name"] for w in page["workflows"]] == ["sleepy", "broken"]
    assert (page["total"], page["limit"], page["total_pages"]) == (3, 2, 2)
    table = ok(cli("workflow", "list", "--limit", "2"))
    assert table.splitlines()[-1] == "(page 1 of 2, 3 workflows; --page N for another)"
    assert not (root / "unused").exists()  # everything went over HTTP
